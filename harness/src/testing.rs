//! What every test that runs a binary shares: `TestCommand`, a builder that runs a command
//! and asserts on its outcome with the command line and its stderr in every failure
//! message, and `PrivateState`, a state folder of a test's own whose services are stopped
//! when it is dropped, even when the test fails.

#![allow(clippy::panic)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{anvil, localstack, redis};

/// A command under test. Build it, then end with `output`, `success`, `json` or
/// `usage_error`.
#[derive(Debug)]
pub struct TestCommand {
    command: Command,
    shown: Vec<String>,
}

impl TestCommand {
    /// `binary` with no arguments yet.
    pub fn new(binary: impl AsRef<OsStr>) -> TestCommand {
        let binary = binary.as_ref();
        let name = Path::new(binary)
            .file_name()
            .map_or_else(|| binary.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned();
        TestCommand {
            command: Command::new(binary),
            shown: vec![name],
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.shown.push(arg.as_ref().to_string_lossy().into_owned());
            self.command.arg(arg);
        }
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> TestCommand {
        self.command.env(key, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: &str) -> TestCommand {
        self.command.env_remove(key);
        self
    }

    /// Runs with services (LocalStack, anvil) kept in `state`, and never with the
    /// developer's `AWS_ENDPOINT_URL`.
    pub fn state(self, state: &PrivateState) -> TestCommand {
        self.env("KMS_ETH_STATE_DIR", state.path())
            .env_remove("AWS_ENDPOINT_URL")
    }

    /// The command line, for messages.
    pub fn shown(&self) -> String {
        self.shown.join(" ")
    }

    /// The underlying command, for tests that spawn it and watch it run.
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Runs it to completion, whatever the outcome.
    pub fn output(mut self) -> Output {
        self.command
            .output()
            .unwrap_or_else(|err| panic!("could not run `{}`: {err}", self.shown.join(" ")))
    }

    /// Runs it and asserts that it succeeded.
    pub fn success(self) -> Output {
        let shown = self.shown();
        let output = self.output();
        assert!(
            output.status.success(),
            "`{shown}` failed ({}): {}",
            output.status,
            stderr(&output)
        );
        output
    }

    /// Runs it, asserts that it succeeded and parses its stdout as JSON.
    pub fn json(self) -> Value {
        let shown = self.shown();
        let output = self.success();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "`{shown}` printed no JSON ({err}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs it and asserts exit code 2 (bad usage) with `message` in stderr.
    pub fn usage_error(self, message: &str) -> Output {
        self.fails(2, message)
    }

    /// Runs it and asserts exit code `code` with `message` in stderr.
    pub fn fails(self, code: i32, message: &str) -> Output {
        let shown = self.shown();
        let output = self.output();
        assert_exit(&output, &shown, code, message);
        output
    }
}

/// The output's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit code 2 (bad usage) with `message` in stderr.
pub fn assert_usage_error(output: &Output, what: &dyn std::fmt::Debug, message: &str) {
    assert_exit(output, what, 2, message);
}

/// Asserts exit code `code` with `message` in stderr.
pub fn assert_exit(output: &Output, what: &dyn std::fmt::Debug, code: i32, message: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what:?}: {}",
        stderr(output)
    );
    assert!(
        stderr(output).contains(message),
        "{what:?}: expected {message:?} in: {}",
        stderr(output)
    );
}

/// A state folder (`KMS_ETH_STATE_DIR`) of one test's own, under `parent` (a test's
/// `CARGO_TARGET_TMPDIR`). Dropping it stops the LocalStack and anvil started there and
/// removes it, even when the test fails.
#[derive(Debug)]
pub struct PrivateState(PathBuf);

impl PrivateState {
    /// A fresh, empty folder named after the test and this process.
    pub fn new(parent: impl AsRef<Path>, name: &str) -> PrivateState {
        let dir = parent
            .as_ref()
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        PrivateState(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The pid recorded for `service` (`localstack`, `chain` or `redis`) in this folder.
    pub fn recorded_pid(&self, service: &str) -> u32 {
        let path = self.0.join(service).join("service.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("no pid record at {}: {err}", path.display()));
        let record: Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()));
        record["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok())
            .unwrap_or_else(|| panic!("{} has no pid: {text}", path.display()))
    }
}

impl Drop for PrivateState {
    fn drop(&mut self) {
        let grace = std::time::Duration::from_secs(10);
        let _ = localstack::service_dir_under(&self.0).stop(grace);
        let _ = anvil::service_dir_under(&self.0).stop(grace);
        let _ = redis::service_dir_under(&self.0).stop(grace);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pids of live processes whose environment contains `needle` (for example the
/// `GATEWAY_LISTEN` of one LocalStack), to count instances independently of pid records.
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
                && crate::process::is_running(*pid, "")
        })
        .collect()
}
