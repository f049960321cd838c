//! Transactions from the command line: the transaction flags handed to the library's checked
//! parsing (which names the flag in every error, before any network call), and signed
//! transactions described as JSON.

use kms_eth_signer::{format_ether, Address, SignedTransaction, Transaction};
use serde_json::{json, Value};
pub use xtask::txinputs::{parse_address, parse_hex, Kind, TxFlags, TxInputs};

use crate::flags::TxArgs;

impl<'a> From<&'a TxArgs> for TxFlags<'a> {
    fn from(args: &'a TxArgs) -> Self {
        TxFlags {
            tx_type: &args.tx_type,
            to: args.to.as_deref(),
            value: &args.value,
            nonce: args.nonce.as_deref(),
            chain_id: args.chain_id.as_deref(),
            gas_limit: args.gas_limit.as_deref(),
            max_fee_per_gas: args.max_fee_per_gas.as_deref(),
            max_priority_fee_per_gas: args.max_priority_fee_per_gas.as_deref(),
            gas_price: args.gas_price.as_deref(),
            data: args.data.as_deref(),
            access_list: args.access_list.as_deref(),
        }
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
