//! One account's send pipeline as data (a leaf): the nonce book (`core/src/nonce.rs`) and
//! the signed transactions waiting for their turn, behind one lock held only for
//! bookkeeping, never across a call. `pipeline.rs` drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kms_eth_core::nonce::{Named, NonceState};
use kms_eth_signer::SignedTransaction;
use serde_json::Value;
use tokio::sync::oneshot;

/// What the broadcast of one transaction came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The node accepted it, or has it whatever it answered.
    Sent,
    /// The node refused it and does not have it: nothing was sent, the nonce was given back.
    Refused { message: String, node: Value },
    /// The node says the nonce is in use ("nonce too low", "already known", "replacement
    /// transaction underpriced") and does not show the transaction: another sender's, or
    /// ours and a node that lags. The nonce stays spent and the tracker watches it; it is
    /// never signed again on the node's word alone.
    InUse(String),
    /// No answer that says whether it was sent: the nonce stays spent, the tracker watches it.
    Unknown(String),
    /// Not broadcast: the nonce's reservation in the replicas' shared store ran out (or the
    /// store could not be asked) before the broadcast, so it may be another's now.
    Lost(String),
}

/// A reserved nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub nonce: u64,
    /// A nonce the account already used, named by the client: it replaces that transaction
    /// and is broadcast at once, outside the order.
    pub replacement: bool,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReserved {
    /// The book has not taken the node's count yet.
    NotStarted,
    /// A named nonce above the next one (`next`).
    Gap { next: u64 },
    /// A named nonce whose transaction is not broadcast yet.
    Waiting,
    /// Every nonce is used (EIP-2681).
    Exhausted,
}

/// A signed transaction waiting for its turn.
#[derive(Debug)]
pub struct Ready {
    pub signed: SignedTransaction,
    pub done: oneshot::Sender<Outcome>,
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
    /// Holes whose filling failed: how often, and when to try again.
    fill_backoff: BTreeMap<u64, (u32, Instant)>,
    /// With a shared store: each nonce this replica holds there, its owner token and when
    /// it was reserved.
    owners: BTreeMap<u64, (String, Instant)>,
}

/// A run of transactions claimed for broadcast; the account is free for the next run when it
/// is dropped, whatever happened to it.
#[derive(Debug)]
pub struct Run<'a> {
    pub batch: Vec<Ready>,
    pipeline: &'a Pipeline,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.pipeline.lock().broadcasting = false;
    }
}

impl Pipeline {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the node's count when the book first needs it, after the nonces the tracker
    /// still watches (`tracked`).
    pub fn start(&self, node_count: u64, tracked: &BTreeSet<u64>) {
        self.lock().book.start_after(node_count, tracked);
    }

    /// Makes holes of the nonces in `from..to` that nothing holds (`NonceState::gaps`).
    pub fn gaps(&self, from: u64, to: u64, held: impl Fn(u64) -> bool) -> usize {
        self.lock().book.gaps(from, to, held)
    }

    /// Whether the hole at `nonce` may be filled now (its last failed fill was long enough
    /// ago: 2 s, doubling to 10 minutes).
    pub fn fill_due(&self, nonce: u64) -> bool {
        self.lock()
            .fill_backoff
            .get(&nonce)
            .is_none_or(|(_, next)| Instant::now() >= *next)
    }

    /// The fill of the hole at `nonce` failed (`false`) or went out (`true`).
    pub fn filled(&self, nonce: u64, ok: bool) {
        let mut inner = self.lock();
        if ok {
            inner.fill_backoff.remove(&nonce);
            return;
        }
        let failures = inner.fill_backoff.get(&nonce).map_or(0, |(n, _)| *n) + 1;
        let wait = Duration::from_secs(2u64 << failures.min(8)).min(Duration::from_secs(600));
        inner
            .fill_backoff
            .insert(nonce, (failures, Instant::now() + wait));
    }

    /// Reserves a nonce: `named` by the client, or the next one.
    pub fn reserve(&self, named: Option<u64>) -> Result<Reservation, NotReserved> {
        let mut inner = self.lock();
        if !inner.book.started() {
            return Err(NotReserved::NotStarted);
        }
        let (nonce, replacement) = match named {
            None => (inner.book.reserve().ok_or(NotReserved::Exhausted)?, false),
            Some(nonce) => match inner.book.reserve_named(nonce) {
                Some(Named::Reserved) => (nonce, false),
                Some(Named::Replacement) => (nonce, true),
                Some(Named::Gap { next }) => return Err(NotReserved::Gap { next }),
                Some(Named::Waiting) => return Err(NotReserved::Waiting),
                None => return Err(NotReserved::Exhausted),
            },
        };
        Ok(Reservation { nonce, replacement })
    }

    /// Holds `nonce`, reserved for this replica in the shared store by `token`, for the
    /// broadcast order. False if this replica still holds it for another request (whose
    /// lease ran out while it was working): the new reservation must be given back.
    pub fn adopt(&self, nonce: u64, token: String) -> bool {
        let mut inner = self.lock();
        if inner.owners.contains_key(&nonce) {
            return false;
        }
        inner.book.adopt(nonce);
        inner.owners.insert(nonce, (token, Instant::now()));
        true
    }

    /// The owner token of `nonce` in the shared store, and how long ago it was reserved.
    pub fn owner(&self, nonce: u64) -> Option<(String, Duration)> {
        self.lock()
            .owners
            .get(&nonce)
            .map(|(token, at)| (token.clone(), at.elapsed()))
    }

    /// Reserves the hole at `nonce`, if it still is one.
    pub fn reserve_hole(&self, nonce: u64) -> bool {
        let mut inner = self.lock();
        inner.book.is_hole(nonce) && inner.book.reserve_named(nonce) == Some(Named::Reserved)
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

    /// Gives back the reserved `nonce`, which was never broadcast. Returns whether it left
    /// a hole, which the caller has filled unless a request takes it first.
    pub fn give_back(&self, nonce: u64) -> bool {
        self.lock().book.give_back(nonce)
    }

    /// The transaction with `nonce` was handed to the node: the nonce is spent.
    pub fn broadcast(&self, nonce: u64) {
        let mut inner = self.lock();
        inner.book.broadcast(nonce);
        inner.owners.remove(&nonce);
    }

    /// Leaves `signed` (with its reserved nonce) for its turn; its outcome comes on the
    /// receiver.
    pub fn deposit(&self, signed: SignedTransaction) -> oneshot::Receiver<Outcome> {
        let (done, outcome) = oneshot::channel();
        let nonce = signed.tx.nonce();
        self.lock().ready.insert(nonce, Ready { signed, done });
        outcome
    }

    /// The next run to broadcast, in nonce order (everything below it broadcast, no hole
    /// below it), claimed for the caller until it drops it; `None` if another task is
    /// broadcasting or nothing is ready.
    pub fn take_run(&self) -> Option<Run<'_>> {
        let mut inner = self.lock();
        if inner.broadcasting {
            return None;
        }
        let Inner { book, ready, .. } = &mut *inner;
        let run: Vec<u64> = book.in_order(|nonce| ready.contains_key(&nonce)).collect();
        if run.is_empty() {
            return None;
        }
        inner.broadcasting = true;
        let batch = run
            .iter()
            .filter_map(|nonce| inner.ready.remove(nonce))
            .collect();
        Some(Run {
            batch,
            pipeline: self,
        })
    }
}
