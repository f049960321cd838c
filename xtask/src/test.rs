//! `cargo xtask test`: the one test command, and `--cleanup` of what test runs left behind.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use aws_sdk_kms::types::{KeyState, Tag};
use xtask::harness::localstack::{self, Options};
use xtask::harness::{anvil, process};
use xtask::target::{Target, TargetKind};
use xtask::{leak_scan, test_env, UsageError, TEST_TAG};

use crate::flags::TestArgs;

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
            process::run_cargo(
                "test",
                &format!("{what}formatting (cargo fmt --check)"),
                &["fmt", "--manifest-path", manifest, "--all", "--", "--check"],
            )?;
            process::run_cargo(
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
    process::run_cargo(
        "test",
        "building the tests",
        &["test", "--workspace", "--no-run"],
    )?;
    anvil::install()?;

    let run_id = test_env::new_run_id();
    let mut test = Command::new(process::cargo_bin());
    test.args(["test", "--workspace"])
        .args(&args.cargo_test_args)
        .env(test_env::RUN_ID, &run_id)
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
            eprintln!(
                "[test] running the end-to-end tests against a REAL AWS account (run id {run_id})"
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
    let tests = process::run_logged("the tests (cargo test --workspace)", &mut test, &logs);
    // Failing runs print the most (error chains, debug output), so they are scanned too.
    let leaks = check_for_leaks(&logs);
    if let (Err(_), Err(leak)) = (&tests, &leaks) {
        eprintln!("error: {leak:#}");
    }
    tests?;
    leaks?;
    eprintln!(
        "[test] all passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where the output of the last test run is kept: `target/kms-eth-test/`.
fn test_output_dir() -> std::path::PathBuf {
    process::target_dir().join("kms-eth-test")
}

/// Fails the run if a test key or a canary credential reached the test output or any log
/// or state file of the harness (the Python venv and npm packages are not ours to scan).
fn check_for_leaks(logs: &std::path::Path) -> Result<()> {
    // The state folders are `.kms-eth/<service>`, or under `KMS_ETH_STATE_DIR`; both are
    // scanned, once each.
    let roots: std::collections::BTreeSet<_> = ["localstack", "chain", "anvil-tests"]
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
    eprintln!(
        "[test] no private key or credential in the test output, logs and state ({} files, {:.1} MiB)",
        scanned.files,
        scanned.bytes as f64 / (1024.0 * 1024.0)
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
    eprintln!(
        "[test] port {port} is taken by another program; starting the tests' LocalStack on {free}"
    );
    Ok(free)
}

/// Removes what earlier test runs left on the target, found by [`TEST_TAG`]: deletes the
/// stacks and schedules the keys for deletion with the minimum 7-day window.
fn cleanup(args: &TestArgs) -> Result<()> {
    let target = Target::resolve(args.target, args.profile.clone(), args.region.clone(), None)?;
    // Test keys are keys like any other: the user sees where the cleanup will act first.
    crate::ui::confirm(
        &format!(
            "Delete every stack and schedule for deletion (7 days) every key tagged {TEST_TAG} in {}?",
            target.describe()
        ),
        args.yes,
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = target.sdk_config().await;
        eprintln!(
            "[cleanup] looking for test leftovers (tag {TEST_TAG}) in {}",
            target.describe()
        );
        let stacks = cleanup_stacks(&aws_sdk_cloudformation::Client::new(&config)).await?;
        let keys = cleanup_keys(&aws_sdk_kms::Client::new(&config)).await?;
        eprintln!("[cleanup] deleted {stacks} stack(s), scheduled {keys} key(s) for deletion");
        Ok(())
    })
}

async fn cleanup_stacks(client: &aws_sdk_cloudformation::Client) -> Result<usize> {
    let mut stacks = client.describe_stacks().into_paginator().items().send();
    let mut deleted = 0;
    while let Some(stack) = stacks.next().await {
        let stack = stack.context("listing CloudFormation stacks")?;
        let is_test = stack.tags().iter().any(|tag| tag.key() == Some(TEST_TAG));
        let name = stack.stack_name().unwrap_or_default().to_owned();
        if is_test {
            eprintln!("[cleanup] deleting stack {name}");
            client
                .delete_stack()
                .stack_name(&name)
                .send()
                .await
                .with_context(|| format!("deleting stack {name}"))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

async fn cleanup_keys(client: &aws_sdk_kms::Client) -> Result<usize> {
    let mut keys = client.list_keys().into_paginator().items().send();
    let mut scheduled = 0;
    while let Some(key) = keys.next().await {
        let key = key.context("listing KMS keys")?;
        let Some(key_id) = key.key_id() else { continue };
        // Keys of other owners (AWS managed keys, keys in other states) may refuse
        // ListResourceTags; those are not ours to clean up.
        let Ok(tags) = client.list_resource_tags().key_id(key_id).send().await else {
            continue;
        };
        if !tags
            .tags()
            .iter()
            .any(|tag: &Tag| tag.tag_key() == TEST_TAG)
        {
            continue;
        }
        let metadata = client.describe_key().key_id(key_id).send().await?;
        let state = metadata.key_metadata().and_then(|m| m.key_state().cloned());
        if state == Some(KeyState::PendingDeletion) {
            continue;
        }
        eprintln!("[cleanup] scheduling test key {key_id} for deletion in 7 days");
        client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(7)
            .send()
            .await
            .with_context(|| format!("scheduling deletion of key {key_id}"))?;
        scheduled += 1;
    }
    Ok(scheduled)
}
