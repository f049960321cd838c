//! The AWS KMS signer: the only module of this crate that talks to the network. It reads the
//! key's public key once, then asks KMS to sign digests, and turns each DER answer into a
//! checked Ethereum signature with the pure code in [`crate::signature`]. Each KMS call is
//! one `debug` trace event, and each failure one [`KmsError`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_kms::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_kms::error::{BoxError, ProvideErrorMetadata, SdkError};
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
use crate::signature::{finalize_prepared, parse_der, PreparedKey, Signature, SignatureError};
use crate::Error;

/// Why a KMS key cannot be used as an Ethereum account, or a KMS call failed.
///
/// One error for every failure: [`KmsError::kind`] says what went wrong, and every error
/// names the key as the caller gave it and, for failed calls, the KMS request id, which AWS
/// support asks for. The message is meant for the user as is.
#[derive(Debug)]
pub struct KmsError {
    kind: KmsErrorKind,
    key_id: String,
    request_id: Option<String>,
}

/// What went wrong, in a [`KmsError`]: only what differs from one failure to another; the
/// key and the request id are in the error itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum KmsErrorKind {
    /// The key does not exist in this account and region (or the caller may not see it).
    KeyNotFound,
    /// The key exists but its state forbids signing (Disabled, PendingDeletion, ...).
    KeyState {
        /// The KMS key state, for example [`KeyState::PendingDeletion`]; states KMS only
        /// names in an error message are [`KeyState::Unknown`] with that message.
        state: KeyState,
        /// More about the state and what to do, from DescribeKey when it is permitted.
        detail: String,
    },
    /// The key is not a secp256k1 key.
    WrongKeySpec {
        /// The key spec KMS reported.
        key_spec: String,
    },
    /// The key is not a signing key.
    WrongKeyUsage {
        /// The key usage KMS reported.
        key_usage: String,
    },
    /// The public key KMS returned is not a usable secp256k1 key.
    PublicKey(PublicKeyError),
    /// A KMS response lacked a field it always carries.
    IncompleteResponse {
        /// The KMS operation.
        operation: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// KMS answered `Sign` with a signature that is malformed or does not recover to the
    /// key's address. This should never happen; the request id lets AWS support look.
    BadSignature(SignatureError),
    /// KMS kept refusing with `ThrottlingException` until the signer's retries ran out: the
    /// account's KMS request quota is exhausted, by this process or by others sharing it.
    Throttled {
        /// The KMS operation (`GetPublicKey` or `Sign`).
        operation: &'static str,
        /// The most attempts the signer's retry policy makes for one call.
        max_attempts: u32,
    },
    /// The key is not the account the caller expected: typically an alias that was pointed
    /// at another key. Nothing was signed.
    AddressMismatch {
        /// The ARN the key id resolved to.
        key_arn: String,
        /// The address the caller expected.
        expected: Address,
        /// The address of the key KMS resolved.
        actual: Address,
    },
    /// `GetPublicKey` failed for another reason (credentials, network, permissions, ...).
    GetPublicKey(Box<SdkError<GetPublicKeyError>>),
    /// `Sign` failed for another reason (credentials, network, permissions, ...).
    Sign(Box<SdkError<SignError>>),
}

impl KmsError {
    fn new(kind: KmsErrorKind, key_id: impl Into<String>, request_id: Option<&str>) -> Self {
        KmsError {
            kind,
            key_id: key_id.into(),
            request_id: request_id.map(str::to_owned),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &KmsErrorKind {
        &self.kind
    }

    /// What went wrong, by value: for a caller that keeps the SDK error.
    pub fn into_kind(self) -> KmsErrorKind {
        self.kind
    }

    /// The key as the caller gave it (a key id, alias or ARN).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The request id of the KMS call that failed or reported the problem, when there was
    /// an answer to take it from.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_id = &self.key_id;
        let request_id = self.request_id.as_deref().unwrap_or("unknown");
        match &self.kind {
            KmsErrorKind::KeyNotFound => write!(
                f,
                "KMS key {key_id} was not found in this account and region (request id \
                 {request_id}); check the key id, alias or ARN and the region"
            ),
            KmsErrorKind::KeyState { state, detail } => write!(
                f,
                "KMS key {key_id} cannot sign: its state is {}{detail}",
                state.as_str()
            ),
            KmsErrorKind::WrongKeySpec { key_spec } => write!(
                f,
                "KMS key {key_id}: key spec {key_spec} is not {ETHEREUM_KEY_SPEC}; an Ethereum \
                 account needs a key created with KeySpec={ETHEREUM_KEY_SPEC}"
            ),
            KmsErrorKind::WrongKeyUsage { key_usage } => write!(
                f,
                "KMS key {key_id}: key usage {key_usage} is not SIGN_VERIFY; an Ethereum \
                 account needs a key created with KeyUsage=SIGN_VERIFY"
            ),
            KmsErrorKind::PublicKey(source) => write!(f, "KMS key {key_id}: {source}"),
            KmsErrorKind::IncompleteResponse { operation, field } => write!(
                f,
                "KMS {operation} for key {key_id} returned no {field} (request id {request_id})"
            ),
            KmsErrorKind::BadSignature(_) => write!(
                f,
                "KMS Sign with key {key_id} returned an unusable signature (request id \
                 {request_id})"
            ),
            KmsErrorKind::Throttled {
                operation,
                max_attempts,
            } => write!(
                f,
                "KMS throttled {operation} for key {key_id} and was still refusing when the \
                 signer stopped retrying (up to {max_attempts} attempts with backoff, fewer \
                 once the retry quota is used up; request id {request_id}); lower the request \
                 rate (fewer concurrent signatures), or ask AWS for a higher KMS request quota"
            ),
            KmsErrorKind::AddressMismatch {
                key_arn,
                expected,
                actual,
            } => write!(
                f,
                "KMS key {key_id} is account {actual}, not the expected {expected}; if \
                 {key_id} is an alias, it now points at another key ({key_arn}): point it \
                 back, or use the key id of the account you meant"
            ),
            KmsErrorKind::GetPublicKey(err) if unreachable(err) => {
                write_unreachable(f, "GetPublicKey", key_id)
            }
            KmsErrorKind::Sign(err) if unreachable(err) => write_unreachable(f, "Sign", key_id),
            KmsErrorKind::GetPublicKey(_) => write!(
                f,
                "KMS GetPublicKey for key {key_id} failed (request id {request_id})"
            ),
            KmsErrorKind::Sign(_) => write!(
                f,
                "KMS Sign with key {key_id} failed (request id {request_id})"
            ),
        }
    }
}

/// Whether the call never got an answer (no connection, or no answer in time): nothing the
/// user typed is wrong, and the message says where to look instead of "failed".
fn unreachable<E>(err: &SdkError<E>) -> bool {
    matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    )
}

fn write_unreachable(f: &mut fmt::Formatter<'_>, operation: &str, key_id: &str) -> fmt::Result {
    write!(
        f,
        "cannot reach the KMS endpoint for {operation} with key {key_id}: check the endpoint \
         (--endpoint-url, AWS_ENDPOINT_URL), the region and the network (for LocalStack: \
         `cargo xtask localstack up`), then run the same command again"
    )
}

impl std::error::Error for KmsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            KmsErrorKind::PublicKey(source) => Some(source),
            KmsErrorKind::BadSignature(source) => Some(source),
            KmsErrorKind::GetPublicKey(source) => Some(&**source),
            KmsErrorKind::Sign(source) => Some(&**source),
            _ => None,
        }
    }
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
/// with [`KmsErrorKind::Throttled`] or the SDK's error. Each key's signers share a retry quota of
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
    /// The key's table for verifying what KMS returns, built at the first signature (a
    /// signer that only says its address never needs it).
    prepared: OnceLock<PreparedKey>,
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
        let sent = traced("GetPublicKey", &key_id, |attempts| {
            client
                .get_public_key()
                .key_id(&key_id)
                .customize()
                .interceptor(attempts)
                .send()
        })
        .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return Err(call_error(&client, &key_id, &key_id, max_attempts, err).await),
        };
        // Every refusal below comes from this one answer, so each names its request id.
        let request_id = response.request_id();
        let refuse = |kind| KmsError::new(kind, key_id.as_str(), request_id);
        let incomplete = |field| {
            refuse(KmsErrorKind::IncompleteResponse {
                operation: "GetPublicKey",
                field,
            })
        };
        let key_spec = response.key_spec().ok_or_else(|| incomplete("KeySpec"))?;
        if *key_spec != KeySpec::EccSecgP256K1 {
            return Err(refuse(KmsErrorKind::WrongKeySpec {
                key_spec: key_spec.as_str().to_owned(),
            }));
        }
        let key_usage = response.key_usage().ok_or_else(|| incomplete("KeyUsage"))?;
        if *key_usage != KeyUsageType::SignVerify {
            return Err(refuse(KmsErrorKind::WrongKeyUsage {
                key_usage: key_usage.as_str().to_owned(),
            }));
        }
        let der = response
            .public_key()
            .ok_or_else(|| incomplete("PublicKey"))?;
        let key_arn = response
            .key_id()
            .ok_or_else(|| incomplete("KeyId"))?
            .to_owned();
        let public_key = PublicKey::from_spki_der(der.as_ref())
            .map_err(|source| refuse(KmsErrorKind::PublicKey(source)))?;
        Ok(KmsSigner {
            inner: Arc::new(Inner {
                client,
                max_attempts,
                key_id,
                key_arn,
                address: public_key.address(),
                public_key,
                prepared: OnceLock::new(),
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
        let kind = KmsErrorKind::AddressMismatch {
            key_arn: self.inner.key_arn.clone(),
            expected,
            actual: self.inner.address,
        };
        Err(KmsError::new(kind, self.inner.key_id.as_str(), None))
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
        self.sign_digest_with_request_id(digest)
            .await
            .map(|(signature, _)| signature)
    }

    /// [`KmsSigner::sign_digest`], with the request id of the `Sign` call that answered:
    /// what an audit log records, so that the signature can be found in CloudTrail.
    pub async fn sign_digest_with_request_id(
        &self,
        digest: &B256,
    ) -> Result<(Signature, Option<String>), Error> {
        let inner = &*self.inner;
        let sent = traced("Sign", &inner.key_id, |attempts| {
            inner
                .client
                .sign()
                .key_id(&inner.key_arn)
                .message(Blob::new(digest.to_vec()))
                .message_type(MessageType::Digest)
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .customize()
                .interceptor(attempts)
                .send()
        })
        .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                // A key that was usable when the signer was built and is not any more
                // (disabled or scheduled for deletion since) is described by its ARN: the
                // alias may have moved on.
                let (key_id, max_attempts) = (&inner.key_id, inner.max_attempts);
                let err = call_error(&inner.client, key_id, &inner.key_arn, max_attempts, err);
                return Err(err.await.into());
            }
        };
        let refuse = |kind| KmsError::new(kind, inner.key_id.as_str(), response.request_id());
        let der = response.signature().ok_or_else(|| {
            refuse(KmsErrorKind::IncompleteResponse {
                operation: "Sign",
                field: "Signature",
            })
        })?;
        parse_der(der.as_ref())
            .and_then(|(r, s)| {
                let key = inner
                    .prepared
                    .get_or_init(|| PreparedKey::new(inner.public_key));
                finalize_prepared(digest, &r, &s, key)
            })
            .map(|signature| (signature, response.request_id().map(str::to_owned)))
            .map_err(|source| refuse(KmsErrorKind::BadSignature(source)).into())
    }

    /// Signs many digests, at most `concurrency` at a time (at least one), and returns one
    /// result per digest in the order given.
    ///
    /// A failure does not stop the batch: every digest gets its own result, so the caller
    /// learns exactly which signatures failed and why (for example the key was disabled
    /// while the batch was in flight: the digests signed before that have signatures, the
    /// rest have [`KmsErrorKind::KeyState`]). Each call is bounded by the retry policy, so the
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

/// The operation-specific part of turning a failed KMS call into a [`KmsError`]: which of
/// the operation's modelled errors say that the key does not exist or that its state
/// forbids the call, and where the SDK error goes for any other failure. The rest is the
/// same for every operation, in [`call_error`].
trait OperationError: ProvideErrorMetadata + Sized {
    /// The KMS operation, as messages name it.
    const OPERATION: &'static str;

    /// What the service's refusal says about the key, if it is about the key.
    fn refusal(&self) -> Option<Refusal>;

    /// The kind for any other failure, keeping the SDK error for the caller.
    fn other(err: SdkError<Self>) -> KmsErrorKind;
}

/// A refusal that is about the key rather than the call.
#[derive(Debug, PartialEq)]
enum Refusal {
    NotFound,
    State(KeyState),
}

impl OperationError for GetPublicKeyError {
    const OPERATION: &'static str = "GetPublicKey";

    fn refusal(&self) -> Option<Refusal> {
        match self {
            GetPublicKeyError::NotFoundException(_) => Some(Refusal::NotFound),
            GetPublicKeyError::DisabledException(_) => Some(Refusal::State(KeyState::Disabled)),
            GetPublicKeyError::KmsInvalidStateException(e) => {
                Some(Refusal::State(state_from_message(e.message())))
            }
            _ => None,
        }
    }

    fn other(err: SdkError<Self>) -> KmsErrorKind {
        KmsErrorKind::GetPublicKey(Box::new(err))
    }
}

impl OperationError for SignError {
    const OPERATION: &'static str = "Sign";

    fn refusal(&self) -> Option<Refusal> {
        match self {
            SignError::NotFoundException(_) => Some(Refusal::NotFound),
            SignError::DisabledException(_) => Some(Refusal::State(KeyState::Disabled)),
            SignError::KmsInvalidStateException(e) => {
                Some(Refusal::State(state_from_message(e.message())))
            }
            _ => None,
        }
    }

    fn other(err: SdkError<Self>) -> KmsErrorKind {
        KmsErrorKind::Sign(Box::new(err))
    }
}

/// The error for a failed call of `key_id` (as the caller gave it): throttling that outlived
/// the retries, a key that does not exist, a key whose state forbids the call, or the SDK
/// error. `describe_id` is the key a state refusal is described by: the ARN once the signer
/// knows it, so that an alias moved since names the key that refused.
async fn call_error<E: OperationError>(
    client: &Client,
    key_id: &str,
    describe_id: &str,
    max_attempts: u32,
    err: SdkError<E>,
) -> KmsError {
    let request_id = err.request_id().map(str::to_owned);
    let refusal = err.as_service_error().and_then(E::refusal);
    let key_id = key_id.to_owned();
    let kind = if err.code() == Some(THROTTLING) {
        KmsErrorKind::Throttled {
            operation: E::OPERATION,
            max_attempts,
        }
    } else {
        match refusal {
            Some(Refusal::NotFound) => KmsErrorKind::KeyNotFound,
            Some(Refusal::State(state)) => {
                // This is the failure path, so one DescribeKey adds the deletion date and what
                // to do. It may be denied (the signer role is not granted it), or the key may
                // have been enabled again in between; then the state from the refusal is all
                // we say.
                match describe_state(client, &key_id, describe_id).await {
                    Some(described) if described.state != KeyState::Enabled => {
                        return described.into_error(key_id)
                    }
                    _ => KmsErrorKind::KeyState {
                        detail: state_advice(&key_id, &state, None),
                        state,
                    },
                }
            }
            None => E::other(err),
        }
    };
    KmsError {
        kind,
        key_id,
        request_id,
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
        KmsError {
            kind: KmsErrorKind::KeyState {
                detail: state_advice(&key_id, &self.state, self.deletion_date.as_deref()),
                state: self.state,
            },
            key_id,
            request_id: self.request_id,
        }
    }
}

/// The key state and deletion date from DescribeKey of `describe_id`, or `None` if the call
/// is not allowed or fails. `key_id` is the key as the caller gave it, for the trace.
async fn describe_state(client: &Client, key_id: &str, describe_id: &str) -> Option<Described> {
    let response = traced("DescribeKey", key_id, |attempts| {
        client
            .describe_key()
            .key_id(describe_id)
            .customize()
            .interceptor(attempts)
            .send()
    })
    .await
    .ok()?;
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

/// Sends one KMS call of `key_id` (as the caller gave it) and traces it: one debug event per
/// call, retries included, with the operation, the key, the request id, the latency, the
/// attempts and the outcome, so that a slow or failing signer can be diagnosed from its log.
/// Never the message or the signature: the event says how the call went, not what it carried.
async fn traced<T, E, F>(
    operation: &'static str,
    key_id: &str,
    send: impl FnOnce(Attempts) -> F,
) -> Result<T, SdkError<E>>
where
    T: RequestId,
    E: ProvideErrorMetadata,
    F: Future<Output = Result<T, SdkError<E>>>,
{
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = send(attempts.clone()).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (request_id, outcome) = match &result {
        Ok(output) => (output.request_id(), "ok"),
        Err(err) => (err.request_id(), outcome(err)),
    };
    tracing::debug!(
        operation,
        key_id,
        request_id,
        latency_ms,
        attempts = attempts.0.load(Ordering::Relaxed),
        outcome,
        "KMS call"
    );
    result
}

/// A failed call's outcome for its trace: the service's error code, or which way the SDK
/// failed before there was an answer to take one from.
fn outcome<E: ProvideErrorMetadata>(err: &SdkError<E>) -> &str {
    match err {
        SdkError::ServiceError(_) => err.code().unwrap_or("service error"),
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure",
        SdkError::ResponseError(_) => "response error",
        SdkError::ConstructionFailure(_) => "construction failure",
        _ => "SDK error",
    }
}

/// Counts the attempts of one KMS call for its trace. The SDK keeps its own count out of
/// reach of the caller, so each call carries a counter of its own, which the SDK bumps
/// before every attempt, retries included.
#[derive(Debug, Clone, Default)]
struct Attempts(Arc<AtomicU32>);

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "kms-eth-signer attempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
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
    use aws_sdk_kms::config::http::{HttpRequest, HttpResponse};
    use aws_sdk_kms::config::{BehaviorVersion, Credentials, HttpClient, Region};
    use aws_sdk_kms::operation::sign::SignOutput;
    use aws_sdk_kms::types::error::NotFoundException;
    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// An offline KMS: answers each operation (by its `X-Amz-Target`) with a fixed status
    /// and JSON body, every answer with the request id `req-<operation>`. An operation it
    /// has no answer for is refused as KMS refuses a call the caller is not granted.
    #[derive(Debug, Clone)]
    struct FakeKms(Vec<(&'static str, u16, &'static str)>);

    impl HttpConnector for FakeKms {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let target = request.headers().get("x-amz-target").unwrap_or_default();
            let operation = target.trim_start_matches("TrentService.").to_owned();
            let (status, body) = self
                .0
                .iter()
                .find(|(name, ..)| *name == operation)
                .map(|(_, status, body)| (*status, *body))
                .unwrap_or((
                    400,
                    r#"{"__type":"AccessDeniedException","message":"denied"}"#,
                ));
            HttpConnectorFuture::ready(Ok(answer(status, body, &format!("req-{operation}"))))
        }
    }

    impl HttpClient for FakeKms {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    fn answer(status: u16, body: &str, request_id: &str) -> HttpResponse {
        let status = StatusCode::try_from(status).unwrap();
        let mut response = HttpResponse::new(status, SdkBody::from(body));
        response
            .headers_mut()
            .insert("x-amzn-requestid", request_id.to_owned());
        response
    }

    fn client(routes: Vec<(&'static str, u16, &'static str)>) -> Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .http_client(FakeKms(routes))
            .build();
        Client::from_conf(config)
    }

    /// Two quick attempts, so that a throttled call gives up at once.
    fn two_attempts() -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(2)
            .with_initial_backoff(Duration::from_millis(1))
    }

    const PENDING_DELETION: &str = r#"{"__type":"KMSInvalidStateException","message":"arn:aws:kms:us-east-1:1:key/abc is pending deletion."}"#;
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

    #[tokio::test]
    async fn a_missing_key_is_not_found_with_the_request_id() {
        let err = call_error(
            &client(vec![]),
            "alias/gone",
            "alias/gone",
            3,
            SdkError::<SignError, _>::service_error(
                SignError::NotFoundException(NotFoundException::builder().build()),
                answer(400, "", "req-1"),
            ),
        )
        .await;
        assert!(matches!(err.kind(), KmsErrorKind::KeyNotFound), "{err:?}");
        assert_eq!(err.key_id(), "alias/gone");
        assert_eq!(err.request_id(), Some("req-1"));
        assert_eq!(
            err.to_string(),
            "KMS key alias/gone was not found in this account and region (request id req-1); \
             check the key id, alias or ARN and the region"
        );
    }

    #[tokio::test]
    async fn a_failure_before_any_answer_keeps_the_sdk_error() {
        let err = call_error(
            &client(vec![]),
            "k1",
            "arn:k1",
            3,
            SdkError::<SignError, HttpResponse>::timeout_error("stalled"),
        )
        .await;
        assert!(matches!(err.kind(), KmsErrorKind::Sign(_)), "{err:?}");
        assert_eq!(err.request_id(), None);
        assert!(std::error::Error::source(&err).is_some());
        // No answer at all is "cannot reach", never a bare "failed": nothing typed is wrong.
        assert!(
            err.to_string()
                .starts_with("cannot reach the KMS endpoint for Sign with key k1: check"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_throttled_call_names_the_operation_and_counts_its_attempts() {
        let kms = client(vec![
            ("GetPublicKey", 400, THROTTLED),
            ("Sign", 400, THROTTLED),
        ]);
        let err = KmsSigner::with_retry_config(kms.clone(), "k1", two_attempts())
            .await
            .unwrap_err();
        let KmsErrorKind::Throttled {
            operation,
            max_attempts,
        } = err.kind()
        else {
            panic!("expected throttling, got {err:?}");
        };
        assert_eq!((*operation, *max_attempts), ("GetPublicKey", 2));
        assert_eq!(err.request_id(), Some("req-GetPublicKey"));
        assert!(err.to_string().contains("KMS request quota"), "{err}");

        // The trace's count includes the retry.
        let kms = signer_client(&kms, "k1", two_attempts());
        let mut counted = Attempts::default();
        let result: Result<SignOutput, _> = traced("Sign", "k1", |attempts| {
            counted = attempts.clone();
            kms.sign()
                .key_id("k1")
                .customize()
                .interceptor(attempts)
                .send()
        })
        .await;
        assert!(result.is_err());
        assert_eq!(counted.0.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_key_pending_deletion_is_described_with_its_date() {
        let kms = client(vec![
            ("GetPublicKey", 400, PENDING_DELETION),
            (
                "DescribeKey",
                200,
                r#"{"KeyMetadata":{"KeyId":"abc","KeyState":"PendingDeletion","DeletionDate":1798156800}}"#,
            ),
        ]);
        let err = KmsSigner::new(kms, "alias/old").await.unwrap_err();
        let KmsErrorKind::KeyState { state, .. } = err.kind() else {
            panic!("expected a key state, got {err:?}");
        };
        assert_eq!(*state, KeyState::PendingDeletion);
        // The state comes from DescribeKey, so its request id is DescribeKey's.
        assert_eq!(err.request_id(), Some("req-DescribeKey"));
        assert_eq!(
            err.to_string(),
            "KMS key alias/old cannot sign: its state is PendingDeletion, scheduled for \
             deletion on 2026-12-25T00:00:00Z; until then the deletion can be cancelled with \
             `aws kms cancel-key-deletion --key-id alias/old` followed by \
             `aws kms enable-key --key-id alias/old`"
        );
    }

    #[tokio::test]
    async fn a_refused_describe_leaves_the_state_from_the_refusal() {
        let kms = client(vec![("GetPublicKey", 400, PENDING_DELETION)]);
        let err = KmsSigner::new(kms, "k1").await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                KmsErrorKind::KeyState {
                    state: KeyState::PendingDeletion,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.request_id(), Some("req-GetPublicKey"));
        assert!(
            !err.to_string().contains("scheduled for deletion on"),
            "{err}"
        );
    }

    #[test]
    fn messages_name_the_key_and_request_id_once_for_every_kind() {
        let address = |byte| Address([byte; 20]);
        let cases = [
            (
                KmsErrorKind::WrongKeySpec {
                    key_spec: "RSA_2048".into(),
                },
                "KMS key k1: key spec RSA_2048 is not ECC_SECG_P256K1; an Ethereum account \
                 needs a key created with KeySpec=ECC_SECG_P256K1",
            ),
            (
                KmsErrorKind::WrongKeyUsage {
                    key_usage: "ENCRYPT_DECRYPT".into(),
                },
                "KMS key k1: key usage ENCRYPT_DECRYPT is not SIGN_VERIFY; an Ethereum account \
                 needs a key created with KeyUsage=SIGN_VERIFY",
            ),
            (
                KmsErrorKind::IncompleteResponse {
                    operation: "Sign",
                    field: "Signature",
                },
                "KMS Sign for key k1 returned no Signature (request id r1)",
            ),
            (
                KmsErrorKind::BadSignature(SignatureError::HighS),
                "KMS Sign with key k1 returned an unusable signature (request id r1)",
            ),
            (
                KmsErrorKind::Throttled {
                    operation: "Sign",
                    max_attempts: 10,
                },
                "KMS throttled Sign for key k1 and was still refusing when the signer stopped \
                 retrying (up to 10 attempts with backoff, fewer once the retry quota is used \
                 up; request id r1); lower the request rate (fewer concurrent signatures), or \
                 ask AWS for a higher KMS request quota",
            ),
            (
                KmsErrorKind::AddressMismatch {
                    key_arn: "arn:k2".into(),
                    expected: address(1),
                    actual: address(2),
                },
                "KMS key k1 is account 0x0202020202020202020202020202020202020202, not the \
                 expected 0x0101010101010101010101010101010101010101; if k1 is an alias, it \
                 now points at another key (arn:k2): point it back, or use the key id of the \
                 account you meant",
            ),
            (
                KmsErrorKind::KeyState {
                    state: KeyState::Disabled,
                    detail: state_advice("k1", &KeyState::Disabled, None),
                },
                "KMS key k1 cannot sign: its state is Disabled; enable it with \
                 `aws kms enable-key --key-id k1`",
            ),
        ];
        for (kind, message) in cases {
            assert_eq!(KmsError::new(kind, "k1", Some("r1")).to_string(), message);
        }
    }

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
