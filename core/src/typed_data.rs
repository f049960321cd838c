//! EIP-712 typed data as `eth_signTypedData_v4` takes it (`{"types", "primaryType",
//! "domain", "message"}`), read and hashed into the digest a key signs:
//! `keccak256("\x19\x01" || domainSeparator || hashStruct(message))`.
//!
//! The type encoding (resolving `types`, nested structs, arrays, `bytes` and `string`
//! hashing, value ranges) is alloy's `dyn-abi`, a maintained implementation that alloy's own
//! signers use, rather than an encoder written here: EIP-712's corner cases (type ordering,
//! recursive types, dynamic arrays of structs) are where hand-written encoders go wrong, and
//! a wrong digest is a signature over something else. What is checked here is what alloy
//! leaves to the caller: the document's shape (unknown top-level fields are refused), and
//! the domain, which the policy and the chain check read.

use alloy_dyn_abi::{DynSolValue, TypedData};
use anyhow::Result;
use kms_eth_signer::{Address, B256};
use serde_json::Value;

use crate::txinputs::bad;

/// A typed-data document, checked and hashed.
#[derive(Debug, Clone)]
pub struct TypedDataRequest {
    /// The EIP-712 digest the key signs.
    pub digest: B256,
    /// The domain's fields that policies and chain checks read.
    pub domain: Domain,
    /// The primary type's name.
    pub primary_type: String,
    /// The message, as its types read it (what the permit rules judge).
    pub message: DynSolValue,
}

/// An EIP-712 domain, as far as rules look at it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Domain {
    pub name: Option<String>,
    pub chain_id: Option<u64>,
    pub verifying_contract: Option<Address>,
}

const FIELDS: [&str; 4] = ["types", "primaryType", "domain", "message"];

/// Reads `text` (the v4 JSON; a JSON string holding it, as some clients send, too).
pub fn parse_typed_data(field: &str, text: &str) -> Result<TypedDataRequest> {
    let value: Value = serde_json::from_str(text).map_err(|err| bad(field, err))?;
    parse_typed_data_value(field, &value)
}

/// As [`parse_typed_data`], from JSON already read.
pub fn parse_typed_data_value(field: &str, value: &Value) -> Result<TypedDataRequest> {
    if let Value::String(inner) = value {
        return parse_typed_data(field, inner);
    }
    let fields = value.as_object().ok_or_else(|| {
        bad(
            field,
            "typed data is a JSON object: {\"types\", \"primaryType\", \"domain\", \"message\"}",
        )
    })?;
    for name in FIELDS {
        if !fields.contains_key(name) {
            return Err(bad(field, format!("missing \"{name}\"")));
        }
    }
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(field, format!("unknown field {unknown:?}")));
    }
    // alloy reports a missing or extra field as a type mismatch of the whole struct; name
    // the field instead, before alloy sees the document.
    if let (Some(types), Some(primary)) =
        (fields["types"].as_object(), fields["primaryType"].as_str())
    {
        check_fields(field, types, primary, &fields["message"], "message")?;
    }
    let typed: TypedData = serde_json::from_value(value.clone()).map_err(|err| bad(field, err))?;
    let digest = typed
        .eip712_signing_hash()
        .map_err(|err| bad(field, format!("cannot be hashed: {err}")))?;
    let message = typed
        .coerce()
        .map_err(|err| bad(field, format!("its message does not fit its types: {err}")))?;
    let domain = typed.domain();
    let chain_id = domain
        .chain_id
        .map(|id| {
            u64::try_from(id).map_err(|_| bad(field, "domain chainId does not fit in 64 bits"))
        })
        .transpose()?;
    Ok(TypedDataRequest {
        digest: B256::from(digest.0),
        domain: Domain {
            name: domain.name.as_ref().map(|name| name.to_string()),
            chain_id,
            verifying_contract: domain.verifying_contract.map(|a| Address(a.0 .0)),
        },
        primary_type: typed.primary_type.clone(),
        message,
    })
}

/// Checks that `value`, of struct type `name`, has exactly the type's fields, recursively
/// through nested structs and arrays of them. Types it does not know are left to alloy.
fn check_fields(
    field: &str,
    types: &serde_json::Map<String, Value>,
    name: &str,
    value: &Value,
    path: &str,
) -> Result<()> {
    // `Person[]`, `Person[2][]`: the element type.
    let base = name.split('[').next().unwrap_or(name);
    let Some(members) = types.get(base).and_then(Value::as_array) else {
        return Ok(());
    };
    if base != name {
        if let Some(items) = value.as_array() {
            let inner = &name[..name.rfind('[').unwrap_or(name.len())];
            for (index, item) in items.iter().enumerate() {
                check_fields(field, types, inner, item, &format!("{path}[{index}]"))?;
            }
        }
        return Ok(());
    }
    let Some(object) = value.as_object() else {
        return Err(bad(field, format!("{path} is a {base}, a JSON object")));
    };
    let names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    for member in members {
        let (Some(member_name), Some(member_type)) =
            (member["name"].as_str(), member["type"].as_str())
        else {
            continue;
        };
        match object.get(member_name) {
            None => {
                return Err(bad(
                    field,
                    format!("{path}.{member_name} is missing (a {member_type} of {base})"),
                ))
            }
            Some(inner) => check_fields(
                field,
                types,
                member_type,
                inner,
                &format!("{path}.{member_name}"),
            )?,
        }
    }
    if let Some(extra) = object.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(bad(
            field,
            format!("{path}.{extra} is not a field of {base}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The example of EIP-712 itself ("Ether Mail"), with the digest the EIP publishes.
    pub(crate) const MAIL: &str = r#"{
      "types": {
        "EIP712Domain": [
          {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
          {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
          {"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
          {"name": "contents", "type": "string"}
        ]
      },
      "primaryType": "Mail",
      "domain": {
        "name": "Ether Mail", "version": "1", "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
      },
      "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!"
      }
    }"#;

    #[test]
    fn the_eip_712_example_gives_its_published_digest() {
        let request = parse_typed_data("typed data", MAIL).unwrap();
        assert_eq!(
            hex::encode(request.digest),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
        assert_eq!(request.domain.name.as_deref(), Some("Ether Mail"));
        assert_eq!(request.domain.chain_id, Some(1));
        assert_eq!(request.primary_type, "Mail");
        // The same document inside a JSON string, as some clients send it.
        let quoted = serde_json::to_string(MAIL).unwrap();
        assert_eq!(
            parse_typed_data("typed data", &quoted).unwrap().digest,
            request.digest
        );
    }

    #[test]
    fn malformed_typed_data_is_refused_with_the_reason() {
        let mail: Value = serde_json::from_str(MAIL).unwrap();
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut value = mail.clone();
            edit(&mut value);
            format!(
                "{:#}",
                parse_typed_data_value("typed data", &value).expect_err("accepted")
            )
        };
        for (got, expected) in [
            (with(&|v| v["primaryType"] = "Letter".into()), "Letter"),
            (
                with(&|v| {
                    v["message"].as_object_mut().unwrap().remove("contents");
                }),
                "contents",
            ),
            (
                with(&|v| v["types"]["Person"][1]["type"] = "adress".into()),
                "adress",
            ),
            (
                with(&|v| {
                    v["types"]["Person"]
                        .as_array_mut()
                        .unwrap()
                        .push(serde_json::json!({"name": "boss", "type": "Mail"}))
                }),
                "message.from.boss is missing",
            ),
            (
                with(&|v| v["message"]["from"]["wallet"] = "0x1234".into()),
                "typed data",
            ),
            (with(&|v| v["extra"] = 1.into()), "unknown field \"extra\""),
            (
                with(&|v| {
                    v.as_object_mut().unwrap().remove("domain");
                }),
                "missing \"domain\"",
            ),
            (
                with(&|v| v["types"]["Mail"][2]["type"] = "uint8".into()),
                "typed data",
            ),
        ] {
            assert!(
                got.starts_with("invalid typed data") && got.contains(expected),
                "{got}"
            );
        }
        assert!(parse_typed_data("typed data", "[]").is_err());
        assert!(parse_typed_data("typed data", "{").is_err());
    }
}
