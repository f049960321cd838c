//! Transactions from the command line: every flag parsed and checked (naming the flag)
//! before any network call, and signed transactions described as JSON.

use anyhow::Result;
use kms_eth_signer::{
    format_ether, parse_amount, AccessListItem, Address, Eip1559Tx, Eip2930Tx, LegacyTx,
    SignedTransaction, Transaction, U256,
};
use serde_json::{json, Value};
use xtask::UsageError;

use crate::flags::TxArgs;

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
    pub data: Vec<u8>,
    pub access_list: Vec<AccessListItem>,
}

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

pub fn parse_address(field: &str, text: &str) -> Result<Address> {
    text.trim().parse().map_err(|err| bad(field, err))
}

pub fn parse_u64(field: &str, text: &str) -> Result<u64> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(bad(field, format!("{text:?} is negative")));
    }
    text.parse()
        .map_err(|_| bad(field, format!("{text:?} is not a whole number below 2^64")))
}

pub fn parse_wei(field: &str, text: &str) -> Result<U256> {
    parse_amount(text).map_err(|err| bad(field, err))
}

pub fn parse_hex(field: &str, text: &str) -> Result<Vec<u8>> {
    let digits = text
        .trim()
        .strip_prefix("0x")
        .ok_or_else(|| bad(field, "hex data must start with 0x"))?;
    hex::decode(digits).map_err(|err| bad(field, format!("not hex: {err}")))
}

fn parse_access_list(field: &str, text: &str) -> Result<Vec<AccessListItem>> {
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
    /// Parses and checks the transaction flags.
    pub fn parse(args: &TxArgs) -> Result<Self> {
        let optional = |value: &Option<String>, parse: &dyn Fn(&str) -> Result<u64>| {
            value.as_deref().map(parse).transpose()
        };
        let wei = |field: &str, value: &Option<String>| {
            value.as_deref().map(|v| parse_wei(field, v)).transpose()
        };
        let inputs = TxInputs {
            kind: parse_kind("--type", &args.tx_type)?,
            to: args
                .to
                .as_deref()
                .map(|to| parse_address("--to", to))
                .transpose()?,
            value: parse_wei("--value", &args.value)?,
            nonce: optional(&args.nonce, &|v| parse_u64("--nonce", v))?,
            chain_id: optional(&args.chain_id, &|v| parse_u64("--chain-id", v))?,
            gas_limit: optional(&args.gas_limit, &|v| parse_u64("--gas-limit", v))?,
            max_fee_per_gas: wei("--max-fee-per-gas", &args.max_fee_per_gas)?,
            max_priority_fee_per_gas: wei(
                "--max-priority-fee-per-gas",
                &args.max_priority_fee_per_gas,
            )?,
            gas_price: wei("--gas-price", &args.gas_price)?,
            data: args
                .data
                .as_deref()
                .map(|d| parse_hex("--data", d))
                .transpose()?
                .unwrap_or_default(),
            access_list: args
                .access_list
                .as_deref()
                .map(|a| parse_access_list("--access-list", a))
                .transpose()?
                .unwrap_or_default(),
        };
        inputs.check()?;
        Ok(inputs)
    }

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

/// Every field of a signed transaction, for `--json` and `verify`.
pub fn describe(signed: &SignedTransaction, from: Option<Address>) -> Value {
    let tx = &signed.tx;
    let mut out = json!({
        "type": tx.tx_type(),
        "chain_id": tx.chain_id(),
        "nonce": tx.nonce(),
        "to": tx.to().map(|a| a.to_string()),
        "value": tx.value().to_string(),
        "value_ether": format_ether(tx.value()),
        "from": from.map(|a| a.to_string()),
        "hash": format!("0x{}", hex::encode(signed.hash)),
        "raw": signed.raw_hex(),
        "r": format!("0x{}", hex::encode(signed.signature.r)),
        "s": format!("0x{}", hex::encode(signed.signature.s)),
        "y_parity": u8::from(signed.signature.y_parity),
    });
    let (gas_limit, input, access_list) = match tx {
        Transaction::Legacy(t) => {
            out["gas_price"] = t.gas_price.to_string().into();
            (t.gas_limit, &t.input, None)
        }
        Transaction::Eip2930(t) => {
            out["gas_price"] = t.gas_price.to_string().into();
            (t.gas_limit, &t.input, Some(&t.access_list))
        }
        Transaction::Eip1559(t) => {
            out["max_fee_per_gas"] = t.max_fee_per_gas.to_string().into();
            out["max_priority_fee_per_gas"] = t.max_priority_fee_per_gas.to_string().into();
            (t.gas_limit, &t.input, Some(&t.access_list))
        }
    };
    out["gas_limit"] = gas_limit.into();
    out["data"] = format!("0x{}", hex::encode(input)).into();
    if let Some(list) = access_list {
        out["access_list"] = list
            .iter()
            .map(|item| {
                json!({
                    "address": item.address.to_string(),
                    "storageKeys": item.storage_keys.iter().map(|k| format!("0x{}", hex::encode(k))).collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    out
}
