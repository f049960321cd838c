//! `cargo xtask localstack up|down|status|logs`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kms_eth_harness::localstack::{self, Options};
use kms_eth_harness::process::Handle;

use crate::flags::LocalstackCmd;

pub fn run(command: LocalstackCmd) -> Result<()> {
    match command {
        LocalstackCmd::Up {
            port,
            timeout,
            docker,
        } => {
            let instance = localstack::up(&Options {
                port,
                timeout: Duration::from_secs(timeout),
                docker,
            })?;
            out!("{}", instance.endpoint);
            Ok(())
        }
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

fn status(json: bool) -> Result<()> {
    let (url, handle) = match (
        localstack::external_endpoint(),
        localstack::service_dir().running(),
    ) {
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
