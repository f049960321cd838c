//! `/readyz` from a cached report: a background task asks the node and KMS (one call per
//! key, and one per Region of a multi-Region key) every `--readiness-interval`, and each
//! request reads the last report. A request
//! never makes a KMS or node call, so a flood of GETs costs the service nothing but the
//! answers (when each GET did the work, 100 of them made 400 KMS calls).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kms_eth_signer::RegionHealth;
use serde_json::{json, Value};

use crate::service::Service;

/// The most a check waits for one Region's key to answer (a single attempt): a Region that
/// takes longer is reported down and asked after the others until it answers again.
pub const REGION_PROBE: Duration = Duration::from_secs(2);

/// An account's Regions as `/readyz` shows them: each with its state (`ok`, or why it is
/// down), the signatures it made and those that moved on from it to another Region.
pub fn regions(health: &[RegionHealth]) -> Value {
    json!(health
        .iter()
        .map(|h| json!({
            "region": h.region,
            "up": h.up,
            "state": h.error.as_deref().unwrap_or("ok"),
            "signatures": h.signatures,
            "failovers": h.failovers,
        }))
        .collect::<Vec<_>>())
}

/// The last readiness report and how often it is renewed.
#[derive(Debug)]
pub struct Readiness {
    interval: Duration,
    last: RwLock<Option<Checked>>,
}

#[derive(Debug)]
struct Checked {
    ready: bool,
    report: Value,
    at: Instant,
}

impl Readiness {
    pub fn new(interval: Duration) -> Readiness {
        Readiness {
            interval,
            last: RwLock::new(None),
        }
    }

    /// The last report and whether it says ready, with its age in seconds. Not ready
    /// before the first check has finished, nor when the checks have stopped finishing
    /// (three intervals without one: KMS or the node hanging is not a state to vouch for).
    pub fn report(&self) -> (bool, Value) {
        let last = self.last.read().unwrap_or_else(|p| p.into_inner());
        let Some(checked) = &*last else {
            return (
                false,
                json!({ "ready": false, "checking": "the first check has not finished yet" }),
            );
        };
        let age = checked.at.elapsed();
        let mut report = checked.report.clone();
        report["checked_seconds_ago"] = json!(age.as_secs());
        let stale = age > self.interval * 3;
        if stale {
            report["ready"] = json!(false);
            report["checking"] = json!(format!(
                "no check has finished for {} s (every {} s expected): KMS or the node is not answering",
                age.as_secs(),
                self.interval.as_secs()
            ));
        }
        (checked.ready && !stale, report)
    }

    /// Checks now and then once per interval after each check has finished, for as long as
    /// the task runs (the server aborts it when it stops). Checks never overlap, so each key
    /// costs at most one KMS call per interval.
    pub async fn refresh(self: Arc<Self>, service: Arc<Service>) {
        loop {
            let (ready, report) = service.readiness().await;
            *self.last.write().unwrap_or_else(|p| p.into_inner()) = Some(Checked {
                ready,
                report,
                at: Instant::now(),
            });
            tokio::time::sleep(self.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_checked_and_when_the_checks_stop() {
        let readiness = Readiness::new(Duration::from_secs(1));
        let (ready, report) = readiness.report();
        assert!(!ready);
        assert_eq!(report["ready"], false);
        *readiness.last.write().unwrap_or_else(|p| p.into_inner()) = Some(Checked {
            ready: true,
            report: json!({ "ready": true }),
            at: Instant::now(),
        });
        assert!(readiness.report().0);
        *readiness.last.write().unwrap_or_else(|p| p.into_inner()) = Some(Checked {
            ready: true,
            report: json!({ "ready": true }),
            at: Instant::now()
                .checked_sub(Duration::from_secs(10))
                .unwrap_or_else(Instant::now),
        });
        let (ready, report) = readiness.report();
        assert!(!ready, "{report}");
        assert_eq!(report["ready"], false);
    }
}
