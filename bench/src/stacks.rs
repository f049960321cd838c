//! Deploy and destroy latency: the built `cargo xtask` binary's `deploy` and `destroy`
//! (process start, change set, events, address derivation included) against a bare
//! CloudFormation create-and-wait and delete-and-wait of the same rendered template with the
//! same parameters, alternating in one run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::types::{Capability, StackStatus};
use kms_eth_harness::{test_names, TEST_TAG};
use kms_eth_provisioner::{stack_parameters, stack_tags, AccountSpec, RemovalPolicy};
use serde::{Deserialize, Serialize};

use crate::stats::median;

/// How often the raw baseline polls the stack: the same as the CLI polls LocalStack, so that
/// polling granularity is not what the comparison measures.
const POLL: Duration = Duration::from_millis(300);
/// A bound on each wait, so a stuck stack fails the benchmark instead of hanging it.
const WAIT_LIMIT: Duration = Duration::from_secs(300);

/// Wall times of every round, in seconds, and their medians and ratios.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackReport {
    /// Rounds (one CLI and one raw stack each).
    pub rounds: usize,
    /// `cargo xtask deploy` (the built binary, no compilation), per round.
    pub cli_deploy_s: Vec<f64>,
    /// CreateStack and waiting for CREATE_COMPLETE, per round.
    pub raw_create_s: Vec<f64>,
    /// `cargo xtask destroy`, per round.
    pub cli_destroy_s: Vec<f64>,
    /// DeleteStack and waiting for DELETE_COMPLETE, per round.
    pub raw_delete_s: Vec<f64>,
    /// Median CLI deploy over median raw create; see [`crate::table::STACKS`].
    pub deploy_ratio: f64,
    /// Median CLI destroy over median raw delete; see [`crate::table::STACKS`].
    pub destroy_ratio: f64,
}

/// The account every round deploys: removal policy DESTROY with the shortest window, so the
/// benchmark leaves no usable keys behind, and the test tag, so `cargo xtask test --cleanup`
/// finds anything a failed run left. The signer role trusts LocalStack's account root, the
/// identity the CLI's deploy defaults to there, so both sides deploy the same stack.
fn spec(stack_name: &str, run_id: &str) -> AccountSpec {
    let mut spec = AccountSpec::new(stack_name, "arn:aws:iam::000000000000:root");
    spec.removal_policy = RemovalPolicy::Destroy;
    spec.pending_window_days = 7;
    spec.tags = vec![(TEST_TAG.to_owned(), run_id.to_owned())];
    spec
}

/// Runs `rounds` rounds of CLI deploy/destroy and raw create/delete, alternating which goes
/// first.
pub async fn measure(
    client: &aws_sdk_cloudformation::Client,
    kms_eth: &Path,
    endpoint: &str,
    region: &str,
    run_id: &str,
    rounds: usize,
) -> Result<StackReport> {
    let mut report = StackReport {
        rounds,
        cli_deploy_s: Vec::new(),
        raw_create_s: Vec::new(),
        cli_destroy_s: Vec::new(),
        raw_delete_s: Vec::new(),
        deploy_ratio: f64::NAN,
        destroy_ratio: f64::NAN,
    };
    for round in 0..rounds {
        let cli = spec(&test_names::bench_stack("cli", run_id, round), run_id);
        let raw = spec(&test_names::bench_stack("raw", run_id, round), run_id);
        let cli_first = round % 2 == 0;
        for cli_turn in [cli_first, !cli_first] {
            if cli_turn {
                let (deploy, destroy) = cli_round(kms_eth, endpoint, region, &cli)?;
                report.cli_deploy_s.push(deploy);
                report.cli_destroy_s.push(destroy);
                eprintln!(
                    "[bench] round {} CLI deploy {deploy:.2} s, destroy {destroy:.2} s",
                    round + 1
                );
            } else {
                let (create, delete) = raw_round(client, &raw).await?;
                report.raw_create_s.push(create);
                report.raw_delete_s.push(delete);
                eprintln!(
                    "[bench] round {} raw CloudFormation create {create:.2} s, delete {delete:.2} s",
                    round + 1
                );
            }
        }
    }
    report.deploy_ratio = median(&report.cli_deploy_s) / median(&report.raw_create_s);
    report.destroy_ratio = median(&report.cli_destroy_s) / median(&report.raw_delete_s);
    Ok(report)
}

/// `kms-eth deploy` then `kms-eth destroy` of `spec`, each timed from process start to exit.
fn cli_round(
    kms_eth: &Path,
    endpoint: &str,
    region: &str,
    spec: &AccountSpec,
) -> Result<(f64, f64)> {
    let window = spec.pending_window_days.to_string();
    let tag = spec
        .tags
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>();
    let mut deploy = vec![
        "deploy",
        "--stack-name",
        &spec.stack_name,
        "--removal-policy",
        "destroy",
        "--pending-window-days",
        &window,
        "--yes",
        "--json",
    ];
    for tag in &tag {
        deploy.extend(["--tag", tag]);
    }
    let deploy_s = run_cli(kms_eth, endpoint, region, &deploy)?;
    let destroy = [
        "destroy",
        "--stack-name",
        &spec.stack_name,
        // The benchmark's key never held funds; this measures the deletion itself.
        "--skip-balance-check",
        "--yes",
        "--json",
    ];
    let destroy_s = run_cli(kms_eth, endpoint, region, &destroy)?;
    Ok((deploy_s, destroy_s))
}

/// `kms-eth <args>` against LocalStack, timed from process start to exit.
pub(crate) fn run_cli(kms_eth: &Path, endpoint: &str, region: &str, args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let output = Command::new(kms_eth)
        .args(args)
        .args(["--endpoint-url", endpoint, "--region", region])
        .output()
        .with_context(|| format!("running {}", kms_eth.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "`kms-eth {}` failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}

/// CreateStack and wait, then DeleteStack and wait, with the template and parameters the CLI
/// renders for the same spec.
async fn raw_round(
    client: &aws_sdk_cloudformation::Client,
    spec: &AccountSpec,
) -> Result<(f64, f64)> {
    let name = &spec.stack_name;
    let parameters = stack_parameters(spec);
    let tags = stack_tags(spec);

    let started = Instant::now();
    client
        .create_stack()
        .stack_name(name)
        .template_body(spec.template_body())
        .set_parameters(Some(parameters))
        .set_tags(Some(tags))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .with_context(|| format!("CreateStack {name}"))?;
    wait(client, name, StackStatus::CreateComplete).await?;
    let create_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    client
        .delete_stack()
        .stack_name(name)
        .send()
        .await
        .with_context(|| format!("DeleteStack {name}"))?;
    wait(client, name, StackStatus::DeleteComplete).await?;
    Ok((create_s, started.elapsed().as_secs_f64()))
}

/// Polls until the stack leaves its `*_IN_PROGRESS` state, and fails unless it reached
/// `wanted`. A stack that no longer exists counts as deleted.
async fn wait(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
    wanted: StackStatus,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let status = match client.describe_stacks().stack_name(name).send().await {
            Ok(response) => response
                .stacks()
                .first()
                .and_then(|stack| stack.stack_status().cloned()),
            Err(err)
                if wanted == StackStatus::DeleteComplete
                    && err
                        .as_service_error()
                        .and_then(|e| e.meta().message())
                        .is_some_and(|m| m.contains("does not exist")) =>
            {
                return Ok(())
            }
            Err(err) => {
                return Err(anyhow::Error::from(err).context(format!("DescribeStacks {name}")))
            }
        };
        match status {
            Some(status) if status == wanted => return Ok(()),
            None if wanted == StackStatus::DeleteComplete => return Ok(()),
            Some(status) if !status.as_str().ends_with("_IN_PROGRESS") => {
                bail!(
                    "stack {name} ended in {} instead of {}",
                    status.as_str(),
                    wanted.as_str()
                )
            }
            _ if started.elapsed() > WAIT_LIMIT => {
                bail!(
                    "stack {name} did not reach {} in {} s",
                    wanted.as_str(),
                    WAIT_LIMIT.as_secs()
                )
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}
