//! `kms-eth fleet`: the command line of the fleet (`kms-eth-fleet`, which plans, applies,
//! lists and destroys). Here: the manifest read and checked before any call, the session's
//! SDK configuration and target handed to the fleet, the manifest's lock for apply and
//! destroy, the plan shown and confirmed, the funds check and confirmation before a destroy
//! deletes anything, the fleet's events as messages, and its reports as the output (their
//! verdicts become exit codes in main.rs's table).

use std::fmt;

use anyhow::{bail, Result};
use aws_config::SdkConfig;
use futures_util::future::BoxFuture;
use kms_eth_core::UsageError;
use kms_eth_fleet::{
    apply, destroy, plan, prepare_destroy, status, ApplyReport, Base, DestroyReport, Event, Fleet,
    Manifest, PlanReport, Profiles, StatusReport, UnmanagedStack, Verdict,
};
use kms_eth_node::Node;
use kms_eth_provisioner::{RemovalPolicy, PARAM_REMOVAL_POLICY, PARAM_SIGNER_PRINCIPALS};
use serde::Serialize;

use crate::commands::funds::FundsCheck;
use crate::flags::{
    FleetApplyArgs, FleetCmd, FleetDestroyArgs, FleetPlanArgs, FleetStatusArgs, ManifestArgs,
};
use crate::output::Report;
use crate::session::Session;
use crate::target::Target;
use crate::{msg, ui};

/// The action named in the funds check's messages.
const DESTROYING: &str = "fleet destroy of stacks with removal policy DESTROY";

/// What a fleet command printed; its exit code comes from the report's verdict.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FleetOutput {
    /// `fleet plan`.
    Plan(PlanReport),
    /// `fleet apply`.
    Apply(ApplyReport),
    /// `fleet status`.
    Status(StatusOutput),
    /// `fleet destroy`, with the funds check of each DESTROY key.
    Destroy(DestroyReport<FundsCheck>),
}

/// The address book, and whether it was asked for as CSV.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct StatusOutput {
    pub report: StatusReport,
    /// `--csv` was asked for.
    #[serde(skip)]
    pub csv: bool,
}

impl fmt::Display for FleetOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetOutput::Plan(r) => r.fmt(f),
            FleetOutput::Apply(r) => r.fmt(f),
            FleetOutput::Status(r) => r.report.fmt(f),
            FleetOutput::Destroy(r) => r.fmt(f),
        }
    }
}

impl Report for FleetOutput {
    fn verdict(&self) -> Verdict {
        match self {
            FleetOutput::Plan(r) => r.verdict(),
            FleetOutput::Apply(r) => r.verdict(),
            FleetOutput::Status(r) => r.report.verdict(),
            FleetOutput::Destroy(r) => r.verdict(),
        }
    }

    fn csv(&self) -> Option<String> {
        match self {
            FleetOutput::Status(r) if r.csv => Some(r.report.to_csv()),
            _ => None,
        }
    }
}

impl FleetCmd {
    /// Every check before anything is called: the manifest is read and checked in full.
    pub fn check(&self, json: bool) -> Result<()> {
        match self {
            FleetCmd::Plan(args) => drop(args.manifest.load()?),
            FleetCmd::Apply(args) => drop(args.manifest.load()?),
            FleetCmd::Status(args) => {
                args.manifest.load()?;
                if args.csv && json {
                    return Err(UsageError(
                        "--csv and --json each choose the output: give one".into(),
                    )
                    .into());
                }
                if let Some(url) = &args.rpc_url {
                    Node::new(url)?;
                }
            }
            FleetCmd::Destroy(args) => check_destroy(args)?,
        }
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<FleetOutput> {
        Ok(match self {
            FleetCmd::Plan(args) => FleetOutput::Plan(args.run(session).await?),
            FleetCmd::Apply(args) => FleetOutput::Apply(args.run(session).await?),
            FleetCmd::Status(args) => FleetOutput::Status(args.run(session).await?),
            FleetCmd::Destroy(args) => FleetOutput::Destroy(args.run(session).await?),
        })
    }
}

impl ManifestArgs {
    /// The manifest, read and checked; any fault is a usage error naming the line and field.
    pub fn load(&self) -> Result<Manifest> {
        let path = &self.manifest;
        let text = std::fs::read_to_string(path).map_err(|err| {
            UsageError(format!("cannot read --manifest {}: {err}", path.display()))
        })?;
        Manifest::parse(&path.display().to_string(), &text)
            .map_err(|err| UsageError(err.to_string()).into())
    }

    /// Holds the manifest's lock for `what` (apply or destroy) until the file is dropped:
    /// two of them on one manifest at once race each other's changes to the same stacks
    /// (an apply creating what a destroy deletes, two destroys deleting one stack). Runs
    /// from two machines are not seen: a CI pipeline runs one at a time.
    pub fn lock(&self, what: &str) -> Result<std::fs::File> {
        use std::hash::{Hash, Hasher};
        let path = &self.manifest;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        canonical.hash(&mut hasher);
        // One lock for apply and destroy (the name is the apply lock's, so that an apply
        // of an older kms-eth is seen too).
        let name = format!("apply-{:016x}.lock", hasher.finish());
        let lock = kms_eth_harness::process::state_dir("fleet").join(name);
        kms_eth_service::lock::hold(&lock)?.map_err(|pid| {
            UsageError(format!(
                "another kms-eth fleet apply or destroy (pid {}) is working on {}; wait for \
                 it to finish before this {what} (two at once would race each other's \
                 changes to the same stacks)",
                kms_eth_service::lock::shown(pid),
                path.display()
            ))
            .into()
        })
    }
}

/// The session as the fleet's starting point: its SDK configuration (credentials, region,
/// retries, timeouts), its endpoint for targets that name none, and its polling.
fn base(session: &Session) -> Base<'_> {
    Base {
        config: &session.config,
        endpoint: match &session.target {
            Target::LocalStack { endpoint, .. } => Some(endpoint.clone()),
            Target::Aws { endpoint, .. } => endpoint.clone(),
        },
        profiles: &AwsProfiles,
        deploy_options: session.deploy_options(),
    }
}

/// A target's `profile`, read as `--target aws --profile` reads one.
#[derive(Debug)]
struct AwsProfiles;

impl Profiles for AwsProfiles {
    fn sdk_config<'a>(
        &'a self,
        profile: &'a str,
        region: Option<String>,
        endpoint: Option<String>,
    ) -> BoxFuture<'a, SdkConfig> {
        Box::pin(async move {
            Target::Aws {
                profile: Some(profile.to_owned()),
                region,
                endpoint,
            }
            .sdk_config()
            .await
        })
    }
}

/// Shows what the fleet says as it works, on stderr.
fn show(event: Event<'_>) {
    match event {
        Event::Stack { label, progress } => ui::show_progress_of(label, progress),
        Event::Note(note) => msg::note(note),
        Event::Warning(warning) => msg::warn(warning),
    }
}

/// Connects to the manifest's targets and says which accounts trust the deploying identity.
async fn connect(session: &Session, manifest: Manifest) -> Fleet {
    let fleet = Fleet::connect(&base(session), manifest, None).await;
    for note in fleet.default_principal_notes() {
        msg::note(note);
    }
    fleet
}

impl FleetPlanArgs {
    pub async fn run(self, session: &Session) -> Result<PlanReport> {
        let fleet = connect(session, self.manifest.load()?).await;
        Ok(plan(&fleet, true, &show).await)
    }
}

impl FleetApplyArgs {
    /// The plan, shown and confirmed, then carried out.
    pub async fn run(self, session: &Session) -> Result<ApplyReport> {
        let manifest = self.manifest.load()?;
        let _lock = self.manifest.lock("apply")?;
        let _stacks = lock_stacks(&manifest, None, "fleet apply")?;
        let fleet = connect(session, manifest).await;
        let planned = plan(&fleet, false, &show).await;
        msg::note("the plan:");
        for line in planned.to_string().lines() {
            msg::detail(line);
        }
        // A renamed target or account leaves its old stack, key and funds where they were,
        // and apply makes new ones: said before the question.
        warn_unmanaged(&planned.unmanaged_stacks);
        confirm_trust_changes(&planned, self.allow_trust_change, self.yes).await?;
        let changes = planned.stacks.iter().filter(|r| r.is_change()).count();
        if changes > 0 {
            ui::confirm(
                format!("Apply {changes} change(s) to the fleet's stacks?"),
                self.yes,
            )
            .await?;
        }
        Ok(apply(&fleet, planned, usize::from(self.parallel), &show).await)
    }
}

/// The lock of every stack of the manifest (of the target `only` names, when given), held
/// until dropped: a copy of the manifest, or a single-stack command, cannot change one of them
/// meanwhile.
fn lock_stacks(manifest: &Manifest, only: Option<&str>, what: &str) -> Result<Vec<std::fs::File>> {
    manifest
        .entries
        .iter()
        .filter(|e| only.is_none_or(|name| manifest.targets[e.target].name == name))
        .map(|e| {
            let target = &manifest.targets[e.target];
            crate::stack_lock::hold(&target.account_id, &e.region, &e.request.stack_name, what)
        })
        .collect()
}

/// The plan's changes of who may sign or what happens to a key, in a section of their own:
/// refused without `--allow-trust-change`, then confirmed on their own (the bulk question
/// follows), so a manifest edit cannot move keys between signers under one `--yes`.
async fn confirm_trust_changes(planned: &PlanReport, allowed: bool, yes: bool) -> Result<()> {
    let guarded: Vec<String> = planned
        .stacks
        .iter()
        .filter(|row| row.is_change())
        .flat_map(|row| {
            row.changes
                .iter()
                .filter(|c| {
                    c.starts_with(&format!("{PARAM_SIGNER_PRINCIPALS}:"))
                        || c.starts_with(&format!("{PARAM_REMOVAL_POLICY}:"))
                })
                .map(move |c| format!("{}/{}/{}: {c}", row.target, row.region, row.name))
        })
        .collect();
    if guarded.is_empty() {
        return Ok(());
    }
    msg::note("changes of who may sign or of what happens to a key:");
    for change in &guarded {
        msg::detail(change);
    }
    if !allowed {
        return Err(UsageError(format!(
            "the plan changes who may sign or the removal policy of {} stack(s) (above); apply \
             them with --allow-trust-change (and confirm), or change the manifest back. Nothing \
             was changed",
            guarded.len()
        ))
        .into());
    }
    ui::confirm(
        format!(
            "Change who may sign or the removal policy as listed ({} change(s))?",
            guarded.len()
        ),
        yes,
    )
    .await
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

impl FleetStatusArgs {
    pub async fn run(self, session: &Session) -> Result<StatusOutput> {
        let fleet = Fleet::connect(&base(session), self.manifest.load()?, None).await;
        let node = self.rpc_url.as_deref().map(Node::new).transpose()?;
        Ok(StatusOutput {
            report: status(&fleet, node.as_ref()).await,
            csv: self.csv,
        })
    }
}

/// Checks `fleet destroy`'s flags and the manifest before any call.
fn check_destroy(args: &FleetDestroyArgs) -> Result<()> {
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
    args.funds.check_urls()
}

impl FleetDestroyArgs {
    /// The guards of `destroy` for a whole fleet: every key's fate listed, the funds at every
    /// address whose key will be scheduled for deletion checked (or the check explicitly
    /// skipped), and one confirmation for the lot; nothing is deleted until every check
    /// passed.
    pub async fn run(self, session: &Session) -> Result<DestroyReport<FundsCheck>> {
        let only = self.only.clone();
        let manifest = self.manifest.load()?;
        let _lock = self.manifest.lock("destroy")?;
        let _stacks = lock_stacks(&manifest, only.as_deref(), "fleet destroy")?;
        let fleet = Fleet::connect(&base(session), manifest, only.as_deref()).await;
        let mut planned = prepare_destroy(&fleet, only.as_deref()).await?;
        msg::note("what becomes of each key:");
        for fate in planned.fates() {
            msg::detail(fate);
        }
        // Every DESTROY key's funds are checked before anything is deleted.
        let destroys = planned.destroys();
        if destroys > 0 {
            self.funds.nodes(DESTROYING)?;
        }
        for stack in planned.stacks_mut() {
            stack.balance_check = match (stack.removal, stack.address) {
                (RemovalPolicy::Retain, _) => None,
                (RemovalPolicy::Destroy, Some(address)) => {
                    Some(self.funds.run(address, DESTROYING).await?)
                }
                (RemovalPolicy::Destroy, None) if self.funds.force => None,
                (RemovalPolicy::Destroy, None) => bail!(
                    "nothing was deleted: the address of {} (key {}, state {}) cannot be read, so \
                     its balance cannot be checked; pass --force to destroy anyway",
                    stack.label,
                    stack.key_id,
                    stack.key_state.as_str()
                ),
            };
        }
        let count = planned.stacks().len();
        if count > 0 {
            ui::confirm(
                format!("Delete {count} stack(s), scheduling {destroys} key(s) for deletion?"),
                self.yes,
            )
            .await?;
        }
        Ok(destroy(&fleet, planned, usize::from(self.parallel), &show).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_and_a_destroy_of_one_manifest_cannot_run_at_once() {
        let manifest = std::env::temp_dir().join(format!(
            "kms-eth-lock-test-{}-fleet.toml",
            std::process::id()
        ));
        std::fs::write(&manifest, "").unwrap();
        let args = ManifestArgs {
            manifest: manifest.clone(),
        };
        let applying = args.lock("apply").unwrap();
        // flock is per open file: a second lock in this same process is refused as another
        // process's would be, with the holder's pid.
        let refused = args.lock("destroy").unwrap_err().to_string();
        assert!(
            refused.contains(&format!(
                "another kms-eth fleet apply or destroy (pid {})",
                std::process::id()
            )) && refused.contains("before this destroy"),
            "{refused}"
        );
        assert!(args.lock("apply").is_err());
        drop(applying);
        // Released with its holder.
        drop(args.lock("destroy").unwrap());
        let _ = std::fs::remove_file(&manifest);
    }
}
