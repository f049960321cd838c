//! `eth_sendTransaction`'s broadcast path: the nonce (the account's nonce manager, which a
//! lagging node cannot move back), the signature, the broadcast, and what its answer means.
//! A broadcast whose outcome is not known is never signed again: after any error from
//! `eth_sendRawTransaction` the node is asked for the transaction by its hash before
//! anything is decided. It has it: sent, whatever the error said. It answered, refused and
//! does not have it: not sent. Anything else: the outcome is unknown, the nonce stays spent,
//! and the client is told the hash, nonce and sender (`data`), so that a retry (with that
//! nonce) cannot pay twice.

use std::sync::Mutex;

use kms_eth_core::txobject::TxRequest;
use kms_eth_node::RpcError;
use kms_eth_signer::{Address, B256};
use serde_json::{json, Value};

use crate::error::{failure, node_error, RpcFailure, SERVER_ERROR};
use crate::service::{Account, Service};
use crate::sign::sign_transaction;

/// How many of the account's latest transactions are looked up, at most, when the node's
/// pending count is below the manager's.
const MAX_LOOKUPS: usize = 256;

/// A transaction handed to the node, of which the client must hear if nothing else.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub hash: String,
    pub nonce: u64,
    pub from: Address,
}

/// What a request broadcast, if anything: set before the broadcast, so that a request cut
/// off by its time limit can still name it.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<Option<Broadcast>>);

impl InFlight {
    fn set(&self, broadcast: Option<Broadcast>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = broadcast;
    }

    /// The error that tells the client its broadcast's outcome is not known (`why`), or
    /// `None` if nothing was broadcast.
    pub fn outcome_unknown(&self, why: &str) -> Option<RpcFailure> {
        let broadcast = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some(unknown(&broadcast, why))
    }
}

/// The outcome of `broadcast` is not known: the error names it, with the way to retry
/// that cannot pay twice.
fn unknown(broadcast: &Broadcast, why: &str) -> RpcFailure {
    let Broadcast { hash, nonce, from } = broadcast;
    RpcFailure::new(
        SERVER_ERROR,
        format!(
            "the outcome of transaction {hash} (nonce {nonce} from {from}) is not known: {why}. \
             It was broadcast and may be mined: look it up (eth_getTransactionByHash) before \
             sending again, or send again with \"nonce\": \"{nonce:#x}\", which can replace it \
             but never be mined beside it"
        ),
    )
    .with_data(json!({
        "outcome": "unknown",
        "hash": hash,
        "nonce": nonce,
        "from": from.to_string(),
    }))
}

/// Assigns the nonce, signs and broadcasts under the account's nonce lock, so that
/// concurrent sends take consecutive nonces, and answers the hash. A "nonce too low" for a
/// transaction the node proves it does not have (another sender took the nonce) is signed
/// again once, with the next nonce.
pub async fn send_transaction(
    service: &Service,
    account: &Account,
    mut request: TxRequest,
    in_flight: &InFlight,
) -> Result<Value, RpcFailure> {
    let given_nonce = request.inputs.nonce;
    let mut nonces = account.nonces.lock().await;
    let mut signed_again = false;
    loop {
        let nonce = match given_nonce {
            Some(nonce) => nonce,
            None => assign(service, account, &mut nonces).await?,
        };
        request.inputs.nonce = Some(nonce);
        let signed = sign_transaction(service, account, &request).await?;
        let broadcast = Broadcast {
            hash: format!("0x{}", hex::encode(signed.hash)),
            nonce,
            from: account.address,
        };
        // Spent before it is broadcast: a request cut off during the broadcast leaves the
        // nonce spent, and its answer names the transaction.
        nonces.spent(nonce, signed.hash);
        in_flight.set(Some(broadcast.clone()));
        let err = match service
            .node
            .call("eth_sendRawTransaction", json!([signed.raw_hex()]))
            .await
        {
            Ok(_) => return Ok(json!(broadcast.hash)),
            Err(err) => err,
        };
        let refusal = err.downcast_ref::<RpcError>();
        match (known(service, &signed.hash).await, refusal) {
            (Ok(true), _) => {
                tracing::warn!(
                    hash = %broadcast.hash,
                    error = %format!("{err:#}"),
                    "the node answered the broadcast with an error but has the transaction: sent"
                );
                return Ok(json!(broadcast.hash));
            }
            (Ok(false), Some(refusal)) => {
                nonces.refused(nonce, signed.hash);
                in_flight.set(None);
                let too_low = refusal
                    .message
                    .to_ascii_lowercase()
                    .contains("nonce too low");
                if too_low && given_nonce.is_none() && !signed_again {
                    service.metrics.resync();
                    signed_again = true;
                    continue;
                }
                return Err(RpcFailure::new(
                    SERVER_ERROR,
                    format!(
                        "the node refused transaction {} (nonce {nonce} from {}) and does not \
                         have it: {}. Nothing was sent",
                        broadcast.hash, broadcast.from, refusal.message
                    ),
                )
                .with_data(json!({
                    "outcome": "refused",
                    "hash": broadcast.hash,
                    "nonce": nonce,
                    "from": broadcast.from.to_string(),
                    "node": node_error(refusal),
                })));
            }
            // No answer to the broadcast, or no answer to the lookup: it may be on its way.
            (Ok(false), None) => return Err(unknown(&broadcast, &format!("{err:#}"))),
            (Err(lookup), _) => {
                return Err(unknown(
                    &broadcast,
                    &format!("{err:#}; and the lookup by hash failed: {lookup:#}"),
                ))
            }
        }
    }
}

/// The next nonce of `account`: the node's pending count, unless it is below the
/// manager's, which then goes back only as far as the node proves our latest transactions
/// gone (it does not know their hashes).
async fn assign(
    service: &Service,
    account: &Account,
    nonces: &mut kms_eth_core::nonce::NonceState,
) -> Result<u64, RpcFailure> {
    let pending = pending_count(service, account.address).await?;
    let unaccounted: Vec<(u64, Option<B256>)> =
        nonces.unaccounted(pending).take(MAX_LOOKUPS).collect();
    let mut gone_from = None;
    for (nonce, hash) in unaccounted {
        let Some(hash) = hash else { break };
        match known(service, &hash).await {
            Ok(false) => gone_from = Some(nonce),
            Ok(true) | Err(_) => break,
        }
    }
    let assigned = nonces.assign(pending, gone_from);
    if let Some(resync) = assigned.resync {
        service.metrics.resync();
        tracing::warn!(account = %account.address, ?resync, nonce = assigned.nonce, "the node's pending count disagreed with the nonce manager's");
    }
    Ok(assigned.nonce)
}

/// Whether the node knows the transaction `hash` (pending or mined).
async fn known(service: &Service, hash: &B256) -> anyhow::Result<bool> {
    let answer = service
        .node
        .call(
            "eth_getTransactionByHash",
            json!([format!("0x{}", hex::encode(hash))]),
        )
        .await?;
    Ok(!answer.is_null())
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
