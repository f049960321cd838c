//! `cargo xtask key list|cancel-deletion|schedule-deletion`: the key's life after its stack.

use anyhow::Result;
use kms_eth_provisioner::{cancel_deletion, key_info, list_accounts, schedule_deletion, KeyInfo};
use kms_eth_signer::KeyState;
use serde_json::{json, Value};
use xtask::UsageError;

use crate::flags::KeyCmd;
use crate::ui::{self, Aws};

pub fn run(command: KeyCmd) -> Result<()> {
    ui::block_on(async {
        match command {
            KeyCmd::List { json, target } => {
                let aws = Aws::connect(&target).await?;
                let keys = list_accounts(&aws.kms()).await.map_err(ui::classify)?;
                if json {
                    out!("{:#}", Value::Array(keys.iter().map(to_json).collect()));
                } else if keys.is_empty() {
                    out!("no kms-eth keys in {}", aws.target.describe());
                } else {
                    for key in &keys {
                        out!(
                            "{}  {:<16} {:<44} {:<24} {}",
                            key.key_id,
                            key.state.as_str(),
                            key.address.map_or("-".to_owned(), |a| a.to_string()),
                            key.alias.as_deref().unwrap_or("-"),
                            key.stack.as_deref().unwrap_or("-"),
                        );
                    }
                }
            }
            KeyCmd::CancelDeletion { key, json, target } => {
                let aws = Aws::connect(&target).await?;
                let info = cancel_deletion(&aws.kms(), &key)
                    .await
                    .map_err(ui::classify)?;
                print(&info, json);
            }
            KeyCmd::ScheduleDeletion {
                key,
                days,
                yes,
                json,
                target,
            } => {
                let aws = Aws::connect(&target).await?;
                let kms = aws.kms();
                let before = key_info(&kms, &key).await.map_err(ui::classify)?;
                // Only kms-eth keys, and only when the user can be shown the address at stake.
                if before.stack.is_none() {
                    return Err(UsageError(format!(
                        "key {} is not a kms-eth key (it has no {} tag); refusing to schedule its deletion",
                        before.key_id,
                        kms_eth_provisioner::ACCOUNT_TAG
                    ))
                    .into());
                }
                if before.address.is_none() {
                    return Err(UsageError(format!(
                        "the address of key {} cannot be read (state {}); refusing to schedule a deletion the \
                         address of which cannot be shown",
                        before.key_id,
                        before.state.as_str()
                    ))
                    .into());
                }
                ui::confirm(
                    &format!(
                        "Schedule KMS key {} (address {}) for deletion in {days} days? After that \
                         the address can never sign again, and funds there are lost.",
                        before.key_id,
                        before
                            .address
                            .map_or("unknown".to_owned(), |a| a.to_string())
                    ),
                    yes,
                )?;
                let info = schedule_deletion(&kms, &before.key_id, days)
                    .await
                    .map_err(ui::classify)?;
                print(&info, json);
            }
        }
        Ok(())
    })
}

/// The key's state in words, with the deletion date and the way back when pending deletion.
pub fn describe_state(key: &KeyInfo) -> String {
    match (&key.state, &key.deletion_date) {
        (KeyState::PendingDeletion, Some(date)) => format!(
            "PendingDeletion, to be deleted on {date} (cancel with `cargo xtask key cancel-deletion {}`)",
            key.key_id
        ),
        (state, _) => state.as_str().to_owned(),
    }
}

fn print(key: &KeyInfo, json: bool) {
    if json {
        out!("{:#}", to_json(key));
    } else {
        out!("key {}: {}", key.key_id, describe_state(key));
        if let Some(address) = key.address {
            out!("address {address}");
        }
    }
}

fn to_json(key: &KeyInfo) -> Value {
    json!({
        "key_id": key.key_id,
        "arn": key.arn,
        "state": key.state.as_str(),
        "deletion_date": key.deletion_date,
        "alias": key.alias,
        "stack": key.stack,
        "address": key.address.map(|a| a.to_string()),
    })
}
