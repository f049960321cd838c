//! `kms-eth destroy`: delete an account's stack, after showing what happens to the key,
//! and report what really happened to it.

use std::fmt;

use anyhow::{bail, Context, Result};
use kms_eth_core::UsageError;
use kms_eth_provisioner::{
    delete_account, describe_account, key_info, validate_stack_name, RemovalPolicy,
};
use kms_eth_signer::{Address, U256};
use serde::Serialize;
use serde_json::json;

use crate::commands::key::describe_state;
use crate::flags::DestroyArgs;
use crate::node::{parse_u256, Node};
use crate::output::Report;
use crate::session::Session;
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
    /// The key's state in words, with the way back when it is pending deletion.
    #[serde(skip)]
    pub state_text: String,
}

impl fmt::Display for DestroyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack {} deleted", self.stack_name)?;
        write!(f, "key {}: {}", self.key_id, self.state_text)
    }
}

impl Report for DestroyReport {}

impl DestroyArgs {
    pub async fn run(self, session: &Session) -> Result<DestroyReport> {
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
        if stack.removal_policy == RemovalPolicy::Destroy && key.address.is_none() && !self.force {
            bail!(
                "the address of key {} cannot be read (state {}), so what its deletion gives up \
                 cannot be shown or its balance checked; pass --force to destroy anyway",
                stack.key_id,
                key.state.as_str()
            );
        }
        if let (RemovalPolicy::Destroy, Some(url), Some(address)) =
            (stack.removal_policy, &self.rpc_url, key.address)
        {
            check_balance(&Node::new(url)?, address, self.force).await?;
        }
        ui::confirm("Delete the stack?".into(), self.yes).await?;

        delete_account(
            &session.cloudformation,
            &stack,
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
        })
    }
}

/// Refuses to destroy a key whose address holds a balance, unless forced.
async fn check_balance(node: &Node, address: Address, force: bool) -> Result<()> {
    let balance = parse_u256(
        &node
            .call("eth_getBalance", json!([address.to_string(), "latest"]))
            .await
            .with_context(|| format!("checking the balance of {address} at {}", node.shown()))?,
    )?;
    if balance > U256::ZERO {
        if force {
            msg::warn(format!(
                "address {address} holds {balance} wei; destroying anyway (--force)"
            ));
        } else {
            bail!(
                "address {address} holds {balance} wei; refusing to schedule its key for deletion. \
                 Move the funds first, or pass --force to destroy anyway"
            );
        }
    }
    Ok(())
}

/// Checks the flags before any call.
pub fn check(args: &DestroyArgs) -> Result<()> {
    validate_stack_name(&args.stack_name).map_err(|err| UsageError(err.to_string()))?;
    if let Some(url) = &args.rpc_url {
        // A mistyped node URL is found before the stack is looked at, not after.
        Node::new(url)?;
    }
    Ok(())
}
