//! The account stack's life: `deploy` (deciding what to do about the stack as it is, then
//! driving a change set and watching its events), `describe_account` (reading the outputs)
//! and `delete_account`.

use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{ChangeSetType, Stack, StackStatus};
use aws_sdk_cloudformation::Client;

use crate::account::{AccountSpec, RemovalPolicy};
use crate::call::{call, timed, On};
use crate::changeset;
use crate::error::{aws, ProvisionError};
use crate::events::{failed, seen_events, wait_for_stack, Progress};
use crate::function::{OUTPUT_FUNCTION_ARN, OUTPUT_FUNCTION_ROLE_ARN};
use crate::next_step::{next_step, NextStep};
use crate::redeploy::CurrentInputs;
use crate::template::{
    KEY_LOGICAL_ID, OUTPUT_ALIAS_NAME, OUTPUT_KEY_ARN, OUTPUT_KEY_ID, OUTPUT_REMOVAL_POLICY,
    OUTPUT_SIGNER_ROLE_ARN,
};

/// What a kms-eth account stack holds, from its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStack {
    /// The stack name.
    pub stack_name: String,
    /// The stack id (ARN).
    pub stack_id: String,
    /// The stack status.
    pub status: String,
    /// The key id.
    pub key_id: String,
    /// The key ARN.
    pub key_arn: String,
    /// The key's alias.
    pub alias_name: String,
    /// The signer role's ARN.
    pub signer_role_arn: String,
    /// What happens to the key when the stack is deleted.
    pub removal_policy: RemovalPolicy,
    /// The key's deletion window, from the stack parameters.
    pub pending_window_days: Option<u8>,
    /// Who may assume the signer role, from the stack parameters (empty for a stack of an
    /// older template).
    pub signer_principals: Vec<String>,
    /// The signing function's ARN (`deploy --with-lambda`), if the stack has one.
    pub function_arn: Option<String>,
    /// The signing function's execution role, if the stack has the function.
    pub function_role_arn: Option<String>,
    /// The Regions its key is replicated into (`deploy --replica-region`), from the stack
    /// parameters; none for a key in one Region.
    pub replica_regions: Vec<String>,
}

/// What `deploy` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployAction {
    /// A new stack was created.
    Created,
    /// The stack was updated.
    Updated,
    /// The stack already matched; nothing was done.
    Unchanged,
}

/// How `deploy` may proceed where it would otherwise stop.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Execute changes that replace or remove the key (a new address).
    pub allow_key_replacement: bool,
    /// Delete a stack left in ROLLBACK_COMPLETE and create it again.
    pub recreate_failed: bool,
    /// How often to poll CloudFormation.
    pub poll_interval: Duration,
    /// How long to wait for a stack operation.
    pub timeout: Duration,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            allow_key_replacement: false,
            recreate_failed: false,
            poll_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Creates or updates the account stack so that it matches `spec`, through a change set.
///
/// An unchanged stack is left alone ([`DeployAction::Unchanged`]). A change that would
/// replace or remove the key is refused unless allowed. A stack in ROLLBACK_COMPLETE is
/// refused unless `recreate_failed`. What happens for each stack status is [`next_step`].
pub async fn deploy(
    client: &Client,
    spec: &AccountSpec,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(DeployAction, AccountStack), ProvisionError> {
    spec.validate()?;
    let name = spec.stack_name.as_str();
    let mut existing = describe_stack(client, name).await?;
    let mut waited = false;
    let change_set_type = loop {
        let status = existing.as_ref().and_then(Stack::stack_status);
        let status_text = || status.map(|s| s.as_str().to_owned()).unwrap_or_default();
        // Only the stack id finds a deleted stack; a stack without one is looked up by name.
        let stack_id = existing.as_ref().and_then(Stack::stack_id).unwrap_or(name);
        match next_step(status, waited, options) {
            NextStep::Create => break ChangeSetType::Create,
            NextStep::UpdateViaChangeSet => break ChangeSetType::Update,
            NextStep::RecreateAfterRollbackComplete => {
                progress(Progress::Note(format!(
                    "deleting stack {name}, left in ROLLBACK_COMPLETE by a failed create"
                )));
                delete_and_wait(client, name, stack_id, &[], options, progress).await?;
                break ChangeSetType::Create;
            }
            NextStep::WaitForOperation => {
                let stack_id = stack_id.to_owned();
                existing =
                    wait_for_operation(client, name, &stack_id, &status_text(), options, progress)
                        .await?;
                waited = true;
            }
            NextStep::RefuseRollbackComplete => {
                return Err(ProvisionError::RollbackComplete {
                    stack_name: name.to_owned(),
                })
            }
            NextStep::RefuseBusy => {
                return Err(ProvisionError::StackBusy {
                    stack_name: name.to_owned(),
                    status: status_text(),
                })
            }
            NextStep::RefuseBroken => {
                return Err(ProvisionError::StackBroken {
                    stack_name: name.to_owned(),
                    status: status_text(),
                })
            }
        }
    };

    if change_set_type == ChangeSetType::Update {
        if let Some(stack) = &existing {
            if matches_spec(client, stack, spec).await? {
                return Ok((DeployAction::Unchanged, account_stack(name, stack)?));
            }
        }
    }

    let prepared =
        changeset::prepare(client, spec, change_set_type.clone(), options, progress).await?;
    let Some(change_set) = prepared else {
        if change_set_type == ChangeSetType::Update {
            // The stack differs from the spec (it did not match above), yet the change set
            // changes no resource: only the stack's tags changed, which LocalStack's change
            // sets leave out. A direct update applies them; with no resource change there is
            // no key to replace, so the guard has nothing to look at.
            return update_tags_only(client, spec, options, progress).await;
        }
        let stack = require_stack(client, name, name).await?;
        return Ok((DeployAction::Unchanged, account_stack(name, &stack)?));
    };
    progress(Progress::ChangeSet(change_set.changes.clone()));
    change_set
        .guard_key(client, options.allow_key_replacement)
        .await?;

    let mut seen = seen_events(client, name).await;
    change_set.execute(client).await?;
    let stack = wait_for_stack(client, name, name, &mut seen, options, true, progress).await?;
    let final_status = stack
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let (wanted, action) = if change_set_type == ChangeSetType::Create {
        (StackStatus::CreateComplete, DeployAction::Created)
    } else {
        (StackStatus::UpdateComplete, DeployAction::Updated)
    };
    if final_status != wanted.as_str() {
        return Err(failed(client, name, name, final_status).await);
    }
    Ok((action, account_stack(name, &stack)?))
}

/// Updates a stack whose change set held no resource change (its tags changed): the same
/// template and parameters, the new tags.
async fn update_tags_only(
    client: &Client,
    spec: &AccountSpec,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(DeployAction, AccountStack), ProvisionError> {
    let name = spec.stack_name.as_str();
    progress(Progress::Note(format!(
        "the change set of stack {name} changes no resource: updating its tags"
    )));
    let mut seen = seen_events(client, name).await;
    let updated = timed(
        "UpdateStack",
        On::Stack(name),
        client
            .update_stack()
            .stack_name(name)
            .template_body(spec.template_body())
            .set_parameters(Some(crate::template::stack_parameters(spec)))
            .set_tags(Some(crate::template::stack_tags(spec)))
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
            .send(),
    )
    .await;
    match updated {
        Ok(_) => {}
        Err(err)
            if err.code() == Some("ValidationError")
                && err
                    .message()
                    .is_some_and(|m| m.contains("No updates are to be performed")) =>
        {
            return Err(ProvisionError::TagsNotApplied {
                stack_name: name.to_owned(),
            })
        }
        Err(err) => return Err(aws("UpdateStack")(err)),
    }
    let stack = wait_for_stack(client, name, name, &mut seen, options, true, progress).await?;
    let status = stack
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    if status != StackStatus::UpdateComplete.as_str() {
        return Err(failed(client, name, name, status).await);
    }
    Ok((DeployAction::Updated, account_stack(name, &stack)?))
}

/// The account stack `stack_name`, from its outputs and parameters.
pub async fn describe_account(
    client: &Client,
    stack_name: &str,
) -> Result<AccountStack, ProvisionError> {
    crate::account::validate_stack_name(stack_name)?;
    let stack = require_stack(client, stack_name, stack_name).await?;
    account_stack(stack_name, &stack)
}

/// The inputs the stack `stack_name` was deployed with, which a redeploy keeps; `None` when
/// there is no stack, or none with resources (a create that failed or never ran), so that
/// the deploy is a first one. An operation still running on the stack is waited for first
/// (with the same note and events as `deploy`).
pub async fn current_inputs(
    client: &Client,
    stack_name: &str,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<CurrentInputs>, ProvisionError> {
    crate::account::validate_stack_name(stack_name)?;
    let mut stack = describe_stack(client, stack_name).await?;
    // The inputs of a stack whose operation is still running (an interrupted deploy) are not
    // settled: an update may roll back to the old ones, and LocalStack shows no parameters
    // at all while it creates, which read as "unknown" signer principals and a guard
    // question about a change nobody asked for. So that operation is waited for first;
    // `deploy` then finds the stack settled.
    let status = stack.as_ref().and_then(Stack::stack_status);
    if matches!(
        next_step(status, false, options),
        NextStep::WaitForOperation
    ) {
        let status_text = status.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let stack_id = stack
            .as_ref()
            .and_then(Stack::stack_id)
            .unwrap_or(stack_name)
            .to_owned();
        stack = wait_for_operation(
            client,
            stack_name,
            &stack_id,
            &status_text,
            options,
            progress,
        )
        .await?;
    }
    Ok(stack
        .filter(|stack| {
            !matches!(
                stack.stack_status(),
                Some(
                    StackStatus::ReviewInProgress
                        | StackStatus::RollbackComplete
                        | StackStatus::DeleteComplete
                )
            )
        })
        .map(|stack| CurrentInputs::of(&stack)))
}

/// Says that `name` is busy with an operation someone else started (`status`), waits for it
/// to finish while streaming its events, and returns the stack as it ended (`None`: a
/// deletion removed it).
async fn wait_for_operation(
    client: &Client,
    name: &str,
    stack_id: &str,
    status: &str,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Stack>, ProvisionError> {
    progress(Progress::Note(format!(
        "stack {name} is {status} (an earlier operation, perhaps an interrupted deploy, is \
         still running); waiting for it to finish"
    )));
    let mut seen = seen_events(client, stack_id).await;
    match wait_for_stack(client, name, stack_id, &mut seen, options, false, progress).await {
        Ok(stack) => Ok(Some(stack)),
        // A stack that was being deleted may be gone entirely.
        Err(ProvisionError::StackNotFound { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Deletes the account stack and waits until it is gone, streaming events. What happens to
/// the key is the template's removal policy; read the key back afterwards to see it.
pub async fn delete_account(
    client: &Client,
    account: &AccountStack,
    key_already_scheduled: bool,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ProvisionError> {
    let deleted = delete_and_wait(
        client,
        &account.stack_name,
        &account.stack_id,
        &[],
        options,
        progress,
    )
    .await;
    match deleted {
        // A DESTROY key that someone already scheduled for deletion cannot be scheduled
        // again, so CloudFormation fails to delete it. Its fate is already the one DESTROY
        // asks for: delete the rest of the stack and leave the key to its schedule
        // (CloudFormation takes RetainResources only once a deletion has failed).
        Err(ProvisionError::StackFailed { .. }) if key_already_scheduled => {
            progress(Progress::Note(
                "the key was already scheduled for deletion; deleting the rest of the stack and leaving the key to its schedule".into(),
            ));
            delete_and_wait(
                client,
                &account.stack_name,
                &account.stack_id,
                &[KEY_LOGICAL_ID],
                options,
                progress,
            )
            .await
        }
        other => other,
    }
}

/// Deletes the stack, leaving the resources named in `retain` (CloudFormation accepts them
/// only for a stack whose deletion failed), and waits for the end.
async fn delete_and_wait(
    client: &Client,
    stack_name: &str,
    stack_id: &str,
    retain: &[&str],
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ProvisionError> {
    let mut seen = seen_events(client, stack_id).await;
    let mut request = client.delete_stack().stack_name(stack_id);
    for logical_id in retain {
        request = request.retain_resources(*logical_id);
    }
    call("DeleteStack", On::Stack(stack_id), request.send()).await?;
    // After deletion only the stack id still finds the stack (as DELETE_COMPLETE).
    match wait_for_stack(
        client, stack_name, stack_id, &mut seen, options, true, progress,
    )
    .await
    {
        Ok(stack) if stack.stack_status() == Some(&StackStatus::DeleteComplete) => Ok(()),
        Ok(stack) => {
            let status = stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            Err(failed(client, stack_name, stack_id, status).await)
        }
        // LocalStack forgets a deleted stack entirely; gone is what was asked for.
        Err(ProvisionError::StackNotFound { .. }) => Ok(()),
        Err(err) => Err(err),
    }
}

/// The stack, or `None` if there is no stack of that name (or id).
pub async fn describe_stack(client: &Client, stack: &str) -> Result<Option<Stack>, ProvisionError> {
    let described = timed(
        "DescribeStacks",
        On::Stack(stack),
        client.describe_stacks().stack_name(stack).send(),
    )
    .await;
    match described {
        Ok(response) => Ok(response.stacks().first().cloned()),
        // CloudFormation says "Stack with id X does not exist" with a generic ValidationError.
        Err(err)
            if err.code() == Some("ValidationError")
                && err.message().is_some_and(|m| m.contains("does not exist")) =>
        {
            Ok(None)
        }
        Err(err) => Err(aws("DescribeStacks")(err)),
    }
}

/// The stack `stack` (a name or id), or [`ProvisionError::StackNotFound`] naming the stack
/// `stack_name`.
pub(crate) async fn require_stack(
    client: &Client,
    stack: &str,
    stack_name: &str,
) -> Result<Stack, ProvisionError> {
    describe_stack(client, stack)
        .await?
        .ok_or_else(|| ProvisionError::StackNotFound {
            stack_name: stack_name.to_owned(),
        })
}

/// Whether the stack already has exactly the template, parameters and tags of `spec`.
async fn matches_spec(
    client: &Client,
    stack: &Stack,
    spec: &AccountSpec,
) -> Result<bool, ProvisionError> {
    Ok(differences(client, stack, spec).await?.is_empty())
}

/// One input of a stack that a deploy of a spec would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// A template parameter's name, `tags`, or `template`.
    pub field: String,
    /// The stack's value.
    pub old: String,
    /// The spec's value.
    pub new: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} -> {}", self.field, self.old, self.new)
    }
}

/// What a deploy of `spec` would change in `stack`: each parameter, the tags, and the
/// template (read only when nothing else differs: one call fewer for a stack that changes
/// anyway).
pub async fn differences(
    client: &Client,
    stack: &Stack,
    spec: &AccountSpec,
) -> Result<Vec<Difference>, ProvisionError> {
    let mut found = input_differences(stack, spec);
    if !found.is_empty() {
        return Ok(found);
    }
    let template = template_of(client, &spec.stack_name).await?;
    found.extend(template_difference(&template, spec));
    Ok(found)
}

/// The stack's template body, as CloudFormation keeps it.
pub async fn template_of(client: &Client, stack_name: &str) -> Result<String, ProvisionError> {
    let template = call(
        "GetTemplate",
        On::Stack(stack_name),
        client.get_template().stack_name(stack_name).send(),
    )
    .await?;
    Ok(template.template_body().unwrap_or_default().to_owned())
}

/// The template's difference from the one `spec` renders, if any.
pub fn template_difference(template: &str, spec: &AccountSpec) -> Option<Difference> {
    (template.trim() != spec.template_body().trim()).then(|| Difference {
        field: "template".into(),
        old: "the stack's".into(),
        new: "this kms-eth version's".into(),
    })
}

/// What a deploy of `spec` would change in the stack's parameters and tags.
pub fn input_differences(stack: &Stack, spec: &AccountSpec) -> Vec<Difference> {
    let parameters: std::collections::BTreeMap<String, String> = stack
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default().to_owned(),
                p.parameter_value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let wanted: std::collections::BTreeMap<String, String> = spec
        .parameters()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut found = Vec::new();
    let shown = |value: Option<&String>| value.map_or("(none)".to_owned(), Clone::clone);
    for key in parameters.keys().chain(wanted.keys()) {
        let (old, new) = (parameters.get(key), wanted.get(key));
        if old != new && !found.iter().any(|d: &Difference| &d.field == key) {
            found.push(Difference {
                field: key.clone(),
                old: shown(old),
                new: shown(new),
            });
        }
    }
    let mut tags: Vec<(String, String)> = stack
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut wanted_tags = spec.tags.clone();
    tags.sort();
    wanted_tags.sort();
    if tags != wanted_tags {
        let text = |tags: &[(String, String)]| {
            let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{{{}}}", pairs.join(", "))
        };
        found.push(Difference {
            field: "tags".into(),
            old: text(&tags),
            new: text(&wanted_tags),
        });
    }
    found
}

/// The `DeletionPolicy` the template gives the key resource (`Retain`, `Delete`, ...), read
/// from the YAML kms-eth renders; `None` when the template does not say it that way.
pub fn key_deletion_policy(template: &str) -> Option<String> {
    let mut in_key = false;
    for line in template.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent == 2 && !text.starts_with('#') && !text.is_empty() {
            in_key = text == format!("{KEY_LOGICAL_ID}:");
            continue;
        }
        if in_key && indent == 4 {
            if let Some(value) = text.strip_prefix("DeletionPolicy:") {
                return Some(
                    value
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_owned(),
                );
            }
        }
    }
    None
}

/// The account as the stack's outputs (and its parameters) describe it.
pub fn account_stack(stack_name: &str, stack: &Stack) -> Result<AccountStack, ProvisionError> {
    let output = |key: &'static str| {
        stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_owned)
            .ok_or(ProvisionError::NotAnAccountStack {
                stack_name: stack_name.to_owned(),
                missing: key,
            })
    };
    let removal_policy =
        output(OUTPUT_REMOVAL_POLICY)?
            .parse()
            .map_err(|_| ProvisionError::NotAnAccountStack {
                stack_name: stack_name.to_owned(),
                missing: OUTPUT_REMOVAL_POLICY,
            })?;
    let current = CurrentInputs::of(stack);
    Ok(AccountStack {
        stack_name: stack_name.to_owned(),
        stack_id: stack.stack_id().unwrap_or(stack_name).to_owned(),
        status: stack
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        key_id: output(OUTPUT_KEY_ID)?,
        key_arn: output(OUTPUT_KEY_ARN)?,
        alias_name: output(OUTPUT_ALIAS_NAME)?,
        signer_role_arn: output(OUTPUT_SIGNER_ROLE_ARN)?,
        removal_policy,
        pending_window_days: current.pending_window_days,
        signer_principals: current.signer_principals.unwrap_or_default(),
        replica_regions: current.replica_regions,
        function_arn: output(OUTPUT_FUNCTION_ARN).ok(),
        function_role_arn: output(OUTPUT_FUNCTION_ROLE_ARN).ok(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_keys_deletion_policy_is_read_from_the_rendered_template() {
        for policy in [RemovalPolicy::Retain, RemovalPolicy::Destroy] {
            let template = crate::template::render(policy, None);
            assert_eq!(
                key_deletion_policy(&template).as_deref(),
                Some(policy.deletion_policy())
            );
        }
        let other =
            "Resources:\n  Key:\n    Type: AWS::KMS::Key\n  Role:\n    DeletionPolicy: Retain\n";
        assert_eq!(key_deletion_policy(other), None);
    }
}
