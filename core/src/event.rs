//! The event contract of the original design ("Use AWS KMS to securely manage Ethereum
//! accounts"), defined once here for every front end that answers it: the Lambda handler,
//! the command line's `--event`, and the JSON-RPC server.
//!
//! ## Operations
//! - `{"operation":"status"}` answers `{"eth_checksum_address":"0x..."}`: the key's EIP-55
//!   address.
//! - `{"operation":"sign","amount":<ether>,"dst_address":"0x...","nonce":<n>,"chain_id":<id>}`
//!   answers `{"signed_tx_hash":"0x...","signed_tx_payload":"0x..."}`: the signed
//!   transaction's hash and raw bytes, ready for `eth_sendRawTransaction`.
//!
//! ## Sign fields
//! | field | JSON type | default |
//! |---|---|---|
//! | `amount` | number or numeric string, in ether, read exactly (at most 18 decimals) | required |
//! | `dst_address` | string, EIP-55 or one case | required |
//! | `nonce` | whole number | required |
//! | `chain_id` (alias `chainid`, the original's spelling) | whole number | required: the original defaulted to a chain of its own; a transaction without one can be replayed on any chain, so it is refused |
//! | `type` | 0/1/2 or `"legacy"`/`"2930"`/`"1559"` | 2 (EIP-1559) |
//! | `gas_limit` (alias `gas`) | whole number | 160000, as the original |
//! | `max_fee_per_gas`, `max_priority_fee_per_gas` | wei, or a string with a unit (`"30gwei"`) | 100 gwei and 3 gwei, as the original (type 2) |
//! | `gas_price` | as above | 100 gwei (types 0 and 1) |
//! | `data` | 0x hex string | empty |
//!
//! ## Errors
//! A bad event is answered with `{"operation":<op>,"error":<message>}`, the original's shape,
//! where the message names the field as the event does (`invalid nonce: ...`, and for the
//! checks between fields too: `invalid gas_price: ...`), and nothing is signed. The
//! original's own text is kept for a missing required field: `missing parameter - sign
//! requires amount, dst_address and nonce to be specified`.
//!
//! ## Why so strict
//! The event moves value, and JSON makes quiet mistakes easy. A JSON number read through a
//! float signs `0.123456789123456789` ether as ...780 wei; a second `"amount"` silently
//! replaces the first in most parsers; `"type": null` read as "absent" picks a type nobody
//! asked for. Each of those is refused here, with the field's name: fields are read as their
//! exact JSON text, never as floats, and a field given twice, in both spellings, of the wrong
//! JSON type, or unknown is an error.

use std::fmt;

use anyhow::Result;
use kms_eth_signer::{parse_amount, Address, SignedTransaction, Transaction, U256};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::input::SignEvent;
use crate::txinputs::{
    bad, parse_address, parse_hex, parse_kind, parse_u64, parse_wei, Kind, TxInputs,
};

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

/// The gas limit of the original design when the event gives none.
pub const DEFAULT_GAS_LIMIT: u64 = 160_000;

/// The original design's fees when the event gives none: 100 gwei per gas at most, 3 gwei
/// of it a tip (the gas price of types 0 and 1 is the same 100 gwei).
pub const DEFAULT_MAX_FEE_PER_GAS: u64 = 100_000_000_000;
/// See [`DEFAULT_MAX_FEE_PER_GAS`].
pub const DEFAULT_MAX_PRIORITY_FEE_PER_GAS: u64 = 3_000_000_000;

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `{"operation":"status"}`: the account's address.
    Status,
    /// `{"operation":"sign",...}`: this transaction, signed.
    Sign(Box<Transaction>),
}

/// Parses any event of the contract. Every error is a [`UsageError`](crate::UsageError)
/// naming the field; it never panics, whatever the text.
pub fn parse_event(text: &str) -> Result<Request> {
    let event = Event::parse(text)?;
    match event.string("operation")?.as_deref() {
        Some("status") => {
            if let Some((other, _)) = event.0.iter().find(|(name, _)| name != "operation") {
                return Err(bad(
                    "event",
                    format!("unknown field {other:?}: status takes only \"operation\""),
                ));
            }
            Ok(Request::Status)
        }
        Some("sign") => parse_sign_fields(&event).map(|tx| Request::Sign(Box::new(tx))),
        Some(other) => Err(bad(
            "operation",
            format!("{other:?} is not an operation; use \"status\" or \"sign\""),
        )),
        None => Err(bad(
            "operation",
            "missing; use {\"operation\":\"status\"} or {\"operation\":\"sign\", ...}",
        )),
    }
}

/// The operation an event names, as far as it can be read: what an error answer names.
pub fn operation_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|event| event.get("operation")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The answer to a status event.
pub fn status_answer(address: Address) -> serde_json::Value {
    serde_json::json!({ "eth_checksum_address": address.to_string() })
}

/// The answer to a sign event.
pub fn sign_answer(signed: &SignedTransaction) -> serde_json::Value {
    serde_json::json!({
        "signed_tx_hash": format!("0x{}", hex::encode(signed.hash)),
        "signed_tx_payload": signed.raw_hex(),
    })
}

/// The answer to an event that was refused or failed: the original's error object.
pub fn error_answer(operation: &str, error: &anyhow::Error) -> serde_json::Value {
    serde_json::json!({ "operation": operation, "error": format!("{error:#}") })
}

/// The widest decimal exponent a JSON number may have here (`1e-18` needs 18; anything
/// beyond 80 digits is no amount of ether or gas, and expanding it would only cost memory).
const MAX_EXPONENT: i64 = 80;

/// Parses and checks a sign event into a complete transaction. Every error is a
/// [`UsageError`](crate::UsageError) naming the field; it never panics, whatever the text.
pub fn parse_sign_event(text: &str) -> Result<Transaction> {
    match parse_event(text)? {
        Request::Sign(tx) => Ok(*tx),
        Request::Status => Err(bad(
            "operation",
            "sign answers {\"operation\":\"sign\", ...}",
        )),
    }
}

fn parse_sign_fields(event: &Event) -> Result<Transaction> {
    let require = |name: &str, value: Option<String>| {
        value.ok_or_else(|| {
            bad(
                name,
                "missing parameter - sign requires amount, dst_address and nonce to be specified",
            )
        })
    };
    let amount = require("amount", event.number("amount")?)?;
    let value = parse_amount(&format!("{amount}ether")).map_err(|err| bad("amount", err))?;
    let to = parse_address(
        "dst_address",
        &require("dst_address", event.string("dst_address")?)?,
    )?;
    let nonce = parse_u64("nonce", &require("nonce", event.number("nonce")?)?)?;
    let chain_id = event
        .either("chain_id", "chainid")?
        .map(|(name, text)| parse_u64(name, &text))
        .transpose()?
        .ok_or_else(|| {
            bad(
                "chain_id",
                "missing; a transaction without a chain id can be replayed on any chain. Add \
                 \"chain_id\" (1 mainnet, 11155111 Sepolia, 31337 anvil, ...)",
            )
        })?;
    let gas_limit = event
        .either("gas_limit", "gas")?
        .map_or(Ok(DEFAULT_GAS_LIMIT), |(name, text)| parse_u64(name, &text))?;
    let kind = event
        .kind()?
        .map_or(Ok(Kind::Eip1559), |text| parse_kind("type", &text))?;
    match kind {
        Kind::Eip4844 => {
            return Err(bad(
                "type",
                "a blob transaction (type 3) carries blobs that an event has no field for; \
                 sign it with `kms-eth sign --type 4844 --blob-file FILE`",
            ))
        }
        Kind::Eip7702 => {
            return Err(bad(
                "type",
                "an EIP-7702 transaction (type 4) carries authorizations that an event has no \
                 field for; sign it with `kms-eth sign --type 7702 --authorization AUTH` (or \
                 `--delegate CONTRACT`)",
            ))
        }
        _ => {}
    }
    let wei = |name: &str| -> Result<_> {
        event
            .number_or_string(name)?
            .map(|text| parse_wei(name, &text))
            .transpose()
    };
    let inputs = TxInputs {
        kind,
        to: Some(to),
        create: false,
        value,
        nonce: Some(nonce),
        chain_id: Some(chain_id),
        gas_limit: Some(gas_limit),
        max_fee_per_gas: wei("max_fee_per_gas")?,
        max_priority_fee_per_gas: wei("max_priority_fee_per_gas")?,
        gas_price: wei("gas_price")?,
        data: event
            .string("data")?
            .map(|d| parse_hex("data", &d))
            .transpose()?
            .unwrap_or_default(),
        access_list: Vec::new(),
        authorizations: Vec::new(),
        max_fee_per_blob_gas: None,
        sidecar: None,
    };
    // The original's fees where the event gives none, for the fields its type has.
    let mut inputs = inputs;
    match kind {
        Kind::Eip1559 | Kind::Eip4844 | Kind::Eip7702 => {
            let max = *inputs
                .max_fee_per_gas
                .get_or_insert(U256::from(DEFAULT_MAX_FEE_PER_GAS));
            // A tip above the max fee could never be paid; the default tip yields to it.
            inputs
                .max_priority_fee_per_gas
                .get_or_insert(U256::from(DEFAULT_MAX_PRIORITY_FEE_PER_GAS).min(max));
        }
        Kind::Legacy | Kind::Eip2930 => {
            inputs
                .gas_price
                .get_or_insert(U256::from(DEFAULT_MAX_FEE_PER_GAS));
        }
    }
    inputs
        .check()
        .and_then(|()| inputs.complete())
        .map_err(|err| err.usage(&SignEvent).into())
}

/// An event's fields, each as the exact JSON text it was given in, in order.
struct Event(Vec<(String, Box<RawValue>)>);

impl Event {
    /// Reads `text` as one JSON object with known, distinct field names.
    fn parse(text: &str) -> Result<Event> {
        let event: Event = serde_json::from_str(text).map_err(|err| bad("event", err))?;
        if let Some((unknown, _)) = event
            .0
            .iter()
            .find(|(name, _)| !SIGN_EVENT_FIELDS.contains(&name.as_str()))
        {
            return Err(bad("event", format!("unknown field {unknown:?}")));
        }
        Ok(event)
    }

    /// The JSON text of field `name`, if the event has it.
    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.get())
    }

    /// A field that must be a JSON string.
    fn string(&self, name: &str) -> Result<Option<String>> {
        self.raw(name)
            .map(|raw| match kind_of(raw) {
                "a string" => serde_json::from_str(raw).map_err(|err| bad(name, err)),
                other => Err(bad(name, format!("expected a string, got {other}"))),
            })
            .transpose()
    }

    /// A field that must be a number, as a JSON number or a string of one: its exact
    /// decimal text, exponent expanded (`1e-18` is `0.000000000000000001`).
    fn number(&self, name: &str) -> Result<Option<String>> {
        self.raw(name)
            .map(|raw| {
                let text = match kind_of(raw) {
                    "a number" => raw.trim().to_owned(),
                    "a string" => serde_json::from_str(raw).map_err(|err| bad(name, err))?,
                    other => return Err(bad(name, format!("expected a number, got {other}"))),
                };
                plain_decimal(&text).map_err(|problem| bad(name, problem))
            })
            .transpose()
    }

    /// A fee field: a number of wei, or a string with a unit (`"2gwei"`).
    fn number_or_string(&self, name: &str) -> Result<Option<String>> {
        match self.string(name) {
            Ok(Some(text)) if text.trim_start().starts_with(|c: char| c.is_ascii_digit()) => {
                // "30gwei" stays as it is; a plain "30" is read like the number 30.
                Ok(Some(plain_decimal(&text).unwrap_or(text)))
            }
            Ok(text) => Ok(text),
            Err(_) => self.number(name),
        }
    }

    /// The field of two spellings (`chain_id`/`chainid`) that the event gives, with the
    /// name it used. Both at once is refused, even if they agree: one of them is a mistake.
    fn either<'a>(&self, first: &'a str, second: &'a str) -> Result<Option<(&'a str, String)>> {
        match (self.raw(first).is_some(), self.raw(second).is_some()) {
            (true, true) => Err(bad(
                second,
                format!("given together with {first:?}, which means the same; give one"),
            )),
            (true, false) => Ok(self.number(first)?.map(|text| (first, text))),
            (false, true) => Ok(self.number(second)?.map(|text| (second, text))),
            (false, false) => Ok(None),
        }
    }

    /// The transaction type: a number (0, 1, 2) or a string (`"legacy"`, `"1559"`). `null`
    /// is not "absent": it is refused like any other wrong type.
    fn kind(&self) -> Result<Option<String>> {
        match self.string("type") {
            Ok(text) => Ok(text),
            Err(_) => self.number("type"),
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// Collects an object's fields in order and refuses a name given twice (a JSON parser
/// would keep the last one, silently).
struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut fields: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
            if fields.iter().any(|(seen, _)| *seen == name) {
                return Err(serde::de::Error::custom(format!(
                    "field {name:?} is given twice"
                )));
            }
            fields.push((name, value));
        }
        Ok(Event(fields))
    }
}

/// What kind of JSON value `raw` is. `raw` is valid JSON (the parser checked it), so its
/// first byte tells; a number is not parsed here, as a float could not hold `1e400`.
fn kind_of(raw: &str) -> &'static str {
    match raw.trim_start().bytes().next() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// The plain decimal form of a JSON number's text (`1.5e-3` is `0.0015`), exactly: no
/// float is involved, so every digit written is a digit signed.
pub fn plain_decimal(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, "0"),
    };
    let exponent: i64 = exponent
        .strip_prefix('+')
        .unwrap_or(exponent)
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if exponent.abs() > MAX_EXPONENT {
        return Err(format!("{text:?} is out of range"));
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(format!("{text:?} is not a number"));
    }
    // All the digits, and where the decimal point goes among them after the exponent.
    let digits = format!("{whole}{fraction}");
    let point = whole.len() as i64 + exponent;
    let plain = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (left, right) = digits.split_at(point as usize);
        format!("{left}.{right}")
    };
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UsageError;
    use kms_eth_signer::U256;

    const TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    fn event(extra: &str) -> String {
        format!(
            r#"{{"operation":"sign","dst_address":"{TO}","nonce":3,"chain_id":31337,"max_fee_per_gas":"2gwei","max_priority_fee_per_gas":"1gwei"{extra}}}"#
        )
    }

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

    fn value_of(amount: &str) -> U256 {
        let text = event(&format!(r#","amount":{amount}"#));
        parse_sign_event(&text)
            .unwrap_or_else(|err| panic!("{text}: {err:#}"))
            .value()
    }

    #[test]
    fn a_complete_event_gives_an_eip1559_transaction_with_the_original_gas_limit() {
        let Ok(Transaction::Eip1559(tx)) = parse_sign_event(&event(r#","amount":"0.01""#)) else {
            panic!("refused or gave another type");
        };
        assert_eq!(tx.chain_id, 31337);
        assert_eq!(tx.nonce, 3);
        assert_eq!(tx.gas_limit, DEFAULT_GAS_LIMIT);
        assert_eq!(tx.value, U256::from(10_000_000_000_000_000u64));
        assert_eq!(tx.to.map(|a| a.to_string()).as_deref(), Some(TO));
    }

    #[test]
    fn json_number_amounts_are_read_exactly_not_through_a_float() {
        // Each of these went wrong through an f64: rounded digits, or "e-6" read as a unit.
        let cases = [
            ("0.123456789123456789", 123_456_789_123_456_789u128),
            ("1.23456789012345678", 1_234_567_890_123_456_780),
            ("0.000001", 1_000_000_000_000),
            ("1e-18", 1),
            ("1E-6", 1_000_000_000_000),
            ("2.5e1", 25_000_000_000_000_000_000),
            ("1000000", 1_000_000_000_000_000_000_000_000),
            ("0", 0),
        ];
        for (amount, wei) in cases {
            assert_eq!(value_of(amount), U256::from(wei), "amount {amount}");
        }
        let more_decimals = usage_error(&event(r#","amount":0.0000000000000000001"#));
        assert!(
            more_decimals.starts_with("invalid amount: "),
            "{more_decimals}"
        );
        let huge = usage_error(&event(r#","amount":1e400"#));
        assert!(huge.contains("out of range"), "{huge}");
    }

    #[test]
    fn event_errors_are_usage_errors_naming_the_field() {
        let cases = [
            ("{not json".to_owned(), "invalid event: "),
            (
                "[]".to_owned(),
                "invalid event: invalid type: sequence, expected a JSON object",
            ),
            (
                r#"{"operation":"sign","gas_prize":1}"#.to_owned(),
                "invalid event: unknown field \"gas_prize\"",
            ),
            (
                r#"{"operation":"status"}"#.to_owned(),
                "invalid operation: sign answers",
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
                r#"{"operation":"stat"}"#.to_owned(),
                "invalid operation: \"stat\" is not",
            ),
            (r#"{"amount":1}"#.to_owned(), "invalid operation: missing"),
            (
                r#"{"operation":"status","key_id":"k"}"#.to_owned(),
                "invalid event: unknown field \"key_id\"",
            ),
            (
                r#"{"operation":7}"#.to_owned(),
                "invalid operation: expected a string",
            ),
            (
                event(r#","amount":1,"amount":2"#),
                "invalid event: field \"amount\" is given twice",
            ),
            (
                event(r#","amount":1,"chainid":31337"#),
                "invalid chainid: given together with \"chain_id\"",
            ),
            (
                event(r#","amount":1,"gas":21000,"gas_limit":21000"#),
                "invalid gas: given together with \"gas_limit\"",
            ),
            (
                event(r#","amount":1,"type":null"#),
                "invalid type: expected a number, got null",
            ),
            (
                event(r#","amount":1,"type":3"#),
                "invalid type: a blob transaction (type 3) carries blobs",
            ),
            (
                event(r#","amount":1,"data":1234"#),
                "invalid data: expected a string, got a number",
            ),
            (
                event(r#","amount":1,"data":"0x12","data":"0x34""#),
                "invalid event: field \"data\" is given twice",
            ),
            (
                event(r#","amount":true"#),
                "invalid amount: expected a number, got a boolean",
            ),
            (
                event(r#","amount":-1"#),
                "invalid amount: \"-1\" is negative",
            ),
            (
                event(r#","amount":1,"nonce":1.5"#),
                "invalid event: field \"nonce\" is given twice",
            ),
            (
                event(r#","amount":[1]"#),
                "invalid amount: expected a number, got an array",
            ),
            (
                r#"{"operation":"sign","amount":1,"dst_address":7,"nonce":0,"chain_id":1}"#
                    .to_owned(),
                "invalid dst_address: expected a string, got a number",
            ),
        ];
        for (event, message) in cases {
            let got = usage_error(&event);
            assert!(got.starts_with(message), "{event}: {got}");
        }
    }

    #[test]
    fn the_checks_between_fields_name_them_as_the_event_does() {
        let with = |fields: &str| {
            format!(r#"{{"operation":"sign","amount":1,"dst_address":"{TO}",{fields}}}"#)
        };
        for (fields, message) in [
            (
                r#""nonce":0,"chain_id":0"#,
                "invalid chain_id: 0 is not a chain id",
            ),
            (
                r#""nonce":18446744073709551615,"chain_id":1"#,
                "invalid nonce: 2^64-1 is not a valid nonce",
            ),
            (
                r#""nonce":0,"chain_id":1,"max_fee_per_gas":1,"max_priority_fee_per_gas":2"#,
                "invalid max_priority_fee_per_gas: it is above max_fee_per_gas",
            ),
            (
                r#""nonce":0,"chain_id":1,"gas_price":1"#,
                "invalid gas_price: a type 2 (EIP-1559) transaction takes max_fee_per_gas",
            ),
            (
                r#""nonce":0,"chain_id":1,"type":0,"max_fee_per_gas":1"#,
                "invalid max_fee_per_gas: only EIP-1559 transactions have it; use gas_price",
            ),
            (
                r#""nonce":0,"chain_id":1,"type":4"#,
                "invalid type: an EIP-7702 transaction (type 4) carries authorizations",
            ),
        ] {
            let got = usage_error(&with(fields));
            assert!(got.starts_with(message), "{fields}: {got}");
        }
    }

    #[test]
    fn whole_number_fields_refuse_fractions() {
        let text = format!(
            r#"{{"operation":"sign","amount":1,"dst_address":"{TO}","nonce":1.5,"chain_id":1,"gas_price":"1gwei","type":0}}"#
        );
        let got = usage_error(&text);
        assert!(got.starts_with("invalid nonce: \"1.5\""), "{got}");
    }

    #[test]
    fn the_readme_example_signs_with_the_original_defaults() {
        // README: sign --event '{"operation":"sign","amount":0.01,"dst_address":"0x...",
        // "nonce":0,"chain_id":1}'; the original filled in the fees and gas.
        let text = format!(
            r#"{{"operation":"sign","amount":0.01,"dst_address":"{TO}","nonce":0,"chain_id":1}}"#
        );
        let Ok(Transaction::Eip1559(tx)) = parse_sign_event(&text) else {
            panic!("{text} was refused or gave another type");
        };
        assert_eq!(tx.max_fee_per_gas, U256::from(DEFAULT_MAX_FEE_PER_GAS));
        assert_eq!(
            tx.max_priority_fee_per_gas,
            U256::from(DEFAULT_MAX_PRIORITY_FEE_PER_GAS)
        );
        assert_eq!(tx.gas_limit, DEFAULT_GAS_LIMIT);
        // A max fee given below the default tip lowers the tip with it.
        let text = event_with_max_fee("1gwei");
        let Ok(Transaction::Eip1559(tx)) = parse_sign_event(&text) else {
            panic!("{text}");
        };
        assert_eq!(tx.max_priority_fee_per_gas, U256::from(1_000_000_000u64));
        // Legacy gets the original's gas price.
        let text = format!(
            r#"{{"operation":"sign","amount":1,"dst_address":"{TO}","nonce":0,"chain_id":1,"type":0}}"#
        );
        let Ok(Transaction::Legacy(tx)) = parse_sign_event(&text) else {
            panic!("{text}");
        };
        assert_eq!(tx.gas_price, U256::from(DEFAULT_MAX_FEE_PER_GAS));
        assert_eq!(
            parse_event(r#"{"operation":"status"}"#).ok(),
            Some(Request::Status)
        );
    }

    fn event_with_max_fee(fee: &str) -> String {
        format!(
            r#"{{"operation":"sign","amount":1,"dst_address":"{TO}","nonce":0,"chain_id":1,"max_fee_per_gas":"{fee}"}}"#
        )
    }

    #[test]
    fn plain_decimal_expands_exponents_exactly() {
        for (text, plain) in [
            ("1e-18", "0.000000000000000001"),
            ("12.5e-1", "1.25"),
            ("12.5e+1", "125"),
            ("0.5", "0.5"),
            ("7", "7"),
            ("7e3", "7000"),
        ] {
            assert_eq!(plain_decimal(text).as_deref(), Ok(plain), "{text}");
        }
        for text in [
            "",
            ".5",
            "1.2.3",
            "1e",
            "e5",
            "0x10",
            "1e99999999999999999999",
        ] {
            assert!(plain_decimal(text).is_err(), "{text:?}");
        }
    }
}
