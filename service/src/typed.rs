//! EIP-712 typed data for the JSON-RPC methods: `eth_signTypedData_v4`, and the two older
//! names clients still call (`eth_signTypedData`, which web3.py's `sign_typed_data` sends,
//! and `eth_signTypedData_v3`), answered with v4's semantics when given a v4 document
//! (`{types, primaryType, domain, message}`); the v1 format (a list of `{type, name,
//! value}`) is refused. Never forwarded to the node, whose accounts are not the service's.
//! Addresses in the document written in mixed case must carry a correct EIP-55 checksum,
//! as everywhere else in a request.

use kms_eth_core::txobject::parse_account;
use kms_eth_core::typed_data::parse_typed_data_value;
use serde_json::{json, Map, Value};

use crate::error::{failure, RpcFailure, INVALID_PARAMS};
use crate::service::Service;
use crate::sign::sign_digest;

/// The typed-data signature `method` asks for with `params`.
pub async fn sign_typed_data(
    service: &Service,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcFailure> {
    let invalid = |message: String| RpcFailure::new(INVALID_PARAMS, message);
    let (address, document) = match params {
        [address, document, ..] => {
            // MetaMask's eth_signTypedData (v1) took the document first.
            if method == "eth_signTypedData" && !address.is_string() && document.is_string() {
                (document, address)
            } else {
                (address, document)
            }
        }
        _ => {
            return Err(invalid(format!(
                "{method} needs its address and typed data parameters"
            )))
        }
    };
    let document = match document {
        Value::String(text) => serde_json::from_str(text)
            .map_err(|err| invalid(format!("invalid typedData: not JSON: {err}")))?,
        other => other.clone(),
    };
    if document.is_array() {
        return Err(invalid(format!(
            "invalid typedData: {method} was given the v1 format (a list of {{type, name, \
             value}}), which this service does not sign; send an EIP-712 document \
             {{\"types\", \"primaryType\", \"domain\", \"message\"}} (eth_signTypedData_v4)"
        )));
    }
    let account = service.account(&parse_account("address", address).map_err(failure)?)?;
    check_checksums(&document)?;
    let request = parse_typed_data_value("typedData", &document).map_err(failure)?;
    // As wallets do: typed data for another chain is not signed on this one.
    if let Some(chain_id) = request.domain.chain_id.filter(|id| *id != service.chain_id) {
        return Err(invalid(format!(
            "invalid typedData: its domain is for chain {chain_id}, but this service signs \
             for chain {}",
            service.chain_id
        )));
    }
    service.check_rate(account).await?;
    service.check_typed_data(account.address, &request)?;
    let signature = sign_digest(service, account, request.domain.chain_id, &request.digest).await?;
    Ok(json!(format!(
        "0x{}",
        hex::encode(signature.to_rsv_bytes())
    )))
}

/// Every address of the document (the domain's verifying contract, and each message value
/// its types say is an `address`) that is written in mixed case has a correct EIP-55
/// checksum: a wrong one usually means a typo, and the signature would be over another
/// address. The walk follows the message, so its depth is the JSON's (which serde bounds).
fn check_checksums(document: &Value) -> Result<(), RpcFailure> {
    if let Some(contract) = document["domain"]["verifyingContract"].as_str() {
        address("typedData.domain.verifyingContract", contract)?;
    }
    if let (Some(types), Some(primary)) = (
        document["types"].as_object(),
        document["primaryType"].as_str(),
    ) {
        walk(types, primary, &document["message"], "typedData.message")?;
    }
    Ok(())
}

fn address(path: &str, text: &str) -> Result<(), RpcFailure> {
    kms_eth_core::txinputs::parse_address(path, text)
        .map(|_| ())
        .map_err(failure)
}

/// Checks the addresses in `value`, of type `kind` under `types`, at `path`.
fn walk(
    types: &Map<String, Value>,
    kind: &str,
    value: &Value,
    path: &str,
) -> Result<(), RpcFailure> {
    if let Some(element) = kind.strip_suffix(']').and_then(|k| k.rsplit_once('[')) {
        for (index, item) in value.as_array().into_iter().flatten().enumerate() {
            walk(types, element.0, item, &format!("{path}[{index}]"))?;
        }
        return Ok(());
    }
    if kind == "address" {
        return match value.as_str() {
            Some(text) => address(path, text),
            None => Ok(()), // not text: the typed-data check names what is wrong with it
        };
    }
    for field in types
        .get(kind)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(kind)) = (field["name"].as_str(), field["type"].as_str()) {
            if let Some(inner) = value.get(name) {
                walk(types, kind, inner, &format!("{path}.{name}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_checksum_anywhere_in_the_document_is_refused_by_its_path() {
        let document = |contract: &str, wallet: &str| {
            json!({
                "types": {
                    "EIP712Domain": [{ "name": "verifyingContract", "type": "address" }],
                    "Person": [{ "name": "wallet", "type": "address" }],
                    "Mail": [{ "name": "to", "type": "Person[]" }],
                },
                "primaryType": "Mail",
                "domain": { "verifyingContract": contract },
                "message": { "to": [{ "wallet": wallet }] },
            })
        };
        let good = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
        let lower = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
        let wrong = "0x70997970c51812dc3a010c7d01b50e0d17dc79C8";
        assert!(check_checksums(&document(good, lower)).is_ok());
        let refused = check_checksums(&document(good, wrong)).unwrap_err();
        assert!(
            refused.message.contains("typedData.message.to[0].wallet")
                && refused.message.contains("checksum"),
            "{}",
            refused.message
        );
        let refused = check_checksums(&document(wrong, lower)).unwrap_err();
        assert!(
            refused
                .message
                .contains("typedData.domain.verifyingContract"),
            "{}",
            refused.message
        );
    }
}
