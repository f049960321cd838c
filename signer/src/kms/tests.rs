//! The signer against an offline KMS (an HTTP client that answers from a table) and against
//! loopback endpoints that never accept or never answer: errors, traces and time bounds.

use std::time::{Duration, Instant};

use aws_sdk_kms::config::http::{HttpRequest, HttpResponse};
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, HttpClient, Region, RuntimeComponents};
use aws_sdk_kms::error::ErrorMetadata;
use aws_sdk_kms::operation::sign::{SignError, SignOutput};
use aws_sdk_kms::types::error::NotFoundException;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::request::{self, Attempts, CallPolicy};
use super::*;

/// An offline KMS: answers each operation (by its `X-Amz-Target`) with a fixed status and
/// JSON body, every answer with the request id `req-<operation>`. An operation it has no
/// answer for is refused as KMS refuses a call the caller is not granted.
#[derive(Debug, Clone)]
struct FakeKms(Vec<(&'static str, u16, String)>);

impl HttpConnector for FakeKms {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.trim_start_matches("TrentService.").to_owned();
        let (status, body) = self
            .0
            .iter()
            .find(|(name, ..)| *name == operation)
            .map(|(_, status, body)| (*status, body.as_str()))
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

/// The configuration every test client starts from: a region and static credentials, no
/// time bounds of its own.
fn config() -> aws_sdk_kms::config::Builder {
    aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
}

fn client(routes: &[(&'static str, u16, &str)]) -> Client {
    let routes = routes
        .iter()
        .map(|(operation, status, body)| (*operation, *status, (*body).to_owned()))
        .collect();
    Client::from_conf(config().http_client(FakeKms(routes)).build())
}

/// Two quick attempts, so that a throttled call gives up at once.
fn two_attempts() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(1))
}

const PENDING_DELETION: &str = r#"{"__type":"KMSInvalidStateException","message":"arn:aws:kms:us-east-1:1:key/abc is pending deletion."}"#;
const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

/// A `GetPublicKey` answer for the EIP-155 example's key (0x46...46, which the leak scan
/// knows), as KMS gives it.
fn public_key_answer() -> String {
    let key = k256::ecdsa::SigningKey::from_slice(&[0x46; 32]).unwrap();
    let mut der = hex::decode("3056301006072a8648ce3d020106052b8104000a034200").unwrap();
    der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
    format!(
        r#"{{"KeyId":"arn:aws:kms:us-east-1:1:key/k1","KeySpec":"ECC_SECG_P256K1","KeyUsage":"SIGN_VERIFY","PublicKey":"{}"}}"#,
        aws_smithy_types::base64::encode(der)
    )
}

#[tokio::test]
async fn a_missing_key_is_not_found_with_the_request_id() {
    // As the SDK reads KMS's refusal: the modelled error, with its code in the metadata.
    let not_found = NotFoundException::builder()
        .meta(ErrorMetadata::builder().code("NotFoundException").build())
        .build();
    let err = call_error(
        &client(&[]),
        "alias/gone",
        "alias/gone",
        3,
        SdkError::<SignError, _>::service_error(
            SignError::NotFoundException(not_found),
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
async fn a_missing_key_is_not_found_whichever_call_kms_refuses() {
    let not_found = r#"{"__type":"NotFoundException","message":"no such key"}"#;
    let kms = client(&[("GetPublicKey", 400, not_found)]);
    let err = KmsSigner::new(kms, "alias/gone").await.unwrap_err();
    assert!(matches!(err.kind(), KmsErrorKind::KeyNotFound), "{err:?}");
    assert_eq!(err.request_id(), Some("req-GetPublicKey"));

    let answer = public_key_answer();
    let kms = client(&[("GetPublicKey", 200, &answer), ("Sign", 400, not_found)]);
    let signer = KmsSigner::new(kms, "alias/k1").await.unwrap();
    let Err(Error::Kms(err)) = signer.sign_digest(&[7; 32]).await else {
        panic!("signed with a key KMS does not find");
    };
    assert!(matches!(err.kind(), KmsErrorKind::KeyNotFound), "{err:?}");
    assert_eq!(err.request_id(), Some("req-Sign"));
}

#[tokio::test]
async fn a_failure_before_any_answer_keeps_the_sdk_error() {
    let err = call_error(
        &client(&[]),
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
    let kms = client(&[("GetPublicKey", 400, THROTTLED), ("Sign", 400, THROTTLED)]);
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
    let policy = CallPolicy {
        retry: two_attempts(),
        connect_timeout: KmsSigner::DEFAULT_CONNECT_TIMEOUT,
        attempt_timeout: KmsSigner::DEFAULT_ATTEMPT_TIMEOUT,
    };
    let kms = request::signer_client(&kms, "k1", &policy);
    let mut counted = Attempts::default();
    let result: Result<SignOutput, _> = request::traced("Sign", "k1", |attempts| {
        counted = attempts.clone();
        kms.sign()
            .key_id("k1")
            .customize()
            .interceptor(attempts)
            .send()
    })
    .await;
    assert!(result.is_err());
    assert_eq!(counted.count(), 2);
}

#[tokio::test]
async fn a_key_pending_deletion_is_described_with_its_date() {
    let kms = client(&[
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
    let kms = client(&[("GetPublicKey", 400, PENDING_DELETION)]);
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

#[tokio::test]
async fn a_signer_bounds_its_calls_in_time_where_the_client_does_not() {
    let answer = public_key_answer();
    let signer = KmsSigner::new(client(&[("GetPublicKey", 200, &answer)]), "k1")
        .await
        .unwrap();
    assert_eq!(signer.key_arn(), "arn:aws:kms:us-east-1:1:key/k1");
    let timeouts = signer.inner.client.config().timeout_config().cloned();
    let timeouts = timeouts.expect("the signer's client has no time bounds");
    assert_eq!(
        timeouts.connect_timeout(),
        Some(KmsSigner::DEFAULT_CONNECT_TIMEOUT)
    );
    assert_eq!(
        timeouts.operation_attempt_timeout(),
        Some(KmsSigner::DEFAULT_ATTEMPT_TIMEOUT)
    );

    // A bound the caller's client sets is the caller's choice, and kept.
    let own = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(2))
        .build();
    let kms = Client::from_conf(
        config()
            .http_client(FakeKms(vec![("GetPublicKey", 200, answer.clone())]))
            .timeout_config(own)
            .build(),
    );
    let signer = KmsSigner::new(kms, "k1").await.unwrap();
    let timeouts = signer.inner.client.config().timeout_config().unwrap();
    assert_eq!(
        timeouts.operation_attempt_timeout(),
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        timeouts.connect_timeout(),
        Some(KmsSigner::DEFAULT_CONNECT_TIMEOUT)
    );
}

/// One attempt, bounded by `connect_timeout` and `attempt_timeout`.
fn one_attempt(connect_timeout: Duration, attempt_timeout: Duration) -> CallPolicy {
    CallPolicy {
        retry: RetryConfig::standard().with_max_attempts(1),
        connect_timeout,
        attempt_timeout,
    }
}

/// A signer built against `endpoint` under `policy` with the SDK's own HTTP client: its
/// error, and how long it took to come. A call that is not over within 10 s fails the test
/// rather than hang it.
async fn fails_against(endpoint: &str, policy: CallPolicy) -> (KmsError, Duration) {
    let kms = Client::from_conf(config().endpoint_url(endpoint).build());
    let started = Instant::now();
    let built = tokio::time::timeout(
        Duration::from_secs(10),
        KmsSigner::with_policy(kms, "k1".into(), policy),
    )
    .await
    .expect("the call was still waiting after 10 s: it has no time bound");
    (built.expect_err("a signer was built"), started.elapsed())
}

/// Slack for a timed-out call over its bound (the scheduler, the SDK's bookkeeping): well
/// under the SDK's own 3.1 s connect bound, which ends the call if the signer's is not applied.
const SLACK: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn an_endpoint_that_never_answers_fails_within_the_attempt_timeout() {
    // Accepts every connection and never writes a byte: the read that never comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let bound = Duration::from_millis(300);
    let policy = one_attempt(KmsSigner::DEFAULT_CONNECT_TIMEOUT, bound);
    let (err, took) = fails_against(&endpoint, policy).await;
    silent.abort();
    let KmsErrorKind::GetPublicKey(sdk) = err.kind() else {
        panic!("expected the SDK's error, got {err:?}");
    };
    assert!(matches!(**sdk, SdkError::TimeoutError(_)), "{sdk:?}");
    assert!(
        err.to_string().starts_with("cannot reach the KMS endpoint"),
        "{err}"
    );
    assert!(took >= bound && took < bound + SLACK, "took {took:?}");
}

#[tokio::test]
async fn an_endpoint_that_never_accepts_fails_within_the_connect_timeout() {
    // A listener that never accepts, its queue of one full: the kernel drops every further
    // SYN, so a connection is neither made nor refused, as with a blackholed address.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    let full = loop {
        let probe = tokio::net::TcpStream::connect(address);
        match tokio::time::timeout(Duration::from_millis(200), probe).await {
            Ok(Ok(stream)) if queued.len() < 16 => queued.push(stream),
            Ok(Ok(_)) => break false,
            Ok(Err(err)) => panic!("connecting to {address}: {err}"),
            Err(_) => break true,
        }
    };
    assert!(full, "the listener's queue never filled");
    let bound = Duration::from_millis(300);
    // The attempt bound is long, so that only the connect bound can end the call in time.
    let policy = one_attempt(bound, KmsSigner::DEFAULT_ATTEMPT_TIMEOUT);
    let (err, took) = fails_against(&format!("http://{address}"), policy).await;
    let KmsErrorKind::GetPublicKey(sdk) = err.kind() else {
        panic!("expected the SDK's error, got {err:?}");
    };
    let connector = match &**sdk {
        SdkError::DispatchFailure(failure) => failure.as_connector_error(),
        _ => None,
    };
    assert!(connector.is_some_and(|c| c.is_timeout()), "{sdk:?}");
    assert!(
        err.to_string().starts_with("cannot reach the KMS endpoint"),
        "{err}"
    );
    assert!(took >= bound && took < bound + SLACK, "took {took:?}");
    drop((listener, queued));
}

/// A `Sign` answer with the EIP-155 example key's signature of `digest`, as KMS gives it.
fn sign_answer(digest: &[u8; 32]) -> String {
    use k256::ecdsa::signature::hazmat::PrehashSigner;
    let key = k256::ecdsa::SigningKey::from_slice(&[0x46; 32]).unwrap();
    let signature: k256::ecdsa::Signature = key.sign_prehash(digest).unwrap();
    format!(
        r#"{{"KeyId":"arn:aws:kms:us-east-1:1:key/k1","SigningAlgorithm":"ECDSA_SHA_256","Signature":"{}"}}"#,
        aws_smithy_types::base64::encode(signature.to_der().as_bytes())
    )
}

#[tokio::test]
async fn a_region_that_failed_is_asked_last_until_it_answers_again() {
    let digest = [9u8; 32];
    let key = public_key_answer();
    let signed = sign_answer(&digest);
    let throttled = client(&[("GetPublicKey", 200, &key), ("Sign", 400, THROTTLED)]);
    let answering = client(&[("GetPublicKey", 200, &key), ("Sign", 200, &signed)]);
    let signer = |client| KmsSigner::with_retry_config(client, "mrk-1", two_attempts());
    let multi = MultiRegionSigner::new(vec![
        ("us-east-1".into(), signer(throttled).await.unwrap()),
        ("us-west-2".into(), signer(answering).await.unwrap()),
    ])
    .unwrap();
    assert!(multi.health().iter().all(|h| h.up));
    let (_, region) = multi.sign_digest_in_region(&digest).await.unwrap();
    assert_eq!(region, "us-west-2");
    let health = multi.health();
    assert!(!health[0].up && health[0].failovers == 1, "{health:?}");
    assert!(
        health[0].error.as_deref().unwrap().contains("throttl"),
        "{health:?}"
    );
    assert!(health[1].up && health[1].signatures == 1, "{health:?}");
    // The next signature goes to the Region up first: the throttled one is not asked.
    let (_, request_id) = multi.sign_digest_with_request_id(&digest).await.unwrap();
    assert_eq!(request_id.as_deref(), Some("req-Sign"));
    let health = multi.health();
    assert_eq!(
        (health[0].failovers, health[1].signatures),
        (1, 2),
        "{health:?}"
    );
    // A probe finds the first Region's key answering (its GetPublicKey does): it is asked
    // first again.
    let checked = multi.check(Duration::from_secs(1)).await;
    assert!(checked.iter().all(|h| h.up), "{checked:?}");
    let (_, region) = multi.sign_digest_in_region(&digest).await.unwrap();
    assert_eq!(region, "us-west-2");
    assert_eq!(multi.health()[0].failovers, 2);
}

#[test]
fn a_replica_arn_names_its_region() {
    assert_eq!(
        arn_in_region("arn:aws:kms:us-east-1:000000000000:key/mrk-1", "eu-west-1"),
        "arn:aws:kms:eu-west-1:000000000000:key/mrk-1"
    );
    assert_eq!(arn_in_region("mrk-1", "eu-west-1"), "mrk-1");
    assert_eq!(arn_in_region("alias/a:b", "eu-west-1"), "alias/a:b");
}
