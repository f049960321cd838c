//! The target of this run, resolved once per process: the harness's LocalStack, or a real
//! AWS account when `cargo xtask test --target aws` asks for it; and AWS clients for it and
//! for the LocalStack that fault-injection tests put a proxy in front of.

use std::sync::OnceLock;

use aws_config::SdkConfig;
use kms_eth::target::{Target, LOCALSTACK_REGION};
use kms_eth_harness::localstack;
use kms_eth_harness::test_env;

/// The target of this test run, resolved once per test binary.
pub fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| match std::env::var(test_env::TARGET).as_deref() {
        Ok("aws") => Target::Aws {
            profile: None,
            region: None,
            endpoint: None,
        },
        Ok("localstack") | Err(_) => {
            let endpoint = match std::env::var(test_env::ENDPOINT) {
                Ok(endpoint) => endpoint,
                // Run without `cargo xtask test` (plain `cargo test`): start LocalStack
                // through the harness. It is left running for the next run; stop it with
                // `cargo xtask localstack down`.
                Err(_) => localstack::up(&localstack::Options::default())
                    .unwrap_or_else(|err| panic!("the end-to-end tests need LocalStack, and it could not be started: {err:#}"))
                    .endpoint,
            };
            Target::LocalStack {
                endpoint,
                region: LOCALSTACK_REGION.into(),
            }
        }
        Ok(other) => panic!("{} must be `localstack` or `aws`, not {other:?}", test_env::TARGET),
    })
}

/// The SDK configuration for the target.
pub async fn sdk_config() -> SdkConfig {
    target().sdk_config().await
}

/// A KMS client for the target.
pub async fn kms() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config().await)
}

/// The LocalStack endpoint that fault-injection tests put their proxy in front of. The
/// proxy speaks plain HTTP and cannot stand between a client and real AWS (TLS, and request
/// signatures that cover the host), so under `--target aws` these tests still run, against
/// the harness's LocalStack, which is started if needed.
pub fn localstack_endpoint() -> String {
    match target() {
        Target::LocalStack { endpoint, .. } => endpoint.clone(),
        Target::Aws { .. } => {
            localstack::up(&localstack::Options::default())
                .unwrap_or_else(|err| {
                    panic!(
                    "fault-injection tests need LocalStack, and it could not be started: {err:#}"
                )
                })
                .endpoint
        }
    }
}

/// A KMS client for the LocalStack at `upstream`, sent through `endpoint` (a fault proxy in
/// front of it). Each client gets its own SDK retry quota (retry partition `partition`), so
/// one test draining it cannot starve the others in the same test binary.
pub async fn kms_through(endpoint: &str, partition: &str) -> aws_sdk_kms::Client {
    let sdk = Target::LocalStack {
        endpoint: endpoint.to_owned(),
        region: LOCALSTACK_REGION.into(),
    }
    .sdk_config()
    .await;
    let config = aws_sdk_kms::config::Builder::from(&sdk)
        .retry_partition(aws_sdk_kms::config::retry::RetryPartition::new(
            partition.to_owned(),
        ))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// A KMS client for the LocalStack at [`localstack_endpoint`], without faults.
pub async fn localstack_kms() -> aws_sdk_kms::Client {
    kms_through(&localstack_endpoint(), "kms-eth-tests-direct").await
}

/// An AWS account of the harness's LocalStack that belongs to this run and `label` alone
/// (LocalStack takes a 12-digit access key id as the account), whatever the run's target: what
/// a test does there (a cleanup that removes every leftover it finds, a first upload that makes
/// the asset bucket) meets nothing of the tests running beside it, in this run or another.
pub fn own_account(label: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (crate::run::run_id(), label).hash(&mut hasher);
    format!("9{:011}", hasher.finish() % 100_000_000_000)
}

/// The SDK configuration acting in `account` of the harness's LocalStack (an account from
/// [`own_account`]), in LocalStack's default Region.
pub async fn sdk_config_in(account: &str) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(localstack_endpoint())
        .region(aws_config::Region::new(LOCALSTACK_REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            account,
            "test",
            None,
            None,
            "kms-eth-tests-own-account",
        ))
        .load()
        .await
}

/// A CloudFormation client for the target.
pub async fn cloudformation() -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&sdk_config().await)
}

/// An IAM client for the target.
pub async fn iam() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config().await)
}

/// An STS client for the target.
pub async fn sts() -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config().await)
}
