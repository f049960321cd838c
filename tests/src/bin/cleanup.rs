//! `cargo xtask test --cleanup`: finds the stacks and keys that test and benchmark runs left
//! on a target, lists every one (stack, key, address) and, once the user confirmed, removes
//! them (stacks deleted, keys scheduled for deletion with the minimum 7-day window).
//!
//! A tag can be put on anything by anyone, so a resource is a leftover only when it carries
//! the test tag with a run id as its value AND a test's name for that same run
//! (`kms_eth_harness::test_names`): a real account deployed with the test tag is never
//! touched.

use std::process::ExitCode;

use anyhow::{Context, Result};
use aws_sdk_kms::types::KeyState;
use clap::Parser;
use kms_eth::flags::TargetArgs;
use kms_eth::{msg, ui, Session, UsageError};
use kms_eth_harness::{test_names, TEST_TAG};
use kms_eth_provisioner::{key_info, ACCOUNT_TAG};

/// Remove what test runs left behind on the target.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Confirm without asking (needed without a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            msg::error(&err);
            // A confirmation that could not be asked is bad usage, as in the product.
            if err.chain().any(|cause| cause.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A stack to delete.
#[derive(Debug)]
struct Stack {
    name: String,
    run: String,
    key_id: Option<String>,
}

/// A key to schedule for deletion.
#[derive(Debug)]
struct Key {
    key_id: String,
    why: String,
    address: Option<String>,
}

async fn run(args: Args) -> Result<()> {
    let session = Session::connect(&args.target).await?;
    let target = session.target.describe();
    msg::note(format!(
        "looking for test leftovers (tag {TEST_TAG} and a test's name of the same run) in {target}"
    ));
    let stacks = find_stacks(&session.cloudformation).await?;
    let keys = find_keys(&session.kms, &stacks).await?;
    if stacks.is_empty() && keys.is_empty() {
        msg::note("nothing to clean up");
        return Ok(());
    }
    // Everything that would be removed is shown before the question, never after.
    msg::note(format!(
        "would delete {} stack(s) and schedule {} key(s) for deletion in 7 days:",
        stacks.len(),
        keys.len()
    ));
    for stack in &stacks {
        msg::detail(format!(
            "stack {}  (run {}, key {})",
            stack.name,
            stack.run,
            stack.key_id.as_deref().unwrap_or("-")
        ));
    }
    for key in &keys {
        msg::detail(format!(
            "key {}  address {}  ({})",
            key.key_id,
            key.address.as_deref().unwrap_or("(not readable)"),
            key.why
        ));
    }
    ui::confirm(
        format!(
            "Delete these {} stack(s) and schedule these {} key(s) for deletion in {target}?",
            stacks.len(),
            keys.len()
        ),
        args.yes,
    )
    .await?;
    for stack in &stacks {
        msg::note(format!("deleting stack {}", stack.name));
        session
            .cloudformation
            .delete_stack()
            .stack_name(&stack.name)
            .send()
            .await
            .with_context(|| format!("deleting stack {}", stack.name))?;
    }
    for key in &keys {
        msg::note(format!(
            "scheduling test key {} for deletion in 7 days",
            key.key_id
        ));
        let scheduled = session
            .kms
            .schedule_key_deletion()
            .key_id(&key.key_id)
            .pending_window_in_days(7)
            .send()
            .await;
        if let Err(err) = scheduled {
            // The deletion of a DESTROY stack schedules its key too, and may get there
            // first: that key is where it should be.
            let now = key_info(&session.kms, &key.key_id).await.map(|k| k.state);
            if now.ok() != Some(KeyState::PendingDeletion) {
                return Err(err)
                    .with_context(|| format!("scheduling deletion of key {}", key.key_id));
            }
        }
    }
    msg::note(format!(
        "deleted {} stack(s), scheduled {} key(s) for deletion",
        stacks.len(),
        keys.len()
    ));
    Ok(())
}

/// The run whose leftover a resource is, if it is one: the test tag's value, when that is
/// a run id and `named` (the resource's name or description) is a name of that run.
fn leftover_of(test_tag: Option<&str>, named: impl Fn(&str) -> bool) -> Option<String> {
    test_tag
        .filter(|run| test_names::is_run_id(run) && named(run))
        .map(str::to_owned)
}

/// The stacks that are test leftovers, with their keys.
async fn find_stacks(client: &aws_sdk_cloudformation::Client) -> Result<Vec<Stack>> {
    let mut pages = client.describe_stacks().into_paginator().items().send();
    let mut found = Vec::new();
    while let Some(stack) = pages.next().await {
        let stack = stack.context("listing CloudFormation stacks")?;
        let name = stack.stack_name().unwrap_or_default().to_owned();
        if stack
            .stack_status()
            .is_some_and(|s| s.as_str() == "DELETE_COMPLETE")
        {
            continue;
        }
        let tag = stack
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(TEST_TAG))
            .and_then(|tag| tag.value());
        let Some(run) = leftover_of(tag, |run| test_names::is_stack_of(&name, run)) else {
            continue;
        };
        let key_id = kms_eth_e2e::stack_key_id(client, &name).await;
        found.push(Stack { name, run, key_id });
    }
    Ok(found)
}

/// The keys that are test leftovers and not yet pending deletion: keys the tests made
/// directly (test tag and a test key's description of the same run), and the keys of the
/// leftover stacks (a stack with removal policy RETAIN keeps its key when deleted).
async fn find_keys(client: &aws_sdk_kms::Client, stacks: &[Stack]) -> Result<Vec<Key>> {
    let mut found: Vec<Key> = Vec::new();
    for stack in stacks {
        if let Some(key_id) = &stack.key_id {
            found.push(Key {
                key_id: key_id.clone(),
                why: format!("key of stack {}", stack.name),
                address: None,
            });
        }
    }
    let mut pages = client.list_keys().into_paginator().items().send();
    while let Some(key) = pages.next().await {
        let key = key.context("listing KMS keys")?;
        let Some(key_id) = key.key_id() else { continue };
        // Keys of other owners (AWS managed keys, keys in other states) may refuse
        // ListResourceTags; those are not ours to clean up.
        let Ok(tags) = client.list_resource_tags().key_id(key_id).send().await else {
            continue;
        };
        let tag = |name: &str| {
            tags.tags()
                .iter()
                .find(|t| t.tag_key() == name)
                .map(|t| t.tag_value().to_owned())
        };
        let Some(test_tag) = tag(TEST_TAG) else {
            continue;
        };
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .with_context(|| format!("describing key {key_id}"))?;
        let description = described
            .key_metadata()
            .and_then(|m| m.description())
            .unwrap_or_default();
        let account = tag(ACCOUNT_TAG);
        let run = leftover_of(Some(&test_tag), |run| {
            test_names::is_key_description_of(description, run)
                || account
                    .as_deref()
                    .is_some_and(|stack| test_names::is_stack_of(stack, run))
        });
        if let Some(run) = run {
            if !found.iter().any(|k| k.key_id == key_id) {
                found.push(Key {
                    key_id: key_id.to_owned(),
                    why: format!("test key of run {run}"),
                    address: None,
                });
            }
        }
    }
    // What each key is (its address) is read once, and keys already on their way out are
    // not scheduled again.
    let mut keys = Vec::new();
    for mut key in found {
        let info = key_info(client, &key.key_id)
            .await
            .with_context(|| format!("reading key {}", key.key_id))?;
        if info.state == KeyState::PendingDeletion {
            continue;
        }
        key.address = info.address.map(|a| a.to_string());
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_tag_without_a_test_name_of_its_run_is_not_a_leftover() {
        let run = "t1764236591-4242";
        let test_stack = test_names::stack(run, "deploy");
        // The report that opened this: a real account tagged like a test.
        assert_eq!(
            leftover_of(Some("x"), |r| test_names::is_stack_of("treasury", r)),
            None
        );
        assert_eq!(
            leftover_of(Some(run), |r| test_names::is_stack_of("treasury", r)),
            None
        );
        // A test's name under another run's tag value.
        assert_eq!(
            leftover_of(Some("t1-2"), |r| test_names::is_stack_of(&test_stack, r)),
            None
        );
        assert_eq!(
            leftover_of(None, |r| test_names::is_stack_of(&test_stack, r)),
            None
        );
        assert_eq!(
            leftover_of(Some(run), |r| test_names::is_stack_of(&test_stack, r)).as_deref(),
            Some(run)
        );
    }
}
