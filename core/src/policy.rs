//! The policy engine: what the owner of an account allows it to sign, checked before KMS is
//! asked, because KMS signs a 32-byte digest and cannot see what it means.
//!
//! A policy is a TOML file with one `[[account]]` block per KMS account:
//!
//! ```toml
//! [[account]]
//! address = "0x..."                 # the KMS account this block governs
//! chain_ids = [1, 8453]
//! recipients = ["0x..."]            # allowed `to` addresses
//! max_value_per_tx = "0.5ether"
//! max_value_per_24h = "2ether"
//! max_fee_per_gas = "200gwei"
//! contract_creation = false
//! eth_sign = false                  # raw 32-byte eth_sign
//! authorizations = false            # EIP-7702 (type 4) transactions
//! requests_per_minute = 600
//! [account.selectors]               # allowed function selectors, per recipient
//! "0x..." = ["0xa9059cbb"]
//! [[account.typed_data_domains]]
//! name = "Permit2"
//! chain_id = 1
//! verifying_contract = "0x..."
//! ```
//!
//! A rule left out does not restrict, except `eth_sign`, which is refused unless allowed
//! (a raw digest can be a transaction's hash), and `authorizations`: an EIP-7702
//! transaction carries authorizations the other rules cannot see (one signed by this very
//! account hands it, and its funds, to a contract; others make it pay 25,000 gas each for
//! someone else's delegation), so it is refused unless allowed. An account without a block is refused
//! everything: a policy names what it allows. Every value is checked when the file is read,
//! and a bad one is refused with its line and field, so a typo never becomes a rule that
//! allows more than it says.
//!
//! Rules that need memory across requests (`max_value_per_24h`, `requests_per_minute`) are
//! checked against state the front end keeps ([`SpendLedger`] here; the rate by the
//! server); a front end that cannot keep it refuses a policy that has them
//! ([`AccountRules::stateful_rules`]).

use std::collections::{BTreeMap, VecDeque};

use kms_eth_signer::{format_ether, format_gwei, parse_amount, Address, Transaction, U256};
use serde::{Deserialize, Deserializer, Serialize};

use crate::UsageError;

/// A whole policy file.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    accounts: Vec<AccountRules>,
}

/// The rules of one account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRules {
    #[serde(deserialize_with = "address")]
    pub address: Address,
    pub chain_ids: Option<Vec<u64>>,
    #[serde(default, deserialize_with = "addresses")]
    pub recipients: Option<Vec<Address>>,
    #[serde(default, deserialize_with = "amount")]
    pub max_value_per_tx: Option<U256>,
    #[serde(default, deserialize_with = "amount")]
    pub max_value_per_24h: Option<U256>,
    #[serde(default, deserialize_with = "amount")]
    pub max_fee_per_gas: Option<U256>,
    pub contract_creation: Option<bool>,
    #[serde(default)]
    pub eth_sign: bool,
    /// Whether EIP-7702 (type 4) transactions may be signed (never unless the policy says so).
    #[serde(default)]
    pub authorizations: bool,
    pub requests_per_minute: Option<u32>,
    #[serde(default, deserialize_with = "selectors")]
    pub selectors: BTreeMap<Address, Vec<[u8; 4]>>,
    #[serde(default)]
    pub typed_data_domains: Vec<TypedDataDomain>,
}

/// An EIP-712 domain the account may sign typed data for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedDataDomain {
    pub name: Option<String>,
    pub chain_id: Option<u64>,
    #[serde(default, deserialize_with = "optional_address")]
    pub verifying_contract: Option<Address>,
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

fn deny(rule: &'static str, reason: impl Into<String>) -> Denial {
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
            account: Vec<AccountRules>,
        }
        let file: File =
            toml::from_str(text).map_err(|err| UsageError(format!("invalid policy: {err}")))?;
        for (index, rules) in file.account.iter().enumerate() {
            if file.account[..index]
                .iter()
                .any(|other| other.address == rules.address)
            {
                return Err(UsageError(format!(
                    "invalid policy: account {} has two [[account]] blocks; merge them",
                    rules.address
                )));
            }
            if rules.chain_ids.as_ref().is_some_and(|ids| ids.contains(&0)) {
                return Err(UsageError(format!(
                    "invalid policy: account {}: chain_ids: 0 is not a chain id",
                    rules.address
                )));
            }
        }
        Ok(Policy {
            accounts: file.account,
        })
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
    /// Checks a transaction against every rule that needs no memory of earlier requests.
    pub fn check_transaction(&self, tx: &Transaction) -> Result<(), Denial> {
        if let Transaction::Eip7702(tx) = tx {
            if !self.authorizations {
                return Err(deny(
                    "authorizations",
                    format!(
                        "EIP-7702 transactions (carrying {} authorization(s), which set \
                         accounts' code) are not allowed for this account; the policy must say \
                         authorizations = true",
                        tx.authorization_list.len()
                    ),
                ));
            }
        }
        let chain_id = tx.chain_id();
        if let Some(allowed) = &self.chain_ids {
            if !chain_id.is_some_and(|id| allowed.contains(&id)) {
                return Err(deny(
                    "chain_ids",
                    format!(
                        "chain {} is not one of {allowed:?}",
                        chain_id.map_or_else(|| "none".to_owned(), |id| id.to_string())
                    ),
                ));
            }
        }
        match tx.to() {
            None if self.contract_creation == Some(false) => {
                return Err(deny(
                    "contract_creation",
                    "contract creation is not allowed",
                ))
            }
            None => {}
            Some(to) => {
                if let Some(allowed) = &self.recipients {
                    if !allowed.contains(&to) {
                        return Err(deny(
                            "recipients",
                            format!("{to} is not an allowed recipient"),
                        ));
                    }
                }
                if let Some(selectors) = self.selectors.get(&to) {
                    let input = tx.input();
                    if !input.is_empty() {
                        let called = input.get(..4).unwrap_or(input);
                        if !selectors.iter().any(|s| s[..] == *called) {
                            return Err(deny(
                                "selectors",
                                format!(
                                    "function 0x{} is not allowed on {to}",
                                    hex::encode(called)
                                ),
                            ));
                        }
                    }
                }
            }
        }
        if let Some(cap) = self.max_value_per_tx {
            if tx.value() > cap {
                return Err(deny(
                    "max_value_per_tx",
                    format!(
                        "{} ether is above {} ether",
                        format_ether(tx.value()),
                        format_ether(cap)
                    ),
                ));
            }
        }
        if let Some(cap) = self.max_fee_per_gas {
            let fee = tx.max_price_per_gas();
            if fee > cap {
                return Err(deny(
                    "max_fee_per_gas",
                    format!(
                        "{} gwei per gas is above {} gwei",
                        format_gwei(fee),
                        format_gwei(cap)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Typed data's domain against `typed_data_domains`: with any listed, the domain must
    /// match one (each field a listed domain gives must be equal).
    pub fn check_typed_data(&self, domain: &crate::typed_data::Domain) -> Result<(), Denial> {
        if self.typed_data_domains.is_empty() {
            return Ok(());
        }
        let matches = |allowed: &TypedDataDomain| {
            allowed
                .name
                .as_ref()
                .is_none_or(|name| domain.name.as_ref() == Some(name))
                && allowed
                    .chain_id
                    .is_none_or(|id| domain.chain_id == Some(id))
                && allowed
                    .verifying_contract
                    .is_none_or(|contract| domain.verifying_contract == Some(contract))
        };
        if self.typed_data_domains.iter().any(matches) {
            return Ok(());
        }
        Err(deny(
            "typed_data_domains",
            format!(
                "the domain {:?} on chain {} at {} is not one of the allowed domains",
                domain.name.as_deref().unwrap_or(""),
                domain
                    .chain_id
                    .map_or_else(|| "none".to_owned(), |id| id.to_string()),
                domain
                    .verifying_contract
                    .map_or_else(|| "no contract".to_owned(), |a| a.to_string())
            ),
        ))
    }

    /// Whether a raw 32-byte `eth_sign` is allowed (never unless the policy says so).
    pub fn check_eth_sign(&self) -> Result<(), Denial> {
        if self.eth_sign {
            Ok(())
        } else {
            Err(deny(
                "eth_sign",
                "signing a raw digest is not allowed: it can be a transaction's hash",
            ))
        }
    }

    /// The rules that need state kept across requests, by name, for front ends that cannot
    /// keep it to refuse.
    pub fn stateful_rules(&self) -> Vec<&'static str> {
        let mut rules = Vec::new();
        if self.max_value_per_24h.is_some() {
            rules.push("max_value_per_24h");
        }
        if self.requests_per_minute.is_some() {
            rules.push("requests_per_minute");
        }
        rules
    }
}

/// Value spent in the last 24 hours, for `max_value_per_24h`: entries of (unix seconds,
/// wei). Serializable, so that a restart does not reset the cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpendLedger {
    entries: VecDeque<Spend>,
}

/// One spend: when (unix seconds) and how much (wei, as decimal text in the state file).
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

/// The rolling window of `max_value_per_24h`.
pub const DAY_SECS: u64 = 24 * 60 * 60;

impl SpendLedger {
    /// Spent in the 24 hours before `now`.
    pub fn spent(&self, now: u64) -> U256 {
        self.entries
            .iter()
            .filter(|spend| spend.at + DAY_SECS > now)
            .fold(U256::ZERO, |sum, spend| sum.saturating_add(spend.wei))
    }

    /// Checks `value` against the account's 24-hour cap and, if allowed, records it.
    pub fn spend(&mut self, rules: &AccountRules, now: u64, value: U256) -> Result<(), Denial> {
        while self
            .entries
            .front()
            .is_some_and(|spend| spend.at + DAY_SECS <= now)
        {
            self.entries.pop_front();
        }
        if let Some(cap) = rules.max_value_per_24h {
            let total = self.spent(now).saturating_add(value);
            if total > cap {
                return Err(deny(
                    "max_value_per_24h",
                    format!(
                        "{} ether in 24 hours would be above {} ether",
                        format_ether(total),
                        format_ether(cap)
                    ),
                ));
            }
        }
        if !value.is_zero() {
            self.entries.push_back(Spend {
                at: now,
                wei: value,
            });
        }
        Ok(())
    }
}

fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn optional_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Address>, D::Error> {
    address(deserializer).map(Some)
}

fn addresses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<Address>>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<U256>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_amount(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn selectors<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<Address, Vec<[u8; 4]>>, D::Error> {
    let table = BTreeMap::<String, Vec<String>>::deserialize(deserializer)?;
    table
        .into_iter()
        .map(|(to, list)| {
            let to: Address = to.parse().map_err(serde::de::Error::custom)?;
            let list = list
                .iter()
                .map(|selector| {
                    selector
                        .strip_prefix("0x")
                        .and_then(|digits| hex::decode(digits).ok())
                        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                        .ok_or_else(|| {
                            serde::de::Error::custom(format!(
                                "selector {selector:?} is not 0x and 8 hex digits"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok((to, list))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_eth_signer::{Eip1559Tx, LegacyTx};

    const ME: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const FRIEND: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    const OTHER: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";

    fn policy(rules: &str) -> Policy {
        Policy::parse(&format!("[[account]]\naddress = \"{ME}\"\n{rules}"))
            .unwrap_or_else(|err| panic!("{rules}: {err}"))
    }

    fn transfer(to: Option<&str>, value: u64, data: &[u8]) -> Transaction {
        Transaction::Eip1559(Eip1559Tx {
            chain_id: 1,
            nonce: 0,
            max_priority_fee_per_gas: U256::from(1_000_000_000u64),
            max_fee_per_gas: U256::from(30_000_000_000u64),
            gas_limit: 21_000,
            to: to.map(|a| a.parse().unwrap()),
            value: U256::from(value),
            input: data.to_vec(),
            access_list: Vec::new(),
        })
    }

    fn rule_of(policy: &Policy, tx: &Transaction) -> Option<&'static str> {
        policy
            .account(ME.parse().unwrap())
            .unwrap()
            .check_transaction(tx)
            .err()
            .map(|denial| denial.rule)
    }

    #[test]
    fn each_rule_denies_what_it_names_and_allows_the_rest() {
        let p = policy(&format!(
            "chain_ids = [1]\nrecipients = [\"{FRIEND}\"]\nmax_value_per_tx = \"1gwei\"\n\
             max_fee_per_gas = \"20gwei\"\ncontract_creation = false\n\
             [account.selectors]\n\"{FRIEND}\" = [\"0xa9059cbb\"]"
        ));
        let ok = transfer(Some(FRIEND), 1_000_000_000, &[]);
        // max_fee_per_gas is 30 gwei in `transfer`: the fee rule speaks first.
        assert_eq!(rule_of(&p, &ok), Some("max_fee_per_gas"));
        let p = policy(&format!(
            "chain_ids = [1]\nrecipients = [\"{FRIEND}\"]\nmax_value_per_tx = \"1gwei\"\n\
             contract_creation = false\n[account.selectors]\n\"{FRIEND}\" = [\"0xa9059cbb\"]"
        ));
        assert_eq!(rule_of(&p, &ok), None);
        assert_eq!(
            rule_of(&p, &transfer(Some(OTHER), 1, &[])),
            Some("recipients")
        );
        assert_eq!(
            rule_of(&p, &transfer(Some(FRIEND), 1_000_000_001, &[])),
            Some("max_value_per_tx")
        );
        assert_eq!(
            rule_of(&p, &transfer(None, 0, &[0x60])),
            Some("contract_creation")
        );
        assert_eq!(
            rule_of(&p, &transfer(Some(FRIEND), 0, &[0x09, 0x5e, 0xa7, 0xb3])),
            Some("selectors")
        );
        assert_eq!(
            rule_of(&p, &transfer(Some(FRIEND), 0, &[0xa9, 0x05, 0x9c, 0xbb, 0])),
            None
        );
        let legacy = Transaction::Legacy(LegacyTx {
            chain_id: Some(5),
            nonce: 0,
            gas_price: U256::from(1u8),
            gas_limit: 21_000,
            to: Some(FRIEND.parse().unwrap()),
            value: U256::ZERO,
            input: Vec::new(),
        });
        assert_eq!(rule_of(&p, &legacy), Some("chain_ids"));
    }

    #[test]
    fn eip_7702_transactions_are_refused_unless_the_policy_allows_authorizations() {
        let Transaction::Eip1559(base) = transfer(Some(FRIEND), 1, &[]) else {
            unreachable!()
        };
        let delegation = Transaction::Eip7702(kms_eth_signer::Eip7702Tx {
            chain_id: base.chain_id,
            nonce: base.nonce,
            max_priority_fee_per_gas: base.max_priority_fee_per_gas,
            max_fee_per_gas: base.max_fee_per_gas,
            gas_limit: 60_000,
            to: FRIEND.parse().unwrap(),
            value: base.value,
            input: Vec::new(),
            access_list: Vec::new(),
            authorization_list: Vec::new(),
        });
        // Even a policy that restricts nothing else refuses it...
        assert_eq!(rule_of(&policy(""), &delegation), Some("authorizations"));
        // ...until it says so; then the other rules still apply to the transaction.
        assert_eq!(rule_of(&policy("authorizations = true"), &delegation), None);
        assert_eq!(
            rule_of(
                &policy(&format!(
                    "authorizations = true
recipients = [\"{OTHER}\"]"
                )),
                &delegation
            ),
            Some("recipients")
        );
    }

    #[test]
    fn a_rule_left_out_does_not_restrict_but_eth_sign_is_off_unless_allowed() {
        let p = policy("");
        assert_eq!(rule_of(&p, &transfer(None, u64::MAX, &[1])), None);
        let rules = p.account(ME.parse().unwrap()).unwrap();
        assert_eq!(rules.check_eth_sign().unwrap_err().rule, "eth_sign");
        assert!(policy("eth_sign = true")
            .account(ME.parse().unwrap())
            .unwrap()
            .check_eth_sign()
            .is_ok());
        assert_eq!(
            p.account(OTHER.parse().unwrap()).unwrap_err().rule,
            "account"
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_line_and_field() {
        for (text, expected) in [
            (format!("[[account]]\naddress = \"{ME}\"\nchain_id = [1]"), "unknown field `chain_id`"),
            (format!("[[account]]\naddress = \"{ME}\"\n\nmax_value_per_tx = \"1btc\""), "line 4"),
            ("[[account]]\naddress = \"0x1234\"".to_owned(), "line 2"),
            (format!("[[account]]\naddress = \"{ME}\"\nrecipients = [\"nope\"]"), "recipients"),
            (format!("[[account]]\naddress = \"{ME}\"\n[account.selectors]\n\"{FRIEND}\" = [\"0xa9\"]"), "8 hex digits"),
            (format!("[[account]]\naddress = \"{ME}\"\nchain_ids = [0]"), "0 is not a chain id"),
            (format!("[[account]]\naddress = \"{ME}\"\n[[account]]\naddress = \"{ME}\""), "two [[account]] blocks"),
            (format!("[[account]]\naddress = \"{ME}\"\neth_sign = \"yes\""), "eth_sign"),
            ("[[acount]]".to_owned(), "unknown field `acount`"),
        ] {
            let err = Policy::parse(&text).expect_err(&text).to_string();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }

    #[test]
    fn typed_data_domains_allow_only_the_domains_listed() {
        use crate::typed_data::Domain;
        let p = policy(&format!(
            "[[account.typed_data_domains]]\nname = \"Permit2\"\nchain_id = 1\nverifying_contract = \"{FRIEND}\""
        ));
        let rules = p.account(ME.parse().unwrap()).unwrap();
        let permit2 = Domain {
            name: Some("Permit2".to_owned()),
            chain_id: Some(1),
            verifying_contract: Some(FRIEND.parse().unwrap()),
        };
        assert!(rules.check_typed_data(&permit2).is_ok());
        for other in [
            Domain {
                chain_id: Some(5),
                ..permit2.clone()
            },
            Domain {
                name: Some("Seaport".to_owned()),
                ..permit2.clone()
            },
            Domain {
                verifying_contract: Some(OTHER.parse().unwrap()),
                ..permit2.clone()
            },
            Domain::default(),
        ] {
            assert_eq!(
                rules.check_typed_data(&other).unwrap_err().rule,
                "typed_data_domains"
            );
        }
        assert!(policy("")
            .account(ME.parse().unwrap())
            .unwrap()
            .check_typed_data(&Domain::default())
            .is_ok());
    }

    #[test]
    fn the_24_hour_cap_rolls_and_survives_serialization() {
        let p = policy("max_value_per_24h = \"10wei\"");
        let rules = p.account(ME.parse().unwrap()).unwrap();
        let mut ledger = SpendLedger::default();
        ledger.spend(rules, 1_000, U256::from(6u8)).unwrap();
        assert_eq!(
            ledger
                .spend(rules, 2_000, U256::from(5u8))
                .unwrap_err()
                .rule,
            "max_value_per_24h"
        );
        let saved = serde_json::to_string(&ledger).unwrap();
        let mut restored: SpendLedger = serde_json::from_str(&saved).unwrap();
        assert_eq!(restored, ledger);
        assert!(restored.spend(rules, 2_000, U256::from(4u8)).is_ok());
        // A day after the first spend, it no longer counts.
        assert!(restored
            .spend(rules, 1_000 + DAY_SECS, U256::from(6u8))
            .is_ok());
        assert_eq!(rules.stateful_rules(), ["max_value_per_24h"]);
    }
}
