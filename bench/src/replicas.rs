//! Three `kms-eth serve` replicas on one Redis-protocol store (`--state redis://...`) against
//! one service that keeps its nonces in memory, one account's `eth_sendTransaction` with the
//! node 20 ms away (issue 28: the replicas together at least 0.9 of the one service at
//! concurrency 32). Each round runs both sides one after the other, never at once (two nonce
//! books for one account would hand out one nonce twice), each started fresh: the one
//! service with a state folder of its own, the replicas on a new, empty store, each book
//! reading the node's count on first use; which side goes first alternates from round to
//! round. Afterwards every send is checked mined on anvil, nonces consecutive, none twice.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use kms_eth_harness::redis::{self, RedisServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::interleave::{self, Tally};
use crate::sends::{self, Account, DELAY};
use crate::service::{Client, Served};
use crate::stats::{median, percentile, spread};

/// Replicas on the store, the requests spread over them round-robin.
pub const REPLICAS: usize = 3;

/// Sends before each side is timed, at [`WARM_UP_CONCURRENCY`]: every process opens its
/// connections to KMS and to the node, and its nonce book reads the node's count, before
/// anything counts.
const WARM_UP: usize = 24;
const WARM_UP_CONCURRENCY: usize = 8;

/// The replicas' figures at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicasLevel {
    /// Requests in flight at once, all from the one account.
    pub concurrency: usize,
    /// The one service's sends per second, median of the rounds.
    pub one_per_second: f64,
    /// The replicas' sends per second (all of them together), median of the rounds.
    pub replicas_per_second: f64,
    /// replicas / one within each round.
    pub ratio_by_round: Vec<f64>,
    /// The median of `ratio_by_round` (target at concurrency 32: 0.9 or more).
    pub ratio: f64,
    /// (max - min) / median of `ratio_by_round`.
    pub ratio_spread: f64,
    /// A send's latency at the median and the 99th percentile, in milliseconds.
    pub one_p50_ms: f64,
    pub one_p99_ms: f64,
    pub replicas_p50_ms: f64,
    pub replicas_p99_ms: f64,
}

/// The whole replicas benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicasReport {
    /// Requests per side, per concurrency, per round.
    pub requests_per_run: usize,
    pub rounds: usize,
    /// Replicas on the store.
    pub replicas: usize,
    /// The store's server.
    pub store: String,
    /// The delay the proxy adds to each request to the node, in milliseconds.
    pub node_delay_ms: u64,
    pub levels: Vec<ReplicasLevel>,
    /// Transactions sent (warm-ups and fillers included), each looked up on anvil.
    pub sent: usize,
    /// Whether every one was mined, with the account's nonces consecutive from its count
    /// before the sends, none twice.
    pub all_mined_in_order: bool,
    /// What was wrong, if not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The two sides of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// One service, its nonce book in memory.
    One,
    /// [`REPLICAS`] services on one store.
    Replicas,
}

/// Measures three replicas on one store against one service without a store: `requests`
/// sends from `account` per side, at each of `concurrencies`, for `rounds` rounds.
pub async fn measure(
    account: &Account<'_>,
    requests: usize,
    concurrencies: &[usize],
    rounds: usize,
) -> Result<ReplicasReport> {
    eprintln!(
        "[bench] replicas: eth_sendTransaction through {REPLICAS} kms-eth serve on one store against one without, the node {} ms away, {requests} requests x concurrency {concurrencies:?} x {rounds} rounds",
        DELAY.as_millis(),
    );
    let first = sends::fund(account.anvil_url, account.address).await?;
    let proxy = account.node().await?;
    let bodies: Vec<Value> = (0..requests)
        .map(|index| sends::send(account.address, index))
        .collect();
    let hashes: Arc<Mutex<Vec<Value>>> = Arc::default();
    let scratch =
        std::env::temp_dir().join(format!("kms-eth-bench-replicas-{}", std::process::id()));
    let mut phases = 0;
    let mut levels = Vec::new();
    for &concurrency in concurrencies {
        let (mut one_rates, mut replica_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut one_latencies, mut replica_latencies) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Side::One, Side::Replicas]
            } else {
                [Side::Replicas, Side::One]
            };
            let (mut one, mut replicas) = (Tally::default(), Tally::default());
            for side in order {
                phases += 1;
                let running = Running::start(account, side, proxy.url(), &scratch, phases)?;
                let tally = running
                    .measure(&bodies, concurrency, round, &hashes)
                    .await
                    .with_context(|| format!("{side:?}, round {}", round + 1))?;
                match side {
                    Side::One => one = tally,
                    Side::Replicas => replicas = tally,
                }
            }
            let rate = |tally: &Tally| requests as f64 / tally.elapsed.as_secs_f64();
            let (one_rate, replicas_rate) = (rate(&one), rate(&replicas));
            let ratio = replicas_rate / one_rate;
            eprintln!(
                "[bench] replicas round {} concurrency {concurrency:>2}: one service {one_rate:>7.1}/s, {REPLICAS} replicas {replicas_rate:>7.1}/s ({ratio:.3})",
                round + 1,
            );
            one_latencies.extend(one.latencies);
            replica_latencies.extend(replicas.latencies);
            one_rates.push(one_rate);
            replica_rates.push(replicas_rate);
            ratios.push(ratio);
        }
        one_latencies.sort_by(f64::total_cmp);
        replica_latencies.sort_by(f64::total_cmp);
        let ratio = median(&ratios);
        levels.push(ReplicasLevel {
            concurrency,
            one_per_second: median(&one_rates),
            replicas_per_second: median(&replica_rates),
            ratio_spread: spread(&ratios, ratio),
            ratio_by_round: ratios,
            ratio,
            one_p50_ms: percentile(&one_latencies, 50.0),
            one_p99_ms: percentile(&one_latencies, 99.0),
            replicas_p50_ms: percentile(&replica_latencies, 50.0),
            replicas_p99_ms: percentile(&replica_latencies, 99.0),
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let hashes = std::mem::take(&mut *sends::lock(&hashes));
    let sent = hashes.len();
    let checked = sends::checked(account.anvil_url, account.address, first, hashes).await;
    Ok(ReplicasReport {
        requests_per_run: requests,
        rounds,
        replicas: REPLICAS,
        store: format!("Valkey {}", redis::VERSION),
        node_delay_ms: DELAY.as_millis() as u64,
        levels,
        sent,
        all_mined_in_order: checked.is_ok(),
        problem: checked.err().map(|err| format!("{err:#}")),
    })
}

/// One side of one round, running: its services, the store they share (the replicas
/// only) and the one service's state folder. Dropped in that order: the services stop
/// before their store goes, and the next side starts only after this one is gone.
struct Running {
    services: Vec<Served>,
    store: Option<RedisServer>,
    state_dir: Option<PathBuf>,
}

impl Running {
    /// Starts `side` in front of the node at `node`: phase `phase`'s state folder is under
    /// `scratch`, new and empty; a store is a new server, empty.
    fn start(
        account: &Account<'_>,
        side: Side,
        node: &str,
        scratch: &std::path::Path,
        phase: usize,
    ) -> Result<Running> {
        let mut running = Running {
            services: Vec::new(),
            store: None,
            state_dir: None,
        };
        match side {
            Side::One => {
                let dir = scratch.join(format!("one-{phase}"));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                running.state_dir = Some(dir.clone());
                let dir = dir
                    .to_str()
                    .context("the state folder's path is not UTF-8")?;
                running
                    .services
                    .push(account.serve(node, &["--state-dir", dir])?);
            }
            Side::Replicas => {
                let store = RedisServer::start(&redis::Options::default())
                    .context("starting the store (Valkey)")?;
                let url = store.url();
                running.store = Some(store);
                for _ in 0..REPLICAS {
                    running
                        .services
                        .push(account.serve(node, &["--state", &url])?);
                }
            }
        }
        Ok(running)
    }

    /// Warms every service up, then times `bodies` sent round-robin over the services at
    /// `concurrency`, with an uncounted filler at both ends ([`interleave::round`] of one
    /// variant); every hash goes into `hashes`.
    async fn measure(
        &self,
        bodies: &[Value],
        concurrency: usize,
        round: usize,
        hashes: &Arc<Mutex<Vec<Value>>>,
    ) -> Result<Tally> {
        let clients = self
            .services
            .iter()
            .map(|served| Client::new(&served.url, bodies, concurrency.max(WARM_UP_CONCURRENCY)))
            .collect::<Result<Vec<_>>>()?;
        let sender = Arc::new(Sender {
            clients,
            hashes: Arc::clone(hashes),
        });
        let warm = Arc::clone(&sender);
        crate::throughput::timed(
            0..WARM_UP.min(bodies.len()),
            WARM_UP_CONCURRENCY,
            move |index| {
                let sender = Arc::clone(&warm);
                async move { sender.send(index).await }
            },
        )
        .await?;
        let tallies = interleave::round(1, bodies.len(), concurrency, round, move |_, index| {
            let sender = Arc::clone(&sender);
            async move { sender.send(index).await }
        })
        .await?;
        tallies.into_iter().next().context("one side was measured")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.services.clear();
        self.store = None;
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Sends request `index` to service `index` mod n and keeps the hash it answers.
struct Sender {
    clients: Vec<Client>,
    hashes: Arc<Mutex<Vec<Value>>>,
}

impl Sender {
    async fn send(&self, index: usize) -> Result<()> {
        let client = self
            .clients
            .get(index % self.clients.len().max(1))
            .context("no service to send to")?;
        let hash = client.post(index).await?;
        sends::lock(&self.hashes).push(hash);
        Ok(())
    }
}
