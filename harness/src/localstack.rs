//! The embedded LocalStack: a pinned LocalStack installed into a project-local Python
//! virtual environment from `localstack/requirements.lock`, run on the host (no Docker
//! needed) on a loopback port, found again by its pid record, and stopped by pid. With
//! `--docker`, [`crate::docker`] runs it in a container instead, recorded the same way.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::docker;
use crate::process::{self, Handle, Record, ServiceDir};

/// LocalStack's conventional port.
pub const DEFAULT_PORT: u16 = 4566;
/// The LocalStack release the lock file pins (`--docker` runs [`crate::docker::IMAGE_TAG`]).
pub const VERSION: &str = "2026.3.0";
/// The services kms-eth uses, all of which must be available before `up` returns (S3: the
/// asset bucket of `deploy --with-lambda`, whose upload the tests check on LocalStack).
pub const SERVICES: [&str; 5] = ["kms", "cloudformation", "iam", "sts", "s3"];

/// The host process (`python -m localstack.runtime.main`) has this in its command line, and
/// nothing unrelated that might reuse a recorded pid does.
const COMMAND_MARKER: &str = "localstack.runtime.main";
const ENTRY_MODULE: &str = COMMAND_MARKER;
/// LocalStack 2026.3.0 installs on 3.12 but fails at run time there (it imports
/// `warnings.deprecated`, new in 3.13), so 3.13 is the minimum.
const MIN_PYTHON: (u32, u32) = (3, 13);

/// How to start LocalStack.
#[derive(Debug, Clone)]
pub struct Options {
    /// The loopback port to serve on.
    pub port: u16,
    /// Whether the user asked for `port` (`--port`): then a LocalStack found running on
    /// another port, or an `AWS_ENDPOINT_URL` elsewhere, is an error instead of being used
    /// in its place.
    pub port_given: bool,
    /// How long to wait for every service to become available.
    pub timeout: Duration,
    /// Run LocalStack's Community image in Docker instead of the host install.
    pub docker: bool,
    /// Say nothing when LocalStack is found running: the product finds it on every command,
    /// and only a start (or an install) is news there.
    pub quiet_when_running: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: DEFAULT_PORT,
            port_given: false,
            timeout: Duration::from_secs(120),
            docker: false,
            quiet_when_running: false,
        }
    }
}

/// Stops LocalStack when dropped, if `started` says this run started it (a LocalStack that
/// was already running is left alone). Messages are prefixed `[<tag>]`.
#[derive(Debug)]
pub struct StopWhenDone {
    /// Whether this run started LocalStack.
    pub started: bool,
    /// The prefix of the messages, for example `test`.
    pub tag: &'static str,
}

impl Drop for StopWhenDone {
    fn drop(&mut self) {
        if self.started {
            match down() {
                Ok(Some(record)) => {
                    crate::say(self.tag, format!("stopped LocalStack ({})", record.handle))
                }
                Ok(None) => {}
                Err(err) => crate::say(self.tag, format!("could not stop LocalStack: {err:#}")),
            }
        }
    }
}

/// A LocalStack that `up` found or started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The endpoint URL, for example `http://127.0.0.1:4566`.
    pub endpoint: String,
    /// The pid `up` started, or `None` for a Docker container or an endpoint given by
    /// `AWS_ENDPOINT_URL`.
    pub pid: Option<u32>,
    /// Whether this call started it (as opposed to finding it running).
    pub started: bool,
}

/// The state folder of the embedded LocalStack (`.kms-eth/localstack`).
pub fn service_dir() -> ServiceDir {
    ServiceDir::new("localstack", COMMAND_MARKER)
}

/// The same folder under another state root (`KMS_ETH_STATE_DIR`).
pub fn service_dir_under(root: &std::path::Path) -> ServiceDir {
    ServiceDir::under(root, "localstack", COMMAND_MARKER)
}

/// The endpoint given by `AWS_ENDPOINT_URL`, which replaces the embedded LocalStack.
pub fn external_endpoint() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Makes sure a LocalStack is running and healthy, and returns its endpoint.
///
/// With `AWS_ENDPOINT_URL` set, that endpoint is used and nothing is started. Otherwise a
/// LocalStack started earlier by this harness is reused, and only if there is none is one
/// installed (if needed) and started. Idempotent and safe to call from parallel processes.
pub fn up(options: &Options) -> Result<Instance> {
    if let Some(endpoint) = external_endpoint() {
        return use_external(endpoint, options);
    }
    let dir = service_dir();
    let _lock = dir.lock()?;
    if let Some(record) = dir.running() {
        // Handing back an instance on another port than the one asked for would send the
        // caller's calls somewhere it did not choose.
        if options.port_given && record.port != options.port {
            bail!(
                "--port {}: LocalStack is already running at {} ({}), started from {}; use that \
                 one (leave out --port, or pass --port {}), or stop it with `cargo xtask \
                 localstack down` first; nothing was started",
                options.port,
                record.url,
                record.handle,
                dir.path().display(),
                record.port
            );
        }
        let health = health(&record.url);
        if missing_services(health.as_ref()).is_empty() {
            if !options.quiet_when_running {
                crate::say(
                    "localstack",
                    format!("already running ({}) at {}", record.handle, record.url),
                );
            }
            return Ok(Instance {
                endpoint: record.url,
                pid: record.handle.pid(),
                started: false,
            });
        }
        bail!(
            "the LocalStack started earlier ({}, {}) is running but not healthy ({}); \
             run `cargo xtask localstack down` and try again, or see `cargo xtask localstack logs`",
            record.handle,
            record.url,
            describe_health(health.as_ref())
        );
    }
    check_port(options.port)?;
    if options.docker {
        let record = docker::start(options.port, options.timeout)?;
        dir.save(&record)?;
        return Ok(Instance {
            endpoint: record.url,
            pid: None,
            started: true,
        });
    }
    let url = format!("http://127.0.0.1:{}", options.port);
    let mut command = host_command(&dir, options.port)?;
    let started_at = Instant::now();
    crate::say(
        "localstack",
        format!(
            "starting LocalStack {VERSION} on {url} (log: {})",
            dir.log_path().display()
        ),
    );
    let mut child = dir.spawn(&mut command)?;
    let pid = child.id();
    let ready = process::wait_for(
        "LocalStack",
        options.timeout,
        &mut child,
        || {
            let health = health(&url);
            missing_services(health.as_ref()).is_empty().then_some(())
        },
        |elapsed| {
            crate::say(
                "localstack",
                format!(
                    "waiting for {}: {} ({} s)",
                    SERVICES.join(", "),
                    describe_health(health(&url).as_ref()),
                    elapsed.as_secs()
                ),
            )
        },
    );
    if let Err(err) = ready {
        let _ = process::stop_group(pid, COMMAND_MARKER, Duration::from_secs(10));
        let _ = child.try_wait();
        bail!(
            "{err}; it was stopped again. Last lines of {}:\n{}",
            dir.log_path().display(),
            dir.log_tail(20)
        );
    }
    // A fake KMS that anyone on the network can call must never run: LocalStack's default
    // server ignores the loopback address, so the binding is checked, not assumed.
    if !process::only_loopback_listens(options.port) {
        let _ = process::stop_group(pid, COMMAND_MARKER, Duration::from_secs(10));
        let _ = child.try_wait();
        bail!(
            "LocalStack listened on a non-loopback address ({:?}) for port {}; it was stopped again",
            process::listening_addresses(options.port),
            options.port
        );
    }
    dir.save(&Record {
        handle: Handle::Pid(pid),
        port: options.port,
        url: url.clone(),
    })?;
    crate::say(
        "localstack",
        format!(
            "ready after {:.1} s: {url} (pid {pid})",
            started_at.elapsed().as_secs_f64()
        ),
    );
    Ok(Instance {
        endpoint: url,
        pid: Some(pid),
        started: true,
    })
}

/// The LocalStack that `AWS_ENDPOINT_URL` names, used instead of starting one, once it is
/// seen to answer with every service kms-eth needs: "up" must not succeed while nothing is
/// up.
fn use_external(endpoint: String, options: &Options) -> Result<Instance> {
    let embedded = match service_dir().running() {
        Some(record) => format!(
            "the embedded LocalStack runs at {} ({})",
            record.url, record.handle
        ),
        None => "the embedded LocalStack is not running".to_owned(),
    };
    let asked = format!("127.0.0.1:{}", options.port);
    if options.port_given && !endpoint.trim_end_matches('/').ends_with(&asked) {
        bail!(
            "--port {}: AWS_ENDPOINT_URL is set to {endpoint}, which replaces the embedded \
             LocalStack, so nothing is started on port {}; unset AWS_ENDPOINT_URL to start one \
             there ({embedded})",
            options.port,
            options.port
        );
    }
    let found = health(&endpoint);
    let missing = missing_services(found.as_ref());
    if !missing.is_empty() {
        let what = match found {
            None => "nothing answers there".to_owned(),
            Some(_) => format!("it answers, but {} not available", missing.join(", ")),
        };
        bail!(
            "AWS_ENDPOINT_URL is set to {endpoint}, and {what}; nothing was started ({embedded}). \
             Start the LocalStack it names, or unset AWS_ENDPOINT_URL to use the embedded one"
        );
    }
    if !options.quiet_when_running {
        crate::say(
            "localstack",
            format!("AWS_ENDPOINT_URL is set: using {endpoint}, starting nothing"),
        );
    }
    Ok(Instance {
        endpoint,
        pid: None,
        started: false,
    })
}

/// Stops the LocalStack this harness started, if any, and only that process or container.
pub fn down() -> Result<Option<Record>> {
    let dir = service_dir();
    let _lock = dir.lock()?;
    // LocalStack's shutdown sometimes hangs (a race in its hypercorn shutdown), so SIGKILL
    // follows if SIGTERM has not ended it within 10 s.
    dir.stop(Duration::from_secs(10))
}

/// LocalStack's health document (`/_localstack/health`), or `None` if it does not answer.
pub fn health(url: &str) -> Option<Value> {
    let agent = process::http_agent(Duration::from_secs(2));
    let mut response = agent.get(format!("{url}/_localstack/health")).call().ok()?;
    if response.status() != 200 {
        return None;
    }
    response.body_mut().read_json().ok()
}

/// The services kms-eth needs that the health document does not list as available.
pub fn missing_services(health: Option<&Value>) -> Vec<&'static str> {
    SERVICES
        .into_iter()
        .filter(|service| {
            let state = health
                .and_then(|h| h.get("services"))
                .and_then(|s| s.get(*service))
                .and_then(Value::as_str);
            !matches!(state, Some("available" | "running"))
        })
        .collect()
}

/// A one-line summary of a health document.
pub fn describe_health(health: Option<&Value>) -> String {
    let Some(health) = health else {
        return "not answering yet".into();
    };
    SERVICES
        .iter()
        .map(|service| {
            let state = health
                .get("services")
                .and_then(|s| s.get(*service))
                .and_then(Value::as_str)
                .unwrap_or("absent");
            format!("{service} {state}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_port(port: u16) -> Result<()> {
    if process::port_is_free(port) {
        return Ok(());
    }
    let url = format!("http://127.0.0.1:{port}");
    if health(&url).is_some() {
        bail!(
            "port {port} is in use by a LocalStack this harness did not start; use it with \
             AWS_ENDPOINT_URL={url}, stop it, or choose another port with --port"
        );
    }
    bail!("port {port} on 127.0.0.1 is in use by another program; stop it or choose another port with --port")
}

/// The command that runs the pinned LocalStack from the project's virtual environment,
/// installing the environment first if needed.
fn host_command(dir: &ServiceDir, port: u16) -> Result<Command> {
    let venv = ensure_venv()?;
    let data = dir.path().join("data");
    process::private_dir(&data)?;
    let mut command = Command::new(venv.join("bin").join("python"));
    command
        .args(["-m", ENTRY_MODULE])
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        // LocalStack's default gateway server listens on every interface whatever
        // GATEWAY_LISTEN says; hypercorn honours the loopback address. A KMS that anyone on
        // the network can call must never be started.
        .env("GATEWAY_SERVER", "hypercorn")
        .env("SERVICES", SERVICES.join(","))
        .env("DISABLE_EVENTS", "1")
        // Load every service before reporting healthy, so "ready" means the first KMS call
        // is fast rather than several seconds of lazy loading inside a test.
        .env("EAGER_SERVICE_LOADING", "1")
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        .env("FILESYSTEM_ROOT", &data)
        // These machines have /.dockerenv, so LocalStack believes it runs in a container:
        // it would then ignore FILESYSTEM_ROOT and start a DNS server on 0.0.0.0:53.
        .env("OVERRIDE_IN_DOCKER", "0")
        .env("DNS_ADDRESS", "0")
        // Keep LocalStack's plugin cache with the venv, so a recreated venv never reads a
        // stale cache from ~/.cache/plux ("No component plugins found").
        .env("XDG_CACHE_HOME", venv.join("cache"))
        .env_remove("AWS_ENDPOINT_URL");
    Ok(command)
}

/// The hash-pinned lock the virtual environment is installed from, built into the binary
/// so that an installed `kms-eth` can install LocalStack without the clone.
pub const LOCK: &str = include_str!("../../localstack/requirements.lock");

/// `.kms-eth/localstack-venv`, installed from the lock file if needed.
fn ensure_venv() -> Result<PathBuf> {
    crate::venv::ensure(
        &crate::venv::Pinned {
            tool: "localstack",
            what: &format!("LocalStack {VERSION}"),
            folder: "localstack-venv",
            lock: LOCK,
        },
        find_python,
    )
}

/// The first Python >= 3.13 found: `KMS_ETH_PYTHON` if set; else python3.13, python3.14
/// and python3 on PATH, then the 3.13+ versions pyenv has installed (pyenv's shims only run
/// the globally selected version, so they can fail where the interpreter exists). The error
/// lists everything tried.
pub fn find_python() -> Result<PathBuf> {
    if let Ok(python) = std::env::var("KMS_ETH_PYTHON") {
        if !python.is_empty() {
            return find_python_among(&[python.as_str()]);
        }
    }
    let mut candidates: Vec<String> = ["python3.13", "python3.14", "python3"]
        .map(String::from)
        .to_vec();
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pyenv")));
    if let Some(Ok(versions)) = pyenv_root.map(|root| fs::read_dir(root.join("versions"))) {
        let mut found: Vec<String> = versions
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("3.1"))
            .map(|entry| {
                entry
                    .path()
                    .join("bin")
                    .join("python3")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        found.sort();
        found.reverse();
        candidates.extend(found);
    }
    let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
    find_python_among(&candidates)
}

/// The first of `candidates` that is a Python >= 3.13; the error lists every one tried
/// and why it was not usable.
pub fn find_python_among(candidates: &[&str]) -> Result<PathBuf> {
    let mut tried = Vec::new();
    for candidate in candidates {
        let output = Command::new(candidate)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .output();
        let verdict = match output {
            Err(_) => "not found".to_owned(),
            Ok(output) if !output.status.success() => format!("not usable ({})", output.status),
            Ok(output) => {
                let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                let parsed = version.split_once('.').and_then(|(major, minor)| {
                    Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
                });
                match parsed {
                    Some(v) if v >= MIN_PYTHON => return Ok(PathBuf::from(*candidate)),
                    Some(_) => format!("{version}, too old"),
                    None => format!("unrecognised version {version:?}"),
                }
            }
        };
        tried.push(format!("{candidate}: {verdict}"));
    }
    bail!(
        "LocalStack {VERSION} needs Python >= {}.{}, and none was found (tried {}). Install one \
         (for example `pyenv install 3.13` or your distribution's python3.13 package) or point \
         KMS_ETH_PYTHON at it",
        MIN_PYTHON.0,
        MIN_PYTHON.1,
        tried.join("; ")
    )
}
