//! `cargo xtask bench`: every benchmark in one run, orchestrated. The local overhead
//! (criterion, no network) first, while nothing else of ours loads the machine; then
//! LocalStack from the harness and the driver (`kms-eth-bench`: signing throughput side by
//! side, KMS call counts, deploy and destroy latency), which also reads criterion's figures
//! and owns the report: it prints the table and writes it as JSON under the cargo target
//! folder. Nothing here reads the figures, so xtask needs no types of the bench crate.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use kms_eth_harness::localstack::{self, Options};
use kms_eth_harness::{process, workspace};

use crate::flags::BenchArgs;

/// Both benchmark builds use cargo's `bench` profile (optimised, like `release`, in the same
/// `target/release` folder), so kms-eth's own crates are optimised exactly like alloy's and
/// the AWS SDK. The `dev` profile would compile our crates at opt-level 0 against
/// dependencies at opt-level 2, which would measure the build settings, not the code.
const PROFILE: &str = "bench";

pub fn run(args: BenchArgs) -> Result<()> {
    let args = args.effective();
    // Build both benchmarks, and the `kms-eth` binary whose deploy and destroy are timed,
    // before anything is measured or started: no compilation is ever inside a measurement.
    workspace::run_cargo(
        "bench",
        "building the benchmark driver and the kms-eth binary",
        &[
            "build",
            "--profile",
            PROFILE,
            "-p",
            "kms-eth-bench",
            "-p",
            "kms-eth",
        ],
    )?;
    // The `bench` profile builds into `release`.
    let kms_eth_bin = workspace::target_dir().join("release").join("kms-eth");
    let criterion_dir = if args.no_local || args.only.is_some() {
        None
    } else {
        Some(local_overhead(args.quick)?)
    };

    let instance = localstack::up(&Options {
        port: args.port,
        ..Options::default()
    })?;
    let _stop = localstack::StopWhenDone {
        started: instance.started,
        tag: "bench",
    };
    let results = workspace::target_dir()
        .join("kms-eth-bench")
        .join("results.json");
    let mut driver = Command::new(workspace::cargo_bin());
    driver
        .args([
            "run",
            "--quiet",
            "--profile",
            PROFILE,
            "-p",
            "kms-eth-bench",
        ])
        .arg("--")
        .args(["--endpoint-url", &instance.endpoint])
        .args(["-n", &args.signatures.to_string()])
        .args(["--rounds", &args.rounds.to_string()])
        .args(["--concurrency", &concurrency_list(&args)])
        .args(["--stack-rounds", &args.stack_rounds.to_string()])
        .args(["--sends", &args.sends.to_string()])
        .args(args.only.iter().flat_map(|only| ["--only", only.as_str()]))
        .arg("--kms-eth-bin")
        .arg(&kms_eth_bin)
        .args(
            instance
                .pid
                .map(|pid| vec!["--localstack-pid".to_owned(), pid.to_string()])
                .unwrap_or_default(),
        )
        .args(["--profile", PROFILE])
        .arg("--json")
        .arg(&results)
        .current_dir(process::project_root());
    if let Some(dir) = &criterion_dir {
        driver.arg("--criterion-dir").arg(dir);
    }
    // The driver prints the table and writes the JSON, then fails (exit 1) if the KMS call
    // counts are wrong; its failure is this command's.
    workspace::run_visible("the networked benchmarks (kms-eth-bench)", &mut driver)
}

/// `--concurrency` as it is written on a command line: `1,32`.
fn concurrency_list(args: &BenchArgs) -> String {
    args.concurrency
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the criterion benchmark of the local overhead and returns its output folder (its
/// `CRITERION_HOME`), whose estimates the driver reads.
fn local_overhead(quick: bool) -> Result<PathBuf> {
    let criterion_home = workspace::target_dir().join("criterion");
    // The signer's pipeline, then typed data and the policy (in `core`, which has the EIP-712
    // encoder and the policy engine), in one criterion group, so the report compares both with the same k256 recovery.
    for (package, bench) in [
        ("kms-eth-signer", "local_overhead"),
        ("kms-eth-core", "typed_data"),
        ("kms-eth-core", "policy"),
    ] {
        let mut command = Command::new(workspace::cargo_bin());
        command
            .args(["bench", "-p", package, "--bench", bench])
            .args(["--profile", PROFILE, "--"])
            .args(if quick { &["--quick"][..] } else { &[][..] })
            .env("CRITERION_HOME", &criterion_home)
            .current_dir(process::project_root());
        kms_eth_harness::say(
            "bench",
            format!("local overhead: {bench} (criterion, no network)"),
        );
        workspace::run_visible("the local overhead benchmark", &mut command)?;
    }
    Ok(criterion_home)
}
