//! The AWS KMS signer: the only module of this crate that talks to the network. It reads the
//! key's public key once, then asks KMS to sign digests, and turns each DER answer into a
//! checked Ethereum signature with the pure code in [`crate::signature`]. The calls are thin
//! functions in [`request`] (one `debug` trace event each), the reading of their answers is
//! pure, in [`decode`], and each failure is one [`KmsError`] ([`error`]).

mod decode;
mod error;
mod regions;
mod request;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::types::KeyState;
use aws_sdk_kms::Client;
use futures_util::{stream, StreamExt};

use crate::address::Address;
use crate::hash::B256;
use crate::public_key::PublicKey;
use crate::sign::Signer;
use crate::signature::{PreparedKey, Signature};
use crate::Error;
use error::{classify, state_advice, Failure, Operation};
pub use error::{KmsError, KmsErrorKind};
pub use regions::{fails_over, MultiRegionSigner, RegionHealth};
use request::CallPolicy;

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
/// [`KmsSigner::default_retry_config`]), and is bounded in time unless the caller's client
/// sets bounds of its own: connecting within [`KmsSigner::DEFAULT_CONNECT_TIMEOUT`], each
/// attempt within [`KmsSigner::DEFAULT_ATTEMPT_TIMEOUT`]. So a call never waits forever: it
/// succeeds, or fails with [`KmsErrorKind::Throttled`] or the SDK's error. Each key's signers
/// share a retry quota of their own, so a key that is refused everything stops retrying
/// early without starving other keys' signers.
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

    /// How long connecting to KMS may take when the caller's client sets no limit: the
    /// SDK's own default for current behaviour versions, set by the signer itself so that a
    /// client without one still gives up on an endpoint that never accepts (a blackholed
    /// address, a dead VPC endpoint), and retries.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

    /// How long one attempt of a KMS call may take when the caller's client sets no limit.
    /// KMS answers `Sign` in milliseconds; an attempt that has not been answered in 30 s is
    /// a stalled connection (the read that never comes), and is retried like a dropped one.
    /// The Lambda relies on it: without it a stalled call runs until the function's timeout.
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

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
        let policy = CallPolicy {
            retry,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
        };
        Self::with_policy(client, key_id.into(), policy).await
    }

    /// [`KmsSigner::new`] with every part of the call policy given: the tests use it for
    /// time bounds short enough to wait out.
    pub(crate) async fn with_policy(
        client: Client,
        key_id: String,
        policy: CallPolicy,
    ) -> Result<Self, KmsError> {
        let max_attempts = policy.retry.max_attempts();
        let client = request::signer_client(&client, &key_id, &policy);
        let answer = match request::get_public_key(&client, &key_id).await {
            Ok(answer) => answer,
            Err(err) => return Err(call_error(&client, &key_id, &key_id, max_attempts, err).await),
        };
        let key = decode::account_key(&answer, &key_id, answer.request_id())?;
        Ok(KmsSigner {
            inner: Arc::new(Inner {
                client,
                max_attempts,
                key_id,
                key_arn: key.key_arn,
                address: key.public_key.address(),
                public_key: key.public_key,
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
        let (key_id, key_arn) = (&inner.key_id, &inner.key_arn);
        let answer = match request::sign(&inner.client, key_id, key_arn, digest).await {
            Ok(answer) => answer,
            Err(err) => {
                // A key that was usable when the signer was built and is not any more
                // (disabled or scheduled for deletion since) is described by its ARN: the
                // alias may have moved on.
                let err = call_error(&inner.client, key_id, key_arn, inner.max_attempts, err);
                return Err(err.await.into());
            }
        };
        let key = inner
            .prepared
            .get_or_init(|| PreparedKey::new(inner.public_key));
        let request_id = answer.request_id();
        let signature = decode::signature(&answer, digest, key, key_id, request_id)?;
        Ok((signature, request_id.map(str::to_owned)))
    }

    /// The same key's replica in `region` (a multi-Region key), signed for with this
    /// signer's client configuration (credentials, retries, time bounds) in that Region.
    /// One `GetPublicKey` there, as [`KmsSigner::new`] makes.
    pub async fn replica(&self, region: &str) -> Result<KmsSigner, KmsError> {
        let config = self
            .inner
            .client
            .config()
            .to_builder()
            .region(aws_sdk_kms::config::Region::new(region.to_owned()))
            .build();
        let key = arn_in_region(&self.inner.key_arn, region);
        KmsSigner::new(Client::from_conf(config), key).await
    }

    /// Whether the key answers now: one `GetPublicKey` of its ARN, a single attempt of at
    /// most `timeout`, whose key must still be this signer's. For health checks (a
    /// [`MultiRegionSigner`]'s Regions), which must not wait out the retry policy.
    pub async fn probe(&self, timeout: Duration) -> Result<(), KmsError> {
        let inner = &*self.inner;
        let (key_id, key_arn) = (&inner.key_id, &inner.key_arn);
        let answer = match request::probe_public_key(&inner.client, key_id, key_arn, timeout).await
        {
            Ok(answer) => answer,
            Err(err) => return Err(call_error(&inner.client, key_id, key_arn, 1, err).await),
        };
        let key = decode::account_key(&answer, key_id, answer.request_id())?;
        if key.public_key.address() != inner.address {
            let kind = KmsErrorKind::AddressMismatch {
                key_arn: key_arn.clone(),
                expected: inner.address,
                actual: key.public_key.address(),
            };
            return Err(KmsError::new(kind, key_id.as_str(), answer.request_id()));
        }
        Ok(())
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

/// `key_arn` (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`) with `region` in place of its
/// Region: the ARN of a multi-Region key's replica there. Anything else is returned as is.
pub fn arn_in_region(key_arn: &str, region: &str) -> String {
    let parts: Vec<&str> = key_arn.splitn(5, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "kms", _, rest] => format!("arn:{partition}:kms:{region}:{rest}"),
        _ => key_arn.to_owned(),
    }
}

/// The error for a failed call of `key_id` (as the caller gave it): throttling that outlived
/// the retries, a key that does not exist, a key whose state forbids the call, or the SDK
/// error. `describe_id` is the key a state refusal is described by: the ARN once the signer
/// knows it, so that an alias moved since names the key that refused.
async fn call_error<E: Operation>(
    client: &Client,
    key_id: &str,
    describe_id: &str,
    max_attempts: u32,
    err: SdkError<E>,
) -> KmsError {
    let request_id = err.request_id().map(str::to_owned);
    let kind = match classify(err, max_attempts) {
        Failure::Kind(kind) => kind,
        Failure::State(state) => {
            // This is the failure path, so one DescribeKey adds the deletion date and what
            // to do. It may be denied (the signer role is not granted it), or the key may
            // have been enabled again in between; then the state from the refusal is all we
            // say.
            let described = request::describe_key(client, key_id, describe_id)
                .await
                .ok()
                .and_then(|answer| decode::described(&answer, answer.request_id()));
            match described {
                Some(described) if described.state != KeyState::Enabled => {
                    return described.into_error(key_id.to_owned())
                }
                _ => KmsErrorKind::KeyState {
                    detail: state_advice(key_id, &state, None),
                    state,
                },
            }
        }
    };
    KmsError::new(kind, key_id, request_id.as_deref())
}
