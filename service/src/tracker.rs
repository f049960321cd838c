//! The transaction tracker's book: every transaction the service broadcast (each version's
//! hash and signed bytes, by account and nonce) until it is mined or another takes its
//! nonce, in a file per account in the service's state folder (locked while the service
//! runs) or in the store several replicas share (`store.rs`), so that a restart resumes
//! watching; and the fees of a replacement (pure). `watch.rs` looks at the chain and acts.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use kms_eth_signer::{Address, SignedTransaction, Transaction};
use serde::{Deserialize, Serialize};

use crate::store::Store;

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Where the tracker keeps its book.
#[derive(Debug)]
enum Kept {
    /// In memory, saved to a file per account in the state folder, each locked while the
    /// service runs.
    Files {
        book: Mutex<Book>,
        dir: PathBuf,
        _locks: Vec<std::fs::File>,
    },
    /// In the replicas' shared store, read afresh each time (another replica may have
    /// changed it).
    Shared(Store),
}

/// The tracker of one service.
#[derive(Debug)]
pub struct Tracker {
    kept: Kept,
    /// The service's accounts.
    accounts: Vec<Address>,
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
                     transactions one nonce. Stop it first, serve the account from one \
                     service, or share a store between them (--state redis://...)",
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
            kept: Kept::Files {
                book: Mutex::new(book),
                dir,
                _locks: locks,
            },
            accounts: accounts.to_vec(),
            settings,
        })
    }

    /// The tracker of `accounts`, kept in the replicas' shared `store`.
    pub fn shared(store: Store, accounts: &[Address], settings: TrackerSettings) -> Tracker {
        Tracker {
            kept: Kept::Shared(store),
            accounts: accounts.to_vec(),
            settings,
        }
    }

    /// The shared store, if the tracker is kept in one.
    pub fn store(&self) -> Option<&Store> {
        match &self.kept {
            Kept::Shared(store) => Some(store),
            Kept::Files { .. } => None,
        }
    }

    fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
        book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A first version of `signed`'s transaction, as the store keeps it (`Store::claim`).
    pub fn first(signed: &SignedTransaction) -> String {
        let mut tracked = Tracked::new();
        tracked.versions.push(Version::of(signed));
        serde_json::to_string(&tracked).unwrap_or_default()
    }

    /// Remembers `signed`, broadcast from `from`: a new transaction, or a new version of the
    /// one with its nonce. A failure is logged, not the request's: the transaction was
    /// broadcast, and a lost record only means it is not watched.
    pub async fn track(&self, from: Address, signed: &SignedTransaction) {
        let version = Version::of(signed);
        let add = |tracked: &mut Tracked| {
            if !tracked.versions.contains(&version) {
                tracked.versions.push(version.clone());
                tracked.since_block = None;
                tracked.stuck = None;
                tracked.failures = 0;
            }
        };
        let nonce = signed.tx.nonce();
        match &self.kept {
            Kept::Files { book, .. } => {
                let mut book = Self::lock(book);
                add(book
                    .pending
                    .entry(from.to_string())
                    .or_default()
                    .entry(nonce)
                    .or_insert_with(Tracked::new));
                self.save(&book, &from.to_string());
            }
            Kept::Shared(store) => {
                let result = store
                    .modify_tracked(from, nonce, |current| {
                        let mut tracked = current
                            .and_then(|json| serde_json::from_str(json).ok())
                            .unwrap_or_else(Tracked::new);
                        add(&mut tracked);
                        Ok(serde_json::to_string(&tracked).ok())
                    })
                    .await;
                if let Err(err) = result {
                    tracing::error!(account = %from, nonce, error = %format!("{err:#}"), "the transaction tracker could not record a transaction in the store: it is not watched");
                }
            }
        }
    }

    /// Writes `account`'s pending transactions through a temporary file and a rename. A
    /// failure is logged, not the request's: the transaction was broadcast, and is watched
    /// while the service runs.
    fn save(&self, book: &Book, account: &str) {
        let Kept::Files { dir, .. } = &self.kept else {
            return;
        };
        let empty = BTreeMap::new();
        let txs = book.pending.get(account).unwrap_or(&empty);
        let path = file_of(dir, account);
        let bytes = serde_json::to_vec(txs).unwrap_or_default();
        if let Err(err) = crate::state::write_private(&path, &bytes, false) {
            tracing::error!(file = %path.display(), error = %format!("{err:#}"), "the transaction tracker could not save its file: a restart would stop watching these transactions");
        }
    }

    /// The pending transactions of `from`, by nonce.
    pub async fn pending(&self, from: Address) -> anyhow::Result<BTreeMap<u64, Tracked>> {
        match &self.kept {
            Kept::Files { book, .. } => Ok(Self::lock(book)
                .pending
                .get(&from.to_string())
                .cloned()
                .unwrap_or_default()),
            Kept::Shared(store) => Ok(store
                .tracked(from)
                .await?
                .into_iter()
                .filter_map(|(nonce, json)| Some((nonce, serde_json::from_str(&json).ok()?)))
                .collect()),
        }
    }

    /// The accounts whose transactions this replica watches now: those with pending
    /// transactions; with a shared store, every account whose watch it holds (one replica
    /// at a time per account, `ttl` at a time).
    pub async fn watched(&self, ttl: Duration) -> anyhow::Result<Vec<Address>> {
        match &self.kept {
            Kept::Files { book, .. } => Ok(Self::lock(book)
                .pending
                .keys()
                .filter_map(|a| a.parse().ok())
                .collect()),
            Kept::Shared(store) => {
                let mut mine = Vec::new();
                for account in &self.accounts {
                    if store.watches(*account, ttl).await? {
                        mine.push(*account);
                    }
                }
                Ok(mine)
            }
        }
    }

    /// `(pending, oldest first_seen)` per account, for the metrics.
    pub async fn summary(&self) -> Vec<(String, usize, Option<u64>)> {
        let mut summary = Vec::new();
        for account in &self.accounts {
            // A store that does not answer shows as no gauge, not as zero pending.
            let Ok(txs) = self.pending(*account).await else {
                continue;
            };
            if !txs.is_empty() {
                summary.push((
                    account.to_string(),
                    txs.len(),
                    txs.values().map(|t| t.first_seen).min(),
                ));
            }
        }
        summary
    }

    /// Changes the pending transaction of `from` with `nonce`, if there is one, and saves.
    pub async fn update(&self, from: Address, nonce: u64, change: impl Fn(&mut Tracked)) {
        match &self.kept {
            Kept::Files { book, .. } => {
                let mut book = Self::lock(book);
                if let Some(tracked) = book
                    .pending
                    .get_mut(&from.to_string())
                    .and_then(|txs| txs.get_mut(&nonce))
                {
                    change(tracked);
                    self.save(&book, &from.to_string());
                }
            }
            Kept::Shared(store) => {
                let result = store
                    .modify_tracked(from, nonce, |current| {
                        let Some(mut tracked) =
                            current.and_then(|json| serde_json::from_str::<Tracked>(json).ok())
                        else {
                            return Ok(current.map(str::to_owned));
                        };
                        change(&mut tracked);
                        Ok(serde_json::to_string(&tracked).ok())
                    })
                    .await;
                if let Err(err) = result {
                    tracing::warn!(account = %from, nonce, error = %format!("{err:#}"), "the transaction tracker could not update a transaction in the store");
                }
            }
        }
    }

    /// The 24-hour ledger now counts `worst` (a replacement's worst case) for the nonce
    /// `nonce` of `from`: kept, so that a replacement that fails is not charged again.
    pub async fn charged(&self, from: Address, nonce: u64, worst: kms_eth_signer::U256) {
        self.update(from, nonce, |t| {
            if t.charged_wei().is_none_or(|before| worst > before) {
                t.charged = Some(worst.to_string());
            }
        })
        .await;
    }

    /// `done` left the tracker: mined, or its nonce taken by another transaction.
    pub async fn finish(&self, from: Address, done: Done) -> anyhow::Result<()> {
        match &self.kept {
            Kept::Files { book, .. } => {
                let mut book = Self::lock(book);
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
                self.save(&book, &from.to_string());
            }
            Kept::Shared(store) => {
                let json = serde_json::to_string(&done).unwrap_or_default();
                store
                    .put_done(from, done.nonce, &done.hashes, &json)
                    .await?;
                store.modify_tracked(from, done.nonce, |_| Ok(None)).await?;
            }
        }
        Ok(())
    }

    /// What the tracker knows of the transaction `hash`: pending (with its account and
    /// nonce), or its `Done` record.
    pub async fn find(&self, hash: &str) -> anyhow::Result<Option<Found>> {
        for account in &self.accounts {
            for (nonce, tracked) in self.pending(*account).await? {
                if tracked
                    .versions
                    .iter()
                    .any(|v| v.hash.eq_ignore_ascii_case(hash))
                {
                    return Ok(Some(Found::Pending(account.to_string(), nonce, tracked)));
                }
            }
        }
        Ok(match &self.kept {
            Kept::Files { book, .. } => Self::lock(book)
                .done
                .iter()
                .rev()
                .find(|done| done.hashes.iter().any(|h| h.eq_ignore_ascii_case(hash)))
                .cloned()
                .map(Found::Done),
            Kept::Shared(store) => done_of(store.done_by_hash(hash).await?),
        })
    }

    /// The same by account and nonce.
    pub async fn find_nonce(&self, from: Address, nonce: u64) -> anyhow::Result<Option<Found>> {
        if let Some(tracked) = self.pending(from).await?.remove(&nonce) {
            return Ok(Some(Found::Pending(from.to_string(), nonce, tracked)));
        }
        let from = from.to_string();
        Ok(match &self.kept {
            Kept::Files { book, .. } => Self::lock(book)
                .done
                .iter()
                .rev()
                .find(|done| done.from == from && done.nonce == nonce)
                .cloned()
                .map(Found::Done),
            Kept::Shared(store) => {
                let address = from
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad account {from}"))?;
                done_of(store.done_by_nonce(address, nonce).await?)
            }
        })
    }
}

/// A `Done` record the store holds.
fn done_of(json: Option<String>) -> Option<Found> {
    json.and_then(|json| serde_json::from_str(&json).ok())
        .map(Found::Done)
}

impl Tracked {
    fn new() -> Tracked {
        Tracked {
            versions: Vec::new(),
            since_block: None,
            first_seen: crate::state::unix_now(),
            stuck: None,
            failures: 0,
            charged: None,
        }
    }
}

impl Version {
    fn of(signed: &SignedTransaction) -> Version {
        Version {
            hash: format!("0x{}", hex::encode(signed.hash)),
            raw: signed.raw_hex(),
        }
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
