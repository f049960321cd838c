//! Background services shared by the LocalStack and anvil harnesses: state folders, pid
//! records, port checks, bounded waits, and stopping exactly the process that was started.

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::docker;

/// The workspace root of the clone this crate was built from (where `Cargo.toml` with
/// `[workspace]` is). Developer tasks run here.
pub fn project_root() -> PathBuf {
    let harness_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness_dir.parent().unwrap_or(harness_dir).to_path_buf()
}

/// Where installed tools (the LocalStack venv) and service state live:
/// - `$KMS_ETH_HOME` when set;
/// - `<clone>/.kms-eth` (git-ignored) when the current folder is inside the clone this
///   binary was built from: `cargo xtask`, the tests, and an installed `kms-eth` run there
///   all share one LocalStack;
/// - otherwise the per-user data folder, `$XDG_DATA_HOME/kms-eth` or
///   `~/.local/share/kms-eth`: an installed `kms-eth` used anywhere else.
pub fn tools_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("KMS_ETH_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    let root = project_root();
    let in_clone = std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.canonicalize().ok())
        .zip(root.canonicalize().ok())
        .is_some_and(|(cwd, root)| cwd.starts_with(root));
    if in_clone {
        return root.join(".kms-eth");
    }
    user_data_dir().join("kms-eth")
}

/// The per-user data folder of the XDG base directory convention.
fn user_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".local")
            .join("share"),
    }
}

/// The folder where a service run by a user keeps its state, wherever it is started from:
/// `$KMS_ETH_HOME/<service>` when that is set, else `<per-user data folder>/kms-eth/<service>`.
/// Unlike [`state_dir`], never chosen by the current folder: two `kms-eth serve` started from
/// different folders must find one ledger (and its lock), not keep one each.
pub fn user_state_dir(service: &str) -> PathBuf {
    match std::env::var_os("KMS_ETH_HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(service),
        None => user_data_dir().join("kms-eth").join(service),
    }
}

/// A short fingerprint of a file's bytes (64-bit FNV-1a), for the stamps that tell whether
/// an install still matches its lock file. Not cryptographic: it only detects edits.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("fnv1a64:{hash:016x}")
}

/// The folder where a service keeps its pid record, log and data: `<project>/.kms-eth/<service>`,
/// or `$KMS_ETH_STATE_DIR/<service>` when that is set (tests use it to run a second,
/// separate instance beside the one `cargo xtask test` started).
pub fn state_dir(service: &str) -> PathBuf {
    match std::env::var_os("KMS_ETH_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(service),
        _ => tools_dir().join(service),
    }
}

/// What is known about a running service: enough to find it again and to stop exactly it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What was started. Flattened, so a process's record stays `{"pid": N, ...}`.
    #[serde(flatten)]
    pub handle: Handle,
    /// The loopback port it serves on.
    pub port: u16,
    /// The URL clients use.
    pub url: String,
}

/// What a service record points at: what `stop` ends and what `running` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handle {
    /// A process this harness started, by pid; it leads its own process group.
    Pid(u32),
    /// A Docker container (`localstack up --docker`), which has no process on this machine
    /// that the harness could signal: it is checked and removed through the Docker engine.
    Container {
        /// The engine's id of the container.
        id: String,
        /// Its name, for `docker logs` and the messages.
        name: String,
    },
}

impl Handle {
    /// The pid, for a process.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Handle::Pid(pid) => Some(*pid),
            Handle::Container { .. } => None,
        }
    }
}

/// `pid 123` or `container kms-eth-localstack-4566`, for messages.
impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handle::Pid(pid) => write!(f, "pid {pid}"),
            Handle::Container { name, .. } => write!(f, "container {name}"),
        }
    }
}

/// A service's folder: its pid record, its log, and an exclusive lock for start-up.
#[derive(Debug, Clone)]
pub struct ServiceDir {
    dir: PathBuf,
    /// A string that the service's command line contains, so a recycled pid belonging to
    /// some other program is never mistaken for the service (and never signalled).
    command_marker: &'static str,
}

impl ServiceDir {
    /// The folder of `service`, whose processes have `command_marker` in their command line.
    pub fn new(service: &str, command_marker: &'static str) -> Self {
        ServiceDir {
            dir: state_dir(service),
            command_marker,
        }
    }

    /// The folder of `service` under the state root `root` (what `KMS_ETH_STATE_DIR=root`
    /// gives a process), for tests that stop what they started in a private root.
    pub fn under(root: &Path, service: &str, command_marker: &'static str) -> Self {
        ServiceDir {
            dir: root.join(service),
            command_marker,
        }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The service's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("service.log")
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("service.json")
    }

    /// Takes the folder's exclusive lock, so that two `up`s (for example two test binaries
    /// started in parallel) cannot both start the service. Released when the file is dropped.
    pub fn lock(&self) -> Result<File> {
        private_dir(&self.dir)?;
        lock_file(&self.dir.join("lock"))
    }

    /// The record of the service if it is still running. A record whose process or
    /// container is gone is removed. A container that exists but is stopped, or that cannot
    /// be checked because no Docker engine answers, is not running, but its record is kept
    /// so that `stop` can still remove it later.
    pub fn running(&self) -> Option<Record> {
        let record = self.record()?;
        let gone = match &record.handle {
            Handle::Pid(pid) if is_running(*pid, self.command_marker) => return Some(record),
            Handle::Pid(_) => true,
            Handle::Container { id, .. } => match docker::state(id) {
                Ok(docker::State::Running) => return Some(record),
                Ok(docker::State::Gone) => true,
                Ok(docker::State::Stopped) | Err(_) => false,
            },
        };
        if gone {
            self.forget();
        }
        None
    }

    /// The saved record, whether or not what it names still runs.
    pub fn record(&self) -> Option<Record> {
        let text = fs::read_to_string(self.record_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Remembers a started service, in a file only its owner can read.
    pub fn save(&self, record: &Record) -> Result<()> {
        private_dir(&self.dir)?;
        write_private(
            &self.record_path(),
            serde_json::to_string_pretty(record)?.as_bytes(),
        )
    }

    /// Forgets the service.
    pub fn forget(&self) {
        let _ = fs::remove_file(self.record_path());
    }

    /// Starts `command` in the background in its own process group, with its output
    /// appended to the service log. Its own process group keeps a Ctrl-C in the terminal
    /// from killing a service that `up` left running on purpose.
    pub fn spawn(&self, command: &mut Command) -> Result<Child> {
        private_dir(&self.dir)?;
        let log = open_private(&self.log_path(), OpenOptions::new().append(true))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(child)
    }

    /// Stops the recorded service, if it is running: SIGTERM to its process group, then
    /// SIGKILL after `grace`; a container is stopped the same way by its engine, then
    /// removed (a stopped one too). Returns the record of what was stopped.
    pub fn stop(&self, grace: Duration) -> Result<Option<Record>> {
        let Some(record) = self.record() else {
            return Ok(None);
        };
        let stopped = match &record.handle {
            Handle::Pid(pid) => {
                let live = is_running(*pid, self.command_marker);
                if live {
                    stop_group(*pid, self.command_marker, grace)?;
                }
                live
            }
            Handle::Container { id, name } => docker::remove(id, grace)
                .with_context(|| format!("stopping the LocalStack container {name}"))?,
        };
        self.forget();
        Ok(stopped.then_some(record))
    }

    /// The last `lines` lines of the service log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Takes the exclusive lock of the install of `tool` (in [`tools_dir`], whatever the state
/// folder), so that parallel processes install it once. Released when the file is dropped.
pub fn install_lock(tool: &str) -> Result<File> {
    lock_file(&tools_dir().join(format!("{tool}.install.lock")))
}

fn lock_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        create_private_dirs(parent)?;
    }
    let file = open_private(path, OpenOptions::new().truncate(false).write(true))?;
    // Another process holds the lock while it installs or starts a service, which takes a
    // minute or two at most; waiting is bounded so a stuck holder gives an error, not a hang.
    let deadline = Instant::now() + LOCK_WAIT;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !told {
                    crate::say(
                        "harness",
                        format!("waiting for another process holding {}", path.display()),
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(fs::TryLockError::WouldBlock) => bail!(
                "{} is still locked by another process after {} s; if no other kms-eth command is \
                 running, delete the file and try again",
                path.display(),
                LOCK_WAIT.as_secs()
            ),
            Err(fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// Owner-only permissions for the harness's state: records name pids, ports and paths,
/// logs carry request details, and other users of the machine have no business reading
/// either (or, through a writable folder, swapping a record to make `down` signal another
/// process).
const PRIVATE_FILE: u32 = 0o600;
/// See [`PRIVATE_FILE`].
const PRIVATE_DIR: u32 = 0o700;

/// Creates `dir` (and missing parents, each owner-only) and makes `dir` itself owner-only,
/// also when an older version of the harness created it world-readable.
pub fn private_dir(dir: &Path) -> Result<()> {
    create_private_dirs(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))
        .with_context(|| format!("making {} private (mode 700)", dir.display()))
}

/// Creates the missing folders of `dir` owner-only; folders that exist are left as they
/// are (the parent of a state folder may be the user's own, such as `~/.local/share`).
fn create_private_dirs(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Opens (creating it if needed) a state file that only its owner may read or write. The
/// mode given at creation does not change a file that exists, so it is set every time.
pub fn open_private(path: &Path, options: &mut OpenOptions) -> Result<File> {
    let file = options
        .create(true)
        .mode(PRIVATE_FILE)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE))
        .with_context(|| format!("making {} private (mode 600)", path.display()))?;
    Ok(file)
}

/// Writes `bytes` to `path` (replacing what was there) readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    open_private(path, OpenOptions::new().write(true).truncate(true))?
        .write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// How long to wait for another process's install or start-up lock.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// The addresses on which something listens on TCP `port` (from /proc/net/tcp and tcp6),
/// as hex strings in the kernel's notation (`0100007F` is 127.0.0.1).
pub fn listening_addresses(port: u16) -> Vec<String> {
    let port_hex = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let mut fields = line.split_whitespace();
                    let local = fields.nth(1)?;
                    let state = fields.nth(1)?;
                    let (address, local_port) = local.rsplit_once(':')?;
                    // 0A is TCP_LISTEN.
                    (state == "0A" && local_port == port_hex).then(|| address.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether every listener on `port` is bound to a loopback address (127.0.0.0/8 or ::1).
pub fn only_loopback_listens(port: u16) -> bool {
    listening_addresses(port).iter().all(|address| {
        // IPv4 addresses are little-endian hex: 127.x.y.z ends in 7F. IPv6 ::1 is the
        // kernel's 00000000000000000000000001000000.
        (address.len() == 8 && address.ends_with("7F"))
            || address == "00000000000000000000000001000000"
    })
}

/// Whether `pid` is a live (not zombie) process whose command line contains `marker`.
pub fn is_running(pid: u32, marker: &str) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains(marker) && proc_stat(pid).is_some_and(|(state, _)| state != "Z")
}

/// The state and process group of `pid`, from /proc/<pid>/stat ("pid (comm) state ppid pgrp
/// ..."); the command name may contain spaces, so fields are counted after the last ')'.
fn proc_stat(pid: u32) -> Option<(String, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.to_owned();
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Stops the process group `pid` leads: SIGTERM, then SIGKILL after `grace`. Returns only
/// when no live process of the group is left: LocalStack's children can outlive their parent
/// for a moment while they shut down, and still hold the port.
pub fn stop_group(pid: u32, marker: &str, grace: Duration) -> Result<()> {
    let group = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    if !is_running(pid, marker) {
        return Ok(());
    }
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if group_members(pid).is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if group_members(pid).is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "processes {:?} of group {pid} did not stop, even after SIGKILL",
        group_members(pid)
    )
}

/// The live (not zombie) processes whose process group is `group`.
pub fn group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|(state, pgrp)| state != "Z" && pgrp == group))
        .collect()
}

/// Whether nothing listens on `127.0.0.1:port`.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// An HTTP client for talking to local services, with every request bounded by `timeout`.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Polls `check` every `interval` until it returns `Some`, the `child` exits, or `timeout`
/// passes. `progress` is called with the elapsed time about every five seconds.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    child: &mut Child,
    mut check: impl FnMut() -> Option<T>,
    mut progress: impl FnMut(Duration),
) -> Result<T> {
    let start = Instant::now();
    let mut last_report = start;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before it became ready");
        }
        if start.elapsed() >= timeout {
            bail!("{what} did not become ready within {} s", timeout.as_secs());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            progress(start.elapsed());
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `command` to completion with its output written to `log` instead of the terminal,
/// showing one progress line (`[<tag>] <what> (N s)`, updated in place on a terminal). On
/// failure the error carries the log's last lines and its path.
pub fn run_quiet(tag: &str, what: &str, command: &mut Command, log: &Path) -> Result<()> {
    use std::io::{IsTerminal, Write};

    let file = open_private(log, OpenOptions::new().write(true).truncate(true))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("{what}: could not run {:?}", command.get_program()))?;
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if terminal {
            eprint!("\r[{tag}] {what} ({} s)", started.elapsed().as_secs());
            let _ = std::io::stderr().flush();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if terminal {
        eprintln!();
    }
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "{what} failed ({status}); the last lines of {}:\n{}",
            log.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn records_logs_and_locks_are_owner_only_even_in_a_folder_made_world_readable() {
        let root = std::env::temp_dir().join(format!("kms-eth-private-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = ServiceDir::under(&root, "svc", "never-matches");
        // What an older harness left: a world-readable folder and record.
        fs::create_dir_all(dir.path()).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.record_path(), "{}").unwrap();
        fs::set_permissions(dir.record_path(), fs::Permissions::from_mode(0o644)).unwrap();

        drop(dir.lock().unwrap());
        dir.save(&Record {
            handle: Handle::Pid(1),
            port: 1,
            url: "http://127.0.0.1:1".into(),
        })
        .unwrap();
        let mut child = dir.spawn(&mut Command::new("true")).unwrap();
        child.wait().unwrap();

        assert_eq!(mode(dir.path()), 0o700);
        for file in [dir.record_path(), dir.log_path(), dir.path().join("lock")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(
            dir.record().unwrap().port,
            1,
            "the record is still readable"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
