//! The local overhead per signature, as criterion measured it: `cargo xtask bench` runs
//! `signer/benches/local_overhead.rs` before anything networked (so nothing of ours loads
//! the machine meanwhile) and hands this driver criterion's output folder, whose estimates
//! are read back here, together with the ratio the target is stated in.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The criterion benchmarks the report reads, in the order the table shows them.
pub const BENCHES: [&str; 10] = [
    "k256_recovery",
    "kms_answer_to_signed_tx",
    "signing_hash",
    "parse_der",
    "finalize",
    "into_signed",
    // `core/benches/typed_data.rs`, in the same criterion group.
    "typed_data_digest",
    "typed_data_to_signature",
    // `core/benches/policy.rs`: the policy's check of a decoded request.
    "policy_erc20_transfer",
    "policy_permit2_document",
];

/// The criterion group the benchmarks are in (its folder under criterion's home).
const GROUP: &str = "local_overhead";

/// One benchmark's estimates, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// criterion's point estimate of the median: what the table and the ratio use, being
    /// the least moved by the odd slow iteration on a shared machine.
    pub median_ns: f64,
    /// criterion's point estimate of the mean.
    pub mean_ns: Option<f64>,
}

/// Every benchmark's estimates and the ratio the target is stated in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalOverhead {
    /// Estimates by benchmark name (the names of [`BENCHES`]).
    pub estimates: BTreeMap<String, Estimate>,
    /// Median KMS answer -> verified signed transaction over the median bare k256 recovery.
    pub ratio_to_one_recovery: f64,
    /// Median typed-data JSON -> digest -> verified signature (with the KMS answer) over the
    /// median bare k256 recovery; none in reports written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_data_ratio: Option<f64>,
    /// Median policy check of an ERC-20 transfer, and of a Permit2 document, over the median
    /// bare k256 recovery; none in reports written before they were measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_transfer_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_permit2_ratio: Option<f64>,
}

impl LocalOverhead {
    /// The overhead from the estimates read.
    fn new(estimates: BTreeMap<String, Estimate>) -> Self {
        let ratio_to_one_recovery = median_ns(&estimates, "kms_answer_to_signed_tx")
            / median_ns(&estimates, "k256_recovery");
        let over_recovery = |name: &str| {
            Some(median_ns(&estimates, name) / median_ns(&estimates, "k256_recovery"))
                .filter(|ratio| ratio.is_finite())
        };
        LocalOverhead {
            typed_data_ratio: over_recovery("typed_data_to_signature"),
            policy_transfer_ratio: over_recovery("policy_erc20_transfer"),
            policy_permit2_ratio: over_recovery("policy_permit2_document"),
            estimates,
            ratio_to_one_recovery,
        }
    }

    /// The median of benchmark `name`, in nanoseconds.
    pub fn median_ns(&self, name: &str) -> f64 {
        median_ns(&self.estimates, name)
    }
}

/// The median of benchmark `name`, in nanoseconds; NaN if it was not measured, so that a
/// report of an older run, with other benchmarks, still prints.
fn median_ns(estimates: &BTreeMap<String, Estimate>, name: &str) -> f64 {
    estimates.get(name).map_or(f64::NAN, |e| e.median_ns)
}

/// As much of criterion's `estimates.json` as the report uses.
#[derive(Debug, Deserialize)]
struct CriterionEstimates {
    median: PointEstimate,
    mean: Option<PointEstimate>,
}

#[derive(Debug, Deserialize)]
struct PointEstimate {
    point_estimate: f64,
}

/// Reads the estimates of every benchmark of [`BENCHES`] from `criterion_home` (the
/// `CRITERION_HOME` the benchmark ran with).
pub fn read(criterion_home: &Path) -> Result<LocalOverhead> {
    let mut estimates = BTreeMap::new();
    for name in BENCHES {
        let path = criterion_home
            .join(GROUP)
            .join(name)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        estimates.insert(
            name.to_owned(),
            parse(&text).with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    Ok(LocalOverhead::new(estimates))
}

/// One benchmark's estimates from the text of its `estimates.json`.
fn parse(text: &str) -> Result<Estimate> {
    let estimates: CriterionEstimates = serde_json::from_str(text)?;
    Ok(Estimate {
        median_ns: estimates.median.point_estimate,
        mean_ns: estimates.mean.map(|mean| mean.point_estimate),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An abridged `estimates.json` as criterion 0.8 writes it.
    const ESTIMATES: &str = r#"{
        "mean": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 96.0, "upper_bound": 98.0}, "point_estimate": 97.5, "standard_error": 0.4},
        "median": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 96.5, "upper_bound": 97.5}, "point_estimate": 97.0, "standard_error": 0.2},
        "median_abs_dev": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 0.1, "upper_bound": 0.3}, "point_estimate": 0.2, "standard_error": 0.05},
        "slope": null,
        "std_dev": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 1.0, "upper_bound": 2.0}, "point_estimate": 1.5, "standard_error": 0.2}
    }"#;

    #[test]
    fn reads_the_median_and_the_mean() {
        let estimate = parse(ESTIMATES).unwrap();
        assert_eq!(
            estimate,
            Estimate {
                median_ns: 97.0,
                mean_ns: Some(97.5)
            }
        );
    }

    #[test]
    fn an_estimate_without_a_median_is_an_error() {
        assert!(parse(r#"{"mean": {"point_estimate": 1.0}}"#).is_err());
    }

    #[test]
    fn reads_every_benchmark_from_criterion_home_and_divides_the_medians() {
        let home =
            std::env::temp_dir().join(format!("kms-eth-bench-criterion-{}", std::process::id()));
        for (index, name) in BENCHES.iter().enumerate() {
            let dir = home.join(GROUP).join(name).join("new");
            std::fs::create_dir_all(&dir).unwrap();
            let median = 100.0 * (index + 1) as f64;
            std::fs::write(
                dir.join("estimates.json"),
                format!(r#"{{"median": {{"point_estimate": {median}}}, "mean": {{"point_estimate": 1.0}}}}"#),
            )
            .unwrap();
        }
        let overhead = read(&home);
        std::fs::remove_dir_all(&home).unwrap();
        let overhead = overhead.unwrap();
        assert_eq!(overhead.estimates.len(), BENCHES.len());
        assert_eq!(overhead.median_ns("parse_der"), 400.0);
        // kms_answer_to_signed_tx (200 ns) over k256_recovery (100 ns).
        assert_eq!(overhead.ratio_to_one_recovery, 2.0);
    }

    #[test]
    fn a_missing_benchmark_names_its_file() {
        let home = std::env::temp_dir().join("kms-eth-bench-criterion-nowhere");
        let err = read(&home).unwrap_err();
        assert!(format!("{err:#}").contains("k256_recovery"), "{err:#}");
    }
}
