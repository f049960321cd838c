//! `cargo xtask send`: fill in what was not given from the node, sign with KMS, broadcast,
//! and wait for the receipt.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kms_eth_signer::{Address, Signer, U256};
use serde_json::{json, Value};
use xtask::rpc::{parse_quantity, parse_u256, rpc};
use xtask::UsageError;

use crate::flags::SendArgs;
use crate::txargs::{self, Kind, TxInputs};
use crate::ui::{self, Aws};

pub fn run(args: SendArgs) -> Result<()> {
    ui::check_account(&args.account)?;
    let mut inputs = TxInputs::parse(&args.tx)?;
    let url = args.rpc_url.clone();
    ui::block_on(async move {
        // The node is asked before KMS: a wrong chain id must stop the send before signing.
        let node_chain = parse_quantity(&rpc(&url, "eth_chainId", json!([]))?)?;
        match inputs.chain_id {
            Some(given) if given != node_chain => {
                return Err(UsageError(format!(
                    "invalid --chain-id: {given} is not the chain of {url}, which is {node_chain}"
                ))
                .into())
            }
            _ => inputs.chain_id = Some(node_chain),
        }
        let aws = Aws::connect(&args.target).await?;
        let signer = ui::signer_for(&aws, &args.account).await?;
        let from = signer.address();
        fill_from_node(&url, from, &mut inputs)?;
        let tx = inputs.complete()?;
        let signed = signer.sign_transaction(tx).await?;
        let hash = format!("0x{}", hex::encode(signed.hash));
        eprintln!("[kms-eth] sending {hash} from {from}");
        rpc(&url, "eth_sendRawTransaction", json!([signed.raw_hex()]))?;
        let receipt = wait_for_receipt(&url, &hash, Duration::from_secs(args.timeout))?;
        let status = parse_quantity(&receipt["status"])?;
        let block = parse_quantity(&receipt["blockNumber"])?;
        if args.json {
            let mut out = txargs::describe(&signed, Some(from));
            out["block_number"] = block.into();
            out["status"] = status.into();
            out["gas_used"] = parse_quantity(&receipt["gasUsed"])?.into();
            out!("{out:#}");
        } else {
            out!("hash    {hash}");
            out!("block   {block}");
            out!(
                "status  {}",
                if status == 1 {
                    "1 (success)"
                } else {
                    "0 (reverted)"
                }
            );
        }
        if status != 1 {
            bail!("transaction {hash} was mined in block {block} but reverted");
        }
        Ok(())
    })
}

/// Asks the node for the nonce (pending), fees and gas that were not given.
fn fill_from_node(url: &str, from: Address, inputs: &mut TxInputs) -> Result<()> {
    if inputs.nonce.is_none() {
        inputs.nonce = Some(parse_quantity(&rpc(
            url,
            "eth_getTransactionCount",
            json!([from.to_string(), "pending"]),
        )?)?);
    }
    match inputs.kind {
        Kind::Eip1559 => {
            if inputs.max_priority_fee_per_gas.is_none() {
                inputs.max_priority_fee_per_gas = Some(parse_u256(&rpc(
                    url,
                    "eth_maxPriorityFeePerGas",
                    json!([]),
                )?)?);
            }
            if inputs.max_fee_per_gas.is_none() {
                let block = rpc(url, "eth_getBlockByNumber", json!(["latest", false]))?;
                let base_fee = parse_u256(&block["baseFeePerGas"])
                    .context("the node's latest block has no base fee")?;
                // Room for the base fee to double, as wallets do, plus the tip.
                let tip = inputs.max_priority_fee_per_gas.unwrap_or_default();
                inputs.max_fee_per_gas = Some(base_fee * U256::from(2) + tip);
            }
        }
        Kind::Legacy | Kind::Eip2930 => {
            if inputs.gas_price.is_none() {
                inputs.gas_price = Some(parse_u256(&rpc(url, "eth_gasPrice", json!([]))?)?);
            }
        }
    }
    if inputs.gas_limit.is_none() {
        let mut call = json!({
            "from": from.to_string(),
            "value": format!("{:#x}", inputs.value),
            "data": format!("0x{}", hex::encode(&inputs.data)),
        });
        if let Some(to) = inputs.to {
            call["to"] = to.to_string().into();
        }
        inputs.gas_limit = Some(parse_quantity(&rpc(
            url,
            "eth_estimateGas",
            json!([call]),
        )?)?);
    }
    inputs.check()
}

/// Polls for the receipt, showing progress, for at most `timeout`.
fn wait_for_receipt(url: &str, hash: &str, timeout: Duration) -> Result<Value> {
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let receipt = rpc(url, "eth_getTransactionReceipt", json!([hash]))?;
        if !receipt.is_null() {
            return Ok(receipt);
        }
        if started.elapsed() > timeout {
            bail!(
                "transaction {hash} was not mined within {} s; it may still be pending",
                timeout.as_secs()
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "[kms-eth] waiting for {hash} to be mined ({} s)",
                started.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
