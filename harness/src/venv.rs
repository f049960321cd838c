//! Python tools installed into virtual environments of their own under the tools folder,
//! each from a hash-pinned lock built into the binary: LocalStack, and the CloudFormation
//! linters `cargo xtask test` runs. A stamp holding the lock's hash marks a finished install.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::process::{self, tools_dir};

/// One pinned tool set.
#[derive(Debug, Clone, Copy)]
pub struct Pinned<'a> {
    /// The tag of its messages, its install lock and its log (`<tool>-install.log`).
    pub tool: &'static str,
    /// What is installed, for messages (`LocalStack 2026.3.0`).
    pub what: &'a str,
    /// The folder under the tools folder (`localstack-venv`).
    pub folder: &'static str,
    /// The hash-pinned requirements.
    pub lock: &'static str,
}

/// The virtual environment of `pinned`, created with the Python `python` finds unless it
/// already holds exactly that lock. The stamp is written last, so an interrupted install is
/// redone, and the install runs under a lock, so parallel callers install once.
pub fn ensure(pinned: &Pinned<'_>, python: fn() -> Result<PathBuf>) -> Result<PathBuf> {
    let Pinned {
        tool,
        what,
        folder,
        lock,
    } = *pinned;
    let venv = tools_dir().join(folder);
    let _lock = process::install_lock(tool)?;
    let stamp = venv.join("kms-eth-lock.stamp");
    let lock_hash = process::fingerprint(lock.as_bytes());
    if fs::read_to_string(&stamp).ok().as_deref() == Some(lock_hash.as_str()) {
        return Ok(venv);
    }
    let python = python()?;
    let started = Instant::now();
    let log_name = format!("{tool}-install.log");
    crate::say(
        tool,
        format!(
            "installing {what} into {} with {} (first run only; takes a minute or two)",
            venv.display(),
            python.display()
        ),
    );
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .with_context(|| format!("removing the stale {}", venv.display()))?;
    }
    let log = tools_dir().join(&log_name);
    process::private_dir(&tools_dir())?;
    process::run_quiet(
        tool,
        "creating the virtual environment",
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
        &log,
    )?;
    let lock_path = venv.join("requirements.lock");
    fs::write(&lock_path, lock).with_context(|| format!("writing {}", lock_path.display()))?;
    process::run_quiet(
        tool,
        &format!("installing the pinned packages with pip (its log: {log_name})"),
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--require-hashes",
                "--no-deps",
                "--progress-bar",
                "off",
                "-r",
            ])
            .arg(&lock_path)
            // Extra wheel folders configured on the machine must not change what gets
            // installed: the lock, with its hashes, is the whole truth.
            .env_remove("PIP_FIND_LINKS")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        &log,
    )?;
    fs::write(&stamp, &lock_hash)?;
    crate::say(
        tool,
        format!("installed in {:.0} s", started.elapsed().as_secs_f64()),
    );
    Ok(venv)
}
