//! `kms-eth key list|import|cancel-deletion|schedule-deletion`: the key's life beside its
//! stack (`import` is `commands/import.rs`).

use std::fmt;

use anyhow::Result;
use kms_eth_core::UsageError;
use kms_eth_provisioner::{cancel_deletion, key_info, list_accounts, schedule_deletion, KeyInfo};
use kms_eth_signer::KeyState;
use serde::Serialize;

use crate::commands::funds::FundsCheck;
use crate::flags::KeyCmd;
use crate::output::Report;
use crate::session::Session;
use crate::stack_lock;
use crate::{msg, ui};

/// One kms-eth key.
#[derive(Debug, Serialize)]
pub struct KeyReport {
    pub key_id: String,
    pub key_arn: String,
    pub key_state: String,
    pub deletion_date: Option<String>,
    pub alias: Option<String>,
    pub stack_name: Option<String>,
    pub address: Option<String>,
    /// What was found at the address before the key was scheduled for deletion
    /// (`schedule-deletion` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_check: Option<FundsCheck>,
    #[serde(skip)]
    state_text: String,
}

impl From<&KeyInfo> for KeyReport {
    fn from(key: &KeyInfo) -> Self {
        KeyReport {
            key_id: key.key_id.clone(),
            key_arn: key.arn.clone(),
            key_state: key.state.as_str().to_owned(),
            deletion_date: key.deletion_date.clone(),
            alias: key.alias.clone(),
            stack_name: key.stack.clone(),
            address: key.address.map(|a| a.to_string()),
            balance_check: None,
            state_text: describe_state(key),
        }
    }
}

impl fmt::Display for KeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}: {}", self.key_id, self.state_text)?;
        if let Some(address) = &self.address {
            write!(f, "\naddress {address}")?;
        }
        if let Some(check) = &self.balance_check {
            write!(f, "\n{check}")?;
        }
        Ok(())
    }
}

impl Report for KeyReport {}

/// Every kms-eth key of the account and region (`key list`).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct KeyListReport {
    pub keys: Vec<KeyReport>,
    #[serde(skip)]
    pub target: String,
}

impl fmt::Display for KeyListReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keys.is_empty() {
            return write!(f, "no kms-eth keys in {}", self.target);
        }
        for key in &self.keys {
            writeln!(
                f,
                "{}  {:<16} {:<44} {:<24} {}",
                key.key_id,
                key.key_state,
                key.address.as_deref().unwrap_or("-"),
                key.alias.as_deref().unwrap_or("-"),
                key.stack_name.as_deref().unwrap_or("-"),
            )?;
        }
        Ok(())
    }
}

impl Report for KeyListReport {}

/// What a `key` subcommand reports.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum KeyOutput {
    List(KeyListReport),
    One(KeyReport),
    Imported(crate::commands::import::ImportReport),
}

impl fmt::Display for KeyOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOutput::List(list) => list.fmt(f),
            KeyOutput::One(key) => key.fmt(f),
            KeyOutput::Imported(key) => key.fmt(f),
        }
    }
}

impl Report for KeyOutput {}

impl KeyCmd {
    pub async fn run(self, session: &Session) -> Result<KeyOutput> {
        let kms = &session.kms;
        match self {
            KeyCmd::Import(args) => Ok(KeyOutput::Imported(args.run(session).await?)),
            KeyCmd::Replicate { key, regions } => {
                let before = key_info(kms, &key).await?;
                require_kms_eth_key(&before, "replicate it")?;
                for region in &regions {
                    let replica = crate::commands::regions::client_in(session, region);
                    let arn =
                        kms_eth_provisioner::replicate_key(kms, &replica, &before.key_id, region)
                            .await?;
                    msg::note(format!("replicated to {region}: {arn}"));
                }
                Ok(KeyOutput::One(KeyReport::from(
                    &key_info(kms, &before.key_id).await?,
                )))
            }
            KeyCmd::List => {
                let keys = list_accounts(kms).await?;
                Ok(KeyOutput::List(KeyListReport {
                    keys: keys.iter().map(KeyReport::from).collect(),
                    target: session.target.describe(),
                }))
            }
            KeyCmd::CancelDeletion { key, enable } => {
                let before = key_info(kms, &key).await?;
                require_kms_eth_key(&before, "cancel its deletion")?;
                let info = cancel_deletion(kms, &before, enable).await?;
                if !enable {
                    msg::note(format!(
                        "key {} stays {} (KMS leaves a key so after a cancelled deletion): its \
                         address cannot sign until it is enabled, with `aws kms enable-key \
                         --key-id {}` (next time, `key cancel-deletion --enable` does both)",
                        info.key_id,
                        info.state.as_str(),
                        info.key_id
                    ));
                }
                Ok(KeyOutput::One(KeyReport::from(&info)))
            }
            KeyCmd::ScheduleDeletion {
                key,
                days,
                funds,
                yes,
            } => {
                let before = key_info(kms, &key).await?;
                // Only kms-eth keys, and only when the user can be shown the address at stake.
                require_kms_eth_key(&before, "schedule its deletion")?;
                // Its stack (by the key's account tag) is not changed by another command meanwhile.
                let _lock = match &before.stack {
                    Some(stack) => {
                        let (account, region) = session.account_and_region().await?;
                        Some(stack_lock::hold(
                            &account,
                            &region,
                            stack,
                            "key schedule-deletion",
                        )?)
                    }
                    None => None,
                };
                let Some(address) = before.address else {
                    return Err(UsageError(format!(
                        "the address of key {} cannot be read (state {}); refusing to schedule a deletion the \
                         address of which cannot be shown",
                        before.key_id,
                        before.state.as_str()
                    ))
                    .into());
                };
                let check = funds.run(address, SCHEDULING).await?;
                ui::confirm(
                    format!(
                        "Schedule KMS key {} (address {address}) for deletion in {days} days? After that \
                         the address can never sign again, and funds there are lost.",
                        before.key_id,
                    ),
                    yes,
                )
                .await?;
                let info = schedule_deletion(kms, &before.key_id, days).await?;
                Ok(KeyOutput::One(KeyReport {
                    balance_check: Some(check),
                    ..KeyReport::from(&info)
                }))
            }
        }
    }

    /// Checks the flags before any call (or LocalStack is started).
    pub fn check(&self) -> Result<()> {
        match self {
            KeyCmd::ScheduleDeletion { funds, .. } => drop(funds.nodes(SCHEDULING)?),
            KeyCmd::Import(args) => drop(args.check()?),
            _ => {}
        }
        Ok(())
    }
}

/// The action named in the funds check's messages.
const SCHEDULING: &str = "key schedule-deletion";

/// Refuses a key that kms-eth did not make (it has no account tag): its life cycle is its
/// owner's, not this tool's.
fn require_kms_eth_key(key: &KeyInfo, action: &str) -> Result<(), UsageError> {
    if key.stack.is_none() {
        return Err(UsageError(format!(
            "key {} is not a kms-eth key (it has no {} tag); refusing to {action}",
            key.key_id,
            kms_eth_provisioner::ACCOUNT_TAG
        )));
    }
    Ok(())
}

/// The key's state in words, with the deletion date and the way back when pending deletion.
pub fn describe_state(key: &KeyInfo) -> String {
    match (&key.state, &key.deletion_date) {
        (KeyState::PendingDeletion, Some(date)) => format!(
            "PendingDeletion, to be deleted on {date} (cancel with `kms-eth key cancel-deletion {}`)",
            key.key_id
        ),
        (state, _) => state.as_str().to_owned(),
    }
}
