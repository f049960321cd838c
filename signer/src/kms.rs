//! The AWS KMS signer: the only module of this crate that talks to the network. It reads the
//! key's public key once, then asks KMS to sign digests, and turns each DER answer into a
//! checked Ethereum signature with the pure code in [`crate::signature`].

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::get_public_key::GetPublicKeyError;
use aws_sdk_kms::operation::sign::SignError;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use futures_util::{stream, StreamExt};

use crate::address::Address;
use crate::hash::B256;
use crate::public_key::{PublicKey, PublicKeyError, ETHEREUM_KEY_SPEC};
use crate::sign::Signer;
use crate::signature::{finalize, parse_der, Signature, SignatureError};
use crate::Error;

/// Why a KMS key cannot be used as an Ethereum account, or a KMS call failed.
///
/// Every variant names the key as the caller gave it; variants for failed calls carry the
/// KMS request id, which AWS support asks for.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The key does not exist in this account and region (or the caller may not see it).
    #[error(
        "KMS key {key_id} was not found in this account and region (request id {}); \
         check the key id, alias or ARN and the region",
        request_id.as_deref().unwrap_or("unknown")
    )]
    KeyNotFound {
        /// The key as given.
        key_id: String,
        /// The KMS request id.
        request_id: Option<String>,
    },
    /// The key exists but its state forbids signing (Disabled, PendingDeletion, ...).
    #[error("KMS key {key_id} cannot sign: its state is {}{detail}", state.as_str())]
    KeyState {
        /// The key as given.
        key_id: String,
        /// The KMS key state, for example [`KeyState::PendingDeletion`]; states KMS only
        /// names in an error message are [`KeyState::Unknown`] with that message.
        state: KeyState,
        /// More about the state and what to do, from DescribeKey when it is permitted.
        detail: String,
        /// The KMS request id of the call that reported the state.
        request_id: Option<String>,
    },
    /// The key is not a secp256k1 key.
    #[error("KMS key {key_id}: key spec {key_spec} is not {ETHEREUM_KEY_SPEC}; an Ethereum account needs a key created with KeySpec={ETHEREUM_KEY_SPEC}")]
    WrongKeySpec {
        /// The key as given.
        key_id: String,
        /// The key spec KMS reported.
        key_spec: String,
    },
    /// The key is not a signing key.
    #[error("KMS key {key_id}: key usage {key_usage} is not SIGN_VERIFY; an Ethereum account needs a key created with KeyUsage=SIGN_VERIFY")]
    WrongKeyUsage {
        /// The key as given.
        key_id: String,
        /// The key usage KMS reported.
        key_usage: String,
    },
    /// The public key KMS returned is not a usable secp256k1 key.
    #[error("KMS key {key_id}: {source}")]
    PublicKey {
        /// The key as given.
        key_id: String,
        /// What was wrong with it.
        source: PublicKeyError,
    },
    /// A KMS response lacked a field it always carries.
    #[error("KMS {operation} for key {key_id} returned no {field} (request id {})", request_id.as_deref().unwrap_or("unknown"))]
    IncompleteResponse {
        /// The KMS operation.
        operation: &'static str,
        /// The key as given.
        key_id: String,
        /// The missing field.
        field: &'static str,
        /// The KMS request id.
        request_id: Option<String>,
    },
    /// KMS answered `Sign` with a signature that is malformed or does not recover to the
    /// key's address. This should never happen; the request id lets AWS support look.
    #[error("KMS Sign with key {key_id} returned an unusable signature (request id {})", request_id.as_deref().unwrap_or("unknown"))]
    BadSignature {
        /// The key as given.
        key_id: String,
        /// The KMS request id of the `Sign` call.
        request_id: Option<String>,
        /// What was wrong with the signature.
        source: SignatureError,
    },
    /// KMS kept refusing with `ThrottlingException` until the signer's retries ran out: the
    /// account's KMS request quota is exhausted, by this process or by others sharing it.
    #[error(
        "KMS throttled {operation} for key {key_id} and was still refusing when the signer \
         stopped retrying (up to {max_attempts} attempts with backoff, fewer once the retry \
         quota is used up; request id {}); lower the request rate (fewer concurrent \
         signatures), or ask AWS for a higher KMS request quota",
        request_id.as_deref().unwrap_or("unknown")
    )]
    Throttled {
        /// The KMS operation (`GetPublicKey` or `Sign`).
        operation: &'static str,
        /// The key as given.
        key_id: String,
        /// The most attempts the signer's retry policy makes for one call.
        max_attempts: u32,
        /// The KMS request id of the last refusal.
        request_id: Option<String>,
    },
    /// The key is not the account the caller expected: typically an alias that was pointed
    /// at another key. Nothing was signed.
    #[error(
        "KMS key {key_id} is account {actual}, not the expected {expected}; if {key_id} is an \
         alias, it now points at another key ({key_arn}): point it back, or use the key id \
         of the account you meant"
    )]
    AddressMismatch {
        /// The key as given.
        key_id: String,
        /// The ARN the key id resolved to.
        key_arn: String,
        /// The address the caller expected.
        expected: Address,
        /// The address of the key KMS resolved.
        actual: Address,
    },
    /// `GetPublicKey` failed for another reason (credentials, network, permissions, ...).
    #[error("KMS GetPublicKey for key {key_id} failed (request id {})", request_id.as_deref().unwrap_or("unknown"))]
    GetPublicKey {
        /// The key as given.
        key_id: String,
        /// The KMS request id.
        request_id: Option<String>,
        /// The SDK error.
        source: Box<SdkError<GetPublicKeyError>>,
    },
    /// `Sign` failed for another reason (credentials, network, permissions, ...).
    #[error("KMS Sign with key {key_id} failed (request id {})", request_id.as_deref().unwrap_or("unknown"))]
    Sign {
        /// The key as given.
        key_id: String,
        /// The KMS request id.
        request_id: Option<String>,
        /// The SDK error.
        source: Box<SdkError<SignError>>,
    },
}

/// An Ethereum account whose private key is a KMS key.
///
/// Cheap to clone and safe to share between tasks: clones share one client and one cached
/// public key, so any number of signatures can be in flight at once.
///
/// The signer pins the key: `key_id` may be an alias, but every `Sign` names the ARN that
/// `GetPublicKey` resolved, so re-pointing the alias cannot switch the account under a
/// running signer (use [`KmsSigner::expect_address`] to catch a re-pointed alias when the
/// signer is built).
///
/// Every KMS call retries throttling, 5xx answers and dropped connections with jittered
/// exponential backoff, at most [`KmsSigner::DEFAULT_MAX_ATTEMPTS`] attempts per call (see
/// [`KmsSigner::default_retry_config`]), and each attempt is bounded in time (30 s unless
/// the caller's client sets a bound), so a call never waits forever: it succeeds, or fails
/// with [`KmsError::Throttled`] or the SDK's error. Each key's signers share a retry quota of
/// their own, so a key that is refused everything stops retrying early without starving
/// other keys' signers.
#[derive(Clone)]
pub struct KmsSigner {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The most attempts one call makes, for error messages.
    max_attempts: u32,
    key_id: String,
    key_arn: String,
    public_key: PublicKey,
    address: Address,
}

impl KmsSigner {
    /// The most attempts one KMS call makes under [`KmsSigner::default_retry_config`].
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

    /// The retry policy every signer uses unless [`KmsSigner::with_retry_config`] replaces
    /// it: standard mode, [`KmsSigner::DEFAULT_MAX_ATTEMPTS`] attempts, backoff starting at
    /// 50 ms and capped at 2 s. A signing call that KMS throttles 30 % of the time then
    /// fails about once in 170,000 calls, and one that KMS refuses every time gives up
    /// within about 10 s.
    pub fn default_retry_config() -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(Self::DEFAULT_MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(2))
    }

    /// Reads the public key of `key_id` (a key id, `alias/...` or key ARN) with one
    /// `GetPublicKey` call and checks that it is a secp256k1 signing key.
    ///
    /// That one call is all: needs only `kms:GetPublicKey` (and `kms:Sign` later). KMS
    /// refuses `GetPublicKey` for a disabled key or one pending deletion; then the error
    /// names the state, and, where `kms:DescribeKey` is permitted, the deletion date and how
    /// to cancel it. (LocalStack answers `GetPublicKey` for disabled keys; such a signer's
    /// first `Sign` reports the state instead.)
    pub async fn new(client: Client, key_id: impl Into<String>) -> Result<Self, KmsError> {
        Self::with_retry_config(client, key_id, Self::default_retry_config()).await
    }

    /// [`KmsSigner::new`] with another retry policy for every KMS call this signer makes.
    pub async fn with_retry_config(
        client: Client,
        key_id: impl Into<String>,
        retry: RetryConfig,
    ) -> Result<Self, KmsError> {
        let key_id = key_id.into();
        let max_attempts = retry.max_attempts();
        let client = signer_client(&client, &key_id, retry);
        let sent = client.get_public_key().key_id(&key_id).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return Err(get_public_key_error(&client, key_id, max_attempts, err).await),
        };
        let request_id = response.request_id().map(str::to_owned);
        let incomplete = |field| KmsError::IncompleteResponse {
            operation: "GetPublicKey",
            key_id: key_id.clone(),
            field,
            request_id: request_id.clone(),
        };
        let key_spec = response.key_spec().ok_or_else(|| incomplete("KeySpec"))?;
        if *key_spec != KeySpec::EccSecgP256K1 {
            return Err(KmsError::WrongKeySpec {
                key_id,
                key_spec: key_spec.as_str().to_owned(),
            });
        }
        let key_usage = response.key_usage().ok_or_else(|| incomplete("KeyUsage"))?;
        if *key_usage != KeyUsageType::SignVerify {
            return Err(KmsError::WrongKeyUsage {
                key_id,
                key_usage: key_usage.as_str().to_owned(),
            });
        }
        let der = response
            .public_key()
            .ok_or_else(|| incomplete("PublicKey"))?;
        let key_arn = response
            .key_id()
            .ok_or_else(|| incomplete("KeyId"))?
            .to_owned();
        let public_key =
            PublicKey::from_spki_der(der.as_ref()).map_err(|source| KmsError::PublicKey {
                key_id: key_id.clone(),
                source,
            })?;
        Ok(KmsSigner {
            inner: Arc::new(Inner {
                client,
                max_attempts,
                key_id,
                key_arn,
                address: public_key.address(),
                public_key,
            }),
        })
    }

    /// Refuses the signer unless its account is `expected`: for callers that name the key
    /// by alias and know which account they mean, so that an alias pointed at another key
    /// is caught before anything is signed.
    pub fn expect_address(self, expected: Address) -> Result<Self, KmsError> {
        if self.inner.address == expected {
            return Ok(self);
        }
        Err(KmsError::AddressMismatch {
            key_id: self.inner.key_id.clone(),
            key_arn: self.inner.key_arn.clone(),
            expected,
            actual: self.inner.address,
        })
    }

    /// The key as the caller named it.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The key's ARN. Signing always uses the ARN, so re-pointing an alias cannot switch
    /// the key under a running signer.
    pub fn key_arn(&self) -> &str {
        &self.inner.key_arn
    }

    /// The account's address, derived once from the public key.
    pub fn address(&self) -> Address {
        self.inner.address
    }

    /// The key's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.inner.public_key
    }

    /// Signs a digest with one KMS `Sign` call (retried as the retry policy allows), and
    /// checks the result: strict DER, low `s`, and recovery to this account's address.
    pub async fn sign_digest(&self, digest: &B256) -> Result<Signature, Error> {
        let inner = &*self.inner;
        let sent = inner
            .client
            .sign()
            .key_id(&inner.key_arn)
            .message(Blob::new(digest.to_vec()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return Err(self.sign_error(err).await.into()),
        };
        let der = response
            .signature()
            .ok_or_else(|| KmsError::IncompleteResponse {
                operation: "Sign",
                key_id: inner.key_id.clone(),
                field: "Signature",
                request_id: response.request_id().map(str::to_owned),
            })?;
        parse_der(der.as_ref())
            .and_then(|(r, s)| finalize(digest, &r, &s, &inner.public_key))
            .map_err(|source| {
                KmsError::BadSignature {
                    key_id: inner.key_id.clone(),
                    request_id: response.request_id().map(str::to_owned),
                    source,
                }
                .into()
            })
    }

    /// Signs many digests, at most `concurrency` at a time (at least one), and returns one
    /// result per digest in the order given.
    ///
    /// A failure does not stop the batch: every digest gets its own result, so the caller
    /// learns exactly which signatures failed and why (for example the key was disabled
    /// while the batch was in flight: the digests signed before that have signatures, the
    /// rest have [`KmsError::KeyState`]). Each call is bounded by the retry policy, so the
    /// batch always finishes.
    pub async fn sign_digests(
        &self,
        digests: &[B256],
        concurrency: usize,
    ) -> Vec<Result<Signature, Error>> {
        // Digests are copied into each future (32 bytes), so the futures borrow nothing but
        // `self` and the batch stays `Send` for any caller that spawns it. Results are taken
        // as they finish, so one signature waiting out a retry's backoff does not hold up
        // the others, and put back in order at the end.
        let mut indexed: Vec<(usize, Result<Signature, Error>)> =
            stream::iter(digests.iter().copied().enumerate())
                .map(|(i, digest)| async move { (i, self.sign_digest(&digest).await) })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        indexed.sort_unstable_by_key(|(i, _)| *i);
        indexed.into_iter().map(|(_, result)| result).collect()
    }

    async fn sign_error(&self, err: SdkError<SignError>) -> KmsError {
        let key_id = self.inner.key_id.clone();
        let request_id = err.request_id().map(str::to_owned);
        if err.code() == Some(THROTTLING) {
            return KmsError::Throttled {
                operation: "Sign",
                key_id,
                max_attempts: self.inner.max_attempts,
                request_id,
            };
        }
        let state = match err.as_service_error() {
            Some(SignError::DisabledException(_)) => Some(KeyState::Disabled),
            Some(SignError::KmsInvalidStateException(e)) => Some(state_from_message(e.message())),
            Some(SignError::NotFoundException(_)) => {
                return KmsError::KeyNotFound { key_id, request_id }
            }
            _ => None,
        };
        match state {
            // A key that was usable when the signer was built and is not any more (disabled
            // or scheduled for deletion since). This is the failure path, so one DescribeKey
            // (where permitted) adds the deletion date and what to do.
            Some(state) => match describe_state(&self.inner.client, &self.inner.key_arn).await {
                Some(described) if described.state != KeyState::Enabled => {
                    described.into_error(key_id)
                }
                _ => KmsError::KeyState {
                    detail: state_advice(&key_id, &state, None),
                    key_id,
                    state,
                    request_id,
                },
            },
            None => KmsError::Sign {
                key_id,
                request_id,
                source: Box::new(err),
            },
        }
    }
}

impl Signer for KmsSigner {
    fn address(&self) -> Address {
        self.inner.address
    }

    async fn sign_digest(&self, digest: &B256) -> Result<Signature, Error> {
        KmsSigner::sign_digest(self, digest).await
    }
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_id", &self.inner.key_id)
            .field("key_arn", &self.inner.key_arn)
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

/// How long one attempt of a KMS call may take when the caller's client sets no limit.
/// KMS answers `Sign` in milliseconds; an attempt that has not been answered in 30 s is a
/// stalled connection, and is retried like a dropped one.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The signer's own client: the caller's configuration (credentials, region, endpoint, HTTP
/// client and its connection pool, interceptors) with the signer's retry policy, a bound on
/// each attempt if the caller set none, and a retry quota of its own for this key, so that
/// throttling elsewhere in the process cannot use up this signer's retries. Built once, so
/// signing pays nothing per call for it.
fn signer_client(client: &Client, key_id: &str, retry: RetryConfig) -> Client {
    let config = client.config();
    let timeouts = config
        .timeout_config()
        .map(|t| t.to_builder())
        .unwrap_or_default();
    let timeouts = timeouts
        .take_unset_from(
            TimeoutConfig::builder().operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT),
        )
        .build();
    let partition = format!("kms-eth-signer {key_id}");
    Client::from_conf(
        config
            .to_builder()
            .retry_config(retry)
            .retry_partition(RetryPartition::new(partition))
            .timeout_config(timeouts)
            .build(),
    )
}

/// The error code KMS (and every AWS JSON service) gives a throttled request.
const THROTTLING: &str = "ThrottlingException";

async fn get_public_key_error(
    client: &Client,
    key_id: String,
    max_attempts: u32,
    err: SdkError<GetPublicKeyError>,
) -> KmsError {
    let request_id = err.request_id().map(str::to_owned);
    if err.code() == Some(THROTTLING) {
        return KmsError::Throttled {
            operation: "GetPublicKey",
            key_id,
            max_attempts,
            request_id,
        };
    }
    let state = match err.as_service_error() {
        Some(GetPublicKeyError::DisabledException(_)) => KeyState::Disabled,
        Some(GetPublicKeyError::KmsInvalidStateException(e)) => state_from_message(e.message()),
        Some(GetPublicKeyError::NotFoundException(_)) => {
            return KmsError::KeyNotFound { key_id, request_id }
        }
        _ => {
            return KmsError::GetPublicKey {
                key_id,
                request_id,
                source: Box::new(err),
            }
        }
    };
    // DescribeKey may be denied (the signer role is not granted it), or the key may have
    // been enabled again in between; then the state from the refusal is all we say.
    match describe_state(client, &key_id).await {
        Some(described) if described.state != KeyState::Enabled => described.into_error(key_id),
        _ => KmsError::KeyState {
            detail: state_advice(&key_id, &state, None),
            key_id,
            state,
            request_id,
        },
    }
}

/// What DescribeKey says about a key's state.
struct Described {
    state: KeyState,
    deletion_date: Option<String>,
    request_id: Option<String>,
}

impl Described {
    /// The error for a key that cannot sign in this state.
    fn into_error(self, key_id: String) -> KmsError {
        KmsError::KeyState {
            detail: state_advice(&key_id, &self.state, self.deletion_date.as_deref()),
            key_id,
            state: self.state,
            request_id: self.request_id,
        }
    }
}

/// The key state and deletion date from DescribeKey, or `None` if the call is not allowed
/// or fails.
async fn describe_state(client: &Client, key_id: &str) -> Option<Described> {
    let response = client.describe_key().key_id(key_id).send().await.ok()?;
    let metadata = response.key_metadata()?;
    Some(Described {
        state: metadata.key_state()?.clone(),
        deletion_date: metadata.deletion_date().map(|date| {
            date.fmt(aws_sdk_kms::primitives::DateTimeFormat::DateTime)
                .unwrap_or_else(|_| date.to_string())
        }),
        request_id: response.request_id().map(str::to_owned),
    })
}

/// What the user can do about a key in `state`, as a suffix for the error message.
fn state_advice(key_id: &str, state: &KeyState, deletion_date: Option<&str>) -> String {
    match state {
        KeyState::PendingDeletion => {
            let when = deletion_date
                .map(|date| format!(", scheduled for deletion on {date}"))
                .unwrap_or_default();
            format!(
                "{when}; until then the deletion can be cancelled with \
                 `aws kms cancel-key-deletion --key-id {key_id}` followed by \
                 `aws kms enable-key --key-id {key_id}`"
            )
        }
        KeyState::Disabled => format!("; enable it with `aws kms enable-key --key-id {key_id}`"),
        _ => String::new(),
    }
}

/// The key state named in a `KMSInvalidStateException` message. KMS words it differently
/// from the state names (AWS: "... is pending deletion."), so both forms are recognised; an
/// unrecognised message becomes [`KeyState::Unknown`] carrying the message itself.
fn state_from_message(message: Option<&str>) -> KeyState {
    let message = message.unwrap_or_default();
    let squashed: String = message
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let known = [
        KeyState::PendingDeletion,
        KeyState::PendingReplicaDeletion,
        KeyState::PendingImport,
        KeyState::Unavailable,
        KeyState::Disabled,
        KeyState::Creating,
        KeyState::Updating,
    ];
    known
        .into_iter()
        .find(|state| squashed.contains(&state.as_str().to_ascii_lowercase()))
        .unwrap_or_else(|| KeyState::from(format!("not usable ({message})").as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_read_from_aws_and_localstack_wordings() {
        assert_eq!(
            state_from_message(Some("arn:aws:kms:us-east-1:1:key/abc is pending deletion.")),
            KeyState::PendingDeletion
        );
        assert_eq!(
            state_from_message(Some("key is in PendingDeletion state")),
            KeyState::PendingDeletion
        );
        assert_eq!(
            state_from_message(Some("key is disabled")),
            KeyState::Disabled
        );
        assert_eq!(state_from_message(None).as_str(), "not usable ()");
    }

    #[test]
    fn pending_deletion_advice_names_date_and_cancellation() {
        let advice = state_advice(
            "k1",
            &KeyState::PendingDeletion,
            Some("2026-12-25T00:00:00Z"),
        );
        assert!(advice.contains("2026-12-25T00:00:00Z"));
        assert!(advice.contains("cancel-key-deletion --key-id k1"));
    }
}
