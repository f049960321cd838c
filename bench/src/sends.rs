//! One account sending through `kms-eth serve` with the node 20 ms away (a delay proxy in
//! front of anvil, as a remote node is): `eth_sendTransaction` against the same service's
//! `eth_signTransaction`, taking turns slice by slice in each round, at each concurrency.
//! Sending costs the node's round trips (the pending count, the broadcast) on top of the
//! signature; how many of them one account's sends wait for in turn is what this measures
//! (issue 27: about 0.1 of the signing rate when every send waited for the one before).
//! Afterwards every send is looked up on anvil itself: mined, the account's nonces
//! consecutive from 0, none twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use kms_eth_harness::jsonrpc::{call as rpc, quantity};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::delay_proxy::DelayProxy;
use crate::interleave;
use crate::service::{request, Client, Served};
use crate::stats::{median, percentile, spread};

/// How far away the node is: added to every request that reaches it.
pub const DELAY: Duration = Duration::from_millis(20);

/// The sends' figures at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendsLevel {
    /// Requests in flight at once, all from the one account.
    pub concurrency: usize,
    /// The service's `eth_signTransaction` per second, median of the rounds.
    pub sign_per_second: f64,
    /// The service's `eth_sendTransaction` per second, median of the rounds.
    pub send_per_second: f64,
    /// send / sign within each round, by its paired slices.
    pub ratio_by_round: Vec<f64>,
    /// The median of `ratio_by_round` (target at concurrency 32: 0.8 or more).
    pub ratio: f64,
    /// (max - min) / median of `ratio_by_round`.
    pub ratio_spread: f64,
    /// A send's latency at the median and the 99th percentile, in milliseconds.
    pub send_p50_ms: f64,
    pub send_p99_ms: f64,
}

/// The whole sends benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendsReport {
    /// Requests per variant, per concurrency, per round.
    pub requests_per_run: usize,
    pub rounds: usize,
    /// The delay the proxy adds to each request to the node, in milliseconds.
    pub node_delay_ms: u64,
    pub levels: Vec<SendsLevel>,
    /// Transactions sent (warm-up and fillers included), each looked up on anvil.
    pub sent: usize,
    /// Whether every one was mined, with the account's nonces consecutive from its count
    /// before the sends, none twice.
    pub all_mined_in_order: bool,
    /// What was wrong, if not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The account the sends (and the replicas) benchmark sends from, and what serves it.
#[derive(Debug)]
pub struct Account<'a> {
    /// The built `kms-eth` binary.
    pub kms_eth: &'a std::path::Path,
    /// LocalStack's endpoint and region.
    pub endpoint: &'a str,
    pub region: &'a str,
    /// anvil itself (the services get the delay proxy in front of it).
    pub anvil_url: &'a str,
    pub chain_id: u64,
    pub key_arn: &'a str,
    pub address: &'a str,
}

impl Account<'_> {
    /// A delay proxy in front of anvil: the node [`DELAY`] away.
    pub(crate) async fn node(&self) -> Result<DelayProxy> {
        let upstream = self
            .anvil_url
            .trim_start_matches("http://")
            .parse()
            .context("anvil's address")?;
        DelayProxy::start(upstream, DELAY).await
    }

    /// `kms-eth serve` for the account's key in front of the node at `node`, with `extra`
    /// arguments.
    pub(crate) fn serve(&self, node: &str, extra: &[&str]) -> Result<Served> {
        Served::start(
            self.kms_eth,
            self.key_arn,
            node,
            self.chain_id,
            self.endpoint,
            self.region,
            extra,
        )
    }
}

/// Measures `eth_sendTransaction` against `eth_signTransaction` (of `txs`, every field
/// given) through one service, at each of `concurrencies` for `rounds` rounds.
pub async fn measure(
    account: &Account<'_>,
    txs: &[kms_eth_signer::Transaction],
    concurrencies: &[usize],
    rounds: usize,
) -> Result<SendsReport> {
    eprintln!(
        "[bench] sends: eth_sendTransaction against eth_signTransaction through kms-eth serve, the node {} ms away, {} requests x concurrency {concurrencies:?} x {rounds} rounds",
        DELAY.as_millis(),
        txs.len(),
    );
    let count = txs.len();
    let first = fund(account.anvil_url, account.address).await?;
    let proxy = account.node().await?;
    let served = account.serve(proxy.url(), &[])?;
    let signs = txs
        .iter()
        .map(|tx| request(account.address, tx))
        .collect::<Result<Vec<_>>>()?;
    let sends: Vec<Value> = (0..count)
        .map(|index| send(account.address, index))
        .collect();
    let top = *concurrencies.iter().max().unwrap_or(&1);
    let sign = Arc::new(Client::new(&served.url, &signs, top)?);
    let send = Arc::new(Client::new(&served.url, &sends, top)?);
    let hashes: Arc<Mutex<Vec<Value>>> = Arc::default();
    // Warm the service's connections to KMS and to the node, and the client's.
    let warm = (Arc::clone(&sign), Arc::clone(&send), Arc::clone(&hashes));
    crate::throughput::timed(0..count.min(64), top, move |index| {
        let (sign, send, hashes) = (
            Arc::clone(&warm.0),
            Arc::clone(&warm.1),
            Arc::clone(&warm.2),
        );
        async move {
            sign.post(index).await?;
            let hash = send.post(index).await?;
            lock(&hashes).push(hash);
            Ok(())
        }
    })
    .await?;
    let mut levels = Vec::new();
    for &concurrency in concurrencies {
        let (mut sign_rates, mut send_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut latencies = Vec::new();
        for round in 0..rounds {
            let (sign, send, hashes) = (Arc::clone(&sign), Arc::clone(&send), Arc::clone(&hashes));
            // Turn 0 signs, turn 1 sends; they alternate slice by slice.
            let tallies = interleave::round(2, count, concurrency, round, move |turn, index| {
                let (sign, send, hashes) =
                    (Arc::clone(&sign), Arc::clone(&send), Arc::clone(&hashes));
                async move {
                    if turn == 0 {
                        sign.post(index).await.map(drop)
                    } else {
                        let hash = send.post(index).await?;
                        lock(&hashes).push(hash);
                        Ok(())
                    }
                }
            })
            .await?;
            let [signed, sent] = <[interleave::Tally; 2]>::try_from(tallies)
                .map_err(|_| anyhow::anyhow!("two variants were measured"))?;
            let paired = interleave::paired_ratio(&sent, &signed);
            let rate = |tally: &interleave::Tally| count as f64 / tally.elapsed.as_secs_f64();
            let (sign_rate, send_rate) = (rate(&signed), rate(&sent));
            eprintln!(
                "[bench] sends round {} concurrency {concurrency:>2}: sign {sign_rate:>7.1}/s, send {send_rate:>7.1}/s (paired slices {paired:.3})",
                round + 1,
            );
            latencies.extend(sent.latencies);
            sign_rates.push(sign_rate);
            send_rates.push(send_rate);
            ratios.push(paired);
        }
        latencies.sort_by(f64::total_cmp);
        let ratio = median(&ratios);
        levels.push(SendsLevel {
            concurrency,
            sign_per_second: median(&sign_rates),
            send_per_second: median(&send_rates),
            ratio_spread: spread(&ratios, ratio),
            ratio_by_round: ratios,
            ratio,
            send_p50_ms: percentile(&latencies, 50.0),
            send_p99_ms: percentile(&latencies, 99.0),
        });
    }
    drop(served);
    let hashes = std::mem::take(&mut *lock(&hashes));
    let sent = hashes.len();
    let checked = checked(account.anvil_url, account.address, first, hashes).await;
    Ok(SendsReport {
        requests_per_run: count,
        rounds,
        node_delay_ms: DELAY.as_millis() as u64,
        levels,
        sent,
        all_mined_in_order: checked.is_ok(),
        problem: checked.err().map(|err| format!("{err:#}")),
    })
}

/// Funds `address` on anvil for every send a benchmark makes, and returns its count of
/// mined transactions: the first nonce its sends take (the full run's anvil check has mined
/// two already, and the sends benchmark more before the replicas').
pub(crate) async fn fund(anvil_url: &str, address: &str) -> Result<u64> {
    let (anvil_url, address) = (anvil_url.to_owned(), address.to_owned());
    tokio::task::spawn_blocking(move || -> Result<u64> {
        // 10^24 wei: every send's worst case (30 000 gas at 30 gwei) many thousand times.
        rpc(
            &anvil_url,
            "anvil_setBalance",
            json!([address, "0xd3c21bcecceda1000000"]),
        )?;
        quantity(&rpc(
            &anvil_url,
            "eth_getTransactionCount",
            json!([address, "latest"]),
        )?)
    })
    .await?
}

/// [`check_mined`] on a blocking thread.
pub(crate) async fn checked(
    anvil_url: &str,
    address: &str,
    first: u64,
    hashes: Vec<Value>,
) -> Result<()> {
    let (anvil_url, address) = (anvil_url.to_owned(), address.to_owned());
    tokio::task::spawn_blocking(move || check_mined(&anvil_url, &address, first, &hashes)).await?
}

/// Send `index`: a transfer from `from` with its own value, fees and gas given and the nonce
/// left to the service (what the pipeline is about).
pub(crate) fn send(from: &str, index: usize) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": index,
        "method": "eth_sendTransaction",
        "params": [{
            "from": from,
            "to": "0x4242424242424242424242424242424242424242",
            "value": format!("{:#x}", index + 1),
            "gas": "0x7530",
            "maxFeePerGas": "0x6fc23ac00",
            "maxPriorityFeePerGas": "0x3b9aca00",
        }],
    })
}

/// Every hash mined on anvil (waiting a little for the last ones), the account's nonces
/// exactly `first..first + hashes.len()`, none twice, and its count of mined transactions
/// the same.
fn check_mined(anvil_url: &str, address: &str, first: u64, hashes: &[Value]) -> Result<()> {
    let mut nonces = Vec::with_capacity(hashes.len());
    for hash in hashes {
        let mut tx = Value::Null;
        for _ in 0..100 {
            tx = rpc(anvil_url, "eth_getTransactionByHash", json!([hash]))?;
            if !tx["blockNumber"].is_null() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ensure!(!tx["blockNumber"].is_null(), "{hash} was not mined: {tx}");
        nonces.push(quantity(&tx["nonce"]).context("a transaction's nonce")?);
    }
    nonces.sort_unstable();
    let end = first + hashes.len() as u64;
    let expected: Vec<u64> = (first..end).collect();
    if nonces != expected {
        let mut seen = std::collections::BTreeSet::new();
        let twice: Vec<u64> = nonces
            .iter()
            .copied()
            .filter(|n| !seen.insert(*n))
            .collect();
        let missing: Vec<u64> = expected
            .iter()
            .copied()
            .filter(|n| !seen.contains(n))
            .collect();
        anyhow::bail!(
            "the {} sends' nonces are not {first}..{end}: twice {twice:?}, missing {missing:?}",
            hashes.len()
        );
    }
    let mined = quantity(&rpc(
        anvil_url,
        "eth_getTransactionCount",
        json!([address, "latest"]),
    )?)?;
    ensure!(
        mined == end,
        "anvil counts {mined} mined transactions from {address}, not {end} ({first} before the \
         sends and the {} answered)",
        hashes.len()
    );
    Ok(())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
