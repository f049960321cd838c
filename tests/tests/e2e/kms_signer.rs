//! `KmsSigner` against a real KMS (LocalStack by default): addresses, hundreds of concurrent
//! signatures, high-s normalisation, and refusal of keys that cannot be Ethereum accounts.

use std::process::Command;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kms_eth::target::Target;
use kms_eth_e2e::{
    independent_address, kms, raw_kms_signature, target, TestAlias, TestKey, HALF_ORDER,
};
use kms_eth_harness::anvil;
use kms_eth_signer::{
    keccak256, recover_signer, Eip1559Tx, Error, KeyState, KmsErrorKind, KmsSigner,
    SignedTransaction, Signer, Transaction, U256,
};

#[tokio::test]
async fn address_equals_an_independent_derivation_by_id_arn_and_alias() {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    let spki = kms.get_public_key().key_id(&key.id).send().await.unwrap();
    let expected = independent_address(spki.public_key().unwrap().as_ref());

    let alias = TestAlias::create(&kms, "address", &key).await;
    for name in [&key.id, &key.arn, &alias.name] {
        let signer = KmsSigner::new(kms.clone(), name.as_str()).await.unwrap();
        assert_eq!(
            signer.address().to_string().to_lowercase(),
            expected,
            "via {name}"
        );
        assert_eq!(signer.key_arn(), key.arn);
    }
}

#[tokio::test]
async fn cast_derives_the_same_address_from_the_key() {
    // Foundry's cast has its own AWS KMS signer: an independent implementation. It reads the
    // target from the environment like any AWS tool.
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    let signer = KmsSigner::new(kms.clone(), key.id.as_str()).await.unwrap();
    anvil::install().unwrap();
    let mut cast = Command::new(anvil::binary("cast"));
    cast.args(["wallet", "address", "--aws"])
        .env("AWS_KMS_KEY_ID", &key.id);
    if let Target::LocalStack { endpoint, region } = target() {
        cast.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", region)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
    }
    let output = cast.output().unwrap();
    assert!(
        output.status.success(),
        "cast failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        signer.address().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_signatures_all_recover_to_the_address() {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    let signer = KmsSigner::new(kms, key.id.as_str()).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0u32..256 {
        let signer = signer.clone();
        tasks.spawn(async move {
            let digest = keccak256(i.to_be_bytes());
            let signature = signer.sign_digest(&digest).await.unwrap();
            (digest, signature)
        });
    }
    let mut count = 0;
    while let Some(result) = tasks.join_next().await {
        let (digest, signature) = result.unwrap();
        assert!(signature.is_low_s());
        assert_eq!(
            recover_signer(&digest, &signature).unwrap(),
            signer.address()
        );
        count += 1;
    }
    assert_eq!(count, 256);
}

#[tokio::test]
async fn kms_returns_high_s_and_the_signer_normalises_it() {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    let signer = KmsSigner::new(kms.clone(), key.id.as_str()).await.unwrap();
    // KMS does not normalise s: about half of its raw signatures are high-s. Sixty-four raw
    // signatures are all low-s with probability 2^-64.
    let mut high = 0;
    for i in 0u32..64 {
        let digest = keccak256(i.to_be_bytes());
        let (_, s) = raw_kms_signature(&kms, &key.id, &digest).await;
        if s > HALF_ORDER {
            high += 1;
        }
        let signature = signer.sign_digest(&digest).await.unwrap();
        assert!(signature.s <= HALF_ORDER);
        assert_eq!(
            recover_signer(&digest, &signature).unwrap(),
            signer.address()
        );
    }
    assert!(high > 0, "no high-s among 64 raw KMS signatures");
}

#[tokio::test]
async fn a_signed_transaction_decodes_and_recovers_to_the_kms_address() {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    let signer = KmsSigner::new(kms, key.id.as_str()).await.unwrap();
    let tx = Transaction::Eip1559(Eip1559Tx {
        chain_id: 31337,
        nonce: 0,
        max_priority_fee_per_gas: U256::from(1_000_000_000u64),
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 21_000,
        to: Some(
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse()
                .unwrap(),
        ),
        value: U256::from(10u64).pow(U256::from(16)),
        input: Vec::new(),
        access_list: Vec::new(),
    });
    let signed = signer.sign_transaction(tx).await.unwrap();
    let decoded = SignedTransaction::decode(&signed.raw).unwrap();
    assert_eq!(decoded.recover_signer().unwrap(), signer.address());
}

#[tokio::test]
async fn p256_and_rsa_keys_are_refused_naming_their_key_spec() {
    let kms = kms().await;
    for (spec, name) in [
        (KeySpec::EccNistP256, "ECC_NIST_P256"),
        (KeySpec::Rsa2048, "RSA_2048"),
    ] {
        let key = TestKey::create(&kms, spec, KeyUsageType::SignVerify).await;
        let err = KmsSigner::new(kms.clone(), key.id.as_str())
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), KmsErrorKind::WrongKeySpec { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("key spec {name} is not ECC_SECG_P256K1")),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_key_pending_deletion_is_refused_naming_its_state_and_date() {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    kms.schedule_key_deletion()
        .key_id(&key.id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let err = refusal(&kms, &key.id).await;
    let Error::Kms(kms_err) = &err else {
        panic!("expected a key state error, got {err:?}");
    };
    let KmsErrorKind::KeyState { state, .. } = kms_err.kind() else {
        panic!("expected a key state error, got {err:?}");
    };
    assert_eq!(*state, KeyState::PendingDeletion);
    let message = err.to_string();
    assert!(
        message.contains("its state is PendingDeletion"),
        "{message}"
    );
    assert!(
        message.contains("scheduled for deletion on 20"),
        "{message}"
    );
    assert!(
        message.contains(&format!("cancel-key-deletion --key-id {}", key.id)),
        "{message}"
    );
}

#[tokio::test]
async fn a_key_disabled_after_the_signer_was_built_fails_to_sign_naming_its_state() {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    let signer = KmsSigner::new(kms.clone(), key.id.as_str()).await.unwrap();
    kms.disable_key().key_id(&key.id).send().await.unwrap();
    let err = signer.sign_digest(&keccak256(b"x")).await.unwrap_err();
    let Error::Kms(kms_err) = &err else {
        panic!("expected a key state error, got {err:?}");
    };
    let KmsErrorKind::KeyState { state, .. } = kms_err.kind() else {
        panic!("expected a key state error, got {err:?}");
    };
    assert_eq!(*state, KeyState::Disabled);
    assert!(kms_err.request_id().is_some(), "the KMS request id is kept");

    // A signer built now is refused too.
    let err = refusal(&kms, &key.id).await;
    assert!(err.to_string().contains("its state is Disabled"), "{err}");
}

/// How a key that cannot sign is refused: AWS refuses `GetPublicKey`, so building the
/// signer fails; LocalStack answers it, so the first signature fails. The refusal must come
/// at one of the two.
async fn refusal(kms: &aws_sdk_kms::Client, key_id: &str) -> Error {
    match KmsSigner::new(kms.clone(), key_id).await {
        Err(err) => err.into(),
        Ok(signer) => signer
            .sign_digest(&keccak256(b"refused"))
            .await
            .unwrap_err(),
    }
}

#[tokio::test]
async fn an_unknown_key_is_reported_as_not_found() {
    let kms = kms().await;
    let err = KmsSigner::new(kms, "alias/kms-eth-no-such-key")
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), KmsErrorKind::KeyNotFound), "{err:?}");
    assert!(
        err.to_string()
            .contains("was not found in this account and region"),
        "{err}"
    );
}
