//! The JSON-RPC side of the signing service: requests and batches read and checked, each
//! routed (`methods.rs`): the methods the service answers itself (accounts and signatures,
//! each through the policy before KMS is asked), the reads passed through to the node, the
//! rest refused. Every answer carries its request's id; a request that runs out of time is
//! answered with what is known (`send.rs` says what a broadcast left behind). Errors and
//! codes are `error.rs`'s.

use std::sync::Arc;

use futures_util::future::join_all;
use kms_eth_core::txobject::{parse_account, parse_tx_object, TxRequest};
use kms_eth_node::fill::fill_fees_and_gas;
use serde_json::{json, Value};

use crate::audit;
use crate::error::{
    failure, reserved, RpcFailure, INTERNAL, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    NOT_SUPPORTED, PARSE_ERROR, SERVER_ERROR,
};
use crate::methods::{acts, route, Route, OWN};
use crate::send::{send_transaction, InFlight};
use crate::service::{Account, Service};
use crate::sign::{sign_message, sign_transaction};
use crate::typed::sign_typed_data;

/// The request metrics' name for methods of no series of their own, and for requests that
/// are not JSON-RPC.
const OTHER: &str = "other";

/// A method's name in the request metrics. Methods are the client's text: only the
/// service's own get a series of their own, so a client cannot grow the metrics without
/// bound.
fn series(method: &str) -> &'static str {
    OWN.iter()
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
pub async fn answer_body(service: &Arc<Service>, body: &[u8]) -> Option<Value> {
    // Every call of the body answers within the same time.
    let deadline = tokio::time::Instant::now() + service.rpc.answer_within;
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
        Value::Array(calls) if calls.len() > service.rpc.max_batch => {
            Some(batch_too_large(service, &calls))
        }
        Value::Array(calls) => {
            let answers = join_all(
                calls
                    .into_iter()
                    .map(|call| answer_call(service, call, deadline)),
            )
            .await;
            let answers: Vec<Value> = answers.into_iter().flatten().collect();
            (!answers.is_empty()).then_some(Value::Array(answers))
        }
        call => answer_call(service, call, deadline).await,
    }
}

/// A batch above `--max-batch`: nothing in it is done, and each request with an id is told
/// so (one error with a null id if none has one).
fn batch_too_large(service: &Service, calls: &[Value]) -> Value {
    let refusal = RpcFailure::new(
        INVALID_REQUEST,
        format!(
            "a batch of {} requests is more than this service takes at once ({}, \
             --max-batch); nothing in it was done: send it in smaller batches",
            calls.len(),
            service.rpc.max_batch
        ),
    );
    service.metrics.request(OTHER, "error");
    let answers: Vec<Value> = calls
        .iter()
        .filter_map(|call| call.get("id"))
        .map(|id| error_object(id, &refusal))
        .collect();
    if answers.is_empty() {
        error_object(&Value::Null, &refusal)
    } else {
        Value::Array(answers)
    }
}

/// Answers one call; `None` for a notification (no `id`) of a method that does not act,
/// which is not executed and gets no answer.
async fn answer_call(
    service: &Arc<Service>,
    call: Value,
    deadline: tokio::time::Instant,
) -> Option<Value> {
    let id = call.get("id").cloned();
    let shown_id = id.clone().unwrap_or(Value::Null);
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
            &shown_id,
            &RpcFailure::new(
                INVALID_REQUEST,
                "not a JSON-RPC 2.0 request: expected {\"jsonrpc\":\"2.0\",\"id\":...,\"method\":\"...\",\"params\":[...]}",
            ),
        ));
    };
    if id.is_none() {
        // A notification gets no answer, so a signature or broadcast made for one would go
        // unseen (and could not be matched to its request): refused, and said so.
        if !acts(&method) {
            return None;
        }
        service.metrics.request(series(&method), "error");
        return Some(error_object(
            &Value::Null,
            &RpcFailure::new(
                INVALID_REQUEST,
                format!(
                    "{method} was sent as a notification (no \"id\") and was not executed: \
                     requests that sign or broadcast need an id"
                ),
            ),
        ));
    }
    let params = match call.get("params") {
        Some(Value::Array(params)) => params.clone(),
        _ => Vec::new(),
    };
    let answer = match route(&method, &service.rpc) {
        Route::Own => {
            let in_flight = InFlight::default();
            let result = match tokio::time::timeout_at(
                deadline,
                audit::scoped(
                    &method,
                    id.clone(),
                    own_method(service, &method, &params, &in_flight),
                ),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(timed_out(service, &in_flight)),
            };
            service.metrics.request(
                series(&method),
                result.as_ref().map_or_else(RpcFailure::outcome, |_| "ok"),
            );
            match result {
                Ok(result) => json!({ "jsonrpc": "2.0", "id": shown_id, "result": result }),
                Err(failure) => error_object(&shown_id, &failure),
            }
        }
        Route::Read | Route::Raw => {
            // In time, like the service's own methods: the answer keeps the request's id.
            let answer = tokio::time::timeout_at(deadline, service.node.exchange(&call))
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "no answer within {:.0} s",
                        service.rpc.answer_within.as_secs_f64()
                    ))
                });
            service
                .metrics
                .request(series(&method), if answer.is_ok() { "ok" } else { "error" });
            match answer {
                Ok(answer) => passed_back(answer, &shown_id),
                Err(err) => error_object(
                    &shown_id,
                    &RpcFailure::new(SERVER_ERROR, format!("the upstream node: {err:#}")),
                ),
            }
        }
        Route::Refused => {
            service.metrics.request(OTHER, "error");
            error_object(
                &shown_id,
                &RpcFailure::new(
                    METHOD_NOT_FOUND,
                    format!(
                        "{method} is not available through kms-eth serve: it answers the \
                         signing methods itself and passes only reads through to the node \
                         (eth_sendRawTransaction too with --allow-raw)"
                    ),
                ),
            )
        }
    };
    Some(answer)
}

/// The node's answer to a call passed through, as it came, with the request's id (a node
/// that answers another id, or none, is not believed on it), and its error wrapped if it
/// carries a code that clients read as the service's own (the policy's -32003).
fn passed_back(mut answer: Value, id: &Value) -> Value {
    if let Some(object) = answer.as_object_mut() {
        object.insert("id".to_owned(), id.clone());
    }
    let code = answer["error"]["code"].as_i64();
    if let Some(code) = code.filter(|code| reserved(*code)) {
        let node = answer["error"].clone();
        let message = format!(
            "the node refused: {} (its error {code})",
            node["message"].as_str().unwrap_or("no message")
        );
        return error_object(
            id,
            &RpcFailure::new(SERVER_ERROR, message).with_data(json!({ "node": node })),
        );
    }
    answer
}

/// The answer to a request that ran out of time: a broadcast it made is named (its outcome
/// is not known), otherwise nothing left the service.
fn timed_out(service: &Service, in_flight: &InFlight) -> RpcFailure {
    let seconds = service.rpc.answer_within.as_secs_f64();
    match in_flight.outcome_unknown(&format!("no answer within {seconds:.0} s")) {
        Some(unknown) => unknown,
        None => RpcFailure::new(
            INTERNAL,
            format!(
                "the request took longer than {seconds:.0} s and was stopped; nothing was \
                 broadcast"
            ),
        ),
    }
}

/// A method the service answers itself. `in_flight` learns of a broadcast before it is
/// made, for the answer to a request cut off by its time limit.
async fn own_method(
    service: &Arc<Service>,
    method: &str,
    params: &[Value],
    in_flight: &InFlight,
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
        // The chain the service signs for, pinned at start: a client that checks it is
        // told what its signatures will be for, not what the node says today.
        "eth_chainId" => Ok(json!(format!("{:#x}", service.chain_id))),
        // One rule family: both sign the data in the same EIP-191 envelope.
        "personal_sign" | "eth_sign" => {
            let (data, address) = if method == "personal_sign" {
                (param(0, "data")?, param(1, "address")?)
            } else {
                (param(1, "data")?, param(0, "address")?)
            };
            let account = service.account(&parse_account("address", address).map_err(failure)?)?;
            let data = message_bytes(data)?;
            service.check_rate(account).await?;
            service.check_message(account.address, &data)?;
            sign_message(service, account, &data).await
        }
        "eth_signTransaction" => {
            let request = parse_tx_object(param(0, "transaction")?).map_err(failure)?;
            let (account, mut request) = prepare(service, request).await?;
            if request.inputs.nonce.is_none() {
                // The account's next nonce, handed out as if broadcast: the client
                // broadcasts it; if it never does, the gap is filled.
                request.inputs.nonce =
                    Some(crate::pipeline::hand_out(service, account.address).await?);
            }
            service
                .check_policy(account.address, &request.inputs, true)
                .await?;
            let signed = sign_transaction(service, account, &request).await?;
            Ok(json!(signed.raw_hex()))
        }
        "eth_sendTransaction" => {
            let request = parse_tx_object(param(0, "transaction")?).map_err(failure)?;
            let (account, request) = prepare(service, request).await?;
            service
                .check_policy(account.address, &request.inputs, true)
                .await?;
            send_transaction(service, request, in_flight).await
        }
        "eth_signTypedData" | "eth_signTypedData_v3" | "eth_signTypedData_v4" => {
            sign_typed_data(service, method, params).await
        }
        "kmseth_txStatus" | "kmseth_speedUp" | "kmseth_cancel" => {
            crate::controls::answer(service, method, params).await
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
    service.check_rate(account).await?;
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
