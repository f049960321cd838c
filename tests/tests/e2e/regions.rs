//! A multi-Region key replicated by `key replicate` (LocalStack's `ReplicateKey` copies the
//! key material): the replica with the primary's key policy and alias, the same address in
//! both, and with the fault proxy dropping every request signed for the first Region,
//! `sign --failover-region` signs from the second with that address (the signature
//! recovered by `verify`), where a plain `sign` fails; the library's `MultiRegionSigner`
//! fails over between two signatures.

use std::time::Instant;

use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    as_strs, kms_eth, kms_eth_binary, kms_eth_command, kms_eth_through, localstack_endpoint,
    localstack_kms, run_id, transfer_flags, TestAlias, TestCommand, TestKey,
};
use kms_eth_harness::TEST_TAG;
use kms_eth_signer::{KmsSigner, MultiRegionSigner, Signer};

const REPLICA_REGION: &str = "us-west-2";
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// `kms-eth status` of `key_id` in `region` of the harness's LocalStack.
fn address_in(region: &str, key_id: &str) -> String {
    let status = TestCommand::new(kms_eth_binary())
        .args(["status", "--key-id", key_id, "--json"])
        .args(["--endpoint-url", &localstack_endpoint(), "--region", region])
        .json();
    status["address"].as_str().unwrap().to_owned()
}

// The proxy runs on the test's runtime while the commands block this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_signs_with_the_same_address_when_the_first_region_is_refused() {
    let kms = localstack_kms().await;
    let tag = Tag::builder()
        .tag_key(TEST_TAG)
        .tag_value(run_id())
        .build()
        .unwrap();
    let created = kms
        .create_key()
        .key_spec(KeySpec::EccSecgP256K1)
        .key_usage(KeyUsageType::SignVerify)
        .multi_region(true)
        .description(kms_eth_harness::test_names::test_key_description(&run_id()))
        .tags(tag)
        .tags(
            Tag::builder()
                .tag_key(kms_eth_provisioner::ACCOUNT_TAG)
                .tag_value("regions-test")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let metadata = created.key_metadata().unwrap();
    let key = TestKey::adopt(metadata.key_id(), metadata.arn().unwrap());
    let alias = TestAlias::create(&kms, "regions", &key).await;
    kms_eth_command(&["key", "replicate", &key.id, "--to-region", REPLICA_REGION]).success();
    let sdk = kms_eth::target::Target::LocalStack {
        endpoint: localstack_endpoint(),
        region: REPLICA_REGION.into(),
    }
    .sdk_config()
    .await;
    let replica_kms = aws_sdk_kms::Client::new(&sdk);
    // The replica has the primary's key policy, and the alias points at it there.
    let policy = |client: aws_sdk_kms::Client| {
        let id = key.id.clone();
        async move {
            let answer = client
                .get_key_policy()
                .key_id(id)
                .policy_name("default")
                .send()
                .await
                .unwrap();
            serde_json::from_str::<serde_json::Value>(answer.policy().unwrap()).unwrap()
        }
    };
    assert_eq!(policy(replica_kms.clone()).await, policy(kms.clone()).await);
    let by_alias = replica_kms
        .describe_key()
        .key_id(&alias.name)
        .send()
        .await
        .unwrap();
    assert_eq!(by_alias.key_metadata().unwrap().key_id(), key.id);

    let address = address_in("us-east-1", &key.id);
    assert_eq!(address_in(REPLICA_REGION, &key.id), address);

    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    proxy.refuse_region(Some("us-east-1"));
    let mut args = vec!["sign".to_owned(), "--key-id".into(), key.id.clone()];
    args.extend(transfer_flags("1", RECIPIENT, "1"));
    args.extend(["--nonce".into(), "0".into(), "--json".into()]);
    kms_eth_through(&proxy, &as_strs(&args)).fails(1, "");

    args.extend(["--failover-region".into(), REPLICA_REGION.into()]);
    let started = Instant::now();
    let signed = kms_eth_through(&proxy, &as_strs(&args)).json();
    eprintln!(
        "sign with us-east-1 refused and {REPLICA_REGION} answering: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(signed["from"], address.as_str(), "{signed}");
    let raw = signed["raw"].as_str().unwrap();
    let verified = kms_eth_e2e::json_output(&kms_eth(&["verify", raw, "--json"]));
    assert_eq!(verified["from"], address.as_str(), "{verified}");
    // The first Region was down from the start: its public key was never read.
    assert!(
        proxy.counts("GetPublicKey").dropped > 0,
        "{:?}",
        proxy.all_counts()
    );

    // The library's signer over both Regions, the first going down between two signatures.
    proxy.refuse_region(None);
    let client = |region: &str| {
        let target = kms_eth::target::Target::LocalStack {
            endpoint: proxy.endpoint().to_owned(),
            region: region.to_owned(),
        };
        async move { aws_sdk_kms::Client::new(&target.sdk_config().await) }
    };
    let signer = MultiRegionSigner::new(vec![
        (
            "us-east-1".to_owned(),
            KmsSigner::new(client("us-east-1").await, key.id.clone())
                .await
                .unwrap(),
        ),
        (
            REPLICA_REGION.to_owned(),
            KmsSigner::new(client(REPLICA_REGION).await, key.id.clone())
                .await
                .unwrap(),
        ),
    ])
    .unwrap();
    assert_eq!(signer.address().to_string(), address);
    let digest = [7u8; 32];
    let (_, region) = signer.sign_digest_in_region(&digest).await.unwrap();
    assert_eq!(region, "us-east-1");
    proxy.refuse_region(Some("us-east-1"));
    let started = Instant::now();
    let (signature, region) = signer.sign_digest_in_region(&digest).await.unwrap();
    eprintln!(
        "Sign failed over from us-east-1 to {region} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(region, REPLICA_REGION);
    assert!(proxy.counts("Sign").dropped > 0, "{:?}", proxy.all_counts());
    let recovered = kms_eth_signer::recover_signer(&digest, &signature).unwrap();
    assert_eq!(recovered, signer.address());

    replica_kms
        .delete_alias()
        .alias_name(&alias.name)
        .send()
        .await
        .unwrap();
    replica_kms
        .schedule_key_deletion()
        .key_id(&key.id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
}
