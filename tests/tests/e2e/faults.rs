//! `KmsSigner` on its worst day, against real LocalStack: throttling, dropped and stalled
//! connections and tampered answers injected by a loopback proxy, keys disabled or scheduled
//! for deletion while a batch is in flight, and an alias pointed at another key under a
//! running signer.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    digests, json_output, kms, kms_eth, kms_through, localstack_endpoint, localstack_kms,
    raw_kms_signature, stderr, TestAlias, TestKey,
};
use kms_eth_signer::{
    finalize, recover_signer, Error, KeyState, KmsErrorKind, KmsSigner, Signature, SignatureError,
    B256,
};

/// A proxy in front of LocalStack and a signer for a fresh key whose every call goes
/// through it. The signer keeps the SDK's retry quota per key, so the quota one test drains
/// is never another's; `partition` names the quota of the client underneath.
async fn signer_behind_proxy(partition: &str) -> (FaultProxy, TestKey, KmsSigner) {
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let key = TestKey::ethereum_in_localstack().await;
    let client = kms_through(proxy.endpoint(), partition).await;
    let signer = KmsSigner::new(client, key.id.as_str()).await.unwrap();
    (proxy, key, signer)
}

/// Asserts that every signature was made, recovers to the signer, and is unlike the others.
fn assert_all_verify(signer: &KmsSigner, digests: &[B256], results: Vec<Result<Signature, Error>>) {
    let mut seen = HashSet::new();
    assert_eq!(results.len(), digests.len());
    for (i, (digest, result)) in digests.iter().zip(results).enumerate() {
        let signature = result.unwrap_or_else(|err| panic!("signature {i} failed: {err}"));
        assert!(signature.is_low_s());
        assert_eq!(
            recover_signer(digest, &signature).unwrap(),
            signer.address()
        );
        assert!(seen.insert(signature.to_rsv_bytes()), "duplicate signature");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_percent_throttling_500_signatures_at_concurrency_32_all_succeed_and_verify() {
    let (proxy, _key, signer) = signer_behind_proxy("faults-throttle-30").await;
    proxy.set_faults(0.30, 0.0);
    let digests = digests("throttled", 500);

    let started = Instant::now();
    let results = tokio::time::timeout(Duration::from_secs(300), signer.sign_digests(&digests, 32))
        .await
        .expect("500 signatures under 30 % throttling did not finish in 5 minutes");
    let elapsed = started.elapsed();

    assert_all_verify(&signer, &digests, results);
    let sign = proxy.counts("Sign");
    println!("30% throttling: 500 signatures in {elapsed:.1?}; Sign calls {sign:?}");
    assert_eq!(
        sign.forwarded, 500,
        "each signature reached KMS exactly once"
    );
    // About 3 in 7 calls are throttled; far fewer would mean the faults were not injected.
    assert!(sign.throttled >= 120, "too few throttled calls: {sign:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_connections_are_retried_and_every_signature_verifies() {
    let (proxy, _key, signer) = signer_behind_proxy("faults-drop-20").await;
    proxy.set_faults(0.0, 0.20);
    let digests = digests("dropped", 200);
    let results = tokio::time::timeout(Duration::from_secs(300), signer.sign_digests(&digests, 16))
        .await
        .expect("200 signatures with 20 % dropped connections did not finish in 5 minutes");
    assert_all_verify(&signer, &digests, results);
    let sign = proxy.counts("Sign");
    println!("20% dropped connections: Sign calls {sign:?}");
    assert_eq!(sign.forwarded, 200);
    assert!(sign.dropped >= 20, "too few dropped calls: {sign:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_throttling_gives_up_after_bounded_retries_with_a_clear_error() {
    let (proxy, key, signer) = signer_behind_proxy("faults-throttle-100").await;
    proxy.set_faults(1.0, 0.0);

    // One signature: every attempt is refused, so the retry policy's attempts are all made
    // and then the signer says what happened, in seconds rather than never.
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        signer.sign_digest(&digests("refused", 1)[0]),
    )
    .await
    .expect("a fully throttled signature did not give up within a minute")
    .unwrap_err();
    let one = started.elapsed();
    let Error::Kms(kms_err) = &err else {
        panic!("expected a throttling error, got {err:?}");
    };
    let KmsErrorKind::Throttled {
        operation,
        max_attempts,
    } = kms_err.kind()
    else {
        panic!("expected a throttling error, got {err:?}");
    };
    assert_eq!(*operation, "Sign");
    assert_eq!(*max_attempts, KmsSigner::DEFAULT_MAX_ATTEMPTS);
    let message = err.to_string();
    assert!(message.contains(&key.id), "{message}");
    assert!(message.contains("KMS request quota"), "{message}");
    // Exactly the signer's own policy: the client it was given allows only 5 attempts, and
    // the key's fresh retry quota has room for all nine retries.
    let attempts = proxy.counts("Sign").attempts();
    assert_eq!(attempts, u64::from(KmsSigner::DEFAULT_MAX_ATTEMPTS));

    // A batch under the same refusal: every signature fails with the same clear error, and
    // the batch finishes (the SDK's retry quota runs dry and retries stop early).
    let started = Instant::now();
    let results = tokio::time::timeout(
        Duration::from_secs(120),
        signer.sign_digests(&digests("refused batch", 64), 16),
    )
    .await
    .expect("a fully throttled batch did not finish within two minutes");
    let batch = started.elapsed();
    for result in &results {
        assert!(
            matches!(result, Err(Error::Kms(err)) if matches!(err.kind(), KmsErrorKind::Throttled { .. })),
            "{result:?}"
        );
    }
    println!(
        "100% throttling: one signature gave up after {attempts} attempts in {one:.1?}; \
         a batch of 64 failed in {batch:.1?}; Sign calls {:?}",
        proxy.counts("Sign")
    );

    // Building a signer is bounded the same way.
    let client = kms_through(proxy.endpoint(), "faults-throttle-100-new").await;
    let err = KmsSigner::new(client, key.id.as_str()).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            KmsErrorKind::Throttled {
                operation: "GetPublicKey",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Signs a batch of `count` through a proxy without faults, runs `interrupt` once `after`
/// signatures have reached KMS, and returns the batch's results.
async fn batch_interrupted_by<F, Fut>(
    partition: &str,
    count: u32,
    after: u64,
    interrupt: F,
) -> (KmsSigner, Vec<B256>, Vec<Result<Signature, Error>>)
where
    F: FnOnce(aws_sdk_kms::Client, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (proxy, key, signer) = signer_behind_proxy(partition).await;
    let digests = digests(partition, count);
    let batch = {
        let signer = signer.clone();
        let digests = digests.clone();
        tokio::spawn(async move { signer.sign_digests(&digests, 16).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.counts("Sign").forwarded < after {
        assert!(Instant::now() < deadline, "the batch did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    interrupt(localstack_kms().await, key.id.clone()).await;
    let results = tokio::time::timeout(Duration::from_secs(120), batch)
        .await
        .expect("the batch hung after the key changed state")
        .unwrap();
    (signer, digests, results)
}

/// Checks an interrupted batch: signatures made before the change verify, every failure
/// names the key's new state, and both kinds occur.
fn assert_batch_reports(
    signer: &KmsSigner,
    digests: &[B256],
    results: &[Result<Signature, Error>],
    state: KeyState,
) -> (usize, usize) {
    let (mut signed, mut failed) = (0, 0);
    for (digest, result) in digests.iter().zip(results) {
        match result {
            Ok(signature) => {
                assert_eq!(recover_signer(digest, signature).unwrap(), signer.address());
                signed += 1;
            }
            Err(Error::Kms(err)) if matches!(err.kind(), KmsErrorKind::KeyState { state: got, .. } if *got == state) =>
            {
                failed += 1;
            }
            Err(other) => panic!("expected success or state {state:?}, got {other}"),
        }
    }
    assert!(signed >= 40, "only {signed} signed before the change");
    assert!(failed > 0, "nothing failed after the key became {state:?}");
    (signed, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_disabled_while_a_batch_is_in_flight_fails_the_rest_naming_the_state() {
    let (signer, digests, results) =
        batch_interrupted_by("faults-disable", 400, 40, |kms, key_id| async move {
            kms.disable_key().key_id(key_id).send().await.unwrap();
        })
        .await;
    let (signed, failed) = assert_batch_reports(&signer, &digests, &results, KeyState::Disabled);
    let message = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .unwrap()
        .to_string();
    assert!(message.contains("enable-key"), "{message}");
    println!("disabled mid-batch: {signed} signed, {failed} refused: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_scheduled_for_deletion_while_a_batch_is_in_flight_fails_the_rest_with_the_date() {
    let (signer, digests, results) =
        batch_interrupted_by("faults-delete", 400, 40, |kms, key_id| async move {
            kms.schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(7)
                .send()
                .await
                .unwrap();
        })
        .await;
    let (signed, failed) =
        assert_batch_reports(&signer, &digests, &results, KeyState::PendingDeletion);
    let message = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .unwrap()
        .to_string();
    assert!(
        message.contains("scheduled for deletion on 20"),
        "{message}"
    );
    assert!(message.contains("cancel-key-deletion"), "{message}");
    println!("scheduled for deletion mid-batch: {signed} signed, {failed} refused: {message}");
}

#[tokio::test]
async fn an_alias_pointed_at_another_key_never_yields_a_signature_for_the_wrong_account() {
    // No faults here: this runs against the target (LocalStack or AWS), like the CLI does.
    let kms = kms().await;
    let first = TestKey::ethereum(&kms).await;
    let second = TestKey::ethereum(&kms).await;
    let alias = TestAlias::create(&kms, "retarget", &first).await;
    let alias = alias.name.as_str();
    let signer = KmsSigner::new(kms.clone(), alias).await.unwrap();
    let account = signer.address();

    kms.update_alias()
        .alias_name(alias)
        .target_key_id(&second.id)
        .send()
        .await
        .unwrap();

    // The running signer pinned the key's ARN: it keeps signing for its own account.
    let digest = digests("retarget", 1)[0];
    let signature = signer.sign_digest(&digest).await.unwrap();
    assert_eq!(recover_signer(&digest, &signature).unwrap(), account);
    assert_eq!(signer.key_arn(), first.arn);

    // A signature from the key the alias now names does not recover to the account, and the
    // signer's final check refuses it rather than hand it out.
    let (r, s) = raw_kms_signature(&kms, alias, &digest).await;
    let refused = finalize(&digest, &r, &s, signer.public_key());
    assert_eq!(refused, Err(SignatureError::NoRecoveryId));

    // A signer built from the alias for the account it is expected to be is refused.
    let err = KmsSigner::new(kms.clone(), alias)
        .await
        .unwrap()
        .expect_address(account)
        .unwrap_err();
    let KmsErrorKind::AddressMismatch {
        expected, actual, ..
    } = err.kind()
    else {
        panic!("expected an address mismatch, got {err:?}");
    };
    assert_eq!(*expected, account);
    assert_ne!(*actual, account);
    let message = err.to_string();
    assert!(message.contains(&second.arn), "{message}");
    assert!(message.contains("points at another key"), "{message}");

    // The command line does the same with --expect-address, and exits 1 without signing.
    let expected = account.to_string();
    let refused = kms_eth(&[
        "sign-message",
        "--key-id",
        alias,
        "--expect-address",
        &expected,
        "--json",
        "hello",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(refused.stdout.is_empty(), "nothing is signed");
    assert!(
        stderr(&refused).contains(&format!("not the expected {expected}")),
        "{}",
        stderr(&refused)
    );
    let by_id = json_output(&kms_eth(&[
        "sign-message",
        "--key-id",
        &first.id,
        "--expect-address",
        &expected,
        "--json",
        "hello",
    ]));
    assert_eq!(by_id["address"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_kms_signature_is_refused_as_bad_and_never_handed_out() {
    let (proxy, key, signer) = signer_behind_proxy("faults-tamper").await;
    proxy.tamper_signatures(true);
    let digests = digests("tampered", 8);
    let err = signer.sign_digest(&digests[0]).await.unwrap_err();
    let Error::Kms(kms_err) = &err else {
        panic!("expected a KMS error, got {err:?}");
    };
    // The answer was well-formed DER with valid scalars: only verification against the
    // signer's own key can catch it.
    assert!(
        matches!(
            kms_err.kind(),
            KmsErrorKind::BadSignature(SignatureError::NoRecoveryId)
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&key.id), "{message}");
    assert!(message.contains("unusable signature"), "{message}");
    // A batch: every signature refused the same way, none handed out.
    for result in signer.sign_digests(&digests, 4).await {
        assert!(
            matches!(&result, Err(Error::Kms(e)) if matches!(e.kind(), KmsErrorKind::BadSignature(SignatureError::NoRecoveryId))),
            "{result:?}"
        );
    }
    let sign = proxy.counts("Sign");
    // Each answer reached the signer (rewritten), and a bad signature is not retried: it
    // is not a transient fault.
    assert_eq!(sign.rewritten, 9, "{sign:?}");
    assert_eq!(sign.forwarded, 9, "{sign:?}");

    // The same signer signs again once the answers are honest: nothing was cached.
    proxy.tamper_signatures(false);
    let signature = signer.sign_digest(&digests[0]).await.unwrap();
    assert_eq!(
        recover_signer(&digests[0], &signature).unwrap(),
        signer.address()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_connection_times_out_is_retried_and_the_batch_finishes_promptly() {
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let key = TestKey::ethereum_in_localstack().await;
    // The caller's own attempt timeout is kept by the signer (its 30 s default applies only
    // when the caller sets none), so a short one keeps this test short.
    let attempt_timeout = Duration::from_secs(2);
    let client = kms_through(proxy.endpoint(), "faults-stall").await;
    let client = aws_sdk_kms::Client::from_conf(
        client
            .config()
            .to_builder()
            .timeout_config(
                aws_sdk_kms::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(attempt_timeout)
                    .build(),
            )
            .build(),
    );
    let signer = KmsSigner::new(client, key.id.as_str()).await.unwrap();
    proxy.stall_next_signs(3);
    let digests = digests("stalled", 60);

    let started = Instant::now();
    let results = tokio::time::timeout(Duration::from_secs(60), signer.sign_digests(&digests, 8))
        .await
        .expect("a batch with three stalled calls did not finish within a minute");
    let elapsed = started.elapsed();

    assert_all_verify(&signer, &digests, results);
    let sign = proxy.counts("Sign");
    println!("3 stalled Sign calls, attempt timeout {attempt_timeout:?}: 60 signatures in {elapsed:.1?}; {sign:?}");
    assert_eq!(sign.stalled, 3, "{sign:?}");
    assert_eq!(
        sign.forwarded, 60,
        "each signature reached KMS exactly once"
    );
    // The stalled calls cost one attempt timeout (they stall side by side), plus backoff:
    // far less than the proxy's 300 s hold, and the other signatures did not wait for them.
    assert!(
        elapsed >= attempt_timeout,
        "nothing waited for a timeout: {elapsed:?}"
    );
    assert!(
        elapsed < attempt_timeout * 5,
        "the batch waited on the stalled calls far beyond one timeout: {elapsed:?}"
    );
}
