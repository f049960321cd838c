//! `cargo xtask destroy`: delete an account's stack, after showing what happens to the key,
//! and report what really happened to it.

use anyhow::{bail, Context, Result};
use kms_eth_provisioner::{
    delete_account, describe_account, key_info, validate_stack_name, RemovalPolicy,
};
use kms_eth_signer::{Address, U256};
use serde_json::json;
use xtask::{rpc, UsageError};

use crate::flags::DestroyArgs;
use crate::key::describe_state;
use crate::ui::{self, Aws};

pub fn run(args: DestroyArgs) -> Result<()> {
    validate_stack_name(&args.stack_name).map_err(|err| UsageError(err.to_string()))?;
    ui::block_on(async {
        let aws = Aws::connect(&args.target).await?;
        let cloudformation = aws.cloudformation();
        let kms = aws.kms();
        let stack = describe_account(&cloudformation, &args.stack_name)
            .await
            .map_err(ui::classify)?;
        let key = key_info(&kms, &stack.key_id).await.map_err(ui::classify)?;
        let address = key
            .address
            .map_or("(unknown: the key is not enabled)".to_owned(), |a| {
                a.to_string()
            });

        let plan =
            match stack.removal_policy {
                RemovalPolicy::Destroy => format!(
                "Deleting stack {} schedules KMS key {} ({}) for deletion with a {}-day window: \
                 address {address} becomes unusable, and any funds there are lost once the key is \
                 deleted (until then `cargo xtask key cancel-deletion {}` undoes it).",
                stack.stack_name,
                stack.key_id,
                stack.alias_name,
                stack.pending_window_days.map_or("pending".to_owned(), |d| d.to_string()),
                stack.key_id,
            ),
                RemovalPolicy::Retain => format!(
                "Deleting stack {} keeps KMS key {} (removal policy RETAIN): address {address} \
                 stays usable; only the alias {} and the signer role are removed.",
                stack.stack_name, stack.key_id, stack.alias_name
            ),
            };
        eprintln!("[kms-eth] {plan}");
        if stack.removal_policy == RemovalPolicy::Destroy && key.address.is_none() && !args.force {
            bail!(
                "the address of key {} cannot be read (state {}), so what its deletion gives up \
                 cannot be shown or its balance checked; pass --force to destroy anyway",
                stack.key_id,
                key.state.as_str()
            );
        }
        if let (RemovalPolicy::Destroy, Some(url), Some(address)) =
            (stack.removal_policy, &args.rpc_url, key.address)
        {
            check_balance(url, address, args.force)?;
        }
        ui::confirm("Delete the stack?", args.yes)?;

        delete_account(
            &cloudformation,
            &stack,
            &aws.deploy_options(),
            &mut ui::show_progress,
        )
        .await
        .map_err(ui::classify)?;
        // Report what KMS says happened, not what the template promised.
        let after = key_info(&kms, &stack.key_id).await.map_err(ui::classify)?;
        if args.json {
            out!(
                "{:#}",
                json!({
                    "stack_name": stack.stack_name,
                    "deleted": true,
                    "removal_policy": stack.removal_policy.as_str(),
                    "key_id": after.key_id,
                    "key_state": after.state.as_str(),
                    "deletion_date": after.deletion_date,
                    "address": key.address.map(|a| a.to_string()),
                })
            );
        } else {
            out!("stack {} deleted", stack.stack_name);
            out!("key {}: {}", after.key_id, describe_state(&after));
        }
        Ok(())
    })
}

/// Refuses to destroy a key whose address holds a balance, unless forced.
fn check_balance(url: &str, address: Address, force: bool) -> Result<()> {
    let balance = rpc::parse_u256(
        &rpc::rpc(
            url,
            "eth_getBalance",
            json!([address.to_string(), "latest"]),
        )
        .with_context(|| format!("checking the balance of {address} at {url}"))?,
    )?;
    if balance > U256::ZERO {
        if force {
            eprintln!(
                "[kms-eth] address {address} holds {balance} wei; destroying anyway (--force)"
            );
        } else {
            bail!(
                "address {address} holds {balance} wei; refusing to schedule its key for deletion. \
                 Move the funds first, or pass --force to destroy anyway"
            );
        }
    }
    Ok(())
}
