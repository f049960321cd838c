//! `cargo xtask lambda build|invoke`: the signing Lambda's deployable zip, and the real
//! handler invoked locally under cargo-lambda's emulator.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kms_eth_harness::cargo_lambda::{self, Arch, Emulator};
use kms_eth_harness::localstack::{self, Options};
use kms_eth_harness::workspace;

use crate::flags::{LambdaCmd, LambdaInvokeArgs, TargetKind};
use crate::UsageError;

pub fn run(command: LambdaCmd) -> Result<()> {
    match command {
        LambdaCmd::Build { arm64 } => {
            let zip = cargo_lambda::build(if arm64 { Arch::Arm64 } else { Arch::X86_64 })?;
            kms_eth_harness::say(
                "lambda",
                format!("{:.1} MiB", zip.bytes as f64 / (1024.0 * 1024.0)),
            );
            out!("{}", zip.path.display());
            Ok(())
        }
        LambdaCmd::Invoke(args) => invoke(&args),
    }
}

fn invoke(args: &LambdaInvokeArgs) -> Result<()> {
    if args.target == TargetKind::Localstack && (args.profile.is_some() || args.region.is_some()) {
        return Err(UsageError(
            "--profile and --region apply to --target aws; LocalStack uses its own".to_owned(),
        )
        .into());
    }
    let mut env: Vec<(String, String)> = Vec::new();
    let mut product_flags: Vec<String> = Vec::new();
    match args.target {
        TargetKind::Localstack => {
            let instance = localstack::up(&Options {
                quiet_when_running: true,
                ..Options::default()
            })?;
            for (name, value) in [
                ("AWS_ENDPOINT_URL", instance.endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ] {
                env.push((name.to_owned(), value.to_owned()));
            }
            product_flags.extend(["--endpoint-url".to_owned(), instance.endpoint.clone()]);
        }
        TargetKind::Aws => {
            product_flags.extend(["--target".to_owned(), "aws".to_owned()]);
            if let Some(profile) = &args.profile {
                env.push(("AWS_PROFILE".to_owned(), profile.clone()));
                product_flags.extend(["--profile".to_owned(), profile.clone()]);
            }
            if let Some(region) = &args.region {
                env.push(("AWS_REGION".to_owned(), region.clone()));
                product_flags.extend(["--region".to_owned(), region.clone()]);
            }
        }
    }
    let key_id = match (&args.key_id, &args.stack_name) {
        (Some(key_id), _) => key_id.clone(),
        (None, Some(stack)) => stack_key(stack, &product_flags)?,
        (None, None) => bail!("--key-id or --stack-name is required"),
    };
    env.push(("KMS_KEY_ID".to_owned(), key_id));
    match &args.policy {
        Some(path) => env.push((
            "KMS_ETH_POLICY".to_owned(),
            std::fs::read_to_string(path)
                .map_err(|err| UsageError(format!("invalid --policy {}: {err}", path.display())))?,
        )),
        None => env.push(("KMS_ETH_UNRESTRICTED".to_owned(), "true".to_owned())),
    }
    let binary = workspace::build_binary(cargo_lambda::FUNCTION, cargo_lambda::FUNCTION)?;
    let emulator = Emulator::start(&binary, &env, Duration::from_secs(120))?;
    let cold = emulator.since_start();
    let started = Instant::now();
    let answer = emulator.invoke(&args.event)?;
    kms_eth_harness::say(
        "lambda",
        format!(
            "cold start {} ms (process start to ready), invoke {} ms",
            cold.as_millis(),
            started.elapsed().as_millis()
        ),
    );
    out!("{answer}");
    if answer.get("error").is_some() || answer.get("errorType").is_some() {
        bail!("the function answered with an error");
    }
    Ok(())
}

/// The key of a kms-eth stack, as `kms-eth status` reports it.
fn stack_key(stack: &str, product_flags: &[String]) -> Result<String> {
    let kms_eth = workspace::build_binary("kms-eth", "kms-eth")?;
    let output = Command::new(&kms_eth)
        .args(["status", "--stack-name", stack, "--json"])
        .args(product_flags)
        .output()
        .with_context(|| format!("running {}", kms_eth.display()))?;
    if !output.status.success() {
        bail!(
            "kms-eth status --stack-name {stack} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let status: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    status["key_id"]
        .as_str()
        .map(str::to_owned)
        .context("kms-eth status reported no key_id")
}
