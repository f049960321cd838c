//! LocalStack in Docker (`localstack up --docker`), run through testcontainers and its
//! LocalStack module, and recorded in the state folder like the host install's process.
//!
//! - **Image.** `localstack/localstack:4.5`, the Community Edition tag that
//!   testcontainers-modules' LocalStack module pins and is tested with (its `Ready.`
//!   readiness line is used here too). LocalStack's images need an auth token from 4.15 and
//!   the 2026.x calendar versions on, `latest` included; 4.x tags up to 4.14 are the free
//!   Community image and start without one. The tag is set here explicitly, so a newer
//!   module whose default moves to a token-only tag cannot change what `--docker` runs.
//! - **Lifetime.** testcontainers removes a container when its handle is dropped, but `up`
//!   must return and leave LocalStack running, as it does the host process. The container
//!   is therefore marked reusable (`ReuseDirective::Always`), which testcontainers exempts
//!   from removal on drop, and ownership passes to the service record: `service.json`
//!   holds `{"container": {"id", "name"}}` instead of a pid. `ServiceDir::running` asks
//!   the engine whether that container runs (for `status` and a second `up`), and
//!   `ServiceDir::stop` (`localstack down`) stops and removes it by id. Nothing is left
//!   without a record: a start that fails removes the container it created.
//! - **Name.** `kms-eth-localstack-<port>`, labelled `kms-eth.service=localstack` and
//!   `kms-eth.port=<port>`. testcontainers finds a reusable container by name and labels,
//!   so an `up` whose record was lost adopts its own leftover instead of failing. The port
//!   label matters: Docker's name filter matches substrings, and only the exact label keeps
//!   port 4566 from adopting the container of port 45660. A container of the same name that
//!   kms-eth did not make (no labels) is never touched, and creating ours fails instead.
//! - **Loopback only.** testcontainers publishes ports on every interface, and a fake KMS
//!   that other machines can call must never run: the container's host configuration is
//!   rewritten to publish LocalStack's port on 127.0.0.1 alone, and the engine's actual
//!   bindings are checked after the start; any other binding removes the container again.
//!   The endpoint is this machine's loopback address, so the engine must be a local one.
//! - **No engine.** The engine is pinged first, bounded to a few seconds; a failure is a
//!   [`NoDockerEngine`] error that says to use the host install instead, and that
//!   `cargo xtask` exits 2 on.
//! - **Sync API.** testcontainers and its Docker client (bollard) are async, the harness is
//!   not: each operation runs on its own single-threaded runtime on a thread of its own,
//!   which is also safe when the caller is itself inside a tokio runtime (the product calls
//!   the harness from `spawn_blocking`). No client outlives its runtime: hyper's pooled
//!   connections belong to the runtime that opened them.
//! - **Only where asked for.** testcontainers and its Docker client are some 160 crates, so
//!   the engine code (`docker/engine.rs`) is behind the harness's `docker` feature: the
//!   product and `cargo xtask` build without it, and `cargo xtask localstack up --docker`
//!   runs the harness's `localstack-docker` binary, which cargo builds with it on first use.
//!   The workspace's tests enable it, so it is compiled and tested in every test run.

use std::time::Duration;

/// The LocalStack image tag `--docker` runs; see the module documentation for why this one.
pub const IMAGE_TAG: &str = "4.5";
/// The port LocalStack serves on inside its container.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
const CONTAINER_PORT: u16 = 4566;
/// The label that marks the containers kms-eth started.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
const LABEL: (&str, &str) = ("kms-eth.service", "localstack");
/// The label holding the host port, which tells apart the containers of different ports.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
const PORT_LABEL: &str = "kms-eth.port";
/// How long a Docker engine may take to answer a ping or an inspection. A local engine
/// answers in milliseconds, a missing socket fails at once; only an unreachable TCP host
/// would wait this long.
const ENGINE_WAIT: Duration = Duration::from_secs(3);
/// The log lines of a failed container shown in the error.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
const LOG_TAIL: &str = "20";

/// No Docker engine answered. `cargo xtask` exits 2 on this error: the request cannot be
/// met on this machine, and the host install is what to use instead.
#[derive(Debug)]
pub struct NoDockerEngine {
    /// Where the engine was looked for.
    pub host: String,
    /// What the client reported.
    pub reason: String,
}

impl std::fmt::Display for NoDockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--docker needs a running Docker engine, and none answered at {} within {} s ({}). \
             Start Docker (or point DOCKER_HOST at an engine), or leave out --docker to run \
             LocalStack on this machine without Docker: `cargo xtask localstack up`",
            self.host,
            ENGINE_WAIT.as_secs(),
            self.reason
        )
    }
}

impl std::error::Error for NoDockerEngine {}

/// What the engine says of a recorded container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub(crate) enum State {
    Running,
    /// It exists but does not run (it exited, or was stopped outside the harness).
    Stopped,
    /// The engine has no such container.
    Gone,
}

/// The container name for LocalStack on `port`.
pub fn container_name(port: u16) -> String {
    format!("kms-eth-localstack-{port}")
}

#[cfg(feature = "docker")]
mod engine;
#[cfg(feature = "docker")]
pub(crate) use engine::{remove, start, state};

/// Without the `docker` feature, a container can be recorded (by the binary that has it)
/// but not reached: these say which command can.
#[cfg(not(feature = "docker"))]
mod without_engine {
    use anyhow::{bail, Result};
    use std::time::Duration;

    use super::State;
    use crate::process::Record;

    const WHAT_TO_RUN: &str = "this LocalStack runs in Docker, which this program was built \
        without; use `cargo xtask localstack up|down|status` (they run the harness's \
        Docker-enabled `localstack-docker` binary)";

    pub(crate) fn start(_port: u16, _timeout: Duration) -> Result<Record> {
        bail!("{WHAT_TO_RUN}")
    }

    pub(crate) fn state(_id: &str) -> Result<State> {
        bail!("{WHAT_TO_RUN}")
    }

    pub(crate) fn remove(_id: &str, _grace: Duration) -> Result<bool> {
        bail!("{WHAT_TO_RUN}")
    }
}
#[cfg(not(feature = "docker"))]
pub(crate) use without_engine::{remove, start, state};
