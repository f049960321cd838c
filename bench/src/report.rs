//! The report of one `cargo xtask bench` run, written as `results.json`: what was run, on
//! what, the local overhead from criterion and every networked figure. BENCHMARKS.md
//! documents its fields, so their names are part of the interface; the same types read a
//! report back.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::calls::CallReport;
use crate::local_overhead::LocalOverhead;
use crate::machine::Machine;
use crate::stacks::StackReport;
use crate::throughput;

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The command that reproduces this run.
    pub command: String,
    /// What it ran on.
    pub machine: Machine,
    /// criterion's figures; none when the run skipped them (`--no-local`).
    pub local_overhead: Option<LocalOverhead>,
    /// Everything measured against LocalStack and anvil.
    pub network: Network,
}

/// Everything the networked driver measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// The LocalStack endpoint.
    pub endpoint: String,
    /// The key every variant signed with (created for the run, deleted after it).
    pub key_arn: String,
    /// Its Ethereum address.
    pub address: String,
    /// The chain id of the transactions (anvil's).
    pub chain_id: u64,
    /// Signing throughput of the three variants.
    pub throughput: throughput::Report,
    /// KMS calls of one signer of each kind.
    pub calls: CallReport,
    /// Deploy and destroy latency; none without a `kms-eth` binary to time.
    pub stacks: Option<StackReport>,
    /// The node check of both signers' output.
    pub anvil: AnvilCheck,
    /// The signing service against the raw loop; none without a `kms-eth` binary (and in
    /// reports written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<crate::service::ServiceReport>,
    /// Fleet apply and plan against a single deploy; none without a `kms-eth` binary (and in
    /// reports written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetReport>,
    /// One account's sends through the service, the node 20 ms away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends: Option<crate::sends::SendsReport>,
    /// Three replicas on one store against one service without a store, the same sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<crate::replicas::ReplicasReport>,
    /// A multi-Region key's failover from a Region cut off to its replica (none in reports
    /// written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<crate::failover::FailoverReport>,
}

/// The report of a run of one benchmark alone (`--only sends`, `--only replicas`): the
/// benchmark's part under the name the full report gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alone {
    pub command: String,
    pub machine: Machine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends: Option<crate::sends::SendsReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<crate::replicas::ReplicasReport>,
}

impl Alone {
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }
}

/// Proof that both signers' output is accepted by a real node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnvilCheck {
    /// The hash of transaction 0, as signed by kms-eth.
    pub kms_eth_tx: String,
    /// The hash of transaction 1, as signed by alloy.
    pub alloy_tx: String,
    /// Whether anvil mined both successfully.
    pub both_mined: bool,
}

impl Results {
    /// Writes the report as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }
}

/// Writes `value` as pretty JSON to `path`, its folder created if needed.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::Value;

    use super::*;

    /// A report in the shape BENCHMARKS.md documents, as `cargo xtask bench` wrote it before
    /// the bench crate owned the report.
    const SAMPLE: &str = include_str!("../testdata/results.json");

    /// The sample report.
    pub(crate) fn sample() -> Results {
        serde_json::from_str(SAMPLE).unwrap()
    }

    #[test]
    fn reads_and_writes_the_documented_shape_unchanged() {
        let documented: Value = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(serde_json::to_value(sample()).unwrap(), documented);
    }

    #[test]
    fn parts_a_run_skipped_are_null() {
        let mut results = sample();
        results.local_overhead = None;
        results.network.stacks = None;
        let written = serde_json::to_value(&results).unwrap();
        assert_eq!(written["local_overhead"], Value::Null);
        assert_eq!(written["network"]["stacks"], Value::Null);
        let read: Results = serde_json::from_value(written).unwrap();
        assert!(read.local_overhead.is_none() && read.network.stacks.is_none());
    }

    #[test]
    fn writes_the_folder_and_the_file() {
        let dir = std::env::temp_dir().join(format!("kms-eth-bench-report-{}", std::process::id()));
        let path = dir.join("kms-eth-bench").join("results.json");
        let results = sample();
        results.write(&path).unwrap();
        let written = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Bytes, not values: serde_json's default float parsing may move a last digit, so
        // a second parse would not compare equal.
        assert_eq!(written, serde_json::to_vec_pretty(&results).unwrap());
    }
}
