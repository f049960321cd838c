//! The fleet manifest (`kms-eth fleet --manifest F`): a TOML file of targets (an AWS account,
//! its regions and how to reach it) and the Ethereum accounts each holds, read into one flat
//! list of stacks. Every field is checked here, before anything is called, and a mistake is
//! refused with the line and the field. Pure code. This module reads the file and flattens
//! it into entries (with the checks across fields and entries); `fields` holds the checks of
//! single fields that serde runs as it reads.

mod fields;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use kms_eth_provisioner::{
    validate_stack_name, AccountRequest, RemovalPolicy, DEFAULT_PENDING_WINDOW_DAYS,
};
use serde::Deserialize;
use toml::Spanned;

use fields::access;

/// The AWS regions a manifest may name. A region not here is taken for a typo (`us-esat-1`
/// would otherwise fail only when its first call does not resolve, after other targets were
/// changed); a region AWS opens later is added here.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// The most tags AWS allows on a stack (and on a KMS key, which gets the stack's).
pub const MAX_TAGS: usize = 50;

/// The partition of a region: `aws-cn` for China, `aws-us-gov` for GovCloud, else `aws`.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// A manifest that cannot be used, with the line and field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

/// How the fleet reaches a target's AWS account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// With the credentials the command runs with (the target is that account).
    Caller,
    /// By assuming this role (from the credentials the command runs with).
    AssumeRole {
        /// The role's ARN.
        role_arn: String,
        /// The external id the role's trust policy asks for, if any.
        external_id: Option<String>,
    },
    /// With a named profile of the AWS configuration files.
    Profile(String),
}

/// One target: an AWS account, the regions used in it, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target's name in the manifest (the first half of its stacks' names).
    pub name: String,
    /// The 12-digit AWS account id; the credentials reached through `access` must act in it.
    pub account_id: String,
    /// Its regions, in the manifest's order.
    pub regions: Vec<String>,
    /// How it is reached.
    pub access: Access,
    /// An endpoint for every call to it (LocalStack), else the command's own.
    pub endpoint_url: Option<String>,
}

/// One Ethereum account of the manifest in one region: one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index of its target in [`Manifest::targets`].
    pub target: usize,
    /// The region.
    pub region: String,
    /// The account's name in the manifest.
    pub name: String,
    /// The stack as `deploy` takes it. Signer principals left empty mean the identity
    /// that deploys it in its target (the role assumed, or the caller). Its tags include
    /// [`FLEET_TAG`] with the manifest's id.
    pub request: AccountRequest,
    /// `adopt = true`: the stack may exist without this fleet's tag (made by `deploy` or an
    /// older kms-eth), and apply takes it over.
    pub adopt: bool,
}

/// The tag on every stack a manifest deploys (and so on its key): the manifest's `id`. A
/// stack without this manifest's value is not the fleet's, and apply refuses it unless its
/// entry says `adopt = true`.
pub const FLEET_TAG: &str = "kms-eth:fleet";

/// The id of a manifest that names none.
pub const DEFAULT_FLEET_ID: &str = "default";

/// A checked manifest: its targets and, in the manifest's order (target, then region, then
/// account), every stack it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The targets, in the manifest's order.
    pub targets: Vec<Target>,
    /// One entry per target, region and account.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The fleet's id, its stacks' [`FLEET_TAG`]: one per manifest, kept when the manifest
    /// is edited or copied.
    #[serde(default)]
    id: Option<Spanned<String>>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    target: Vec<TargetFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default, deserialize_with = "fields::removal_policy")]
    removal_policy: Option<RemovalPolicy>,
    #[serde(default, deserialize_with = "fields::pending_window")]
    pending_window_days: Option<u8>,
    #[serde(default, deserialize_with = "fields::region")]
    region: Option<String>,
    #[serde(default, deserialize_with = "fields::principals")]
    signer_principals: Option<Vec<String>>,
    #[serde(default, deserialize_with = "fields::tags")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "fields::endpoint")]
    endpoint_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    #[serde(deserialize_with = "fields::name")]
    name: Spanned<String>,
    #[serde(deserialize_with = "fields::account_id")]
    account_id: String,
    #[serde(default, deserialize_with = "fields::regions")]
    regions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "fields::role_arn")]
    assume_role: Option<Spanned<String>>,
    #[serde(default)]
    external_id: Option<Spanned<String>>,
    #[serde(default)]
    profile: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "fields::endpoint")]
    endpoint_url: Option<String>,
    #[serde(default, deserialize_with = "fields::principals")]
    signer_principals: Option<Vec<String>>,
    #[serde(default, deserialize_with = "fields::tags")]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    account: Vec<AccountFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    #[serde(deserialize_with = "fields::name")]
    name: Spanned<String>,
    #[serde(default)]
    stack_name: Option<Spanned<String>>,
    #[serde(default)]
    alias: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "fields::removal_policy")]
    removal_policy: Option<RemovalPolicy>,
    #[serde(default, deserialize_with = "fields::pending_window")]
    pending_window_days: Option<u8>,
    #[serde(default, deserialize_with = "fields::principals")]
    signer_principals: Option<Vec<String>>,
    #[serde(default, deserialize_with = "fields::tags")]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    adopt: bool,
}

impl Manifest {
    /// Reads and checks a manifest's text. `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Manifest, ManifestError> {
        let src = Source { name: source, text };
        let file = src.read()?;
        let id = match &file.id {
            Some(id) => {
                let text = id.get_ref();
                let ok = !text.is_empty()
                    && text.len() <= 128
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(src.at(
                        id.span(),
                        "id",
                        format!("{text:?} is not a fleet id: 1-128 letters, digits, -, _ or ."),
                    ));
                }
                text.clone()
            }
            None => DEFAULT_FLEET_ID.to_owned(),
        };
        let mut targets = Vec::new();
        let mut entries = Vec::new();
        let mut taken = Taken::default();
        // Target by target and account by account, each checked (and its stacks and aliases
        // claimed) before the next: of faults in several, the first in the file is reported.
        for (t, target) in file.target.iter().enumerate() {
            let resolved = src.target(&file.target[..t], target, &file.defaults)?;
            let partition = resolved.regions.first().map(|r| partition_of(r));
            for (a, account) in target.account.iter().enumerate() {
                let earlier = &target.account[..a];
                let stack = src.stack(target, earlier, account, &file.defaults, partition, &id)?;
                for region in &resolved.regions {
                    taken.claim(&src, target, account, &stack, region)?;
                    entries.push(Entry {
                        target: t,
                        region: region.clone(),
                        name: account.name.get_ref().clone(),
                        request: stack.request.clone(),
                        adopt: account.adopt,
                    });
                }
            }
            targets.push(resolved);
        }
        sort_by_region(&mut entries, &targets);
        Ok(Manifest { targets, entries })
    }

    /// The target of `entry`.
    pub fn target_of(&self, entry: &Entry) -> &Target {
        &self.targets[entry.target]
    }
}

/// The manifest being read: its name and text, into which errors point by line.
#[derive(Debug)]
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// The line (from 1) of byte `offset` of the text.
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// The error for `field` at `span`: the manifest, the line, the field and why.
    fn at(&self, span: Range<usize>, field: &str, reason: String) -> ManifestError {
        let line = self.line(span.start);
        ManifestError(format!(
            "invalid manifest {}, line {line}, {field}: {reason}",
            self.name
        ))
    }

    /// Reads the TOML (serde runs each field's own check) and refuses a manifest of no target.
    fn read(&self) -> Result<File, ManifestError> {
        let file: File = toml::from_str(self.text)
            .map_err(|err| ManifestError(format!("invalid manifest {}: {err}", self.name)))?;
        if file.target.is_empty() {
            return Err(ManifestError(format!(
                "invalid manifest {}: it has no [[target]]; add one per AWS account (see \
                 README, \"Fleets\")",
                self.name
            )));
        }
        Ok(file)
    }

    /// Checks one target: a name no `earlier` target has, its access, some regions, all in
    /// one partition with its role, and some accounts; resolves it with `defaults`.
    fn target(
        &self,
        earlier: &[TargetFile],
        target: &TargetFile,
        defaults: &Defaults,
    ) -> Result<Target, ManifestError> {
        let target_name = target.name.get_ref();
        if let Some(other) = earlier
            .iter()
            .find(|other| other.name.get_ref() == target_name)
        {
            let line = self.line(other.name.span().start);
            return Err(self.at(
                target.name.span(),
                "target.name",
                format!("{target_name:?} is also the name of the target on line {line}; names must be unique"),
            ));
        }
        let access = access(target, &|span, field, reason| self.at(span, field, reason))?;
        let regions = match (&target.regions, &defaults.region) {
            (Some(regions), _) => regions.clone(),
            (None, Some(region)) => vec![region.clone()],
            (None, None) => {
                return Err(self.at(
                    target.name.span(),
                    "target.regions",
                    format!("target {target_name:?} names no regions and [defaults] has no region; give regions = [\"us-east-1\", ...]"),
                ))
            }
        };
        // Regions, roles and principals of one target must be of one partition: AWS
        // (aws), China (aws-cn) or GovCloud (aws-us-gov) credentials reach only theirs.
        if let Some(partition) = regions.first().map(|r| partition_of(r)) {
            if let Some(other) = regions.iter().find(|r| partition_of(r) != partition) {
                return Err(self.at(
                    target.name.span(),
                    "target.regions",
                    format!(
                        "{other} is in partition {}, the other regions of target {target_name:?} in {partition}: one set of credentials reaches one partition; make them two targets",
                        partition_of(other)
                    ),
                ));
            }
            if let Some(role) = &target.assume_role {
                let role_partition = role.get_ref().split(':').nth(1).unwrap_or_default();
                if role_partition != partition {
                    return Err(self.at(
                        role.span(),
                        "target.assume_role",
                        format!("the role is in partition {role_partition}, the target's regions in {partition} (arn:{partition}:iam::...)"),
                    ));
                }
            }
        }
        if target.account.is_empty() {
            return Err(self.at(
                target.name.span(),
                "target.account",
                format!("target {target_name:?} has no [[target.account]]; add the Ethereum accounts it holds"),
            ));
        }
        Ok(Target {
            name: target_name.clone(),
            account_id: target.account_id.clone(),
            regions,
            access,
            endpoint_url: target
                .endpoint_url
                .clone()
                .or_else(|| defaults.endpoint_url.clone()),
        })
    }

    /// Checks one account of `target`: a name no `earlier` account of it has, a valid stack
    /// name and alias, at most [`MAX_TAGS`] tags with those it inherits, and signer
    /// principals in the target's `partition`.
    fn stack(
        &self,
        target: &TargetFile,
        earlier: &[AccountFile],
        account: &AccountFile,
        defaults: &Defaults,
        partition: Option<&str>,
        fleet_id: &str,
    ) -> Result<Stack, ManifestError> {
        let target_name = target.name.get_ref();
        let account_name = account.name.get_ref();
        if let Some(other) = earlier
            .iter()
            .find(|other| other.name.get_ref() == account_name)
        {
            let line = self.line(other.name.span().start);
            return Err(self.at(
                account.name.span(),
                "target.account.name",
                format!("target {target_name:?} already has an account {account_name:?} (line {line}); names must be unique in a target"),
            ));
        }
        let (stack_name, stack_span) = match &account.stack_name {
            Some(name) => (name.get_ref().clone(), name.span()),
            None => (format!("{target_name}-{account_name}"), account.name.span()),
        };
        let field = if account.stack_name.is_some() {
            "target.account.stack_name"
        } else {
            "target.account.name"
        };
        validate_stack_name(&stack_name)
            .map_err(|err| self.at(stack_span.clone(), field, err.to_string()))?;
        let request = request(defaults, target, account, stack_name, fleet_id);
        let alias_span = account
            .alias
            .as_ref()
            .map_or(account.name.span(), Spanned::span);
        request
            .validate()
            .map_err(|err| self.at(alias_span.clone(), "target.account.alias", err.to_string()))?;
        let tag_count = request.tags.as_ref().map_or(0, Vec::len);
        if tag_count > MAX_TAGS {
            return Err(self.at(
                account.name.span(),
                "target.account.tags",
                format!("account {account_name:?} has {tag_count} tags with [defaults] and its target's; AWS allows {MAX_TAGS} on a stack and a key"),
            ));
        }
        if let Some(partition) = partition {
            let foreign = request
                .signer_principals
                .iter()
                .find(|p| p.starts_with("arn:") && p.split(':').nth(1) != Some(partition));
            if let Some(principal) = foreign {
                return Err(self.at(
                    account.name.span(),
                    "signer_principals",
                    format!("{principal} is not in partition {partition}, where target {target_name:?} is"),
                ));
            }
        }
        let alias = match &request.alias {
            Some(alias) if alias.starts_with("alias/") => alias.clone(),
            Some(alias) => format!("alias/{alias}"),
            None => format!("alias/{}", request.stack_name),
        };
        Ok(Stack {
            request,
            name_at: (stack_span, field),
            alias,
            alias_span,
        })
    }
}

/// One account's checked stack, with where errors about its name and its alias point.
#[derive(Debug)]
struct Stack {
    /// The stack as `deploy` takes it.
    request: AccountRequest,
    /// The span and field of its name: `stack_name` if given, else the account's `name`.
    name_at: (Range<usize>, &'static str),
    /// Its KMS alias in full (`alias/...`), given or derived from the stack name.
    alias: String,
    /// The span of `alias`, else of the account's `name`.
    alias_span: Range<usize>,
}

/// The account's stack as `deploy` takes it: each setting from the account, else its target,
/// else `[defaults]`, else kms-eth's default; tags merged in that order.
fn request(
    defaults: &Defaults,
    target: &TargetFile,
    account: &AccountFile,
    stack_name: String,
    fleet_id: &str,
) -> AccountRequest {
    let mut tags = defaults.tags.clone();
    tags.extend(target.tags.clone());
    tags.extend(account.tags.clone());
    tags.insert(FLEET_TAG.to_owned(), fleet_id.to_owned());
    AccountRequest {
        stack_name,
        alias: account.alias.as_ref().map(|a| a.get_ref().clone()),
        removal_policy: account
            .removal_policy
            .or(defaults.removal_policy)
            .or(Some(RemovalPolicy::Retain)),
        pending_window_days: account
            .pending_window_days
            .or(defaults.pending_window_days)
            .or(Some(DEFAULT_PENDING_WINDOW_DAYS)),
        signer_principals: account
            .signer_principals
            .clone()
            .or_else(|| target.signer_principals.clone())
            .or_else(|| defaults.signer_principals.clone())
            .unwrap_or_default(),
        tags: Some(tags.into_iter().collect()),
        function: None,
        // Manifests do not name replica Regions yet: a fleet stack is in one Region.
        replica_regions: Vec::new(),
    }
}

/// The stacks and aliases claimed so far, by AWS account, region and name, each with the
/// target and account that claimed it: two stacks in one place would be one stack deployed
/// twice, and an alias names one key in an account and region.
#[derive(Debug, Default)]
struct Taken {
    stacks: HashMap<(String, String, String), (String, String)>,
    aliases: HashMap<(String, String, String), (String, String)>,
}

impl Taken {
    /// Checks that no other account of the manifest has `stack`'s name, then its alias, in
    /// `region` of the target's AWS account, and claims both.
    fn claim(
        &mut self,
        src: &Source,
        target: &TargetFile,
        account: &AccountFile,
        stack: &Stack,
        region: &str,
    ) -> Result<(), ManifestError> {
        let stack_name = &stack.request.stack_name;
        let here = (
            target.name.get_ref().clone(),
            account.name.get_ref().clone(),
        );
        let place = (
            target.account_id.clone(),
            region.to_owned(),
            stack_name.clone(),
        );
        if let Some((other_target, other_account)) = self.stacks.insert(place, here.clone()) {
            let (span, field) = stack.name_at.clone();
            return Err(src.at(
                span,
                field,
                format!(
                    "stack {stack_name} in account {} and {region} is also account {other_account:?} of target {other_target:?}; give one of them another stack_name",
                    target.account_id
                ),
            ));
        }
        let alias = &stack.alias;
        let alias_place = (target.account_id.clone(), region.to_owned(), alias.clone());
        if let Some((other_target, other_account)) = self.aliases.insert(alias_place, here) {
            return Err(src.at(
                stack.alias_span.clone(),
                "target.account.alias",
                format!(
                    "{alias} in account {} and {region} is also the alias of account {other_account:?} of target {other_target:?}; an alias names one key",
                    target.account_id
                ),
            ));
        }
        Ok(())
    }
}

/// Orders `entries` target, region, account: the manifest's order is target, account,
/// region, and stacks are listed as a region's address book reads.
fn sort_by_region(entries: &mut [Entry], targets: &[Target]) {
    entries.sort_by_key(|e| {
        let target = &targets[e.target];
        let region = target.regions.iter().position(|r| *r == e.region);
        (e.target, region)
    });
}

#[cfg(test)]
mod tests;
