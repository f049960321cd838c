//! The harness refuses what would mislead or expose: `localstack up` never hands back a
//! LocalStack other than the one asked for (another port, or an `AWS_ENDPOINT_URL` where
//! nothing answers), and the state it writes (records, logs, locks) is readable by its
//! owner only. Run as a user runs them: `cargo xtask ...` as a separate process.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use kms_eth_harness::testing::{processes_with_env, stderr, PrivateState, TestCommand};
use kms_eth_harness::{localstack, process};

fn xtask(args: &[&str]) -> TestCommand {
    TestCommand::new(env!("CARGO_BIN_EXE_xtask")).args(args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Asserts that nothing was started on `port`: no listener, no LocalStack told to serve it.
fn assert_nothing_on(port: u16) {
    assert!(process::port_is_free(port), "something listens on {port}");
    assert!(
        processes_with_env(&format!("GATEWAY_LISTEN=127.0.0.1:{port}")).is_empty(),
        "a LocalStack was started for port {port}"
    );
}

/// The shared LocalStack (the one `cargo xtask test` started, or started here through the
/// same state folder), which these tests only read: its endpoint and pid.
fn shared_localstack() -> (String, u32) {
    let up = xtask(&["localstack", "up"])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KMS_ETH_STATE_DIR")
        .success();
    let record = localstack::service_dir()
        .running()
        .expect("`localstack up` succeeded, so a LocalStack is recorded as running");
    assert_eq!(stdout(&up), record.url);
    (record.url, record.handle.pid().expect("a host process"))
}

#[test]
fn localstack_up_with_another_port_than_the_running_one_is_an_error() {
    let (endpoint, pid) = shared_localstack();
    let port = process::free_port().unwrap();
    let refused = xtask(&["localstack", "up", "--port", &port.to_string()])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KMS_ETH_STATE_DIR")
        .fails(
            1,
            &format!("--port {port}: LocalStack is already running at {endpoint} (pid {pid})"),
        );
    assert!(stdout(&refused).is_empty(), "no endpoint is handed back");
    assert_nothing_on(port);

    // The port it runs on is no mismatch.
    let running_port = endpoint.rsplit(':').next().unwrap();
    let same = xtask(&["localstack", "up", "--port", running_port])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KMS_ETH_STATE_DIR")
        .success();
    assert_eq!(stdout(&same), endpoint);
}

#[test]
fn localstack_up_with_an_aws_endpoint_url_where_nothing_answers_is_an_error() {
    let state = PrivateState::new(env!("CARGO_TARGET_TMPDIR"), "endpoint-nothing-answers");
    let nowhere = process::free_port().unwrap();
    let url = format!("http://127.0.0.1:{nowhere}");
    let refused = xtask(&["localstack", "up"])
        .state(&state)
        .env("AWS_ENDPOINT_URL", &url)
        .fails(
            1,
            &format!("AWS_ENDPOINT_URL is set to {url}, and nothing answers there"),
        );
    assert!(stdout(&refused).is_empty(), "no endpoint is handed back");
    assert!(
        stderr(&refused).contains("the embedded LocalStack is not running"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !state
            .path()
            .join("localstack")
            .join("service.json")
            .exists(),
        "nothing was recorded as started"
    );
    assert_nothing_on(nowhere);

    // --port and an AWS_ENDPOINT_URL elsewhere contradict each other.
    let port = process::free_port().unwrap();
    xtask(&["localstack", "up", "--port", &port.to_string()])
        .state(&state)
        .env("AWS_ENDPOINT_URL", &url)
        .fails(
            1,
            &format!("--port {port}: AWS_ENDPOINT_URL is set to {url}"),
        );
    assert_nothing_on(port);

    // An endpoint that answers replaces the embedded LocalStack: it is used, and nothing is
    // started.
    let (endpoint, _) = shared_localstack();
    let used = xtask(&["localstack", "up"])
        .state(&state)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .success();
    assert_eq!(stdout(&used), endpoint);
    assert!(
        stderr(&used).contains("starting nothing"),
        "{}",
        stderr(&used)
    );
    assert!(!state
        .path()
        .join("localstack")
        .join("service.json")
        .exists());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn state_files_are_written_owner_only_and_their_folder_0700() {
    let state = PrivateState::new(env!("CARGO_TARGET_TMPDIR"), "owner-only-state");
    // A folder left world-readable (by an older harness, or a umask of 022) is tightened.
    let dir = state.path().join("chain");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    xtask(&["chain", "up"]).state(&state).success();
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for file in ["service.json", "service.log", "lock"] {
        let path = dir.join(file);
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    xtask(&["chain", "down"]).state(&state).success();
}
