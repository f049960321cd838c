//! The development harness of kms-eth: LocalStack, anvil, a Redis-protocol server,
//! cargo-lambda and a browser installed and run on this machine, process records, the test
//! environment and the leak scan.
//!
//! The product links only the part that is always built: [`localstack`] (find, start and stop
//! the LocalStack of `--target localstack` and `kms-eth localstack status|down`), [`process`]
//! (state folders, pid records, stopping exactly what was started) and what those two use
//! ([`docker`]'s container records, [`venv`]'s pinned installs). Everything else is for tests
//! and developer tasks (anvil, the Redis server, cargo-lambda, the test environment and keys,
//! `TestCommand`, the leak scan, running cargo, ...) and is built only with the `dev`
//! feature: on by default, off in the workspace's dependency, turned on by xtask, the tests
//! and the benchmarks.

pub mod docker;
pub mod localstack;
pub mod process;
pub mod venv;

#[cfg(feature = "dev")]
pub mod anvil;
#[cfg(feature = "dev")]
pub mod browser;
#[cfg(feature = "dev")]
pub mod cargo_lambda;
#[cfg(feature = "dev")]
pub mod clients;
#[cfg(feature = "dev")]
pub mod jsonrpc;
#[cfg(feature = "dev")]
pub mod leak_scan;
#[cfg(feature = "dev")]
pub mod redis;
#[cfg(feature = "dev")]
pub mod resp;
#[cfg(feature = "dev")]
pub mod template_lint;
#[cfg(feature = "dev")]
pub mod testing;
#[cfg(feature = "dev")]
pub mod workspace;

/// Environment variables `cargo xtask test` hands to the end-to-end tests.
#[cfg(feature = "dev")]
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
    /// The folder of a run's scratch files (manifests, events, logs and node state that the
    /// tests write for the commands they run): one per run under the system's temporary
    /// folder, so that `cargo xtask test` can remove it whole once the run has passed
    /// (a failed run keeps it for the post-mortem, and says where).
    pub fn scratch_dir(run_id: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("kms-eth-e2e-{run_id}"))
    }
    /// The path of the `kms-eth` binary the end-to-end tests drive (`cargo xtask test`
    /// builds it and passes its path in).
    pub const KMS_ETH_BIN: &str = "KMS_ETH_TEST_BIN";
    /// The path of the signing Lambda's binary (`kms-eth-lambda`), which the tests run
    /// under cargo-lambda's emulator (`cargo xtask test` builds it and passes its path in).
    pub const LAMBDA_BIN: &str = "KMS_ETH_TEST_LAMBDA_BIN";
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
    /// insecure local signer, the third signs in the local-overhead benchmark, and the rest
    /// are the well-known keys anvil derives from its test mnemonic, which the harness tells
    /// anvil not to create (`--accounts 0`). The known-answer test's key 1 is left out: as
    /// 32-byte hex it is the number 1, which logs contain for honest reasons. A test in
    /// `leak_scan` finds every key built from a repeated byte in the code and fails if it is
    /// missing here.
    pub const LOCAL_TEST_KEYS: [(&str, &str); 6] = [
        (
            "of the EIP-155 example (0x46...46)",
            "4646464646464646464646464646464646464646464646464646464646464646",
        ),
        (
            "of the alloy cross-check (0x07...07)",
            "0707070707070707070707070707070707070707070707070707070707070707",
        ),
        (
            "of the local-overhead benchmark (0x4b...4b)",
            "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b",
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

/// The tag every key and stack created by a test or a benchmark carries; its value is the
/// run id. `cargo xtask test --cleanup` finds leftovers by it together with their names
/// ([`test_names`]). It is outside the `kms-eth:` prefix, which `deploy --tag` refuses
/// (kms-eth's own tags), because the tests deploy through that very flag.
#[cfg(feature = "dev")]
pub const TEST_TAG: &str = "kms-eth-test:run";

/// How tests and benchmarks name what they create. A tag alone can be put on anything by
/// anyone, so `cargo xtask test --cleanup` removes only what carries [`TEST_TAG`] with a
/// run id as its value and one of these names for that same run.
#[cfg(feature = "dev")]
pub mod test_names {
    /// A test's stack: `kms-eth-test-<run id>-<label>`.
    pub fn stack(run_id: &str, label: &str) -> String {
        format!("kms-eth-test-{run_id}-{label}")
    }

    /// A benchmark's stack: `kms-eth-bench-<kind>-<run id>-<round>` (kind `cli` or `raw`).
    pub fn bench_stack(kind: &str, run_id: &str, round: usize) -> String {
        format!("kms-eth-bench-{kind}-{run_id}-{round}")
    }

    /// The description of a key a test creates directly in KMS.
    pub fn test_key_description(run_id: &str) -> String {
        format!("kms-eth end-to-end test key ({run_id})")
    }

    /// The description of the key a benchmark creates directly in KMS.
    pub fn bench_key_description(run_id: &str) -> String {
        format!("kms-eth benchmark key ({run_id})")
    }

    /// Whether `value` has the shape of [`super::test_env::new_run_id`]: `t<digits>-<digits>`.
    pub fn is_run_id(value: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        value
            .strip_prefix('t')
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(secs, pid)| digits(secs) && digits(pid))
    }

    /// Whether `name` is a stack that a test or a benchmark of run `run_id` made.
    pub fn is_stack_of(name: &str, run_id: &str) -> bool {
        let run = format!("{run_id}-");
        let after = |prefix: &str| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(&run) && rest.len() > run.len())
        };
        after("kms-eth-test-") || after("kms-eth-bench-cli-") || after("kms-eth-bench-raw-")
    }

    /// Whether `description` is that of a key a test or benchmark of run `run_id` made.
    pub fn is_key_description_of(description: &str, run_id: &str) -> bool {
        description == test_key_description(run_id) || description == bench_key_description(run_id)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_names_of_the_same_run_are_test_names() {
            let run = "t1764236591-4242";
            assert!(is_run_id(run));
            for not_a_run in ["x", "t-1", "t1-", "1-2", "t1-2a", ""] {
                assert!(!is_run_id(not_a_run), "{not_a_run}");
            }
            assert!(is_stack_of(&stack(run, "deploy"), run));
            assert!(is_stack_of(&bench_stack("cli", run, 0), run));
            assert!(is_stack_of(&bench_stack("raw", run, 3), run));
            assert!(!is_stack_of(&stack("t1-2", "deploy"), run), "another run");
            assert!(!is_stack_of("treasury", run));
            assert!(!is_stack_of(&format!("kms-eth-test-{run}-"), run));
            assert!(!is_stack_of(&format!("kms-eth-test-{run}9-x"), run));
            assert!(is_key_description_of(&test_key_description(run), run));
            assert!(is_key_description_of(&bench_key_description(run), run));
            assert!(!is_key_description_of(&test_key_description("t1-2"), run));
            assert!(!is_key_description_of("treasury key", run));
        }
    }
}

/// Every message of the harness and the developer tasks goes to stderr through here, as
/// `[<tag>] <text>` (`[localstack] ready after 4.8 s`), so stdout keeps only results.
pub fn say(tag: &str, text: impl std::fmt::Display) {
    eprintln!("[{tag}] {text}");
}
