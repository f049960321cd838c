//! cargo-lambda, installed from PyPI on first use (pinned with hashes in
//! `lambda/requirements.lock`), and what the project does with it: build the function's
//! deployable zip, and run the real handler under cargo-lambda's local emulator of the
//! Lambda service. The emulator is how the handler is invoked in development and tests:
//! LocalStack runs Lambda functions only in Docker.
//!
//! The emulator runs as `cargo lambda watch --only-lambda-apis`: it serves the Lambda
//! Runtime API and the Invoke API on one loopback port, and the function binary, built
//! beforehand like every binary the tests drive, is started against it. (Letting `watch`
//! build the function itself would run cargo inside a running `cargo test`.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process::{self, ServiceDir};
use crate::venv::{self, Pinned};
use crate::workspace;

/// The function: its package and binary (cargo-lambda names the function after the binary).
pub const FUNCTION: &str = "kms-eth-lambda";

/// cargo-lambda, pinned.
const PINNED: Pinned<'static> = Pinned {
    tool: "lambda",
    what: "cargo-lambda 1.9.2 (with the zig linker, about 115 MB)",
    folder: "cargo-lambda-venv",
    lock: include_str!("../../lambda/requirements.lock"),
};

/// cargo-lambda's virtual environment, installed on first use.
pub fn install() -> Result<PathBuf> {
    venv::ensure(&PINNED, crate::localstack::find_python)
}

/// The emulator's name for the one function it serves without building it.
const EMULATED_NAME: &str = "_";

/// The marker in the emulator's and the function's command lines.
const WATCH_MARKER: &str = "cargo-lambda";

/// `cargo lambda ...`, with the venv's tools on the PATH and zig's caches inside the tools
/// folder rather than the user's home.
fn cargo_lambda() -> Result<Command> {
    let venv = install()?;
    let bin = venv.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let mut command = Command::new(bin.join("cargo-lambda"));
    command
        .arg("lambda")
        .env("PATH", std::env::join_paths(paths)?)
        .env("XDG_CACHE_HOME", venv.join("cache"))
        .current_dir(process::project_root());
    Ok(command)
}

/// A CPU architecture Lambda runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// The deployable zip built by [`build`].
#[derive(Debug)]
pub struct Zip {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Builds the function's deployable zip in release mode for `arch`
/// (`target/lambda/<arch>/kms-eth-lambda/bootstrap.zip`).
pub fn build(arch: Arch) -> Result<Zip> {
    if arch == Arch::Arm64 {
        check_aarch64_std()?;
    }
    let lambda_dir = workspace::target_dir().join("lambda").join(arch.name());
    let mut command = cargo_lambda()?;
    command.args([
        "build",
        "--release",
        "--output-format",
        "zip",
        "--package",
        FUNCTION,
    ]);
    command.arg("--lambda-dir").arg(&lambda_dir);
    if arch == Arch::Arm64 {
        command.arg("--arm64");
    }
    let log = workspace::target_dir().join(format!("lambda-build-{}.log", arch.name()));
    fs::create_dir_all(workspace::target_dir())?;
    process::run_quiet(
        "lambda",
        &format!(
            "building the {} zip (release; minutes on a cold cache)",
            arch.name()
        ),
        &mut command,
        &log,
    )?;
    let path = lambda_dir.join(FUNCTION).join("bootstrap.zip");
    let bytes = fs::metadata(&path)
        .with_context(|| {
            format!(
                "cargo lambda build reported success but {} is missing",
                path.display()
            )
        })?
        .len();
    Ok(Zip { path, bytes })
}

/// An arm64 build needs Rust's standard library for aarch64 Linux; cargo-lambda would
/// download it with rustup, which is a toolchain download, not a package: say what to
/// install instead.
fn check_aarch64_std() -> Result<()> {
    const TARGET: &str = "aarch64-unknown-linux-gnu";
    let output = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .context("running rustc")?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let has_std = fs::read_dir(&libdir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    });
    if !has_std {
        bail!(
            "an arm64 build needs the standard library for {TARGET}, which this toolchain does \
             not have; install it with `rustup target add {TARGET}`, or build for x86_64 \
             (leave out --arm64)"
        );
    }
    Ok(())
}

/// The function running under the emulator: invoke it as Lambda would.
#[derive(Debug)]
pub struct Emulator {
    invoke_url: String,
    watch: Option<Child>,
    function: Option<Child>,
    function_log: ServiceDir,
    started: Instant,
}

impl Emulator {
    /// Starts the emulator on a free loopback port and the function binary `binary`
    /// against it, with `env` added to the function's environment (its key, its policy,
    /// the AWS endpoint). Returns once the function has finished its cold start, or with
    /// the function's own error (and log) if it refused to start.
    pub fn start(binary: &Path, env: &[(String, String)], timeout: Duration) -> Result<Emulator> {
        let port = process::free_port()?;
        // A folder per emulator (its port is unique while it runs): tests run several at
        // once, and each must read its own function's log.
        let watch_dir = ServiceDir::new(&format!("lambda-{port}"), WATCH_MARKER);
        let mut watch = watch_dir.spawn(cargo_lambda()?.args([
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ]))?;
        let address = format!("127.0.0.1:{port}");
        if let Err(err) = process::wait_for(
            "the cargo-lambda emulator",
            timeout,
            &mut watch,
            || std::net::TcpStream::connect(&address).ok(),
            |_| {},
        ) {
            let _ = process::stop_group(watch.id(), WATCH_MARKER, Duration::from_secs(5));
            bail!(
                "{err}; last lines of {}:\n{}",
                watch_dir.log_path().display(),
                watch_dir.log_tail(20)
            );
        }
        let function_log = ServiceDir::new(&format!("lambda-{port}/function"), "kms-eth-lambda");
        let mut command = Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://{address}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", EMULATED_NAME)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
        for (name, value) in env {
            command.env(name, value);
        }
        let started = Instant::now();
        let function = function_log.spawn(&mut command)?;
        let mut emulator = Emulator {
            invoke_url: format!(
                "http://{address}/2015-03-31/functions/{EMULATED_NAME}/invocations"
            ),
            watch: Some(watch),
            function: Some(function),
            function_log,
            started,
        };
        emulator.wait_for_cold_start(timeout)?;
        Ok(emulator)
    }

    /// Waits until the function logs the end of its cold start, or exits.
    fn wait_for_cold_start(&mut self, timeout: Duration) -> Result<()> {
        let log = self.function_log.log_path();
        let Some(function) = self.function.as_mut() else {
            bail!("the function is not running");
        };
        process::wait_for(
            "the function's cold start",
            timeout,
            function,
            || {
                fs::read_to_string(&log)
                    .ok()
                    .filter(|text| text.contains("\"cold start\""))
            },
            |_| {},
        )
        .map(drop)
        .map_err(|err| {
            anyhow::anyhow!(
                "{err}; the function's log ({}):\n{}",
                log.display(),
                self.function_log.log_tail(20)
            )
        })
    }

    /// Time from starting the function's process to the end of its cold start.
    pub fn since_start(&self) -> Duration {
        self.started.elapsed()
    }

    /// Invokes the function with `event` (JSON text, passed on byte for byte) and returns
    /// its answer.
    pub fn invoke(&self, event: &str) -> Result<Value> {
        let mut response = process::http_agent(Duration::from_secs(60))
            .post(&self.invoke_url)
            .header("content-type", "application/json")
            .send(event)
            .with_context(|| format!("invoking the function through {}", self.invoke_url))?;
        response
            .body_mut()
            .read_json()
            .context("reading the function's answer")
    }

    /// The function's log so far (one JSON object per line).
    pub fn function_log(&self) -> String {
        fs::read_to_string(self.function_log.log_path()).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for (child, marker) in [
            (self.function.take(), "kms-eth-lambda"),
            (self.watch.take(), WATCH_MARKER),
        ] {
            if let Some(mut child) = child {
                let _ = process::stop_group(child.id(), marker, Duration::from_secs(5));
                let _ = child.try_wait();
            }
        }
        // The folder holds this run's logs only; the next emulator on this port starts clean.
        if let Some(dir) = self.function_log.log_path().parent().and_then(Path::parent) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}
