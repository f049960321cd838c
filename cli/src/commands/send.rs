//! `kms-eth send`: fill in what was not given from the node, sign with KMS, broadcast,
//! and wait for the receipt.
//!
//! The node is not trusted with anything that moves value. Its chain id must be the one
//! the user gave; its fee suggestions are capped; its gas estimate must cover the gas the
//! transaction needs before any code runs; the worst-case cost is shown, and confirmed
//! above a threshold, before KMS is asked; its receipt must be for the transaction sent.
//! Once a transaction may have been broadcast, every way the command can end without
//! knowing its outcome says so with its own exit code, because running `send` again would
//! pay a second time.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kms_eth_core::fees::{max_blob_cost, max_cost, public_network};
use kms_eth_core::UsageError;
use kms_eth_signer::{format_ether, format_gwei, Address, Signer, U256};
use serde::Serialize;
use serde_json::{json, Value};

use crate::flags::{flag_error, SendArgs};
use crate::msg;
use crate::output::Report;
use crate::session::Session;
use crate::txreport::{TransactionReport, TxInputs};
use crate::ui;
use kms_eth_node::fill::{fill_fees_and_gas, fill_nonce};
use kms_eth_node::{parse_quantity, Node, RpcError};

/// The transaction that was sent and its receipt.
#[derive(Debug, Serialize)]
pub struct SendReport {
    #[serde(flatten)]
    pub transaction: TransactionReport,
    /// The most the transaction could cost, in wei: gas limit x max fee per gas (+ blob gas
    /// x max fee per blob gas) + value.
    pub max_cost: String,
    pub max_cost_ether: String,
    pub block_number: u64,
    /// 1 success, 0 reverted.
    pub status: u64,
    pub gas_used: u64,
    /// The blob gas the receipt says was used (type 4844).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_gas_used: Option<u64>,
    /// The created contract's address (with --create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract_address: Option<String>,
}

impl fmt::Display for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hash    {}", self.transaction.hash)?;
        writeln!(f, "block   {}", self.block_number)?;
        if let Some(contract) = &self.contract_address {
            writeln!(f, "contract {contract}")?;
        }
        if let Some(blob_gas) = self.blob_gas_used {
            writeln!(f, "blob gas {blob_gas}")?;
        }
        write!(f, "status  1 (success)")
    }
}

impl Report for SendReport {}

/// A transaction that was, or may have been, broadcast, and whose outcome the command does
/// not know: it exits 3, and the message says to check before sending again.
#[derive(Debug)]
pub struct OutcomeUnknown {
    pub hash: String,
    pub nonce: u64,
    pub from: Address,
    pub reason: String,
}

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the outcome of transaction {} (nonce {} from {}) is not known: {}. It was \
             broadcast: check it before sending again (for example `cast receipt {}`); a new \
             send would take the next nonce and pay a second time",
            self.hash, self.nonce, self.from, self.reason, self.hash
        )
    }
}

impl std::error::Error for OutcomeUnknown {}

impl SendArgs {
    /// Checks the flags before any call.
    pub fn check(&self) -> Result<()> {
        super::check_account(&self.account)?;
        let inputs = self.tx.inputs()?;
        if inputs.chain_id.is_none() {
            return Err(UsageError(
                "missing --chain-id: send needs the chain id and checks that the node is on \
                 it (a node that lies about its chain would otherwise get a transaction valid \
                 on another); 1 mainnet, 11155111 Sepolia, 31337 anvil, ..."
                    .to_owned(),
            )
            .into());
        }
        Node::new(&self.rpc_url)?;
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<SendReport> {
        self.check()?;
        let mut inputs = self.tx.inputs()?;
        let chain_id = inputs.chain_id.unwrap_or_default();
        let node = Node::new(&self.rpc_url)?;
        // The node is asked before KMS: a wrong chain must stop the send before signing.
        let node_chain = parse_quantity(&node.call("eth_chainId", json!([])).await?)?;
        if node_chain != chain_id {
            return Err(UsageError(format!(
                "invalid --chain-id: the node at {} is on chain {node_chain}, not {chain_id}; \
                 check --rpc-url and --chain-id",
                node.shown()
            ))
            .into());
        }
        if let (true, Some(network)) = (session.target.is_localstack(), public_network(chain_id)) {
            return Err(UsageError(format!(
                "refusing to send on {network} (chain {chain_id}) with a LocalStack test key: \
                 LocalStack keeps its private keys in its own files, unprotected. Use \
                 --target aws with a real KMS key for a public network"
            ))
            .into());
        }
        let signer = session.signer(&self.account).await?;
        let from = signer.address();
        let nonce_given = inputs.nonce.is_some();
        fill_nonce(&node, from, &mut inputs).await?;
        if !nonce_given {
            check_pending_nonce(&node, from, inputs.nonce.unwrap_or_default()).await?;
        }
        if let Some(delegate) = self.tx.delegate {
            super::delegate_self(&signer, &mut inputs, delegate).await?;
        }
        fill_fees_and_gas(&node, from, &mut inputs, self.fee_cap).await?;
        let cost = self.confirm_cost(&inputs).await?;
        let tx = inputs.complete().map_err(flag_error)?;
        let signed = signer.sign_transaction(tx).await?;
        let transaction = TransactionReport::new(&signed, Some(from));
        let unknown = |reason: String| OutcomeUnknown {
            hash: transaction.hash.clone(),
            nonce: transaction.nonce,
            from,
            reason,
        };
        msg::note(format!(
            "sending {} (nonce {}) from {from}",
            transaction.hash, transaction.nonce
        ));
        let no_answer = broadcast(&node, &transaction.raw, &transaction.hash).await?;
        let receipt = wait_for_receipt(&node, &transaction.hash, Duration::from_secs(self.timeout))
            .await
            .map_err(|reason| match &no_answer {
                Some(broadcast) => unknown(format!(
                    "the broadcast got no answer ({broadcast}) and {reason}"
                )),
                None => unknown(reason),
            })?;
        let status =
            parse_quantity(&receipt["status"]).map_err(|err| unknown(format!("{err:#}")))?;
        let block_number =
            parse_quantity(&receipt["blockNumber"]).map_err(|err| unknown(format!("{err:#}")))?;
        if status != 1 {
            bail!(
                "transaction {} was mined in block {block_number} but reverted (status 0); \
                 its gas was paid",
                transaction.hash
            );
        }
        Ok(SendReport {
            max_cost: cost.to_string(),
            max_cost_ether: format_ether(cost),
            block_number,
            status,
            gas_used: parse_quantity(&receipt["gasUsed"]).unwrap_or_default(),
            blob_gas_used: parse_quantity(&receipt["blobGasUsed"])
                .ok()
                .filter(|_| transaction.tx_type == 3),
            contract_address: receipt["contractAddress"].as_str().map(str::to_owned),
            transaction,
        })
    }

    /// Shows the worst-case cost and, above `--confirm-above`, asks before signing.
    async fn confirm_cost(&self, inputs: &TxInputs) -> Result<U256> {
        let (Some(gas_limit), Some(price)) = (inputs.gas_limit, inputs.price_per_gas()) else {
            bail!("the gas limit or fee is still unknown after asking the node");
        };
        let too_big = || {
            format!(
                "the worst-case cost (gas limit {gas_limit} x {price} wei per gas + value {} \
                 wei{}) does not fit in 256 bits; check --gas-limit and the fees",
                inputs.value,
                if inputs.blob_gas() > 0 {
                    " + blob gas x max fee per blob gas"
                } else {
                    ""
                }
            )
        };
        let blob_fee = inputs.max_fee_per_blob_gas.unwrap_or_default();
        let blob_gas = inputs.blob_gas();
        let cost = max_cost(gas_limit, price, inputs.value)
            .zip(max_blob_cost(blob_gas, blob_fee))
            .and_then(|(cost, blobs)| cost.checked_add(blobs))
            .with_context(too_big)?;
        let blobs = if blob_gas > 0 {
            format!(
                " + blob gas {blob_gas} ({} blobs x 131072) x {} gwei per blob gas",
                blob_gas / 131_072,
                format_gwei(blob_fee)
            )
        } else {
            String::new()
        };
        let summary = format!(
            "worst-case cost {} ether: gas limit {gas_limit} x {} gwei per gas{blobs} + value {} \
             ether",
            format_ether(cost),
            format_gwei(price),
            format_ether(inputs.value)
        );
        msg::note(&summary);
        if cost > self.confirm_above {
            ui::confirm(
                format!(
                    "The {summary} is above --confirm-above {} ether. Sign and send?",
                    format_ether(self.confirm_above)
                ),
                self.yes,
            )
            .await?;
        }
        Ok(cost)
    }
}

/// Broadcasts `raw`. A node that answers with an error refused it and nothing was
/// broadcast: that ends the command (exit 1). Otherwise the outcome is found by polling for
/// the receipt; what is returned is why it may not have arrived (no answer at all).
pub(crate) async fn broadcast(node: &Node, raw: &str, hash: &str) -> Result<Option<String>> {
    match node.call("eth_sendRawTransaction", json!([raw])).await {
        Ok(answer) => {
            if let Some(answered) = answer.as_str().filter(|a| !a.eq_ignore_ascii_case(hash)) {
                // The hash is ours to compute, not the node's to say: follow our own.
                msg::warn(format!(
                    "the node answered the broadcast with the hash {answered}, not {hash}; \
                     following {hash}"
                ));
            }
            Ok(None)
        }
        Err(err) => match err.downcast_ref::<RpcError>() {
            // It already has this very transaction: the earlier broadcast is the one to follow.
            Some(rpc) if rpc.message.to_ascii_lowercase().contains("already known") => Ok(None),
            Some(_) => Err(err.context(format!(
                "the node refused transaction {hash}; nothing was broadcast"
            ))),
            None => {
                let reason = format!("{err:#}");
                msg::warn(format!(
                    "the broadcast got no answer ({reason}); looking for its receipt in case it arrived"
                ));
                Ok(Some(reason))
            }
        },
    }
}

/// Polls for the receipt of `hash`, showing progress, for at most `timeout`. A failed
/// poll is retried: the transaction is out, and only its receipt can say what became of
/// it. The error is why the outcome is not known.
pub(crate) async fn wait_for_receipt(
    node: &Node,
    hash: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let started = Instant::now();
    let mut last_report = started;
    let mut last_failure: Option<String> = None;
    loop {
        match node.call("eth_getTransactionReceipt", json!([hash])).await {
            Ok(receipt) if !receipt.is_null() => {
                let answered = receipt["transactionHash"].as_str().unwrap_or_default();
                if !answered.eq_ignore_ascii_case(hash) {
                    return Err(format!(
                        "the node answered with a receipt for {}, not for {hash}",
                        if answered.is_empty() {
                            "no transaction"
                        } else {
                            answered
                        }
                    ));
                }
                return Ok(receipt);
            }
            Ok(_) => {}
            Err(err) => {
                let failure = format!("{err:#}");
                if last_failure.as_ref() != Some(&failure) {
                    msg::warn(format!(
                        "asking for the receipt failed ({failure}); retrying"
                    ));
                }
                last_failure = Some(failure);
            }
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "it was not mined within {} s (--timeout){}",
                timeout.as_secs(),
                last_failure
                    .map(|failure| format!(", and the last poll failed: {failure}"))
                    .unwrap_or_default()
            ));
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

/// How far the node's pending nonce may run ahead of its latest one before `send` stops: a
/// few transactions of the user's own may be waiting, many more are the node's invention.
pub const MAX_PENDING_AHEAD: u64 = 8;

/// Refuses a pending nonce more than [`MAX_PENDING_AHEAD`] above the latest: a transaction
/// signed with a nonce the node made up can be held by it and broadcast later, after the
/// user has sent again with the right one.
async fn check_pending_nonce(node: &Node, from: Address, pending: u64) -> Result<()> {
    let latest = parse_quantity(
        &node
            .call(
                "eth_getTransactionCount",
                json!([from.to_string(), "latest"]),
            )
            .await?,
    )?;
    if pending > latest.saturating_add(MAX_PENDING_AHEAD) {
        bail!(
            "{} says {from} has pending nonce {pending} but mined nonce {latest}: more than \
             {MAX_PENDING_AHEAD} transactions waiting is not what this account did, and a \
             transaction signed with nonce {pending} could be held and broadcast later. Nothing \
             was signed; check the node, or give the nonce yourself with --nonce",
            node.shown()
        );
    }
    Ok(())
}
