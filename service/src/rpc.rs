//! The JSON-RPC methods of the signing service: the ones it answers itself (accounts and
//! signatures, each through the policy before KMS is asked) and everything else passed
//! through to the upstream node unchanged. Their errors and codes are in `error.rs`.

use std::time::Instant;

use futures_util::future::join_all;
use kms_eth_core::txobject::{parse_account, parse_tx_object, TxRequest};
use kms_eth_core::typed_data::parse_typed_data_value;
use kms_eth_node::fill::{fill_fees_and_gas, fill_nonce};
use kms_eth_node::RpcError;
use kms_eth_signer::{eip191_hash, Address, SignedTransaction, Transaction};
use serde_json::{json, Value};

use crate::error::{
    failure, RpcFailure, INVALID_PARAMS, INVALID_REQUEST, NOT_SUPPORTED, PARSE_ERROR, SERVER_ERROR,
};
use crate::service::{Account, Service};

/// The methods the service answers itself.
const KNOWN_METHODS: [&str; 7] = [
    "eth_accounts",
    "eth_sign",
    "personal_sign",
    "eth_signTransaction",
    "eth_sendTransaction",
    "eth_signTypedData_v4",
    "eth_requestAccounts",
];

/// The request metrics' name for methods of no series of their own, and for requests that
/// are not JSON-RPC.
const OTHER: &str = "other";

/// A method's name in the request metrics. Methods are the client's text: only known names
/// get a series of their own, so a client cannot grow the metrics without bound.
fn series(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .copied()
        .find(|known| *known == method)
        .unwrap_or(OTHER)
}

fn error_object(id: &Value, failure: &RpcFailure) -> Value {
    let mut error = json!({ "code": failure.code, "message": failure.message });
    if let Some(data) = &failure.data {
        error["data"] = data.clone();
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// Answers a request body: one call or a batch. `None` for a body of notifications only.
pub async fn answer_body(service: &Service, body: &[u8]) -> Option<Value> {
    let request: Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => {
            service.metrics.request(OTHER, "error");
            return Some(error_object(
                &Value::Null,
                &RpcFailure::new(PARSE_ERROR, format!("parse error: {err}")),
            ));
        }
    };
    match request {
        Value::Array(calls) if calls.is_empty() => Some(error_object(
            &Value::Null,
            &RpcFailure::new(INVALID_REQUEST, "an empty batch"),
        )),
        Value::Array(calls) => {
            let answers = join_all(calls.into_iter().map(|call| answer_call(service, call))).await;
            let answers: Vec<Value> = answers.into_iter().flatten().collect();
            (!answers.is_empty()).then_some(Value::Array(answers))
        }
        call => answer_call(service, call).await,
    }
}

/// Answers one call; `None` for a notification (no `id`), which gets no answer.
async fn answer_call(service: &Service, call: Value) -> Option<Value> {
    let id = call.get("id").cloned();
    let method = call
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let valid = call.is_object()
        && call.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
        && method.is_some()
        && matches!(
            call.get("params"),
            None | Some(Value::Array(_) | Value::Object(_))
        );
    let Some(method) = method.filter(|_| valid) else {
        service.metrics.request(OTHER, "error");
        return Some(error_object(
            &id.unwrap_or(Value::Null),
            &RpcFailure::new(
                INVALID_REQUEST,
                "not a JSON-RPC 2.0 request: expected {\"jsonrpc\":\"2.0\",\"id\":...,\"method\":\"...\",\"params\":[...]}",
            ),
        ));
    };
    let params = match call.get("params") {
        Some(Value::Array(params)) => params.clone(),
        _ => Vec::new(),
    };
    let answer = if KNOWN_METHODS.contains(&method.as_str()) {
        let result = own_method(service, &method, &params).await;
        service.metrics.request(
            series(&method),
            result.as_ref().map_or_else(RpcFailure::outcome, |_| "ok"),
        );
        match result {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(failure) => error_object(id.as_ref().unwrap_or(&Value::Null), &failure),
        }
    } else {
        // Passed through as it came, the node's answer returned as it went.
        let answer = service.node.exchange(&call).await;
        service
            .metrics
            .request(series(&method), if answer.is_ok() { "ok" } else { "error" });
        answer.unwrap_or_else(|err| {
            error_object(
                id.as_ref().unwrap_or(&Value::Null),
                &RpcFailure::new(SERVER_ERROR, format!("the upstream node: {err:#}")),
            )
        })
    };
    id.is_some().then_some(answer)
}

async fn own_method(
    service: &Service,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcFailure> {
    let param = |index: usize, name: &str| {
        params.get(index).ok_or_else(|| {
            RpcFailure::new(
                INVALID_PARAMS,
                format!("{method} needs its {name} parameter"),
            )
        })
    };
    match method {
        "eth_accounts" | "eth_requestAccounts" => Ok(json!(service
            .addresses()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>())),
        // One rule family: both sign the data in the same EIP-191 envelope.
        "personal_sign" | "eth_sign" => {
            let (data, address) = if method == "personal_sign" {
                (param(0, "data")?, param(1, "address")?)
            } else {
                (param(1, "data")?, param(0, "address")?)
            };
            let account = service.account(&parse_account("address", address).map_err(failure)?)?;
            let data = message_bytes(data)?;
            service.check_rate(account)?;
            service.check_message(account.address, &data)?;
            sign_message(service, method, account, &data).await
        }
        "eth_signTransaction" => {
            let request = parse_tx_object(param(0, "transaction")?).map_err(failure)?;
            let (account, mut request) = prepare(service, request).await?;
            if request.inputs.nonce.is_none() {
                fill_nonce(&service.node, account.address, &mut request.inputs)
                    .await
                    .map_err(failure)?;
            }
            service.check_policy(account, &request.inputs, true).await?;
            let signed = sign_transaction(service, method, account, &request).await?;
            Ok(json!(signed.raw_hex()))
        }
        "eth_sendTransaction" => {
            let request = parse_tx_object(param(0, "transaction")?).map_err(failure)?;
            let (account, request) = prepare(service, request).await?;
            service.check_policy(account, &request.inputs, true).await?;
            send_transaction(service, account, request).await
        }
        "eth_signTypedData_v4" => {
            let account = service
                .account(&parse_account("address", param(0, "address")?).map_err(failure)?)?;
            let request =
                parse_typed_data_value("typedData", param(1, "typed data")?).map_err(failure)?;
            // As wallets do: typed data for another chain is not signed on this one.
            if let Some(chain_id) = request.domain.chain_id.filter(|id| *id != service.chain_id) {
                return Err(RpcFailure::new(
                    INVALID_PARAMS,
                    format!(
                        "invalid typedData: its domain is for chain {chain_id}, but this service signs for chain {}",
                        service.chain_id
                    ),
                ));
            }
            service.check_rate(account)?;
            service.check_typed_data(account.address, &request)?;
            let signature = sign_digest(
                service,
                method,
                account,
                request.domain.chain_id,
                &request.digest,
            )
            .await?;
            Ok(json!(format!(
                "0x{}",
                hex::encode(signature.to_rsv_bytes())
            )))
        }
        _ => Err(RpcFailure::new(
            NOT_SUPPORTED,
            format!("{method} is not supported"),
        )),
    }
}

/// A message parameter: 0x hex bytes, as the specification and clients send them.
fn message_bytes(value: &Value) -> Result<Vec<u8>, RpcFailure> {
    match value.as_str() {
        Some(text) => kms_eth_core::txinputs::parse_hex("data", text).map_err(failure),
        None => Err(RpcFailure::new(
            INVALID_PARAMS,
            format!("invalid data: expected 0x hex bytes, got {value}"),
        )),
    }
}

/// The account, chain id and fees of a transaction request, checked and filled in (all
/// but the nonce), before the policy sees it.
async fn prepare(
    service: &Service,
    mut request: TxRequest,
) -> Result<(&Account, TxRequest), RpcFailure> {
    let account = service.account(&request.from)?;
    match request.inputs.chain_id {
        Some(given) if given != service.chain_id => {
            return Err(RpcFailure::new(
                INVALID_PARAMS,
                format!(
                    "invalid chainId: {given}, but this service signs for chain {}",
                    service.chain_id
                ),
            ))
        }
        _ => request.inputs.chain_id = Some(service.chain_id),
    }
    // An authorization for another chain would be skipped by the protocol: the transaction
    // would be mined, and paid for, without delegating anything.
    if let Some(other) = request
        .inputs
        .authorizations
        .iter()
        .map(|signed| signed.authorization.chain_id)
        .find(|&id| id != 0 && id != service.chain_id)
    {
        return Err(RpcFailure::new(
            INVALID_PARAMS,
            format!(
                "invalid authorizationList: an authorization for chain {other} cannot take \
                 effect on chain {}; sign it for this chain",
                service.chain_id
            ),
        ));
    }
    service.check_rate(account)?;
    fill_fees_and_gas(
        &service.node,
        account.address,
        &mut request.inputs,
        service.fee_cap,
    )
    .await
    .map_err(failure)?;
    Ok((account, request))
}

async fn sign_message(
    service: &Service,
    method: &str,
    account: &Account,
    data: &[u8],
) -> Result<Value, RpcFailure> {
    let digest = eip191_hash(data);
    let signature = sign_digest(service, method, account, None, &digest).await?;
    Ok(json!(format!(
        "0x{}",
        hex::encode(signature.to_rsv_bytes())
    )))
}

/// One KMS signature of `digest`, its latency measured; and the KMS request id
/// (CloudTrail's key to the call), for the audit line.
async fn kms_sign(
    service: &Service,
    account: &Account,
    digest: &kms_eth_signer::B256,
) -> Result<(kms_eth_signer::Signature, Option<String>), RpcFailure> {
    let started = Instant::now();
    let signed = account
        .signer
        .sign_digest_with_request_id(digest)
        .await
        .map_err(|err| failure(err.into()))?;
    service.metrics.kms_sign(started.elapsed());
    Ok(signed)
}

/// A signature of a message or typed data `digest`, audited by the digest.
async fn sign_digest(
    service: &Service,
    method: &str,
    account: &Account,
    chain_id: Option<u64>,
    digest: &kms_eth_signer::B256,
) -> Result<kms_eth_signer::Signature, RpcFailure> {
    let (signature, request_id) = kms_sign(service, account, digest).await?;
    let digest = format!("0x{}", hex::encode(digest));
    service.audit(
        method,
        account.address,
        chain_id,
        &digest,
        request_id.as_deref(),
        None,
    );
    Ok(signature)
}

/// A signed transaction, audited by its transaction hash.
async fn sign_transaction(
    service: &Service,
    method: &str,
    account: &Account,
    request: &TxRequest,
) -> Result<SignedTransaction, RpcFailure> {
    let tx = request.inputs.complete().map_err(|err| {
        RpcFailure::new(INVALID_PARAMS, err.message(&kms_eth_core::input::JsonRpc))
    })?;
    // Each authorization's signer, recovered once for the check and the audit line.
    let authorities: Vec<Option<Address>> = match &tx {
        Transaction::Eip7702(tx) => tx
            .authorization_list
            .iter()
            .map(|signed| signed.recover_authority().ok())
            .collect(),
        _ => Vec::new(),
    };
    check_own_authorizations(account.address, &tx, &authorities)?;
    // The inputs were checked to carry a chain id (never 0), which is what
    // `Signer::sign_transaction` checks before it signs the same digest.
    let (signature, request_id) = kms_sign(service, account, &tx.signing_hash()).await?;
    let transaction = tx.into_signed(signature);
    let hash = format!("0x{}", hex::encode(transaction.hash));
    let chain_id = transaction.tx.chain_id();
    let authorizations = match &transaction.tx {
        Transaction::Eip7702(tx) => Some(json!(tx
            .authorization_list
            .iter()
            .zip(&authorities)
            .map(|(signed, authority)| json!({
                "authority": authority.map(|a| a.to_string()),
                "delegate": signed.authorization.address.to_string(),
                "chain_id": signed.authorization.chain_id,
                "nonce": signed.authorization.nonce,
            }))
            .collect::<Vec<_>>())),
        _ => None,
    };
    service.audit(
        method,
        account.address,
        chain_id,
        &hash,
        request_id.as_deref(),
        authorizations,
    );
    Ok(transaction)
}

/// Refuses an EIP-7702 transaction that would be mined, and paid for, without one of its
/// authorizations taking effect because of its nonce: 2^64-1 is never valid (EIP-2681), and
/// one signed by the sending account itself needs the transaction's nonce + 1, since the
/// transaction takes its own nonce first. The service picks the nonce of an
/// `eth_sendTransaction` that gives none, so such a client must give it.
/// `authorities` are the authorizations' signers, in order.
fn check_own_authorizations(
    from: Address,
    tx: &Transaction,
    authorities: &[Option<Address>],
) -> Result<(), RpcFailure> {
    let Transaction::Eip7702(tx) = tx else {
        return Ok(());
    };
    for (index, (signed, authority)) in tx.authorization_list.iter().zip(authorities).enumerate() {
        let nonce = signed.authorization.nonce;
        let refuse = |why: String| {
            Err(RpcFailure::new(
                INVALID_PARAMS,
                format!("invalid authorizationList[{index}]: {why}"),
            ))
        };
        if nonce == u64::MAX {
            return refuse(
                "nonce 2^64-1 is never valid (EIP-2681); the transaction would be mined \
                 without it"
                    .to_owned(),
            );
        }
        let own = *authority == Some(from);
        if own && Some(nonce) != tx.nonce.checked_add(1) {
            return refuse(format!(
                "it is signed by the sending account {from} with nonce {nonce}, but the \
                 transaction takes nonce {} first, so the authorization needs nonce {}; with \
                 any other it would be mined and paid for and delegate nothing. Give the \
                 transaction's \"nonce\" and sign the authorization for the one after it",
                tx.nonce,
                tx.nonce.saturating_add(1)
            ));
        }
    }
    Ok(())
}

/// Assigns the nonce, signs and broadcasts, under the account's nonce lock, so that
/// concurrent sends take consecutive nonces. A "nonce too low" from the node resynchronises
/// and signs again once; a broadcast without an answer spends the nonce and says so.
async fn send_transaction(
    service: &Service,
    account: &Account,
    mut request: TxRequest,
) -> Result<Value, RpcFailure> {
    let given_nonce = request.inputs.nonce;
    let mut nonces = account.nonces.lock().await;
    for attempt in 0..2 {
        let nonce = match given_nonce {
            Some(nonce) => nonce,
            None => {
                let pending = pending_count(service, account.address).await?;
                let assigned = nonces.assign(pending);
                if let Some(resync) = assigned.resync {
                    service.metrics.resync();
                    tracing::warn!(account = %account.address, ?resync, "nonce resynchronised from the node");
                }
                assigned.nonce
            }
        };
        request.inputs.nonce = Some(nonce);
        let signed = sign_transaction(service, "eth_sendTransaction", account, &request).await?;
        let hash = format!("0x{}", hex::encode(signed.hash));
        match service
            .node
            .call("eth_sendRawTransaction", json!([signed.raw_hex()]))
            .await
        {
            Ok(_) => {
                nonces.spent(nonce);
                return Ok(json!(hash));
            }
            Err(err) => match err.downcast_ref::<RpcError>() {
                Some(rpc) if rpc.message.to_ascii_lowercase().contains("already known") => {
                    nonces.spent(nonce);
                    return Ok(json!(hash));
                }
                Some(rpc)
                    if attempt == 0
                        && given_nonce.is_none()
                        && rpc.message.to_ascii_lowercase().contains("nonce too low") =>
                {
                    service.metrics.resync();
                    nonces.refused(nonce);
                    continue;
                }
                Some(_) => {
                    nonces.refused(nonce);
                    return Err(failure(err));
                }
                None => {
                    // It may have reached the node: the nonce is spent, never reused.
                    nonces.spent(nonce);
                    return Err(RpcFailure::new(
                        SERVER_ERROR,
                        format!(
                            "the outcome of transaction {hash} (nonce {nonce} from {}) is not \
                             known: {err:#}. It was broadcast: check it before sending again",
                            account.address
                        ),
                    )
                    .with_data(json!({ "hash": hash, "nonce": nonce })));
                }
            },
        }
    }
    Err(RpcFailure::new(
        SERVER_ERROR,
        "the node kept answering \"nonce too low\"",
    ))
}

async fn pending_count(service: &Service, address: Address) -> Result<u64, RpcFailure> {
    let answer = service
        .node
        .call(
            "eth_getTransactionCount",
            json!([address.to_string(), "pending"]),
        )
        .await
        .map_err(failure)?;
    kms_eth_node::parse_quantity(&answer).map_err(failure)
}
