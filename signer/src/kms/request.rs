//! The signer's KMS calls, one thin function per operation (`GetPublicKey`, `Sign`,
//! `DescribeKey`): each sends one request on the signer's own client (its retry policy and
//! time bounds) and traces it as one `debug` event. They return the SDK's answer or error
//! as is; reading either is [`super::decode`]'s and [`super::error`]'s job.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_kms::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_kms::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
use aws_sdk_kms::operation::get_public_key::{GetPublicKeyError, GetPublicKeyOutput};
use aws_sdk_kms::operation::sign::{SignError, SignOutput};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;

use crate::hash::B256;

/// How the signer's calls retry and how long they may take: the retry policy, and the time
/// bounds that apply where the caller's client sets none.
#[derive(Debug, Clone)]
pub(crate) struct CallPolicy {
    pub retry: RetryConfig,
    /// The most time connecting to KMS may take.
    pub connect_timeout: Duration,
    /// The most time one attempt may take, connecting and waiting for the answer included.
    pub attempt_timeout: Duration,
}

/// The signer's own client: the caller's configuration (credentials, region, endpoint, HTTP
/// client and its connection pool, interceptors) with the policy's retries, its time bounds
/// where the caller set none, and a retry quota of its own for this key, so that throttling
/// elsewhere in the process cannot use up this signer's retries. Built once, so signing
/// pays nothing per call for it.
pub(super) fn signer_client(client: &Client, key_id: &str, policy: &CallPolicy) -> Client {
    let config = client.config();
    let timeouts = config
        .timeout_config()
        .map(|t| t.to_builder())
        .unwrap_or_default();
    let timeouts = timeouts
        .take_unset_from(
            TimeoutConfig::builder()
                .connect_timeout(policy.connect_timeout)
                .operation_attempt_timeout(policy.attempt_timeout),
        )
        .build();
    let partition = format!("kms-eth-signer {key_id}");
    Client::from_conf(
        config
            .to_builder()
            .retry_config(policy.retry.clone())
            .retry_partition(RetryPartition::new(partition))
            .timeout_config(timeouts)
            .build(),
    )
}

/// `GetPublicKey` of `key_id` (a key id, alias or ARN).
pub(super) async fn get_public_key(
    client: &Client,
    key_id: &str,
) -> Result<GetPublicKeyOutput, SdkError<GetPublicKeyError>> {
    traced("GetPublicKey", key_id, |attempts| {
        client
            .get_public_key()
            .key_id(key_id)
            .customize()
            .interceptor(attempts)
            .send()
    })
    .await
}

/// `GetPublicKey` of `key_arn` in one attempt bounded by `timeout`: a health probe, which
/// must say quickly whether the Region answers rather than ride out an outage.
pub(super) async fn probe_public_key(
    client: &Client,
    key_id: &str,
    key_arn: &str,
    timeout: Duration,
) -> Result<GetPublicKeyOutput, SdkError<GetPublicKeyError>> {
    let bounded = aws_sdk_kms::config::Builder::default()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout)
                .operation_attempt_timeout(timeout)
                .build(),
        );
    traced("GetPublicKey", key_id, |attempts| {
        client
            .get_public_key()
            .key_id(key_arn)
            .customize()
            .config_override(bounded)
            .interceptor(attempts)
            .send()
    })
    .await
}

/// `Sign` of `digest` (as a digest, ECDSA with SHA-256) with the key `key_arn`; `key_id` is
/// the key as the caller gave it, for the trace.
pub(super) async fn sign(
    client: &Client,
    key_id: &str,
    key_arn: &str,
    digest: &B256,
) -> Result<SignOutput, SdkError<SignError>> {
    traced("Sign", key_id, |attempts| {
        client
            .sign()
            .key_id(key_arn)
            .message(Blob::new(digest.to_vec()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .customize()
            .interceptor(attempts)
            .send()
    })
    .await
}

/// `DescribeKey` of `describe_id`; `key_id` is the key as the caller gave it, for the trace.
pub(super) async fn describe_key(
    client: &Client,
    key_id: &str,
    describe_id: &str,
) -> Result<DescribeKeyOutput, SdkError<DescribeKeyError>> {
    traced("DescribeKey", key_id, |attempts| {
        client
            .describe_key()
            .key_id(describe_id)
            .customize()
            .interceptor(attempts)
            .send()
    })
    .await
}

/// Sends one KMS call of `key_id` (as the caller gave it) and traces it: one debug event per
/// call, retries included, with the operation, the key, the request id, the latency, the
/// attempts and the outcome, so that a slow or failing signer can be diagnosed from its log.
/// Never the message or the signature: the event says how the call went, not what it carried.
pub(super) async fn traced<T, E, F>(
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
        attempts = attempts.count(),
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
pub(super) struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// The attempts made so far.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

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
