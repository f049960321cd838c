//! Signing throughput: the same KMS key, client and transactions signed by (a) a bare
//! `aws_sdk_kms` Sign loop, (b) kms-eth's `KmsSigner` and (c) alloy's `AwsSigner`, taking
//! turns slice by slice within each round at each concurrency, so that drift in LocalStack's
//! speed over the run affects every variant alike.

use std::future::Future;
use std::hint::black_box;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use kms_eth_signer::{KmsSigner, Signer, Transaction, B256};
use serde::{Deserialize, Serialize};

use crate::alloy_side::AlloySide;
use crate::interleave;
use crate::stats::{median, millis, percentile, range};

/// The three ways of signing that are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// (a) `Sign` through the SDK and nothing else: the most any signer can reach.
    RawSdk,
    /// (b) kms-eth: complete, verified EIP-1559 signed transactions.
    KmsEth,
    /// (c) alloy-signer-aws: the same transactions, signed and encoded by alloy.
    Alloy,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::RawSdk, Variant::KmsEth, Variant::Alloy];

    /// The label the tables use.
    pub fn label(self) -> &'static str {
        match self {
            Variant::RawSdk => "(a) raw aws-sdk-kms Sign",
            Variant::KmsEth => "(b) kms-eth KmsSigner",
            Variant::Alloy => "(c) alloy-signer-aws",
        }
    }
}

/// Everything the variants share: one client, one key, one list of transactions and their
/// signing hashes.
#[derive(Debug)]
pub struct Subjects {
    /// The client every variant signs through.
    pub client: aws_sdk_kms::Client,
    /// The key's ARN, which every variant signs with.
    pub key_arn: String,
    /// The transactions.
    pub txs: Vec<Transaction>,
    /// Their signing hashes (what the raw loop signs).
    pub digests: Vec<B256>,
    /// kms-eth's signer.
    pub kms_eth: KmsSigner,
    /// alloy's signer.
    pub alloy: AlloySide,
}

/// One timed run: `signatures` signatures at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Which round (0-based).
    pub round: usize,
    /// Signatures made.
    pub signatures: usize,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Signatures per second.
    pub per_second: f64,
}

/// The figures of one variant at one concurrency, over all rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// The variant.
    pub variant: Variant,
    /// Its label.
    pub label: String,
    /// Signing tasks in flight at once.
    pub concurrency: usize,
    /// Each round's run.
    pub runs: Vec<Run>,
    /// The median of the rounds' signatures per second.
    pub per_second: f64,
    /// The slowest and fastest round.
    pub per_second_range: (f64, f64),
    /// Median latency of one signature over every round, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    // Every signature's latency, only while measuring: the report keeps the percentiles.
    #[serde(skip)]
    latencies_ms: Vec<f64>,
}

/// The ratios the targets are stated in, at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratios {
    /// Signing tasks in flight at once.
    pub concurrency: usize,
    /// kms-eth over the raw SDK loop, the median of the rounds; see [`crate::table::B_OVER_A`].
    pub b_over_a: f64,
    /// kms-eth over alloy, the median of the rounds; see [`crate::table::B_OVER_C`].
    pub b_over_c: f64,
    /// kms-eth over the raw loop within each round, by its paired slices
    /// ([`interleave::paired_ratio`]): the noise band.
    pub b_over_a_by_round: Vec<f64>,
    /// kms-eth over alloy within each round, by its paired slices.
    pub b_over_c_by_round: Vec<f64>,
}

/// The whole throughput comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Signatures per variant, per concurrency, per round.
    pub signatures_per_run: usize,
    /// Rounds.
    pub rounds: usize,
    /// The order of the variants in each round's first slice (it rotates from slice to slice
    /// and from round to round).
    pub orders: Vec<Vec<Variant>>,
    /// Every variant at every concurrency.
    pub figures: Vec<Figures>,
    /// b/a and b/c at every concurrency.
    pub ratios: Vec<Ratios>,
}

impl Subjects {
    /// Signs transaction `index` once with `variant`.
    pub async fn sign_one(&self, variant: Variant, index: usize) -> Result<()> {
        match variant {
            Variant::RawSdk => {
                let digest = self.digests.get(index).context("no such digest")?;
                let response = self
                    .client
                    .sign()
                    .key_id(&self.key_arn)
                    .message(Blob::new(digest.to_vec()))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                    .send()
                    .await
                    .context("raw KMS Sign")?;
                black_box(response.signature().context("Sign returned no signature")?);
            }
            Variant::KmsEth => {
                let tx = self.txs.get(index).context("no such transaction")?.clone();
                let signed = self
                    .kms_eth
                    .sign_transaction(tx)
                    .await
                    .context("kms-eth signing")?;
                black_box(signed.raw);
            }
            Variant::Alloy => {
                black_box(self.alloy.sign(index).await?);
            }
        }
        Ok(())
    }
}

/// Runs operations `indices` with `concurrency` tasks pulling the next index from one
/// counter, and returns the wall time and each operation's latency.
pub async fn timed<F, Fut>(
    indices: Range<usize>,
    concurrency: usize,
    op: F,
) -> Result<(Duration, Vec<f64>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(indices.start));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(indices.len()) {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        let end = indices.end;
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= end {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let began = Instant::now();
                op(index).await?;
                latencies.push(millis(began.elapsed()));
            }
        });
    }
    let mut latencies = Vec::with_capacity(indices.len());
    while let Some(worker) = workers.join_next().await {
        latencies.extend(worker.context("a signing task failed")??);
    }
    Ok((started.elapsed(), latencies))
}

/// Signs `warmup` transactions with every variant at the highest concurrency, so that
/// connections are open and LocalStack's code paths are warm before anything is timed.
pub async fn warm_up(subjects: &Arc<Subjects>, warmup: usize, concurrency: usize) -> Result<()> {
    for variant in Variant::ALL {
        let count = warmup.min(subjects.txs.len());
        let shared = Arc::clone(subjects);
        timed(0..count, concurrency, move |index| {
            let shared = Arc::clone(&shared);
            async move { shared.sign_one(variant, index).await }
        })
        .await?;
    }
    Ok(())
}

/// Measures every variant at every concurrency for `rounds` rounds, the variants taking
/// turns slice by slice within each round ([`interleave`]).
pub async fn measure(
    subjects: &Arc<Subjects>,
    concurrencies: &[usize],
    rounds: usize,
) -> Result<Report> {
    let count = subjects.txs.len();
    let mut figures: Vec<Figures> = concurrencies
        .iter()
        .flat_map(|&concurrency| {
            Variant::ALL.map(|variant| Figures {
                variant,
                label: variant.label().to_owned(),
                concurrency,
                runs: Vec::new(),
                per_second: 0.0,
                per_second_range: (0.0, 0.0),
                p50_ms: 0.0,
                p99_ms: 0.0,
                latencies_ms: Vec::new(),
            })
        })
        .collect();
    let mut orders = Vec::new();
    // Per concurrency (in the order given), each round's (b/a, b/c) by paired slices.
    let mut paired: Vec<Vec<(f64, f64)>> = vec![Vec::new(); concurrencies.len()];
    for round in 0..rounds {
        let mut order = Variant::ALL;
        order.rotate_left(round % Variant::ALL.len());
        orders.push(order.to_vec());
        for (level, &concurrency) in concurrencies.iter().enumerate() {
            let shared = Arc::clone(subjects);
            let tallies = interleave::round(
                Variant::ALL.len(),
                count,
                concurrency,
                round,
                move |turn, index| {
                    let shared = Arc::clone(&shared);
                    async move { shared.sign_one(Variant::ALL[turn], index).await }
                },
            )
            .await?;
            // (a) raw, (b) kms-eth, (c) alloy, as in `Variant::ALL`.
            let [a, b, c] = &tallies[..] else {
                anyhow::bail!("three variants were measured");
            };
            paired[level].push((
                interleave::paired_ratio(b, a),
                interleave::paired_ratio(b, c),
            ));
            for (variant, tally) in Variant::ALL.into_iter().zip(tallies) {
                let seconds = tally.elapsed.as_secs_f64();
                let run = Run {
                    round,
                    signatures: count,
                    seconds,
                    per_second: count as f64 / seconds,
                };
                eprintln!(
                    "[bench] round {} concurrency {concurrency:>2} {:<26} {:>7.1} signatures/s",
                    round + 1,
                    variant.label(),
                    run.per_second
                );
                let entry = figures
                    .iter_mut()
                    .find(|f| f.variant == variant && f.concurrency == concurrency)
                    .context("a variant without figures")?;
                entry.runs.push(run);
                entry.latencies_ms.extend(tally.latencies);
            }
        }
    }
    for entry in &mut figures {
        let rates: Vec<f64> = entry.runs.iter().map(|r| r.per_second).collect();
        entry.per_second = median(&rates);
        entry.per_second_range = range(&rates);
        entry.latencies_ms.sort_by(f64::total_cmp);
        entry.p50_ms = percentile(&entry.latencies_ms, 50.0);
        entry.p99_ms = percentile(&entry.latencies_ms, 99.0);
    }
    let ratios = concurrencies
        .iter()
        .zip(paired)
        .map(|(&concurrency, by_round)| {
            let (b_over_a_by_round, b_over_c_by_round): (Vec<f64>, Vec<f64>) =
                by_round.into_iter().unzip();
            Ratios {
                concurrency,
                b_over_a: median(&b_over_a_by_round),
                b_over_c: median(&b_over_c_by_round),
                b_over_a_by_round,
                b_over_c_by_round,
            }
        })
        .collect();
    Ok(Report {
        signatures_per_run: count,
        rounds,
        orders,
        figures,
        ratios,
    })
}
