//! The manifest's checks of single fields, run by serde while the file is read so that
//! toml's error names the line and the field, and the check of a target's access (role,
//! external id, profile), which needs the spans of three fields at once.

use std::collections::BTreeMap;
use std::ops::Range;

use kms_eth_provisioner::{
    validate_signer_principal, RemovalPolicy, ACCOUNT_TAG, PENDING_WINDOW_DAYS,
};
use serde::Deserialize;
use toml::Spanned;

use super::{Access, ManifestError, TargetFile, KNOWN_REGIONS};

/// The target's access, from `assume_role`, `external_id` and `profile`.
pub(super) fn access(
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

pub(super) fn custom<E: serde::de::Error>(reason: impl std::fmt::Display) -> E {
    E::custom(reason)
}

pub(super) fn name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Spanned<String>, D::Error> {
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

pub(super) fn account_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(custom(format!(
            "invalid account_id {id:?}: an AWS account id is 12 digits, written as a string"
        )));
    }
    Ok(id)
}

pub(super) fn check_region<E: serde::de::Error>(region: &str) -> Result<(), E> {
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

pub(super) fn region<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let region = String::deserialize(d)?;
    check_region(&region)?;
    Ok(Some(region))
}

pub(super) fn regions<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
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

pub(super) fn role_arn<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Spanned<String>>, D::Error> {
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

pub(super) fn endpoint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

pub(super) fn removal_policy<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RemovalPolicy>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(custom)
}

pub(super) fn pending_window<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u8>, D::Error> {
    let days = i64::deserialize(d)?;
    match u8::try_from(days) {
        Ok(days) if PENDING_WINDOW_DAYS.contains(&days) => Ok(Some(days)),
        _ => Err(custom(format!(
            "pending_window_days = {days} is outside the 7-30 days KMS allows"
        ))),
    }
}

pub(super) fn principals<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
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

pub(super) fn tags<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
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
