//! The transaction object of the Ethereum JSON-RPC specification (`eth_sendTransaction`,
//! `eth_signTransaction`), read into checked transaction inputs: quantities are 0x hex, data
//! is `input` or its older name `data`, the type follows from the fee fields when not
//! given. Every error names the field; the signing service answers it as "invalid params".

use anyhow::Result;
use kms_eth_signer::{AccessListItem, Address, U256};
use serde_json::{Map, Value};

use crate::txinputs::{bad, parse_address, parse_hex, Kind, TxInputs};

/// The fields the service reads. Blob and authorization fields are refused by name rather
/// than dropped: signing without them would sign another transaction than the one asked.
const FIELDS: [&str; 13] = [
    "from",
    "to",
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "value",
    "data",
    "input",
    "nonce",
    "type",
    "accessList",
    "chainId",
];

/// A transaction request: who sends it and what they gave.
#[derive(Debug, Clone)]
pub struct TxRequest {
    pub from: Address,
    pub inputs: TxInputs,
}

/// Reads a JSON-RPC transaction object.
pub fn parse_tx_object(value: &Value) -> Result<TxRequest> {
    let fields = value
        .as_object()
        .ok_or_else(|| bad("transaction", "expected a transaction object"))?;
    for name in fields.keys() {
        if !FIELDS.contains(&name.as_str()) {
            return Err(bad(
                name,
                match name.as_str() {
                    "maxFeePerBlobGas" | "blobVersionedHashes" | "blobs" | "authorizationList" => {
                        "blob (type 3) and authorization (type 4) transactions are not supported"
                    }
                    _ => "unknown field of a transaction object",
                },
            ));
        }
    }
    let from = parse_address(
        "from",
        string(fields, "from")?.ok_or_else(|| bad("from", "missing: which account signs"))?,
    )?;
    let to = match fields.get("to") {
        None | Some(Value::Null) => None,
        Some(_) => Some(parse_address(
            "to",
            string(fields, "to")?.unwrap_or_default(),
        )?),
    };
    let data = match (bytes(fields, "input")?, bytes(fields, "data")?) {
        (Some(input), Some(data)) if input != data => {
            return Err(bad("data", "differs from input; give one"))
        }
        (Some(input), _) => input,
        (None, Some(data)) => data,
        (None, None) => Vec::new(),
    };
    if to.is_none() && data.is_empty() {
        return Err(bad(
            "to",
            "missing, and there is no input: the transaction would create a contract from \
             empty code and any value sent would be lost; give to, or input with the \
             contract's init code",
        ));
    }
    let max_fee_per_gas = quantity(fields, "maxFeePerGas")?;
    let max_priority_fee_per_gas = quantity(fields, "maxPriorityFeePerGas")?;
    let gas_price = quantity(fields, "gasPrice")?;
    let access_list = access_list(fields)?;
    let kind = match quantity(fields, "type")? {
        Some(t) if t == U256::ZERO => Kind::Legacy,
        Some(t) if t == U256::from(1u8) => Kind::Eip2930,
        Some(t) if t == U256::from(2u8) => Kind::Eip1559,
        Some(t) => {
            return Err(bad(
                "type",
                format!("type {t} is not supported; use 0x0, 0x1 or 0x2"),
            ))
        }
        None if max_fee_per_gas.is_some() || max_priority_fee_per_gas.is_some() => Kind::Eip1559,
        None if gas_price.is_some() && access_list.is_some() => Kind::Eip2930,
        None if gas_price.is_some() => Kind::Legacy,
        None => Kind::Eip1559,
    };
    let inputs = TxInputs {
        kind,
        create: to.is_none(),
        to,
        value: quantity(fields, "value")?.unwrap_or_default(),
        nonce: small(fields, "nonce")?,
        chain_id: small(fields, "chainId")?,
        gas_limit: small(fields, "gas")?,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        gas_price,
        data,
        access_list: access_list.unwrap_or_default(),
        authorizations: Vec::new(),
        max_fee_per_blob_gas: None,
        sidecar: None,
    };
    inputs.check()?;
    Ok(TxRequest { from, inputs })
}

fn string<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(bad(name, format!("expected a string, got {other}"))),
    }
}

fn bytes(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>> {
    string(fields, name)?
        .map(|text| parse_hex(name, text))
        .transpose()
}

/// A 0x hex quantity of up to 256 bits, as the specification writes every number.
fn quantity(fields: &Map<String, Value>, name: &str) -> Result<Option<U256>> {
    string(fields, name)?
        .map(|text| {
            let digits = text
                .strip_prefix("0x")
                .ok_or_else(|| bad(name, format!("{text:?} is not a 0x hex quantity")))?;
            if digits.is_empty() || digits.len() > 64 {
                return Err(bad(
                    name,
                    format!("{text:?} is not a 0x hex quantity of 256 bits at most"),
                ));
            }
            U256::from_str_radix(digits, 16)
                .map_err(|_| bad(name, format!("{text:?} is not a 0x hex quantity")))
        })
        .transpose()
}

fn small(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>> {
    quantity(fields, name)?
        .map(|value| u64::try_from(value).map_err(|_| bad(name, "does not fit in 64 bits")))
        .transpose()
}

fn access_list(fields: &Map<String, Value>) -> Result<Option<Vec<AccessListItem>>> {
    let Some(list) = fields.get("accessList").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    crate::txinputs::parse_access_list("accessList", &list.to_string()).map(Some)
}

/// The address an `eth_accounts`-style parameter names.
pub fn parse_account(name: &str, value: &Value) -> Result<Address> {
    match value {
        Value::String(text) => parse_address(name, text),
        other => Err(bad(
            name,
            format!("expected an address string, got {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FROM: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const TO: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

    fn message(value: Value) -> String {
        format!("{:#}", parse_tx_object(&value).expect_err("accepted"))
    }

    #[test]
    fn the_type_follows_the_fee_fields_and_data_has_two_names() {
        let tx = parse_tx_object(&json!({"from": FROM, "to": TO, "value": "0x1", "input": "0x12"}))
            .unwrap();
        assert_eq!(tx.inputs.kind, Kind::Eip1559);
        assert_eq!(tx.inputs.data, vec![0x12]);
        let tx =
            parse_tx_object(&json!({"from": FROM, "to": TO, "gasPrice": "0x1", "data": "0x12"}))
                .unwrap();
        assert_eq!(tx.inputs.kind, Kind::Legacy);
        let tx =
            parse_tx_object(&json!({"from": FROM, "to": TO, "gasPrice": "0x1", "accessList": []}))
                .unwrap();
        assert_eq!(tx.inputs.kind, Kind::Eip2930);
        let tx = parse_tx_object(&json!({"from": FROM, "to": null, "data": "0x6000"})).unwrap();
        assert!(tx.inputs.create);
    }

    #[test]
    fn bad_transaction_objects_name_the_field() {
        for (value, expected) in [
            (
                json!([]),
                "invalid transaction: expected a transaction object",
            ),
            (json!({"to": TO}), "invalid from: missing"),
            (
                json!({"from": FROM, "to": TO, "gas": 21000}),
                "invalid gas: expected a string",
            ),
            (
                json!({"from": FROM, "to": TO, "value": "100"}),
                "invalid value: \"100\" is not a 0x hex quantity",
            ),
            (
                json!({"from": FROM, "to": TO, "nonce": "0x10000000000000000"}),
                "invalid nonce: does not fit",
            ),
            (
                json!({"from": FROM, "to": TO, "input": "0x12", "data": "0x34"}),
                "invalid data: differs from input",
            ),
            (
                json!({"from": FROM, "to": TO, "type": "0x3"}),
                "invalid type: type 3 is not supported",
            ),
            (
                json!({"from": FROM, "to": TO, "blobVersionedHashes": []}),
                "not supported",
            ),
            (
                json!({"from": FROM, "to": TO, "gasLimit": "0x1"}),
                "invalid gasLimit: unknown field",
            ),
            (json!({"from": FROM}), "invalid to: missing"),
            (
                json!({"from": FROM, "to": TO, "nonce": "0xffffffffffffffff"}),
                "EIP-2681",
            ),
        ] {
            let got = message(value.clone());
            assert!(
                got.starts_with(expected) || got.contains(expected),
                "{value}: {got}"
            );
        }
    }
}
