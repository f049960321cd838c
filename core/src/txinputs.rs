//! Transaction inputs checked before any network call: from the command line's transaction
//! flags, or from a sign event of the original design (`--event`). Every error is a
//! [`UsageError`] naming the flag or field, so the command line exits 2 on it.
//!
//! The event contract here is the one every front end answers; the fuzz targets in `fuzz/`
//! drive its parser directly.

use anyhow::Result;
use kms_eth_signer::{
    parse_amount, AccessListItem, Address, Eip1559Tx, Eip2930Tx, LegacyTx, Transaction, U256,
};
use serde_json::{Map, Value};

use crate::UsageError;

/// A usage error about one flag or field.
pub fn bad(field: &str, problem: impl std::fmt::Display) -> anyhow::Error {
    UsageError(format!("invalid {field}: {problem}")).into()
}

/// `value`, or a usage error naming the missing flag.
fn need<T>(value: Option<T>, flag: &str) -> Result<T, UsageError> {
    value.ok_or_else(|| {
        UsageError(format!(
            "missing {flag}: sign needs it (send can ask the node)"
        ))
    })
}

/// The transaction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Legacy,
    Eip2930,
    Eip1559,
}

/// Call data or other raw bytes. (An alias, not `Vec<u8>` spelt out, so that clap's derive
/// takes a flag of this type as one value rather than a list.)
pub type Bytes = Vec<u8>;

/// An EIP-2930 access list (an alias for the same reason as [`Bytes`]).
pub type AccessList = Vec<AccessListItem>;

/// A transaction as given: every given field checked, the rest left for the node (`send`)
/// or reported missing (`sign`).
#[derive(Debug, Clone)]
pub struct TxInputs {
    pub kind: Kind,
    pub to: Option<Address>,
    pub value: U256,
    pub nonce: Option<u64>,
    pub chain_id: Option<u64>,
    pub gas_limit: Option<u64>,
    pub max_fee_per_gas: Option<U256>,
    pub max_priority_fee_per_gas: Option<U256>,
    pub gas_price: Option<U256>,
    pub data: Bytes,
    pub access_list: AccessList,
}

// The parsers below take the flag or field name first, so that every error names it; the
// command line uses them as clap value parsers, the event parser field by field.

/// `legacy`/`0`, `2930`/`1`, `1559`/`2`.
pub fn parse_kind(field: &str, text: &str) -> Result<Kind> {
    match text.trim().to_ascii_lowercase().as_str() {
        "legacy" | "0" => Ok(Kind::Legacy),
        "2930" | "1" => Ok(Kind::Eip2930),
        "1559" | "2" => Ok(Kind::Eip1559),
        other => Err(bad(
            field,
            format!("{other:?} is not a transaction type; use legacy, 2930 or 1559"),
        )),
    }
}

/// An address, EIP-55 checksummed or all one case.
pub fn parse_address(field: &str, text: &str) -> Result<Address> {
    text.trim().parse().map_err(|err| bad(field, err))
}

/// A whole number below 2^64 (nonces, chain ids, gas limits).
pub fn parse_u64(field: &str, text: &str) -> Result<u64> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(bad(field, format!("{text:?} is negative")));
    }
    text.parse()
        .map_err(|_| bad(field, format!("{text:?} is not a whole number below 2^64")))
}

/// An amount with a unit (`0.01ether`, `5gwei`) or plain wei.
pub fn parse_wei(field: &str, text: &str) -> Result<U256> {
    parse_amount(text).map_err(|err| bad(field, err))
}

/// 0x-prefixed hex bytes.
pub fn parse_hex(field: &str, text: &str) -> Result<Bytes> {
    let digits = text
        .trim()
        .strip_prefix("0x")
        .ok_or_else(|| bad(field, "hex data must start with 0x"))?;
    hex::decode(digits).map_err(|err| bad(field, format!("not hex: {err}")))
}

/// An access list as JSON: `[{"address":"0x...","storageKeys":["0x..."]}]`.
pub fn parse_access_list(field: &str, text: &str) -> Result<AccessList> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Item {
        address: String,
        #[serde(default)]
        storage_keys: Vec<String>,
    }
    let items: Vec<Item> = serde_json::from_str(text).map_err(|err| bad(field, err))?;
    items
        .into_iter()
        .map(|item| {
            Ok(AccessListItem {
                address: parse_address(field, &item.address)?,
                storage_keys: item
                    .storage_keys
                    .iter()
                    .map(|key| {
                        let bytes = parse_hex(field, key)?;
                        <[u8; 32]>::try_from(bytes.as_slice())
                            .map_err(|_| bad(field, format!("storage key {key} is not 32 bytes")))
                    })
                    .collect::<Result<_>>()?,
            })
        })
        .collect()
}

impl TxInputs {
    /// Checks the fields against each other and the type.
    pub fn check(&self) -> Result<()> {
        if self.chain_id == Some(0) {
            return Err(bad("--chain-id", "0 is not a chain id"));
        }
        match self.kind {
            Kind::Eip1559 => {
                if self.gas_price.is_some() {
                    return Err(bad("--gas-price", "EIP-1559 transactions take --max-fee-per-gas and --max-priority-fee-per-gas instead"));
                }
                if let (Some(max), Some(tip)) =
                    (self.max_fee_per_gas, self.max_priority_fee_per_gas)
                {
                    if tip > max {
                        return Err(bad(
                            "--max-priority-fee-per-gas",
                            "it is above --max-fee-per-gas",
                        ));
                    }
                }
            }
            Kind::Legacy | Kind::Eip2930 => {
                if self.max_fee_per_gas.is_some() || self.max_priority_fee_per_gas.is_some() {
                    return Err(bad(
                        "--max-fee-per-gas",
                        "only EIP-1559 transactions have it; use --gas-price",
                    ));
                }
                if self.kind == Kind::Legacy && !self.access_list.is_empty() {
                    return Err(bad(
                        "--access-list",
                        "legacy transactions have no access list; use --type 2930 or 1559",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The transaction, when every field is known; the error names the first missing one.
    pub fn complete(&self) -> Result<Transaction> {
        let chain_id = need(self.chain_id, "--chain-id")?;
        let nonce = need(self.nonce, "--nonce")?;
        let gas_limit = need(self.gas_limit, "--gas-limit")?;
        Ok(match self.kind {
            Kind::Legacy => Transaction::Legacy(LegacyTx {
                chain_id: Some(chain_id),
                nonce,
                gas_price: need(self.gas_price, "--gas-price")?,
                gas_limit,
                to: self.to,
                value: self.value,
                input: self.data.clone(),
            }),
            Kind::Eip2930 => Transaction::Eip2930(Eip2930Tx {
                chain_id,
                nonce,
                gas_price: need(self.gas_price, "--gas-price")?,
                gas_limit,
                to: self.to,
                value: self.value,
                input: self.data.clone(),
                access_list: self.access_list.clone(),
            }),
            Kind::Eip1559 => Transaction::Eip1559(Eip1559Tx {
                chain_id,
                nonce,
                max_priority_fee_per_gas: need(
                    self.max_priority_fee_per_gas,
                    "--max-priority-fee-per-gas",
                )?,
                max_fee_per_gas: need(self.max_fee_per_gas, "--max-fee-per-gas")?,
                gas_limit,
                to: self.to,
                value: self.value,
                input: self.data.clone(),
                access_list: self.access_list.clone(),
            }),
        })
    }
}

/// The fields a sign event may have. Anything else is refused: a misspelt field would
/// otherwise be silently ignored.
pub const SIGN_EVENT_FIELDS: [&str; 13] = [
    "operation",
    "amount",
    "dst_address",
    "nonce",
    "chain_id",
    "chainid",
    "type",
    "gas",
    "gas_limit",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "gas_price",
    "data",
];

/// Parses and checks the original design's sign event into a complete transaction:
/// `{"operation":"sign","amount":<ether>,"dst_address":"0x...","nonce":<n>,"chain_id":<id>}`
/// plus optional `type`, `gas`/`gas_limit` (160000 when absent, as in the original),
/// `max_fee_per_gas`, `max_priority_fee_per_gas`, `gas_price` and `data`.
///
/// Numbers may be JSON numbers or strings. Every error is a [`UsageError`] (in the error's
/// chain) naming the field; it never panics, whatever the text.
pub fn parse_sign_event(text: &str) -> Result<Transaction> {
    let event: Value = serde_json::from_str(text).map_err(|err| bad("event", err))?;
    let fields: &Map<String, Value> = event
        .as_object()
        .ok_or_else(|| bad("event", "not a JSON object"))?;
    if let Some(unknown) = fields
        .keys()
        .find(|k| !SIGN_EVENT_FIELDS.contains(&k.as_str()))
    {
        return Err(bad("event", format!("unknown field {unknown:?}")));
    }
    if fields.get("operation").and_then(Value::as_str) != Some("sign") {
        return Err(bad(
            "event operation",
            "sign answers {\"operation\":\"sign\", ...}",
        ));
    }
    // Numbers may be JSON numbers or strings; both are read as exact decimal text.
    let text_of = |name: &str| -> Option<String> {
        fields.get(name).and_then(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
    };
    let require = |name: &str| {
        text_of(name).ok_or_else(|| {
            bad(
                name,
                "missing parameter - sign requires amount, dst_address and nonce to be specified",
            )
        })
    };
    let amount = require("amount")?;
    let value = parse_amount(&format!("{amount}ether")).map_err(|err| bad("amount", err))?;
    let chain_id = text_of("chain_id").or_else(|| text_of("chainid"));
    let wei = |name: &str| text_of(name).map(|v| parse_wei(name, &v)).transpose();
    let inputs = TxInputs {
        kind: text_of("type").map_or(Ok(Kind::Eip1559), |t| parse_kind("type", &t))?,
        to: Some(parse_address("dst_address", &require("dst_address")?)?),
        value,
        nonce: Some(parse_u64("nonce", &require("nonce")?)?),
        chain_id: chain_id.map(|c| parse_u64("chain_id", &c)).transpose()?,
        // The original used a fixed gas limit of 160000 when none was given.
        gas_limit: Some(
            text_of("gas_limit")
                .or_else(|| text_of("gas"))
                .map_or(Ok(160_000), |g| parse_u64("gas_limit", &g))?,
        ),
        max_fee_per_gas: wei("max_fee_per_gas")?,
        max_priority_fee_per_gas: wei("max_priority_fee_per_gas")?,
        gas_price: wei("gas_price")?,
        data: text_of("data")
            .map(|d| parse_hex("data", &d))
            .transpose()?
            .unwrap_or_default(),
        access_list: Vec::new(),
    };
    inputs.check()?;
    if inputs.chain_id.is_none() {
        return Err(bad(
            "chain_id",
            "missing; a transaction without a chain id can be replayed on any chain",
        ));
    }
    inputs.complete().map_err(|err| bad("event", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    /// The message of an event's error, after checking that the command line would exit 2
    /// on it (a `UsageError` somewhere in the chain).
    fn usage_error(text: &str) -> String {
        let err = parse_sign_event(text).expect_err(text);
        assert!(
            err.chain().any(|cause| cause.is::<UsageError>()),
            "{text}: {err:#} is not a usage error"
        );
        format!("{err:#}")
    }

    #[test]
    fn a_complete_event_gives_an_eip1559_transaction_with_the_original_gas_limit() {
        let event = format!(
            r#"{{"operation":"sign","amount":"0.01","dst_address":"{TO}","nonce":3,"chain_id":31337,"max_fee_per_gas":"2gwei","max_priority_fee_per_gas":"1gwei"}}"#
        );
        let Ok(Transaction::Eip1559(tx)) = parse_sign_event(&event) else {
            panic!("{event} was refused or gave another type");
        };
        assert_eq!(tx.chain_id, 31337);
        assert_eq!(tx.nonce, 3);
        assert_eq!(tx.gas_limit, 160_000);
        assert_eq!(tx.value, U256::from(10_000_000_000_000_000u64));
        assert_eq!(tx.to.map(|a| a.to_string()).as_deref(), Some(TO));
    }

    #[test]
    fn event_errors_are_usage_errors_naming_the_field() {
        let cases = [
            ("{not json".to_owned(), "invalid event: "),
            ("[]".to_owned(), "invalid event: not a JSON object"),
            (
                r#"{"operation":"sign","gas_prize":1}"#.to_owned(),
                "invalid event: unknown field \"gas_prize\"",
            ),
            (
                r#"{"operation":"status"}"#.to_owned(),
                "invalid event operation: sign answers",
            ),
            (
                format!(r#"{{"operation":"sign","amount":1,"dst_address":"{TO}","chain_id":1}}"#),
                "invalid nonce: missing parameter",
            ),
            (
                format!(r#"{{"operation":"sign","amount":1,"dst_address":"{TO}","nonce":0}}"#),
                "invalid chain_id: missing",
            ),
            (
                format!(
                    r#"{{"operation":"sign","amount":1,"dst_address":"{TO}","nonce":0,"chain_id":1}}"#
                ),
                "invalid event: missing --max-priority-fee-per-gas",
            ),
        ];
        for (event, message) in cases {
            let got = usage_error(&event);
            assert!(got.starts_with(message), "{event}: {got}");
        }
    }
}
