//! Reaching a fleet's targets and reading its stacks: each target once (its role assumed,
//! or its profile, or the caller's credentials; then `GetCallerIdentity` must name the
//! manifest's account id), with a client of each service per region built from the SDK
//! configuration the caller hands in; then every entry's stack inspected, 16 at a time, in
//! the manifest's order. `per_target` is how apply and destroy go through a fleet.

use std::collections::HashMap;
use std::fmt;

use anyhow::{anyhow, Context, Result};
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::error::DisplayErrorContext;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use kms_eth_provisioner::{caller_principal, resolve, AccountSpec, DeployOptions};

use crate::inspect::{inspect, Clients, Found};
use crate::manifest::{Access, Entry, Manifest, Target as ManifestTarget};

/// How many stacks are read at once.
const INSPECT_AT_ONCE: usize = 16;

/// What the caller hands the fleet to reach its targets from (the command line: its
/// session's).
#[derive(Debug)]
pub struct Base<'a> {
    /// The command's own SDK configuration: the credentials roles are assumed with and
    /// caller targets are reached with, its region, retries and timeouts.
    pub config: &'a SdkConfig,
    /// The endpoint of every call to a target that names none (LocalStack's, or the
    /// command's explicit endpoint); `None`: AWS's.
    pub endpoint: Option<String>,
    /// How a target's `profile` becomes an SDK configuration.
    pub profiles: &'a dyn Profiles,
    /// How apply and destroy poll CloudFormation and how long they wait.
    pub deploy_options: DeployOptions,
}

/// How a named profile of the AWS configuration files becomes an SDK configuration: the
/// caller's way, so that a profile target gets the retries and timeouts of the command's own
/// configuration.
pub trait Profiles: fmt::Debug + Sync {
    /// The SDK configuration of `profile`, in `region` (the command's), with `endpoint` if
    /// given.
    fn sdk_config<'a>(
        &'a self,
        profile: &'a str,
        region: Option<String>,
        endpoint: Option<String>,
    ) -> BoxFuture<'a, SdkConfig>;
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
    lambda: Option<kms_eth_provisioner::LambdaReader>,
}

impl Reached {
    /// The clients of `region`.
    pub fn clients(&self, region: &str) -> Option<Clients<'_>> {
        self.regions.get(region).map(|r| Clients {
            cloudformation: &r.cloudformation,
            kms: &r.kms,
            iam: &self.iam,
            lambda: r.lambda.as_ref(),
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
    /// How apply and destroy poll and wait (the caller's).
    pub(crate) options: DeployOptions,
}

impl Fleet {
    /// Reaches every target of `manifest` at once (those `only` leaves out are skipped:
    /// the command line's `--only`).
    pub async fn connect(base: &Base<'_>, manifest: Manifest, only: Option<&str>) -> Fleet {
        let reached = futures_util::future::join_all(manifest.targets.iter().map(|target| async {
            if only.is_some_and(|only| only != target.name) {
                return Err("not selected by --only".to_owned());
            }
            reach(base, target).await.map_err(|err| format!("{err:#}"))
        }))
        .await;
        Fleet {
            manifest,
            reached,
            options: base.deploy_options.clone(),
        }
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

    /// One note per target whose accounts name no signer principals and so trust the
    /// identity that deploys (often an organisation's admin role) to sign.
    pub fn default_principal_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
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
                notes.push(format!(
                    "target {}: {} name no signer_principals, so their signer roles trust {}, the \
                     identity that deploys them, to sign; name signer_principals to narrow it",
                    target.name,
                    names.join(", "),
                    reached.default_principal
                ));
            }
        }
        notes
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

impl Inspected {
    /// The stack as progress and messages name it: `target/region/account`.
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}",
            self.target.name, self.entry.region, self.entry.name
        )
    }
}

/// Reaches one target: its credentials (the role assumed, or the profile, or the caller's),
/// checked to act in the manifest's account id, and a client of each service per region.
async fn reach(base: &Base<'_>, target: &ManifestTarget) -> Result<Reached> {
    let endpoint = target
        .endpoint_url
        .clone()
        .or_else(|| base.endpoint.clone());
    let mut config = match &target.access {
        Access::Caller => base.config.clone(),
        Access::AssumeRole {
            role_arn,
            external_id,
        } => {
            let mut builder = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name("kms-eth-fleet")
                .configure(base.config);
            if let Some(id) = external_id {
                builder = builder.external_id(id);
            }
            let provider = builder.build().await;
            base.config
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build()
        }
        Access::Profile(profile) => {
            let region = base.config.region().map(ToString::to_string);
            base.profiles
                .sdk_config(profile, region, endpoint.clone())
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
        .map_err(|err| anyhow!("{}", DisplayErrorContext(err)))
        .with_context(|| format!("cannot reach target {} {how}", target.name))?;
    let account = identity.account().unwrap_or_default();
    if account != target.account_id {
        return Err(anyhow!(
            "target {}: the credentials reached {how} act in account {account}, not in its \
             account_id {}; nothing was changed there",
            target.name,
            target.account_id
        ));
    }
    let default_principal = match &target.access {
        Access::AssumeRole { role_arn, .. } => role_arn.clone(),
        _ => caller_principal(identity.arn().unwrap_or_default())
            .map_err(|err| anyhow!("target {}: {err}", target.name))?,
    };
    let regional = |region: &str| {
        config
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build()
    };
    // Lambda's API is spoken without an SDK client: it takes the credentials themselves.
    let credentials = match config.credentials_provider() {
        Some(provider) => provider.provide_credentials().await.ok(),
        None => None,
    };
    let regions = target
        .regions
        .iter()
        .map(|region| {
            let config = regional(region);
            let lambda = credentials.clone().and_then(|c| {
                kms_eth_provisioner::LambdaReader::new(region, c, endpoint.clone()).ok()
            });
            (
                region.clone(),
                RegionClients {
                    cloudformation: aws_sdk_cloudformation::Client::new(&config),
                    kms: aws_sdk_kms::Client::new(&config),
                    lambda,
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
pub(crate) async fn per_target<T, R, Fut>(
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
