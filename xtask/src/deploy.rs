//! `cargo xtask deploy`: create or update one account's stack and print its address.

use anyhow::Result;
use kms_eth_provisioner::{deploy, AccountSpec, DeployAction, ProvisionError};
use kms_eth_signer::KmsSigner;
use serde_json::json;
use xtask::UsageError;

use crate::flags::DeployArgs;
use crate::ui::{self, Aws};

pub fn run(args: DeployArgs) -> Result<()> {
    let spec = AccountSpec {
        stack_name: args.stack_name.clone(),
        alias: args.alias.clone(),
        removal_policy: args.removal_policy,
        pending_window_days: args.pending_window_days,
        signer_principal: args.signer_principal.clone(),
        tags: args.tags.clone(),
    };
    // Every input is checked before anything is started or called.
    spec.validate().map_err(|err| UsageError(err.to_string()))?;
    ui::block_on(async {
        let aws = Aws::connect(&args.target).await?;
        eprintln!(
            "[kms-eth] deploying stack {} to {}",
            spec.stack_name,
            aws.target.describe()
        );
        let cloudformation = aws.cloudformation();
        let mut options = aws.deploy_options();
        let mut outcome = deploy(&cloudformation, &spec, &options, &mut ui::show_progress).await;
        if let (Err(ProvisionError::KeyReplacement { stack_name, action }), true) =
            (&outcome, args.allow_key_replacement)
        {
            // Even when allowed, the user sees which key and address are given up.
            let current = kms_eth_provisioner::describe_account(&cloudformation, stack_name)
                .await
                .map_err(ui::classify)?;
            let key = kms_eth_provisioner::key_info(&aws.kms(), &current.key_id)
                .await
                .map_err(ui::classify)?;
            ui::confirm(
                &format!(
                    "This deploy will {action} KMS key {} (address {}), and the account gets a new key \
                     and a new address. With removal policy {} the old key is {}. Continue?",
                    key.key_id,
                    key.address.map_or("unknown".to_owned(), |a| a.to_string()),
                    current.removal_policy,
                    match current.removal_policy {
                        kms_eth_provisioner::RemovalPolicy::Retain => "kept",
                        kms_eth_provisioner::RemovalPolicy::Destroy => "scheduled for deletion",
                    }
                ),
                args.yes,
            )?;
            options.allow_key_replacement = true;
            outcome = deploy(&cloudformation, &spec, &options, &mut ui::show_progress).await;
        }
        if let Err(ProvisionError::RollbackComplete { stack_name }) = &outcome {
            ui::confirm(
                &format!(
                    "Stack {stack_name} is in ROLLBACK_COMPLETE after an earlier failed create. \
                     Delete it and create it again?"
                ),
                args.yes,
            )?;
            options.recreate_failed = true;
            outcome = deploy(&cloudformation, &spec, &options, &mut ui::show_progress).await;
        }
        let (action, stack) = outcome.map_err(ui::classify)?;
        // The address comes from the key itself, through the same code that signs.
        let signer = KmsSigner::new(aws.kms(), stack.key_arn.clone()).await?;
        let action = match action {
            DeployAction::Created => "created",
            DeployAction::Updated => "updated",
            DeployAction::Unchanged => "unchanged",
        };
        if args.json {
            out!(
                "{:#}",
                json!({
                    "action": action,
                    "stack_name": stack.stack_name,
                    "stack_id": stack.stack_id,
                    "key_id": stack.key_id,
                    "key_arn": stack.key_arn,
                    "alias": stack.alias_name,
                    "signer_role_arn": stack.signer_role_arn,
                    "removal_policy": stack.removal_policy.as_str(),
                    "pending_window_days": stack.pending_window_days,
                    "address": signer.address().to_string(),
                })
            );
        } else {
            if action == "unchanged" {
                eprintln!(
                    "[kms-eth] stack {} is up to date: nothing to do",
                    stack.stack_name
                );
            }
            out!("stack           {}", stack.stack_id);
            out!("key id          {}", stack.key_id);
            out!("alias           {}", stack.alias_name);
            out!("signer role     {}", stack.signer_role_arn);
            out!("removal policy  {}", stack.removal_policy);
            out!("address         {}", signer.address());
        }
        Ok(())
    })
}
