//! A multi-Region key's replicas (`deploy --replica-region`, `status`, drift): where the
//! key is, each Region's key read (state, key policy, aliases), and the replicas a stack asks
//! for made with the KMS API after the stack, since CloudFormation makes a replica only
//! from a stack in the replica's own Region (and LocalStack's not at all). Re-running is safe:
//! a replica that exists is read and checked, never made again.

use aws_sdk_kms::types::{KeyState, MultiRegionKeyType};
use aws_sdk_kms::Client;

use crate::call::{call, On};
use crate::error::ProvisionError;
use crate::import::{create_alias, replicate_key};

/// Where a key is: its own Region's ARN and, for a multi-Region key, the others'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRegions {
    /// Whether the key is multi-Region.
    pub multi_region: bool,
    /// Whether the key asked about is a multi-Region primary (replicas are made from it).
    pub is_primary: bool,
    /// The primary key's Region and ARN (the key itself for a key in one Region).
    pub primary: (String, String),
    /// Every replica's Region and ARN.
    pub replicas: Vec<(String, String)>,
}

/// One Region's copy of a key, as read in its Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionKey {
    /// The Region.
    pub region: String,
    /// The key's ARN there.
    pub key_arn: String,
    /// `primary`, `replica` or `single` (a key in one Region).
    pub role: &'static str,
    /// Its state there (`Enabled`, `Disabled`, `PendingReplicaDeletion`...), or why it could
    /// not be read.
    pub state: Result<KeyState, String>,
    /// Its key policy (the `default` one), when it could be read.
    pub policy: Option<String>,
    /// The aliases pointing at it there.
    pub aliases: Vec<String>,
}

/// What `ensure_replicas` did in one Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOutcome {
    /// The Region.
    pub region: String,
    /// The replica's ARN.
    pub key_arn: String,
    /// `created` or `present` (found and checked).
    pub action: &'static str,
    /// What was set back to the primary's (its key policy, a missing alias), in words.
    pub repaired: Vec<String>,
}

/// A KMS client of `region`, otherwise `client`'s configuration (credentials, endpoint).
pub fn kms_in(client: &Client, region: &str) -> Client {
    Client::from_conf(
        client
            .config()
            .to_builder()
            .region(aws_sdk_kms::config::Region::new(region.to_owned()))
            .build(),
    )
}

/// The Region of `arn` (`arn:PARTITION:kms:REGION:...`), empty for anything else.
fn region_of(arn: &str) -> String {
    arn.split(':').nth(3).unwrap_or_default().to_owned()
}

/// Where `key_id` is: one `DescribeKey` in `client`'s Region.
pub async fn key_regions(client: &Client, key_id: &str) -> Result<KeyRegions, ProvisionError> {
    let described = call(
        "DescribeKey",
        On::Key(key_id),
        client.describe_key().key_id(key_id).send(),
    )
    .await?;
    let metadata = described.key_metadata();
    let arn = metadata.and_then(|m| m.arn()).unwrap_or(key_id).to_owned();
    let multi_region = metadata.and_then(|m| m.multi_region()).unwrap_or(false);
    let config = metadata.and_then(|m| m.multi_region_configuration());
    let pair = |k: &aws_sdk_kms::types::MultiRegionKey| {
        (
            k.region().unwrap_or_default().to_owned(),
            k.arn().unwrap_or_default().to_owned(),
        )
    };
    let primary = config
        .and_then(|c| c.primary_key())
        .map(pair)
        .unwrap_or_else(|| (region_of(&arn), arn.clone()));
    let replicas = config
        .map(|c| c.replica_keys().iter().map(pair).collect())
        .unwrap_or_default();
    Ok(KeyRegions {
        multi_region,
        is_primary: multi_region
            && config.and_then(|c| c.multi_region_key_type()) == Some(&MultiRegionKeyType::Primary),
        primary,
        replicas,
    })
}

/// The key `key_arn` read in `region` (`client` is of that Region): its state, key policy
/// and aliases. A Region that cannot be read says why in `state`; it is not an error, so
/// that one Region down does not hide the others.
pub async fn read_region_key(
    client: &Client,
    region: &str,
    key_arn: &str,
    role: &'static str,
) -> RegionKey {
    let mut read = RegionKey {
        region: region.to_owned(),
        key_arn: key_arn.to_owned(),
        role,
        state: Err(String::new()),
        policy: None,
        aliases: Vec::new(),
    };
    let described = call(
        "DescribeKey",
        On::Key(key_arn),
        client.describe_key().key_id(key_arn).send(),
    )
    .await;
    read.state = match described {
        Ok(answer) => Ok(answer
            .key_metadata()
            .and_then(|m| m.key_state())
            .cloned()
            .unwrap_or_else(|| KeyState::from("unknown"))),
        Err(err) => {
            return RegionKey {
                state: Err(err.to_string()),
                ..read
            }
        }
    };
    if let Ok(policy) = call(
        "GetKeyPolicy",
        On::Key(key_arn),
        client
            .get_key_policy()
            .key_id(key_arn)
            .policy_name("default")
            .send(),
    )
    .await
    {
        read.policy = policy.policy().map(str::to_owned);
    }
    if let Ok(aliases) = call(
        "ListAliases",
        On::Key(key_arn),
        client.list_aliases().key_id(key_arn).send(),
    )
    .await
    {
        read.aliases = aliases
            .aliases()
            .iter()
            .filter_map(|a| a.alias_name().map(str::to_owned))
            .collect();
    }
    read
}

/// The key `key_id` in every Region it is in, the primary (or the key itself) first, each
/// read in its own Region (`client` is of the key's Region).
pub async fn region_keys(client: &Client, key_id: &str) -> Result<Vec<RegionKey>, ProvisionError> {
    let regions = key_regions(client, key_id).await?;
    let mut keys = Vec::new();
    let (region, arn) = &regions.primary;
    let role = if regions.multi_region {
        "primary"
    } else {
        "single"
    };
    keys.push(read_region_key(&kms_in(client, region), region, arn, role).await);
    for (region, arn) in &regions.replicas {
        keys.push(read_region_key(&kms_in(client, region), region, arn, "replica").await);
    }
    Ok(keys)
}

/// Replicates the multi-Region key `key_id` (its primary, `client` of its Region) into each
/// of `regions` where it has no replica yet, with its key policy, description, tags and
/// aliases; a replica already there is checked: its key policy set back to the primary's
/// when it differs, a missing alias of the primary's created. A key that is not a
/// multi-Region primary is refused with [`ProvisionError::NotMultiRegion`].
pub async fn ensure_replicas(
    client: &Client,
    key_id: &str,
    regions: &[String],
) -> Result<Vec<ReplicaOutcome>, ProvisionError> {
    let existing = key_regions(client, key_id).await?;
    if !existing.is_primary {
        return Err(ProvisionError::NotMultiRegion {
            key_id: key_id.to_owned(),
        });
    }
    let home = existing.primary.0.clone();
    let primary_key = read_region_key(client, &home, &existing.primary.1, "primary").await;
    let mut outcomes = Vec::new();
    for region in regions {
        if *region == home {
            continue;
        }
        let replica_client = kms_in(client, region);
        let Some((_, arn)) = existing.replicas.iter().find(|(r, _)| r == region) else {
            let arn = replicate_key(client, &replica_client, key_id, region).await?;
            outcomes.push(ReplicaOutcome {
                region: region.clone(),
                key_arn: arn,
                action: "created",
                repaired: Vec::new(),
            });
            continue;
        };
        let replica = read_region_key(&replica_client, region, arn, "replica").await;
        let mut repaired = Vec::new();
        if let Err(err) = &replica.state {
            return Err(ProvisionError::Aws {
                operation: "DescribeKey",
                message: format!("the replica {arn} in {region} cannot be read: {err}"),
                request_id: None,
            });
        }
        if let (Some(wanted), Some(found)) = (&primary_key.policy, &replica.policy) {
            if !same_policy(wanted, found) {
                call(
                    "PutKeyPolicy",
                    On::Key(arn),
                    replica_client
                        .put_key_policy()
                        .key_id(arn)
                        .policy_name("default")
                        .policy(wanted)
                        .send(),
                )
                .await?;
                repaired.push("its key policy differed and was set to the primary's".to_owned());
            }
        }
        for alias in &primary_key.aliases {
            if !replica.aliases.contains(alias) {
                create_alias(&replica_client, alias, arn).await?;
                repaired.push(format!("alias {alias} was missing and was created"));
            }
        }
        outcomes.push(ReplicaOutcome {
            region: region.clone(),
            key_arn: arn.clone(),
            action: "present",
            repaired,
        });
    }
    Ok(outcomes)
}

/// Whether two key policies say the same (as JSON values: KMS may answer with other
/// spacing than was put).
pub fn same_policy(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_compared_as_json() {
        assert!(same_policy(r#"{"a": [1, 2]}"#, r#"{"a":[1,2]}"#));
        assert!(!same_policy(r#"{"a": [1, 2]}"#, r#"{"a":[2,1]}"#));
        assert_eq!(region_of("arn:aws:kms:eu-west-1:1:key/mrk-1"), "eu-west-1");
        assert_eq!(region_of("mrk-1"), "");
    }
}
