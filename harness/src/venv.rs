//! Python tools installed from a hash-pinned lock into a virtual environment of their own
//! under the tools folder, once: the same install for every tool the harness takes from
//! PyPI.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::process::{self, tools_dir};

/// A tool's virtual environment.
#[derive(Debug, Clone, Copy)]
pub struct Venv {
    /// The folder's name under the tools folder, and the install lock's.
    pub name: &'static str,
    /// The tag of progress lines (`[name] ...`).
    pub tag: &'static str,
    /// What is installed, for messages (`cargo-lambda 1.9.2`).
    pub what: &'static str,
    /// The requirements lock, with a hash for every package.
    pub lock: &'static str,
}

impl Venv {
    /// The environment's folder, created from the lock unless it already holds exactly that
    /// lock. A stamp with the lock's hash is written last, so an interrupted install is
    /// redone; the install runs under a lock, so parallel callers install once.
    pub fn ensure(&self) -> Result<PathBuf> {
        let venv = tools_dir().join(self.name);
        let _lock = process::install_lock(self.name)?;
        let stamp = venv.join("kms-eth-lock.stamp");
        let lock_hash = process::fingerprint(self.lock.as_bytes());
        if fs::read_to_string(&stamp).ok().as_deref() == Some(lock_hash.as_str()) {
            return Ok(venv);
        }
        let python = crate::localstack::find_python()?;
        let started = Instant::now();
        crate::say(
            self.tag,
            format!(
                "installing {} into {} (first use only)",
                self.what,
                venv.display()
            ),
        );
        if venv.exists() {
            fs::remove_dir_all(&venv)
                .with_context(|| format!("removing the stale {}", venv.display()))?;
        }
        let log = tools_dir().join(format!("{}-install.log", self.name));
        fs::create_dir_all(tools_dir())?;
        process::run_quiet(
            self.tag,
            "creating the virtual environment",
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            &log,
        )?;
        let lock_path = venv.join("requirements.lock");
        fs::write(&lock_path, self.lock)
            .with_context(|| format!("writing {}", lock_path.display()))?;
        let log_name = log.file_name().map(|n| n.to_string_lossy().into_owned());
        process::run_quiet(
            self.tag,
            &format!(
                "installing the pinned packages with pip (its log: {})",
                log_name.unwrap_or_default()
            ),
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
            self.tag,
            format!("installed in {:.0} s", started.elapsed().as_secs_f64()),
        );
        Ok(venv)
    }
}
