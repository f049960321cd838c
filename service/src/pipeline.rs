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
use crate::error::{failure, node_error, store_failure, RpcFailure, INVALID_PARAMS, SERVER_ERROR};
use crate::service::Service;
use crate::store::Reserved;

/// Reserves a nonce for `address`: `named` by the client, or the next one, in this
/// process's book or the replicas' shared store. The node's pending count is asked only the
/// first time the account is used.
pub async fn reserve(
    service: &Service,
    address: Address,
    named: Option<u64>,
) -> Result<Reservation, RpcFailure> {
    let pipeline = &service.account(&address)?.pipeline;
    loop {
        let reserved = match service.tracker.store() {
            None => pipeline.reserve(named),
            Some(store) => {
                let token = store.token();
                match store
                    .reserve(address, named, &token)
                    .await
                    .map_err(store_failure)?
                {
                    Reserved::Nonce(nonce) => {
                        if !pipeline.adopt(nonce, token.clone()) {
                            // Only after a lease ran out under a request still at work here.
                            let _ = store.give_back(address, nonce, &token, false).await;
                            return Err(RpcFailure::new(
                                SERVER_ERROR,
                                format!(
                                    "nonce {nonce} of {address} is still held here by a request \
                                     whose reservation ran out (--lease); nothing was signed, \
                                     try again"
                                ),
                            ));
                        }
                        Ok(Reservation {
                            nonce,
                            replacement: false,
                        })
                    }
                    Reserved::Replacement(nonce) => Ok(Reservation {
                        nonce,
                        replacement: true,
                    }),
                    Reserved::NotStarted => Err(NotReserved::NotStarted),
                    Reserved::Waiting => Err(NotReserved::Waiting),
                    Reserved::Gap { next } => Err(NotReserved::Gap { next }),
                    Reserved::Exhausted => Err(NotReserved::Exhausted),
                }
            }
        };
        match reserved {
            Ok(reservation) => return Ok(reservation),
            Err(NotReserved::NotStarted) => {
                let count = transaction_count(service, address, "pending").await?;
                let tracked = service
                    .tracker
                    .pending(address)
                    .await
                    .map_err(store_failure)?
                    .into_keys()
                    .collect();
                match service.tracker.store() {
                    None => pipeline.start(count, &tracked),
                    Some(store) => store
                        .start(address, count, &tracked)
                        .await
                        .map_err(store_failure)?,
                }
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
    let nonce = reservation.nonce;
    let pipeline = &service.account(&address)?.pipeline;
    let owner = pipeline.owner(nonce);
    pipeline.broadcast(nonce);
    if let (Some(store), Some((token, _))) = (service.tracker.store(), owner) {
        if !store
            .claim(address, nonce, &token, "")
            .await
            .map_err(store_failure)?
        {
            return Err(RpcFailure::new(
                SERVER_ERROR,
                format!(
                    "the reservation of nonce {nonce} ran out before it was handed out; try again"
                ),
            ));
        }
    }
    Ok(nonce)
}

/// Gives back the reserved `nonce` of `address`, never broadcast. Returns whether it left a
/// hole, which the caller has filled unless a request takes it first.
pub async fn give_back(service: &Service, address: Address, nonce: u64) -> bool {
    let Ok(account) = service.account(&address) else {
        return false;
    };
    match service.tracker.store() {
        None => account.pipeline.give_back(nonce),
        Some(store) => {
            let Some((token, _)) = account.pipeline.owner(nonce) else {
                return false;
            };
            account.pipeline.broadcast(nonce);
            // A store that does not answer keeps the reservation until its lease runs out:
            // then it is a hole, and filled.
            store
                .give_back(address, nonce, &token, false)
                .await
                .unwrap_or_else(|err| {
                    tracing::warn!(account = %address, nonce, error = %format!("{err:#}"), "a reserved nonce could not be given back: it is taken back when its lease runs out");
                    false
                })
        }
    }
}

/// The holes of `address`'s nonces, lowest first.
pub async fn holes(service: &Service, address: Address) -> anyhow::Result<Vec<u64>> {
    match service.tracker.store() {
        None => Ok(service
            .account(&address)
            .map(|account| account.pipeline.holes())
            .unwrap_or_default()),
        Some(store) => store.holes(address).await,
    }
}

/// Reserves the hole at `nonce`, if it still is one.
pub async fn reserve_hole(service: &Service, address: Address, nonce: u64) -> anyhow::Result<bool> {
    match service.tracker.store() {
        None => Ok(service
            .account(&address)
            .is_ok_and(|account| account.pipeline.reserve_hole(nonce))),
        Some(store) => {
            let token = store.token();
            if !store.reserve_hole(address, nonce, &token).await? {
                return Ok(false);
            }
            let adopted = service
                .account(&address)
                .is_ok_and(|account| account.pipeline.adopt(nonce, token.clone()));
            if !adopted {
                store.give_back(address, nonce, &token, false).await?;
            }
            Ok(adopted)
        }
    }
}

/// Makes holes of the nonces in `from..to` that nothing holds (`tracked` says which the
/// tracker watches).
pub async fn gaps(
    service: &Service,
    address: Address,
    from: u64,
    to: u64,
    tracked: impl Fn(u64) -> bool,
) -> anyhow::Result<usize> {
    match service.tracker.store() {
        None => Ok(service
            .account(&address)
            .map(|account| account.pipeline.gaps(from, to, tracked))
            .unwrap_or_default()),
        Some(store) => store.gaps(address, from, to).await,
    }
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
/// With a shared store, each nonce is claimed (and its transaction tracked) first; one whose
/// reservation ran out is not broadcast.
async fn pump(service: &Arc<Service>, address: Address) {
    let Ok(account) = service.account(&address) else {
        return;
    };
    while let Some(mut run) = account.pipeline.take_run() {
        let mut batch = Vec::new();
        for ready in std::mem::take(&mut run.batch) {
            match claim(service, address, &ready.signed).await {
                None => batch.push(ready),
                Some(lost) => {
                    account.pipeline.broadcast(ready.signed.tx.nonce());
                    let _ = ready.done.send(lost);
                }
            }
        }
        let raws: Vec<String> = batch.iter().map(|ready| ready.signed.raw_hex()).collect();
        let answers = if raws.is_empty() {
            Vec::new()
        } else {
            service.node.broadcast_raw(&raws).await
        };
        for (ready, answer) in batch.into_iter().zip(answers) {
            let outcome = judge(service, &ready.signed, answer).await;
            settle(service, address, &ready.signed, &outcome).await;
            let _ = ready.done.send(outcome);
        }
        drop(run);
    }
}

/// Claims `signed`'s nonce in the shared store, if there is one, and tracks it there: `None`
/// if it may be broadcast, else the outcome that says why not. A reservation three quarters
/// through its lease is not claimed (the store may take it back before the claim lands); a
/// claim whose answer is lost is asked again, and if it stays unknown so does the outcome
/// (the claim may have landed, and the tracker then broadcasts the transaction).
async fn claim(service: &Service, address: Address, signed: &SignedTransaction) -> Option<Outcome> {
    let store = service.tracker.store()?;
    let nonce = signed.tx.nonce();
    let lost = || {
        Some(Outcome::Lost(format!(
            "the reservation of nonce {nonce} ran out (--lease) before its broadcast, and the \
             nonce may be another transaction's now"
        )))
    };
    let Some((token, age)) = service.account(&address).ok()?.pipeline.owner(nonce) else {
        return lost();
    };
    if age > store.lease().mul_f64(0.75) {
        return lost();
    }
    let tracked = crate::tracker::Tracker::first(signed);
    let mut last = None;
    for _ in 0..2 {
        match store.claim(address, nonce, &token, &tracked).await {
            Ok(true) => return None,
            Ok(false) => return lost(),
            Err(err) => last = Some(err),
        }
    }
    Some(Outcome::Unknown(format!(
        "its claim in the state store got no answer ({:#}); it is broadcast by the tracker if \
         the claim was made",
        last.unwrap_or_else(|| anyhow::anyhow!("no answer"))
    )))
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
    let store = service.tracker.store();
    match outcome {
        Outcome::Sent | Outcome::Unknown(_) => {
            account.pipeline.broadcast(nonce);
            // With a store, its claim tracked it.
            if store.is_none() {
                service.tracker.track(address, signed).await;
            }
        }
        // A hole left behind is filled by the request's task, or by the tracker.
        Outcome::Refused { .. } => match store {
            None => {
                account.pipeline.give_back(nonce);
            }
            Some(store) => {
                account.pipeline.broadcast(nonce);
                if let Err(err) = store.give_back(address, nonce, "", true).await {
                    tracing::warn!(account = %address, nonce, error = %format!("{err:#}"), "a refused transaction could not be given back in the store: the tracker watches it until it is done");
                }
            }
        },
        Outcome::Lost(_) => account.pipeline.broadcast(nonce),
        Outcome::InUse(_) => {
            // Spent, and watched: it may be ours (a node that lags) and be mined. If the
            // node's mined count is past it, another sender uses the account: the book
            // moves up to it (a count that lies leaves a gap, which the tracker fills).
            account.pipeline.broadcast(nonce);
            if store.is_none() {
                service.tracker.track(address, signed).await;
            }
            if let Ok(mined) = transaction_count(service, address, "latest").await {
                if nonce < mined {
                    used_up_to(service, address, mined).await;
                    service.metrics.resync();
                }
            }
        }
    }
}

/// The node counts `mined` transactions of `address` as mined: the book moves up to it.
pub async fn used_up_to(service: &Service, address: Address, mined: u64) {
    match service.tracker.store() {
        None => {
            if let Ok(account) = service.account(&address) {
                account.pipeline.used_up_to(mined);
            }
        }
        Some(store) => {
            if let Err(err) = store.used_up_to(address, mined).await {
                tracing::warn!(account = %address, error = %format!("{err:#}"), "the nonce count could not be moved up in the store");
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
