//! `kms-eth fleet`: many accounts across AWS accounts and regions from one manifest. This
//! module reads the manifest, reaches each target (its role assumed, or its profile, and
//! its account id checked), and inspects every stack; `plan`, `apply`, `status` and
//! `destroy` build on that.

pub mod apply;
pub mod destroy;
pub mod plan;
pub mod status;

use std::collections::HashMap;
use std::fmt;

use anyhow::{Context, Result};
use aws_config::Region;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::DisplayErrorContext;
use futures_util::StreamExt;
use kms_eth_core::UsageError;
use kms_eth_provisioner::fleet::{inspect, Clients, Found};
use kms_eth_provisioner::manifest::{Access, Entry, Manifest, Target as ManifestTarget};
use kms_eth_provisioner::{caller_principal, resolve, AccountSpec};
use serde::Serialize;

use crate::flags::{FleetCmd, ManifestArgs};
use crate::output::Report;
use crate::session::Session;
use crate::target::Target;

/// How many stacks are read at once.
const INSPECT_AT_ONCE: usize = 16;

/// What a fleet command printed; its exit code is the report's.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FleetOutput {
    /// `fleet plan`.
    Plan(plan::PlanReport),
    /// `fleet apply`.
    Apply(apply::ApplyReport),
    /// `fleet status`.
    Status(status::StatusReport),
    /// `fleet destroy`.
    Destroy(destroy::DestroyReport),
}

impl fmt::Display for FleetOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetOutput::Plan(r) => r.fmt(f),
            FleetOutput::Apply(r) => r.fmt(f),
            FleetOutput::Status(r) => r.fmt(f),
            FleetOutput::Destroy(r) => r.fmt(f),
        }
    }
}

impl Report for FleetOutput {
    fn exit_code(&self) -> u8 {
        match self {
            FleetOutput::Plan(r) => r.exit_code(),
            FleetOutput::Apply(r) => r.exit_code(),
            FleetOutput::Status(r) => r.exit_code(),
            FleetOutput::Destroy(r) => r.exit_code(),
        }
    }

    fn csv(&self) -> Option<String> {
        match self {
            FleetOutput::Status(r) if r.csv => Some(r.to_csv()),
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
                    kms_eth_node::Node::new(url)?;
                }
            }
            FleetCmd::Destroy(args) => destroy::check(args)?,
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

/// One target, reached: its clients per region and the principal its signer roles trust
/// when the manifest names none.
#[derive(Debug)]
pub struct Reached {
    regions: HashMap<String, RegionClients>,
    iam: aws_sdk_iam::Client,
    default_principal: String,
}

#[derive(Debug)]
struct RegionClients {
    cloudformation: aws_sdk_cloudformation::Client,
    kms: aws_sdk_kms::Client,
}

impl Reached {
    /// The clients of `region`.
    pub fn clients(&self, region: &str) -> Option<Clients<'_>> {
        self.regions.get(region).map(|r| Clients {
            cloudformation: &r.cloudformation,
            kms: &r.kms,
            iam: &self.iam,
        })
    }

    /// The stack an entry asks for, with this target's identity trusted when the manifest
    /// names no signer principals.
    pub fn spec(&self, entry: &Entry) -> AccountSpec {
        resolve(
            &entry.request,
            None,
            std::slice::from_ref(&self.default_principal),
        )
    }
}

/// The manifest's targets, each reached or the reason it could not be.
#[derive(Debug)]
pub struct Fleet {
    pub manifest: Manifest,
    pub reached: Vec<Result<Reached, String>>,
}

impl Fleet {
    /// Reaches every target of `manifest` at once (those `only` leaves out are skipped).
    pub async fn connect(session: &Session, manifest: Manifest, only: Option<&str>) -> Fleet {
        let reached = futures_util::future::join_all(manifest.targets.iter().map(|target| async {
            if only.is_some_and(|only| only != target.name) {
                return Err("not selected by --only".to_owned());
            }
            reach(session, target)
                .await
                .map_err(|err| format!("{err:#}"))
        }))
        .await;
        Fleet { manifest, reached }
    }

    /// The entries (of the targets reached, or not) in the manifest's order, each with its
    /// target's reach.
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = (&Entry, &ManifestTarget, &Result<Reached, String>)> {
        self.manifest
            .entries
            .iter()
            .map(|e| (e, &self.manifest.targets[e.target], &self.reached[e.target]))
    }

    /// Says, per target, which accounts name no signer principals and so trust the identity
    /// that deploys (often an organisation's admin role) to sign.
    pub fn note_default_principals(&self) {
        for (t, target) in self.manifest.targets.iter().enumerate() {
            let Ok(reached) = &self.reached[t] else {
                continue;
            };
            let mut names: Vec<&str> = Vec::new();
            for entry in &self.manifest.entries {
                if entry.target == t
                    && entry.request.signer_principals.is_empty()
                    && !names.contains(&entry.name.as_str())
                {
                    names.push(&entry.name);
                }
            }
            if !names.is_empty() {
                crate::msg::note(format!(
                    "target {}: {} name no signer_principals, so their signer roles trust {}, the \
                     identity that deploys them, to sign; name signer_principals to narrow it",
                    target.name,
                    names.join(", "),
                    reached.default_principal
                ));
            }
        }
    }

    /// Every entry's stack, inspected `INSPECT_AT_ONCE` at a time, in the manifest's order.
    pub async fn inspect_all(&self, selected: impl Fn(&ManifestTarget) -> bool) -> Vec<Inspected> {
        futures_util::stream::iter(self.entries().filter(|(_, t, _)| selected(t)))
            .map(|(entry, target, reached)| async move {
                let found = match reached {
                    Err(reason) => Err(reason.clone()),
                    Ok(reached) => match reached.clients(&entry.region) {
                        None => Err(format!("no clients for {}", entry.region)),
                        Some(clients) => inspect(clients, &reached.spec(entry))
                            .await
                            .map_err(|err| err.to_string()),
                    },
                };
                Inspected {
                    entry: entry.clone(),
                    target: target.clone(),
                    found,
                }
            })
            .buffered(INSPECT_AT_ONCE)
            .collect()
            .await
    }
}

/// One entry and what was found.
#[derive(Debug)]
pub struct Inspected {
    pub entry: Entry,
    pub target: ManifestTarget,
    pub found: Result<Found, String>,
}

/// Reaches one target: its credentials (the role assumed, or the profile, or the caller's),
/// checked to act in the manifest's account id, and a client of each service per region.
async fn reach(session: &Session, target: &ManifestTarget) -> Result<Reached> {
    let base = &session.config;
    let endpoint = target
        .endpoint_url
        .clone()
        .or_else(|| match &session.target {
            Target::LocalStack { endpoint, .. } => Some(endpoint.clone()),
            Target::Aws { endpoint, .. } => endpoint.clone(),
        });
    let mut config = match &target.access {
        Access::Caller => base.clone(),
        Access::AssumeRole {
            role_arn,
            external_id,
        } => {
            let mut builder = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name("kms-eth-fleet")
                .configure(base);
            if let Some(id) = external_id {
                builder = builder.external_id(id);
            }
            let provider = builder.build().await;
            base.to_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build()
        }
        Access::Profile(profile) => {
            Target::Aws {
                profile: Some(profile.clone()),
                region: base.region().map(ToString::to_string),
                endpoint: endpoint.clone(),
            }
            .sdk_config()
            .await
        }
    };
    if let Some(endpoint) = &endpoint {
        config = config.to_builder().endpoint_url(endpoint).build();
    }
    let how = match &target.access {
        Access::Caller => "with the credentials this command runs with".to_owned(),
        Access::AssumeRole { role_arn, .. } => format!("by assuming {role_arn}"),
        Access::Profile(profile) => format!("with profile {profile}"),
    };
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("{}", DisplayErrorContext(err)))
        .with_context(|| format!("cannot reach target {} {how}", target.name))?;
    let account = identity.account().unwrap_or_default();
    if account != target.account_id {
        return Err(UsageError(format!(
            "target {}: the credentials reached {how} act in account {account}, not in its \
             account_id {}; nothing was changed there",
            target.name, target.account_id
        ))
        .into());
    }
    let default_principal = match &target.access {
        Access::AssumeRole { role_arn, .. } => role_arn.clone(),
        _ => caller_principal(identity.arn().unwrap_or_default())
            .map_err(|err| UsageError(format!("target {}: {err}", target.name)))?,
    };
    let regional = |region: &str| {
        config
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build()
    };
    let regions = target
        .regions
        .iter()
        .map(|region| {
            let config = regional(region);
            (
                region.clone(),
                RegionClients {
                    cloudformation: aws_sdk_cloudformation::Client::new(&config),
                    kms: aws_sdk_kms::Client::new(&config),
                },
            )
        })
        .collect();
    // IAM is global: any region's endpoint answers for the whole account.
    let iam = aws_sdk_iam::Client::new(&regional(&target.regions[0]));
    tracing::debug!(target = %target.name, account, "fleet target reached");
    Ok(Reached {
        regions,
        iam,
        default_principal,
    })
}

/// Runs `work` on each of `items` (each with its target's index in the manifest),
/// `parallel` targets at a time and each target's items together, and returns the results
/// in the items' order: how apply and destroy go through a fleet.
pub async fn per_target<T, R, Fut>(
    items: Vec<(usize, T)>,
    parallel: usize,
    work: impl Fn(T) -> Fut,
) -> Vec<R>
where
    Fut: std::future::Future<Output = R>,
{
    let mut groups: std::collections::BTreeMap<usize, Vec<(usize, T)>> = Default::default();
    for (position, (target, item)) in items.into_iter().enumerate() {
        groups.entry(target).or_default().push((position, item));
    }
    let work = &work;
    let mut done: Vec<(usize, R)> = futures_util::stream::iter(groups.into_values())
        .map(|group| {
            futures_util::future::join_all(
                group
                    .into_iter()
                    .map(|(position, item)| async move { (position, work(item).await) }),
            )
        })
        .buffered(parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    done.sort_by_key(|(position, _)| *position);
    done.into_iter().map(|(_, result)| result).collect()
}

/// A table of text columns, each as wide as its widest cell, for the fleet reports.
pub fn table(f: &mut fmt::Formatter<'_>, header: &[&str], rows: &[Vec<String>]) -> fmt::Result {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: Vec<&str>| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(f, "{}", text.trim_end())
    };
    line(f, header.to_vec())?;
    for row in rows {
        line(f, row.iter().map(String::as_str).collect())?;
    }
    Ok(())
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
