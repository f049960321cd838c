//! The Docker engine side of `--docker` (feature `docker`): starting, inspecting and
//! removing the LocalStack container through testcontainers; see the parent module.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::models::{HostConfig, PortBinding, PortMap};
use testcontainers::bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use testcontainers::bollard::Docker;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ImageExt, ReuseDirective};
use testcontainers_modules::localstack::LocalStack;

use super::{
    container_name, NoDockerEngine, State, CONTAINER_PORT, ENGINE_WAIT, IMAGE_TAG, LABEL, LOG_TAIL,
    PORT_LABEL,
};
use crate::localstack::{describe_health, health, missing_services, SERVICES};
use crate::process::{Handle, Record};

/// Starts LocalStack in a container published on `127.0.0.1:port`, waits until
/// [`SERVICES`] are available (at most `timeout` for the start and again for the services),
/// and returns the record to save. On failure nothing is left running.
pub(crate) fn start(port: u16, timeout: Duration) -> Result<Record> {
    block_on(async move {
        let docker = engine().await?;
        let name = container_name(port);
        let url = format!("http://127.0.0.1:{port}");
        let image = format!("localstack/localstack:{IMAGE_TAG}");
        crate::say(
            "localstack",
            format!(
                "starting {image} in Docker as {name} on {url} (the first run pulls the image; \
             its log: docker logs {name})"
            ),
        );
        let started_at = Instant::now();
        let request = LocalStack::default()
            .with_tag(IMAGE_TAG)
            .with_container_name(&name)
            .with_label(LABEL.0, LABEL.1)
            .with_label(PORT_LABEL, port.to_string())
            .with_env_var("SERVICES", SERVICES.join(","))
            .with_env_var("DISABLE_EVENTS", "1")
            // As on the host: every service loaded before "Ready.", so the first KMS call of
            // a test is fast rather than seconds of lazy loading.
            .with_env_var("EAGER_SERVICE_LOADING", "1")
            .with_mapped_port(port, CONTAINER_PORT.tcp())
            .with_host_config_modifier(move |host| publish_on_loopback_only(host, port))
            // The module also sleeps 3 s after "Ready."; the health wait below replaces that.
            .with_ready_conditions(vec![WaitFor::message_on_stdout("Ready.")])
            .with_startup_timeout(timeout)
            .with_reuse(ReuseDirective::Always);
        let container = match request.start().await {
            Ok(container) => container,
            Err(err) => {
                let removed = remove_ours(&docker, &name, port).await;
                return Err(anyhow!(err))
                    .context(format!("starting {image} as {name} failed{removed}"));
            }
        };
        let id = container.id().to_owned();
        let ready = async {
            check_bindings(&docker, &id, port).await?;
            wait_healthy(&url, timeout).await
        };
        if let Err(err) = ready.await {
            let tail = log_tail(&docker, &id).await;
            let removed = container.rm().await;
            bail!(
                "{err:#}; {}. Its last log lines:\n{tail}",
                match removed {
                    Ok(()) => "the container was removed again".to_owned(),
                    Err(err) => format!("removing the container {name} failed too: {err}"),
                }
            );
        }
        crate::say(
            "localstack",
            format!(
                "ready after {:.1} s: {url} (container {name})",
                started_at.elapsed().as_secs_f64()
            ),
        );
        Ok(Record {
            handle: Handle::Container { id, name },
            port,
            url,
        })
    })
}

/// Whether the container `id` runs.
pub(crate) fn state(id: &str) -> Result<State> {
    let id = id.to_owned();
    block_on(async move {
        let docker = engine().await?;
        match bounded(docker.inspect_container(&id, None)).await? {
            Ok(details) => {
                let running = details.state.and_then(|state| state.running);
                Ok(if running == Some(true) {
                    State::Running
                } else {
                    State::Stopped
                })
            }
            Err(err) if is_not_found(&err) => Ok(State::Gone),
            Err(err) => Err(err).context("inspecting the container"),
        }
    })
}

/// Stops the container `id` (SIGTERM, SIGKILL after `grace`) and removes it. Returns
/// whether there was one.
pub(crate) fn remove(id: &str, grace: Duration) -> Result<bool> {
    let id = id.to_owned();
    block_on(async move {
        let docker = engine().await?;
        let grace_secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let stop = docker.stop_container(
            &id,
            Some(StopContainerOptionsBuilder::new().t(grace_secs).build()),
        );
        match tokio::time::timeout(grace + ENGINE_WAIT, stop).await {
            Err(_) => bail!("the engine did not stop the container within {grace:?}"),
            Ok(Err(err)) if is_not_found(&err) => return Ok(false),
            // 304: it had stopped already; it is removed all the same.
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }))
            | Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err).context("stopping the container"),
        }
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match bounded(docker.remove_container(&id, Some(options))).await? {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(true),
            Err(err) => Err(err).context("removing the container"),
        }
    })
}

/// A client for the engine that answered a ping, or [`NoDockerEngine`].
async fn engine() -> Result<Docker> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.trim().is_empty())
        .unwrap_or_else(|| "the default socket (/var/run/docker.sock)".to_owned());
    let ping = async {
        let docker = docker_client_instance()
            .await
            .map_err(|err| err.to_string())?;
        docker.ping().await.map_err(|err| describe(&err))?;
        Ok::<_, String>(docker)
    };
    let reason = match tokio::time::timeout(ENGINE_WAIT, ping).await {
        Ok(Ok(docker)) => return Ok(docker),
        Ok(Err(reason)) => reason,
        Err(_) => "no answer".to_owned(),
    };
    Err(NoDockerEngine { host, reason }.into())
}

/// The client error with its causes: bollard's own message for a missing socket is only
/// "error trying to connect", and the cause (no such file) is what a user needs.
fn describe(err: &DockerError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Replaces testcontainers' port bindings, which leave the host address empty (every
/// interface), by LocalStack's port on 127.0.0.1 alone.
fn publish_on_loopback_only(host: &mut HostConfig, port: u16) {
    host.publish_all_ports = Some(false);
    host.port_bindings = Some(HashMap::from([(
        format!("{CONTAINER_PORT}/tcp"),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_owned()),
            host_port: Some(port.to_string()),
        }]),
    )]));
}

/// Fails unless the engine publishes the container on loopback addresses only, and on
/// `port`: what was asked for is checked, not assumed.
async fn check_bindings(docker: &Docker, id: &str, port: u16) -> Result<()> {
    let details = bounded(docker.inspect_container(id, None))
        .await?
        .context("inspecting the started container")?;
    let published = details
        .network_settings
        .and_then(|settings| settings.ports)
        .unwrap_or_default();
    published_on_loopback_only(published, port)
}

/// Whether the engine's published ports (`NetworkSettings.Ports`) are `port` on loopback
/// addresses, and nothing else.
fn published_on_loopback_only(published: PortMap, port: u16) -> Result<()> {
    let bindings: Vec<(String, String)> = published
        .into_values()
        .flatten()
        .flatten()
        .map(|binding| {
            (
                binding.host_ip.unwrap_or_default(),
                binding.host_port.unwrap_or_default(),
            )
        })
        .collect();
    let loopback = |ip: &str| {
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    };
    let expected = port.to_string();
    if bindings.is_empty()
        || !bindings
            .iter()
            .all(|(ip, host_port)| loopback(ip) && *host_port == expected)
    {
        bail!(
            "the engine published LocalStack on {bindings:?}, not on 127.0.0.1:{port} alone \
             (a LocalStack reachable from other machines must never run)"
        );
    }
    Ok(())
}

/// Waits until every service kms-eth uses is available, as the host install's start does.
async fn wait_healthy(url: &str, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let probe = url.to_owned();
        // `health` is a blocking HTTP call: off the runtime's only thread.
        let document = tokio::task::spawn_blocking(move || health(&probe)).await?;
        if missing_services(document.as_ref()).is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            bail!(
                "LocalStack did not become ready within {} s ({})",
                timeout.as_secs(),
                describe_health(document.as_ref())
            );
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            crate::say(
                "localstack",
                format!(
                    "waiting for {}: {} ({} s)",
                    SERVICES.join(", "),
                    describe_health(document.as_ref()),
                    started.elapsed().as_secs()
                ),
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// After a failed start: removes the container called `name` if kms-eth made it for `port`
/// (it carries both labels), so no unrecorded container is left behind. Returns a note for
/// the error.
async fn remove_ours(docker: &Docker, name: &str, port: u16) -> String {
    let Ok(Ok(details)) = bounded(docker.inspect_container(name, None)).await else {
        return String::new();
    };
    let ours = details
        .config
        .and_then(|config| config.labels)
        .is_some_and(|labels| {
            labels.get(LABEL.0).map(String::as_str) == Some(LABEL.1)
                && labels.get(PORT_LABEL) == Some(&port.to_string())
        });
    if !ours {
        return format!(
            " (a container named {name} that kms-eth did not start is in the way: remove it, \
             or choose another --port)"
        );
    }
    let tail = log_tail(docker, name).await;
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match bounded(docker.remove_container(name, Some(options))).await {
        Ok(Ok(())) => format!("; the container was removed again. Its last log lines:\n{tail}"),
        _ => format!("; removing the container failed too: remove it with `docker rm -f {name}`"),
    }
}

/// The last lines of the container's output, or a note why there are none.
async fn log_tail(docker: &Docker, container: &str) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(LOG_TAIL)
        .build();
    let lines = docker
        .logs(container, Some(options))
        .map(|line| line.map(|line| line.to_string()))
        .collect::<Vec<_>>();
    match bounded(lines).await {
        Ok(lines) => lines
            .into_iter()
            .collect::<Result<String, _>>()
            .unwrap_or_else(|err| format!("(its log could not be read: {err})")),
        Err(err) => format!("({err})"),
    }
}

/// `future`, failing if the engine takes longer than [`ENGINE_WAIT`].
async fn bounded<T>(future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(ENGINE_WAIT, future)
        .await
        .map_err(|_| anyhow!("the Docker engine did not answer within {ENGINE_WAIT:?}"))
}

fn is_not_found(err: &DockerError) -> bool {
    matches!(
        err,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Runs `future` to completion on a fresh single-threaded runtime on its own thread (see
/// the module documentation).
fn block_on<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a runtime for the Docker client")?
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the Docker client panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Handle, Record};

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    #[test]
    fn a_container_record_keeps_its_handle_and_a_process_record_its_old_shape() {
        let container = Record {
            handle: Handle::Container {
                id: "0123abcd".into(),
                name: container_name(4566),
            },
            port: 4566,
            url: "http://127.0.0.1:4566".into(),
        };
        let text = serde_json::to_string(&container).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), container);
        assert_eq!(
            container.handle.to_string(),
            "container kms-eth-localstack-4566"
        );

        let process: Record =
            serde_json::from_str(r#"{"pid": 42, "port": 4566, "url": "http://127.0.0.1:4566"}"#)
                .unwrap();
        assert_eq!(process.handle, Handle::Pid(42));
        assert_eq!(process.handle.to_string(), "pid 42");
        assert_eq!(serde_json::to_value(&process).unwrap()["pid"], 42);
    }

    #[test]
    fn only_the_loopback_binding_is_requested() {
        let mut host = HostConfig {
            publish_all_ports: Some(true),
            ..HostConfig::default()
        };
        publish_on_loopback_only(&mut host, 4599);
        assert_eq!(host.publish_all_ports, Some(false));
        assert_eq!(
            host.port_bindings.unwrap(),
            HashMap::from([("4566/tcp".into(), Some(vec![binding("127.0.0.1", "4599")]))])
        );
    }

    #[test]
    fn published_ports_other_than_loopback_on_the_port_are_refused() {
        let ports =
            |bindings: Vec<PortBinding>| HashMap::from([("4566/tcp".into(), Some(bindings))]);
        assert!(
            published_on_loopback_only(ports(vec![binding("127.0.0.1", "4599")]), 4599).is_ok()
        );
        assert!(published_on_loopback_only(ports(vec![binding("::1", "4599")]), 4599).is_ok());
        for refused in [
            ports(vec![binding("0.0.0.0", "4599")]),
            ports(vec![binding("127.0.0.1", "4599"), binding("::", "4599")]),
            ports(vec![binding("", "4599")]),
            ports(vec![binding("127.0.0.1", "4600")]),
            ports(vec![]),
            HashMap::new(),
        ] {
            let err = published_on_loopback_only(refused.clone(), 4599).unwrap_err();
            assert!(
                err.to_string().contains("must never run"),
                "{refused:?}: {err}"
            );
        }
    }
}
