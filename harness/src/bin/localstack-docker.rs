//! `localstack-docker`: the Docker side of `cargo xtask localstack`, built with the
//! harness's `docker` feature so that nothing else has to link testcontainers. `cargo
//! xtask localstack up --docker`, and `down`/`status` of a container it recorded, run this.
//!
//! Usage (from xtask, not by hand): `localstack-docker up PORT|default TIMEOUT_SECS`,
//! `localstack-docker down`, `localstack-docker running`. Exit codes as xtask's: 2 when no
//! Docker engine answers, 1 on any other failure; `running` exits 1 when not running.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kms_eth_harness::docker::NoDockerEngine;
use kms_eth_harness::localstack::{self, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|cause| cause.is::<NoDockerEngine>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(args: &[&str]) -> Result<ExitCode> {
    match args {
        ["up", port, timeout] => {
            // `default` when the user gave no --port.
            let (port, port_given) = match *port {
                "default" => (localstack::DEFAULT_PORT, false),
                port => (port.parse().context("the port")?, true),
            };
            let instance = localstack::up(&Options {
                port,
                port_given,
                timeout: Duration::from_secs(timeout.parse().context("the timeout")?),
                docker: true,
                quiet_when_running: false,
            })?;
            println!("{}", instance.endpoint);
        }
        ["down"] => match localstack::down()? {
            Some(record) => println!("stopped LocalStack ({}) at {}", record.handle, record.url),
            None => println!("LocalStack is not running (nothing to stop)"),
        },
        ["running"] => match localstack::service_dir().running() {
            Some(record) => println!("{}", record.url),
            None => return Ok(ExitCode::FAILURE),
        },
        other => {
            bail!("unknown arguments {other:?}: this binary is run by `cargo xtask localstack`")
        }
    }
    Ok(ExitCode::SUCCESS)
}
