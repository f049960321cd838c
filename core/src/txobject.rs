//! The transaction object of the Ethereum JSON-RPC specification (`eth_sendTransaction`,
//! `eth_signTransaction`), read into checked transaction inputs: quantities are 0x hex, data
//! is `input` or its older name `data`, the type follows from the fee fields (or an
//! `authorizationList`) when not given. Every error names the field as the specification
//! does, the checks between fields too (through [`JsonRpc`]); the signing service answers it
//! as "invalid params".

use anyhow::Result;
use kms_eth_signer::{AccessListItem, Address, SignedAuthorization, U256};
use serde_json::{Map, Value};

use crate::input::JsonRpc;
use crate::txinputs::{authorization_value, bad, parse_address, parse_hex, Kind, TxInputs};

/// The fields the service reads. Blob fields are refused by name rather than dropped:
/// signing without them would sign another transaction than the one asked.
pub(crate) const FIELDS: [&str; 14] = [
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
    "authorizationList",
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
                    "maxFeePerBlobGas" | "blobVersionedHashes" | "blobs" => {
                        "blob (type 3) transactions are not supported by the service; sign \
                         them with kms-eth sign --type 4844"
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
    let authorizations = authorization_list(fields)?;
    let kind = match quantity(fields, "type")? {
        Some(t) if t == U256::ZERO => Kind::Legacy,
        Some(t) if t == U256::from(1u8) => Kind::Eip2930,
        Some(t) if t == U256::from(2u8) => Kind::Eip1559,
        Some(t) if t == U256::from(4u8) => Kind::Eip7702,
        Some(t) => {
            return Err(bad(
                "type",
                format!("type {t} is not supported; use 0x0, 0x1, 0x2 or 0x4"),
            ))
        }
        // Only a type-4 transaction carries authorizations.
        None if authorizations.is_some() => Kind::Eip7702,
        None if max_fee_per_gas.is_some() || max_priority_fee_per_gas.is_some() => Kind::Eip1559,
        None if gas_price.is_some() && access_list.is_some() => Kind::Eip2930,
        None if gas_price.is_some() => Kind::Legacy,
        None => Kind::Eip1559,
    };
    let authorizations = match (kind, authorizations) {
        (Kind::Eip7702, Some(list)) if !list.is_empty() => list,
        (Kind::Eip7702, _) => {
            return Err(bad(
                "authorizationList",
                "missing or empty: a type 0x4 transaction carries at least one signed \
                 authorization ({\"chainId\",\"address\",\"nonce\",\"yParity\",\"r\",\"s\"})",
            ))
        }
        (_, Some(_)) => {
            return Err(bad(
                "authorizationList",
                "only type 0x4 (EIP-7702) transactions carry authorizations; give \"type\": \"0x4\" or leave the type out",
            ))
        }
        (_, None) => Vec::new(),
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
        authorizations,
        max_fee_per_blob_gas: None,
        sidecar: None,
    };
    inputs.check().map_err(|err| err.usage(&JsonRpc))?;
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

/// The most authorizations one transaction object may carry. Each is checked to recover
/// (about 0.2 ms of CPU) while the request is read, before its account or the policy is
/// looked at, so the list is bounded first; 64 delegations (1.6 million gas at 25,000 each)
/// are far more than any wallet batches.
pub const MAX_AUTHORIZATIONS: usize = 64;

/// `authorizationList`: signed EIP-7702 authorizations in the specification's names, each
/// checked to recover to an authority.
fn authorization_list(fields: &Map<String, Value>) -> Result<Option<Vec<SignedAuthorization>>> {
    match fields.get("authorizationList") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() > MAX_AUTHORIZATIONS => Err(bad(
            "authorizationList",
            format!(
                "{} authorizations are more than the {MAX_AUTHORIZATIONS} one transaction may \
                 carry here; send them in several transactions",
                items.len()
            ),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| authorization_value(&format!("authorizationList[{i}]"), item))
            .collect::<Result<_>>()
            .map(Some),
        Some(other) => Err(bad(
            "authorizationList",
            format!("expected an array of signed authorizations, got {other}"),
        )),
    }
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

    /// An authorization by the fixed test key of the alloy cross-check (registered with the
    /// leak scan), for chain 1, delegating to `TO`.
    fn authorization() -> Value {
        let key = k256::ecdsa::SigningKey::from_slice(&[0x07; 32]).unwrap();
        let digest = kms_eth_signer::Authorization {
            chain_id: 1,
            address: parse_address("to", TO).unwrap(),
            nonce: 7,
        }
        .signing_hash();
        let (signature, recovery) = key.sign_prehash_recoverable(&digest).unwrap();
        let (r, s) = signature.split_bytes();
        json!({
            "chainId": "0x1",
            "address": TO,
            "nonce": "0x7",
            "yParity": format!("{:#x}", u8::from(recovery.is_y_odd())),
            "r": format!("0x{}", hex::encode(r)),
            "s": format!("0x{}", hex::encode(s)),
        })
    }

    #[test]
    fn an_authorization_list_makes_a_type_4_transaction() {
        for value in [
            json!({"from": FROM, "to": FROM, "authorizationList": [authorization()]}),
            json!({"from": FROM, "to": FROM, "type": "0x4", "authorizationList": [authorization(), authorization()]}),
        ] {
            let tx = parse_tx_object(&value).unwrap();
            assert_eq!(tx.inputs.kind, Kind::Eip7702, "{value}");
            let first = &tx.inputs.authorizations[0];
            assert_eq!(first.authorization.nonce, 7);
            assert_eq!(first.authorization.chain_id, 1);
            let key = k256::ecdsa::SigningKey::from_slice(&[0x07; 32]).unwrap();
            let expected = kms_eth_signer::PublicKey::from(*key.verifying_key()).address();
            assert_eq!(first.recover_authority().unwrap(), expected);
        }
        // A signature that does not recover is refused by the item's place in the list.
        let mut bad = authorization();
        bad["r"] = json!("0x0");
        let got = message(json!({"from": FROM, "to": FROM, "authorizationList": [bad]}));
        assert!(got.contains("authorizationList[0]"), "{got}");
    }

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
                json!({"from": FROM, "to": TO, "type": "0x4"}),
                "invalid authorizationList: missing or empty",
            ),
            (
                json!({"from": FROM, "to": TO, "authorizationList": []}),
                "invalid authorizationList: missing or empty",
            ),
            (
                json!({"from": FROM, "to": TO, "authorizationList": "0x"}),
                "invalid authorizationList: expected an array",
            ),
            (
                json!({"from": FROM, "to": TO, "type": "0x2", "authorizationList": [authorization()]}),
                "invalid authorizationList: only type 0x4",
            ),
            (
                json!({"from": FROM, "to": TO, "authorizationList": [authorization(), {"chainId": "0x1"}]}),
                "invalid authorizationList[1]: missing \"address\"",
            ),
            (
                json!({"from": FROM, "to": null, "data": "0x6000", "authorizationList": [authorization()]}),
                "invalid to: a type 0x4 (EIP-7702) transaction cannot create a contract",
            ),
            (
                json!({"from": FROM, "to": TO, "gasPrice": "0x1", "authorizationList": [authorization()]}),
                "invalid gasPrice: a type 0x4 (EIP-7702) transaction takes maxFeePerGas",
            ),
            (
                json!({"from": FROM, "to": TO, "authorizationList": vec![authorization(); MAX_AUTHORIZATIONS + 1]}),
                "invalid authorizationList: 65 authorizations are more than the 64",
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
            // The checks between fields name them as the specification does, too.
            (
                json!({"from": FROM, "to": TO, "chainId": "0x0"}),
                "invalid chainId: 0 is not a chain id",
            ),
            (
                json!({"from": FROM, "to": TO, "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}),
                "invalid maxPriorityFeePerGas: it is above maxFeePerGas",
            ),
            (
                json!({"from": FROM, "to": TO, "type": "0x2", "gasPrice": "0x1"}),
                "invalid gasPrice: a type 0x2 (EIP-1559) transaction takes maxFeePerGas and \
                 maxPriorityFeePerGas instead",
            ),
            (
                json!({"from": FROM, "to": TO, "type": "0x0", "maxFeePerGas": "0x1"}),
                "invalid maxFeePerGas: only EIP-1559 transactions have it; use gasPrice",
            ),
            (
                json!({"from": FROM, "to": TO, "type": "0x0", "accessList": [{"address": TO}]}),
                "invalid accessList: legacy transactions have no access list; use \"type\": \
                 \"0x1\" or \"0x2\"",
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
