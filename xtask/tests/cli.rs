//! The harness commands as a user runs them: `cargo xtask localstack|chain|redis ...` on separate
//! state folders and ports, so they never touch the instance `cargo xtask test` started.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::Output;

use kms_eth_harness::testing::{processes_with_env, stderr, PrivateState, TestCommand};
use kms_eth_harness::{localstack, process};

/// A private state folder for one test: dropping it stops whatever the test started
/// there, even when the test fails.
struct State(PrivateState);

impl State {
    fn new(name: &str) -> State {
        State(PrivateState::new(env!("CARGO_TARGET_TMPDIR"), name))
    }

    /// `cargo xtask <args>` with its services kept in this folder.
    fn xtask(&self, args: &[&str]) -> Output {
        TestCommand::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .state(&self.0)
            .output()
    }

    fn recorded_pid(&self, service: &str) -> u32 {
        self.0.recorded_pid(service)
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
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
fn redis_up_with_a_password_file_runs_one_server_and_down_removes_its_data() {
    let state = State::new("redis-password");
    let password_file = state.0.path().join("redis-password");
    std::fs::create_dir_all(state.0.path()).unwrap();
    std::fs::write(&password_file, "kmsEthXtaskRedis\n").unwrap();
    let password_flag = password_file.to_string_lossy().into_owned();
    let up = ["redis", "up", "--password-file", &password_flag];

    let first = state.xtask(&up);
    assert!(first.status.success(), "{}", stderr(&first));
    let url = stdout(&first);
    let pid = state.recorded_pid("redis");
    let port: u16 = url
        .strip_prefix("redis://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/0"))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("not a loopback Redis URL: {url}"));
    let data = state.0.path().join("redis").join(format!("data-{port}"));
    assert!(data.is_dir(), "{} is missing", data.display());
    assert_eq!(
        stdout(&state.xtask(&up)),
        url,
        "a second up reuses the server"
    );
    assert_eq!(state.recorded_pid("redis"), pid);

    let status = state.xtask(&["redis", "status"]);
    assert!(
        stdout(&status).contains("wants a password"),
        "{}",
        stdout(&status)
    );
    for output in [&first, &status] {
        assert!(
            !stderr(output).contains("kmsEthXtaskRedis"),
            "the password was printed"
        );
    }

    let down = state.xtask(&["redis", "down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(!process::is_running(pid, ""), "the server survived down");
    assert!(!data.exists(), "down left {}", data.display());
    assert_eq!(state.xtask(&["redis", "status"]).status.code(), Some(1));
}

#[test]
fn usage_errors_exit_with_code_2() {
    let state = State::new("usage");
    // An unknown command is the product's to refuse: the end-to-end test
    // `cli_contract::cargo_xtask_runs_every_product_command_and_refuses_an_unknown_one`
    // checks it, since it builds the product.
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
