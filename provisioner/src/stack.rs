//! The CloudFormation side: deploying an account stack through a change set (with the key
//! replacement guard), streaming its events, reading its outputs, and deleting it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, Replacement, Stack,
    StackStatus, Tag,
};
use aws_sdk_cloudformation::Client;

use crate::account::{AccountSpec, RemovalPolicy};
use crate::error::{aws, ProvisionError};

/// The logical id of the KMS key in the template.
pub const KEY_LOGICAL_ID: &str = "Key";

/// Something worth showing while a stack operation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The change set about to be executed.
    ChangeSet(Vec<PlannedChange>),
    /// A stack event, reported as it happens.
    Event(StackEvent),
    /// A step of the operation, in words.
    Note(String),
}

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// `Add`, `Modify`, `Remove`, ...
    pub action: String,
    /// The resource's logical id in the template.
    pub logical_id: String,
    /// The resource type, for example `AWS::KMS::Key`.
    pub resource_type: String,
    /// For modifications: `True`, `False` or `Conditional`.
    pub replacement: Option<String>,
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// The resource's logical id (the stack name for the stack itself).
    pub logical_id: String,
    /// The resource type.
    pub resource_type: String,
    /// The resource status, for example `CREATE_COMPLETE`.
    pub status: String,
    /// CloudFormation's reason, if it gave one.
    pub reason: Option<String>,
}

impl StackEvent {
    /// Whether the event reports a failure.
    pub fn is_failure(&self) -> bool {
        self.status.ends_with("_FAILED")
    }
}

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

/// The template parameters of `spec`, as CloudFormation takes them.
pub fn stack_parameters(spec: &AccountSpec) -> Vec<Parameter> {
    spec.parameters()
        .into_iter()
        .map(|(key, value)| {
            Parameter::builder()
                .parameter_key(key)
                .parameter_value(value)
                .build()
        })
        .collect()
}

/// The stack tags of `spec`, as CloudFormation takes them.
pub fn stack_tags(spec: &AccountSpec) -> Vec<Tag> {
    spec.tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

/// Creates or updates the account stack so that it matches `spec`, through a change set.
///
/// An unchanged stack is left alone ([`DeployAction::Unchanged`]). A change that would
/// replace or remove the key is refused unless allowed. A stack in ROLLBACK_COMPLETE is
/// refused unless `recreate_failed`.
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
        let status = existing.as_ref().and_then(|s| s.stack_status().cloned());
        break match status {
            // DELETE_COMPLETE: a stack whose deletion this deploy waited for (described by
            // its id; by name it no longer exists).
            None | Some(StackStatus::ReviewInProgress | StackStatus::DeleteComplete) => {
                ChangeSetType::Create
            }
            Some(StackStatus::RollbackComplete) => {
                if !options.recreate_failed {
                    return Err(ProvisionError::RollbackComplete {
                        stack_name: name.to_owned(),
                    });
                }
                progress(Progress::Note(format!(
                    "deleting stack {name}, left in ROLLBACK_COMPLETE by a failed create"
                )));
                let stack_id = existing.as_ref().and_then(Stack::stack_id).unwrap_or(name);
                delete_and_wait(client, name, stack_id, options, progress).await?;
                ChangeSetType::Create
            }
            // Another operation is running: often a deploy that was interrupted (Ctrl-C, a
            // lost connection) after CloudFormation took the change set. CloudFormation
            // finishes it on its own, so wait for that, then deploy from where it ended.
            Some(status) if status.as_str().ends_with("_IN_PROGRESS") && !waited => {
                progress(Progress::Note(format!(
                    "stack {name} is {} (an earlier operation, perhaps an interrupted deploy, is \
                 still running); waiting for it to finish",
                    status.as_str()
                )));
                let stack_id = existing
                    .as_ref()
                    .and_then(Stack::stack_id)
                    .unwrap_or(name)
                    .to_owned();
                let mut seen = seen_events(client, &stack_id).await;
                let waited_for =
                    wait_for_stack(client, name, &stack_id, &mut seen, options, false, progress)
                        .await;
                existing = match waited_for {
                    Ok(stack) => Some(stack),
                    // A stack that was being deleted may be gone entirely.
                    Err(ProvisionError::StackNotFound { .. }) => None,
                    Err(err) => return Err(err),
                };
                waited = true;
                continue;
            }
            Some(status) if status.as_str().ends_with("_IN_PROGRESS") => {
                return Err(ProvisionError::StackBusy {
                    stack_name: name.to_owned(),
                    status: status.as_str().to_owned(),
                })
            }
            // CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, IMPORT_COMPLETE, ...
            Some(status) if status.as_str().ends_with("_COMPLETE") => ChangeSetType::Update,
            // *_FAILED: deploying on top would hide the failure (and report "unchanged").
            Some(status) => {
                return Err(ProvisionError::StackBroken {
                    stack_name: name.to_owned(),
                    status: status.as_str().to_owned(),
                })
            }
        };
    };

    if change_set_type == ChangeSetType::Update {
        if let Some(stack) = &existing {
            if matches_spec(client, stack, spec).await? {
                return Ok((DeployAction::Unchanged, account_stack(name, stack)?));
            }
        }
    }

    let change_set_name = format!("kms-eth-{}", unix_millis());
    let tags = stack_tags(spec);
    let parameters = stack_parameters(spec);
    progress(Progress::Note(format!(
        "preparing change set {change_set_name}"
    )));
    client
        .create_change_set()
        .stack_name(name)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .template_body(spec.template_body())
        .set_parameters(Some(parameters))
        .set_tags(Some(tags))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .map_err(aws("CreateChangeSet"))?;

    let changes = match wait_for_change_set(client, name, &change_set_name, options).await {
        Err(err) => {
            // A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS behind; it holds
            // no resources, so removing it leaves nothing half-done.
            if change_set_type == ChangeSetType::Create {
                let _ = client.delete_stack().stack_name(name).send().await;
            }
            return Err(err);
        }
        Ok(changes) => changes,
    };
    let changes = match changes {
        Some(changes) => changes,
        None => {
            delete_change_set(client, name, &change_set_name).await;
            let stack = describe_stack(client, name).await?.ok_or_else(|| {
                ProvisionError::StackNotFound {
                    stack_name: name.to_owned(),
                }
            })?;
            return Ok((DeployAction::Unchanged, account_stack(name, &stack)?));
        }
    };
    progress(Progress::ChangeSet(changes.clone()));
    if let Some(action) = key_replacement(&changes) {
        if !options.allow_key_replacement {
            delete_change_set(client, name, &change_set_name).await;
            return Err(ProvisionError::KeyReplacement {
                stack_name: name.to_owned(),
                action,
            });
        }
    }

    let mut seen = seen_events(client, name).await;
    client
        .execute_change_set()
        .stack_name(name)
        .change_set_name(&change_set_name)
        .send()
        .await
        .map_err(aws("ExecuteChangeSet"))?;
    let stack = wait_for_stack(client, name, name, &mut seen, options, true, progress).await?;
    let final_status = stack
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let (wanted, action) = if change_set_type == ChangeSetType::Create {
        ("CREATE_COMPLETE", DeployAction::Created)
    } else {
        ("UPDATE_COMPLETE", DeployAction::Updated)
    };
    if final_status != wanted {
        return Err(failed(client, name, name, final_status).await);
    }
    Ok((action, account_stack(name, &stack)?))
}

/// The account stack `stack_name`, from its outputs and parameters.
pub async fn describe_account(
    client: &Client,
    stack_name: &str,
) -> Result<AccountStack, ProvisionError> {
    crate::account::validate_stack_name(stack_name)?;
    let stack =
        describe_stack(client, stack_name)
            .await?
            .ok_or_else(|| ProvisionError::StackNotFound {
                stack_name: stack_name.to_owned(),
            })?;
    account_stack(stack_name, &stack)
}

/// Deletes the account stack and waits until it is gone, streaming events. What happens to
/// the key is the template's removal policy; read the key back afterwards to see it.
pub async fn delete_account(
    client: &Client,
    account: &AccountStack,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ProvisionError> {
    delete_and_wait(
        client,
        &account.stack_name,
        &account.stack_id,
        options,
        progress,
    )
    .await
}

async fn delete_and_wait(
    client: &Client,
    stack_name: &str,
    stack_id: &str,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ProvisionError> {
    let mut seen = seen_events(client, stack_id).await;
    client
        .delete_stack()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(aws("DeleteStack"))?;
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
async fn describe_stack(client: &Client, stack: &str) -> Result<Option<Stack>, ProvisionError> {
    match client.describe_stacks().stack_name(stack).send().await {
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

/// Whether the stack already has exactly the template, parameters and tags of `spec`.
async fn matches_spec(
    client: &Client,
    stack: &Stack,
    spec: &AccountSpec,
) -> Result<bool, ProvisionError> {
    let mut parameters: Vec<(String, String)> = stack
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default().to_owned(),
                p.parameter_value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut wanted: Vec<(String, String)> = spec
        .parameters()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    parameters.sort();
    wanted.sort();
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
    if parameters != wanted || tags != wanted_tags {
        return Ok(false);
    }
    let template = client
        .get_template()
        .stack_name(&spec.stack_name)
        .send()
        .await
        .map_err(aws("GetTemplate"))?;
    Ok(template.template_body().map(str::trim) == Some(spec.template_body().trim()))
}

/// Waits for the change set; `None` if it holds no changes.
async fn wait_for_change_set(
    client: &Client,
    stack_name: &str,
    change_set_name: &str,
    options: &DeployOptions,
) -> Result<Option<Vec<PlannedChange>>, ProvisionError> {
    let started = Instant::now();
    loop {
        let response = client
            .describe_change_set()
            .stack_name(stack_name)
            .change_set_name(change_set_name)
            .send()
            .await
            .map_err(aws("DescribeChangeSet"))?;
        match response.status() {
            Some(ChangeSetStatus::CreateComplete) => {
                let changes: Vec<PlannedChange> = response
                    .changes()
                    .iter()
                    .filter_map(|c| c.resource_change())
                    .map(|rc| PlannedChange {
                        action: rc
                            .action()
                            .map(|a| a.as_str().to_owned())
                            .unwrap_or_default(),
                        logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                        resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                        replacement: rc.replacement().map(|r| r.as_str().to_owned()),
                    })
                    .collect();
                return Ok((!changes.is_empty()).then_some(changes));
            }
            Some(ChangeSetStatus::Failed) => {
                let reason = response
                    .status_reason()
                    .unwrap_or("no reason given")
                    .to_owned();
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(None);
                }
                return Err(ProvisionError::ChangeSetFailed {
                    stack_name: stack_name.to_owned(),
                    reason,
                });
            }
            _ if started.elapsed() > options.timeout => {
                return Err(ProvisionError::Timeout {
                    stack_name: stack_name.to_owned(),
                    seconds: options.timeout.as_secs(),
                    status: "change set not ready".into(),
                })
            }
            _ => tokio::time::sleep(options.poll_interval).await,
        }
    }
}

/// `Some("replace")` or `Some("remove")` if the changes would replace or remove the key.
fn key_replacement(changes: &[PlannedChange]) -> Option<&'static str> {
    changes
        .iter()
        .filter(|c| c.logical_id == KEY_LOGICAL_ID)
        .find_map(|c| {
            if c.action == ChangeAction::Remove.as_str() {
                Some("remove")
            } else if c.replacement.as_deref() == Some(Replacement::True.as_str())
                || c.replacement.as_deref() == Some(Replacement::Conditional.as_str())
            {
                Some("replace")
            } else {
                None
            }
        })
}

async fn delete_change_set(client: &Client, stack_name: &str, change_set_name: &str) {
    // Best effort: a change set left behind is harmless and CloudFormation expires it.
    let _ = client
        .delete_change_set()
        .stack_name(stack_name)
        .change_set_name(change_set_name)
        .send()
        .await;
}

/// The ids of the events the stack already has, so that only new ones are reported.
async fn seen_events(client: &Client, stack: &str) -> HashSet<String> {
    match client
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(response) => response
            .stack_events()
            .iter()
            .filter_map(|e| e.event_id().map(str::to_owned))
            .collect(),
        Err(_) => HashSet::new(),
    }
}

/// Polls the stack until no operation is in progress, reporting each new event once, in
/// the order they happened.
///
/// `own_operation`: the caller has just started the operation (ExecuteChangeSet,
/// DeleteStack). Right after that the stack can still show the status from before, so a
/// finished status counts only once the operation has reported at least one event of its
/// own (or after 30 s without any, in case none ever comes). An operation someone else
/// started is finished as soon as its status says so.
async fn wait_for_stack(
    client: &Client,
    stack_name: &str,
    stack: &str,
    seen: &mut HashSet<String>,
    options: &DeployOptions,
    own_operation: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Stack, ProvisionError> {
    let started = Instant::now();
    let mut new_events = 0;
    loop {
        new_events += report_new_events(client, stack, seen, progress).await;
        let current =
            describe_stack(client, stack)
                .await?
                .ok_or_else(|| ProvisionError::StackNotFound {
                    stack_name: stack_name.to_owned(),
                })?;
        let status = current
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let settled =
            !own_operation || new_events > 0 || started.elapsed() > Duration::from_secs(30);
        if !status.ends_with("_IN_PROGRESS") && settled {
            report_new_events(client, stack, seen, progress).await;
            return Ok(current);
        }
        if started.elapsed() > options.timeout {
            return Err(ProvisionError::Timeout {
                stack_name: stack_name.to_owned(),
                seconds: options.timeout.as_secs(),
                status,
            });
        }
        tokio::time::sleep(options.poll_interval).await;
    }
}

/// Reports the events not seen before and returns how many there were.
async fn report_new_events(
    client: &Client,
    stack: &str,
    seen: &mut HashSet<String>,
    progress: &mut dyn FnMut(Progress),
) -> usize {
    let events = new_events(client, stack, seen).await;
    let count = events.len();
    for event in events {
        progress(Progress::Event(event));
    }
    count
}

async fn new_events(client: &Client, stack: &str, seen: &mut HashSet<String>) -> Vec<StackEvent> {
    let Ok(response) = client
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
    else {
        return Vec::new();
    };
    // CloudFormation lists events newest first.
    let mut events: Vec<StackEvent> = response
        .stack_events()
        .iter()
        .filter(|e| e.event_id().is_some_and(|id| seen.insert(id.to_owned())))
        .map(|e| StackEvent {
            timestamp: e
                .timestamp()
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
                .unwrap_or_default(),
            logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
            resource_type: e.resource_type().unwrap_or_default().to_owned(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            reason: e.resource_status_reason().map(str::to_owned),
        })
        .collect();
    events.reverse();
    events
}

/// The failure error for a stack that ended in `status`, with the failed events.
async fn failed(client: &Client, stack_name: &str, stack: &str, status: String) -> ProvisionError {
    let mut all = HashSet::new();
    let failures = new_events(client, stack, &mut all)
        .await
        .into_iter()
        .filter(StackEvent::is_failure)
        .collect();
    ProvisionError::StackFailed {
        stack_name: stack_name.to_owned(),
        status,
        failures,
    }
}

fn account_stack(stack_name: &str, stack: &Stack) -> Result<AccountStack, ProvisionError> {
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
        output("RemovalPolicy")?
            .parse()
            .map_err(|_| ProvisionError::NotAnAccountStack {
                stack_name: stack_name.to_owned(),
                missing: "RemovalPolicy",
            })?;
    Ok(AccountStack {
        stack_name: stack_name.to_owned(),
        stack_id: stack.stack_id().unwrap_or(stack_name).to_owned(),
        status: stack
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        key_id: output("KeyId")?,
        key_arn: output("KeyArn")?,
        alias_name: output("AliasName")?,
        signer_role_arn: output("SignerRoleArn")?,
        removal_policy,
        pending_window_days: stack
            .parameters()
            .iter()
            .find(|p| p.parameter_key() == Some("PendingWindowInDays"))
            .and_then(|p| p.parameter_value()?.parse().ok()),
    })
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: &str, logical_id: &str, replacement: Option<&str>) -> PlannedChange {
        PlannedChange {
            action: action.into(),
            logical_id: logical_id.into(),
            resource_type: String::new(),
            replacement: replacement.map(Into::into),
        }
    }

    #[test]
    fn key_replacement_is_detected_and_other_changes_pass() {
        assert_eq!(
            key_replacement(&[change("Modify", "Key", Some("True"))]),
            Some("replace")
        );
        assert_eq!(
            key_replacement(&[change("Modify", "Key", Some("Conditional"))]),
            Some("replace")
        );
        assert_eq!(
            key_replacement(&[change("Remove", "Key", None)]),
            Some("remove")
        );
        assert_eq!(
            key_replacement(&[change("Modify", "Key", Some("False"))]),
            None
        );
        assert_eq!(
            key_replacement(&[change("Modify", "SignerRole", Some("True"))]),
            None
        );
    }
}
