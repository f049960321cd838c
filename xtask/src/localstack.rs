//! `cargo xtask localstack up|down|status|logs`. Docker's side (`up --docker`, and `down`
//! or `status` of a container) is the harness's `localstack-docker` binary, built with the
//! `docker` feature on first use, so that `cargo xtask` itself never links testcontainers.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kms_eth_harness::localstack::{self, Options};
use kms_eth_harness::process::{Handle, Record};
use kms_eth_harness::workspace;

use crate::flags::LocalstackCmd;

pub fn run(command: LocalstackCmd) -> Result<()> {
    match command {
        LocalstackCmd::Up {
            port,
            timeout,
            docker: true,
        } => docker(&[
            "up",
            &port.map_or_else(|| "default".to_owned(), |port| port.to_string()),
            &timeout.to_string(),
        ]),
        LocalstackCmd::Up {
            port,
            timeout,
            docker: false,
        } => {
            let instance = localstack::up(&Options {
                port: port.unwrap_or(localstack::DEFAULT_PORT),
                port_given: port.is_some(),
                timeout: Duration::from_secs(timeout),
                ..Options::default()
            })?;
            out!("{}", instance.endpoint);
            Ok(())
        }
        LocalstackCmd::Down if recorded_container().is_some() => docker(&["down"]),
        LocalstackCmd::Down => {
            match localstack::down()? {
                Some(record) => {
                    out!("stopped LocalStack ({}) at {}", record.handle, record.url)
                }
                None => out!("LocalStack is not running (nothing to stop)"),
            }
            Ok(())
        }
        LocalstackCmd::Status { json } => status(json),
        LocalstackCmd::Logs { lines } => {
            let dir = localstack::service_dir();
            // A container's output stays with the engine, not in the state folder.
            if let Some(Handle::Container { name, .. }) = dir.record().map(|r| r.handle) {
                bail!("LocalStack runs in Docker: its log is `docker logs {name}`");
            }
            let text = match lines {
                Some(lines) => dir.log_tail(lines),
                None => std::fs::read_to_string(dir.log_path()).with_context(|| {
                    format!("no LocalStack log yet at {}", dir.log_path().display())
                })?,
            };
            out!("{text}");
            Ok(())
        }
    }
}

/// The record of a LocalStack running in Docker, if that is what `up` started.
fn recorded_container() -> Option<Record> {
    localstack::service_dir()
        .record()
        .filter(|record| matches!(record.handle, Handle::Container { .. }))
}

/// Runs the Docker-enabled `localstack-docker` binary with `args` (building it first, with
/// cargo's progress shown) and fails as it fails: exit 2 when no Docker engine answers.
fn docker(args: &[&str]) -> Result<()> {
    let output = docker_output(args)?;
    std::io::Write::write_all(&mut std::io::stdout(), &output.stdout)?;
    match output.status.code() {
        Some(0) => Ok(()),
        // The binary has said why on stderr; the exit code is what is left to pass on.
        Some(code) => std::process::exit(code),
        None => bail!("localstack-docker was killed ({})", output.status),
    }
}

fn docker_output(args: &[&str]) -> Result<std::process::Output> {
    let binary = workspace::build_binary_with("kms-eth-harness", "localstack-docker", &["docker"])?;
    Command::new(&binary)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", binary.display()))
}

/// The running LocalStack's record: a container's is checked by `localstack-docker`.
fn running() -> Result<Option<Record>> {
    match recorded_container() {
        Some(record) => Ok(docker_output(&["running"])?
            .status
            .success()
            .then_some(record)),
        None => Ok(localstack::service_dir().running()),
    }
}

fn status(json: bool) -> Result<()> {
    let (url, handle) = match (localstack::external_endpoint(), running()?) {
        (Some(url), _) => (url, None),
        (None, Some(record)) => (record.url, Some(record.handle)),
        (None, None) => {
            if json {
                out!("{}", serde_json::json!({ "running": false }));
            }
            bail!("LocalStack is not running; start it with `cargo xtask localstack up`");
        }
    };
    let health = localstack::health(&url);
    let missing = localstack::missing_services(health.as_ref());
    if json {
        out!(
            "{}",
            serde_json::json!({
                "running": true,
                "endpoint": url,
                "pid": handle.as_ref().and_then(Handle::pid),
                "container": match &handle {
                    Some(Handle::Container { name, .. }) => Some(name),
                    _ => None,
                },
                "healthy": missing.is_empty(),
                "health": health,
            })
        );
    } else {
        let who = handle.map_or("from AWS_ENDPOINT_URL".to_owned(), |handle| {
            handle.to_string()
        });
        out!(
            "LocalStack at {url} ({who}): {}",
            localstack::describe_health(health.as_ref())
        );
    }
    if !missing.is_empty() {
        bail!(
            "LocalStack at {url} is not healthy: {} not available",
            missing.join(", ")
        );
    }
    Ok(())
}
