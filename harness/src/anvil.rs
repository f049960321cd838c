//! A local Ethereum node: Foundry's anvil (and cast, an independent peer for tests), installed
//! from npm at the versions pinned in `chain/package-lock.json`, started on a loopback port.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::jsonrpc;
use crate::process::{self, project_root, Handle, Record, ServiceDir};
use crate::workspace;

const COMMAND_MARKER: &str = "anvil";

/// The folder holding `package.json` and `package-lock.json` for anvil and cast.
pub fn package_dir() -> PathBuf {
    project_root().join("chain")
}

/// The path of an installed Foundry binary (`anvil` or `cast`): the native executable in
/// the platform package (`@foundry-rs/anvil-linux-amd64/bin/anvil`), not the node wrapper in
/// `.bin`, so that stopping the process stops the node itself.
pub fn binary(name: &str) -> PathBuf {
    let scope = package_dir().join("node_modules").join("@foundry-rs");
    let native = fs::read_dir(&scope).ok().and_then(|entries| {
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-"))
            })
            .map(|entry| entry.path().join("bin").join(name))
            .find(|path| path.is_file())
    });
    native.unwrap_or_else(|| package_dir().join("node_modules").join(".bin").join(name))
}

/// Installs anvil and cast with `npm ci` unless the installed packages match the lock. The
/// install is done under a lock: parallel test binaries install once.
pub fn install() -> Result<()> {
    let dir = package_dir();
    let _lock = process::install_lock("chain")?;
    let lock = fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("reading {}", dir.join("package-lock.json").display()))?;
    let lock_hash = process::fingerprint(&lock);
    let stamp = dir.join("node_modules").join(".kms-eth-lock.stamp");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(lock_hash.as_str())
        && binary("anvil").exists()
        && binary("cast").exists()
    {
        return Ok(());
    }
    let started = Instant::now();
    crate::say(
        "chain",
        format!(
            "installing anvil and cast from npm into {} (first run only)",
            dir.join("node_modules").display()
        ),
    );
    workspace::run_visible(
        "installing anvil and cast (`npm ci` in chain/; needs Node.js and npm)",
        // npm's own lines go to stderr: stdout of `chain up` carries only the node's URL,
        // which scripts read (a first run's "added 13 packages" broke that).
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .stdout(std::io::stderr())
            .current_dir(&dir),
    )?;
    for name in ["anvil", "cast"] {
        let output = Command::new(binary(name))
            .arg("--version")
            .output()
            .with_context(|| format!("running the freshly installed {name}"))?;
        if !output.status.success() {
            bail!(
                "the installed {name} does not run: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    fs::write(&stamp, lock_hash)?;
    crate::say(
        "chain",
        format!("installed in {:.0} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

/// A running anvil. Dropping it stops the node (for nodes started by tests); `detach`
/// leaves it running (for `cargo xtask chain up`).
#[derive(Debug)]
pub struct Anvil {
    url: String,
    port: u16,
    child: Option<Child>,
    chain_id: u64,
}

impl Anvil {
    /// Installs anvil if needed and starts a throw-away node on a free port of 127.0.0.1,
    /// as the end-to-end tests do; it logs to `.kms-eth/anvil-tests`.
    pub fn start(timeout: Duration) -> Result<Self> {
        Self::start_in(&test_dir(), None, timeout)
    }

    /// Installs anvil if needed and starts it on `port` (a free one if `None`) on
    /// 127.0.0.1, logging into `dir`, waiting at most `timeout` until it answers
    /// `eth_chainId`.
    pub fn start_in(dir: &ServiceDir, port: Option<u16>, timeout: Duration) -> Result<Self> {
        Self::start_with(dir, port, &[], timeout)
    }

    /// As [`Anvil::start_in`], with `extra` arguments for anvil (`--state FILE` keeps the
    /// chain across a restart).
    pub fn start_with(
        dir: &ServiceDir,
        port: Option<u16>,
        extra: &[&str],
        timeout: Duration,
    ) -> Result<Self> {
        install()?;
        let port = match port {
            Some(port) if !process::port_is_free(port) => {
                bail!("port {port} on 127.0.0.1 is in use; choose another with --port or leave it out to pick a free one")
            }
            Some(port) => port,
            None => process::free_port()?,
        };
        let url = format!("http://127.0.0.1:{port}");
        // `--accounts 0`: anvil would otherwise create ten accounts from its well-known
        // test mnemonic, fund them, and print their private keys into the log. The tests
        // fund the accounts they need with `anvil_setBalance` instead.
        let mut child = dir.spawn(
            Command::new(binary("anvil"))
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--accounts",
                    "0",
                ])
                .args(extra),
        )?;
        let ready = process::wait_for(
            "anvil",
            timeout,
            &mut child,
            || jsonrpc::call(&url, "eth_chainId", json!([])).ok(),
            |elapsed| {
                crate::say(
                    "chain",
                    format!("waiting for anvil at {url} ({} s)", elapsed.as_secs()),
                )
            },
        );
        let chain_id = match ready.and_then(|id| jsonrpc::quantity(&id)) {
            Ok(id) => id,
            Err(err) => {
                let _ = process::stop_group(child.id(), COMMAND_MARKER, Duration::from_secs(5));
                let _ = child.try_wait();
                bail!(
                    "{err}; last lines of {}:\n{}",
                    dir.log_path().display(),
                    dir.log_tail(20)
                );
            }
        };
        Ok(Anvil {
            url,
            port,
            child: Some(child),
            chain_id,
        })
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chain id the node reported.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The node's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves the node running after this value is dropped, and returns its record.
    pub fn detach(mut self) -> Option<Record> {
        let child = self.child.take()?;
        Some(Record {
            handle: Handle::Pid(child.id()),
            port: self.port,
            url: self.url.clone(),
        })
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop_group(child.id(), COMMAND_MARKER, Duration::from_secs(5));
            let _ = child.try_wait();
        }
    }
}

/// The state folder of the node `cargo xtask chain up` leaves running.
/// The state folder of the nodes the tests start (`.kms-eth/anvil-tests`).
pub fn test_dir() -> ServiceDir {
    ServiceDir::new("anvil-tests", COMMAND_MARKER)
}

pub fn service_dir() -> ServiceDir {
    ServiceDir::new("chain", COMMAND_MARKER)
}

/// The same folder under another state root (`KMS_ETH_STATE_DIR`).
pub fn service_dir_under(root: &std::path::Path) -> ServiceDir {
    ServiceDir::under(root, "chain", COMMAND_MARKER)
}
