//! The workspace as developer tasks drive it: the cargo that runs them and its target folder,
//! building one binary and finding where cargo put it, and commands run with their output
//! shown (and, for the test run, kept). Development only (the `dev` feature).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::process::{open_private, private_dir, project_root};

/// The cargo running this program (`$CARGO`), or `cargo` from the PATH.
pub fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The cargo target folder: `$CARGO_TARGET_DIR`, or `<project>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => project_root().join("target"),
    }
}

/// Builds one binary of the workspace (dev profile) with cargo's progress shown on stderr,
/// and returns the path cargo reports for it, wherever the target folder is.
pub fn build_binary(package: &str, bin: &str) -> Result<PathBuf> {
    build_binary_with(package, bin, &[])
}

/// [`build_binary`] with the package's `features` turned on.
pub fn build_binary_with(package: &str, bin: &str, features: &[&str]) -> Result<PathBuf> {
    let mut command = Command::new(cargo_bin());
    command.args(["build", "--package", package, "--bin", bin]);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    let output = command
        .arg("--message-format=json-render-diagnostics")
        .current_dir(project_root())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build for {bin}"))?;
    if !output.status.success() {
        bail!("building {bin} failed ({})", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == bin)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo build did not report the {bin} executable"))
}

/// Runs `cargo <args>` in the project root with its output shown, announcing it as
/// `[<tag>] <what>`.
pub fn run_cargo(tag: &str, what: &str, args: &[&str]) -> Result<()> {
    crate::say(tag, what);
    run_visible(
        what,
        Command::new(cargo_bin())
            .args(args)
            .current_dir(project_root()),
    )
}

/// Runs `command` to completion with its output shown and also copied into `dir`
/// (`stdout.log` and `stderr.log`, each stream whole), failing with `what` if it fails.
pub fn run_logged(what: &str, command: &mut Command, dir: &Path) -> Result<()> {
    use std::io::{Read, Write};
    use std::process::Stdio;

    private_dir(dir)?;
    let create = |name: &str| {
        open_private(
            &dir.join(name),
            OpenOptions::new().write(true).truncate(true),
        )
    };
    let (stdout_log, stderr_log) = (create("stdout.log")?, create("stderr.log")?);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: could not run {:?}", command.get_program()))?;
    fn copy(
        mut from: impl Read + Send + 'static,
        mut to: impl Write + Send + 'static,
        mut log: File,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = from.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                // The terminal may go away (a closed pipe); the log is still written.
                let _ = to.write_all(&buffer[..read]);
                let _ = to.flush();
                let _ = log.write_all(&buffer[..read]);
            }
        })
    }
    let mut copiers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        copiers.push(copy(stdout, std::io::stdout(), stdout_log));
    }
    if let Some(stderr) = child.stderr.take() {
        copiers.push(copy(stderr, std::io::stderr(), stderr_log));
    }
    let status = child.wait()?;
    for copier in copiers {
        let _ = copier.join();
    }
    if !status.success() {
        bail!(
            "{what} failed ({status}); its output is in {}",
            dir.display()
        );
    }
    Ok(())
}

/// Runs `command` to completion with its output shown, failing with `what` if it fails.
pub fn run_visible(what: &str, command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: could not run {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
