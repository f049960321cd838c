//! One lock per stack, taken by every command that changes one (`deploy`, `destroy`, `key
//! schedule-deletion`, `fleet apply` and `fleet destroy`): an owner-only `flock` file in the
//! per-user state folder (`$KMS_ETH_HOME/locks`, else the user's data folder), named by
//! account, region and stack, so a copy of a manifest, another clone or a single-stack command
//! cannot change a stack another kms-eth process is changing. Processes on other machines are
//! not seen.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Result;
use kms_eth_core::UsageError;

/// The lock file of `stack` in `account` and `region`.
pub fn path(account: &str, region: &str, stack: &str) -> PathBuf {
    kms_eth_harness::process::user_state_dir("locks")
        .join(format!("stack-{account}-{region}-{stack}.lock"))
}

/// Holds the lock of `stack` until the file is dropped; refused (exit 2) while another
/// kms-eth process holds it. `what` names this command in the message.
pub fn hold(account: &str, region: &str, stack: &str, what: &str) -> Result<File> {
    let path = path(account, region, stack);
    kms_eth_service::lock::hold(&path)?.map_err(|pid| {
        UsageError(format!(
            "another kms-eth command (pid {}) is changing stack {stack} in account {account}, \
             {region}; wait for it to finish before this {what} (two at once would race each \
             other's changes; the lock is {})",
            kms_eth_service::lock::shown(pid),
            path.display()
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_stack_is_changed_by_one_command_at_a_time_and_others_are_not_held_up() {
        let stack = format!("lock-test-{}", std::process::id());
        let held = hold("111111111111", "us-east-1", &stack, "deploy").unwrap();
        // flock is per open file: a second one in this process is refused as another would be.
        let refused = hold("111111111111", "us-east-1", &stack, "destroy")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(&std::process::id().to_string()),
            "{refused}"
        );
        assert!(refused.contains("before this destroy"), "{refused}");
        // Another region's stack of the same name is another stack.
        drop(hold("111111111111", "eu-west-1", &stack, "deploy").unwrap());
        drop(held);
        drop(hold("111111111111", "us-east-1", &stack, "destroy").unwrap());
        let _ = std::fs::remove_file(path("111111111111", "us-east-1", &stack));
        let _ = std::fs::remove_file(path("111111111111", "eu-west-1", &stack));
    }
}
