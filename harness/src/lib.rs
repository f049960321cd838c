//! The development harness of kms-eth: LocalStack and anvil installed and run on this
//! machine, process records, the test environment and the leak scan. The product depends
//! on it only for `--target localstack`, which finds or starts LocalStack through it.

pub mod anvil;
pub mod docker;
pub mod jsonrpc;
pub mod leak_scan;
pub mod localstack;
pub mod process;
pub mod template_lint;
pub mod testing;
pub mod venv;

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
    /// The path of the `kms-eth` binary the end-to-end tests drive (`cargo xtask test`
    /// builds it and passes its path in).
    pub const KMS_ETH_BIN: &str = "KMS_ETH_TEST_BIN";
    /// The path of the `cargo xtask` binary, for tests that drive the harness commands
    /// (`localstack up`) as a separate process with their own state folder.
    pub const XTASK_BIN: &str = "KMS_ETH_TEST_XTASK_BIN";

    /// A fake AWS secret access key that `cargo xtask test` puts in the LocalStack tests'
    /// environment (LocalStack accepts any). Finding it in any output or log afterwards
    /// means credentials leak; the tests that drive the CLI through the standard
    /// credential chain use it too.
    pub const CANARY_SECRET_ACCESS_KEY: &str = "kmsEthCanarySecretAccessKey0NeverPrint0001";
    /// A fake AWS session token, for the same purpose.
    pub const CANARY_SESSION_TOKEN: &str = "kmsEthCanarySessionToken0NeverPrint0001";

    /// The private keys (hex) that appear in the project's tests, by name. None may ever be
    /// written to a log or state file: the signer's tests use the first two through the
    /// insecure local signer, and the rest are the well-known keys anvil derives from its
    /// test mnemonic, which the harness tells anvil not to create (`--accounts 0`). The
    /// known-answer test's key 1 is left out: as 32-byte hex it is the number 1, which
    /// logs contain for honest reasons.
    pub const LOCAL_TEST_KEYS: [(&str, &str); 5] = [
        (
            "of the EIP-155 example (0x46...46)",
            "4646464646464646464646464646464646464646464646464646464646464646",
        ),
        (
            "of the alloy cross-check (0x07...07)",
            "0707070707070707070707070707070707070707070707070707070707070707",
        ),
        (
            "anvil dev account 0",
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        ),
        (
            "anvil dev account 1",
            "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        ),
        (
            "anvil dev account 2",
            "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        ),
    ];
}

/// The tag every key and stack created by a test carries; its value is the test run id.
/// `cargo xtask test --cleanup` finds leftovers by it.
pub const TEST_TAG: &str = "kms-eth:test-run";

/// Every message of the harness and the developer tasks goes to stderr through here, as
/// `[<tag>] <text>` (`[localstack] ready after 4.8 s`), so stdout keeps only results.
pub fn say(tag: &str, text: impl std::fmt::Display) {
    eprintln!("[{tag}] {text}");
}
