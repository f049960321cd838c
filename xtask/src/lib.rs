//! The library half of `cargo xtask`: what the end-to-end tests share with the command line
//! (the LocalStack/anvil harness and target selection), and the transaction input parsing
//! the fuzz targets drive. The subcommands live in the binary.

pub mod harness;
pub mod rpc;
pub mod target;
pub mod txinputs;

/// An error in what the user asked for (a bad flag value, a missing argument) rather than in
/// the environment. `main` maps it to exit code 2, like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Environment variables `cargo xtask test` hands to the end-to-end tests.
pub mod test_env {
    /// `localstack` (the default) or `aws`.
    pub const TARGET: &str = "KMS_ETH_TEST_TARGET";
    /// The LocalStack endpoint the harness started.
    pub const ENDPOINT: &str = "KMS_ETH_TEST_ENDPOINT";
    /// A unique id of this test run, put in the names and tags of what tests create.
    pub const RUN_ID: &str = "KMS_ETH_TEST_RUN_ID";
    /// A fresh run id: unique per machine and moment (`t<unix seconds>-<pid>`).
    pub fn new_run_id() -> String {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("t{secs}-{}", std::process::id())
    }
    /// The path of the `cargo xtask` binary running the tests, for tests that drive the CLI.
    pub const XTASK_BIN: &str = "KMS_ETH_TEST_XTASK_BIN";
}

/// The tag every key and stack created by a test carries; its value is the test run id.
/// `cargo xtask test --cleanup` finds leftovers by it.
pub const TEST_TAG: &str = "kms-eth:test-run";
