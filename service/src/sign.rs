//! Signing with KMS for the JSON-RPC methods: one `Sign` call per signature, its latency
//! measured, the KMS error told to the client in short (`error.rs`), and one audit line per
//! signature; a transaction is checked before its digest goes to KMS (an EIP-7702
//! authorization that could not take effect is refused).

use std::time::Instant;

use kms_eth_core::txobject::TxRequest;
use kms_eth_signer::{eip191_hash, Address, SignedTransaction, Transaction};
use serde_json::{json, Value};

use crate::error::{kms_failure, RpcFailure, INVALID_PARAMS};
use crate::service::{Account, Service, Signed};

/// An EIP-191 signature of `data` (`personal_sign`, `eth_sign`), as 0x r||s||v.
pub async fn sign_message(
    service: &Service,
    account: &Account,
    data: &[u8],
) -> Result<Value, RpcFailure> {
    let digest = eip191_hash(data);
    let signature = sign_digest(service, account, None, &digest).await?;
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
        .map_err(|err| kms_failure(&err))?;
    service.metrics.kms_sign(started.elapsed());
    Ok(signed)
}

/// A signature of a message or typed data `digest`, audited by the digest (the method and
/// request id come from the request's audit scope).
pub async fn sign_digest(
    service: &Service,
    account: &Account,
    chain_id: Option<u64>,
    digest: &kms_eth_signer::B256,
) -> Result<kms_eth_signer::Signature, RpcFailure> {
    let (signature, request_id) = kms_sign(service, account, digest).await?;
    let digest = format!("0x{}", hex::encode(digest));
    service.audit_signed(
        account.address,
        Signed::Digest { digest, chain_id },
        request_id,
    );
    Ok(signature)
}

/// A signed transaction, audited by its transaction hash.
pub async fn sign_transaction(
    service: &Service,
    account: &Account,
    request: &TxRequest,
) -> Result<SignedTransaction, RpcFailure> {
    let tx = request.inputs.complete().map_err(|err| {
        RpcFailure::new(INVALID_PARAMS, err.message(&kms_eth_core::input::JsonRpc))
    })?;
    sign_tx(service, account, tx).await
}

/// A signed `tx` (complete, with its chain id), audited by its transaction hash: a request's,
/// or a replacement the tracker or an operator asked for.
pub async fn sign_tx(
    service: &Service,
    account: &Account,
    tx: Transaction,
) -> Result<SignedTransaction, RpcFailure> {
    if tx.chain_id().is_none_or(|id| id == 0) {
        return Err(RpcFailure::new(
            INVALID_PARAMS,
            "a transaction without a chain id could be replayed on any chain; refused",
        ));
    }
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
    // Checked above to carry a chain id (never 0), which is what `Signer::sign_transaction`
    // checks before it signs the same digest.
    let (signature, request_id) = kms_sign(service, account, &tx.signing_hash()).await?;
    let transaction = tx.into_signed(signature);
    let hash = format!("0x{}", hex::encode(transaction.hash));
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
    service.audit_signed(
        account.address,
        Signed::Transaction {
            tx: &transaction.tx,
            hash,
            authorizations,
        },
        request_id,
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
