//! `cargo xtask bench`: every benchmark in one run. The local overhead (criterion, no
//! network) first, while nothing else of ours loads the machine; then LocalStack from the
//! harness and the networked driver (`kms-eth-bench`: signing throughput side by side, KMS
//! call counts, deploy and destroy latency); then one table, also written as JSON under the
//! cargo target folder.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use kms_eth_harness::localstack::{self, Options};
use kms_eth_harness::process;
use serde_json::{json, Value};

use crate::flags::BenchArgs;

/// Both benchmark builds use cargo's `bench` profile (optimised, like `release`, in the same
/// `target/release` folder), so kms-eth's own crates are optimised exactly like alloy's and
/// the AWS SDK. The `dev` profile would compile our crates at opt-level 0 against
/// dependencies at opt-level 2, which would measure the build settings, not the code.
const PROFILE: &str = "bench";

/// The targets the benchmarks are held to.
const TARGET_B_OVER_A: f64 = 0.97;
const TARGET_B_OVER_C: f64 = 1.0;
const TARGET_LOCAL: f64 = 1.3;
const TARGET_STACKS: f64 = 1.5;

pub fn run(args: BenchArgs) -> Result<()> {
    let args = args.effective();
    let out_dir = process::target_dir().join("kms-eth-bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // Build both benchmarks, and the `kms-eth` binary whose deploy and destroy are timed,
    // before anything is measured or started: no compilation is ever inside a measurement.
    process::run_cargo(
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
    let kms_eth_bin = process::target_dir().join("release").join("kms-eth");
    let local = if args.no_local {
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
    let network_json = out_dir.join("network.json");
    // A stale file must never pass for this run's figures.
    let _ = std::fs::remove_file(&network_json);
    let concurrency = concurrency_list(&args);
    let driver = process::run_visible(
        "the networked benchmarks (kms-eth-bench)",
        Command::new(process::cargo_bin())
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
            .args(["--concurrency", &concurrency])
            .args(["--stack-rounds", &args.stack_rounds.to_string()])
            .arg("--kms-eth-bin")
            .arg(&kms_eth_bin)
            .arg("--json")
            .arg(&network_json)
            .current_dir(process::project_root()),
    );
    // The driver writes its report before failing on wrong call counts, so the table is
    // shown either way; only a missing report means there is nothing to show.
    let network: Value = match std::fs::read(&network_json) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", network_json.display()))?,
        Err(_) => {
            driver?;
            bail!("the driver wrote no report at {}", network_json.display());
        }
    };

    let report = json!({
        "command": command_line(&args),
        "machine": machine(),
        "local_overhead": local,
        "network": network,
    });
    let path = out_dir.join("results.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    out!("{}", table(&report));
    out!("JSON: {}", path.display());
    driver
}

/// `--concurrency` as it is written on a command line: `1,32`.
fn concurrency_list(args: &BenchArgs) -> String {
    args.concurrency
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The command that reproduces this run.
fn command_line(args: &BenchArgs) -> String {
    let concurrency = concurrency_list(args);
    format!(
        "cargo xtask bench -n {} --rounds {} --concurrency {concurrency} --stack-rounds {}",
        args.signatures, args.rounds, args.stack_rounds
    )
}

/// The criterion benchmarks whose estimates the table reads.
const LOCAL_BENCHES: [&str; 6] = [
    "k256_recovery",
    "kms_answer_to_signed_tx",
    "signing_hash",
    "parse_der",
    "finalize",
    "into_signed",
];

/// Runs the criterion benchmark and reads back its estimates (median and mean, in ns).
fn local_overhead(quick: bool) -> Result<Value> {
    let criterion_home = process::target_dir().join("criterion");
    let mut command = Command::new(process::cargo_bin());
    command
        .args(["bench", "-p", "kms-eth-signer", "--bench", "local_overhead"])
        .args(["--profile", PROFILE, "--"])
        .args(if quick { &["--quick"][..] } else { &[][..] })
        .env("CRITERION_HOME", &criterion_home)
        .current_dir(process::project_root());
    eprintln!("[bench] local overhead (criterion, no network)");
    process::run_visible("the local overhead benchmark", &mut command)?;
    let mut estimates = serde_json::Map::new();
    for name in LOCAL_BENCHES {
        estimates.insert(name.into(), estimate(&criterion_home, name)?);
    }
    let estimates = Value::Object(estimates);
    let median = |name: &str| estimates[name]["median_ns"].as_f64().unwrap_or(f64::NAN);
    let ratio = median("kms_answer_to_signed_tx") / median("k256_recovery");
    Ok(json!({ "estimates": estimates, "ratio_to_one_recovery": ratio }))
}

fn estimate(criterion_home: &Path, name: &str) -> Result<Value> {
    let path = criterion_home
        .join("local_overhead")
        .join(name)
        .join("new/estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let point = |key: &str| value[key]["point_estimate"].as_f64();
    Ok(json!({
        "median_ns": point("median").context("criterion estimate without a median")?,
        "mean_ns": point("mean"),
    }))
}

/// What the figures were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu,
        "memory_gib": memory_gib,
        "rustc": rustc,
        "localstack": localstack::VERSION,
        "profile": PROFILE,
    })
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The human-readable summary of the report.
fn table(report: &Value) -> String {
    let mut out = String::new();
    let machine = &report["machine"];
    let _ = writeln!(
        out,
        "\nkms-eth benchmarks: {} CPUs ({}), {} GiB, {}, LocalStack {}",
        machine["cpus"],
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["memory_gib"],
        machine["rustc"].as_str().unwrap_or("rustc ?"),
        machine["localstack"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "reproduce: {}",
        report["command"].as_str().unwrap_or("")
    );

    let network = &report["network"];
    let throughput = &network["throughput"];
    let _ = writeln!(
        out,
        "\nSigning throughput ({} signatures per variant, per concurrency, per round; {} rounds; median round, [slowest..fastest])",
        throughput["signatures_per_run"], throughput["rounds"]
    );
    let _ = writeln!(
        out,
        "{:<5} {:<26} {:>9} {:>19} {:>9} {:>9}",
        "conc", "variant", "sig/s", "range sig/s", "p50 ms", "p99 ms"
    );
    for figures in throughput["figures"].as_array().into_iter().flatten() {
        let range = &figures["per_second_range"];
        let _ = writeln!(
            out,
            "{:<5} {:<26} {:>9.1} {:>19} {:>9.2} {:>9.2}",
            figures["concurrency"].as_u64().unwrap_or(0),
            figures["label"].as_str().unwrap_or(""),
            figures["per_second"].as_f64().unwrap_or(f64::NAN),
            format!(
                "[{:.1}..{:.1}]",
                range[0].as_f64().unwrap_or(f64::NAN),
                range[1].as_f64().unwrap_or(f64::NAN)
            ),
            figures["p50_ms"].as_f64().unwrap_or(f64::NAN),
            figures["p99_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let spread = |values: &Value| {
        let values: Vec<f64> = values
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("rounds {lo:.3}..{hi:.3}")
    };
    for ratios in throughput["ratios"].as_array().into_iter().flatten() {
        let b_a = ratios["b_over_a"].as_f64().unwrap_or(f64::NAN);
        let b_c = ratios["b_over_c"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "concurrency {:>2}: b/a = {b_a:.3} ({}; target >= {TARGET_B_OVER_A}: {})   b/c = {b_c:.3} ({}; target >= {TARGET_B_OVER_C}: {})",
            ratios["concurrency"].as_u64().unwrap_or(0),
            spread(&ratios["b_over_a_by_round"]),
            met(b_a >= TARGET_B_OVER_A),
            spread(&ratios["b_over_c_by_round"]),
            met(b_c >= TARGET_B_OVER_C),
        );
    }

    if let Some(local) = report["local_overhead"].as_object() {
        let _ = writeln!(
            out,
            "\nLocal overhead per signature (criterion medians, no network)"
        );
        for name in LOCAL_BENCHES {
            let _ = writeln!(
                out,
                "  {:<26} {:>10.2} µs",
                name,
                local["estimates"][name]["median_ns"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
                    / 1000.0
            );
        }
        let ratio = local["ratio_to_one_recovery"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "  KMS answer -> verified signed tx = {ratio:.2} x one k256 recovery (target <= {TARGET_LOCAL}: {})",
            met(ratio <= TARGET_LOCAL)
        );
    }

    if let Some(stacks) = network["stacks"].as_object() {
        let seconds = |key: &str| {
            let values: Vec<String> = stacks[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .map(|v| format!("{v:.2}"))
                .collect();
            values.join(" ")
        };
        let _ = writeln!(
            out,
            "\nDeploy and destroy against LocalStack ({} rounds, seconds per round; compile-free: the built binary)",
            stacks["rounds"]
        );
        let _ = writeln!(out, "  xtask deploy           {}", seconds("cli_deploy_s"));
        let _ = writeln!(out, "  raw create-and-wait    {}", seconds("raw_create_s"));
        let _ = writeln!(out, "  xtask destroy          {}", seconds("cli_destroy_s"));
        let _ = writeln!(out, "  raw delete-and-wait    {}", seconds("raw_delete_s"));
        for (what, key) in [("deploy", "deploy_ratio"), ("destroy", "destroy_ratio")] {
            let ratio = stacks[key].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "  {what}/raw (medians) = {ratio:.2} (target <= {TARGET_STACKS}: {})",
                met(ratio <= TARGET_STACKS)
            );
        }
    }

    let calls = &network["calls"];
    let _ = writeln!(
        out,
        "\nKMS calls for one signer and {} signatures: kms-eth {}, alloy {} (required: 1 GetPublicKey + {} Sign, no DescribeKey: {})",
        calls["signatures"],
        calls["kms_eth"]["operations"],
        calls["alloy"]["operations"],
        calls["signatures"],
        met(calls["kms_eth_as_required"].as_bool() == Some(true)),
    );
    let anvil = &network["anvil"];
    let _ = writeln!(
        out,
        "anvil mined kms-eth's {} and alloy's {}",
        anvil["kms_eth_tx"].as_str().unwrap_or("?"),
        anvil["alloy_tx"].as_str().unwrap_or("?"),
    );
    out
}
