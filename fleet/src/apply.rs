//! `kms-eth fleet apply`: the plan, confirmed, then carried out several targets at once.
//! Each stack goes through the same `deploy` as `kms-eth deploy` (change sets, the key
//! replacement guard, waiting for an interrupted operation), so a re-run after a crash finds
//! each stack where CloudFormation left it and finishes the job: one stack, one key.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Result;
use kms_eth_provisioner::{deploy, DeployAction, ProvisionError};
use serde::Serialize;
use tokio::sync::Mutex;

use super::plan::{plan, PlanRow, UnmanagedStack, NEEDS_ATTENTION};
use super::{per_target, table, Fleet, Reached};
use crate::flags::FleetApplyArgs;
use crate::session::Session;
use crate::{msg, ui};

/// KMS allows 5 CreateKey calls per second per account and region: at most this many stacks
/// (each creates its key as it starts) are started in one account and region in any
/// second, one less than the quota, since a key created outside the fleet counts too.
const CREATES_PER_SECOND: usize = 4;

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
    pub outcome: &'static str,
    /// Why, for `drift`, `refused` and `failed`.
    pub detail: Option<String>,
    pub key_id: Option<String>,
    pub address: Option<String>,
}

impl ApplyReport {
    /// 1 if any stack failed or was refused; 5 if drift was left alone; else 0.
    pub fn exit_code(&self) -> u8 {
        if self
            .stacks
            .iter()
            .any(|r| matches!(r.outcome, "failed" | "refused"))
        {
            1
        } else if self.stacks.iter().any(|r| r.outcome == "drift") {
            NEEDS_ATTENTION
        } else {
            0
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
                    r.outcome.to_owned(),
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
        let count = |outcome: &str| self.stacks.iter().filter(|r| r.outcome == outcome).count();
        write!(
            f,
            "{} stacks: {} created, {} updated, {} unchanged, {} drift, {} refused, {} failed",
            self.stacks.len(),
            count("created"),
            count("updated"),
            count("unchanged"),
            count("drift"),
            count("refused"),
            count("failed")
        )
    }
}

impl FleetApplyArgs {
    pub async fn run(self, session: &Session) -> Result<ApplyReport> {
        let manifest = self.manifest.load()?;
        let _lock = self.manifest.lock("apply")?;
        let fleet = Fleet::connect(session, manifest, None).await;
        fleet.note_default_principals();
        let planned = plan(&fleet, false).await;
        msg::note("the plan:");
        for line in planned.to_string().lines() {
            msg::detail(line);
        }
        // A renamed target or account leaves its old stack, key and funds where they were,
        // and apply makes new ones: said before the question.
        warn_unmanaged(&planned.unmanaged_stacks);
        let changes = planned.stacks.iter().filter(|r| r.is_change()).count();
        if changes > 0 {
            ui::confirm(
                format!("Apply {changes} change(s) to the fleet's stacks?"),
                self.yes,
            )
            .await?;
        }
        let pacer = Pacer::default();
        // Plan rows and manifest entries are in the same order.
        let items = planned
            .stacks
            .iter()
            .zip(&fleet.manifest.entries)
            .map(|(row, entry)| (entry.target, (entry, row.clone())))
            .collect();
        let fleet = &fleet;
        let pacer = &pacer;
        let stacks = per_target(
            items,
            usize::from(self.parallel),
            |(entry, row)| async move {
                match &fleet.reached[entry.target] {
                    Ok(reached) => apply_one(session, reached, entry, row, pacer).await,
                    Err(reason) => outcome(row, "failed", Some(reason.clone())),
                }
            },
        )
        .await;
        Ok(ApplyReport {
            stacks,
            unmanaged_stacks: planned.unmanaged_stacks,
        })
    }
}

/// Says that kms-eth account stacks the manifest does not name are in its accounts and
/// regions.
fn warn_unmanaged(unmanaged: &[UnmanagedStack]) {
    if unmanaged.is_empty() {
        return;
    }
    let stacks: Vec<String> = unmanaged
        .iter()
        .map(|u| format!("{} ({}, {})", u.stack_name, u.account_id, u.region))
        .collect();
    msg::warn(format!(
        "{} kms-eth account stack(s) in these accounts and regions are not in the manifest \
         (a renamed target or account leaves its old stack, key, address and funds there); \
         apply never touches them: {}",
        unmanaged.len(),
        stacks.join("; ")
    ));
}

/// The row's outcome without any change.
fn outcome(row: PlanRow, outcome: &'static str, detail: Option<String>) -> ApplyRow {
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
    session: &Session,
    reached: &Reached,
    entry: &kms_eth_provisioner::manifest::Entry,
    row: PlanRow,
    pacer: &Pacer,
) -> ApplyRow {
    match row.action {
        "no-change" => return outcome(row, "unchanged", None),
        "drift" => {
            let detail = row.drift.join("; ");
            return outcome(row, "drift", Some(format!("left alone: {detail}")));
        }
        "refused" => {
            let reason = row.reason.clone();
            return outcome(row, "refused", reason);
        }
        "error" => {
            let reason = row.reason.clone();
            return outcome(row, "failed", reason);
        }
        _ => {}
    }
    let Some(clients) = reached.clients(&entry.region) else {
        return outcome(
            row,
            "failed",
            Some(format!("no clients for {}", entry.region)),
        );
    };
    if row.action == "create" {
        pacer.wait(&row.account_id, &row.region).await;
    }
    let label = format!("{}/{}/{}", row.target, row.region, row.name);
    let mut progress = |p: kms_eth_provisioner::Progress| ui::show_progress_of(&label, p);
    let spec = reached.spec(entry);
    let deployed = deploy(
        clients.cloudformation,
        &spec,
        &session.deploy_options(),
        &mut progress,
    )
    .await;
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
                DeployAction::Created => "created",
                DeployAction::Updated => "updated",
                DeployAction::Unchanged => "unchanged",
            };
            msg::note(format!("{label}: {done}"));
            ApplyRow {
                key_id: Some(stack.key_id),
                address,
                ..outcome(row, done, None)
            }
        }
        Err(err @ ProvisionError::KeyReplacement { .. }) => {
            outcome(row, "refused", Some(err.to_string()))
        }
        Err(err) => {
            msg::warn(format!("{label}: {err}"));
            outcome(row, "failed", Some(err.to_string()))
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
