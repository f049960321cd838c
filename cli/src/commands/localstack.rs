//! `kms-eth localstack status|down`: the LocalStack that `--target localstack` starts (in
//! the per-user data folder when the binary is installed), seen and stopped without a
//! clone of the project.

use std::fmt;

use anyhow::{bail, Result};
use kms_eth_harness::localstack;
use serde::Serialize;

use crate::flags::LocalstackCmd;
use crate::msg;
use crate::output::Report;

/// The LocalStack this program starts.
#[derive(Debug, Serialize)]
pub struct LocalstackReport {
    /// Whether it runs (after `down`: false).
    pub running: bool,
    pub endpoint: Option<String>,
    pub pid: Option<u32>,
    /// Where its state, log and install live.
    pub state_dir: String,
    #[serde(skip)]
    stopped: bool,
}

impl fmt::Display for LocalstackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.endpoint, self.pid, self.stopped) {
            (Some(endpoint), Some(pid), true) => {
                write!(f, "stopped LocalStack (pid {pid}) at {endpoint}")
            }
            (Some(endpoint), Some(pid), false) => {
                write!(f, "LocalStack runs at {endpoint} (pid {pid})")
            }
            _ => write!(f, "LocalStack is not running (state in {})", self.state_dir),
        }
    }
}

impl Report for LocalstackReport {}

impl LocalstackCmd {
    /// Blocking: the harness signals processes and waits; `main` runs it off the runtime.
    pub fn run(self) -> Result<LocalstackReport> {
        let dir = localstack::service_dir();
        let state_dir = dir.path().display().to_string();
        // The LocalStack this folder records is not the one commands use while
        // AWS_ENDPOINT_URL names another: say where they really go.
        if let Some(endpoint) = localstack::external_endpoint() {
            msg::note(format!(
                "AWS_ENDPOINT_URL is set to {endpoint}: commands with --target localstack call \
                 that endpoint, not the LocalStack recorded in {state_dir}"
            ));
        }
        let (record, stopped) = match self {
            LocalstackCmd::Status => match dir.running() {
                Some(record) => (Some(record), false),
                None => bail!("LocalStack is not running (state in {state_dir})"),
            },
            LocalstackCmd::Down => (localstack::down()?, true),
        };
        Ok(LocalstackReport {
            running: record.is_some() && !stopped,
            endpoint: record.as_ref().map(|r| r.url.clone()),
            pid: record.as_ref().and_then(|r| r.handle.pid()),
            state_dir,
            stopped,
        })
    }
}
