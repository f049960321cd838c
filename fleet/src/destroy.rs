//! `kms-eth fleet destroy`: the guards of `destroy` for a whole fleet. Every key's fate is
//! listed first, the funds at every address whose key will be scheduled for deletion are
//! checked (or the check explicitly skipped), and one confirmation covers the lot; nothing
//! is deleted until every check passed.

use std::fmt;

use anyhow::{bail, Result};
use kms_eth_core::UsageError;
use kms_eth_provisioner::fleet::{Found, Present};
use kms_eth_provisioner::{delete_account, key_info, RemovalPolicy};
use kms_eth_signer::KeyState;
use serde::Serialize;

use super::{per_target, table, Fleet, Inspected};
use crate::commands::funds::FundsCheck;
use crate::flags::FleetDestroyArgs;
use crate::session::Session;
use crate::{msg, ui};
use kms_eth_node::Node;

/// The action named in the funds check's messages.
const DESTROYING: &str = "fleet destroy of stacks with removal policy DESTROY";

/// What became of each stack and its key.
#[derive(Debug, Serialize)]
pub struct DestroyReport {
    pub stacks: Vec<DestroyRow>,
}

/// One stack.
#[derive(Debug, Clone, Serialize)]
pub struct DestroyRow {
    pub target: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub stack_name: String,
    /// `deleted`, `absent` (there was no stack) or `failed`.
    pub outcome: &'static str,
    pub removal_policy: Option<&'static str>,
    pub key_id: Option<String>,
    /// What KMS says of the key afterwards.
    pub key_state: Option<String>,
    pub deletion_date: Option<String>,
    pub address: Option<String>,
    /// The funds found at the address (DESTROY keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_check: Option<FundsCheck>,
    pub detail: Option<String>,
}

impl DestroyRow {
    /// The row of a stack that was not there to delete.
    fn absent(i: &Inspected) -> DestroyRow {
        DestroyRow {
            target: i.target.name.clone(),
            account_id: i.target.account_id.clone(),
            region: i.entry.region.clone(),
            name: i.entry.name.clone(),
            stack_name: i.entry.request.stack_name.clone(),
            outcome: "absent",
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

impl DestroyReport {
    /// 1 if any stack failed to delete.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.stacks.iter().any(|r| r.outcome == "failed"))
    }
}

impl fmt::Display for DestroyReport {
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
                    r.outcome.to_owned(),
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
            .filter(|r| r.outcome == "deleted")
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

/// Checks the flags and the manifest before any call.
pub fn check(args: &FleetDestroyArgs) -> Result<()> {
    let manifest = args.manifest.load()?;
    if let Some(only) = &args.only {
        if !manifest.targets.iter().any(|t| &t.name == only) {
            let names: Vec<&str> = manifest.targets.iter().map(|t| t.name.as_str()).collect();
            return Err(UsageError(format!(
                "--only {only}: the manifest has no such target (its targets: {})",
                names.join(", ")
            ))
            .into());
        }
    }
    for url in &args.funds.rpc_urls {
        Node::new(url)?;
    }
    Ok(())
}

impl FleetDestroyArgs {
    pub async fn run(self, session: &Session) -> Result<DestroyReport> {
        let only = self.only.clone();
        let manifest = self.manifest.load()?;
        let _lock = self.manifest.lock("destroy")?;
        let fleet = Fleet::connect(session, manifest, only.as_deref()).await;
        let inspected = fleet
            .inspect_all(|t| only.as_deref().is_none_or(|o| o == t.name))
            .await;
        // Nothing is deleted unless every stack could be read: a stack that cannot be seen
        // cannot have its key's fate shown.
        let unreadable: Vec<String> = inspected
            .iter()
            .filter_map(|i| match &i.found {
                Err(reason) => Some(format!("{}: {reason}", label(i))),
                Ok(Found::Busy { status }) => Some(format!("{}: busy ({status})", label(i))),
                Ok(Found::Refused { reason }) => Some(format!("{}: {reason}", label(i))),
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
        let present: Vec<(&Inspected, &Present)> = inspected
            .iter()
            .filter_map(|i| match &i.found {
                Ok(Found::Present(p)) => Some((i, p.as_ref())),
                _ => None,
            })
            .collect();
        msg::note("what becomes of each key:");
        for (i, p) in &present {
            let address = p
                .key
                .address
                .map_or("(address unreadable: key not enabled)".to_owned(), |a| {
                    a.to_string()
                });
            msg::detail(match removal(p) {
                RemovalPolicy::Retain => format!(
                    "{}: key {} kept (RETAIN): {address} stays usable",
                    label(i),
                    p.key.key_id
                ),
                RemovalPolicy::Destroy => format!(
                    "{}: key {} SCHEDULED FOR DELETION after {} days (DESTROY): {address} and its \
                     funds are lost once it is deleted",
                    label(i),
                    p.key.key_id,
                    p.stack
                        .pending_window_days
                        .map_or("its pending".to_owned(), |d| d.to_string())
                ),
            });
        }
        // Every DESTROY key's funds are checked before anything is deleted.
        let mut checks = Vec::with_capacity(present.len());
        let destroys = present
            .iter()
            .filter(|(_, p)| removal(p) == RemovalPolicy::Destroy)
            .count();
        if destroys > 0 {
            self.funds.nodes(DESTROYING)?;
        }
        for (i, p) in &present {
            let check = match (removal(p), p.key.address) {
                (RemovalPolicy::Retain, _) => None,
                (RemovalPolicy::Destroy, Some(address)) => {
                    Some(self.funds.run(address, DESTROYING).await?)
                }
                (RemovalPolicy::Destroy, None) if self.funds.force => None,
                (RemovalPolicy::Destroy, None) => bail!(
                    "nothing was deleted: the address of {} (key {}, state {}) cannot be read, so \
                     its balance cannot be checked; pass --force to destroy anyway",
                    label(i),
                    p.key.key_id,
                    p.key.state.as_str()
                ),
            };
            checks.push(check);
        }
        if !present.is_empty() {
            ui::confirm(
                format!(
                    "Delete {} stack(s), scheduling {destroys} key(s) for deletion?",
                    present.len()
                ),
                self.yes,
            )
            .await?;
        }
        let mut rows: Vec<DestroyRow> = inspected.iter().map(DestroyRow::absent).collect();
        let fleet = &fleet;
        let items = present
            .iter()
            .zip(checks)
            .map(|((i, p), check)| (i.entry.target, (*i, *p, check)))
            .collect();
        let deleted = per_target(items, usize::from(self.parallel), |(i, p, check)| {
            destroy_one(session, fleet, i, p, check)
        })
        .await;
        // Each deleted stack's row in place of its "absent" one (`present` keeps the order
        // of `inspected`).
        let positions = inspected
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.found, Ok(Found::Present(_))))
            .map(|(index, _)| index);
        for (index, row) in positions.zip(deleted) {
            rows[index] = row;
        }
        Ok(DestroyReport { stacks: rows })
    }
}

/// Deletes one stack and reads back what KMS says of its key.
async fn destroy_one(
    session: &Session,
    fleet: &Fleet,
    inspected: &Inspected,
    present: &Present,
    check: Option<FundsCheck>,
) -> DestroyRow {
    let mut row = DestroyRow {
        outcome: "failed",
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
    let name = label(inspected);
    let mut progress = |p: kms_eth_provisioner::Progress| ui::show_progress_of(&name, p);
    let deleted = delete_account(
        clients.cloudformation,
        &present.stack,
        present.key.state == KeyState::PendingDeletion,
        &session.deploy_options(),
        &mut progress,
    )
    .await;
    match deleted {
        Ok(()) => {
            row.outcome = "deleted";
            msg::note(format!("{name}: stack deleted"));
        }
        Err(err) => {
            msg::warn(format!("{name}: {err}"));
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

fn label(i: &Inspected) -> String {
    format!("{}/{}/{}", i.target.name, i.entry.region, i.entry.name)
}
