//! The event watcher: streams a stack operation's own events through the [`Progress`]
//! callback while polling the stack until the operation reaches a terminal status.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{self, Stack};
use aws_sdk_cloudformation::Client;

use crate::call::{timed, On};
use crate::changeset::PlannedChange;
use crate::error::ProvisionError;
use crate::stack::{require_stack, DeployOptions};

/// Something worth showing while a stack operation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The change set about to be executed.
    ChangeSet(Vec<PlannedChange>),
    /// A stack event, reported as it happens.
    Event(StackEvent),
    /// A step of the operation, in words.
    Note(String),
    /// Something found changed outside kms-eth and set back (the asset bucket's settings).
    Warning(String),
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

/// The ids of the events the stack already has, so that only new ones are reported.
pub(crate) async fn seen_events(client: &Client, stack: &str) -> HashSet<String> {
    stack_events(client, stack)
        .await
        .iter()
        .filter_map(|e| e.event_id().map(str::to_owned))
        .collect()
}

/// The stack's events, newest first as CloudFormation lists them. None at all if they cannot
/// be read: events are shown for information, and the stack status alone decides success.
async fn stack_events(client: &Client, stack: &str) -> Vec<types::StackEvent> {
    timed(
        "DescribeStackEvents",
        On::Stack(stack),
        client.describe_stack_events().stack_name(stack).send(),
    )
    .await
    .ok()
    .and_then(|response| response.stack_events)
    .unwrap_or_default()
}

/// Polls the stack until no operation is in progress, reporting each new event once, in
/// the order they happened.
///
/// `own_operation`: the caller has just started the operation (ExecuteChangeSet,
/// DeleteStack). Right after that the stack can still show the status from before, so a
/// finished status counts only once the operation has reported at least one event of its
/// own (or after 30 s without any, in case none ever comes). An operation someone else
/// started is finished as soon as its status says so.
pub(crate) async fn wait_for_stack(
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
        let current = require_stack(client, stack, stack_name).await?;
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
    // CloudFormation lists events newest first.
    let mut events: Vec<StackEvent> = stack_events(client, stack)
        .await
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
pub(crate) async fn failed(
    client: &Client,
    stack_name: &str,
    stack: &str,
    status: String,
) -> ProvisionError {
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
