//! Fleet latency: `kms-eth fleet apply` of 12 stacks from scratch (3 member accounts x 2
//! regions x 2 accounts, each account reached by assuming a bootstrap role, as an
//! organisation does) against `kms-eth deploy` of one stack, alternating in one run; and a
//! `fleet plan` of the 12 that finds nothing to do.

use std::path::Path;

use anyhow::{Context, Result};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::config::Credentials;
use kms_eth_harness::{test_names, TEST_TAG};
use serde::{Deserialize, Serialize};

use crate::stats::median;

const MEMBERS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

/// Wall times of every round, in seconds, and what they give.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetReport {
    /// Rounds (one single deploy and one fleet apply and plan each).
    pub rounds: usize,
    /// `kms-eth deploy` of one stack, per round.
    pub deploy_one_s: Vec<f64>,
    /// `kms-eth fleet apply` of 12 new stacks, per round.
    pub apply_twelve_s: Vec<f64>,
    /// `kms-eth fleet plan` of the 12, nothing to do, per round.
    pub plan_twelve_s: Vec<f64>,
    /// Median apply of 12 over median deploy of one; see [`crate::table::FLEET_APPLY`].
    pub apply_ratio: f64,
    /// Median no-change plan of 12, in seconds; see [`crate::table::FLEET_PLAN_S`].
    pub plan_median_s: f64,
}

/// Runs `rounds` rounds, alternating which of the single deploy and the fleet goes first.
pub async fn measure(
    kms_eth: &Path,
    endpoint: &str,
    region: &str,
    run_id: &str,
    rounds: usize,
) -> Result<FleetReport> {
    let role = format!("kms-eth-bench-bootstrap-{run_id}");
    bootstrap_roles(endpoint, &role).await?;
    let dir = std::env::temp_dir().join(format!("kms-eth-bench-fleet-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    let mut report = FleetReport {
        rounds,
        deploy_one_s: Vec::new(),
        apply_twelve_s: Vec::new(),
        plan_twelve_s: Vec::new(),
        apply_ratio: f64::NAN,
        plan_median_s: f64::NAN,
    };
    let cli = |args: &[&str]| crate::stacks::run_cli(kms_eth, endpoint, region, args);
    for round in 0..rounds {
        let stack = test_names::bench_stack("one", run_id, round);
        let prefix = format!(
            "b{}r{round}",
            run_id.replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        let manifest = dir.join(format!("fleet-{round}.toml"));
        std::fs::write(&manifest, manifest_text(&prefix, &role, run_id))?;
        let m = manifest
            .to_str()
            .context("the temporary folder is not UTF-8")?;
        let tag = format!("{TEST_TAG}={run_id}");
        let one_first = round % 2 == 0;
        for one_turn in [one_first, !one_first] {
            if one_turn {
                let seconds = cli(&[
                    "deploy",
                    "--stack-name",
                    &stack,
                    "--removal-policy",
                    "destroy",
                    "--pending-window-days",
                    "7",
                    "--tag",
                    &tag,
                    "--yes",
                    "--json",
                ])?;
                report.deploy_one_s.push(seconds);
                cli(&[
                    "destroy",
                    "--stack-name",
                    &stack,
                    "--skip-balance-check",
                    "--yes",
                ])?;
                eprintln!(
                    "[bench] round {} deploy of one stack {seconds:.2} s",
                    round + 1
                );
            } else {
                let apply = cli(&["fleet", "apply", "--manifest", m, "--yes", "--json"])?;
                let plan = cli(&["fleet", "plan", "--manifest", m, "--json"])?;
                report.apply_twelve_s.push(apply);
                report.plan_twelve_s.push(plan);
                cli(&[
                    "fleet",
                    "destroy",
                    "--manifest",
                    m,
                    "--skip-balance-check",
                    "--yes",
                ])?;
                eprintln!(
                    "[bench] round {} fleet apply of 12 stacks {apply:.2} s, no-change plan {plan:.2} s",
                    round + 1
                );
            }
        }
    }
    report.apply_ratio = median(&report.apply_twelve_s) / median(&report.deploy_one_s);
    report.plan_median_s = median(&report.plan_twelve_s);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// The 12-stack manifest: every key DESTROY with the shortest window and the test tag, so
/// the run leaves no usable key and `cargo xtask test --cleanup` finds what a failure left.
fn manifest_text(prefix: &str, role: &str, run_id: &str) -> String {
    let mut text = format!(
        "[defaults]\nremoval_policy = \"destroy\"\npending_window_days = 7\ntags = {{ \"{TEST_TAG}\" = \"{run_id}\" }}\n"
    );
    for (i, account) in MEMBERS.iter().enumerate() {
        text.push_str(&format!(
            "\n[[target]]\nname = \"{prefix}t{i}\"\naccount_id = \"{account}\"\nregions = [\"us-east-1\", \"eu-west-1\"]\nassume_role = \"arn:aws:iam::{account}:role/{role}\"\n\n[[target.account]]\nname = \"a\"\n\n[[target.account]]\nname = \"b\"\n"
        ));
    }
    text
}

/// A role in each member account that LocalStack's default account may assume.
async fn bootstrap_roles(endpoint: &str, role: &str) -> Result<()> {
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]});
    for account in MEMBERS {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(account, "test", None, None, "bench"))
            .load()
            .await;
        aws_sdk_iam::Client::new(&config)
            .create_role()
            .role_name(role)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .with_context(|| format!("creating the bootstrap role in account {account}"))?;
    }
    Ok(())
}
