//! `cargo xtask test --cleanup`: finds the stacks and keys that test runs left on a target,
//! by their test tag, and removes them (stacks deleted, keys scheduled for deletion with the
//! minimum 7-day window), after the user confirmed where it will act.

use anyhow::{Context, Result};
use aws_sdk_kms::types::{KeyState, Tag};
use clap::Parser;
use kms_eth::flags::TargetArgs;
use kms_eth::{msg, ui, Session};
use kms_eth_harness::TEST_TAG;

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
async fn main() -> Result<()> {
    let args = Args::parse();
    let session = Session::connect(&args.target).await?;
    // Test keys are keys like any other: the user sees where the cleanup will act first.
    ui::confirm(
        format!(
            "Delete every stack and schedule for deletion (7 days) every key tagged {TEST_TAG} in {}?",
            session.target.describe()
        ),
        args.yes,
    )
    .await?;
    msg::note(format!(
        "looking for test leftovers (tag {TEST_TAG}) in {}",
        session.target.describe()
    ));
    let stacks = cleanup_stacks(&session.cloudformation).await?;
    let keys = cleanup_keys(&session.kms).await?;
    msg::note(format!(
        "deleted {stacks} stack(s), scheduled {keys} key(s) for deletion"
    ));
    Ok(())
}

async fn cleanup_stacks(client: &aws_sdk_cloudformation::Client) -> Result<usize> {
    let mut stacks = client.describe_stacks().into_paginator().items().send();
    let mut deleted = 0;
    while let Some(stack) = stacks.next().await {
        let stack = stack.context("listing CloudFormation stacks")?;
        let is_test = stack.tags().iter().any(|tag| tag.key() == Some(TEST_TAG));
        let name = stack.stack_name().unwrap_or_default().to_owned();
        if is_test {
            msg::note(format!("deleting stack {name}"));
            client
                .delete_stack()
                .stack_name(&name)
                .send()
                .await
                .with_context(|| format!("deleting stack {name}"))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

async fn cleanup_keys(client: &aws_sdk_kms::Client) -> Result<usize> {
    let mut keys = client.list_keys().into_paginator().items().send();
    let mut scheduled = 0;
    while let Some(key) = keys.next().await {
        let key = key.context("listing KMS keys")?;
        let Some(key_id) = key.key_id() else { continue };
        // Keys of other owners (AWS managed keys, keys in other states) may refuse
        // ListResourceTags; those are not ours to clean up.
        let Ok(tags) = client.list_resource_tags().key_id(key_id).send().await else {
            continue;
        };
        if !tags
            .tags()
            .iter()
            .any(|tag: &Tag| tag.tag_key() == TEST_TAG)
        {
            continue;
        }
        let metadata = client.describe_key().key_id(key_id).send().await?;
        let state = metadata.key_metadata().and_then(|m| m.key_state().cloned());
        if state == Some(KeyState::PendingDeletion) {
            continue;
        }
        msg::note(format!(
            "scheduling test key {key_id} for deletion in 7 days"
        ));
        client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(7)
            .send()
            .await
            .with_context(|| format!("scheduling deletion of key {key_id}"))?;
        scheduled += 1;
    }
    Ok(scheduled)
}
