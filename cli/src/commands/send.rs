//! `kms-eth send`: fill in what was not given from the node, sign with KMS, broadcast,
//! and wait for the receipt.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kms_eth_core::UsageError;
use kms_eth_signer::{Address, Signer, U256};
use serde::Serialize;
use serde_json::{json, Value};

use crate::flags::SendArgs;
use crate::msg;
use crate::node::{parse_quantity, parse_u256, Node};
use crate::output::Report;
use crate::session::Session;
use crate::txreport::{Kind, TransactionReport, TxInputs};

/// The transaction that was sent and its receipt.
#[derive(Debug, Serialize)]
pub struct SendReport {
    #[serde(flatten)]
    pub transaction: TransactionReport,
    pub block_number: u64,
    /// 1 success, 0 reverted.
    pub status: u64,
    pub gas_used: u64,
}

impl fmt::Display for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hash    {}", self.transaction.hash)?;
        writeln!(f, "block   {}", self.block_number)?;
        write!(
            f,
            "status  {}",
            if self.status == 1 {
                "1 (success)"
            } else {
                "0 (reverted)"
            }
        )
    }
}

impl Report for SendReport {}

impl SendArgs {
    /// Checks the flags before any call.
    pub fn check(&self) -> Result<()> {
        super::check_account(&self.account)?;
        self.tx.inputs()?;
        Node::new(&self.rpc_url)?;
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<SendReport> {
        let mut inputs = self.tx.inputs()?;
        let node = Node::new(&self.rpc_url)?;
        // The node is asked before KMS: a wrong chain id must stop the send before signing.
        let node_chain = parse_quantity(&node.call("eth_chainId", json!([])).await?)?;
        match inputs.chain_id {
            Some(given) if given != node_chain => {
                return Err(UsageError(format!(
                    "invalid --chain-id: {given} is not the chain of {}, which is {node_chain}",
                    node.shown()
                ))
                .into())
            }
            _ => inputs.chain_id = Some(node_chain),
        }
        let signer = session.signer(&self.account).await?;
        let from = signer.address();
        fill_from_node(&node, from, &mut inputs).await?;
        let tx = inputs.complete()?;
        let signed = signer.sign_transaction(tx).await?;
        let transaction = TransactionReport::new(&signed, Some(from));
        let hash = transaction.hash.clone();
        msg::note(format!("sending {hash} from {from}"));
        node.call("eth_sendRawTransaction", json!([signed.raw_hex()]))
            .await?;
        let receipt = wait_for_receipt(&node, &hash, Duration::from_secs(self.timeout)).await?;
        let status = parse_quantity(&receipt["status"])?;
        let block_number = parse_quantity(&receipt["blockNumber"])?;
        if status != 1 {
            bail!("transaction {hash} was mined in block {block_number} but reverted");
        }
        Ok(SendReport {
            transaction,
            block_number,
            status,
            gas_used: parse_quantity(&receipt["gasUsed"])?,
        })
    }
}

/// Asks the node for the nonce (pending), fees and gas that were not given.
async fn fill_from_node(node: &Node, from: Address, inputs: &mut TxInputs) -> Result<()> {
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
    match inputs.kind {
        Kind::Eip1559 => {
            if inputs.max_priority_fee_per_gas.is_none() {
                inputs.max_priority_fee_per_gas = Some(parse_u256(
                    &node.call("eth_maxPriorityFeePerGas", json!([])).await?,
                )?);
            }
            if inputs.max_fee_per_gas.is_none() {
                let block = node
                    .call("eth_getBlockByNumber", json!(["latest", false]))
                    .await?;
                let base_fee = parse_u256(&block["baseFeePerGas"])
                    .context("the node's latest block has no base fee")?;
                // Room for the base fee to double, as wallets do, plus the tip.
                let tip = inputs.max_priority_fee_per_gas.unwrap_or_default();
                inputs.max_fee_per_gas = Some(base_fee * U256::from(2) + tip);
            }
        }
        Kind::Legacy | Kind::Eip2930 => {
            if inputs.gas_price.is_none() {
                inputs.gas_price = Some(parse_u256(&node.call("eth_gasPrice", json!([])).await?)?);
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
        inputs.gas_limit = Some(parse_quantity(
            &node.call("eth_estimateGas", json!([call])).await?,
        )?);
    }
    inputs.check()
}

/// Polls for the receipt, showing progress, for at most `timeout`.
async fn wait_for_receipt(node: &Node, hash: &str, timeout: Duration) -> Result<Value> {
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let receipt = node
            .call("eth_getTransactionReceipt", json!([hash]))
            .await?;
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
            msg::note(format!(
                "waiting for {hash} to be mined ({} s)",
                started.elapsed().as_secs()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
