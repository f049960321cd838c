//! The change-set driver: creates a change set for a spec, waits until CloudFormation has
//! worked out the changes, refuses one that would replace or remove the key, executes it,
//! and cleans up after a change set that failed or is not executed.

use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Replacement,
};
use aws_sdk_cloudformation::Client;

use crate::account::AccountSpec;
use crate::call::{call, timed, On};
use crate::error::ProvisionError;
use crate::events::Progress;
use crate::stack::DeployOptions;
use crate::template::{stack_parameters, stack_tags, KEY_LOGICAL_ID};

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

/// A change set that CloudFormation has prepared and that holds changes.
#[derive(Debug)]
pub(crate) struct ChangeSet {
    stack_name: String,
    name: String,
    /// What executing it would change.
    pub(crate) changes: Vec<PlannedChange>,
}

/// Creates a change set of `change_set_type` that brings the stack to `spec` and waits for
/// it; `None` (and the change set deleted) if it holds no changes.
pub(crate) async fn prepare(
    client: &Client,
    spec: &AccountSpec,
    change_set_type: ChangeSetType,
    options: &DeployOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<ChangeSet>, ProvisionError> {
    let stack_name = spec.stack_name.as_str();
    let name = format!("kms-eth-{}", unix_millis());
    progress(Progress::Note(format!("preparing change set {name}")));
    call(
        "CreateChangeSet",
        On::Stack(stack_name),
        client
            .create_change_set()
            .stack_name(stack_name)
            .change_set_name(&name)
            .change_set_type(change_set_type.clone())
            .template_body(spec.template_body())
            .set_parameters(Some(stack_parameters(spec)))
            .set_tags(Some(stack_tags(spec)))
            .capabilities(Capability::CapabilityIam)
            .send(),
    )
    .await?;

    let change_set = ChangeSet {
        stack_name: stack_name.to_owned(),
        name,
        changes: Vec::new(),
    };
    match change_set.wait(client, options).await {
        Err(err) => {
            // A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS behind; it holds
            // no resources, so removing it leaves nothing half-done.
            if change_set_type == ChangeSetType::Create {
                let _ = timed(
                    "DeleteStack",
                    On::Stack(stack_name),
                    client.delete_stack().stack_name(stack_name).send(),
                )
                .await;
            }
            Err(err)
        }
        Ok(None) => {
            change_set.delete(client).await;
            Ok(None)
        }
        Ok(Some(changes)) => Ok(Some(ChangeSet {
            changes,
            ..change_set
        })),
    }
}

impl ChangeSet {
    /// Refuses a change set that would replace or remove the key (a new address) unless
    /// `allowed`, and deletes it then.
    pub(crate) async fn guard_key(
        &self,
        client: &Client,
        allowed: bool,
    ) -> Result<(), ProvisionError> {
        match key_replacement(&self.changes) {
            Some(action) if !allowed => {
                self.delete(client).await;
                Err(ProvisionError::KeyReplacement {
                    stack_name: self.stack_name.clone(),
                    action,
                })
            }
            _ => Ok(()),
        }
    }

    /// Starts executing the change set; the stack's events tell how it goes.
    pub(crate) async fn execute(&self, client: &Client) -> Result<(), ProvisionError> {
        call(
            "ExecuteChangeSet",
            On::Stack(&self.stack_name),
            client
                .execute_change_set()
                .stack_name(&self.stack_name)
                .change_set_name(&self.name)
                .send(),
        )
        .await?;
        Ok(())
    }

    /// Waits for the change set; `None` if it holds no changes.
    async fn wait(
        &self,
        client: &Client,
        options: &DeployOptions,
    ) -> Result<Option<Vec<PlannedChange>>, ProvisionError> {
        let started = std::time::Instant::now();
        loop {
            let response = call(
                "DescribeChangeSet",
                On::Stack(&self.stack_name),
                client
                    .describe_change_set()
                    .stack_name(&self.stack_name)
                    .change_set_name(&self.name)
                    .send(),
            )
            .await?;
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
                        stack_name: self.stack_name.clone(),
                        reason,
                    });
                }
                _ if started.elapsed() > options.timeout => {
                    return Err(ProvisionError::Timeout {
                        stack_name: self.stack_name.clone(),
                        seconds: options.timeout.as_secs(),
                        status: "change set not ready".into(),
                    })
                }
                _ => tokio::time::sleep(options.poll_interval).await,
            }
        }
    }

    async fn delete(&self, client: &Client) {
        // Best effort: a change set left behind is harmless and CloudFormation expires it.
        let _ = timed(
            "DeleteChangeSet",
            On::Stack(&self.stack_name),
            client
                .delete_change_set()
                .stack_name(&self.stack_name)
                .change_set_name(&self.name)
                .send(),
        )
        .await;
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

/// Milliseconds since the Unix epoch: change set names only need to differ between deploys.
fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::SIGNER_ROLE_LOGICAL_ID;

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
            key_replacement(&[change("Modify", KEY_LOGICAL_ID, Some("True"))]),
            Some("replace")
        );
        assert_eq!(
            key_replacement(&[change("Modify", KEY_LOGICAL_ID, Some("Conditional"))]),
            Some("replace")
        );
        assert_eq!(
            key_replacement(&[change("Remove", KEY_LOGICAL_ID, None)]),
            Some("remove")
        );
        assert_eq!(
            key_replacement(&[change("Modify", KEY_LOGICAL_ID, Some("False"))]),
            None
        );
        assert_eq!(
            key_replacement(&[change("Modify", SIGNER_ROLE_LOGICAL_ID, Some("True"))]),
            None
        );
    }
}
