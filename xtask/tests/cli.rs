//! The harness commands as a user runs them: `cargo xtask localstack|chain ...` on separate
//! state folders and ports, so they never touch the instance `cargo xtask test` started.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kms_eth_harness::{localstack, process};

/// A private state folder (`KMS_ETH_STATE_DIR`) for one test. Dropping it stops whatever
/// the test started there, even when the test fails.
struct State(PathBuf);

impl State {
    fn new(name: &str) -> State {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        State(dir)
    }

    fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_with(args, &[])
    }

    fn xtask_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("KMS_ETH_STATE_DIR", &self.0)
            .env_remove("AWS_ENDPOINT_URL")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// `DOCKER_HOST` for a Unix socket in this test's state folder.
    fn docker_host(&self, socket: &str) -> String {
        format!("unix://{}", self.0.join(socket).display())
    }

    /// Whether a LocalStack record (of a process or a container) was left behind.
    fn has_localstack_record(&self) -> bool {
        self.0.join("localstack").join("service.json").exists()
    }

    fn recorded_pid(&self, service: &str) -> u32 {
        let text = std::fs::read_to_string(self.0.join(service).join("service.json")).unwrap();
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        u32::try_from(record["pid"].as_u64().unwrap()).unwrap()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = self.xtask(&["localstack", "down"]);
        let _ = self.xtask(&["chain", "down"]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Pids of live processes whose environment contains `needle` (for example the
/// `GATEWAY_LISTEN` of one LocalStack), to count instances independently of pid records.
fn processes_with_env(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
                && process::is_running(*pid, "")
        })
        .collect()
}

#[test]
fn localstack_up_twice_starts_one_instance_and_down_leaves_no_process() {
    let state = State::new("localstack-twice");
    let port = process::free_port().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}");

    let first = state.xtask(&["localstack", "up", "--port", &port]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first), url);
    let pid = state.recorded_pid("localstack");
    let listening = process::listening_addresses(port.parse().unwrap());
    assert!(!listening.is_empty(), "nothing listens on {port}");
    assert!(
        process::only_loopback_listens(port.parse().unwrap()),
        "LocalStack must listen on loopback only, not on {listening:?}"
    );

    let second = state.xtask(&["localstack", "up", "--port", &port]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!("already running (pid {pid})")),
        "{}",
        stderr(&second)
    );
    let gateway = format!("GATEWAY_LISTEN=127.0.0.1:{port}");
    assert_eq!(
        processes_with_env(&gateway),
        vec![pid],
        "exactly one LocalStack serves {url}"
    );

    let status = state.xtask(&["localstack", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains("kms "), "{}", stdout(&status));

    let down = state.xtask(&["localstack", "down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(
        stdout(&down),
        format!("stopped LocalStack (pid {pid}) at {url}")
    );
    assert!(
        processes_with_env(&gateway).is_empty(),
        "a LocalStack process survived down"
    );
    assert!(
        process::group_members(pid).is_empty(),
        "a LocalStack process survived down"
    );
    assert!(
        process::port_is_free(port.parse().unwrap()),
        "the port is still taken after down"
    );

    let status = state.xtask(&["localstack", "status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(stderr(&status).contains("LocalStack is not running"));
}

#[test]
fn localstack_that_is_not_healthy_in_time_fails_with_the_wait_and_is_stopped() {
    let state = State::new("localstack-timeout");
    let port = process::free_port().unwrap().to_string();
    let up = state.xtask(&["localstack", "up", "--port", &port, "--timeout", "1"]);
    assert_eq!(up.status.code(), Some(1));
    let message = stderr(&up);
    assert!(
        message.contains("LocalStack did not become ready within 1 s"),
        "{message}"
    );
    assert!(message.contains("it was stopped again"), "{message}");
    assert!(processes_with_env(&format!("GATEWAY_LISTEN=127.0.0.1:{port}")).is_empty());
}

#[test]
fn localstack_up_on_an_occupied_port_fails_at_once() {
    let state = State::new("localstack-busy");
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let up = state.xtask(&["localstack", "up", "--port", &port]);
    assert_eq!(up.status.code(), Some(1));
    assert!(
        stderr(&up).contains(&format!(
            "port {port} on 127.0.0.1 is in use by another program"
        )),
        "{}",
        stderr(&up)
    );
}

#[test]
fn aws_endpoint_url_replaces_the_embedded_localstack() {
    let state = State::new("localstack-external");
    let up = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["localstack", "up"])
        .env("KMS_ETH_STATE_DIR", &state.0)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", stderr(&up));
    assert_eq!(stdout(&up), "http://127.0.0.1:9");
    assert!(stderr(&up).contains("starting nothing"));
    assert!(!state.0.join("localstack").join("service.json").exists());
}

#[test]
fn missing_python_is_reported_with_everything_tried() {
    let err = localstack::find_python_among(&["kms-eth-no-such-python", "/nonexistent/python3.13"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs Python >= 3.13"), "{err}");
    assert!(err.contains("kms-eth-no-such-python: not found"), "{err}");
    assert!(err.contains("/nonexistent/python3.13: not found"), "{err}");
    assert!(err.contains("KMS_ETH_PYTHON"), "{err}");
}

#[test]
fn chain_up_twice_starts_one_node_and_down_stops_it() {
    let state = State::new("chain-twice");
    let first = state.xtask(&["chain", "up"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let url = stdout(&first);
    let pid = state.recorded_pid("chain");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let second = state.xtask(&["chain", "up"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second), url);
    assert_eq!(state.recorded_pid("chain"), pid);

    let status = state.xtask(&["chain", "status"]);
    assert!(
        stdout(&status).contains("chain id 31337"),
        "{}",
        stdout(&status)
    );

    let down = state.xtask(&["chain", "down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(!process::is_running(pid, ""), "anvil survived down");
    let status = state.xtask(&["chain", "status"]);
    assert_eq!(status.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_with_code_2() {
    let state = State::new("usage");
    for (args, message) in [
        (
            &["test", "--profile", "prod"][..],
            "only apply with --target aws",
        ),
        (
            &["localstack", "up", "--port", "http"][..],
            "invalid value 'http'",
        ),
        (&["test", "--target", "gcp"][..], "invalid value 'gcp'"),
        (&["no-such-command"][..], "unrecognized subcommand"),
    ] {
        let output = state.xtask(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn localstack_up_docker_without_an_engine_exits_2_at_once_and_leaves_nothing_behind() {
    let state = State::new("localstack-no-docker");
    let port = process::free_port().unwrap().to_string();
    // A socket that does not exist: no engine, as on this machine, even where Docker runs.
    let docker_host = state.docker_host("no-engine.sock");
    let started = Instant::now();
    let up = state.xtask_with(
        &["localstack", "up", "--docker", "--port", &port],
        &[("DOCKER_HOST", &docker_host)],
    );
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
    let status = state.xtask(&["localstack", "status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(stderr(&status).contains("LocalStack is not running"));
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
    let requests = fake_engine(state.0.join("engine.sock"));
    let up = state.xtask_with(
        &["localstack", "up", "--docker", "--port", &port],
        &[("DOCKER_HOST", &state.docker_host("engine.sock"))],
    );
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
    assert!(
        env.contains(&"SERVICES=kms,cloudformation,iam,sts"),
        "{env:?}"
    );
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
