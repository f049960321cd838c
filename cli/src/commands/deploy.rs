//! `kms-eth deploy`: create or update one account's stack and report its address.

use std::fmt;

use anyhow::Result;
use kms_eth_core::UsageError;
use kms_eth_provisioner::{
    current_inputs, deploy, describe_account, guarded_changes, key_info, needs_default_principals,
    resolve, AccountRequest, DeployAction, ProvisionError, RemovalPolicy,
};
use kms_eth_signer::KmsSigner;
use serde::Serialize;

use crate::flags::DeployArgs;
use crate::output::Report;
use crate::session::Session;
use crate::{msg, ui};

/// What deploy did and the account it left.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    /// `created`, `updated` or `unchanged`.
    pub action: &'static str,
    pub stack_name: String,
    pub stack_id: String,
    pub key_id: String,
    pub key_arn: String,
    pub alias: String,
    pub signer_role_arn: String,
    /// Who may assume the signer role, and so sign.
    pub signer_principals: Vec<String>,
    pub removal_policy: &'static str,
    pub pending_window_days: Option<u8>,
    pub address: String,
}

impl fmt::Display for DeployReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack           {}", self.stack_id)?;
        writeln!(f, "key id          {}", self.key_id)?;
        writeln!(f, "alias           {}", self.alias)?;
        writeln!(f, "signer role     {}", self.signer_role_arn)?;
        writeln!(f, "assumed by      {}", self.signer_principals.join(", "))?;
        writeln!(f, "removal policy  {}", self.removal_policy)?;
        write!(f, "address         {}", self.address)
    }
}

impl Report for DeployReport {}

impl DeployArgs {
    /// The account as these flags ask for it (what is left out is kept or defaulted once
    /// the stack is known), validated before anything is started or called.
    pub fn spec(&self) -> Result<AccountRequest> {
        let request = AccountRequest {
            stack_name: self.stack_name.clone(),
            alias: self.alias.clone(),
            removal_policy: self.removal_policy,
            pending_window_days: self.pending_window_days,
            signer_principals: self.signer_principals.clone(),
            tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
        };
        request
            .validate()
            .map_err(|err| UsageError(err.to_string()))?;
        Ok(request)
    }

    pub async fn run(self, session: &Session) -> Result<DeployReport> {
        let request = self.spec()?;
        msg::note(format!(
            "deploying stack {} to {}",
            request.stack_name,
            session.target.describe()
        ));
        let cloudformation = &session.cloudformation;
        // A redeploy keeps every value not given; a new stack's signer role trusts the
        // identity running the deploy unless told otherwise.
        // An operation still running on the stack (an interrupted deploy) is waited for
        // first: only then are its inputs the ones to keep.
        let current = current_inputs(
            cloudformation,
            &request.stack_name,
            &session.deploy_options(),
            &mut ui::show_progress,
        )
        .await?;
        let default_principals = if needs_default_principals(&request, current.as_ref()) {
            vec![session.caller_principal().await?]
        } else {
            Vec::new()
        };
        let spec = resolve(&request, current.as_ref(), &default_principals);
        spec.validate().map_err(|err| UsageError(err.to_string()))?;
        let changes = guarded_changes(current.as_ref(), &spec);
        if !changes.is_empty() {
            msg::note(format!(
                "this deploy changes who may sign with stack {} or what happens to its key:",
                spec.stack_name
            ));
            for change in &changes {
                msg::detail(change);
            }
            let what: Vec<&str> = changes.iter().map(|c| c.what).collect();
            ui::confirm(
                format!(
                    "Change the {} of stack {}?",
                    what.join(" and the "),
                    spec.stack_name
                ),
                self.yes,
            )
            .await?;
        }
        let mut options = session.deploy_options();
        let mut outcome = deploy(cloudformation, &spec, &options, &mut ui::show_progress).await;
        if let (Err(ProvisionError::KeyReplacement { stack_name, action }), true) =
            (&outcome, self.allow_key_replacement)
        {
            // Even when allowed, the user sees which key and address are given up.
            let current = describe_account(cloudformation, stack_name).await?;
            let key = key_info(&session.kms, &current.key_id).await?;
            ui::confirm(
                format!(
                    "This deploy will {action} KMS key {} (address {}), and the account gets a new key \
                     and a new address. With removal policy {} the old key is {}. Continue?",
                    key.key_id,
                    key.address.map_or("unknown".to_owned(), |a| a.to_string()),
                    current.removal_policy,
                    match current.removal_policy {
                        RemovalPolicy::Retain => "kept",
                        RemovalPolicy::Destroy => "scheduled for deletion",
                    }
                ),
                self.yes,
            )
            .await?;
            options.allow_key_replacement = true;
            outcome = deploy(cloudformation, &spec, &options, &mut ui::show_progress).await;
        }
        if let Err(ProvisionError::RollbackComplete { stack_name }) = &outcome {
            ui::confirm(
                format!(
                    "Stack {stack_name} is in ROLLBACK_COMPLETE after an earlier failed create. \
                     Delete it and create it again?"
                ),
                self.yes,
            )
            .await?;
            options.recreate_failed = true;
            outcome = deploy(cloudformation, &spec, &options, &mut ui::show_progress).await;
        }
        let (action, stack) = outcome?;
        // The address comes from the key itself, through the same code that signs.
        let signer = KmsSigner::new(session.kms.clone(), stack.key_arn.clone()).await?;
        let action = match action {
            DeployAction::Created => "created",
            DeployAction::Updated => "updated",
            DeployAction::Unchanged => {
                msg::note(format!(
                    "stack {} is up to date: nothing to do",
                    stack.stack_name
                ));
                "unchanged"
            }
        };
        Ok(DeployReport {
            action,
            stack_name: stack.stack_name,
            stack_id: stack.stack_id,
            key_id: stack.key_id,
            key_arn: stack.key_arn,
            alias: stack.alias_name,
            signer_role_arn: stack.signer_role_arn,
            signer_principals: stack.signer_principals,
            removal_policy: stack.removal_policy.as_str(),
            pending_window_days: stack.pending_window_days,
            address: signer.address().to_string(),
        })
    }
}
