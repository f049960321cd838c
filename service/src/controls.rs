//! The operator's controls of the transactions the service sent, as JSON-RPC methods (the
//! CLI's `kms-eth tx` calls them): `kmseth_txStatus` (by hash, or by account and nonce),
//! `kmseth_speedUp` (the same transaction with higher fees) and `kmseth_cancel` (a
//! zero-value transfer to the account itself at that nonce). Each refuses what would lose
//! funds or do nothing: a mined transaction is not sped up or cancelled, a bump below the
//! node's replacement minimum is refused, and a replacement is judged by the policy.

use std::sync::Arc;

use kms_eth_core::txobject::parse_account;
use kms_eth_signer::Address;
use serde_json::{json, Value};

use crate::error::{failure, store_failure, RpcFailure, INVALID_PARAMS};
use crate::service::Service;
use crate::tracker::Found;
use crate::watch::{replace, Replacement};

/// Answers one of the control methods.
pub async fn answer(
    service: &Arc<Service>,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcFailure> {
    let found = find(service, method, params.first()).await?;
    if method == "kmseth_txStatus" {
        return Ok(status(&found));
    }
    let (from, nonce) = match found {
        Found::Pending(from, nonce, _) => (from, nonce),
        Found::Done(done) => {
            return Err(RpcFailure::new(
                INVALID_PARAMS,
                match done.mined.clone() {
                    Some(hash) => format!(
                        "nonce {} of {} is already mined ({hash}{}): there is nothing to {}",
                        done.nonce,
                        done.from,
                        done.block
                            .map(|b| format!(", block {b}"))
                            .unwrap_or_default(),
                        verb(method)
                    ),
                    None => format!(
                        "nonce {} of {} was taken by another transaction: there is nothing to {}",
                        done.nonce,
                        done.from,
                        verb(method)
                    ),
                },
            )
            .with_data(status(&Found::Done(done))))
        }
    };
    let address: Address = from
        .parse()
        .map_err(|err| failure(anyhow::anyhow!("{err}")))?;
    let bump = bump(params.get(1), service.tracker.settings.bump_percent)?;
    service.check_rate(service.account(&address)?).await?;
    let kind = if method == "kmseth_cancel" {
        Replacement::Cancel
    } else {
        Replacement::SpeedUp
    };
    let hash = replace(service, address, nonce, bump, kind).await?;
    Ok(json!({ "hash": hash, "from": from, "nonce": nonce }))
}

fn verb(method: &str) -> &'static str {
    if method == "kmseth_cancel" {
        "cancel"
    } else {
        "speed up"
    }
}

/// The transaction a control names: a hash, or `{"from": ADDRESS, "nonce": N}`.
async fn find(service: &Service, method: &str, which: Option<&Value>) -> Result<Found, RpcFailure> {
    let missing = || {
        RpcFailure::new(
            INVALID_PARAMS,
            format!(
                "{method} needs the transaction: its hash, or {{\"from\": ADDRESS, \"nonce\": N}}"
            ),
        )
    };
    let found = match which.ok_or_else(missing)? {
        Value::String(hash) => {
            kms_eth_core::txinputs::parse_tx_hash("transaction hash", hash).map_err(failure)?;
            service.tracker.find(hash).await.map_err(store_failure)?
        }
        Value::Object(fields) => {
            let from =
                parse_account("from", fields.get("from").ok_or_else(missing)?).map_err(failure)?;
            let nonce = fields
                .get("nonce")
                .ok_or_else(missing)
                .and_then(|n| kms_eth_node::parse_quantity(n).map_err(failure))?;
            service.account(&from)?;
            service
                .tracker
                .find_nonce(from, nonce)
                .await
                .map_err(store_failure)?
        }
        _ => return Err(missing()),
    };
    found.ok_or_else(|| {
        RpcFailure::new(
            INVALID_PARAMS,
            "not a transaction this service sent and watches (it forgets mined ones after \
             10,000 more): look it up with eth_getTransactionByHash",
        )
    })
}

/// `bump` in a control's options (`{"bump": "12.5%"}` or a number of percent), or the
/// service's default; at least the node's replacement minimum.
fn bump(options: Option<&Value>, default: f64) -> Result<f64, RpcFailure> {
    let Some(given) = options.and_then(|o| o.get("bump")) else {
        return Ok(default);
    };
    let text = match given {
        Value::Number(n) => n.to_string(),
        Value::String(text) => text.clone(),
        _ => String::new(),
    };
    kms_eth_core::fees::parse_bump(&text)
        .map_err(|why| RpcFailure::new(INVALID_PARAMS, format!("invalid bump {given}: {why}")))
}

/// A transaction's status as `kmseth_txStatus` answers it.
fn status(found: &Found) -> Value {
    match found {
        Found::Pending(from, nonce, tracked) => json!({
            "status": if tracked.stuck.is_some() { "stuck" } else { "pending" },
            "from": from,
            "nonce": nonce,
            "hashes": tracked.versions.iter().map(|v| v.hash.clone()).collect::<Vec<_>>(),
            "latest": tracked.versions.last().map(|v| v.hash.clone()),
            "firstSeen": tracked.first_seen,
            "stuck": tracked.stuck,
        }),
        Found::Done(done) => json!({
            "status": if done.mined.is_some() { "mined" } else { "replaced" },
            "from": done.from,
            "nonce": done.nonce,
            "hashes": done.hashes,
            "mined": done.mined,
            "block": done.block,
        }),
    }
}
