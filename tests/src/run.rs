//! This test run: its id, which names and tags everything the tests create so that
//! `cargo xtask test --cleanup` can find leftovers, and cleanup that runs from `Drop`, so
//! that what a test made is removed even when it fails.

use std::sync::OnceLock;

use kms_eth_harness::{test_env, TEST_TAG};

/// The id of this test run, used in tags and names.
pub fn run_id() -> String {
    static RUN_ID: OnceLock<String> = OnceLock::new();
    RUN_ID
        .get_or_init(|| std::env::var(test_env::RUN_ID).unwrap_or_else(|_| test_env::new_run_id()))
        .clone()
}

/// This run's scratch folder (made owner-only on first use): where tests write the files
/// they hand to the commands they run. `cargo xtask test` removes it after a passing run.
pub fn scratch_dir() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use std::os::unix::fs::DirBuilderExt;
        let dir = test_env::scratch_dir(&run_id());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|err| panic!("creating the scratch folder {}: {err}", dir.display()));
        dir
    })
    .clone()
}

/// A stack name unique to this run and test, so that runs never collide.
pub fn stack_name(test: &str) -> String {
    kms_eth_harness::test_names::stack(&run_id(), test)
}

/// The `--tag` that marks what a test deploys, so `cargo xtask test --cleanup` finds it.
pub fn test_tag() -> String {
    format!("{TEST_TAG}={}", run_id())
}

/// Runs `cleanup` to completion from a `Drop`: drop cannot await, and the test's runtime may
/// be the one calling drop, so a fresh runtime (with its own HTTP client) on its own thread
/// does the calls. Returns whether it succeeded.
pub fn run_detached<F>(cleanup: F) -> bool
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let result = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(cleanup)
    })
    .join();
    matches!(result, Ok(Ok(())))
}
