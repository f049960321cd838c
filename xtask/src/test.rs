//! `cargo xtask test`: the one test command, and `--cleanup` of what test runs left behind.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use kms_eth_harness::localstack::{self, Options};
use kms_eth_harness::{
    anvil, cargo_lambda, clients, leak_scan, process, redis, test_env, workspace,
};

use crate::flags::{TargetKind, TestArgs};
use crate::UsageError;

pub fn run(args: TestArgs) -> Result<()> {
    if args.target == TargetKind::Localstack && (args.profile.is_some() || args.region.is_some()) {
        return Err(UsageError(
            "--profile and --region choose an AWS account and region; they only apply with --target aws".into(),
        )
        .into());
    }
    let started = Instant::now();
    if args.cleanup {
        return cleanup(&args);
    }
    if !args.no_lint {
        // The fuzz targets are a workspace of their own (they are built with nightly and
        // cargo-fuzz); checking them here on stable keeps them compiling as the parsers
        // change.
        for (what, manifest) in [("", "Cargo.toml"), ("fuzz targets: ", "fuzz/Cargo.toml")] {
            workspace::run_cargo(
                "test",
                &format!("{what}formatting (cargo fmt --check)"),
                &["fmt", "--manifest-path", manifest, "--all", "--", "--check"],
            )?;
            workspace::run_cargo(
                "test",
                &format!("{what}lints (cargo clippy -D warnings)"),
                &[
                    "clippy",
                    "--manifest-path",
                    manifest,
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )?;
        }
    }
    // Compile everything before starting services, so a compile error fails fast and
    // LocalStack does not sit idle through a long build.
    workspace::run_cargo(
        "test",
        "building the tests",
        &["test", "--workspace", "--no-run"],
    )?;
    if !args.no_lint {
        lint_templates()?;
    }
    // The fuzz targets' properties on their seed corpora, mutated as a fuzzer starts to
    // (libFuzzer needs nightly; this is the same property code on stable). A failure is
    // reported after the other tests, so it hides none of theirs.
    let fuzz_properties = workspace::run_cargo(
        "test",
        "fuzz properties on the seed corpora (stable)",
        &[
            "test",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "-p",
            "kms-eth-fuzz-properties",
        ],
    );
    // The end-to-end tests drive the product's binary as users do.
    let kms_eth = workspace::build_binary("kms-eth", "kms-eth")?;
    let function = cargo_lambda::FUNCTION;
    let lambda = workspace::build_binary(function, function)?;
    anvil::install()?;
    cargo_lambda::install()?;
    clients::web3_python()?;
    redis::install()?;

    let run_id = test_env::new_run_id();
    let mut test = Command::new(workspace::cargo_bin());
    // --no-fail-fast: one failing test binary must not hide the failures of the others.
    test.args(["test", "--workspace", "--no-fail-fast"])
        .args(&args.cargo_test_args)
        .env(test_env::RUN_ID, &run_id)
        .env(test_env::KMS_ETH_BIN, &kms_eth)
        .env(test_env::LAMBDA_BIN, &lambda)
        // `cargo test` has just rebuilt the xtask binary in place (with the workspace's
        // features), so this process's own file may be gone; the fresh one is at its path.
        .env(
            test_env::XTASK_BIN,
            std::env::current_exe()?.with_file_name("xtask"),
        )
        .current_dir(process::project_root());
    let _localstack = match args.target {
        TargetKind::Localstack => {
            let instance = localstack::up(&Options {
                port: localstack_port()?,
                ..Options::default()
            })?;
            // Anything that reads credentials from the environment (cast; the CLI under
            // `--target aws`) gets canaries, which the leak scan below looks for.
            test.env(test_env::TARGET, "localstack")
                .env(test_env::ENDPOINT, &instance.endpoint)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", test_env::CANARY_SECRET_ACCESS_KEY)
                .env("AWS_SESSION_TOKEN", test_env::CANARY_SESSION_TOKEN);
            Some(localstack::StopWhenDone {
                started: instance.started,
                tag: "test",
            })
        }
        TargetKind::Aws => {
            kms_eth_harness::say(
                "test",
                format!(
                    "running the end-to-end tests against a REAL AWS account (run id {run_id})"
                ),
            );
            test.env(test_env::TARGET, "aws")
                .env_remove("AWS_ENDPOINT_URL");
            if let Some(profile) = &args.profile {
                test.env("AWS_PROFILE", profile);
            }
            if let Some(region) = &args.region {
                test.env("AWS_REGION", region);
            }
            None
        }
    };
    let logs = test_output_dir();
    let tests = workspace::run_logged("the tests (cargo test --workspace)", &mut test, &logs);
    // Failing runs print the most (error chains, debug output), so they are scanned too.
    let leaks = check_for_leaks(&logs);
    if let (Err(_), Err(leak)) = (&tests, &leaks) {
        eprintln!("error: {leak:#}");
    }
    // The tests' scratch files are kept after a failure, for the post-mortem, and removed
    // after a pass, so that runs do not pile up files under the temporary folder.
    let scratch = test_env::scratch_dir(&run_id);
    if scratch.exists() {
        if tests.is_ok() && leaks.is_ok() {
            if let Err(err) = std::fs::remove_dir_all(&scratch) {
                eprintln!("warning: could not remove {}: {err}", scratch.display());
            }
        } else {
            kms_eth_harness::say(
                "test",
                format!("the tests' scratch files are in {}", scratch.display()),
            );
        }
    }
    tests?;
    leaks?;
    fuzz_properties?;
    kms_eth_harness::say(
        "test",
        format!("all passed in {:.0} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

/// cfn-lint and cfripper on the account template exactly as deployed: the provisioner renders
/// it for each removal policy (this task has no provisioner dependency), the harness installs
/// the pinned linters on first use and runs them.
fn lint_templates() -> Result<()> {
    kms_eth_harness::say("test", "CloudFormation templates (cfn-lint, cfripper)");
    let render = workspace::build_binary("kms-eth-provisioner", "render-templates")?;
    let output = Command::new(&render)
        .arg(test_output_dir().join("templates"))
        .output()
        .context("running render-templates")?;
    if !output.status.success() {
        anyhow::bail!(
            "render-templates failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let templates: Vec<std::path::PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(std::path::PathBuf::from)
        .collect();
    kms_eth_harness::template_lint::check(&templates)
}

/// Where the output of the last test run is kept: `target/kms-eth-test/`.
fn test_output_dir() -> std::path::PathBuf {
    workspace::target_dir().join("kms-eth-test")
}

/// Fails the run if a test key or a canary credential reached the test output or any log
/// or state file of the harness (the Python venv and npm packages are not ours to scan).
fn check_for_leaks(logs: &std::path::Path) -> Result<()> {
    // The state folders are `.kms-eth/<service>`, or under `KMS_ETH_STATE_DIR`; both are
    // scanned, once each.
    let roots: std::collections::BTreeSet<_> =
        ["localstack", "chain", "anvil-tests", "redis", "redis-tests"]
            .into_iter()
            .flat_map(|service| {
                [
                    process::state_dir(service),
                    process::tools_dir().join(service),
                ]
            })
            .chain([logs.to_path_buf()])
            .collect();
    let roots = leak_scan::existing(roots);
    let (findings, scanned) = leak_scan::scan(
        &roots,
        &["localstack-venv", "node_modules"],
        &leak_scan::test_secrets(),
    );
    if !findings.is_empty() {
        let list: Vec<String> = findings
            .iter()
            .map(|f| format!("  {} in {}", f.secret, f.path.display()))
            .collect();
        anyhow::bail!(
            "secrets were written where they must never be:\n{}\nfind out what wrote them \
             (the harness's logs are appended to, so an old run may have), then delete \
             those files",
            list.join("\n")
        );
    }
    kms_eth_harness::say(
        "test",
        format!(
            "no private key or credential in the test output, logs and state ({} files, {:.1} MiB)",
            scanned.files,
            scanned.bytes as f64 / (1024.0 * 1024.0)
        ),
    );
    Ok(())
}

/// The port for the tests' LocalStack: the harness's usual one, unless something else
/// (say, a LocalStack of the user's own) holds it; then any free port, so a test run never
/// fails or borrows a service it does not control.
fn localstack_port() -> Result<u16> {
    let port = localstack::DEFAULT_PORT;
    if localstack::service_dir().running().is_some() || process::port_is_free(port) {
        return Ok(port);
    }
    let free = process::free_port()?;
    kms_eth_harness::say(
        "test",
        format!(
            "port {port} is taken by another program; starting the tests' LocalStack on {free}"
        ),
    );
    Ok(free)
}

/// Removes what earlier test runs left on the target, found by their test tag and names:
/// the end-to-end tests' own `cleanup` binary does it (it has the AWS clients; this task
/// has none), lists what it found, and asks for confirmation itself.
fn cleanup(args: &TestArgs) -> Result<()> {
    let mut command = vec!["run", "--package", "kms-eth-e2e", "--bin", "cleanup", "--"];
    if args.target == TargetKind::Aws {
        command.extend(["--target", "aws"]);
    }
    if let Some(profile) = &args.profile {
        command.extend(["--profile", profile]);
    }
    if let Some(region) = &args.region {
        command.extend(["--region", region]);
    }
    if args.yes {
        command.push("--yes");
    }
    workspace::run_cargo("cleanup", "finding what test runs left behind", &command)
        .context("the cleanup failed")
}
