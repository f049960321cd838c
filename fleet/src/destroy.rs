//! `fleet destroy`: the guards of `destroy` for a whole fleet, in two steps. `prepare_destroy`
//! reads every stack and refuses unless each can be destroyed as it is; it hands back what
//! deleting each does to its key, for the caller to list, to check the funds at every address
//! whose key will be scheduled for deletion, and to confirm. Then `destroy` deletes them and
//! reads back what KMS says of each key. The funds check stays the caller's (its flags, its
//! nodes, its refusal): the plan it is given is all it needs, and nothing is deleted before
//! `destroy` is called.

use std::fmt;

use anyhow::{bail, Result};
use kms_eth_provisioner::{delete_account, key_info, RemovalPolicy};
use kms_eth_signer::{Address, KeyState};
use serde::Serialize;

use crate::inspect::{Found, Present};
use crate::table::table;
use crate::targets::per_target;
use crate::{Event, Fleet, Inspected, OnEvent, Verdict};

/// What destroy did to a stack (`outcome` in the JSON, spelt as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestroyOutcome {
    /// The stack was deleted.
    Deleted,
    /// There was no stack.
    Absent,
    /// The stack could not be deleted (or its target was not reached).
    Failed,
}

impl DestroyOutcome {
    /// The outcome as the JSON and the table spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DestroyOutcome::Deleted => "deleted",
            DestroyOutcome::Absent => "absent",
            DestroyOutcome::Failed => "failed",
        }
    }
}

/// The stacks a fleet destroy will delete, every one read: built by [`prepare_destroy`],
/// checked and confirmed by the caller, carried out by [`destroy`]. `C` is the caller's
/// record of the funds check at a key's address, reported with its stack (`balance_check`).
#[derive(Debug)]
pub struct DestroyPlan<C> {
    inspected: Vec<Inspected>,
    stacks: Vec<ToDelete<C>>,
}

/// One stack that will be deleted, and its key.
#[derive(Debug)]
pub struct ToDelete<C> {
    /// Its position among the inspected entries.
    position: usize,
    /// `target/region/account`.
    pub label: String,
    /// What deleting the stack does to the key: DESTROY when the stack's removal policy or
    /// its template's DeletionPolicy says so (or the template's cannot be read): the funds
    /// check goes by the worse of the two.
    pub removal: RemovalPolicy,
    /// The key's id.
    pub key_id: String,
    /// The key's state now.
    pub key_state: KeyState,
    /// The key's address; `None` when KMS does not hand out its public key (not enabled).
    pub address: Option<Address>,
    /// The deletion window the stack was made with, when it says.
    pub pending_window_days: Option<u8>,
    /// The caller's funds check of the address (DESTROY keys), reported with the stack.
    pub balance_check: Option<C>,
}

impl<C> DestroyPlan<C> {
    /// The stacks to delete, in the manifest's order.
    pub fn stacks(&self) -> &[ToDelete<C>] {
        &self.stacks
    }

    /// The stacks to delete, for the caller to record its funds checks on.
    pub fn stacks_mut(&mut self) -> &mut [ToDelete<C>] {
        &mut self.stacks
    }

    /// How many keys deleting the stacks schedules for deletion.
    pub fn destroys(&self) -> usize {
        self.stacks
            .iter()
            .filter(|s| s.removal == RemovalPolicy::Destroy)
            .count()
    }

    /// What becomes of each key, one line each: kept, or scheduled for deletion with its
    /// address and funds lost.
    pub fn fates(&self) -> Vec<String> {
        self.stacks
            .iter()
            .map(|s| {
                let address = s
                    .address
                    .map_or("(address unreadable: key not enabled)".to_owned(), |a| {
                        a.to_string()
                    });
                match s.removal {
                    RemovalPolicy::Retain => format!(
                        "{}: key {} kept (RETAIN): {address} stays usable",
                        s.label, s.key_id
                    ),
                    RemovalPolicy::Destroy => format!(
                        "{}: key {} SCHEDULED FOR DELETION after {} days (DESTROY): {address} and \
                         its funds are lost once it is deleted",
                        s.label,
                        s.key_id,
                        s.pending_window_days
                            .map_or("its pending".to_owned(), |d| d.to_string())
                    ),
                }
            })
            .collect()
    }
}

/// What became of each stack and its key.
#[derive(Debug, Serialize)]
pub struct DestroyReport<C> {
    pub stacks: Vec<DestroyRow<C>>,
}

/// One stack.
#[derive(Debug, Clone, Serialize)]
pub struct DestroyRow<C> {
    pub target: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub stack_name: String,
    /// `deleted`, `absent` (there was no stack) or `failed`.
    pub outcome: DestroyOutcome,
    pub removal_policy: Option<&'static str>,
    pub key_id: Option<String>,
    /// What KMS says of the key afterwards.
    pub key_state: Option<String>,
    pub deletion_date: Option<String>,
    pub address: Option<String>,
    /// The funds found at the address (DESTROY keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_check: Option<C>,
    pub detail: Option<String>,
}

impl<C> DestroyRow<C> {
    /// The row of a stack that was not there to delete.
    fn absent(i: &Inspected) -> DestroyRow<C> {
        DestroyRow {
            target: i.target.name.clone(),
            account_id: i.target.account_id.clone(),
            region: i.entry.region.clone(),
            name: i.entry.name.clone(),
            stack_name: i.entry.request.stack_name.clone(),
            outcome: DestroyOutcome::Absent,
            removal_policy: None,
            key_id: None,
            key_state: None,
            deletion_date: None,
            address: None,
            balance_check: None,
            detail: None,
        }
    }
}

impl<C> DestroyReport<C> {
    /// Failed if any stack failed to delete; else clean.
    pub fn verdict(&self) -> Verdict {
        if self
            .stacks
            .iter()
            .any(|r| r.outcome == DestroyOutcome::Failed)
        {
            Verdict::Failed
        } else {
            Verdict::Clean
        }
    }
}

impl<C> fmt::Display for DestroyReport<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let rows: Vec<Vec<String>> = self
            .stacks
            .iter()
            .map(|r| {
                vec![
                    r.target.clone(),
                    r.region.clone(),
                    r.name.clone(),
                    r.outcome.as_str().to_owned(),
                    r.removal_policy.unwrap_or_default().to_owned(),
                    text(&r.key_id),
                    text(&r.key_state),
                    text(&r.deletion_date),
                    text(&r.detail),
                ]
            })
            .collect();
        table(
            f,
            &[
                "TARGET",
                "REGION",
                "ACCOUNT",
                "OUTCOME",
                "REMOVAL",
                "KEY",
                "KEY STATE",
                "DELETION DATE",
                "DETAIL",
            ],
            &rows,
        )?;
        let deleted = self
            .stacks
            .iter()
            .filter(|r| r.outcome == DestroyOutcome::Deleted)
            .count();
        let scheduled = self
            .stacks
            .iter()
            .filter(|r| r.key_state.as_deref() == Some(KeyState::PendingDeletion.as_str()))
            .count();
        write!(
            f,
            "{deleted} stacks deleted; {scheduled} keys pending deletion (cancel with `kms-eth key \
             cancel-deletion KEY` in the key's account and region), the others kept"
        )
    }
}

/// Reads every stack of `fleet` (of the target `only` names, if given: the command line's
/// `--only`) and what deleting each does to its key. Refused, with nothing deleted, unless
/// every stack can be read and destroyed as it is: a stack that cannot be seen cannot have
/// its key's fate shown.
pub async fn prepare_destroy<C>(fleet: &Fleet, only: Option<&str>) -> Result<DestroyPlan<C>> {
    let inspected = fleet
        .inspect_all(|t| only.is_none_or(|o| o == t.name))
        .await;
    let unreadable: Vec<String> = inspected
        .iter()
        .filter_map(|i| match &i.found {
            Err(reason) => Some(format!("{}: {reason}", i.label())),
            Ok(Found::Busy { status }) => Some(format!("{}: busy ({status})", i.label())),
            Ok(Found::Refused { reason }) => Some(format!("{}: {reason}", i.label())),
            // Another manifest's stack, or one `deploy` made: not this fleet's to delete.
            Ok(Found::Present(p)) if !crate::plan::owned(&i.entry, p.fleet.as_deref()) => {
                Some(format!(
                    "{}: stack {} is not this fleet's (its {} tag is {}); give its entry adopt = \
                     true if this manifest is to own it",
                    i.label(),
                    i.entry.request.stack_name,
                    crate::manifest::FLEET_TAG,
                    p.fleet.as_deref().unwrap_or("missing")
                ))
            }
            _ => None,
        })
        .collect();
    if !unreadable.is_empty() {
        bail!(
            "nothing was deleted: these stacks cannot be destroyed as they are (leave their \
             target out with --only, or fix them first): {}",
            unreadable.join("; ")
        );
    }
    let stacks = inspected
        .iter()
        .enumerate()
        .filter_map(|(position, i)| match &i.found {
            Ok(Found::Present(p)) => Some(ToDelete {
                position,
                label: i.label(),
                removal: removal(p),
                key_id: p.key.key_id.clone(),
                key_state: p.key.state.clone(),
                address: p.key.address,
                pending_window_days: p.stack.pending_window_days,
                balance_check: None,
            }),
            _ => None,
        })
        .collect();
    Ok(DestroyPlan { inspected, stacks })
}

/// Deletes the stacks of `planned`, `parallel` targets at a time. It checks nothing itself:
/// the caller holds the manifest's lock, has checked the funds at every DESTROY key's address
/// (or been told to skip that) and had the deletion confirmed (the CLI's `fleet destroy`
/// does, in that order). It reports every entry: each deleted stack with its key's state as
/// KMS reports it afterwards, the others as absent. Each stack's progress goes to `on`.
pub async fn destroy<C>(
    fleet: &Fleet,
    planned: DestroyPlan<C>,
    parallel: usize,
    on: OnEvent<'_>,
) -> DestroyReport<C> {
    let DestroyPlan { inspected, stacks } = planned;
    let mut rows: Vec<DestroyRow<C>> = inspected.iter().map(DestroyRow::absent).collect();
    let inspected = &inspected;
    let items = stacks
        .into_iter()
        .filter_map(|stack| {
            let i = &inspected[stack.position];
            match &i.found {
                Ok(Found::Present(p)) => Some((i.entry.target, (stack, i, p.as_ref()))),
                _ => None,
            }
        })
        .collect();
    let deleted = per_target(items, parallel, |(stack, i, p)| async move {
        let position = stack.position;
        (
            position,
            destroy_one(fleet, i, p, stack.balance_check, on).await,
        )
    })
    .await;
    // Each deleted stack's row in place of its "absent" one.
    for (position, row) in deleted {
        rows[position] = row;
    }
    DestroyReport { stacks: rows }
}

/// Deletes one stack and reads back what KMS says of its key.
async fn destroy_one<C>(
    fleet: &Fleet,
    inspected: &Inspected,
    present: &Present,
    check: Option<C>,
    on: OnEvent<'_>,
) -> DestroyRow<C> {
    let mut row = DestroyRow {
        outcome: DestroyOutcome::Failed,
        removal_policy: Some(removal(present).as_str()),
        key_id: Some(present.key.key_id.clone()),
        key_state: Some(present.key.state.as_str().to_owned()),
        deletion_date: present.key.deletion_date.clone(),
        address: present.key.address.map(|a| a.to_string()),
        balance_check: check,
        ..DestroyRow::absent(inspected)
    };
    let clients = match &fleet.reached[inspected.entry.target] {
        Ok(reached) => reached.clients(&inspected.entry.region),
        Err(_) => None,
    };
    let Some(clients) = clients else {
        row.detail = Some("target not reached".into());
        return row;
    };
    let name = inspected.label();
    let mut progress = |progress: kms_eth_provisioner::Progress| {
        on(Event::Stack {
            label: &name,
            progress,
        })
    };
    let deleted = delete_account(
        clients.cloudformation,
        &present.stack,
        present.key.state == KeyState::PendingDeletion,
        &fleet.options,
        &mut progress,
    )
    .await;
    match deleted {
        Ok(()) => {
            row.outcome = DestroyOutcome::Deleted;
            on(Event::Note(format!("{name}: stack deleted")));
        }
        Err(err) => {
            on(Event::Warning(format!("{name}: {err}")));
            row.detail = Some(err.to_string());
        }
    }
    // What KMS says happened, not what the template promised, even after a failed delete
    // (which may have scheduled the key's deletion before it failed).
    match key_info(clients.kms, &present.key.key_id).await {
        Ok(after) => {
            row.key_state = Some(after.state.as_str().to_owned());
            row.deletion_date = after.deletion_date;
        }
        Err(err) => {
            row.key_state = Some("unknown".into());
            row.deletion_date = None;
            let read = format!("the key could not be read back: {err}");
            row.detail = Some(match row.detail.take() {
                Some(detail) => format!("{detail}; {read}"),
                None => read,
            });
        }
    }
    row
}

/// What deleting the stack does to the key: DESTROY when the stack's removal policy or its
/// template's DeletionPolicy says so (or the template's cannot be read): the funds check
/// goes by the worse of the two.
fn removal(present: &Present) -> RemovalPolicy {
    if present.deletes_key {
        RemovalPolicy::Destroy
    } else {
        RemovalPolicy::Retain
    }
}
