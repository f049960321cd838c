//! The transaction tracker's book (a leaf): every transaction the service broadcast (each
//! version's hash and signed bytes, by account and nonce) until it is mined or another takes
//! its nonce, in a file per account in the service's state folder (locked while the service
//! runs), so that a restart resumes watching; and the fees of a replacement (pure).
//! `watch.rs` looks at the chain and acts.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use kms_eth_signer::{Address, SignedTransaction, Transaction};
use serde::{Deserialize, Serialize};

/// How many finished transactions `kmseth_txStatus` still knows.
const REMEMBERED_DONE: usize = 10_000;

/// The tracker's settings (`serve --track-interval`, `--bump-after-blocks`, `--bump`).
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    pub interval: Duration,
    pub bump_after_blocks: u64,
    pub bump_percent: f64,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            interval: Duration::from_secs(2),
            bump_after_blocks: 3,
            bump_percent: 12.5,
        }
    }
}

/// One version of a tracked transaction: what was signed and broadcast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    pub hash: String,
    /// The signed envelope, 0x hex, to broadcast again.
    pub raw: String,
}

/// A transaction (one nonce of one account) not yet mined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tracked {
    /// Oldest first; the last is the one the node should have.
    pub versions: Vec<Version>,
    /// The block the last version was broadcast at, once the tracker has seen one.
    pub since_block: Option<u64>,
    /// When the first version was broadcast (Unix seconds).
    pub first_seen: u64,
    /// Why the tracker could not replace it, if it tried.
    pub stuck: Option<String>,
    /// How many of the tracker's replacements failed in a row (each doubles the wait).
    #[serde(default)]
    pub failures: u32,
    /// The most the 24-hour ledger counts for this nonce (wei, decimal), if a replacement
    /// was charged.
    #[serde(default)]
    pub charged: Option<String>,
}

impl Tracked {
    /// [`Tracked::charged`] as a number.
    pub fn charged_wei(&self) -> Option<kms_eth_signer::U256> {
        self.charged.as_deref().and_then(|wei| wei.parse().ok())
    }
}

/// A transaction that left the tracker.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub from: String,
    pub nonce: u64,
    pub hashes: Vec<String>,
    /// The version that was mined, if one was; else another transaction took the nonce.
    pub mined: Option<String>,
    pub block: Option<u64>,
}

#[derive(Debug, Default)]
struct Book {
    /// By account (EIP-55) and nonce.
    pending: BTreeMap<String, BTreeMap<u64, Tracked>>,
    done: VecDeque<Done>,
}

/// The tracker of one service.
#[derive(Debug)]
pub struct Tracker {
    book: Mutex<Book>,
    /// The state folder: one `transactions-<account>.json` per account.
    dir: PathBuf,
    /// Each account's lock, held while the service runs.
    _locks: Vec<std::fs::File>,
    pub settings: TrackerSettings,
}

impl Tracker {
    /// The tracker of `accounts`, kept in `dir` (a file per account), resumed from what it
    /// holds. Each account's file is locked while the service runs: two services sending
    /// from one account, each with its own count, would give two transactions one nonce.
    pub fn open(
        dir: PathBuf,
        accounts: &[Address],
        settings: TrackerSettings,
    ) -> anyhow::Result<Tracker> {
        let mut book = Book::default();
        let mut locks = Vec::new();
        for account in accounts {
            let path = file_of(&dir, &account.to_string());
            let lock = crate::lock::hold(&path.with_extension("lock"))?.map_err(|pid| {
                kms_eth_core::UsageError(format!(
                    "another kms-eth serve (pid {}) sends from {account} with the state folder \
                     {}: two services counting one account's nonces apart would give two \
                     transactions one nonce. Stop it first, or serve the account from one \
                     service",
                    crate::lock::shown(pid),
                    dir.display()
                ))
            })?;
            locks.push(lock);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let txs: BTreeMap<u64, Tracked> =
                        serde_json::from_str(&text).with_context(|| {
                            format!(
                                "{} is not a transaction file of kms-eth serve; move it away \
                                 to start afresh (the transactions in it are then no longer \
                                 watched)",
                                path.display()
                            )
                        })?;
                    if !txs.is_empty() {
                        book.pending.insert(account.to_string(), txs);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
            }
        }
        Ok(Tracker {
            book: Mutex::new(book),
            dir,
            _locks: locks,
            settings,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `signed`, broadcast from `from`: a new transaction, or a new version of the
    /// one with its nonce.
    pub fn track(&self, from: Address, signed: &SignedTransaction) {
        let version = Version {
            hash: format!("0x{}", hex::encode(signed.hash)),
            raw: signed.raw_hex(),
        };
        let mut book = self.lock();
        let tracked = book
            .pending
            .entry(from.to_string())
            .or_default()
            .entry(signed.tx.nonce())
            .or_insert_with(|| Tracked {
                versions: Vec::new(),
                since_block: None,
                first_seen: crate::state::unix_now(),
                stuck: None,
                failures: 0,
                charged: None,
            });
        if !tracked.versions.contains(&version) {
            tracked.versions.push(version);
            tracked.since_block = None;
            tracked.stuck = None;
            tracked.failures = 0;
        }
        self.save(&book, &from.to_string());
    }

    /// Writes `account`'s pending transactions through a temporary file and a rename. A
    /// failure is logged, not the request's: the transaction was broadcast, and is watched
    /// while the service runs.
    fn save(&self, book: &Book, account: &str) {
        let empty = BTreeMap::new();
        let txs = book.pending.get(account).unwrap_or(&empty);
        let path = file_of(&self.dir, account);
        let bytes = serde_json::to_vec(txs).unwrap_or_default();
        if let Err(err) = crate::state::write_private(&path, &bytes, false) {
            tracing::error!(file = %path.display(), error = %format!("{err:#}"), "the transaction tracker could not save its file: a restart would stop watching these transactions");
        }
    }

    /// The pending transactions of `from`, by nonce.
    pub fn pending(&self, from: Address) -> BTreeMap<u64, Tracked> {
        self.lock()
            .pending
            .get(&from.to_string())
            .cloned()
            .unwrap_or_default()
    }

    /// Every account with pending transactions.
    pub fn accounts(&self) -> Vec<String> {
        self.lock().pending.keys().cloned().collect()
    }

    /// `(pending, oldest first_seen)` per account, for the metrics.
    pub fn summary(&self) -> Vec<(String, usize, Option<u64>)> {
        self.lock()
            .pending
            .iter()
            .map(|(account, txs)| {
                (
                    account.clone(),
                    txs.len(),
                    txs.values().map(|t| t.first_seen).min(),
                )
            })
            .collect()
    }

    /// Changes the pending transaction of `from` with `nonce`, if there is one, and saves.
    pub fn update(&self, from: &str, nonce: u64, change: impl FnOnce(&mut Tracked)) {
        let mut book = self.lock();
        if let Some(tracked) = book
            .pending
            .get_mut(from)
            .and_then(|txs| txs.get_mut(&nonce))
        {
            change(tracked);
            self.save(&book, from);
        }
    }

    /// The 24-hour ledger now counts `worst` (a replacement's worst case) for the nonce
    /// `nonce` of `from`: kept, so that a replacement that fails is not charged again.
    pub fn charged(&self, from: Address, nonce: u64, worst: kms_eth_signer::U256) {
        self.update(&from.to_string(), nonce, |t| {
            if t.charged_wei().is_none_or(|before| worst > before) {
                t.charged = Some(worst.to_string());
            }
        });
    }

    /// `done` left the tracker: mined, or its nonce taken by another transaction.
    pub fn finish(&self, done: Done) {
        let done_from = done.from.clone();
        let mut book = self.lock();
        if let Some(txs) = book.pending.get_mut(&done.from) {
            txs.remove(&done.nonce);
            if txs.is_empty() {
                book.pending.remove(&done.from);
            }
        }
        book.done.push_back(done);
        while book.done.len() > REMEMBERED_DONE {
            book.done.pop_front();
        }
        self.save(&book, &done_from);
    }

    /// What the tracker knows of the transaction `hash`: `(account, nonce, Some(tracked))`
    /// while pending, or its `Done` record.
    pub fn find(&self, hash: &str) -> Option<Found> {
        let book = self.lock();
        for (from, txs) in &book.pending {
            for (nonce, tracked) in txs {
                if tracked
                    .versions
                    .iter()
                    .any(|v| v.hash.eq_ignore_ascii_case(hash))
                {
                    return Some(Found::Pending(from.clone(), *nonce, tracked.clone()));
                }
            }
        }
        book.done
            .iter()
            .rev()
            .find(|done| done.hashes.iter().any(|h| h.eq_ignore_ascii_case(hash)))
            .cloned()
            .map(Found::Done)
    }

    /// The same by account and nonce.
    pub fn find_nonce(&self, from: Address, nonce: u64) -> Option<Found> {
        let from = from.to_string();
        let book = self.lock();
        if let Some(tracked) = book.pending.get(&from).and_then(|txs| txs.get(&nonce)) {
            return Some(Found::Pending(from, nonce, tracked.clone()));
        }
        book.done
            .iter()
            .rev()
            .find(|done| done.from == from && done.nonce == nonce)
            .cloned()
            .map(Found::Done)
    }
}

/// The file of `account`'s pending transactions in `dir`.
fn file_of(dir: &std::path::Path, account: &str) -> PathBuf {
    dir.join(format!("transactions-{account}.json"))
}

/// A transaction the tracker knows.
#[derive(Debug, Clone)]
pub enum Found {
    Pending(String, u64, Tracked),
    Done(Done),
}

/// The transaction of a version's signed bytes.
pub fn decode(raw: &str) -> Option<Transaction> {
    let bytes = kms_eth_core::txinputs::parse_hex("raw", raw).ok()?;
    SignedTransaction::decode(&bytes)
        .ok()
        .map(|signed| signed.tx)
}

/// The fees of `tx`'s replacement: `(max fee or gas price, priority fee or gas price)`.
pub fn bumped(
    tx: &Transaction,
    bump_percent: f64,
    base_fee: kms_eth_signer::U256,
) -> Option<(kms_eth_signer::U256, kms_eth_signer::U256)> {
    use kms_eth_core::fees::bumped_fee;
    match tx {
        Transaction::Legacy(tx) => {
            let price = bumped_fee(tx.gas_price, bump_percent)?.max(base_fee);
            Some((price, price))
        }
        Transaction::Eip2930(tx) => {
            let price = bumped_fee(tx.gas_price, bump_percent)?.max(base_fee);
            Some((price, price))
        }
        Transaction::Eip1559(kms_eth_signer::Eip1559Tx {
            max_fee_per_gas,
            max_priority_fee_per_gas,
            ..
        })
        | Transaction::Eip7702(kms_eth_signer::Eip7702Tx {
            max_fee_per_gas,
            max_priority_fee_per_gas,
            ..
        })
        | Transaction::Eip4844(kms_eth_signer::Eip4844Tx {
            max_fee_per_gas,
            max_priority_fee_per_gas,
            ..
        }) => {
            let priority = bumped_fee(*max_priority_fee_per_gas, bump_percent)?;
            let floor = base_fee
                .checked_mul(kms_eth_signer::U256::from(2u64))?
                .checked_add(priority)?;
            Some((
                bumped_fee(*max_fee_per_gas, bump_percent)?.max(floor),
                priority,
            ))
        }
    }
}

/// `tx` with the fees of [`bumped`].
pub fn with_fees(
    mut tx: Transaction,
    max_fee: kms_eth_signer::U256,
    priority: kms_eth_signer::U256,
) -> Transaction {
    match &mut tx {
        Transaction::Legacy(tx) => tx.gas_price = max_fee,
        Transaction::Eip2930(tx) => tx.gas_price = max_fee,
        Transaction::Eip1559(tx) => {
            tx.max_fee_per_gas = max_fee;
            tx.max_priority_fee_per_gas = priority;
        }
        Transaction::Eip7702(tx) => {
            tx.max_fee_per_gas = max_fee;
            tx.max_priority_fee_per_gas = priority;
        }
        Transaction::Eip4844(tx) => {
            tx.max_fee_per_gas = max_fee;
            tx.max_priority_fee_per_gas = priority;
            // Blob fees need 100 % more for a replacement.
            tx.max_fee_per_blob_gas = tx
                .max_fee_per_blob_gas
                .saturating_mul(kms_eth_signer::U256::from(2u64));
        }
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_eth_signer::{Eip1559Tx, LegacyTx, U256};

    fn gwei(n: u64) -> U256 {
        U256::from(n) * U256::from(1_000_000_000u64)
    }

    #[test]
    fn a_replacement_pays_the_bump_and_at_least_twice_the_base_fee() {
        let tx = Transaction::Eip1559(Eip1559Tx {
            chain_id: 1,
            nonce: 3,
            max_priority_fee_per_gas: gwei(1),
            max_fee_per_gas: gwei(4),
            gas_limit: 21_000,
            ..Default::default()
        });
        // A calm chain: 10 % on both fees.
        let (max, tip) = bumped(&tx, 10.0, gwei(1)).unwrap();
        assert_eq!(tip, U256::from(1_100_000_000u64));
        assert_eq!(max, U256::from(4_400_000_000u64));
        // The base fee rose to 50 gwei: the max fee follows it.
        let (max, _) = bumped(&tx, 10.0, gwei(50)).unwrap();
        assert_eq!(max, gwei(100) + U256::from(1_100_000_000u64));
        let legacy = Transaction::Legacy(LegacyTx {
            chain_id: Some(1),
            nonce: 0,
            gas_price: gwei(10),
            gas_limit: 21_000,
            ..Default::default()
        });
        assert_eq!(
            bumped(&legacy, 12.5, gwei(1)).unwrap().0,
            U256::from(11_250_000_000u64)
        );
    }
}
