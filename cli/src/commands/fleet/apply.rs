//! `kms-eth fleet apply`: the plan, confirmed, then carried out several targets at once.
//! Each stack goes through the same `deploy` as `kms-eth deploy` (change sets, the key
//! replacement guard, waiting for an interrupted operation), so a re-run after a crash finds
//! each stack where CloudFormation left it and finishes the job: one stack, one key.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::StreamExt;
use kms_eth_provisioner::{deploy, key_info, DeployAction, ProvisionError};
use serde::Serialize;
use tokio::sync::Mutex;

use super::plan::{plan, PlanRow, NEEDS_ATTENTION};
use super::{table, Fleet, Reached};
use crate::flags::FleetApplyArgs;
use crate::session::Session;
use crate::{msg, ui};

/// KMS allows 5 CreateKey calls per second per account and region; stacks created in one
/// account and region start at least this far apart (CloudFormation creates the key as the
/// stack starts).
const CREATE_SPACING: Duration = Duration::from_millis(210);

/// What apply did to each stack.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub stacks: Vec<ApplyRow>,
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
        let _lock = lock_manifest(&self.manifest.manifest)?;
        let fleet = Fleet::connect(session, manifest, None).await;
        fleet.note_default_principals();
        let mut planned = plan(&fleet, false).await;
        // A stack to create where kms-eth keys no manifest stack holds already live is often
        // a renamed target or account: its old key stays where it is, with its funds.
        if planned.stacks.iter().any(|r| r.action == "create") {
            planned.unmanaged = super::plan::unmanaged(&fleet, &planned).await;
        }
        msg::note("the plan:");
        for line in planned.to_string().lines() {
            msg::detail(line);
        }
        if !planned.unmanaged.is_empty() {
            msg::warn(format!(
                "{} kms-eth key(s) in these accounts and regions belong to no stack of the \
                 manifest (listed above; a renamed target or account leaves its old key there, \
                 with its address and funds): apply creates new keys and never touches those",
                planned.unmanaged.len()
            ));
        }
        let changes = planned.stacks.iter().filter(|r| r.is_change()).count();
        if changes > 0 {
            ui::confirm(
                format!("Apply {changes} change(s) to the fleet's stacks?"),
                self.yes,
            )
            .await?;
        }
        let pacer = Pacer::default();
        // Targets in parallel (bounded), each target's stacks together.
        let mut by_target: Vec<Vec<PlanRow>> = vec![Vec::new(); fleet.manifest.targets.len()];
        let mut order = Vec::new();
        for (index, row) in planned.stacks.iter().enumerate() {
            let target = fleet.manifest.entries[index].target;
            by_target[target].push(row.clone());
            order.push((target, by_target[target].len() - 1));
        }
        let done: Vec<Vec<ApplyRow>> =
            futures_util::stream::iter(by_target.into_iter().enumerate())
                .map(|(t, rows)| {
                    let fleet = &fleet;
                    let pacer = &pacer;
                    async move {
                        futures_util::future::join_all(rows.into_iter().map(|row| {
                            let entry = fleet
                                .manifest
                                .entries
                                .iter()
                                .find(|e| {
                                    e.target == t
                                        && e.region == row.region
                                        && e.request.stack_name == row.stack_name
                                })
                                .cloned();
                            async move {
                                match (entry, &fleet.reached[t]) {
                                    (Some(entry), Ok(reached)) => {
                                        apply_one(session, reached, &entry, row, pacer).await
                                    }
                                    (_, Err(reason)) => {
                                        outcome(row, "failed", Some(reason.clone()))
                                    }
                                    (None, _) => {
                                        outcome(row, "failed", Some("not in the manifest".into()))
                                    }
                                }
                            }
                        }))
                        .await
                    }
                })
                .buffered(usize::from(self.parallel))
                .collect()
                .await;
        let stacks = order.into_iter().map(|(t, i)| done[t][i].clone()).collect();
        Ok(ApplyReport { stacks })
    }
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
            let address = key_info(clients.kms, &stack.key_id)
                .await
                .ok()
                .and_then(|k| k.address)
                .map(|a| a.to_string());
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

/// Holds the manifest's apply lock: two applies of one manifest at once race each other's
/// change sets on the same stacks. (Applies from two machines are not seen: a CI pipeline
/// runs one at a time.)
fn lock_manifest(path: &std::path::Path) -> Result<std::fs::File> {
    use std::hash::{Hash, Hasher};
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut hasher);
    let name = format!("apply-{:016x}.lock", hasher.finish());
    let lock = kms_eth_harness::process::state_dir("fleet").join(name);
    crate::lock::hold(&lock)?.map_err(|pid| {
        kms_eth_core::UsageError(format!(
            "another kms-eth fleet apply (pid {}) is applying {}; wait for it to finish \
             (two at once would race each other's change sets)",
            crate::lock::shown(pid),
            path.display()
        ))
        .into()
    })
}

/// Spaces the stacks created in each account and region.
#[derive(Debug, Default)]
struct Pacer {
    last: Mutex<HashMap<(String, String), Instant>>,
}

impl Pacer {
    /// Returns once a stack may be created in `account` and `region`. Each caller takes the
    /// next free slot of its place under the lock and waits for it outside, so that other
    /// places are not held up.
    async fn wait(&self, account: &str, region: &str) {
        let slot = {
            let mut last = self.last.lock().await;
            let now = Instant::now();
            let slot = match last.get(&(account.to_owned(), region.to_owned())) {
                Some(previous) => (*previous + CREATE_SPACING).max(now),
                None => now,
            };
            last.insert((account.to_owned(), region.to_owned()), slot);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}
