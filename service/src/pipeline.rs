//! One account's send pipeline: nonces reserved in a short critical section (the nonce
//! book, `core/src/nonce.rs`), signatures made outside it, many at once, and the signed
//! transactions broadcast in nonce order, those ready together in one JSON-RPC batch. A
//! nonce left unused (its signature failed, or the node refused the transaction and does not
//! have it) is a hole: the next reservation takes it, and if none comes soon the pipeline
//! fills it itself with a zero-value transfer to the account, within the policy, so later
//! transactions are never stranded behind it.
//!
//! One task broadcasts for an account at a time (whichever request's task finds the account
//! idle), so batches leave in order; the requests' tasks only deposit and wait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kms_eth_core::nonce::{Named, NonceState};
use kms_eth_node::RpcError;
use kms_eth_signer::{Address, SignedTransaction, B256};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::error::{failure, node_error, RpcFailure, INVALID_PARAMS, SERVER_ERROR};
use crate::service::Service;

/// How long a hole waits for the next request to take its nonce before the pipeline fills
/// it with a transfer to the account itself (which costs its fee).
pub const HOLE_GRACE: Duration = Duration::from_secs(1);

/// What the broadcast of one transaction came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The node accepted it, or has it whatever it answered.
    Sent,
    /// The node refused it and does not have it: nothing was sent, the nonce was given back.
    Refused { message: String, node: Value },
    /// "nonce too low" and the node does not have it: another sender used the nonce.
    Taken,
    /// No answer that says whether it was sent: the nonce stays spent, the tracker watches it.
    Unknown(String),
}

/// A reserved nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub nonce: u64,
    /// A nonce the account already used, named by the client: it replaces that transaction
    /// and is broadcast at once, outside the order.
    pub replacement: bool,
}

/// A signed transaction waiting for its turn.
#[derive(Debug)]
struct Ready {
    signed: SignedTransaction,
    done: oneshot::Sender<Outcome>,
}

/// One account's pipeline.
#[derive(Debug, Default)]
pub struct Pipeline {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    book: NonceState,
    ready: BTreeMap<u64, Ready>,
    /// A task is broadcasting for the account: the others leave their transactions to it.
    broadcasting: bool,
}

impl Pipeline {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The nonce the next transaction would take, if the book has started.
    pub fn next_nonce(&self) -> Option<u64> {
        let inner = self.lock();
        let next = inner.book.holes().next().or(inner.book.next());
        next
    }

    /// The node counts `count` transactions of the account as mined: the book moves up to
    /// it if another sender used the account.
    pub fn used_up_to(&self, count: u64) {
        self.lock().book.used_up_to(count);
    }

    /// The holes still open, lowest first.
    pub fn holes(&self) -> Vec<u64> {
        self.lock().book.holes().collect()
    }

    /// Gives back the reserved `nonce`, which was never broadcast; a hole left behind is
    /// filled after [`HOLE_GRACE`] unless a request takes it first.
    pub fn give_back(&self, service: &Arc<Service>, address: Address, nonce: u64) {
        if self.lock().book.give_back(nonce) {
            tracing::warn!(account = %address, nonce, "a nonce was left unused below later ones: it is filled unless a request takes it");
            spawn_fill(service.clone(), address, nonce);
        }
    }
}

/// Reserves a nonce for `address`: `named` by the client, or the next one. The node's
/// pending count is asked only the first time the account is used.
pub async fn reserve(
    service: &Service,
    address: Address,
    named: Option<u64>,
) -> Result<Reservation, RpcFailure> {
    let pipeline = &service.account(&address)?.pipeline;
    loop {
        {
            let mut inner = pipeline.lock();
            if inner.book.started() {
                return match named {
                    None => inner.book.reserve().map(|nonce| Reservation {
                        nonce,
                        replacement: false,
                    }),
                    Some(nonce) => match inner.book.reserve_named(nonce) {
                        Some(Named::Reserved) => Some(Reservation {
                            nonce,
                            replacement: false,
                        }),
                        Some(Named::Replacement) => Some(Reservation {
                            nonce,
                            replacement: true,
                        }),
                        Some(Named::Gap { next }) => {
                            return Err(RpcFailure::new(
                                INVALID_PARAMS,
                                format!(
                                    "invalid nonce: {nonce} is above {address}'s next nonce \
                                     {next}; the transaction would wait behind a gap that \
                                     nothing fills. Leave \"nonce\" out, or give {next:#x}"
                                ),
                            ))
                        }
                        None => None,
                    },
                }
                .ok_or_else(|| {
                    RpcFailure::new(
                        INVALID_PARAMS,
                        format!("{address} has used every nonce (EIP-2681)"),
                    )
                });
            }
        }
        let count = transaction_count(service, address, "pending").await?;
        pipeline.lock().book.start(count);
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
    let (done, outcome) = oneshot::channel();
    let nonce = signed.tx.nonce();
    account
        .pipeline
        .lock()
        .ready
        .insert(nonce, Ready { signed, done });
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
    loop {
        let batch: Vec<Ready> = {
            let mut inner = account.pipeline.lock();
            if inner.broadcasting {
                return;
            }
            let Inner { book, ready, .. } = &mut *inner;
            let run: Vec<u64> = book.in_order(|nonce| ready.contains_key(&nonce)).collect();
            if run.is_empty() {
                return;
            }
            inner.broadcasting = true;
            run.iter()
                .filter_map(|nonce| inner.ready.remove(nonce))
                .collect()
        };
        let raws: Vec<String> = batch.iter().map(|ready| ready.signed.raw_hex()).collect();
        let answers = broadcast_raw(service, &raws).await;
        for (ready, answer) in batch.into_iter().zip(answers) {
            let outcome = judge(service, &ready.signed, answer).await;
            settle(service, address, &ready.signed, &outcome).await;
            let _ = ready.done.send(outcome);
        }
        account.pipeline.lock().broadcasting = false;
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
            account.pipeline.lock().book.broadcast(nonce);
            service.tracker.track(address, signed);
        }
        Outcome::Refused { .. } => account.pipeline.give_back(service, address, nonce),
        Outcome::Taken => {
            // Believed only as far as the node's mined count shows the nonce used: a node
            // that lies about "nonce too low" gets a hole, which is filled, not a gap.
            match transaction_count(service, address, "latest").await {
                Ok(mined) if nonce < mined => {
                    let mut inner = account.pipeline.lock();
                    inner.book.taken(nonce);
                    inner.book.used_up_to(mined);
                    service.metrics.resync();
                }
                _ => account.pipeline.give_back(service, address, nonce),
            }
        }
    }
}

/// The node's answers to `raws`' broadcast: one call for one, a JSON-RPC batch for several.
async fn broadcast_raw(service: &Service, raws: &[String]) -> Vec<anyhow::Result<Value>> {
    if let [raw] = raws {
        return vec![
            service
                .node
                .call("eth_sendRawTransaction", json!([raw]))
                .await,
        ];
    }
    let calls: Vec<Value> = raws
        .iter()
        .enumerate()
        .map(|(id, raw)| json!({ "jsonrpc": "2.0", "id": id, "method": "eth_sendRawTransaction", "params": [raw] }))
        .collect();
    let reply = service.node.exchange(&Value::Array(calls)).await;
    let answers: BTreeMap<u64, Value> = match &reply {
        Ok(Value::Array(answers)) => answers
            .iter()
            .filter_map(|answer| Some((answer.get("id")?.as_u64()?, answer.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };
    (0..raws.len() as u64)
        .map(|id| match (answers.get(&id), &reply) {
            (Some(answer), _) => match answer.get("error") {
                Some(error) => Err(RpcError {
                    method: "eth_sendRawTransaction".to_owned(),
                    node: service.node.shown().to_owned(),
                    code: error.get("code").and_then(Value::as_i64),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message")
                        .to_owned(),
                    data: error.get("data").cloned(),
                }
                .into()),
                None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
            },
            (None, Err(err)) => Err(anyhow::anyhow!("{err:#}")),
            (None, Ok(_)) => Err(anyhow::anyhow!(
                "the node's answer to the batch of broadcasts left this one out"
            )),
        })
        .collect()
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
        (Ok(false), Some(refusal)) if too_low(refusal) => Outcome::Taken,
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

fn too_low(refusal: &RpcError) -> bool {
    refusal
        .message
        .to_ascii_lowercase()
        .contains("nonce too low")
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

/// Fills the hole at `nonce` after [`HOLE_GRACE`], unless a request took it.
fn spawn_fill(service: Arc<Service>, address: Address, nonce: u64) {
    tokio::spawn(async move {
        tokio::time::sleep(HOLE_GRACE).await;
        fill_hole(&service, address, nonce).await;
    });
}

/// Fills the hole at `nonce` with a zero-value transfer to the account itself, judged by
/// the policy like any request. If it cannot (the policy, KMS or the node refuses), the hole
/// is given back and reported; the tracker tries again.
pub async fn fill_hole(service: &Arc<Service>, address: Address, nonce: u64) {
    let Ok(account) = service.account(&address) else {
        return;
    };
    if account.pipeline.lock().book.reserve_named(nonce) != Some(Named::Reserved) {
        return; // taken by a request meanwhile
    }
    match crate::send::self_transfer(service, address, nonce, None).await {
        Ok(hash) => {
            service.metrics.gap_filled();
            tracing::info!(account = %address, nonce, hash, "a nonce left unused was filled with a transfer to the account itself");
        }
        Err(failure) => {
            service.metrics.gap_unfilled();
            tracing::error!(account = %address, nonce, error = %failure.message, "a nonce left unused could not be filled: later transactions wait behind it; the tracker tries again");
        }
    }
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
