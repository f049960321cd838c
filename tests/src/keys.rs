//! KMS keys and aliases made for one test and retired when it ends, even when it fails
//! (`TestKey`, `TestAlias`), their state, and independent checks of what they sign.

use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, Tag};
use k256::pkcs8::DecodePublicKey;
use kms_eth_harness::TEST_TAG;
use sha3::{Digest, Keccak256};

use crate::command::kms_eth_command;
use crate::run::{run_detached, run_id};
use crate::target::{kms, kms_through, localstack_endpoint, localstack_kms, sdk_config_in};

/// A KMS key created for one test. Dropping it schedules its deletion with the minimum
/// 7-day window, so keys are retired even when the test fails or panics.
#[derive(Debug)]
pub struct TestKey {
    /// The key id.
    pub id: String,
    /// The key ARN.
    pub arn: String,
    /// Where the key lives, and so where it is retired.
    home: Home,
}

/// Where a test key lives when the test ends.
#[derive(Debug, Clone)]
enum Home {
    /// The run's target.
    Target,
    /// The LocalStack at this endpoint, whatever the target (the fault tests' keys under
    /// `--target aws`).
    LocalStack(String),
    /// This account of the harness's LocalStack (from [`crate::own_account`]).
    Account(String),
}

impl TestKey {
    /// Creates a key of `spec` and `usage`, tagged as a test key of this run.
    pub async fn create(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> TestKey {
        Self::create_tagged(kms, spec, usage, &[], true).await
    }

    /// Creates an Ethereum key with `tags` besides the test tag of this run.
    pub async fn ethereum_tagged(kms: &aws_sdk_kms::Client, tags: &[(&str, &str)]) -> TestKey {
        Self::create_tagged(
            kms,
            KeySpec::EccSecgP256K1,
            KeyUsageType::SignVerify,
            tags,
            true,
        )
        .await
    }

    /// Creates an Ethereum key in `account` of the harness's LocalStack, with a test key's
    /// description and, if `test_tagged`, the test tag of this run (without it, the key only
    /// looks like a test's: `test --cleanup` must leave it alone); it is retired there.
    pub async fn ethereum_in_account(account: &str, test_tagged: bool) -> TestKey {
        let kms = aws_sdk_kms::Client::new(&sdk_config_in(account).await);
        let (spec, usage) = (KeySpec::EccSecgP256K1, KeyUsageType::SignVerify);
        let mut key = Self::create_tagged(&kms, spec, usage, &[], test_tagged).await;
        key.home = Home::Account(account.to_owned());
        key
    }

    async fn create_tagged(
        kms: &aws_sdk_kms::Client,
        spec: KeySpec,
        usage: KeyUsageType,
        tags: &[(&str, &str)],
        test_tagged: bool,
    ) -> TestKey {
        let tag = |key: &str, value: &str| {
            Tag::builder()
                .tag_key(key)
                .tag_value(value)
                .build()
                .unwrap()
        };
        let mut request = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(usage)
            .description(kms_eth_harness::test_names::test_key_description(&run_id()));
        if test_tagged {
            request = request.tags(tag(TEST_TAG, &run_id()));
        }
        for (key, value) in tags {
            request = request.tags(tag(key, value));
        }
        let response = request.send().await.unwrap_or_else(|err| {
            panic!(
                "CreateKey {spec:?} failed: {}",
                aws_sdk_kms::error::DisplayErrorContext(err)
            )
        });
        let metadata = response.key_metadata().unwrap();
        TestKey {
            id: metadata.key_id().to_owned(),
            arn: metadata.arn().unwrap().to_owned(),
            home: Home::Target,
        }
    }

    /// Takes charge of a key that the product created in the run's target (`key import`),
    /// so that it is retired like the test's own.
    pub fn adopt(id: &str, arn: &str) -> TestKey {
        TestKey {
            id: id.to_owned(),
            arn: arn.to_owned(),
            home: Home::Target,
        }
    }

    /// Creates an Ethereum key in the LocalStack of [`localstack_endpoint`], whatever the
    /// target, and retires it there.
    pub async fn ethereum_in_localstack() -> TestKey {
        let mut key = Self::ethereum(&localstack_kms().await).await;
        key.home = Home::LocalStack(localstack_endpoint());
        key
    }

    /// Creates a secp256k1 signing key: an Ethereum account.
    pub async fn ethereum(kms: &aws_sdk_kms::Client) -> TestKey {
        Self::create(kms, KeySpec::EccSecgP256K1, KeyUsageType::SignVerify).await
    }
}

impl Drop for TestKey {
    fn drop(&mut self) {
        let key_id = self.id.clone();
        let home = self.home.clone();
        let retired = run_detached(async move {
            let kms = match home {
                Home::Target => kms().await,
                Home::LocalStack(endpoint) => kms_through(&endpoint, "kms-eth-tests-retire").await,
                Home::Account(account) => aws_sdk_kms::Client::new(&sdk_config_in(&account).await),
            };
            retire_key(&kms, &key_id).await
        });
        if !retired {
            eprintln!(
                "warning: could not schedule deletion of test key {}; `cargo xtask test --cleanup` will",
                self.id
            );
        }
    }
}

/// Schedules a test key's deletion with the minimum window through `kms`, unless it is
/// already pending.
pub(crate) async fn retire_key(kms: &aws_sdk_kms::Client, key_id: &str) -> anyhow::Result<()> {
    let state = kms
        .describe_key()
        .key_id(key_id)
        .send()
        .await?
        .key_metadata()
        .and_then(|m| m.key_state().cloned());
    if state != Some(KeyState::PendingDeletion) {
        kms.schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(7)
            .send()
            .await?;
    }
    Ok(())
}

/// A KMS alias created for one test in the run's target. Dropping it deletes it, even when
/// the test fails.
#[derive(Debug)]
pub struct TestAlias {
    /// The alias name, `alias/...`.
    pub name: String,
}

impl TestAlias {
    /// Creates `alias/kms-eth-test-<label>-<key id>` for `key`.
    pub async fn create(kms: &aws_sdk_kms::Client, label: &str, key: &TestKey) -> TestAlias {
        let name = format!("alias/kms-eth-test-{label}-{}", key.id);
        kms.create_alias()
            .alias_name(&name)
            .target_key_id(&key.id)
            .send()
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "CreateAlias {name} failed: {}",
                    aws_sdk_kms::error::DisplayErrorContext(err)
                )
            });
        TestAlias { name }
    }
}

impl Drop for TestAlias {
    fn drop(&mut self) {
        let name = self.name.clone();
        let deleted = run_detached(async move {
            kms().await.delete_alias().alias_name(&name).send().await?;
            Ok(())
        });
        if !deleted {
            eprintln!("warning: could not delete test alias {}", self.name);
        }
    }
}

/// The key's state, as KMS reports it.
pub async fn key_state(key_id: &str) -> aws_sdk_kms::types::KeyState {
    kms()
        .await
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_state()
        .unwrap()
        .clone()
}

/// `key cancel-deletion KEY --enable --json`: the key back in use; asserts success.
pub fn cancel_deletion_and_enable(key_id: &str) -> serde_json::Value {
    kms_eth_command(&["key", "cancel-deletion", key_id, "--enable", "--json"]).json()
}

/// One raw KMS `Sign` of `digest` with `key_id` (an id, ARN or alias), as KMS answers it:
/// the DER `(r, s)`, with `s` not normalised.
pub async fn raw_kms_signature(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    digest: &kms_eth_signer::B256,
) -> ([u8; 32], [u8; 32]) {
    let response = kms
        .sign()
        .key_id(key_id)
        .message(aws_sdk_kms::primitives::Blob::new(digest.to_vec()))
        .message_type(aws_sdk_kms::types::MessageType::Digest)
        .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "Sign with {key_id} failed: {}",
                aws_sdk_kms::error::DisplayErrorContext(err)
            )
        });
    kms_eth_signer::parse_der(response.signature().unwrap().as_ref()).unwrap()
}

/// `count` distinct digests, different for every `label`.
pub fn digests(label: &str, count: u32) -> Vec<kms_eth_signer::B256> {
    (0..count)
        .map(|i| kms_eth_signer::keccak256(format!("{label} {i}").as_bytes()))
        .collect()
}

/// The address of a DER SubjectPublicKeyInfo, derived here without the signer crate
/// (k256's own SPKI decoder and a separate Keccak), as an independent check.
pub fn independent_address(spki_der: &[u8]) -> String {
    let key = k256::PublicKey::from_public_key_der(spki_der).expect("a secp256k1 SPKI");
    let point = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    format!("0x{}", hex::encode(&hash[12..]))
}

/// The secp256k1 group order, halved: signatures with `s` above it are high-s.
pub const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];
