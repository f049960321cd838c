//! The fleet manifest (`kms-eth fleet --manifest F`): a TOML file of targets (an AWS account,
//! its regions and how to reach it) and the Ethereum accounts each holds, read into one flat
//! list of stacks. Every field is checked here, before anything is called, and a mistake is
//! refused with the line and the field. Pure code.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::account::{validate_signer_principal, RemovalPolicy, PENDING_WINDOW_DAYS};
use crate::redeploy::AccountRequest;
use crate::template::ACCOUNT_TAG;

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
    /// that deploys it in its target (the role assumed, or the caller).
    pub request: AccountRequest,
}

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
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    target: Vec<TargetFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default, deserialize_with = "removal_policy")]
    removal_policy: Option<RemovalPolicy>,
    #[serde(default, deserialize_with = "pending_window")]
    pending_window_days: Option<u8>,
    #[serde(default, deserialize_with = "region")]
    region: Option<String>,
    #[serde(default, deserialize_with = "principals")]
    signer_principals: Option<Vec<String>>,
    #[serde(default, deserialize_with = "tags")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "endpoint")]
    endpoint_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    #[serde(deserialize_with = "name")]
    name: Spanned<String>,
    #[serde(deserialize_with = "account_id")]
    account_id: String,
    #[serde(default, deserialize_with = "regions")]
    regions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "role_arn")]
    assume_role: Option<Spanned<String>>,
    #[serde(default)]
    external_id: Option<Spanned<String>>,
    #[serde(default)]
    profile: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "endpoint")]
    endpoint_url: Option<String>,
    #[serde(default, deserialize_with = "principals")]
    signer_principals: Option<Vec<String>>,
    #[serde(default, deserialize_with = "tags")]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    account: Vec<AccountFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    #[serde(deserialize_with = "name")]
    name: Spanned<String>,
    #[serde(default)]
    stack_name: Option<Spanned<String>>,
    #[serde(default)]
    alias: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "removal_policy")]
    removal_policy: Option<RemovalPolicy>,
    #[serde(default, deserialize_with = "pending_window")]
    pending_window_days: Option<u8>,
    #[serde(default, deserialize_with = "principals")]
    signer_principals: Option<Vec<String>>,
    #[serde(default, deserialize_with = "tags")]
    tags: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and checks a manifest's text. `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Manifest, ManifestError> {
        let file: File = toml::from_str(text)
            .map_err(|err| ManifestError(format!("invalid manifest {source}: {err}")))?;
        let at = |span: Range<usize>, field: &str, reason: String| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            ManifestError(format!(
                "invalid manifest {source}, line {line}, {field}: {reason}"
            ))
        };
        if file.target.is_empty() {
            return Err(ManifestError(format!(
                "invalid manifest {source}: it has no [[target]]; add one per AWS account (see \
                 README, \"Fleets\")"
            )));
        }
        let defaults = &file.defaults;
        let mut targets = Vec::new();
        let mut entries = Vec::new();
        // Where each stack lives: two entries there would be one stack deployed twice; and
        // each alias, which one account and region can give to one key only.
        let mut places: HashMap<(String, String, String), (String, String)> = HashMap::new();
        let mut aliases: HashMap<(String, String, String), (String, String)> = HashMap::new();
        for (t, target) in file.target.iter().enumerate() {
            let target_name = target.name.get_ref();
            if let Some(other) = file.target[..t]
                .iter()
                .find(|other| other.name.get_ref() == target_name)
            {
                let line = text[..other.name.span().start].matches('\n').count() + 1;
                return Err(at(
                    target.name.span(),
                    "target.name",
                    format!("{target_name:?} is also the name of the target on line {line}; names must be unique"),
                ));
            }
            let access = access(target, &at)?;
            // Regions, roles and principals of one target must be of one partition: AWS
            // (aws), China (aws-cn) or GovCloud (aws-us-gov) credentials reach only theirs.
            let target_regions = target
                .regions
                .clone()
                .or_else(|| defaults.region.clone().map(|r| vec![r]));
            let partition = target_regions
                .as_ref()
                .and_then(|r| r.first())
                .map(|r| partition_of(r));
            if let (Some(partition), Some(regions)) = (partition, &target_regions) {
                if let Some(other) = regions.iter().find(|r| partition_of(r) != partition) {
                    return Err(at(
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
                        return Err(at(
                            role.span(),
                            "target.assume_role",
                            format!("the role is in partition {role_partition}, the target's regions in {partition} (arn:{partition}:iam::...)"),
                        ));
                    }
                }
            }
            let regions = match (&target.regions, &defaults.region) {
                (Some(regions), _) => regions.clone(),
                (None, Some(region)) => vec![region.clone()],
                (None, None) => {
                    return Err(at(
                        target.name.span(),
                        "target.regions",
                        format!("target {target_name:?} names no regions and [defaults] has no region; give regions = [\"us-east-1\", ...]"),
                    ))
                }
            };
            if target.account.is_empty() {
                return Err(at(
                    target.name.span(),
                    "target.account",
                    format!("target {target_name:?} has no [[target.account]]; add the Ethereum accounts it holds"),
                ));
            }
            for (a, account) in target.account.iter().enumerate() {
                let account_name = account.name.get_ref();
                if let Some(other) = target.account[..a]
                    .iter()
                    .find(|other| other.name.get_ref() == account_name)
                {
                    let line = text[..other.name.span().start].matches('\n').count() + 1;
                    return Err(at(
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
                crate::account::validate_stack_name(&stack_name)
                    .map_err(|err| at(stack_span.clone(), field, err.to_string()))?;
                let mut tags = defaults.tags.clone();
                tags.extend(target.tags.clone());
                tags.extend(account.tags.clone());
                let request = AccountRequest {
                    stack_name: stack_name.clone(),
                    alias: account.alias.as_ref().map(|a| a.get_ref().clone()),
                    removal_policy: account
                        .removal_policy
                        .or(defaults.removal_policy)
                        .or(Some(RemovalPolicy::Retain)),
                    pending_window_days: account
                        .pending_window_days
                        .or(defaults.pending_window_days)
                        .or(Some(crate::account::DEFAULT_PENDING_WINDOW_DAYS)),
                    signer_principals: account
                        .signer_principals
                        .clone()
                        .or_else(|| target.signer_principals.clone())
                        .or_else(|| defaults.signer_principals.clone())
                        .unwrap_or_default(),
                    tags: Some(tags.into_iter().collect()),
                    function: None,
                };
                let alias_span = account
                    .alias
                    .as_ref()
                    .map_or(account.name.span(), Spanned::span);
                request.validate().map_err(|err| {
                    at(alias_span.clone(), "target.account.alias", err.to_string())
                })?;
                let tag_count = request.tags.as_ref().map_or(0, Vec::len);
                if tag_count > MAX_TAGS {
                    return Err(at(
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
                        return Err(at(
                            account.name.span(),
                            "signer_principals",
                            format!("{principal} is not in partition {partition}, where target {target_name:?} is"),
                        ));
                    }
                }
                let alias = match &request.alias {
                    Some(alias) if alias.starts_with("alias/") => alias.clone(),
                    Some(alias) => format!("alias/{alias}"),
                    None => format!("alias/{stack_name}"),
                };
                for region in &regions {
                    let place = (
                        target.account_id.clone(),
                        region.clone(),
                        stack_name.clone(),
                    );
                    let here = (target_name.clone(), account_name.clone());
                    if let Some((other_target, other_account)) = places.insert(place, here.clone())
                    {
                        return Err(at(
                            stack_span.clone(),
                            field,
                            format!(
                                "stack {stack_name} in account {} and {region} is also account {other_account:?} of target {other_target:?}; give one of them another stack_name",
                                target.account_id
                            ),
                        ));
                    }
                    let alias_place = (target.account_id.clone(), region.clone(), alias.clone());
                    if let Some((other_target, other_account)) =
                        aliases.insert(alias_place, here.clone())
                    {
                        return Err(at(
                            alias_span.clone(),
                            "target.account.alias",
                            format!(
                                "{alias} in account {} and {region} is also the alias of account {other_account:?} of target {other_target:?}; an alias names one key",
                                target.account_id
                            ),
                        ));
                    }
                    entries.push(Entry {
                        target: t,
                        region: region.clone(),
                        name: account_name.clone(),
                        request: request.clone(),
                    });
                }
            }
            targets.push(Target {
                name: target_name.clone(),
                account_id: target.account_id.clone(),
                regions,
                access,
                endpoint_url: target
                    .endpoint_url
                    .clone()
                    .or_else(|| defaults.endpoint_url.clone()),
            });
        }
        // The manifest's order is target, account, region; stacks are listed target, region,
        // account, which is how a region's address book reads.
        entries.sort_by_key(|e| {
            let target = &targets[e.target];
            let region = target.regions.iter().position(|r| *r == e.region);
            (e.target, region)
        });
        Ok(Manifest { targets, entries })
    }

    /// The target of `entry`.
    pub fn target_of(&self, entry: &Entry) -> &Target {
        &self.targets[entry.target]
    }
}

/// The target's access, from `assume_role`, `external_id` and `profile`.
fn access(
    target: &TargetFile,
    at: &impl Fn(Range<usize>, &str, String) -> ManifestError,
) -> Result<Access, ManifestError> {
    match (&target.assume_role, &target.profile, &target.external_id) {
        (Some(_), Some(profile), _) => Err(at(
            profile.span(),
            "target.profile",
            "give either assume_role or profile, not both: the profile's credentials would be \
             used to assume the role, which is not what either says"
                .into(),
        )),
        (None, _, Some(external_id)) => Err(at(
            external_id.span(),
            "target.external_id",
            "an external id is given when assuming a role: add assume_role, or remove it".into(),
        )),
        (Some(role), None, external_id) => {
            let role_account = role.get_ref().split(':').nth(4).unwrap_or_default();
            if role_account != target.account_id {
                return Err(at(
                    role.span(),
                    "target.assume_role",
                    format!(
                        "the role {} is in account {role_account}, not in the target's account_id \
                         {}; fix one of them (the stacks would be made in the role's account)",
                        role.get_ref(),
                        target.account_id
                    ),
                ));
            }
            if let Some(id) = external_id {
                let id_ok = (2..=1224).contains(&id.get_ref().len())
                    && id
                        .get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
                if !id_ok {
                    return Err(at(
                        id.span(),
                        "target.external_id",
                        "an external id is 2-1224 letters, digits and +=,.@:/-_".into(),
                    ));
                }
            }
            Ok(Access::AssumeRole {
                role_arn: role.get_ref().clone(),
                external_id: external_id.as_ref().map(|id| id.get_ref().clone()),
            })
        }
        (None, Some(profile), None) if profile.get_ref().trim().is_empty() => Err(at(
            profile.span(),
            "target.profile",
            "the profile name is empty".into(),
        )),
        (None, Some(profile), None) => Ok(Access::Profile(profile.get_ref().clone())),
        (None, None, None) => Ok(Access::Caller),
    }
}

// Field checks, run while the file is read, so that toml's error names the line and field.

fn custom<E: serde::de::Error>(reason: impl std::fmt::Display) -> E {
    E::custom(reason)
}

fn name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Spanned<String>, D::Error> {
    let name = Spanned::<String>::deserialize(d)?;
    let text = name.get_ref();
    let ok = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        return Err(custom(format!(
            "invalid name {text:?}: a letter, then letters, digits and hyphens, at most 64 \
             characters (it becomes part of a CloudFormation stack name)"
        )));
    }
    Ok(name)
}

fn account_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(custom(format!(
            "invalid account_id {id:?}: an AWS account id is 12 digits, written as a string"
        )));
    }
    Ok(id)
}

fn check_region<E: serde::de::Error>(region: &str) -> Result<(), E> {
    if KNOWN_REGIONS.contains(&region) {
        return Ok(());
    }
    let near: Vec<&str> = KNOWN_REGIONS
        .iter()
        .copied()
        .filter(|known| {
            known.len() == region.len()
                && known
                    .bytes()
                    .zip(region.bytes())
                    .filter(|(a, b)| a != b)
                    .count()
                    <= 2
        })
        .collect();
    let hint = if near.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", near.join(" or "))
    };
    Err(custom(format!(
        "unknown AWS region {region:?}{hint}; the regions kms-eth knows are listed in README, \
         \"Fleets\""
    )))
}

fn region<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let region = String::deserialize(d)?;
    check_region(&region)?;
    Ok(Some(region))
}

fn regions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let regions = Vec::<String>::deserialize(d)?;
    if regions.is_empty() {
        return Err(custom("regions is empty: name at least one region"));
    }
    for (i, region) in regions.iter().enumerate() {
        check_region(region)?;
        if regions[..i].contains(region) {
            return Err(custom(format!("region {region:?} is named twice")));
        }
    }
    Ok(Some(regions))
}

fn role_arn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Spanned<String>>, D::Error> {
    let arn = Spanned::<String>::deserialize(d)?;
    let text = arn.get_ref();
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let ok = matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if ["aws", "aws-cn", "aws-us-gov"].contains(partition)
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/-".contains(&b))
                })
    );
    if !ok {
        return Err(custom(format!(
            "invalid assume_role {text:?}: give a role ARN like \
             arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"
        )));
    }
    Ok(Some(arn))
}

fn endpoint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if !ok {
        return Err(custom(format!(
            "invalid endpoint_url {url:?}: give a URL like http://127.0.0.1:4566"
        )));
    }
    Ok(Some(url))
}

fn removal_policy<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RemovalPolicy>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(custom)
}

fn pending_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let days = i64::deserialize(d)?;
    match u8::try_from(days) {
        Ok(days) if PENDING_WINDOW_DAYS.contains(&days) => Ok(Some(days)),
        _ => Err(custom(format!(
            "pending_window_days = {days} is outside the 7-30 days KMS allows"
        ))),
    }
}

fn principals<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let principals = Vec::<String>::deserialize(d)?;
    if principals.is_empty() {
        return Err(custom(
            "signer_principals is empty: name who may sign, or leave the field out (the \
             identity that deploys is then trusted)",
        ));
    }
    for principal in &principals {
        validate_signer_principal(principal).map_err(|_| {
            custom(format!(
                "invalid signer principal {principal:?}: give an IAM ARN like \
                 arn:aws:iam::123456789012:role/signer (or :root, or :user/name) or a 12-digit \
                 account id; wildcards would let anyone sign"
            ))
        })?;
    }
    Ok(Some(principals))
}

fn tags<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let tags = BTreeMap::<String, String>::deserialize(d)?;
    for (key, value) in &tags {
        if key.starts_with("kms-eth:") || key.to_ascii_lowercase().starts_with("aws:") {
            return Err(custom(format!(
                "tag {key:?}: the prefixes kms-eth: (kms-eth's own, like {ACCOUNT_TAG}) and aws: \
                 are reserved"
            )));
        }
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(custom(format!(
                "tag {key:?}: a key is 1-128 characters and a value at most 256"
            )));
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const GOOD: &str = r#"
[defaults]
removal_policy = "retain"
pending_window_days = 30
region = "us-east-1"

[[target]]
name = "payments-prod"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
assume_role = "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"

[[target.account]]
name = "treasury"
signer_principals = ["arn:aws:iam::111111111111:role/payments-signer"]
tags = { team = "payments" }

[[target.account]]
name = "hot-wallet"
removal_policy = "destroy"
pending_window_days = 7

[[target]]
name = "ops"
account_id = "222222222222"
profile = "ops-admin"

[[target.account]]
name = "gas"
stack_name = "ops-gas-tank"
alias = "alias/gas"
"#;

    #[test]
    fn the_issue_example_reads_into_one_entry_per_target_region_and_account() {
        let manifest = Manifest::parse("m.toml", GOOD).unwrap();
        let names: Vec<(String, &str)> = manifest
            .entries
            .iter()
            .map(|e| (e.request.stack_name.clone(), e.region.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("payments-prod-treasury".to_owned(), "us-east-1"),
                ("payments-prod-hot-wallet".to_owned(), "us-east-1"),
                ("payments-prod-treasury".to_owned(), "eu-west-1"),
                ("payments-prod-hot-wallet".to_owned(), "eu-west-1"),
                ("ops-gas-tank".to_owned(), "us-east-1"),
            ]
        );
        let hot = &manifest.entries[1].request;
        assert_eq!(hot.removal_policy, Some(RemovalPolicy::Destroy));
        assert_eq!(hot.pending_window_days, Some(7));
        assert!(hot.signer_principals.is_empty());
        let treasury = &manifest.entries[0].request;
        assert_eq!(
            treasury.tags,
            Some(vec![("team".to_owned(), "payments".to_owned())])
        );
        assert_eq!(treasury.removal_policy, Some(RemovalPolicy::Retain));
        assert_eq!(
            manifest.targets[1].access,
            Access::Profile("ops-admin".into())
        );
        assert_eq!(manifest.targets[1].regions, ["us-east-1"]);
        assert_eq!(
            manifest.targets[0].access,
            Access::AssumeRole {
                role_arn: "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole".into(),
                external_id: None
            }
        );
    }

    /// Each bad manifest: (what is changed, the line, a word of the error).
    #[test]
    fn bad_manifests_are_refused_with_the_line_and_field() {
        let role = "assume_role = \"arn:aws:iam::111111111111:role/OrganizationAccountAccessRole\"";
        let cases: Vec<(String, usize, &str)> = vec![
            (
                GOOD.replace(
                    "pending_window_days = 7",
                    "pending_window_days = 7\ncolour = \"red\"",
                ),
                22,
                "unknown field `colour`",
            ),
            (
                GOOD.replace("name = \"ops\"", "name = \"payments-prod\""),
                24,
                "unique",
            ),
            (
                GOOD.replace("name = \"hot-wallet\"", "name = \"treasury\""),
                19,
                "unique",
            ),
            (
                GOOD.replace(
                    role,
                    "assume_role = \"arn:aws:iam::111111111111:user/admin\"",
                ),
                11,
                "assume_role",
            ),
            (
                GOOD.replace(role, "assume_role = \"arn:aws:iam::999999999999:role/Org\""),
                11,
                "account_id",
            ),
            (
                GOOD.replace("pending_window_days = 7", "pending_window_days = 40"),
                21,
                "7-30",
            ),
            (
                GOOD.replace("pending_window_days = 30", "pending_window_days = 3"),
                4,
                "7-30",
            ),
            (
                GOOD.replace("\"eu-west-1\"]", "\"eu-wset-1\"]"),
                10,
                "eu-west-1",
            ),
            (
                GOOD.replace("region = \"us-east-1\"", "region = \"moon-1\""),
                5,
                "unknown AWS region",
            ),
            (
                GOOD.replace("\"111111111111\"\nregions", "\"11111\"\nregions"),
                9,
                "12 digits",
            ),
            (
                GOOD.replace(
                    "removal_policy = \"destroy\"",
                    "removal_policy = \"delete\"",
                ),
                20,
                "removal policy",
            ),
            (
                GOOD.replace("role/payments-signer\"]", "role/payments-signer\", \"*\"]"),
                15,
                "wildcards",
            ),
            (
                GOOD.replace("team = \"payments\"", "\"kms-eth:account\" = \"x\""),
                16,
                "reserved",
            ),
            (
                GOOD.replace(
                    "profile = \"ops-admin\"",
                    &format!(
                        "profile = \"ops-admin\"\n{}",
                        role.replace("111111111111", "222222222222")
                    ),
                ),
                26,
                "not both",
            ),
            (
                GOOD.replace("profile = \"ops-admin\"", "external_id = \"abc\""),
                26,
                "external id",
            ),
            (
                GOOD.replace("name = \"hot-wallet\"", "name = \"hot_wallet\""),
                19,
                "letters, digits and hyphens",
            ),
            (
                GOOD.replace("alias = \"alias/gas\"", "alias = \"alias/aws/gas\""),
                31,
                "reserved",
            ),
            (
                GOOD.replace(
                    "\"us-east-1\", \"eu-west-1\"]",
                    "\"us-east-1\", \"us-east-1\"]",
                ),
                10,
                "twice",
            ),
            (
                GOOD.replace("stack_name = \"ops-gas-tank\"", "stack_name = \"9gas\""),
                30,
                "start with a letter",
            ),
            (
                GOOD.replace("regions = [\"us-east-1\", \"eu-west-1\"]", "regions = []"),
                10,
                "empty",
            ),
            (
                GOOD.replace(
                    "account_id = \"222222222222\"\nprofile = \"ops-admin\"",
                    &format!("account_id = \"111111111111\"\n{role}"),
                )
                .replace(
                    "stack_name = \"ops-gas-tank\"",
                    "stack_name = \"payments-prod-treasury\"",
                ),
                30,
                "also account",
            ),
            (
                GOOD.replace("endpoint", "x").replace(
                    "profile = \"ops-admin\"",
                    "profile = \"ops-admin\"\nendpoint_url = \"localhost:4566\"",
                ),
                27,
                "endpoint_url",
            ),
            (GOOD.replace("\"eu-west-1\"]", "\"cn-north-1\"]"), 8, "partition"),
            (GOOD.replace("arn:aws:iam::111111111111:role/Org", "arn:aws-foo:iam::111111111111:role/Org"), 11, "assume_role"),
            (GOOD.replace("name = \"gas\"\nstack_name = \"ops-gas-tank\"\nalias = \"alias/gas\"", "name = \"gas\"\nalias = \"alias/gas\"\n\n[[target.account]]\nname = \"gas2\"\nalias = \"gas\""), 34, "an alias names one key"),
            (GOOD.replace("tags = { team = \"payments\" }", &format!("tags = {{ {} }}", (0..51).map(|i| format!("t{i} = \"v\"")).collect::<Vec<_>>().join(", "))), 14, "AWS allows 50"),
        ];
        for (text, line, word) in cases {
            let err = Manifest::parse("m.toml", &text).unwrap_err().to_string();
            assert!(
                err.contains(&format!("line {line}")),
                "{err}\nwanted line {line}"
            );
            assert!(err.contains(word), "{err}\nwanted {word:?}");
            assert!(err.starts_with("invalid manifest m.toml"), "{err}");
        }
        let none = Manifest::parse("m.toml", "[defaults]\nregion = \"us-east-1\"\n").unwrap_err();
        assert!(none.to_string().contains("no [[target]]"), "{none}");
        let empty =
            "[[target]]\nname = \"a\"\naccount_id = \"111111111111\"\nregions = [\"us-east-1\"]\n";
        let err = Manifest::parse("m.toml", empty).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("no [[target.account]]"),
            "{err}"
        );
        let no_region = "[[target]]\nname = \"a\"\naccount_id = \"111111111111\"\n[[target.account]]\nname = \"b\"\n";
        let err = Manifest::parse("m.toml", no_region)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("regions"), "{err}");
    }
}
