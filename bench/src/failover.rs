//! The failover time of a multi-Region key: a `MultiRegionSigner` over a key in two Regions,
//! the first reached through a gate (a loopback TCP proxy in front of LocalStack that can
//! cut every connection and close its doors, as a Region's endpoint going away does). Each
//! round signs once in the first Region, closes the gate, and times the next signature (the
//! first Region's retries given up, the second Region's `Sign`) and the one after it (asked
//! of the second Region first). The gate is opened again and the first Region brought back
//! by the signer's health check before the next round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use kms_eth::target::Target;
use kms_eth_harness::TEST_TAG;
use kms_eth_signer::{KmsSigner, MultiRegionSigner};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::stats::{median, millis, range};

/// The failover figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverReport {
    /// The Region that goes down, then the one that takes over.
    pub regions: (String, String),
    pub rounds: usize,
    /// Per round: the first signature after the first Region went down, in milliseconds.
    pub first_after_outage_ms: Vec<f64>,
    pub first_median_ms: f64,
    /// Per round: the signature after that one, in milliseconds.
    pub next_ms: Vec<f64>,
    pub next_median_ms: f64,
}

/// Measures `rounds` failovers of a key made for the run in `region` and replicated into
/// another Region, at LocalStack's `endpoint`; the key is scheduled for deletion afterwards.
pub async fn measure(
    endpoint: &str,
    region: &str,
    run_id: &str,
    rounds: usize,
) -> Result<FailoverReport> {
    let other = if region == "us-west-2" {
        "us-east-1"
    } else {
        "us-west-2"
    };
    let client = |endpoint: String, region: &str| {
        let target = Target::LocalStack {
            endpoint,
            region: region.to_owned(),
        };
        async move { aws_sdk_kms::Client::new(&target.sdk_config().await) }
    };
    let primary = client(endpoint.to_owned(), region).await;
    let created = primary
        .create_key()
        .key_spec(KeySpec::EccSecgP256K1)
        .key_usage(KeyUsageType::SignVerify)
        .multi_region(true)
        .description(kms_eth_harness::test_names::bench_key_description(run_id))
        .tags(Tag::builder().tag_key(TEST_TAG).tag_value(run_id).build()?)
        .send()
        .await
        .context("creating the multi-Region benchmark key")?;
    let key_id = created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .context("CreateKey returned no key id")?;
    let measured = async {
        primary
            .replicate_key()
            .key_id(&key_id)
            .replica_region(other)
            .send()
            .await
            .context("replicating the benchmark key")?;
        let upstream: SocketAddr = endpoint
            .trim_start_matches("http://")
            .parse()
            .context("the LocalStack endpoint is not http://IP:PORT")?;
        let gate = Gate::start(upstream).await?;
        let signer = MultiRegionSigner::new(vec![
            (
                region.to_owned(),
                KmsSigner::new(client(gate.url.clone(), region).await, key_id.clone()).await?,
            ),
            (
                other.to_owned(),
                KmsSigner::new(client(endpoint.to_owned(), other).await, key_id.clone()).await?,
            ),
        ])?;
        let (mut first, mut next) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let digest = [round as u8; 32];
            gate.open(true);
            let health = signer.check(Duration::from_secs(2)).await;
            ensure!(
                health.iter().all(|h| h.up),
                "a Region is down before the round: {health:?}"
            );
            let (_, used) = signer.sign_digest_in_region(&digest).await?;
            ensure!(used == region, "the first signature was made in {used}");
            gate.open(false);
            let started = Instant::now();
            let (_, used) = signer.sign_digest_in_region(&digest).await?;
            first.push(millis(started.elapsed()));
            ensure!(
                used == other,
                "the signature after the outage was made in {used}"
            );
            let started = Instant::now();
            let (_, used) = signer.sign_digest_in_region(&digest).await?;
            next.push(millis(started.elapsed()));
            if used != other {
                bail!("the second signature after the outage was made in {used}");
            }
        }
        Ok::<_, anyhow::Error>((first, next))
    }
    .await;
    if let Err(err) = primary
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
    {
        eprintln!("[bench] could not schedule the deletion of {key_id}: {err}");
    }
    let (first, next) = measured?;
    let (lo, hi) = range(&first);
    eprintln!("[bench] failover: first signature after the outage {lo:.0}-{hi:.0} ms");
    Ok(FailoverReport {
        regions: (region.to_owned(), other.to_owned()),
        rounds,
        first_median_ms: median(&first),
        first_after_outage_ms: first,
        next_median_ms: median(&next),
        next_ms: next,
    })
}

/// A TCP proxy on loopback that passes connections to `upstream` while open; closing it
/// cuts every connection through it and drops new ones unanswered.
struct Gate {
    url: String,
    open: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start(upstream: SocketAddr) -> Result<Gate> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the gate")?;
        let url = format!("http://{}", listener.local_addr()?);
        let open = Arc::new(watch::Sender::new(true));
        let state = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut closed = state.subscribe();
                if !*closed.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = closed.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Ok(Gate { url, open, accept })
    }

    fn open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
