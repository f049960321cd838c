//! `localstack up --docker` without a Docker engine, and against a stand-in engine on a Unix
//! socket that records what it is asked: the harness's `localstack-docker` binary (what
//! `cargo xtask localstack up --docker` runs) exits 2 when no engine answers, asks for the
//! pinned image published on 127.0.0.1 alone, and records nothing when the start fails.
//! No test here starts a real container: these machines have no Docker engine.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kms_eth_harness::process;
use kms_eth_harness::testing::{processes_with_env, stderr, PrivateState, TestCommand};

const BINARY: &str = env!("CARGO_BIN_EXE_localstack-docker");

/// A private state folder for one test.
struct State(PrivateState);

impl State {
    fn new(name: &str) -> State {
        State(PrivateState::new(env!("CARGO_TARGET_TMPDIR"), name))
    }

    /// `localstack-docker up PORT 30` with `DOCKER_HOST` set to `docker_host`.
    fn up(&self, port: &str, docker_host: &str) -> Output {
        TestCommand::new(BINARY)
            .args(["up", port, "30"])
            .state(&self.0)
            .env("DOCKER_HOST", docker_host)
            .output()
    }

    /// `DOCKER_HOST` for a Unix socket in this test's state folder.
    fn docker_host(&self, socket: &str) -> String {
        format!("unix://{}", self.0.path().join(socket).display())
    }

    /// Whether a LocalStack record (of a process or a container) was left behind.
    fn has_localstack_record(&self) -> bool {
        self.0
            .path()
            .join("localstack")
            .join("service.json")
            .exists()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn localstack_up_docker_without_an_engine_exits_2_at_once_and_leaves_nothing_behind() {
    let state = State::new("localstack-no-docker");
    let port = process::free_port().unwrap().to_string();
    // A socket that does not exist: no engine, as on this machine, even where Docker runs.
    let docker_host = state.docker_host("no-engine.sock");
    let started = Instant::now();
    let up = state.up(&port, &docker_host);
    let message = stderr(&up);
    assert_eq!(up.status.code(), Some(2), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "finding no engine took {:?}",
        started.elapsed()
    );
    assert!(
        message.contains(&format!(
            "--docker needs a running Docker engine, and none answered at {docker_host}"
        )),
        "{message}"
    );
    assert!(message.contains("leave out --docker"), "{message}");
    assert!(stdout(&up).is_empty(), "{}", stdout(&up));

    assert!(!state.has_localstack_record(), "a record was left behind");
    assert!(
        processes_with_env(&format!("GATEWAY_LISTEN=127.0.0.1:{port}")).is_empty(),
        "a host LocalStack was started instead"
    );
    assert!(process::port_is_free(port.parse().unwrap()));
    let running = TestCommand::new(BINARY)
        .args(["running"])
        .state(&state.0)
        .env("DOCKER_HOST", &docker_host)
        .output();
    assert_eq!(running.status.code(), Some(1), "{}", stderr(&running));
}

/// A stand-in Docker engine on a Unix socket that answers the ping and the lookup of a
/// reusable container, refuses to create one, and hands every request (request line and
/// body) to the test.
fn fake_engine(socket: PathBuf) -> mpsc::Receiver<(String, String)> {
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(&socket).unwrap();
    let (sender, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap_or_default();
            let (status, answer) = if path.ends_with("/_ping") {
                ("200 OK", "OK")
            } else if path.contains("/containers/json") {
                ("200 OK", "[]")
            } else if path.contains("/containers/create") {
                (
                    "500 Internal Server Error",
                    r#"{"message":"fake engine: creation refused"}"#,
                )
            } else {
                ("404 Not Found", r#"{"message":"No such container"}"#)
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = sender.send((
                request_line.trim().to_owned(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
    });
    requests
}

#[test]
fn localstack_up_docker_asks_for_the_pinned_image_on_loopback_only_and_records_no_failure() {
    let state = State::new("localstack-fake-docker");
    let port = process::free_port().unwrap().to_string();
    let requests = fake_engine(state.0.path().join("engine.sock"));
    let up = state.up(&port, &state.docker_host("engine.sock"));
    let message = stderr(&up);
    // An engine that answers but fails is an error of the engine, not a missing one.
    assert_eq!(up.status.code(), Some(1), "{message}");
    assert!(message.contains("creation refused"), "{message}");
    assert!(
        !state.has_localstack_record(),
        "a failed start was recorded"
    );

    let requests: Vec<(String, String)> = requests.try_iter().collect();
    let (line, body) = requests
        .iter()
        .find(|(line, _)| line.contains("/containers/create"))
        .unwrap_or_else(|| panic!("no container was created: {requests:?}"));
    assert!(
        line.contains(&format!("name=kms-eth-localstack-{port}")),
        "{line}"
    );
    let create: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(create["Image"], "localstack/localstack:4.5");
    let env: Vec<&str> = create["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|var| var.as_str())
        .collect();
    // Exactly the services the host install runs, the same list in the same order.
    let services = format!(
        "SERVICES={}",
        kms_eth_harness::localstack::SERVICES.join(",")
    );
    assert!(env.contains(&services.as_str()), "{env:?}");
    assert!(env.contains(&"DISABLE_EVENTS=1"), "{env:?}");
    assert_eq!(create["Labels"]["kms-eth.service"], "localstack");
    assert_eq!(create["Labels"]["kms-eth.port"], port.as_str());
    assert_eq!(create["HostConfig"]["PublishAllPorts"], false);
    assert_eq!(
        create["HostConfig"]["PortBindings"],
        serde_json::json!({ "4566/tcp": [{ "HostIp": "127.0.0.1", "HostPort": port }] }),
        "LocalStack must be published on 127.0.0.1 alone"
    );
}
