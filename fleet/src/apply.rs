//! `fleet apply`: a plan (shown and confirmed by the caller) carried out several targets at
//! once. Each stack goes through the same `deploy` as `kms-eth deploy` (change sets, the key
//! replacement guard, waiting for an interrupted operation), so a re-run after a crash finds
//! each stack where CloudFormation left it and finishes the job: one stack, one key. Key
//! creation is paced per account and region under KMS's CreateKey quota.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use kms_eth_provisioner::{deploy, DeployAction, ProvisionError};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::manifest::Entry;
use crate::plan::{PlanAction, PlanReport, PlanRow, UnmanagedStack};
use crate::table::table;
use crate::targets::per_target;
use crate::{Event, Fleet, OnEvent, Reached, Verdict};

/// KMS allows 5 CreateKey calls per second per account and region: at most this many stacks
/// (each creates its key as it starts) are started in one account and region in any
/// second, one less than the quota, since a key created outside the fleet counts too.
const CREATES_PER_SECOND: usize = 4;

/// What apply did to a stack (`outcome` in the JSON, spelt as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// The stack and its key were made.
    Created,
    /// The stack was changed.
    Updated,
    /// There was nothing to change.
    Unchanged,
    /// Something was changed outside kms-eth; left alone.
    Drift,
    /// Not touched: the stack is not trusted, or the change would replace the key.
    Refused,
    /// Its target could not be reached or the deploy failed.
    Failed,
}

impl ApplyOutcome {
    /// The outcome as the JSON and the table spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Updated => "updated",
            ApplyOutcome::Unchanged => "unchanged",
            ApplyOutcome::Drift => "drift",
            ApplyOutcome::Refused => "refused",
            ApplyOutcome::Failed => "failed",
        }
    }
}

impl fmt::Display for ApplyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What apply did to each stack.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub stacks: Vec<ApplyRow>,
    /// kms-eth account stacks in the fleet's accounts and regions that no manifest entry
    /// names; never touched.
    pub unmanaged_stacks: Vec<UnmanagedStack>,
}

/// One stack's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyRow {
    pub target: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub stack_name: String,
    /// `created`, `updated`, `unchanged`, `drift` (left alone), `refused` or `failed`.
    pub outcome: ApplyOutcome,
    /// Why, for `drift`, `refused` and `failed`.
    pub detail: Option<String>,
    pub key_id: Option<String>,
    pub address: Option<String>,
}

impl ApplyReport {
    /// Failed if any stack failed or was refused; else needs attention if drift was left
    /// alone; else clean.
    pub fn verdict(&self) -> Verdict {
        if self
            .stacks
            .iter()
            .any(|r| matches!(r.outcome, ApplyOutcome::Failed | ApplyOutcome::Refused))
        {
            Verdict::Failed
        } else if self.stacks.iter().any(|r| r.outcome == ApplyOutcome::Drift) {
            Verdict::NeedsAttention
        } else {
            Verdict::Clean
        }
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<Vec<String>> = self
            .stacks
            .iter()
            .map(|r| {
                vec![
                    r.target.clone(),
                    r.region.clone(),
                    r.name.clone(),
                    r.outcome.as_str().to_owned(),
                    r.address.clone().unwrap_or_default(),
                    r.detail.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(
            f,
            &[
                "TARGET", "REGION", "ACCOUNT", "OUTCOME", "ADDRESS", "DETAIL",
            ],
            &rows,
        )?;
        let count =
            |outcome: ApplyOutcome| self.stacks.iter().filter(|r| r.outcome == outcome).count();
        write!(
            f,
            "{} stacks: {} created, {} updated, {} unchanged, {} drift, {} refused, {} failed",
            self.stacks.len(),
            count(ApplyOutcome::Created),
            count(ApplyOutcome::Updated),
            count(ApplyOutcome::Unchanged),
            count(ApplyOutcome::Drift),
            count(ApplyOutcome::Refused),
            count(ApplyOutcome::Failed)
        )
    }
}

/// Carries out `planned` (the plan of `fleet`, made without the unmanaged keys and
/// confirmed): stacks to create or update are deployed, `parallel` targets at a time and
/// each target's stacks together; the others are left as they are, with the reason. Each
/// stack's progress, and what became of it, go to `on`.
pub async fn apply(
    fleet: &Fleet,
    planned: PlanReport,
    parallel: usize,
    on: OnEvent<'_>,
) -> ApplyReport {
    let pacer = Pacer::default();
    // Plan rows and manifest entries are in the same order.
    let items = planned
        .stacks
        .iter()
        .zip(&fleet.manifest.entries)
        .map(|(row, entry)| (entry.target, (entry, row.clone())))
        .collect();
    let pacer = &pacer;
    let stacks = per_target(items, parallel, |(entry, row)| async move {
        match &fleet.reached[entry.target] {
            Ok(reached) => apply_one(fleet, reached, entry, row, pacer, on).await,
            Err(reason) => outcome(row, ApplyOutcome::Failed, Some(reason.clone())),
        }
    })
    .await;
    ApplyReport {
        stacks,
        unmanaged_stacks: planned.unmanaged_stacks,
    }
}

/// The row's outcome without any change.
fn outcome(row: PlanRow, outcome: ApplyOutcome, detail: Option<String>) -> ApplyRow {
    ApplyRow {
        target: row.target,
        account_id: row.account_id,
        region: row.region,
        name: row.name,
        stack_name: row.stack_name,
        outcome,
        detail,
        key_id: row.key_id,
        address: row.address,
    }
}

/// Applies one planned row: stacks to create or update are deployed; the others are left
/// as they are, with the reason.
async fn apply_one(
    fleet: &Fleet,
    reached: &Reached,
    entry: &Entry,
    row: PlanRow,
    pacer: &Pacer,
    on: OnEvent<'_>,
) -> ApplyRow {
    match row.action {
        PlanAction::NoChange => return outcome(row, ApplyOutcome::Unchanged, None),
        PlanAction::Drift => {
            let detail = row.drift.join("; ");
            return outcome(
                row,
                ApplyOutcome::Drift,
                Some(format!("left alone: {detail}")),
            );
        }
        PlanAction::Refused => {
            let reason = row.reason.clone();
            return outcome(row, ApplyOutcome::Refused, reason);
        }
        PlanAction::Error => {
            let reason = row.reason.clone();
            return outcome(row, ApplyOutcome::Failed, reason);
        }
        PlanAction::Create | PlanAction::Update | PlanAction::Busy => {}
    }
    let Some(clients) = reached.clients(&entry.region) else {
        return outcome(
            row,
            ApplyOutcome::Failed,
            Some(format!("no clients for {}", entry.region)),
        );
    };
    if row.action == PlanAction::Create {
        pacer.wait(&row.account_id, &row.region).await;
    }
    let label = format!("{}/{}/{}", row.target, row.region, row.name);
    let mut progress = |progress: kms_eth_provisioner::Progress| {
        on(Event::Stack {
            label: &label,
            progress,
        })
    };
    let spec = reached.spec(entry);
    let deployed = deploy(clients.cloudformation, &spec, &fleet.options, &mut progress).await;
    match deployed {
        Ok((action, stack)) => {
            // The address, from the key itself through the signer's own derivation (one
            // GetPublicKey: the rest of the key was just made by this stack).
            let address =
                kms_eth_signer::KmsSigner::new(clients.kms.clone(), stack.key_arn.clone())
                    .await
                    .ok()
                    .map(|signer| signer.address().to_string());
            let done = match action {
                DeployAction::Created => ApplyOutcome::Created,
                DeployAction::Updated => ApplyOutcome::Updated,
                DeployAction::Unchanged => ApplyOutcome::Unchanged,
            };
            on(Event::Note(format!("{label}: {done}")));
            ApplyRow {
                key_id: Some(stack.key_id),
                address,
                ..outcome(row, done, None)
            }
        }
        Err(err @ ProvisionError::KeyReplacement { .. }) => {
            outcome(row, ApplyOutcome::Refused, Some(err.to_string()))
        }
        Err(err) => {
            on(Event::Warning(format!("{label}: {err}")));
            outcome(row, ApplyOutcome::Failed, Some(err.to_string()))
        }
    }
}

/// Keeps the stacks created in each account and region under [`CREATES_PER_SECOND`] in any
/// one second.
#[derive(Debug, Default)]
struct Pacer {
    started: Mutex<HashMap<(String, String), Vec<Instant>>>,
}

impl Pacer {
    /// Returns once a stack may be created in `account` and `region`. Each caller takes the
    /// next free slot of its place under the lock and waits for it outside, so that other
    /// places are not held up.
    async fn wait(&self, account: &str, region: &str) {
        let slot = {
            let mut started = self.started.lock().await;
            let slots = started
                .entry((account.to_owned(), region.to_owned()))
                .or_default();
            let now = Instant::now();
            // The slot is free once the create CREATES_PER_SECOND before it is a second old.
            let slot = match slots.len().checked_sub(CREATES_PER_SECOND) {
                Some(index) => (slots[index] + Duration::from_secs(1)).max(now),
                None => now,
            };
            slots.push(slot);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn creates_in_one_place_stay_under_the_quota_and_other_places_are_not_held_up() {
        let pacer = Pacer::default();
        let begin = Instant::now();
        let mut at = Vec::new();
        for _ in 0..9 {
            pacer.wait("111111111111", "us-east-1").await;
            at.push(begin.elapsed());
        }
        pacer.wait("111111111111", "eu-west-1").await;
        let elsewhere = begin.elapsed();
        // Four at once, the next four a second later, the ninth a second after those.
        assert!(
            at[..4].iter().all(|t| *t < Duration::from_millis(1)),
            "{at:?}"
        );
        assert!(
            at[4..8]
                .iter()
                .all(|t| *t >= Duration::from_secs(1) && *t < Duration::from_millis(1001)),
            "{at:?}"
        );
        assert!(at[8] >= Duration::from_secs(2), "{at:?}");
        // Any 5 consecutive creates span at least a second.
        for window in at.windows(CREATES_PER_SECOND + 1) {
            assert!(
                window[CREATES_PER_SECOND] - window[0] >= Duration::from_secs(1),
                "{at:?}"
            );
        }
        assert!(elsewhere - at[8] < Duration::from_millis(1));
    }
}
