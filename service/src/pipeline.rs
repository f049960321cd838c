//! One account's send pipeline at work: nonces reserved in a short critical section (the
//! account's `Pipeline`, `book.rs`), signatures made outside it, many at once, and the signed
//! transactions broadcast in nonce order, those ready together in one JSON-RPC batch. One
//! task broadcasts for an account at a time (whichever request's task finds the account
//! idle), so batches leave in order; the others only deposit and wait. After any error the
//! transaction is looked up by hash before anything is decided.

use std::sync::Arc;

use kms_eth_node::RpcError;
use kms_eth_signer::{Address, SignedTransaction, B256};
use serde_json::{json, Value};

use crate::book::{NotReserved, Outcome, Reservation};
use crate::error::{failure, node_error, RpcFailure, INVALID_PARAMS, SERVER_ERROR};
use crate::service::Service;

/// Reserves a nonce for `address`: `named` by the client, or the next one. The node's
/// pending count is asked only the first time the account is used.
pub async fn reserve(
    service: &Service,
    address: Address,
    named: Option<u64>,
) -> Result<Reservation, RpcFailure> {
    let pipeline = &service.account(&address)?.pipeline;
    loop {
        match pipeline.reserve(named) {
            Ok(reservation) => return Ok(reservation),
            Err(NotReserved::NotStarted) => {
                let count = transaction_count(service, address, "pending").await?;
                let tracked = service.tracker.pending(address).into_keys().collect();
                pipeline.start(count, &tracked);
            }
            Err(NotReserved::Waiting) => {
                let nonce = named.unwrap_or_default();
                return Err(RpcFailure::new(
                    INVALID_PARAMS,
                    format!(
                        "invalid nonce: {address}'s transaction with nonce {nonce} is signed and \
                         waiting for its turn to be broadcast; a replacement now would be \
                         overtaken by it. Wait for its outcome (kmseth_txStatus), then replace it"
                    ),
                ));
            }
            Err(NotReserved::Gap { next }) => {
                let nonce = named.unwrap_or_default();
                return Err(RpcFailure::new(
                    INVALID_PARAMS,
                    format!(
                        "invalid nonce: {nonce} is above {address}'s next nonce {next}; the \
                         transaction would wait behind a gap that nothing fills. Leave \
                         \"nonce\" out, or give {next:#x}"
                    ),
                ));
            }
            Err(NotReserved::Exhausted) => {
                return Err(RpcFailure::new(
                    INVALID_PARAMS,
                    format!("{address} has used every nonce (EIP-2681)"),
                ))
            }
        }
    }
}

/// The account's next nonce, counted as handed out at once (`eth_signTransaction`: the
/// client broadcasts the transaction).
pub async fn hand_out(service: &Service, address: Address) -> Result<u64, RpcFailure> {
    let reservation = reserve(service, address, None).await?;
    service
        .account(&address)?
        .pipeline
        .broadcast(reservation.nonce);
    Ok(reservation.nonce)
}

/// Hands `signed` (with its reserved nonce) to the pipeline and waits for its broadcast, in
/// nonce order with whatever else is ready.
pub async fn broadcast_in_order(
    service: &Arc<Service>,
    address: Address,
    signed: SignedTransaction,
) -> Outcome {
    let Ok(account) = service.account(&address) else {
        return Outcome::Unknown("the account is gone".to_owned());
    };
    let outcome = account.pipeline.deposit(signed);
    pump(service, address).await;
    outcome
        .await
        .unwrap_or_else(|_| Outcome::Unknown("the broadcast was interrupted".to_owned()))
}

/// Broadcasts what is ready, in order, until nothing is, unless another task already does.
async fn pump(service: &Arc<Service>, address: Address) {
    let Ok(account) = service.account(&address) else {
        return;
    };
    while let Some(mut run) = account.pipeline.take_run() {
        let batch = std::mem::take(&mut run.batch);
        let raws: Vec<String> = batch.iter().map(|ready| ready.signed.raw_hex()).collect();
        let answers = service.node.broadcast_raw(&raws).await;
        for (ready, answer) in batch.into_iter().zip(answers) {
            let outcome = judge(service, &ready.signed, answer).await;
            settle(service, address, &ready.signed, &outcome).await;
            let _ = ready.done.send(outcome);
        }
        drop(run);
    }
}

/// Records what a broadcast came to in the book (and the tracker).
async fn settle(
    service: &Arc<Service>,
    address: Address,
    signed: &SignedTransaction,
    outcome: &Outcome,
) {
    let Ok(account) = service.account(&address) else {
        return;
    };
    let nonce = signed.tx.nonce();
    match outcome {
        Outcome::Sent | Outcome::Unknown(_) => {
            account.pipeline.broadcast(nonce);
            service.tracker.track(address, signed);
        }
        // A hole left behind is filled by the request's task, or by the tracker.
        Outcome::Refused { .. } => {
            account.pipeline.give_back(nonce);
        }
        Outcome::InUse(_) => {
            // Spent, and watched: it may be ours (a node that lags) and be mined. If the
            // node's mined count is past it, another sender uses the account: the book
            // moves up to it (a count that lies leaves a gap, which the tracker fills).
            account.pipeline.broadcast(nonce);
            service.tracker.track(address, signed);
            if let Ok(mined) = transaction_count(service, address, "latest").await {
                if nonce < mined {
                    account.pipeline.used_up_to(mined);
                    service.metrics.resync();
                }
            }
        }
    }
}

/// One signed transaction (0x hex) broadcast to every node.
pub async fn broadcast_one(service: &Service, raw: String) -> anyhow::Result<Value> {
    service
        .node
        .broadcast_raw(&[raw])
        .await
        .pop()
        .unwrap_or_else(|| Err(anyhow::anyhow!("no node to broadcast to")))
}

/// What the node's `answer` to a broadcast means. After any error the transaction is looked
/// up by hash before anything is decided: the node has it (sent, whatever the error said);
/// it answered, refused and has it not (not sent); anything else: unknown.
pub async fn judge(
    service: &Service,
    signed: &SignedTransaction,
    answer: anyhow::Result<Value>,
) -> Outcome {
    let err = match answer {
        Ok(_) => return Outcome::Sent,
        Err(err) => err,
    };
    let refusal = err.downcast_ref::<RpcError>();
    match (known(service, &signed.hash).await, refusal) {
        (Ok(true), _) => {
            tracing::warn!(
                hash = %format!("0x{}", hex::encode(signed.hash)),
                error = %format!("{err:#}"),
                "the node answered the broadcast with an error but has the transaction: sent"
            );
            Outcome::Sent
        }
        (Ok(false), Some(refusal)) if in_use(refusal) => Outcome::InUse(refusal.message.clone()),
        (Ok(false), Some(refusal)) => Outcome::Refused {
            message: refusal.message.clone(),
            node: node_error(refusal),
        },
        (Ok(false), None) => Outcome::Unknown(format!("{err:#}")),
        (Err(lookup), _) => Outcome::Unknown(format!(
            "{err:#}; and the lookup by hash failed: {lookup:#}"
        )),
    }
}

/// Whether the node refused because the nonce is in use (geth's, reth's and anvil's words).
fn in_use(refusal: &RpcError) -> bool {
    let message = refusal.message.to_ascii_lowercase();
    [
        "nonce too low",
        "already known",
        "known transaction",
        "replacement transaction underpriced",
    ]
    .iter()
    .any(|words| message.contains(words))
}

/// Whether the node knows the transaction `hash` (pending or mined).
pub async fn known(service: &Service, hash: &B256) -> anyhow::Result<bool> {
    let answer = service
        .node
        .call(
            "eth_getTransactionByHash",
            json!([format!("0x{}", hex::encode(hash))]),
        )
        .await?;
    Ok(!answer.is_null())
}

/// The account's transaction count at `block` (`pending` or `latest`).
pub async fn transaction_count(
    service: &Service,
    address: Address,
    block: &str,
) -> Result<u64, RpcFailure> {
    let answer = service
        .node
        .call(
            "eth_getTransactionCount",
            json!([address.to_string(), block]),
        )
        .await
        .map_err(failure)?;
    kms_eth_node::parse_quantity(&answer).map_err(failure)
}

/// The error of a transaction the node refused and does not have.
pub fn refused(hash: &str, nonce: u64, from: Address, message: &str, node: &Value) -> RpcFailure {
    RpcFailure::new(
        SERVER_ERROR,
        format!(
            "the node refused transaction {hash} (nonce {nonce} from {from}) and does not \
             have it: {message}. Nothing was sent"
        ),
    )
    .with_data(json!({
        "outcome": "refused",
        "hash": hash,
        "nonce": nonce,
        "from": from.to_string(),
        "node": node,
    }))
}
