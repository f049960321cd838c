//! `cargo xtask deploy|destroy|status|...`: the product's commands, run by the `kms-eth`
//! binary. It is built first (cargo's progress shows), then this process becomes it, so its
//! exit code, terminal prompts and signals are the binary's own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result};
use kms_eth_harness::process;

use crate::UsageError;

/// The commands the `kms-eth` binary has. Anything else is a typo, refused here rather than
/// after a build.
pub const COMMANDS: [&str; 9] = [
    "deploy",
    "destroy",
    "status",
    "sign",
    "send",
    "verify",
    "sign-message",
    "key",
    "serve",
];

pub fn run(args: &[OsString]) -> Result<()> {
    let name = args
        .first()
        .map(|a| a.to_string_lossy())
        .unwrap_or_default();
    if !COMMANDS.contains(&name.as_ref()) {
        return Err(UsageError(format!(
            "unrecognized subcommand '{name}'; the developer tasks are test, bench, localstack \
             and chain, and the product's commands are {}",
            COMMANDS.join(", ")
        ))
        .into());
    }
    let binary = process::build_binary("kms-eth", "kms-eth")?;
    let err = Command::new(&binary).args(args).exec();
    Err(err).with_context(|| format!("running {}", binary.display()))
}
