//! `fleet plan`: what `apply` would do to each stack of the manifest, what drifted, and
//! which kms-eth keys and account stacks the manifest does not name. Changes nothing.

use std::collections::HashSet;
use std::fmt;

use kms_eth_provisioner::tagged_keys;
use serde::Serialize;

use crate::inspect::{account_stacks, Clients, Found};
use crate::manifest::{Entry, Target as ManifestTarget, FLEET_TAG};
use crate::table::table;
use crate::{Event, Fleet, Inspected, OnEvent, Verdict};

/// What apply would do to a stack (`action` in the JSON, spelt as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    /// There is no stack: apply creates it.
    Create,
    /// Apply deploys the changes listed.
    Update,
    /// The stack is as the manifest asks.
    NoChange,
    /// An operation is running on it: apply waits for it, then deploys.
    Busy,
    /// Apply will not touch it (a stack that is not trusted as a kms-eth account, or one
    /// CloudFormation must be helped out of first).
    Refused,
    /// Something was changed outside kms-eth: apply leaves it alone.
    Drift,
    /// Its target or stack could not be read.
    Error,
}

impl PlanAction {
    /// The action as the JSON and the table spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Create => "create",
            PlanAction::Update => "update",
            PlanAction::NoChange => "no-change",
            PlanAction::Busy => "busy",
            PlanAction::Refused => "refused",
            PlanAction::Drift => "drift",
            PlanAction::Error => "error",
        }
    }

    /// Whether apply would change the stack.
    pub fn is_change(self) -> bool {
        matches!(
            self,
            PlanAction::Create | PlanAction::Update | PlanAction::Busy
        )
    }

    /// Whether a person must look at the stack.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            PlanAction::Drift | PlanAction::Refused | PlanAction::Error
        )
    }
}

impl fmt::Display for PlanAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan: one row per target, region and account, then the unmanaged keys.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub stacks: Vec<PlanRow>,
    /// kms-eth keys in the targets' accounts and regions that no manifest entry names;
    /// never touched.
    pub unmanaged: Vec<Unmanaged>,
    /// kms-eth account stacks in those accounts and regions that no manifest entry names
    /// (a renamed target or account leaves its old stack); never touched.
    pub unmanaged_stacks: Vec<UnmanagedStack>,
}

/// A kms-eth account stack that no manifest entry names.
#[derive(Debug, Clone, Serialize)]
pub struct UnmanagedStack {
    pub target: String,
    pub account_id: String,
    pub region: String,
    pub stack_name: String,
}

/// One stack of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    pub target: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub stack_name: String,
    /// `create`, `update`, `no-change`, `busy`, `refused`, `drift` or `error`.
    pub action: PlanAction,
    /// For `update`: each input that changes, `field: old -> new`.
    pub changes: Vec<String>,
    /// For `drift`: what was changed outside kms-eth.
    pub drift: Vec<String>,
    /// For `refused`, `busy` and `error`: why.
    pub reason: Option<String>,
    pub key_id: Option<String>,
    pub key_state: Option<String>,
    pub address: Option<String>,
}

/// A kms-eth key that no manifest entry names.
#[derive(Debug, Clone, Serialize)]
pub struct Unmanaged {
    pub target: String,
    pub account_id: String,
    pub region: String,
    /// The stack its tag names.
    pub stack_name: String,
    pub key_id: String,
}

/// Whether a stack tagged `fleet` is the entry's to change: it carries the manifest's fleet
/// tag, or the entry adopts it.
pub(crate) fn owned(entry: &Entry, fleet: Option<&str>) -> bool {
    let wanted = entry
        .request
        .tags
        .iter()
        .flatten()
        .find(|(key, _)| key == FLEET_TAG)
        .map(|(_, value)| value.as_str());
    entry.adopt || (fleet.is_some() && fleet == wanted)
}

impl PlanRow {
    /// The row of one inspected entry.
    pub fn of(inspected: &Inspected) -> PlanRow {
        let mut row = PlanRow {
            target: inspected.target.name.clone(),
            account_id: inspected.target.account_id.clone(),
            region: inspected.entry.region.clone(),
            name: inspected.entry.name.clone(),
            stack_name: inspected.entry.request.stack_name.clone(),
            action: PlanAction::Error,
            changes: Vec::new(),
            drift: Vec::new(),
            reason: None,
            key_id: None,
            key_state: None,
            address: None,
        };
        match &inspected.found {
            Err(reason) => row.reason = Some(reason.clone()),
            Ok(Found::Absent) => row.action = PlanAction::Create,
            Ok(Found::Busy { status }) => {
                row.action = PlanAction::Busy;
                row.reason = Some(format!("{status}: apply waits for it, then deploys"));
            }
            Ok(Found::Refused { reason }) => {
                row.action = PlanAction::Refused;
                row.reason = Some(reason.clone());
            }
            Ok(Found::Present(present)) if !owned(&inspected.entry, present.fleet.as_deref()) => {
                row.action = PlanAction::Refused;
                row.reason = Some(format!(
                    "stack {} exists but is not this fleet's (its {FLEET_TAG} tag is {}): another \
                     manifest's, or a single deploy's; apply would change who signs with it. If \
                     this manifest is to take it over, give its entry adopt = true",
                    inspected.entry.request.stack_name,
                    present.fleet.as_deref().unwrap_or("missing")
                ));
                row.key_id = Some(present.key.key_id.clone());
            }
            Ok(Found::Present(present)) => {
                row.changes = present.changes.iter().map(ToString::to_string).collect();
                row.drift = present.drift.clone();
                row.action = if !row.drift.is_empty() {
                    PlanAction::Drift
                } else if row.changes.is_empty() {
                    PlanAction::NoChange
                } else {
                    PlanAction::Update
                };
                row.key_id = Some(present.key.key_id.clone());
                row.key_state = Some(present.key.state.as_str().to_owned());
                row.address = present.key.address.map(|a| a.to_string());
            }
        }
        row
    }

    /// Whether apply would change this stack.
    pub fn is_change(&self) -> bool {
        self.action.is_change()
    }

    /// Whether a person must look at this stack.
    pub fn needs_attention(&self) -> bool {
        self.action.needs_attention()
    }

    fn cells(&self) -> Vec<String> {
        let detail = match self.action {
            PlanAction::Update => self.changes.join("; "),
            PlanAction::Drift => {
                let mut all = self.drift.clone();
                all.extend(self.changes.iter().map(|c| format!("(pending) {c}")));
                all.join("; ")
            }
            _ => self.reason.clone().unwrap_or_default(),
        };
        vec![
            self.target.clone(),
            self.region.clone(),
            self.name.clone(),
            self.stack_name.clone(),
            self.action.as_str().to_owned(),
            detail,
        ]
    }
}

impl PlanReport {
    /// Failed if a target or stack could not be read (an `error` row); else needs
    /// attention if a stack drifted or is refused; else changes pending if apply would
    /// change a stack; else clean.
    pub fn verdict(&self) -> Verdict {
        if self.stacks.iter().any(|r| r.action == PlanAction::Error) {
            Verdict::Failed
        } else if self.stacks.iter().any(PlanRow::needs_attention) {
            Verdict::NeedsAttention
        } else if self.stacks.iter().any(PlanRow::is_change) {
            Verdict::ChangesPending
        } else {
            Verdict::Clean
        }
    }

    /// How many rows of each action, for the summary line.
    pub fn summary(&self) -> String {
        let mut counts: Vec<(PlanAction, usize)> = Vec::new();
        for row in &self.stacks {
            match counts.iter_mut().find(|(a, _)| *a == row.action) {
                Some((_, n)) => *n += 1,
                None => counts.push((row.action, 1)),
            }
        }
        let mut parts: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
        if !self.unmanaged_stacks.is_empty() {
            parts.push(format!("{} unmanaged stacks", self.unmanaged_stacks.len()));
        }
        if !self.unmanaged.is_empty() {
            parts.push(format!("{} unmanaged keys", self.unmanaged.len()));
        }
        format!("{} stacks: {}", self.stacks.len(), parts.join(", "))
    }
}

impl fmt::Display for PlanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<Vec<String>> = self.stacks.iter().map(PlanRow::cells).collect();
        table(
            f,
            &["TARGET", "REGION", "ACCOUNT", "STACK", "ACTION", "DETAIL"],
            &rows,
        )?;
        if !self.unmanaged_stacks.is_empty() {
            writeln!(
                f,
                "\nkms-eth account stacks the manifest does not name (never touched):"
            )?;
            let rows: Vec<Vec<String>> = self
                .unmanaged_stacks
                .iter()
                .map(|u| {
                    vec![
                        u.target.clone(),
                        u.account_id.clone(),
                        u.region.clone(),
                        u.stack_name.clone(),
                    ]
                })
                .collect();
            table(f, &["TARGET", "ACCOUNT ID", "REGION", "STACK"], &rows)?;
        }
        if !self.unmanaged.is_empty() {
            writeln!(
                f,
                "\nkms-eth keys the manifest does not name (never touched):"
            )?;
            let rows: Vec<Vec<String>> = self
                .unmanaged
                .iter()
                .map(|u| {
                    vec![
                        u.target.clone(),
                        u.account_id.clone(),
                        u.region.clone(),
                        u.stack_name.clone(),
                        u.key_id.clone(),
                    ]
                })
                .collect();
            table(
                f,
                &["TARGET", "ACCOUNT ID", "REGION", "STACK", "KEY"],
                &rows,
            )?;
        }
        write!(f, "{}", self.summary())
    }
}

/// The plan of every target of `fleet`; with `with_unmanaged`, the kms-eth keys no
/// manifest stack holds too (a listing of every key in each account and region, which
/// `apply` does without). An account and region whose keys or stacks cannot be listed is a
/// warning to `on`.
pub async fn plan(fleet: &Fleet, with_unmanaged: bool, on: OnEvent<'_>) -> PlanReport {
    let inspected = fleet.inspect_all(|_| true).await;
    let mut report = PlanReport {
        stacks: inspected.iter().map(PlanRow::of).collect(),
        unmanaged: Vec::new(),
        unmanaged_stacks: unmanaged_stacks(fleet, on).await,
    };
    if with_unmanaged {
        report.unmanaged = unmanaged(fleet, &report, on).await;
    }
    report
}

/// The kms-eth keys in the targets' accounts and regions that are not the key of one of
/// the plan's stacks (a retained key of a stack deleted or renamed since, another tool's
/// stack).
async fn unmanaged(fleet: &Fleet, plan: &PlanReport, on: OnEvent<'_>) -> Vec<Unmanaged> {
    let managed: HashSet<&str> = plan
        .stacks
        .iter()
        .filter_map(|r| r.key_id.as_deref())
        .collect();
    tagged(fleet, on)
        .await
        .into_iter()
        .filter(|u| !managed.contains(u.key_id.as_str()))
        .collect()
}

/// Each account and region of the reached targets once (two targets may share one), with
/// a target that reaches it and its clients there.
fn places(fleet: &Fleet) -> Vec<(&ManifestTarget, &String, Option<Clients<'_>>)> {
    let mut places: Vec<(&ManifestTarget, &String, Option<Clients<'_>>)> = Vec::new();
    for (target, reached) in fleet.manifest.targets.iter().zip(&fleet.reached) {
        let Ok(reached) = reached else { continue };
        for region in &target.regions {
            let listed = places
                .iter()
                .any(|(t, r, _)| t.account_id == target.account_id && *r == region);
            if !listed {
                places.push((target, region, reached.clients(region)));
            }
        }
    }
    places
}

/// The kms-eth keys of each reached target's accounts and regions.
async fn tagged(fleet: &Fleet, on: OnEvent<'_>) -> Vec<Unmanaged> {
    let places = places(fleet);
    let lists =
        futures_util::future::join_all(places.iter().map(|(target, region, clients)| async move {
            let Some(clients) = clients else {
                return Vec::new();
            };
            match tagged_keys(clients.kms).await {
                Ok(keys) => keys
                    .into_iter()
                    .map(|(key_id, stack_name)| Unmanaged {
                        target: target.name.clone(),
                        account_id: target.account_id.clone(),
                        region: (*region).clone(),
                        stack_name,
                        key_id,
                    })
                    .collect(),
                Err(err) => {
                    on(Event::Warning(format!(
                        "could not list the kms-eth keys of target {} in {region}: {err}",
                        target.name
                    )));
                    Vec::new()
                }
            }
        }))
        .await;
    lists.into_iter().flatten().collect()
}

/// The kms-eth account stacks in the reached targets' accounts and regions that no entry of
/// the manifest names (a renamed target or account leaves its old stack and key): one
/// `ListStacks` per account and region.
async fn unmanaged_stacks(fleet: &Fleet, on: OnEvent<'_>) -> Vec<UnmanagedStack> {
    let named: HashSet<(&str, &str, &str)> = fleet
        .manifest
        .entries
        .iter()
        .map(|e| {
            (
                fleet.manifest.targets[e.target].account_id.as_str(),
                e.region.as_str(),
                e.request.stack_name.as_str(),
            )
        })
        .collect();
    let named = &named;
    let places = places(fleet);
    let lists =
        futures_util::future::join_all(places.iter().map(|(target, region, clients)| async move {
            let Some(clients) = clients else {
                return Vec::new();
            };
            match account_stacks(clients.cloudformation).await {
                Ok(stacks) => stacks
                    .into_iter()
                    .filter(|s| {
                        !named.contains(&(target.account_id.as_str(), region.as_str(), s.as_str()))
                    })
                    .map(|stack_name| UnmanagedStack {
                        target: target.name.clone(),
                        account_id: target.account_id.clone(),
                        region: (*region).clone(),
                        stack_name,
                    })
                    .collect(),
                Err(err) => {
                    on(Event::Warning(format!(
                        "could not list the stacks of target {} in {region}: {err}",
                        target.name
                    )));
                    Vec::new()
                }
            }
        }))
        .await;
    lists.into_iter().flatten().collect()
}
