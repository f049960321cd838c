//! The 24-hour ledgers: what each account's transactions may have cost, and what they moved
//! of each capped token, over a rolling window. A transaction is counted at its worst case
//! when it is signed and never settled down to its real cost: the cap is a bound on what
//! the account can lose, and a receipt read from a node would let the node widen it.

use std::collections::{BTreeMap, VecDeque};

use kms_eth_signer::{format_ether, Address, U256};
use serde::{Deserialize, Serialize};

use super::{deny, AccountRules, Denial, Effect};

/// The rolling window of the 24-hour caps, in seconds.
pub const DAY_SECS: u64 = 24 * 60 * 60;

/// Charges this close to the last one join its entry.
const BUCKET_SECS: u64 = 60;

/// Amounts counted in the last 24 hours: entries of (unix seconds, amount). Serializable,
/// so that a restart does not reset the cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpendLedger {
    entries: VecDeque<Spend>,
}

/// One entry: when (unix seconds) and how much (as decimal text in the state file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Spend {
    at: u64,
    #[serde(with = "wei_text")]
    wei: U256,
}

mod wei_text {
    use kms_eth_signer::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(wei: &U256, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&wei.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<U256, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl SpendLedger {
    /// Counted in the 24 hours before `now`.
    pub fn spent(&self, now: u64) -> U256 {
        self.entries
            .iter()
            .filter(|spend| spend.at + DAY_SECS > now)
            .fold(U256::ZERO, |sum, spend| sum.saturating_add(spend.wei))
    }

    fn forget_before(&mut self, now: u64) {
        while self
            .entries
            .front()
            .is_some_and(|spend| spend.at + DAY_SECS <= now)
        {
            self.entries.pop_front();
        }
    }

    /// Counts `amount` at `now`. Within a minute of the last entry it joins that entry,
    /// which then counts from `now`: the ledger holds at most one entry a minute (a busy
    /// account's ledger stays small enough to rewrite at every charge), and an amount is
    /// only ever kept longer than 24 hours, never forgotten sooner.
    fn record(&mut self, now: u64, amount: U256) {
        if amount.is_zero() {
            return;
        }
        match self.entries.back_mut() {
            Some(last) if now >= last.at && now - last.at < BUCKET_SECS => {
                last.at = now;
                last.wei = last.wei.saturating_add(amount);
            }
            _ => self.entries.push_back(Spend {
                at: now,
                wei: amount,
            }),
        }
    }
}

/// Every ledger of a service, by key: an account's EIP-55 address for its cost, and
/// `account/token` for a token's amounts (the state file's keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Ledgers(BTreeMap<String, SpendLedger>);

impl Ledgers {
    /// Checks `effect` against the account's 24-hour caps (its cost, and each capped token
    /// it moves) and, only if every one allows it, counts it in each.
    pub fn charge(
        &mut self,
        rules: &AccountRules,
        now: u64,
        effect: &Effect,
    ) -> Result<(), Denial> {
        let mut charges: Vec<(String, U256)> = Vec::new();
        if let Some(cap) = rules.max_cost_per_24h {
            let key = rules.address.to_string();
            let total = self.spent(&key, now).saturating_add(effect.cost);
            if total > cap {
                return Err(deny(
                    "max_cost_per_24h",
                    format!(
                        "{} ether in 24 hours (value and fees at their most) would be above {} \
                         ether",
                        format_ether(total),
                        format_ether(cap)
                    ),
                ));
            }
            charges.push((key, effect.cost));
        }
        for (token, cap) in capped_tokens(rules, effect) {
            let key = format!("{}/{token}", rules.address);
            let moved = effect
                .tokens
                .iter()
                .filter(|(t, _)| *t == token)
                .fold(U256::ZERO, |sum, (_, amount)| sum.saturating_add(*amount));
            let total = self.spent(&key, now).saturating_add(moved);
            if total > cap {
                return Err(deny(
                    "tokens.max_amount_per_24h",
                    format!("{total} units of token {token} in 24 hours would be above {cap}"),
                ));
            }
            charges.push((key, moved));
        }
        for (key, amount) in charges {
            let ledger = self.0.entry(key).or_default();
            ledger.forget_before(now);
            ledger.record(now, amount);
        }
        Ok(())
    }

    fn spent(&self, key: &str, now: u64) -> U256 {
        self.0
            .get(key)
            .map_or(U256::ZERO, |ledger| ledger.spent(now))
    }
}

/// The tokens `effect` moves that have a 24-hour cap, each once, with the cap.
fn capped_tokens(rules: &AccountRules, effect: &Effect) -> Vec<(Address, U256)> {
    let mut capped: Vec<(Address, U256)> = Vec::new();
    for (token, _) in &effect.tokens {
        let cap = rules.token(*token).and_then(|t| t.max_amount_per_24h);
        if let Some(cap) = cap {
            if !capped.iter().any(|(t, _)| t == token) {
                capped.push((*token, cap));
            }
        }
    }
    capped
}
