//! The key's life cycle after (or without) its stack: what state a key is in, which kms-eth
//! keys exist, cancelling a scheduled deletion, and scheduling one for a retained key.

use aws_sdk_kms::types::KeyState;
use aws_sdk_kms::Client;
use futures_util::StreamExt;
use kms_eth_signer::{Address, PublicKey};

use crate::account::PENDING_WINDOW_DAYS;
use crate::call::{call, timed, On};
use crate::error::ProvisionError;
use crate::template::ACCOUNT_TAG;

/// What is known about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key id.
    pub key_id: String,
    /// The key ARN.
    pub arn: String,
    /// The key state.
    pub state: KeyState,
    /// When a key pending deletion will be deleted (RFC 3339).
    pub deletion_date: Option<String>,
    /// The key's alias, if it has one (the first, when it has several).
    pub alias: Option<String>,
    /// Every alias that points at the key.
    pub aliases: Vec<String>,
    /// The stack that created it (from the kms-eth tag).
    pub stack: Option<String>,
    /// Every tag of the key, as (key, value).
    pub tags: Vec<(String, String)>,
    /// The Ethereum address, when KMS will hand out the public key (not while the key is
    /// pending deletion).
    pub address: Option<Address>,
}

/// A key's state alone: one `DescribeKey` (what `serve`'s readiness check asks per key and
/// interval, where `key_info` would make four calls).
pub async fn key_state(client: &Client, key_id: &str) -> Result<KeyState, ProvisionError> {
    let described = call(
        "DescribeKey",
        On::Key(key_id),
        client.describe_key().key_id(key_id).send(),
    )
    .await?;
    Ok(described
        .key_metadata()
        .and_then(|metadata| metadata.key_state().cloned())
        .unwrap_or(KeyState::Unavailable))
}

/// Reads a key's state, alias, stack tag and address.
pub async fn key_info(client: &Client, key_id: &str) -> Result<KeyInfo, ProvisionError> {
    let described = call(
        "DescribeKey",
        On::Key(key_id),
        client.describe_key().key_id(key_id).send(),
    )
    .await?;
    let metadata = described.key_metadata().ok_or(ProvisionError::Aws {
        operation: "DescribeKey",
        message: "the answer has no key metadata".into(),
        request_id: None,
    })?;
    let key_id = metadata.key_id().to_owned();
    let aliases = call(
        "ListAliases",
        On::Key(&key_id),
        client.list_aliases().key_id(&key_id).send(),
    )
    .await?;
    let tags = call(
        "ListResourceTags",
        On::Key(&key_id),
        client.list_resource_tags().key_id(&key_id).send(),
    )
    .await?;
    // GetPublicKey is refused for keys pending deletion; then the address is unknown, which
    // is reported as such rather than as a failure.
    let public_key = timed(
        "GetPublicKey",
        On::Key(&key_id),
        client.get_public_key().key_id(&key_id).send(),
    )
    .await;
    let address = match public_key {
        Ok(response) => response
            .public_key()
            .and_then(|der| PublicKey::from_spki_der(der.as_ref()).ok())
            .map(|key| key.address()),
        Err(_) => None,
    };
    Ok(KeyInfo {
        arn: metadata.arn().unwrap_or_default().to_owned(),
        state: metadata
            .key_state()
            .cloned()
            .unwrap_or(KeyState::Unavailable),
        deletion_date: metadata
            .deletion_date()
            .and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        alias: aliases
            .aliases()
            .iter()
            .find_map(|a| a.alias_name().map(str::to_owned)),
        aliases: aliases
            .aliases()
            .iter()
            .filter_map(|a| a.alias_name().map(str::to_owned))
            .collect(),
        stack: tags
            .tags()
            .iter()
            .find(|t| t.tag_key() == ACCOUNT_TAG)
            .map(|t| t.tag_value().to_owned()),
        tags: tags
            .tags()
            .iter()
            .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
            .collect(),
        address,
        key_id,
    })
}

/// How many keys' tags are read at once.
const TAG_READS_AT_ONCE: usize = 16;

/// Every kms-eth key (tagged [`ACCOUNT_TAG`]) in the account and region.
pub async fn list_accounts(client: &Client) -> Result<Vec<KeyInfo>, ProvisionError> {
    let mut accounts = Vec::new();
    for (key_id, _stack) in tagged_keys(client).await? {
        accounts.push(key_info(client, &key_id).await?);
    }
    Ok(accounts)
}

/// The id and [`ACCOUNT_TAG`] value (the stack name) of every kms-eth key in the account and
/// region: two calls per key fewer than [`list_accounts`], for a fleet's look at what it
/// does not manage.
pub async fn tagged_keys(client: &Client) -> Result<Vec<(String, String)>, ProvisionError> {
    let mut keys = Vec::new();
    // Page by page by hand rather than with the SDK's paginator, so that each ListKeys call
    // is logged; the paging rules are the paginator's: stop at an empty or a repeated marker.
    let mut marker: Option<String> = None;
    loop {
        let page = call(
            "ListKeys",
            On::Account,
            client.list_keys().set_marker(marker.clone()).send(),
        )
        .await?;
        // A page's keys are asked for their tags several at a time: an account of a fleet
        // may hold hundreds of keys, and one call after the other took seconds.
        let tagged: Vec<Option<(String, String)>> =
            futures_util::stream::iter(page.keys().iter().filter_map(|k| k.key_id()))
                .map(|key_id| async move {
                    // Keys the caller may not read (other teams', AWS managed) are not ours.
                    let tags = timed(
                        "ListResourceTags",
                        On::Key(key_id),
                        client.list_resource_tags().key_id(key_id).send(),
                    )
                    .await
                    .ok()?;
                    let tag = tags.tags().iter().find(|t| t.tag_key() == ACCOUNT_TAG)?;
                    Some((key_id.to_owned(), tag.tag_value().to_owned()))
                })
                .buffered(TAG_READS_AT_ONCE)
                .collect()
                .await;
        keys.extend(tagged.into_iter().flatten());
        match page.next_marker() {
            Some(next) if !next.is_empty() && marker.as_deref() != Some(next) => {
                marker = Some(next.to_owned());
            }
            _ => return Ok(keys),
        }
    }
}

/// Cancels the scheduled deletion of `key` (as read by [`key_info`]), and enables it again
/// only when `enable` says so: KMS leaves a key Disabled after a cancelled deletion, and a
/// key someone meant to retire should not start signing again unasked.
pub async fn cancel_deletion(
    client: &Client,
    key: &KeyInfo,
    enable: bool,
) -> Result<KeyInfo, ProvisionError> {
    if key.state != KeyState::PendingDeletion {
        // Enabling a key that someone disabled on purpose is not this command's business.
        return Err(ProvisionError::NotPendingDeletion {
            key_id: key.key_id.clone(),
            state: key.state.as_str().to_owned(),
        });
    }
    call(
        "CancelKeyDeletion",
        On::Key(&key.key_id),
        client.cancel_key_deletion().key_id(&key.key_id).send(),
    )
    .await?;
    if enable {
        call(
            "EnableKey",
            On::Key(&key.key_id),
            client.enable_key().key_id(&key.key_id).send(),
        )
        .await?;
    }
    key_info(client, &key.key_id).await
}

/// Schedules the key's deletion after `days` (7-30) days.
pub async fn schedule_deletion(
    client: &Client,
    key_id: &str,
    days: u8,
) -> Result<KeyInfo, ProvisionError> {
    if !PENDING_WINDOW_DAYS.contains(&days) {
        return Err(crate::account::SpecError::PendingWindow(days).into());
    }
    call(
        "ScheduleKeyDeletion",
        On::Key(key_id),
        client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(i32::from(days))
            .send(),
    )
    .await?;
    key_info(client, key_id).await
}
