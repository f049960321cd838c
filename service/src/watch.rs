//! The tracker at work: every `--track-interval` it looks at the transactions the service
//! broadcast and that are not yet mined (`tracker.rs` keeps them). A transaction the node
//! no longer knows is broadcast again; the account's lowest pending one, if not mined after
//! `--bump-after-blocks` blocks (or refused when broadcast again), is replaced with fees
//! `--bump` higher and a max fee of at least twice the base fee plus the tip, within the
//! policy's caps and `--fee-cap`. When those stop it, it is reported as stuck (log,
//! metrics, `kmseth_txStatus`), never dropped. Holes left in an account's nonces are filled.
//! Also the replacements an operator asks for (`controls.rs`).

use std::sync::Arc;

use kms_eth_signer::{Address, Transaction};
use serde_json::{json, Value};

use crate::book::Outcome;
use crate::error::{failure, RpcFailure, INVALID_PARAMS};
use crate::service::Service;
use crate::tracker::{bumped, decode, with_fees, Done};

/// Runs the tracker's watch every interval until the service stops.
pub async fn watch(service: Arc<Service>) {
    let mut ticks = tokio::time::interval(service.tracker.settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = tick(&service).await {
            tracing::warn!(error = %format!("{err:#}"), "the transaction tracker could not look at the chain; it tries again");
        }
    }
}

/// One look at every account's pending transactions and holes (with a shared store, the
/// accounts whose watch this replica holds).
async fn tick(service: &Arc<Service>) -> anyhow::Result<()> {
    // Held for three intervals: a replica that stops looking hands the watch over soon.
    let watched = service
        .tracker
        .watched(service.tracker.settings.interval * 3)
        .await?;
    let mut holes = Vec::new();
    for account in service.accounts() {
        let shared = service.tracker.store().is_some();
        if shared && !watched.contains(&account.address) {
            continue;
        }
        for hole in crate::pipeline::holes(service, account.address).await? {
            holes.push((account.address, hole));
        }
    }
    // Nothing to watch, nothing asked: an idle service makes no node calls.
    let mut pending = Vec::new();
    for address in watched {
        let txs = service.tracker.pending(address).await?;
        if !txs.is_empty() {
            pending.push((address, txs));
        }
    }
    if pending.is_empty() && holes.is_empty() {
        return Ok(());
    }
    let block =
        kms_eth_node::parse_quantity(&service.node.call("eth_blockNumber", json!([])).await?)?;
    for (address, txs) in pending {
        // One account's trouble (a node call that failed) does not stop the others'.
        if let Err(err) = watch_account(service, address, txs, block).await {
            tracing::warn!(account = %address, error = %format!("{err:#}"), "the tracker could not look at this account's transactions; it tries again");
        }
    }
    // Each fill in a task of its own: one waits behind a lower hole until that is filled,
    // and the tracker must not wait with it.
    for (address, hole) in holes {
        let due = service
            .account(&address)
            .is_ok_and(|account| account.pipeline.fill_due(hole));
        if due {
            let service = service.clone();
            tokio::spawn(async move { crate::send::fill_hole(&service, address, hole).await });
        }
    }
    Ok(())
}

/// Blocks to wait before the next replacement of a transaction whose replacements failed
/// `failures` times: `--bump-after-blocks`, doubled after each failure (at most 256 times).
fn bump_wait(service: &Service, failures: u32) -> u64 {
    service
        .tracker
        .settings
        .bump_after_blocks
        .saturating_mul(1 << failures.min(8))
}

async fn watch_account(
    service: &Arc<Service>,
    address: Address,
    pending: std::collections::BTreeMap<u64, crate::tracker::Tracked>,
    block: u64,
) -> anyhow::Result<()> {
    let from = &address.to_string();
    let mined = crate::pipeline::transaction_count(service, address, "latest")
        .await
        .map_err(|f| anyhow::anyhow!(f.message))?;
    for (&nonce, tracked) in pending.range(..mined) {
        finish(service, address, nonce, tracked, block).await?;
    }
    let head = pending.range(mined..).next().map(|(nonce, _)| *nonce);
    // Below the lowest transaction the node holds, nonces nothing holds are a gap: filled,
    // and until then no fee raise of the lowest can get it mined.
    if let Some(head) = head {
        let gaps = crate::pipeline::gaps(service, address, mined, head, |nonce| {
            pending.contains_key(&nonce)
        })
        .await?;
        if gaps > 0 {
            tracing::warn!(account = from, mined, head, gaps, "nonces below the account's pending transactions are held by nothing: they are filled");
        }
    }
    for (&nonce, tracked) in pending.range(mined..) {
        let Some(latest) = tracked.versions.last() else {
            continue;
        };
        let Some(since) = tracked.since_block else {
            service
                .tracker
                .update(address, nonce, |t| t.since_block = Some(block))
                .await;
            continue;
        };
        let waited = block.saturating_sub(since);
        let next_to_mine = nonce == mined;
        let mut due = next_to_mine && waited >= bump_wait(service, tracked.failures);
        let known = service
            .node
            .call("eth_getTransactionByHash", json!([latest.hash]))
            .await?;
        if known.is_null() {
            let answer = crate::pipeline::broadcast_one(service, latest.raw.clone()).await;
            service.metrics.rebroadcast();
            tracing::warn!(
                account = from,
                nonce,
                hash = latest.hash,
                accepted = answer.is_ok(),
                "the node no longer knew a pending transaction: broadcast again"
            );
            // The bump clock keeps running: a node that keeps losing it still gets a
            // replacement in time. One that will not hold it as it is (a pool drops what no
            // longer pays the base fee) gets one at the next block.
            if answer.is_err() && tracked.failures == 0 {
                due = next_to_mine && waited >= 1;
            }
        }
        if due {
            let bump = service.tracker.settings.bump_percent;
            match replace(service, address, nonce, bump, Replacement::SpeedUp).await {
                Ok(hash) => {
                    tracing::info!(
                        account = from,
                        nonce,
                        hash,
                        "a transaction not mined in time was replaced with higher fees"
                    )
                }
                Err(failure) => {
                    service.metrics.stuck();
                    tracing::error!(account = from, nonce, hash = latest.hash, reason = %failure.message, "a transaction is not being mined and could not be replaced; the tracker tries again later");
                    service
                        .tracker
                        .update(address, nonce, |t| {
                            t.stuck = Some(failure.message.clone());
                            t.since_block = Some(block);
                            t.failures = t.failures.saturating_add(1);
                        })
                        .await;
                }
            }
        }
    }
    Ok(())
}

/// The transaction with `nonce`, below the node's mined count: done once a receipt shows
/// which version was mined, or, with none, after it has stayed below the count for
/// `--bump-after-blocks` blocks (another transaction took the nonce; a node that lies about
/// its count for a moment does not make the tracker forget it).
async fn finish(
    service: &Service,
    from: Address,
    nonce: u64,
    tracked: &crate::tracker::Tracked,
    block: u64,
) -> anyhow::Result<()> {
    let mut done = Done {
        from: from.to_string(),
        nonce,
        hashes: tracked.versions.iter().map(|v| v.hash.clone()).collect(),
        mined: None,
        block: None,
    };
    for version in tracked.versions.iter().rev() {
        let receipt = service
            .node
            .call("eth_getTransactionReceipt", json!([version.hash]))
            .await?;
        if !receipt.is_null() {
            done.mined = Some(version.hash.clone());
            done.block = receipt["blockNumber"]
                .as_str()
                .and_then(|b| kms_eth_node::parse_quantity(&json!(b)).ok());
            break;
        }
    }
    if done.mined.is_none() {
        let since = tracked.since_block.unwrap_or(block);
        if block.saturating_sub(since) < service.tracker.settings.bump_after_blocks {
            return Ok(());
        }
        tracing::warn!(
            account = %from,
            nonce,
            "another transaction took this nonce: none of the tracked versions was mined"
        );
    }
    service.tracker.finish(from, done).await
}

/// What replaces a pending transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// The same transaction with higher fees.
    SpeedUp,
    /// A zero-value transfer to the account itself, with higher fees.
    Cancel,
}

/// Replaces the pending transaction of `address` with `nonce`: fees `bump_percent` higher
/// than its latest version's (and a max fee of at least twice the base fee plus the tip),
/// judged by the policy (its caps, and the 24-hour ledger, which counts the replacement
/// only above the costliest version before it). Answers the new hash.
pub async fn replace(
    service: &Arc<Service>,
    address: Address,
    nonce: u64,
    bump_percent: f64,
    kind: Replacement,
) -> Result<String, RpcFailure> {
    let tracked = service
        .tracker
        .pending(address)
        .await
        .map_err(crate::error::store_failure)?
        .remove(&nonce)
        .ok_or_else(|| {
            RpcFailure::new(
                INVALID_PARAMS,
                format!("{address} has no pending transaction with nonce {nonce} that this service sent"),
            )
        })?;
    let versions: Vec<Transaction> = tracked
        .versions
        .iter()
        .filter_map(|v| decode(&v.raw))
        .collect();
    // From the version that offers most: a replacement must outbid every one the node may hold.
    let latest = versions
        .iter()
        .max_by_key(|tx| tx.max_price_per_gas())
        .cloned()
        .ok_or_else(|| {
            RpcFailure::new(
                INVALID_PARAMS,
                format!("nonce {nonce}: no version to replace"),
            )
        })?;
    let base_fee = base_fee(service).await?;
    let (max_fee, priority) = bumped(&latest, bump_percent, base_fee).ok_or_else(|| {
        RpcFailure::new(INVALID_PARAMS, "the bumped fee does not fit in 256 bits")
    })?;
    if max_fee > service.fee_cap {
        return Err(RpcFailure::new(
            crate::error::DENIED,
            format!(
                "replacing nonce {nonce} needs a fee of {} gwei per gas, above --fee-cap {} gwei",
                kms_eth_signer::format_gwei(max_fee),
                kms_eth_signer::format_gwei(service.fee_cap)
            ),
        ));
    }
    // What the ledger holds for this nonce already: its costliest version, or more if a
    // replacement was charged and never went out. A retry is not charged twice.
    let previous_worst = versions
        .iter()
        .map(kms_eth_core::policy::transaction::worst_case_cost)
        .chain(tracked.charged_wei())
        .max()
        .unwrap_or_default();
    match kind {
        Replacement::Cancel => {
            let hash = crate::send::self_transfer(
                service,
                address,
                nonce,
                Some(crate::send::Replaces {
                    max_fee,
                    priority,
                    previous_worst,
                }),
            )
            .await?;
            service.metrics.replacement();
            Ok(hash)
        }
        Replacement::SpeedUp => {
            let tx = with_fees(latest, max_fee, priority);
            service
                .check_replacement(address, &tx, previous_worst)
                .await?;
            service
                .tracker
                .charged(
                    address,
                    nonce,
                    kms_eth_core::policy::transaction::worst_case_cost(&tx),
                )
                .await;
            let account = service.account(&address)?;
            let signed = crate::sign::sign_tx(service, account, tx).await?;
            let hash = format!("0x{}", hex::encode(signed.hash));
            match crate::send::broadcast_now(service, address, &signed).await {
                Outcome::Sent | Outcome::Unknown(_) => {
                    service.metrics.replacement();
                    Ok(hash)
                }
                Outcome::Refused { message, node } => Err(crate::pipeline::refused(
                    &hash, nonce, address, &message, &node,
                )),
                Outcome::Lost(message) => Err(RpcFailure::new(
                    crate::error::SERVER_ERROR,
                    format!("the replacement of nonce {nonce} was not broadcast: {message}"),
                )),
                Outcome::InUse(message) => Err(crate::pipeline::refused(
                    &hash,
                    nonce,
                    address,
                    &format!("{message} (it may have been mined meanwhile)"),
                    &Value::Null,
                )),
            }
        }
    }
}

/// The latest block's base fee (zero before EIP-1559).
async fn base_fee(service: &Service) -> Result<kms_eth_signer::U256, RpcFailure> {
    let block = service
        .node
        .call("eth_getBlockByNumber", json!(["latest", false]))
        .await
        .map_err(failure)?;
    Ok(match block.get("baseFeePerGas") {
        Some(fee) => kms_eth_node::parse_u256(fee).map_err(failure)?,
        None => kms_eth_signer::U256::ZERO,
    })
}
