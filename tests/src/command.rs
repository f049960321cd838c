//! The binaries under test (`kms-eth`, the signing Lambda, `cargo xtask`) and the commands
//! the tests run with them: the harness's `TestCommand`, `kms-eth` sent to the run's target or
//! through a fault proxy, its JSON output, and argument lists many tests share.

use std::sync::OnceLock;

use kms_eth::target::{Target, LOCALSTACK_REGION};
use kms_eth_harness::test_env;

use crate::fault_proxy::FaultProxy;
use crate::target::target;

pub use kms_eth_harness::testing::{
    assert_exit, assert_usage_error, stderr, PrivateState, TestCommand,
};

/// The `kms-eth` binary: the one `cargo xtask test` built (it passes the path in), or,
/// under a plain `cargo test`, one built here once (with `build_binary`, which reports its
/// path) so that it is never stale.
pub fn kms_eth_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<std::path::PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os(test_env::KMS_ETH_BIN) {
            return binary.into();
        }
        kms_eth_harness::workspace::build_binary("kms-eth", "kms-eth")
            .unwrap_or_else(|err| panic!("the tests drive the kms-eth binary: {err:#}"))
    })
}

/// The signing Lambda's binary: the one `cargo xtask test` built, or one built here once
/// under a plain `cargo test`.
pub fn lambda_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<std::path::PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os(test_env::LAMBDA_BIN) {
            return binary.into();
        }
        let function = kms_eth_harness::cargo_lambda::FUNCTION;
        kms_eth_harness::workspace::build_binary(function, function)
            .unwrap_or_else(|err| panic!("the Lambda tests run its binary: {err:#}"))
    })
}

/// The `cargo xtask` binary, for the harness commands: the one running `cargo xtask test`,
/// or one built here once under a plain `cargo test`.
pub fn xtask_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<std::path::PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os(test_env::XTASK_BIN) {
            return binary.into();
        }
        kms_eth_harness::workspace::build_binary("xtask", "xtask")
            .unwrap_or_else(|err| panic!("the tests drive the xtask binary: {err:#}"))
    })
}

/// `kms-eth <args>` with the target of this run added for the commands that take one:
/// `kms_eth_command(&["deploy", ...])` is `kms-eth deploy ... <target flags>`.
pub fn kms_eth_command(args: &[&str]) -> TestCommand {
    let command = TestCommand::new(kms_eth_binary()).args(args);
    // `verify` needs no AWS and takes no target.
    if args.first() == Some(&"verify") {
        return command;
    }
    on_target(command)
}

/// `command` (any binary taking the product's target flags) sent to the target of this run.
pub fn on_target(command: TestCommand) -> TestCommand {
    match target() {
        Target::LocalStack { endpoint, region } => {
            command.args(["--endpoint-url", endpoint, "--region", region])
        }
        Target::Aws { .. } => command.args(["--target", "aws"]),
    }
}

/// `command` (any binary taking the product's target flags) acting in `account` of the
/// harness's LocalStack (an account from [`crate::own_account`]): `--target aws` with that
/// LocalStack as the endpoint and the account as the access key id, since `--target
/// localstack` always acts in LocalStack's default account 000000000000.
pub fn in_account(command: TestCommand, account: &str) -> TestCommand {
    command
        .args(["--target", "aws", "--endpoint-url"])
        .args([
            crate::localstack_endpoint().as_str(),
            "--region",
            LOCALSTACK_REGION,
        ])
        .env("AWS_ACCESS_KEY_ID", account)
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
}

/// `kms-eth <args>` sent to the LocalStack behind `proxy`, whatever the run's target, so that
/// the proxy sees (and counts, holds or alters) every AWS call the command makes.
pub fn kms_eth_through(proxy: &FaultProxy, args: &[&str]) -> TestCommand {
    TestCommand::new(kms_eth_binary()).args(args).args([
        "--endpoint-url",
        proxy.endpoint(),
        "--region",
        LOCALSTACK_REGION,
    ])
}

/// Runs [`kms_eth_command`] to completion, whatever the outcome.
pub fn kms_eth(args: &[&str]) -> std::process::Output {
    kms_eth_command(args).output()
}

/// Standard output of a finished command, parsed as JSON; panics with stderr if it failed.
pub fn json_output(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "command failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Borrows a list of owned arguments, for [`kms_eth()`].
pub fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The flags of a plain EIP-1559 transfer of `value` to `to` on chain `chain_id` (21,000 gas
/// at 2 gwei, tip 1 gwei), for tests that need some transaction to sign or send.
pub fn transfer_flags(chain_id: &str, to: &str, value: &str) -> Vec<String> {
    [
        "--chain-id",
        chain_id,
        "--gas-limit",
        "21000",
        "--max-fee-per-gas",
        "2gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--to",
        to,
        "--value",
        value,
    ]
    .map(str::to_owned)
    .to_vec()
}
