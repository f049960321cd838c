//! The signing service under load: `eth_signTransaction` through `kms-eth serve` (HTTP,
//! JSON-RPC, the policy path, KMS, encoding) against a bare SDK `Sign` loop on the same key
//! and LocalStack, taking turns slice by slice in each round at each concurrency; the latency the service adds
//! (p50, p99) and its peak resident memory under that load.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::interleave;
use crate::stats::{median, percentile, spread};
use crate::throughput::{self, Subjects, Variant};

/// The service's figures at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Level {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The raw SDK loop's signatures per second, median of the rounds.
    pub raw_per_second: f64,
    /// The service's signed transactions per second, median of the rounds.
    pub service_per_second: f64,
    /// service / raw within each round, by its paired slices ([`interleave::paired_ratio`]).
    pub ratio_by_round: Vec<f64>,
    /// The median of `ratio_by_round`: the figure the target is stated in (>= 0.9).
    pub ratio: f64,
    /// (max - min) / median of `ratio_by_round`: how much the rounds disagree.
    pub ratio_spread: f64,
    /// Latency the service adds to one signature at the median, in milliseconds.
    pub added_p50_ms: f64,
    /// The same at the 99th percentile.
    pub added_p99_ms: f64,
}

/// The whole service benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Requests per variant, per concurrency, per round.
    pub requests_per_run: usize,
    /// Rounds.
    pub rounds: usize,
    /// Each concurrency's figures.
    pub levels: Vec<Level>,
    /// The service's peak resident set over the whole run, in MiB (target: 64 or less).
    pub peak_rss_mib: f64,
    /// Which CPUs LocalStack and the measuring side were pinned to, if the machine has two
    /// or more ("none" otherwise).
    pub pinning: String,
}

/// A running `kms-eth serve`, stopped on drop.
pub(crate) struct Served {
    child: Child,
    pub(crate) url: String,
}

impl Served {
    /// `kms-eth serve --unrestricted` for the key `key_arn` in front of `rpc_url`, pinned to
    /// `chain_id`, on LocalStack at `endpoint`, with `extra` arguments (a state folder, a
    /// store); answering `/healthz` when it returns.
    pub(crate) fn start(
        kms_eth: &std::path::Path,
        key_arn: &str,
        rpc_url: &str,
        chain_id: u64,
        endpoint: &str,
        region: &str,
        extra: &[&str],
    ) -> Result<Served> {
        let port = kms_eth_harness::process::free_port()?;
        let child = Command::new(kms_eth)
            .args([
                "serve",
                "--unrestricted",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--key-id", key_arn, "--rpc-url", rpc_url])
            .args(["--chain-id", &chain_id.to_string()])
            .args(["--endpoint-url", endpoint, "--region", region])
            .args(["--max-concurrent-requests", "1024"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} serve", kms_eth.display()))?;
        let served = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until_up(&served)?;
        Ok(served)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where and how to run the service benchmark.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The built `kms-eth` binary.
    pub kms_eth: &'a std::path::Path,
    /// LocalStack's endpoint and region.
    pub endpoint: &'a str,
    pub region: &'a str,
    /// The node the service is in front of (asked nothing while measuring).
    pub rpc_url: &'a str,
    pub concurrencies: &'a [usize],
    pub rounds: usize,
    /// How LocalStack and the measuring side were pinned, for the report.
    pub pinning: &'a str,
}

/// Measures the service against the raw loop.
pub async fn measure(subjects: &Arc<Subjects>, setup: &Setup<'_>) -> Result<ServiceReport> {
    let Setup {
        kms_eth,
        endpoint,
        region,
        rpc_url,
        concurrencies,
        rounds,
        pinning,
    } = *setup;
    // The service signs for the chain it is told (the transactions'), never the node's alone.
    let chain_id = subjects
        .txs
        .first()
        .and_then(kms_eth_signer::Transaction::chain_id)
        .context("the benchmark has no transactions")?;
    let served = Served::start(
        kms_eth,
        &subjects.key_arn,
        rpc_url,
        chain_id,
        endpoint,
        region,
        &[],
    )?;
    let from = subjects.kms_eth.address().to_string();
    let requests = subjects
        .txs
        .iter()
        .map(|tx| request(&from, tx))
        .collect::<Result<Vec<_>>>()?;
    let count = requests.len();
    let top = *concurrencies.iter().max().unwrap_or(&1);
    let client = Arc::new(Client::new(&served.url, &requests, top)?);
    // Warm the service's connections to KMS and the client's to the service.
    let warm = Arc::clone(&client);
    throughput::timed(0..count.min(100), top, move |index| {
        let client = Arc::clone(&warm);
        async move { client.sign(index).await }
    })
    .await?;
    let mut levels = Vec::new();
    for &concurrency in concurrencies {
        let (mut raw_rates, mut service_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut raw_latencies, mut service_latencies) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Turn 0 is the raw loop, turn 1 the service; they alternate slice by slice.
            let (shared, client) = (Arc::clone(subjects), Arc::clone(&client));
            let tallies = interleave::round(2, count, concurrency, round, move |turn, index| {
                let (shared, client) = (Arc::clone(&shared), Arc::clone(&client));
                async move {
                    if turn == 0 {
                        shared.sign_one(Variant::RawSdk, index).await
                    } else {
                        client.sign(index).await
                    }
                }
            })
            .await?;
            let [raw, service] = <[interleave::Tally; 2]>::try_from(tallies)
                .map_err(|_| anyhow::anyhow!("two variants were measured"))?;
            let paired = interleave::paired_ratio(&service, &raw);
            let rate = |tally: &interleave::Tally| count as f64 / tally.elapsed.as_secs_f64();
            let (raw_rate, service_rate) = (rate(&raw), rate(&service));
            raw_latencies.extend(raw.latencies);
            service_latencies.extend(service.latencies);
            eprintln!(
                "[bench] service round {} concurrency {concurrency:>2}: raw {raw_rate:>7.1}/s, service {service_rate:>7.1}/s (paired slices {paired:.3})",
                round + 1,
            );
            raw_rates.push(raw_rate);
            service_rates.push(service_rate);
            ratios.push(paired);
        }
        raw_latencies.sort_by(f64::total_cmp);
        service_latencies.sort_by(f64::total_cmp);
        let ratio = median(&ratios);
        let ratio_spread = spread(&ratios, ratio);
        levels.push(Level {
            concurrency,
            raw_per_second: median(&raw_rates),
            service_per_second: median(&service_rates),
            ratio_by_round: ratios,
            ratio,
            ratio_spread,
            added_p50_ms: percentile(&service_latencies, 50.0) - percentile(&raw_latencies, 50.0),
            added_p99_ms: percentile(&service_latencies, 99.0) - percentile(&raw_latencies, 99.0),
        });
    }
    let peak_rss_mib = peak_rss_kib(served.child.id())? as f64 / 1024.0;
    Ok(ServiceReport {
        requests_per_run: count,
        rounds,
        levels,
        peak_rss_mib,
        pinning: pinning.to_owned(),
    })
}

/// The `eth_signTransaction` request for `tx`, with every field given, so the service asks
/// the node nothing and the comparison is of signing alone.
pub(crate) fn request(from: &str, tx: &kms_eth_signer::Transaction) -> Result<Value> {
    let kms_eth_signer::Transaction::Eip1559(tx) = tx else {
        bail!("the benchmark's transactions are EIP-1559 ones");
    };
    let hex = |value: kms_eth_signer::U256| format!("{value:#x}");
    Ok(json!({
        "jsonrpc": "2.0",
        "id": tx.nonce,
        "method": "eth_signTransaction",
        "params": [{
            "from": from,
            "to": tx.to.map(|to| to.to_string()),
            "value": hex(tx.value),
            "nonce": format!("{:#x}", tx.nonce),
            "gas": format!("{:#x}", tx.gas_limit),
            "maxFeePerGas": hex(tx.max_fee_per_gas),
            "maxPriorityFeePerGas": hex(tx.max_priority_fee_per_gas),
            "chainId": format!("{:#x}", tx.chain_id),
            "input": format!("0x{}", hex::encode(&tx.input)),
        }],
    }))
}

/// The client of the service benchmark: hyper's pooled HTTP/1.1 client (keep-alive
/// connections, `TCP_NODELAY`, as the SDK's own client is) on the same runtime, through the
/// same timing loop as the raw variant, with the request bodies serialised before anything
/// is timed (as the raw variant's digests are). A blocking client on threads of its own cost
/// about 130 µs of CPU a request on the core the service runs on, which measured the client.
pub(crate) struct Client {
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    url: hyper::Uri,
    bodies: Vec<Bytes>,
}

impl Client {
    pub(crate) fn new(url: &str, requests: &[Value], concurrency: usize) -> Result<Client> {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(concurrency)
                .build(connector);
        let bodies = requests
            .iter()
            .map(|request| serde_json::to_vec(request).map(Bytes::from))
            .collect::<Result<_, _>>()?;
        Ok(Client {
            http,
            url: url.parse().context("the service's URL")?,
            bodies,
        })
    }

    /// Request `index`: one `eth_signTransaction`, whose answer must be a signed transaction.
    async fn sign(&self, index: usize) -> Result<()> {
        self.post(index).await.map(drop)
    }

    /// Request `index`, whose answer must be a string result (a signed transaction, a
    /// hash): that result.
    pub(crate) async fn post(&self, index: usize) -> Result<Value> {
        let body = self.bodies.get(index).context("no such request")?.clone();
        let request = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = self
            .http
            .request(request)
            .await
            .context("posting eth_signTransaction")?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let reply: Value = serde_json::from_slice(&body)
            .with_context(|| format!("the service answered {status} with no JSON"))?;
        ensure!(reply["result"].is_string(), "the service refused: {reply}");
        Ok(reply["result"].clone())
    }
}

pub(crate) fn wait_until_up(served: &Served) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let health = ureq::get(format!("{}/healthz", served.url)).call();
        if health.is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("kms-eth serve did not answer /healthz within 60 s")
}

/// The peak resident set (VmHWM) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

/// Gives LocalStack every CPU again: it outlives the benchmark when the run found it
/// running, and must not stay confined to one core for whatever uses it next.
pub fn unpin(localstack_pid: Option<u32>) {
    let Some(pid) = localstack_pid else { return };
    // Every CPU the machine has online, not what this process may use: it pinned itself.
    let all = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "0-1".to_owned());
    for member in kms_eth_harness::process::group_members(pid)
        .into_iter()
        .chain(std::iter::once(pid))
    {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", &all, &member.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Pins LocalStack (every thread of every process in its group) to CPU 0 and this process
/// (and the service it starts afterwards) to the others, where there are two or more CPUs:
/// on a shared 2-core machine, LocalStack and the measured side otherwise take turns on
/// both cores and the rounds disagree by 10-20 %. Best effort: `taskset` may be missing.
/// Every networked benchmark runs pinned; [`unpin`] gives LocalStack its CPUs back.
pub fn pin(localstack_pid: Option<u32>) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(pid) = localstack_pid.filter(|_| cpus >= 2) else {
        return "none".to_owned();
    };
    let rest = format!("1-{}", cpus - 1);
    let group = kms_eth_harness::process::group_members(pid);
    let mut pinned = true;
    for member in group.iter().copied().chain(std::iter::once(pid)) {
        pinned &= Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &member.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    }
    pinned &= Command::new("taskset")
        .args(["-a", "-p", "-c", &rest, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if pinned {
        format!("LocalStack on CPU 0, the measuring side on CPUs {rest}")
    } else {
        "none (taskset failed)".to_owned()
    }
}
