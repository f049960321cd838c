//! `kms-eth account migrate`: rotation for an Ethereum account, which KMS cannot do for an
//! asymmetric key. Everything account A holds that it was asked to move (the listed ERC-20
//! tokens first, then the native coin minus the exact fee of its own transfer) goes to
//! account B, each transfer waited for; then, with `--retire`, A's key is scheduled for
//! deletion once A is seen to hold nothing.
//!
//! Every step reads the chain before acting, so a run killed anywhere is re-run to the same
//! end: a transfer still in flight is waited for (A's pending nonce above its latest), a
//! token already moved is a zero balance, and the native sweep is the last transaction.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kms_eth_core::txinputs::{Kind, TxInputs};
use kms_eth_core::UsageError;
use kms_eth_node::fill::fill_fees_and_gas;
use kms_eth_node::{parse_quantity, parse_u256, Node};
use kms_eth_signer::{format_ether, format_gwei, Address, KmsSigner, Signer, U256};
use serde::Serialize;
use serde_json::json;

use crate::commands::send::{broadcast, wait_for_receipt};
use crate::flags::{AccountArgs, KeyArgs, MigrateArgs};
use crate::msg;
use crate::output::Report;
use crate::session::Session;
use crate::txreport::TransactionReport;
use crate::ui;

/// The gas of a plain transfer of the native coin to an account without code: exact, so
/// the sweep's fee is known before it is sent.
const TRANSFER_GAS: u64 = 21_000;

/// What the migration did and left.
#[derive(Debug, Serialize)]
pub struct MigrateReport {
    pub from: String,
    pub to: String,
    pub chain_id: u64,
    /// The transactions this run sent (a re-run sends only what is left).
    pub transactions: Vec<String>,
    /// What A holds of the native coin afterwards, in wei (0 after a sweep).
    pub native_left: String,
    /// Each listed token and what A holds of it afterwards.
    pub tokens_left: Vec<TokenLeft>,
    /// A's key, when `--retire` scheduled its deletion.
    pub retired_key: Option<String>,
    pub deletion_date: Option<String>,
}

/// A token's balance at A after the migration.
#[derive(Debug, Serialize)]
pub struct TokenLeft {
    pub token: String,
    pub balance: String,
}

impl fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "from            {}", self.from)?;
        writeln!(f, "to              {}", self.to)?;
        for hash in &self.transactions {
            writeln!(f, "sent            {hash}")?;
        }
        for token in &self.tokens_left {
            writeln!(f, "token left      {} at {}", token.balance, token.token)?;
        }
        if let Some(key) = &self.retired_key {
            writeln!(
                f,
                "retired key     {key} (deletion on {})",
                self.deletion_date.as_deref().unwrap_or("?")
            )?;
        }
        write!(f, "native left     {} wei", self.native_left)
    }
}

impl Report for MigrateReport {}

fn account(key_id: &Option<String>, stack_name: &Option<String>) -> AccountArgs {
    AccountArgs {
        key: KeyArgs {
            key_id: key_id.clone(),
            stack_name: stack_name.clone(),
        },
        expect_address: None,
    }
}

impl MigrateArgs {
    pub fn check(&self) -> Result<()> {
        for (flag, key, stack) in [
            (
                "--from-key or --from-stack",
                &self.from_key,
                &self.from_stack,
            ),
            ("--to-key or --to-stack", &self.to_key, &self.to_stack),
        ] {
            if key.is_some() == stack.is_some() {
                return Err(UsageError(format!("give exactly one of {flag}")).into());
            }
        }
        Node::new(&self.rpc_url)
            .map_err(|err| UsageError(format!("invalid --rpc-url: {err:#}")))?;
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<MigrateReport> {
        self.check()?;
        let node = Node::new(&self.rpc_url)?;
        let chain = parse_quantity(&node.call("eth_chainId", json!([])).await?)?;
        if chain != self.chain_id {
            return Err(UsageError(format!(
                "invalid --chain-id: the node at {} is on chain {chain}, not {}",
                node.shown(),
                self.chain_id
            ))
            .into());
        }
        let signer = session
            .signer(&account(&self.from_key, &self.from_stack))
            .await?;
        let to = session
            .reader(&account(&self.to_key, &self.to_stack))
            .await?
            .address();
        let from = signer.address();
        if from == to {
            return Err(UsageError(format!("A and B are the same account, {from}")).into());
        }
        // A transfer to a contract (or a delegated account) runs code: its gas, and so the
        // exact fee, is not known in advance.
        let code = node
            .call("eth_getCode", json!([to.to_string(), "latest"]))
            .await?;
        if code.as_str().is_some_and(|c| c != "0x") {
            bail!("B ({to}) has code: the native sweep's gas would not be exact; refusing");
        }
        let mut migration = Migration {
            node,
            signer,
            to,
            chain_id: chain,
            fee_cap: self.fee_cap,
            timeout: Duration::from_secs(self.timeout),
            sent: Vec::new(),
        };
        // Whatever a killed run left in flight is finished first.
        migration.settle().await?;
        let plan = migration.plan(&self.tokens).await?;
        msg::note(format!("migration from {from} to {to} on chain {chain}:"));
        for line in &plan.lines {
            msg::detail(line);
        }
        if plan.moves() {
            ui::confirm(format!("Move all of this from {from} to {to}?"), self.yes).await?;
        }
        for (token, balance) in &plan.tokens {
            if *balance > U256::ZERO {
                migration.move_token(*token, *balance).await?;
            }
        }
        // The sweep is planned on the balance the token transfers' fees left.
        let sweep = if plan.tokens.iter().any(|(_, b)| *b > U256::ZERO) {
            let again = migration.plan(&[]).await?;
            again.lines.iter().for_each(msg::detail);
            again.sweep
        } else {
            plan.sweep
        };
        if let Some((value, price)) = sweep {
            migration.sweep(value, price).await?;
        }
        // Read back: the report says what A holds now, never what was planned.
        let native_left = balance(&migration.node, from).await?;
        let mut tokens_left = Vec::new();
        for token in &self.tokens {
            tokens_left.push(TokenLeft {
                token: token.to_string(),
                balance: token_balance(&migration.node, *token, from)
                    .await?
                    .to_string(),
            });
        }
        let (mut retired_key, mut deletion_date) = (None, None);
        if self.retire {
            let holding: Vec<String> = std::iter::once((native_left, "wei".to_owned()))
                .chain(tokens_left.iter().map(|t| {
                    (
                        t.balance.parse().unwrap_or(U256::MAX),
                        format!("of token {}", t.token),
                    )
                }))
                .filter(|(amount, _)| *amount > U256::ZERO)
                .map(|(amount, what)| format!("{amount} {what}"))
                .collect();
            if !holding.is_empty() {
                bail!(
                    "refusing to retire the key of {from}: it still holds {} on chain {chain}; \
                     move it first (run the migration again) and then retire",
                    holding.join(", ")
                );
            }
            let key_id = migration.signer.key_id().to_owned();
            ui::confirm(
                format!(
                    "Schedule KMS key {key_id} (address {from}, balance 0 on chain {chain}) for \
                     deletion in {} days? Funds sent to {from} later are lost with it.",
                    self.days
                ),
                self.yes,
            )
            .await?;
            let info =
                kms_eth_provisioner::schedule_deletion(&session.kms, &key_id, self.days).await?;
            retired_key = Some(info.key_id);
            deletion_date = info.deletion_date;
        }
        Ok(MigrateReport {
            from: from.to_string(),
            to: to.to_string(),
            chain_id: chain,
            transactions: migration.sent,
            native_left: native_left.to_string(),
            tokens_left,
            retired_key,
            deletion_date,
        })
    }
}

/// What a run will do, read from the chain.
struct Plan {
    lines: Vec<String>,
    tokens: Vec<(Address, U256)>,
    /// The native sweep: the value and the price per gas (max fee = tip = price).
    sweep: Option<(U256, U256)>,
}

impl Plan {
    fn moves(&self) -> bool {
        self.sweep.is_some() || self.tokens.iter().any(|(_, b)| *b > U256::ZERO)
    }
}

struct Migration {
    node: Node,
    signer: KmsSigner,
    to: Address,
    chain_id: u64,
    fee_cap: U256,
    timeout: Duration,
    sent: Vec<String>,
}

impl Migration {
    /// Waits until nothing of A's is in flight: its pending nonce equals its latest.
    async fn settle(&self) -> Result<()> {
        let from = self.signer.address();
        let started = Instant::now();
        loop {
            let pending = nonce(&self.node, from, "pending").await?;
            let latest = nonce(&self.node, from, "latest").await?;
            if pending <= latest {
                return Ok(());
            }
            if started.elapsed() > self.timeout {
                bail!(
                    "{} transaction(s) of {from} are still pending after {} s (nonces {latest} \
                     to {}); wait for them and run the migration again",
                    pending - latest,
                    self.timeout.as_secs(),
                    pending - 1
                );
            }
            msg::note(format!(
                "waiting for {} transaction(s) of {from} still in flight",
                pending - latest
            ));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn plan(&self, tokens: &[Address]) -> Result<Plan> {
        let from = self.signer.address();
        let mut lines = Vec::new();
        let mut balances = Vec::new();
        for token in tokens {
            let amount = token_balance(&self.node, *token, from).await?;
            lines.push(format!("token {token}: {amount} (moved first)"));
            balances.push((*token, amount));
        }
        let native = balance(&self.node, from).await?;
        // The tip and the max fee are one price: the fee is then exactly gas x price,
        // whatever the base fee (as long as it is below the price), and nothing is refunded.
        let block = self
            .node
            .call("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        let base = parse_u256(&block["baseFeePerGas"]).context("the latest block's base fee")?;
        let tip = parse_u256(
            &self
                .node
                .call("eth_maxPriorityFeePerGas", json!([]))
                .await?,
        )?;
        let price = base
            .checked_mul(U256::from(2))
            .and_then(|p| p.checked_add(tip))
            .context("the node's fees are out of range")?;
        if price > self.fee_cap {
            bail!(
                "the sweep would pay {} gwei per gas, above --fee-cap {} gwei",
                format_gwei(price),
                format_gwei(self.fee_cap)
            );
        }
        let fee = price * U256::from(TRANSFER_GAS);
        let token_moves = balances.iter().filter(|(_, b)| *b > U256::ZERO).count();
        let sweep = if token_moves > 0 {
            // The token transfers' fees come out of the balance first; the sweep is planned
            // again after them (the next run of `plan`).
            lines.push(format!(
                "native: {} ether, swept after the token transfers",
                format_ether(native)
            ));
            None
        } else if native > fee {
            lines.push(format!(
                "native: {} ether; {} ether moved, {} ether fee ({TRANSFER_GAS} gas x {} gwei), \
                 0 wei left",
                format_ether(native),
                format_ether(native - fee),
                format_ether(fee),
                format_gwei(price)
            ));
            Some((native - fee, price))
        } else {
            lines.push(format!(
                "native: {native} wei, not above the fee of a transfer ({fee} wei): left behind"
            ));
            None
        };
        Ok(Plan {
            lines,
            tokens: balances,
            sweep,
        })
    }

    async fn move_token(&mut self, token: Address, amount: U256) -> Result<()> {
        let mut data = hex::decode("a9059cbb").unwrap_or_default();
        data.extend_from_slice(&[0u8; 12]);
        data.extend_from_slice(self.to.as_bytes());
        data.extend_from_slice(&amount.to_be_bytes::<32>());
        let mut inputs = self.inputs(token, U256::ZERO, data);
        fill_fees_and_gas(&self.node, self.signer.address(), &mut inputs, self.fee_cap).await?;
        self.send(inputs, &format!("token {token}: {amount}"))
            .await?;
        Ok(())
    }

    async fn sweep(&mut self, value: U256, price: U256) -> Result<()> {
        let mut inputs = self.inputs(self.to, value, Vec::new());
        inputs.gas_limit = Some(TRANSFER_GAS);
        inputs.max_fee_per_gas = Some(price);
        inputs.max_priority_fee_per_gas = Some(price);
        self.send(inputs, &format!("native: {value} wei")).await
    }

    fn inputs(&self, to: Address, value: U256, data: Vec<u8>) -> TxInputs {
        TxInputs {
            kind: Kind::Eip1559,
            to: Some(to),
            create: false,
            value,
            nonce: None,
            chain_id: Some(self.chain_id),
            gas_limit: None,
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
            gas_price: None,
            data,
            access_list: Vec::new(),
            authorizations: Vec::new(),
            max_fee_per_blob_gas: None,
            sidecar: None,
        }
    }

    /// Signs, broadcasts and waits for the receipt; a reverted transfer stops the migration.
    async fn send(&mut self, mut inputs: TxInputs, what: &str) -> Result<()> {
        let from = self.signer.address();
        inputs.nonce = Some(nonce(&self.node, from, "pending").await?);
        let tx = inputs
            .complete()
            .map_err(|err| anyhow::anyhow!("{err:?}"))?;
        let signed = self.signer.sign_transaction(tx).await?;
        let report = TransactionReport::new(&signed, Some(from));
        msg::note(format!(
            "sending {} ({what}), nonce {}",
            report.hash, report.nonce
        ));
        broadcast(&self.node, &report.raw, &report.hash).await?;
        let receipt = wait_for_receipt(&self.node, &report.hash, self.timeout)
            .await
            .map_err(|reason| {
                anyhow::anyhow!(
                    "{} (nonce {}) was broadcast and {reason}; run the migration again: it \
                     waits for it before anything else",
                    report.hash,
                    report.nonce
                )
            })?;
        if parse_quantity(&receipt["status"])? != 1 {
            bail!("{} ({what}) reverted; nothing more was sent", report.hash);
        }
        self.sent.push(report.hash);
        Ok(())
    }
}

async fn nonce(node: &Node, address: Address, block: &str) -> Result<u64> {
    parse_quantity(
        &node
            .call(
                "eth_getTransactionCount",
                json!([address.to_string(), block]),
            )
            .await?,
    )
}

async fn balance(node: &Node, address: Address) -> Result<U256> {
    parse_u256(
        &node
            .call("eth_getBalance", json!([address.to_string(), "latest"]))
            .await?,
    )
}

/// `balanceOf(owner)` of an ERC-20 token.
async fn token_balance(node: &Node, token: Address, owner: Address) -> Result<U256> {
    let data = format!("0x70a08231{:0>64}", hex::encode(owner.as_bytes()));
    let answer = node
        .call(
            "eth_call",
            json!([{"to": token.to_string(), "data": data}, "latest"]),
        )
        .await
        .with_context(|| format!("reading the balance of {owner} in token {token}"))?;
    // A 32-byte word, with its leading zeros: not a JSON-RPC quantity.
    let word = answer
        .as_str()
        .and_then(|text| hex::decode(text.trim_start_matches("0x")).ok())
        .filter(|bytes| bytes.len() == 32)
        .with_context(|| format!("token {token} answered balanceOf with {answer}"))?;
    Ok(U256::from_be_slice(&word))
}
