//! Account stacks deployed by tests: the deploy flags that mark them as a test's, a guard
//! (`TestStack`) that deletes the stack and retires its key when the test ends, even when it
//! fails, and what CloudFormation says about a stack.

use kms_eth_provisioner::KEY_LOGICAL_ID;

use crate::command::{as_strs, json_output, kms_eth, kms_eth_command};
use crate::keys::retire_key;
use crate::run::{run_detached, stack_name, test_tag};
use crate::target::{cloudformation, sdk_config, sdk_config_in};

/// The arguments of `deploy --json` for a test account: removal policy DESTROY with the
/// shortest window and the run's tag, so that whatever a test leaves behind is retired soon.
pub fn deploy_args(stack: &str) -> Vec<String> {
    [
        "deploy",
        "--stack-name",
        stack,
        "--removal-policy",
        "destroy",
        "--pending-window-days",
        "7",
        "--tag",
        &test_tag(),
        "--json",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Deploys a test account with [`deploy_args`] and `extra` flags; returns the guard that
/// tears it down and the deploy's JSON report. Asserts success.
pub fn deploy_test_account(label: &str, extra: &[&str]) -> (TestStack, serde_json::Value) {
    let mut guard = TestStack::new(stack_name(label));
    let mut args = deploy_args(&guard.name);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let created = json_output(&kms_eth(&as_strs(&args)));
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    (guard, created)
}

/// A stack deployed by a test. Dropping it deletes the stack if it still exists and
/// schedules the key's deletion, even when the test fails half-way.
#[derive(Debug)]
pub struct TestStack {
    /// The stack name.
    pub name: String,
    /// The key id, once known.
    pub key_id: Option<String>,
    /// The LocalStack account the stack lives in when that is not the run's target (an
    /// account from [`crate::own_account`]); `None` for the target.
    account: Option<String>,
}

impl TestStack {
    /// A guard for the stack `name` (deployed or not yet) in the run's target.
    pub fn new(name: String) -> TestStack {
        TestStack {
            name,
            key_id: None,
            account: None,
        }
    }

    /// A guard for the stack `name` in `account` of the harness's LocalStack.
    pub fn in_account(name: String, account: &str) -> TestStack {
        TestStack {
            name,
            key_id: None,
            account: Some(account.to_owned()),
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let name = self.name.clone();
        let known_key = self.key_id.take();
        let account = self.account.clone();
        // The key is found from the stack itself when the test failed before it knew it.
        // The stack is deleted and waited for, then the key (retained, restored, or already
        // pending) is retired like any test key.
        let cleaned = run_detached(async move {
            let config = match &account {
                Some(account) => sdk_config_in(account).await,
                None => sdk_config().await,
            };
            let cloudformation = aws_sdk_cloudformation::Client::new(&config);
            let from_stack = stack_key_id(&cloudformation, &name).await;
            if from_stack.is_some() || known_key.is_none() {
                let _ = cloudformation.delete_stack().stack_name(&name).send().await;
                for _ in 0..120 {
                    let gone = match cloudformation
                        .describe_stacks()
                        .stack_name(&name)
                        .send()
                        .await
                    {
                        Ok(r) => r.stacks().iter().all(|s| {
                            s.stack_status()
                                .is_some_and(|st| st.as_str() == "DELETE_COMPLETE")
                        }),
                        Err(_) => true,
                    };
                    if gone {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            if let Some(key_id) = known_key.or(from_stack) {
                retire_key(&aws_sdk_kms::Client::new(&config), &key_id).await?;
            }
            Ok(())
        });
        if !cleaned {
            eprintln!(
                "warning: could not clean up test stack {}; `cargo xtask test --cleanup` will",
                self.name
            );
        }
    }
}

/// Whether the stack exists (and is not deleted). Only "does not exist" counts as absent:
/// any other error fails the test rather than passing an absence check.
pub async fn stack_exists(name: &str) -> bool {
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    match cloudformation()
        .await
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
    {
        Ok(response) => response.stacks().iter().any(|s| {
            s.stack_status()
                .is_some_and(|st| st.as_str() != "DELETE_COMPLETE")
        }),
        Err(err) if err.message().is_some_and(|m| m.contains("does not exist")) => false,
        Err(err) => panic!(
            "DescribeStacks {name} failed: {}",
            aws_sdk_cloudformation::error::DisplayErrorContext(err)
        ),
    }
}

/// The key of stack `name` (its physical id), if the stack has one.
pub async fn stack_key_id(
    cloudformation: &aws_sdk_cloudformation::Client,
    name: &str,
) -> Option<String> {
    cloudformation
        .describe_stack_resource()
        .stack_name(name)
        .logical_resource_id(KEY_LOGICAL_ID)
        .send()
        .await
        .ok()?
        .stack_resource_detail()?
        .physical_resource_id()
        .map(str::to_owned)
}

/// `destroy --json` of a test stack whose address never held funds, so the balance check
/// is skipped out loud; asserts success.
pub fn destroy_unfunded(stack: &str) -> serde_json::Value {
    kms_eth_command(&["destroy", "--stack-name", stack])
        .args(["--skip-balance-check", "--yes", "--json"])
        .json()
}
