//! `kms-eth destroy`: delete an account's stack, after showing what happens to the key,
//! and report what really happened to it.

use std::fmt;

use anyhow::{bail, Result};
use kms_eth_core::UsageError;
use kms_eth_provisioner::{
    delete_account, describe_account, key_info, validate_stack_name, RemovalPolicy,
};
use serde::Serialize;

use crate::commands::funds::FundsCheck;
use crate::commands::key::describe_state;
use crate::flags::DestroyArgs;
use crate::output::Report;
use crate::session::Session;
use crate::stack_lock;
use crate::{msg, ui};

/// The stack that was deleted and what KMS says became of its key.
#[derive(Debug, Serialize)]
pub struct DestroyReport {
    pub stack_name: String,
    pub deleted: bool,
    pub removal_policy: &'static str,
    pub key_id: String,
    pub key_state: String,
    pub deletion_date: Option<String>,
    pub address: Option<String>,
    /// What was found at the address before its key was scheduled for deletion (DESTROY
    /// only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_check: Option<FundsCheck>,
    /// The key's state in words, with the way back when it is pending deletion.
    #[serde(skip)]
    pub state_text: String,
}

impl fmt::Display for DestroyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack {} deleted", self.stack_name)?;
        if let Some(check) = &self.balance_check {
            writeln!(f, "{check}")?;
        }
        write!(f, "key {}: {}", self.key_id, self.state_text)
    }
}

impl Report for DestroyReport {}

impl DestroyArgs {
    pub async fn run(self, session: &Session) -> Result<DestroyReport> {
        let (account, region) = session.account_and_region().await?;
        let _lock = stack_lock::hold(&account, &region, &self.stack_name, "destroy")?;
        let stack = describe_account(&session.cloudformation, &self.stack_name).await?;
        let key = key_info(&session.kms, &stack.key_id).await?;
        let address = key
            .address
            .map_or("(unknown: the key is not enabled)".to_owned(), |a| {
                a.to_string()
            });
        let plan = match stack.removal_policy {
            RemovalPolicy::Destroy => format!(
                "Deleting stack {} schedules KMS key {} ({}) for deletion with a {}-day window: \
                 address {address} becomes unusable, and any funds there are lost once the key is \
                 deleted (until then `kms-eth key cancel-deletion {}` undoes it).",
                stack.stack_name,
                stack.key_id,
                stack.alias_name,
                stack
                    .pending_window_days
                    .map_or("pending".to_owned(), |d| d.to_string()),
                stack.key_id,
            ),
            RemovalPolicy::Retain => format!(
                "Deleting stack {} keeps KMS key {} (removal policy RETAIN): address {address} \
                 stays usable; only the alias {} and the signer role are removed.",
                stack.stack_name, stack.key_id, stack.alias_name
            ),
        };
        msg::note(plan);
        let balance_check = match (stack.removal_policy, key.address) {
            (RemovalPolicy::Retain, _) => None,
            (RemovalPolicy::Destroy, address) => {
                // Where the funds were looked for must have been said before anything is
                // weighed up, even for a key whose address cannot be read.
                self.funds.nodes(DESTROYING)?;
                match address {
                    Some(address) => Some(self.funds.run(address, DESTROYING).await?),
                    None if self.funds.force => {
                        msg::warn(format!(
                            "the address of key {} cannot be read, so no balance was checked; \
                             destroying anyway (--force)",
                            stack.key_id
                        ));
                        None
                    }
                    None => bail!(
                        "the address of key {} cannot be read (state {}), so what its deletion \
                         gives up cannot be shown or its balance checked; pass --force to \
                         destroy anyway",
                        stack.key_id,
                        key.state.as_str()
                    ),
                }
            }
        };
        ui::confirm("Delete the stack?".into(), self.yes).await?;

        delete_account(
            &session.cloudformation,
            &stack,
            key.state == kms_eth_signer::KeyState::PendingDeletion,
            &session.deploy_options(),
            &mut ui::show_progress,
        )
        .await?;
        // Report what KMS says happened, not what the template promised.
        let after = key_info(&session.kms, &stack.key_id).await?;
        Ok(DestroyReport {
            stack_name: stack.stack_name,
            deleted: true,
            removal_policy: stack.removal_policy.as_str(),
            state_text: describe_state(&after),
            key_id: after.key_id,
            key_state: after.state.as_str().to_owned(),
            deletion_date: after.deletion_date,
            address: key.address.map(|a| a.to_string()),
            balance_check,
        })
    }
}

/// The action named in the funds check's messages.
const DESTROYING: &str = "destroy of a stack with removal policy DESTROY";

/// Checks the flags before any call. Whether the balance check is needed depends on the
/// stack's removal policy (a RETAIN stack keeps its key), which only the stack can say, so
/// that is checked once the stack is read, before anything is changed.
pub fn check(args: &DestroyArgs) -> Result<()> {
    validate_stack_name(&args.stack_name).map_err(|err| UsageError(err.to_string()))?;
    // A mistyped node URL is found before the stack is looked at, not after.
    args.funds.check_urls()
}
