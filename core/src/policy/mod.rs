//! The policy engine: what the owner of an account allows it to sign, checked before KMS is
//! asked, because KMS signs a 32-byte digest and cannot see what it means. Every request is
//! judged by what it can make the account lose, not by the fields it names: a transaction by
//! its worst-case cost and the tokens it moves or approves, a message by what it could be
//! mistaken for, typed data by its domain and, for permits, by the approval it grants.
//!
//! A policy is a TOML file with one `[[account]]` block per KMS account (README.md, "Policy
//! reference", lists every rule with its default and unit):
//!
//! ```toml
//! [[account]]
//! address = "0x..."                 # the KMS account this block governs
//! chain_ids = [1, 8453]
//! recipients = ["0x..."]            # allowed `to` addresses (listed tokens need not be)
//! max_cost_per_tx = "0.5ether"      # value + gas limit x max fee (+ blob gas x blob fee)
//! max_cost_per_24h = "2ether"
//! max_fee_per_gas = "200gwei"
//! max_gas_per_tx = 500000
//! contract_creation = false         # refused unless true
//! authorizations = false            # EIP-7702 (type 4) transactions, refused unless true
//! requests_per_minute = 600         # every signing request
//! simulate = false                  # run each transaction on the node first
//! [account.selectors]               # allowed function selectors, per recipient
//! "0x..." = ["0x12345678"]
//! [account.messages]                # personal_sign and eth_sign: refused unless allowed
//! text = true
//! raw = false
//! siwe = [{ domain = "app.example.com", chain_id = 1 }]
//! [[account.typed_data_domains]]    # typed data: refused unless a domain is listed
//! name = "Permit2"
//! chain_id = 1
//! verifying_contract = "0x..."
//! max_deadline = "1h"
//! [[account.tokens]]                # ERC-20 calls and permits, per token contract
//! address = "0x..."
//! decimals = 6
//! recipients = ["0x..."]
//! spenders = ["0x..."]
//! max_amount_per_tx = "100"
//! max_amount_per_24h = "1000"
//! max_approval = "100"
//! ```
//!
//! What can move value is refused unless the policy allows it (contract creation, EIP-7702
//! authorizations, messages, typed data, calls that move or approve a token not listed);
//! caps left out do not restrict. An account without a block is refused everything. Every
//! value is checked when the file is read, and a bad one (an unknown rule, a token or domain
//! listed twice, a rule renamed since) is refused with its line, so a typo never becomes a
//! rule that allows more than it says.
//!
//! Rules that need memory across requests (`max_cost_per_24h`, a token's
//! `max_amount_per_24h`, `requests_per_minute`) are checked against state the front end
//! keeps ([`ledger`] here; the rate by the server), and `simulate` needs a node; a front
//! end without them refuses a policy that has them ([`AccountRules::service_only_rules`]).

mod de;
pub mod ledger;
pub mod messages;
pub mod permits;
pub mod tokens;
pub mod transaction;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use kms_eth_signer::{Address, U256};
use serde::Deserialize;

use crate::UsageError;

pub use ledger::{Ledgers, SpendLedger, DAY_SECS};
pub use messages::{MessageRules, SiweRule};
pub use permits::TypedDataDomain;
pub use tokens::TokenRules;
pub use transaction::Effect;

/// A whole policy file.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    accounts: Vec<AccountRules>,
}

/// The rules of one account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRules {
    #[serde(deserialize_with = "de::address")]
    pub address: Address,
    pub chain_ids: Option<Vec<u64>>,
    #[serde(default, deserialize_with = "de::addresses")]
    pub recipients: Option<Vec<Address>>,
    /// The most one transaction may cost, fees included, in wei.
    #[serde(default, deserialize_with = "de::amount")]
    pub max_cost_per_tx: Option<U256>,
    /// The most transactions may cost in a rolling 24 hours, fees included, in wei.
    #[serde(default, deserialize_with = "de::amount")]
    pub max_cost_per_24h: Option<U256>,
    #[serde(default, deserialize_with = "de::amount")]
    pub max_fee_per_gas: Option<U256>,
    pub max_gas_per_tx: Option<u64>,
    /// Whether transactions without a recipient (contract creations) may be signed.
    #[serde(default)]
    pub contract_creation: bool,
    /// Whether EIP-7702 (type 4) transactions may be signed (never unless the policy says so).
    #[serde(default)]
    pub authorizations: bool,
    pub requests_per_minute: Option<u32>,
    /// Whether each transaction is run on the node before it is signed (refused if it reverts).
    #[serde(default)]
    pub simulate: bool,
    #[serde(default, deserialize_with = "de::selectors")]
    pub selectors: BTreeMap<Address, Vec<[u8; 4]>>,
    #[serde(default)]
    pub messages: MessageRules,
    #[serde(default, deserialize_with = "permits::domains")]
    pub typed_data_domains: Vec<TypedDataDomain>,
    #[serde(default, deserialize_with = "tokens::tokens")]
    pub tokens: Vec<TokenRules>,
    // Rules renamed when they changed meaning: a file that still names them is refused with
    // the line and the new name, rather than read as if the old meaning held.
    #[serde(
        default,
        rename = "max_value_per_tx",
        deserialize_with = "de::retired_max_value_per_tx"
    )]
    _max_value_per_tx: Option<()>,
    #[serde(
        default,
        rename = "max_value_per_24h",
        deserialize_with = "de::retired_max_value_per_24h"
    )]
    _max_value_per_24h: Option<()>,
    #[serde(
        default,
        rename = "eth_sign",
        deserialize_with = "de::retired_eth_sign"
    )]
    _eth_sign: Option<()>,
}

/// A request the policy refuses: the rule, as the policy file names it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: &'static str,
    pub reason: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused by the policy's {} rule: {}",
            self.rule, self.reason
        )
    }
}

impl std::error::Error for Denial {}

pub(crate) fn deny(rule: &'static str, reason: impl Into<String>) -> Denial {
    Denial {
        rule,
        reason: reason.into(),
    }
}

impl Policy {
    /// Reads a policy file's text. The error names the line and the field.
    pub fn parse(text: &str) -> Result<Policy, UsageError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            account: Vec<toml::Spanned<AccountRules>>,
        }
        let file: File =
            toml::from_str(text).map_err(|err| UsageError(format!("invalid policy: {err}")))?;
        let line_of = |span: std::ops::Range<usize>| {
            text.get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1
        };
        let mut accounts: Vec<AccountRules> = Vec::with_capacity(file.account.len());
        for spanned in file.account {
            let line = line_of(spanned.span());
            let rules = spanned.into_inner();
            let invalid = |what: String| {
                UsageError(format!(
                    "invalid policy: the [[account]] block at line {line} ({}): {what}",
                    rules.address
                ))
            };
            if accounts.iter().any(|other| other.address == rules.address) {
                return Err(invalid(
                    "a second block for this account; merge the two".to_owned(),
                ));
            }
            if rules.chain_ids.as_ref().is_some_and(|ids| ids.contains(&0)) {
                return Err(invalid("chain_ids: 0 is not a chain id".to_owned()));
            }
            if rules.max_gas_per_tx == Some(0) {
                return Err(invalid(
                    "max_gas_per_tx = 0 would refuse every transaction; leave it out to not \
                     cap gas, or give the most gas a transaction may use"
                        .to_owned(),
                ));
            }
            accounts.push(rules);
        }
        Ok(Policy { accounts })
    }

    /// The rules of `address`: with none, the account may sign nothing.
    pub fn account(&self, address: Address) -> Result<&AccountRules, Denial> {
        self.accounts
            .iter()
            .find(|rules| rules.address == address)
            .ok_or_else(|| {
                deny(
                    "account",
                    format!("the policy has no [[account]] block for {address}"),
                )
            })
    }

    /// Every account the policy governs.
    pub fn accounts(&self) -> &[AccountRules] {
        &self.accounts
    }
}

impl AccountRules {
    /// The rules that need what only `kms-eth serve` has (state kept across requests, a
    /// node), by name, for front ends without it to refuse.
    pub fn service_only_rules(&self) -> Vec<&'static str> {
        let mut rules = Vec::new();
        if self.max_cost_per_24h.is_some() {
            rules.push("max_cost_per_24h");
        }
        if self.caps_tokens_per_24h() {
            rules.push("tokens.max_amount_per_24h");
        }
        if self.requests_per_minute.is_some() {
            rules.push("requests_per_minute");
        }
        if self.simulate {
            rules.push("simulate");
        }
        rules
    }

    /// Refuses, in words for the user, a policy with rules that only `kms-eth serve` can
    /// enforce, for a front end (the Lambda) that has neither shared state nor a node.
    pub fn check_without_service(&self) -> Result<(), String> {
        let rules = self.service_only_rules();
        if rules.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the Lambda cannot enforce {} for {} (they need state shared by every instance, or              a node); remove them, or sign through `kms-eth serve`",
            rules.join(", "),
            self.address
        ))
    }

    /// Whether any rule of this account keeps a 24-hour ledger.
    pub fn keeps_ledger(&self) -> bool {
        self.max_cost_per_24h.is_some() || self.caps_tokens_per_24h()
    }

    fn caps_tokens_per_24h(&self) -> bool {
        self.tokens
            .iter()
            .any(|token| token.max_amount_per_24h.is_some())
    }

    /// The token rules of the contract at `address`, if it is a listed token.
    pub fn token(&self, address: Address) -> Option<&TokenRules> {
        self.tokens.iter().find(|token| token.address == address)
    }
}
