//! Bringing an existing key into KMS (`kms-eth key import`): a secp256k1 signing key created
//! with origin EXTERNAL, the material wrapped under the import parameters' RSA key and
//! imported, and the address KMS then derives compared with the one expected. A key that
//! turns out to be another address is disabled and scheduled for deletion; a key whose
//! import failed holds no material and is scheduled for deletion, so a refused import leaves
//! nothing that can sign.

use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeySpec, KeyUsageType, OriginType, Tag, WrappingKeySpec,
};
use aws_sdk_kms::Client;
use kms_eth_signer::{Address, PublicKey};

use crate::call::{call, On};
use crate::error::ProvisionError;
use crate::material::ImportMaterial;
use crate::template::ACCOUNT_TAG;

/// How the key is wrapped for its way into KMS: RSAES-OAEP with SHA-256 under a 4096-bit
/// RSA key, which KMS supports for ECC private keys (PKCS#8 of a secp256k1 key is well
/// under OAEP's limit).
pub const WRAPPING_ALGORITHM: AlgorithmSpec = AlgorithmSpec::RsaesOaepSha256;
/// The wrapping key's size.
pub const WRAPPING_KEY_SPEC: WrappingKeySpec = WrappingKeySpec::Rsa4096;
/// The pending window of a key that a refused import scheduled for deletion: the shortest,
/// since it never held the account's key.
const REFUSED_KEY_WINDOW_DAYS: i32 = 7;

/// A key to create for an import.
#[derive(Debug, Clone, Default)]
pub struct NewImportedKey {
    /// The account's name, the value of the [`ACCOUNT_TAG`] tag (what `key list` shows).
    pub account: String,
    /// The key's description.
    pub description: String,
    /// More tags, as (key, value).
    pub tags: Vec<(String, String)>,
}

/// A key with its material imported and its address checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedKey {
    /// The key id.
    pub key_id: String,
    /// The key ARN.
    pub arn: String,
    /// The address KMS derives from the imported material.
    pub address: Address,
    /// When the material expires (RFC 3339), or `None` when it does not.
    pub valid_to: Option<String>,
}

/// Creates a secp256k1 signing key with origin EXTERNAL: it has no material (state
/// PendingImport) until [`import_material`].
pub async fn create_external_key(
    client: &Client,
    key: &NewImportedKey,
) -> Result<(String, String), ProvisionError> {
    let tag = |k: &str, v: &str| Tag::builder().tag_key(k).tag_value(v).build();
    let mut request = client
        .create_key()
        .key_spec(KeySpec::EccSecgP256K1)
        .key_usage(KeyUsageType::SignVerify)
        .origin(OriginType::External)
        .description(&key.description)
        .tags(tag(ACCOUNT_TAG, &key.account).map_err(invalid_tag)?);
    for (k, v) in &key.tags {
        request = request.tags(tag(k, v).map_err(invalid_tag)?);
    }
    let created = call("CreateKey", On::Account, request.send()).await?;
    let metadata = created.key_metadata().ok_or(ProvisionError::Aws {
        operation: "CreateKey",
        message: "the answer has no key metadata".into(),
        request_id: None,
    })?;
    Ok((
        metadata.key_id().to_owned(),
        metadata.arn().unwrap_or_default().to_owned(),
    ))
}

fn invalid_tag(err: aws_smithy_types::error::operation::BuildError) -> ProvisionError {
    ProvisionError::Aws {
        operation: "CreateKey",
        message: format!("invalid tag: {err}"),
        request_id: None,
    }
}

/// Imports `material` into `key_id` (origin EXTERNAL) and checks that KMS now holds the
/// expected address. `valid_to` (seconds since the epoch) makes the material expire then;
/// `None` imports it without expiry. On a mismatch the key is disabled and scheduled for
/// deletion and the error names both addresses.
pub async fn import_material(
    client: &Client,
    key_id: &str,
    material: &ImportMaterial,
    valid_to: Option<i64>,
) -> Result<ImportedKey, ProvisionError> {
    let described = call(
        "DescribeKey",
        On::Key(key_id),
        client.describe_key().key_id(key_id).send(),
    )
    .await?;
    let metadata = described.key_metadata();
    let origin = metadata
        .and_then(|m| m.origin())
        .map(|o| o.as_str().to_owned());
    if origin.as_deref() != Some(OriginType::External.as_str()) {
        return Err(ProvisionError::NotExternal {
            key_id: key_id.to_owned(),
            origin: origin.unwrap_or_else(|| "unknown".into()),
        });
    }
    let arn = metadata.and_then(|m| m.arn()).unwrap_or(key_id).to_owned();
    let parameters = call(
        "GetParametersForImport",
        On::Key(key_id),
        client
            .get_parameters_for_import()
            .key_id(key_id)
            .wrapping_algorithm(WRAPPING_ALGORITHM)
            .wrapping_key_spec(WRAPPING_KEY_SPEC)
            .send(),
    )
    .await?;
    let (Some(wrapping_key), Some(token)) = (parameters.public_key(), parameters.import_token())
    else {
        return Err(ProvisionError::Aws {
            operation: "GetParametersForImport",
            message: "the answer has no public key or import token".into(),
            request_id: None,
        });
    };
    let wrapped = material.wrap(wrapping_key.as_ref())?;
    let mut request = client
        .import_key_material()
        .key_id(key_id)
        .import_token(token.clone())
        .encrypted_key_material(aws_smithy_types::Blob::new(wrapped));
    request = match valid_to {
        None => request.expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire),
        Some(seconds) => request
            .expiration_model(ExpirationModelType::KeyMaterialExpires)
            .valid_to(aws_smithy_types::DateTime::from_secs(seconds)),
    };
    call("ImportKeyMaterial", On::Key(key_id), request.send()).await?;
    let answered = call(
        "GetPublicKey",
        On::Key(key_id),
        client.get_public_key().key_id(key_id).send(),
    )
    .await?;
    let address = answered
        .public_key()
        .ok_or_else(|| ProvisionError::Aws {
            operation: "GetPublicKey",
            message: "the answer has no public key".into(),
            request_id: None,
        })
        .and_then(|der| {
            PublicKey::from_spki_der(der.as_ref()).map_err(|err| ProvisionError::Aws {
                operation: "GetPublicKey",
                message: err.to_string(),
                request_id: None,
            })
        })?
        .address();
    if address != material.address() {
        retire(client, key_id, true).await;
        return Err(ProvisionError::ImportedAddressMismatch {
            key_id: key_id.to_owned(),
            expected: material.address(),
            actual: address,
        });
    }
    Ok(ImportedKey {
        key_id: key_id.to_owned(),
        arn,
        address,
        valid_to: valid_to.and_then(|s| {
            aws_smithy_types::DateTime::from_secs(s)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .ok()
        }),
    })
}

/// Takes a key made for a refused import out of use: disabled first when it holds material
/// (`disable`), then scheduled for deletion with the shortest window. Best effort: the
/// import's own error is what the user must see, and a failure here is logged beside it.
pub async fn retire(client: &Client, key_id: &str, disable: bool) {
    if disable {
        if let Err(err) = call(
            "DisableKey",
            On::Key(key_id),
            client.disable_key().key_id(key_id).send(),
        )
        .await
        {
            tracing::warn!(key_id, %err, "could not disable the refused key");
        }
    }
    if let Err(err) = call(
        "ScheduleKeyDeletion",
        On::Key(key_id),
        client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(REFUSED_KEY_WINDOW_DAYS)
            .send(),
    )
    .await
    {
        tracing::warn!(key_id, %err, "could not schedule the refused key's deletion");
    }
}

/// The key `alias` points at, or `None` when no key has it.
pub async fn alias_target(client: &Client, alias: &str) -> Result<Option<String>, ProvisionError> {
    match crate::call::timed(
        "DescribeKey",
        On::Key(alias),
        client.describe_key().key_id(alias).send(),
    )
    .await
    {
        Ok(described) => Ok(described.key_metadata().map(|m| m.key_id().to_owned())),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(err) => Err(crate::error::aws("DescribeKey")(err)),
    }
}

/// Points the new `alias` at `key_id`.
pub async fn create_alias(
    client: &Client,
    alias: &str,
    key_id: &str,
) -> Result<(), ProvisionError> {
    call(
        "CreateAlias",
        On::Key(key_id),
        client
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send(),
    )
    .await?;
    Ok(())
}

/// Replicates the multi-Region key `key_id` into `region` (`replica`, a client of that
/// Region) with the primary's key policy, description and tags, and points each of the
/// primary's aliases at the replica there. Returns the replica's ARN.
pub async fn replicate_key(
    primary: &Client,
    replica: &Client,
    key_id: &str,
    region: &str,
) -> Result<String, ProvisionError> {
    let policy = call(
        "GetKeyPolicy",
        On::Key(key_id),
        primary
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send(),
    )
    .await?;
    let tags = call(
        "ListResourceTags",
        On::Key(key_id),
        primary.list_resource_tags().key_id(key_id).send(),
    )
    .await?;
    let described = call(
        "DescribeKey",
        On::Key(key_id),
        primary.describe_key().key_id(key_id).send(),
    )
    .await?;
    let metadata = described.key_metadata();
    let replicated = call(
        "ReplicateKey",
        On::Key(key_id),
        primary
            .replicate_key()
            .key_id(key_id)
            .replica_region(region)
            .set_policy(policy.policy().map(str::to_owned))
            .set_description(metadata.and_then(|m| m.description()).map(str::to_owned))
            .set_tags(Some(tags.tags().to_vec()))
            .send(),
    )
    .await?;
    let arn = replicated
        .replica_key_metadata()
        .and_then(|m| m.arn())
        .unwrap_or(key_id)
        .to_owned();
    let aliases = call(
        "ListAliases",
        On::Key(key_id),
        primary.list_aliases().key_id(key_id).send(),
    )
    .await?;
    for alias in aliases.aliases().iter().filter_map(|a| a.alias_name()) {
        create_alias(replica, alias, &arn).await?;
    }
    Ok(arn)
}
