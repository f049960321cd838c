//! The signing service's state: its accounts (a KMS signer and a nonce manager each), the
//! policy (reloadable), the rolling 24-hour spend (kept in a state file, under its lock, or
//! in the store shared with other replicas), request rates, metrics, and what `/readyz`
//! reports. The JSON-RPC methods (`rpc.rs`) work
//! on it; the audit lines it writes are `audit.rs`'s.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::BoxFuture;
use kms_eth_core::policy::{AccountRules, Denial, Ledgers, Policy};
use kms_eth_core::txinputs::TxInputs;
use kms_eth_core::typed_data::TypedDataRequest;
use kms_eth_node::Nodes;
use kms_eth_signer::{Address, MultiRegionSigner, U256};
use serde_json::{json, Value};

use crate::audit;
use crate::book::Pipeline;
use crate::error::{store_failure, RpcFailure, DENIED, INVALID_PARAMS};
use crate::lock;
use crate::methods::RpcSettings;
use crate::metrics::Metrics;
use crate::state::{unix_now, write_private};
use crate::store::{Store, StoreConfig};
use crate::tracker::{Tracker, TrackerSettings};

/// One account the service signs for.
#[derive(Debug)]
pub struct Account {
    pub address: Address,
    pub signer: MultiRegionSigner,
    /// Its sends: nonces reserved, signatures made, broadcasts in nonce order.
    pub pipeline: Pipeline,
    /// When its recent signing requests came, for `requests_per_minute`.
    requests: Mutex<VecDeque<Instant>>,
}

/// What the service may sign.
#[derive(Debug)]
pub enum Rules {
    /// The policy file's rules, and where it is (reloaded on SIGHUP).
    Policy { policy: Policy, path: PathBuf },
    /// `--unrestricted`: everything, said in /readyz and every audit line.
    Unrestricted,
}

/// How `/readyz` learns the state of an account's key in KMS (`Enabled`, `Disabled`, ...),
/// or why it could not (the error's text). The front end that starts the service gives it:
/// the CLI asks the provisioner, which the service does not depend on.
pub trait KeyStates: std::fmt::Debug + Send + Sync {
    /// The state of the key `key_arn`, or the error that kept it from being known.
    fn key_state<'a>(&'a self, key_arn: &'a str) -> BoxFuture<'a, String>;
}

/// The service.
#[derive(Debug)]
pub struct Service {
    /// The upstream nodes, all of chain `chain_id`.
    pub node: Nodes,
    pub chain_id: u64,
    pub fee_cap: U256,
    pub metrics: Metrics,
    /// The JSON-RPC side's settings (the front end's, through `Config`).
    pub rpc: RpcSettings,
    key_states: Box<dyn KeyStates>,
    accounts: BTreeMap<Address, Account>,
    rules: RwLock<Rules>,
    /// The 24-hour ledgers of every account (the state file's content).
    spend: Mutex<Ledgers>,
    state_file: PathBuf,
    /// The state file's lock, taken once a policy caps the 24-hour spend and held while the
    /// service runs (released when it exits).
    lock: Mutex<Option<std::fs::File>>,
    /// How the `simulate` rule asks this node (`eth_simulateV1` until it says it has none).
    simulator: crate::simulate::Simulator,
    /// Every transaction broadcast and not yet mined.
    pub tracker: Tracker,
}

/// What the service keeps across restarts: the 24-hour ledger's file (the tracker's files
/// sit beside it) and how the tracker watches.
#[derive(Debug)]
pub struct Kept {
    pub state_file: PathBuf,
    pub tracker: TrackerSettings,
    /// The store shared with other replicas, which then keeps all of it instead.
    pub store: Option<StoreConfig>,
}

impl Service {
    /// A service for `signers`, with its spend and its pending transactions restored from
    /// the state folder.
    pub fn new(
        node: Nodes,
        chain_id: u64,
        fee_cap: U256,
        key_states: Box<dyn KeyStates>,
        signers: Vec<MultiRegionSigner>,
        rules: Rules,
        kept: Kept,
    ) -> Result<Service> {
        let Kept {
            state_file,
            tracker,
            store,
        } = kept;
        let addresses: Vec<Address> = signers.iter().map(MultiRegionSigner::address).collect();
        if let Some(store) = store {
            // Everything that counts lives in the store: no local file is read or locked.
            let store = Store::open(&store, chain_id)?;
            let tracker = Tracker::shared(store, &addresses, tracker);
            return Ok(Service::with(
                node,
                chain_id,
                fee_cap,
                key_states,
                signers,
                rules,
                (Ledgers::default(), state_file, None),
                tracker,
            ));
        }
        let tracker = Tracker::open(
            state_file
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
            &addresses,
            tracker,
        )?;
        // Only a 24-hour cap keeps state; a service without one neither reads nor locks it.
        let lock = if caps_spend(&rules) {
            Some(lock_state(&state_file)?)
        } else {
            None
        };
        let spend = match std::fs::read_to_string(&state_file) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a spend file of kms-eth serve; move it away to start afresh \
                     (the 24-hour caps then start from zero)",
                    state_file.display()
                )
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ledgers::default(),
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", state_file.display()))
            }
        };
        Ok(Service::with(
            node,
            chain_id,
            fee_cap,
            key_states,
            signers,
            rules,
            (spend, state_file, lock),
            tracker,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn with(
        node: Nodes,
        chain_id: u64,
        fee_cap: U256,
        key_states: Box<dyn KeyStates>,
        signers: Vec<MultiRegionSigner>,
        rules: Rules,
        (spend, state_file, lock): (Ledgers, PathBuf, Option<std::fs::File>),
        tracker: Tracker,
    ) -> Service {
        let accounts = signers
            .into_iter()
            .map(|signer| {
                (
                    signer.address(),
                    Account {
                        address: signer.address(),
                        signer,
                        pipeline: Pipeline::default(),
                        requests: Mutex::default(),
                    },
                )
            })
            .collect();
        let metrics = Metrics::default();
        metrics.watch(node.clone());
        Service {
            node,
            chain_id,
            fee_cap,
            metrics,
            rpc: RpcSettings::default(),
            key_states,
            accounts,
            rules: RwLock::new(rules),
            spend: Mutex::new(spend),
            state_file,
            lock: Mutex::new(lock),
            simulator: crate::simulate::Simulator::default(),
            tracker,
        }
    }

    /// Every account's address.
    pub fn addresses(&self) -> Vec<Address> {
        self.accounts.keys().copied().collect()
    }

    /// Every account.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// The account `address`, or "invalid params" if the service has no such account.
    pub fn account(&self, address: &Address) -> Result<&Account, RpcFailure> {
        self.accounts.get(address).ok_or_else(|| RpcFailure {
            code: INVALID_PARAMS,
            message: format!(
                "{address} is not an account of this service (eth_accounts lists them)"
            ),
            data: None,
        })
    }

    /// Whether the service can do its work: every key enabled in KMS, a node answering on
    /// its chain. Also says whether a policy governs it. The nodes' health check (each node
    /// taken out or put back in) and one KMS call per key: only `readiness.rs`'s background
    /// check calls it, never a request.
    pub async fn readiness(&self) -> (bool, Value) {
        let health = self.node.check().await;
        // "ok" while one node is in; else what is wrong with each.
        let node = if health.iter().any(|h| h.up) {
            json!("ok")
        } else {
            json!(health
                .iter()
                .map(|h| format!("{}: {}", h.node, h.state))
                .collect::<Vec<_>>()
                .join("; "))
        };
        let nodes: Vec<Value> = health
            .iter()
            .map(|h| {
                json!({
                    "url": h.node,
                    "up": h.up,
                    "state": h.state,
                    "block": h.block,
                    "latency_ms": h.latency.as_millis() as u64,
                })
            })
            .collect();
        let mut ready = node == "ok";
        // A replica that cannot reach its store signs nothing: not ready.
        let store = match self.tracker.store() {
            None => Value::Null,
            Some(store) => {
                let answer = store.ping().await;
                self.metrics.store_up(answer.is_ok());
                match answer {
                    Ok(()) => json!("ok"),
                    Err(err) => {
                        ready = false;
                        json!(format!("{err:#}"))
                    }
                }
            }
        };
        let mut accounts = Vec::new();
        for account in self.accounts() {
            let regions = account.signer.check(crate::readiness::REGION_PROBE).await;
            let state = self.key_states.key_state(account.signer.key_arn()).await;
            ready &= state == "Enabled";
            accounts.push(json!({ "address": account.address.to_string(), "key_state": state, "regions": crate::readiness::regions(&regions) }));
        }
        let report = json!({
            "ready": ready,
            "node": node,
            "nodes": nodes,
            "chain_id": self.chain_id,
            "store": store,
            "policy": if self.restricted() { "policy" } else { "unrestricted" },
            "accounts": accounts,
        });
        (ready, report)
    }

    /// Whether a policy file governs the service (false: `--unrestricted`).
    pub fn restricted(&self) -> bool {
        matches!(*self.read_rules(), Rules::Policy { .. })
    }

    fn read_rules(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the policy file again (SIGHUP). A bad file is refused and the running policy
    /// kept: a typo must not open, or close, the service.
    pub fn reload_policy(&self) -> Result<()> {
        let path = match &*self.read_rules() {
            Rules::Policy { path, .. } => path.clone(),
            Rules::Unrestricted => return Ok(()),
        };
        let policy = read_policy(&path)?;
        let rules = Rules::Policy { policy, path };
        if caps_spend(&rules) && self.tracker.store().is_none() {
            let mut lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            if lock.is_none() {
                *lock = Some(lock_state(&self.state_file)?);
            }
        }
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules;
        Ok(())
    }

    /// The rules of `address` under the policy, cloned out of the lock.
    fn rules_of(&self, address: Address) -> Result<Option<AccountRules>, Denial> {
        match &*self.read_rules() {
            Rules::Policy { policy, .. } => policy.account(address).cloned().map(Some),
            Rules::Unrestricted => Ok(None),
        }
    }

    /// The rules of `address` (`None`: unrestricted), or its refusal if the policy has no
    /// block for it.
    fn rules_or_denied(&self, address: Address) -> Result<Option<AccountRules>, RpcFailure> {
        self.rules_of(address)
            .map_err(|d| self.deny(d, address, About::Account))
    }

    /// A refusal of the policy: counted, audited (with the transaction or the chain it was
    /// about, if any) and answered.
    fn deny(&self, denial: Denial, account: Address, about: About<'_>) -> RpcFailure {
        self.metrics.denial(denial.rule);
        let mut record = audit::record(account);
        match about {
            About::Account => {}
            About::Chain(chain_id) => record.chain_id = chain_id,
            About::Transaction(tx) => record = record.transaction(tx),
        }
        audit::write(&record.refused(&denial));
        denial.into()
    }

    /// `requests_per_minute`: the account's signing requests in the last minute.
    pub async fn check_rate(&self, account: &Account) -> Result<(), RpcFailure> {
        let Some(limit) = self
            .rules_of(account.address)
            .map_err(|d| self.deny(d, account.address, About::Account))?
            .and_then(|rules| rules.requests_per_minute)
        else {
            return Ok(());
        };
        let denied = || {
            self.deny(
                Denial {
                    rule: "requests_per_minute",
                    reason: format!("more than {limit} signing requests in a minute"),
                },
                account.address,
                About::Account,
            )
        };
        if let Some(store) = self.tracker.store() {
            return match store.admit(account.address, limit).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(denied()),
                Err(err) => Err(store_failure(err)),
            };
        }
        let mut requests = account.requests.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while requests
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            requests.pop_front();
        }
        if requests.len() >= limit as usize {
            return Err(denied());
        }
        requests.push_back(now);
        Ok(())
    }

    /// Typed data against the account's typed-data and token rules.
    pub fn check_typed_data(
        &self,
        address: Address,
        request: &TypedDataRequest,
    ) -> Result<(), RpcFailure> {
        let about = About::Chain(request.domain.chain_id);
        match self
            .rules_of(address)
            .map_err(|d| self.deny(d, address, about))?
        {
            Some(rules) => rules
                .check_typed_data(request, unix_now())
                .map_err(|d| self.deny(d, address, about)),
            None => Ok(()),
        }
    }

    /// A message for `personal_sign` or `eth_sign` against the account's message rules.
    pub fn check_message(&self, address: Address, data: &[u8]) -> Result<(), RpcFailure> {
        match self
            .rules_of(address)
            .map_err(|d| self.deny(d, address, About::Account))?
        {
            Some(rules) => rules
                .check_message(data)
                .map_err(|d| self.deny(d, address, About::Account)),
            None => Ok(()),
        }
    }

    /// The transaction against every rule (its worst-case effect), run on the node first if
    /// the policy says `simulate`, and then its effect against the 24-hour caps, which it is
    /// counted in (`spend`), before KMS is asked. The ledger is written before the answer: a
    /// restart does not forget it.
    pub async fn check_policy(
        &self,
        address: Address,
        inputs: &TxInputs,
        spend: bool,
    ) -> Result<(), RpcFailure> {
        let Some(rules) = self.rules_or_denied(address)? else {
            return Ok(());
        };
        // The rules do not look at the nonce, which may not be assigned yet.
        let mut probe = inputs.clone();
        probe.nonce.get_or_insert(0);
        let tx = probe.complete().map_err(|err| RpcFailure {
            code: INVALID_PARAMS,
            message: err.message(&kms_eth_core::input::JsonRpc),
            data: None,
        })?;
        let about = About::Transaction(&tx);
        let effect = rules
            .check_transaction(&tx)
            .map_err(|d| self.deny(d, address, about))?;
        if rules.simulate {
            self.simulator
                .simulate(&self.node, address, &tx)
                .await
                .map_err(|d| self.deny(d, address, about))?;
        }
        if spend {
            self.charge(&rules, &effect, about).await?;
        }
        Ok(())
    }

    /// A replacement `tx` of a pending transaction whose costliest version could take
    /// `previous_worst`: judged by every rule, and counted in the 24-hour ledger only above
    /// that (the nonce is mined once, whichever version wins; its tokens were counted with
    /// the first).
    pub async fn check_replacement(
        &self,
        address: Address,
        tx: &kms_eth_signer::Transaction,
        previous_worst: U256,
    ) -> Result<(), RpcFailure> {
        let Some(rules) = self.rules_or_denied(address)? else {
            return Ok(());
        };
        let about = About::Transaction(tx);
        let effect = rules
            .check_transaction(tx)
            .map_err(|d| self.deny(d, address, about))?;
        let above = kms_eth_core::policy::Effect {
            cost: effect.cost.saturating_sub(previous_worst),
            tokens: Vec::new(),
        };
        self.charge(&rules, &above, about).await
    }

    /// Counts `effect` in the account's 24-hour ledgers, if its rules keep any, and saves
    /// them before anything is signed.
    async fn charge(
        &self,
        rules: &AccountRules,
        effect: &kms_eth_core::policy::Effect,
        about: About<'_>,
    ) -> Result<(), RpcFailure> {
        if !rules.keeps_ledger() {
            return Ok(());
        }
        if let Some(store) = self.tracker.store() {
            // Read, charged and written back in one step on the store: replicas racing for
            // the last of a cap cannot both have it. Counted by the store's clock, which
            // every replica reads alike.
            let now = store.now().await.map_err(store_failure)?;
            let charged = store
                .modify_ledger(rules.address, |current| {
                    let mut ledgers: Ledgers = match current {
                        Some(json) => serde_json::from_str(json).map_err(|err| {
                            Err(format!(
                                "the 24-hour ledger in the store is unreadable: {err}"
                            ))
                        })?,
                        None => Ledgers::default(),
                    };
                    ledgers.charge(rules, now, effect).map_err(Ok)?;
                    Ok(serde_json::to_string(&ledgers).ok())
                })
                .await
                .map_err(store_failure)?;
            return match charged {
                Ok(()) => Ok(()),
                Err(Ok(denial)) => Err(self.deny(denial, rules.address, about)),
                Err(Err(unreadable)) => Err(store_failure(anyhow::anyhow!(unreadable))),
            };
        }
        let mut ledgers = self.spend.lock().unwrap_or_else(|p| p.into_inner());
        ledgers
            .charge(rules, unix_now(), effect)
            .map_err(|d| self.deny(d, rules.address, about))?;
        if let Err(err) = write_private(
            &self.state_file,
            &serde_json::to_vec(&*ledgers).unwrap_or_default(),
            true,
        ) {
            // Refuse rather than sign with a cap that a restart would forget.
            return Err(RpcFailure {
                code: DENIED,
                message: format!(
                    "the 24-hour ledger could not be saved to {}: {err:#}",
                    self.state_file.display()
                ),
                data: None,
            });
        }
        Ok(())
    }

    /// The audit record of a signature: a transaction by its hash (with its fields), a
    /// message or typed data by its digest, and whether a policy allowed it.
    pub fn audit_signed(&self, account: Address, what: Signed<'_>, kms_request_id: Option<String>) {
        let mut record = audit::record(account);
        let signed = match what {
            Signed::Digest { digest, chain_id } => {
                record.chain_id = chain_id;
                digest
            }
            Signed::Transaction {
                tx,
                hash,
                authorizations,
            } => {
                record = record.transaction(tx);
                record.authorizations = authorizations;
                hash
            }
        };
        audit::write(&record.signed(signed, kms_request_id, self.restricted()));
    }
}

/// What a refusal was about, for its audit record.
#[derive(Debug, Clone, Copy)]
enum About<'a> {
    Account,
    Chain(Option<u64>),
    Transaction(&'a kms_eth_signer::Transaction),
}

/// What was signed, for the audit record.
#[derive(Debug)]
pub enum Signed<'a> {
    /// A message's or typed data's digest (0x hex), and the typed data's chain.
    Digest {
        digest: String,
        chain_id: Option<u64>,
    },
    /// A transaction, its hash (0x hex), and an EIP-7702 transaction's authorizations.
    Transaction {
        tx: &'a kms_eth_signer::Transaction,
        hash: String,
        authorizations: Option<Value>,
    },
}

/// Reads and checks a policy file.
pub fn read_policy(path: &std::path::Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        kms_eth_core::UsageError(format!("invalid --policy {}: {err}", path.display()))
    })?;
    Policy::parse(&text)
        .map_err(|err| kms_eth_core::UsageError(format!("{} ({})", err.0, path.display())).into())
}

/// Whether `rules` cap some account's 24-hour spend (the one rule that keeps state).
fn caps_spend(rules: &Rules) -> bool {
    match rules {
        Rules::Policy { policy, .. } => policy.accounts().iter().any(AccountRules::keeps_ledger),
        Rules::Unrestricted => false,
    }
}

/// Takes the lock of `state_file` (`<state file>.lock`), which one service holds while it
/// runs: two services counting spend in one file would each allow the whole 24-hour cap,
/// since each keeps its ledger in memory and overwrites the other's.
fn lock_state(state_file: &std::path::Path) -> Result<std::fs::File> {
    lock::hold(&state_file.with_extension("lock"))?.map_err(|pid| {
        kms_eth_core::UsageError(format!(
            "another kms-eth serve (pid {}) keeps its 24-hour ledger in {}: two services \
             counting the same accounts apart would each allow the whole cap. Stop it first \
             (a service for other accounts only may have its own --state-dir)",
            lock::shown(pid),
            state_file.display()
        ))
        .into()
    })
}
