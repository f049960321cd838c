//! What a transaction's sender leaves for the node to fill in (nonce, fees, blob fee, gas), asked for
//! without trusting the answers: fee suggestions are capped, and a gas estimate must cover
//! the gas the transaction needs before any code runs. `send` and the signing service's
//! `eth_sendTransaction` both fill through here.

use anyhow::{bail, Context, Result};
use kms_eth_core::fees::intrinsic_gas;
use kms_eth_core::txinputs::{Kind, TxInputs};
use kms_eth_signer::{format_gwei, Address, U256};
use serde_json::{json, Value};

use crate::client::{parse_quantity, parse_u256, Rpc};

/// The sender's pending transaction count as the nonce, if none was given.
pub async fn fill_nonce(node: &impl Rpc, from: Address, inputs: &mut TxInputs) -> Result<()> {
    if inputs.nonce.is_none() {
        inputs.nonce = Some(parse_quantity(
            &node
                .call(
                    "eth_getTransactionCount",
                    json!([from.to_string(), "pending"]),
                )
                .await?,
        )?);
    }
    Ok(())
}

/// The fees and gas limit that were not given, from the node, checked.
pub async fn fill_fees_and_gas(
    node: &impl Rpc,
    from: Address,
    inputs: &mut TxInputs,
    cap: U256,
) -> Result<()> {
    let capped = |what: &str, fee: U256| -> Result<U256> {
        if fee > cap {
            bail!(
                "the node at {} suggests a {what} of {} gwei, above --fee-cap {} gwei; the \
                 network may be congested or the node wrong. Give the fee as a flag to pay \
                 it, or raise --fee-cap",
                node.shown(),
                format_gwei(fee),
                format_gwei(cap)
            );
        }
        Ok(fee)
    };
    match inputs.kind {
        Kind::Eip1559 | Kind::Eip4844 | Kind::Eip7702 => {
            if inputs.max_priority_fee_per_gas.is_none() {
                let tip = parse_u256(&node.call("eth_maxPriorityFeePerGas", json!([])).await?)?;
                let tip = capped("priority fee per gas", tip)?;
                // A tip above a max fee the user gave could never be paid in full.
                inputs.max_priority_fee_per_gas =
                    Some(inputs.max_fee_per_gas.map_or(tip, |max| tip.min(max)));
            }
            if inputs.max_fee_per_gas.is_none() {
                let block = node
                    .call("eth_getBlockByNumber", json!(["latest", false]))
                    .await?;
                let base_fee = parse_u256(&block["baseFeePerGas"])
                    .context("the node's latest block has no base fee")?;
                // Room for the base fee to double, as wallets do, plus the tip.
                let tip = inputs.max_priority_fee_per_gas.unwrap_or_default();
                let max_fee = base_fee
                    .checked_mul(U256::from(2))
                    .and_then(|fee| fee.checked_add(tip))
                    .context("the node's base fee is out of range")?;
                inputs.max_fee_per_gas = Some(capped("max fee per gas", max_fee)?);
            }
        }
        Kind::Legacy | Kind::Eip2930 => {
            if inputs.gas_price.is_none() {
                let price = parse_u256(&node.call("eth_gasPrice", json!([])).await?)?;
                inputs.gas_price = Some(capped("gas price", price)?);
            }
        }
    }
    if inputs.kind == Kind::Eip4844 && inputs.max_fee_per_blob_gas.is_none() {
        let base = parse_u256(&node.call("eth_blobBaseFee", json!([])).await?)
            .context("the node's eth_blobBaseFee answer")?;
        // Room for the blob base fee to double, as for the base fee.
        let max = base
            .checked_mul(U256::from(2))
            .context("the node's blob base fee is out of range")?;
        inputs.max_fee_per_blob_gas = Some(capped("max fee per blob gas", max)?);
    }
    if inputs.gas_limit.is_none() {
        let estimate = parse_quantity(
            &node
                .call("eth_estimateGas", json!([estimate_call(from, inputs)]))
                .await?,
        )?;
        let least = intrinsic_gas(
            inputs.create,
            &inputs.data,
            &inputs.access_list,
            inputs.authorizations.len(),
        );
        if estimate < least {
            bail!(
                "the node at {} estimates {estimate} gas, below the {least} this transaction \
                 needs before any code runs; give --gas-limit",
                node.shown()
            );
        }
        inputs.gas_limit = Some(estimate);
    }
    // Named by the command line's flags, as the messages above are.
    Ok(inputs
        .check()
        .map_err(|err| err.usage(&kms_eth_core::input::Flags))?)
}

/// The `eth_estimateGas` call object: everything that changes the gas, the access list
/// and the type included (an estimate without the access list comes out below the gas a
/// transaction with one needs).
pub fn estimate_call(from: Address, inputs: &TxInputs) -> Value {
    let hex = |value: U256| format!("{value:#x}");
    let mut call = json!({
        "from": from.to_string(),
        "value": hex(inputs.value),
        "data": format!("0x{}", hex::encode(&inputs.data)),
    });
    if let Some(to) = inputs.to {
        call["to"] = to.to_string().into();
    }
    call["type"] = format!("{:#x}", inputs.kind.type_byte()).into();
    if let (Kind::Eip4844, Some(sidecar)) = (inputs.kind, &inputs.sidecar) {
        // A blob transaction is estimated as one, with its versioned hashes.
        call["blobVersionedHashes"] = sidecar
            .versioned_hashes()
            .iter()
            .map(|hash| format!("0x{}", hex::encode(hash)))
            .collect();
        if let Some(max) = inputs.max_fee_per_blob_gas {
            call["maxFeePerBlobGas"] = hex(max).into();
        }
    }
    if inputs.kind == Kind::Eip7702 {
        // The delegations change what the call runs: they are part of the estimate.
        call["authorizationList"] = inputs
            .authorizations
            .iter()
            .map(authorization_json)
            .collect();
    }
    if inputs.kind != Kind::Legacy {
        call["accessList"] = inputs
            .access_list
            .iter()
            .map(|item| {
                json!({
                    "address": item.address.to_string(),
                    "storageKeys": item
                        .storage_keys
                        .iter()
                        .map(|key| format!("0x{}", hex::encode(key)))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    match inputs.kind {
        Kind::Eip1559 | Kind::Eip4844 | Kind::Eip7702 => {
            if let Some(max) = inputs.max_fee_per_gas {
                call["maxFeePerGas"] = hex(max).into();
            }
            if let Some(tip) = inputs.max_priority_fee_per_gas {
                call["maxPriorityFeePerGas"] = hex(tip).into();
            }
        }
        Kind::Legacy | Kind::Eip2930 => {
            if let Some(price) = inputs.gas_price {
                call["gasPrice"] = hex(price).into();
            }
        }
    }
    call
}

/// A signed EIP-7702 authorization in the JSON-RPC specification's names.
pub fn authorization_json(signed: &kms_eth_signer::SignedAuthorization) -> Value {
    let a = &signed.authorization;
    json!({
        "chainId": format!("{:#x}", a.chain_id),
        "address": a.address.to_string(),
        "nonce": format!("{:#x}", a.nonce),
        "yParity": format!("{:#x}", u8::from(signed.signature.y_parity)),
        "r": format!("{:#x}", U256::from_be_bytes(signed.signature.r)),
        "s": format!("{:#x}", U256::from_be_bytes(signed.signature.s)),
    })
}
