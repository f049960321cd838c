//! Helpers shared by every end-to-end test: the target the tests run against (the harness's
//! LocalStack, or a real AWS account when `cargo xtask test --target aws` asks for it), AWS
//! clients, and test keys that are tagged and retired even when a test fails.
//!
//! Nothing here skips: if LocalStack cannot be started, the test fails with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fault_proxy;
pub mod node_proxy;
pub mod served;
pub mod tcp_gate;

use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, Tag};
use k256::pkcs8::DecodePublicKey;
use kms_eth::target::{Target, LOCALSTACK_REGION};
use kms_eth_harness::localstack;
use kms_eth_harness::{test_env, TEST_TAG};
use kms_eth_provisioner::KEY_LOGICAL_ID;
use sha3::{Digest, Keccak256};

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

/// The arguments of `deploy --json` for a test account: removal policy DESTROY with the
/// shortest window and the run's tag, so that whatever a test leaves behind is retired soon.
pub fn deploy_args(stack: &str) -> Vec<String> {
    [
        "deploy",
        "--stack-name",
        stack,
        "--removal-policy",
        "destroy",
        "--pending-window-days",
        "7",
        "--tag",
        &test_tag(),
        "--json",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Deploys a test account with [`deploy_args`] and `extra` flags; returns the guard that
/// tears it down and the deploy's JSON report. Asserts success.
pub fn deploy_test_account(label: &str, extra: &[&str]) -> (TestStack, serde_json::Value) {
    let mut guard = TestStack::new(stack_name(label));
    let mut args = deploy_args(&guard.name);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let created = json_output(&kms_eth(&as_strs(&args)));
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    (guard, created)
}

/// The flags of a plain EIP-1559 transfer of `value` to `to` on chain `chain_id` (21,000 gas
/// at 2 gwei, tip 1 gwei), for tests that need some transaction to sign or send.
pub fn transfer_flags(chain_id: &str, to: &str, value: &str) -> Vec<String> {
    [
        "--chain-id",
        chain_id,
        "--gas-limit",
        "21000",
        "--max-fee-per-gas",
        "2gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--to",
        to,
        "--value",
        value,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Borrows a list of owned arguments, for [`kms_eth`].
pub fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Parses an IAM policy document. IAM returns them URL-encoded (RFC 3986); LocalStack may
/// return them plain, which decodes to itself.
pub fn policy_document(text: &str) -> serde_json::Value {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if hex.iter().all(u8::is_ascii_hexdigit) => {
                decoded.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&decoded)
        .unwrap_or_else(|err| panic!("policy document {text:?} is not JSON: {err}"))
}

/// The `kms-eth` binary: the one `cargo xtask test` built (it passes the path in), or,
/// under a plain `cargo test`, one built here once (with `build_binary`, which reports its
/// path) so that it is never stale.
pub fn kms_eth_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<std::path::PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os(test_env::KMS_ETH_BIN) {
            return binary.into();
        }
        kms_eth_harness::process::build_binary("kms-eth", "kms-eth")
            .unwrap_or_else(|err| panic!("the tests drive the kms-eth binary: {err:#}"))
    })
}

/// The signing Lambda's binary: the one `cargo xtask test` built, or one built here once
/// under a plain `cargo test`.
pub fn lambda_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<std::path::PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os(test_env::LAMBDA_BIN) {
            return binary.into();
        }
        let function = kms_eth_harness::cargo_lambda::FUNCTION;
        kms_eth_harness::process::build_binary(function, function)
            .unwrap_or_else(|err| panic!("the Lambda tests run its binary: {err:#}"))
    })
}

/// The `cargo xtask` binary, for the harness commands: the one running `cargo xtask test`,
/// or one built here once under a plain `cargo test`.
pub fn xtask_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<std::path::PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os(test_env::XTASK_BIN) {
            return binary.into();
        }
        kms_eth_harness::process::build_binary("xtask", "xtask")
            .unwrap_or_else(|err| panic!("the tests drive the xtask binary: {err:#}"))
    })
}

/// `kms-eth <args>` with the target of this run added for the commands that take one:
/// `kms_eth_command(&["deploy", ...])` is `kms-eth deploy ... <target flags>`.
pub fn kms_eth_command(args: &[&str]) -> TestCommand {
    let command = TestCommand::new(kms_eth_binary()).args(args);
    // `verify` needs no AWS and takes no target.
    if args.first() == Some(&"verify") {
        return command;
    }
    on_target(command)
}

/// `command` (any binary taking the product's target flags) sent to the target of this run.
pub fn on_target(command: TestCommand) -> TestCommand {
    match target() {
        Target::LocalStack { endpoint, region } => {
            command.args(["--endpoint-url", endpoint, "--region", region])
        }
        Target::Aws { .. } => command.args(["--target", "aws"]),
    }
}

/// `kms-eth <args>` sent to the LocalStack behind `proxy`, whatever the run's target, so that
/// the proxy sees (and counts, holds or alters) every AWS call the command makes.
pub fn kms_eth_through(proxy: &fault_proxy::FaultProxy, args: &[&str]) -> TestCommand {
    TestCommand::new(kms_eth_binary()).args(args).args([
        "--endpoint-url",
        proxy.endpoint(),
        "--region",
        LOCALSTACK_REGION,
    ])
}

/// Runs [`kms_eth_command`] to completion, whatever the outcome.
pub fn kms_eth(args: &[&str]) -> std::process::Output {
    kms_eth_command(args).output()
}

/// The id of this test run, used in tags and names.
pub fn run_id() -> String {
    static RUN_ID: OnceLock<String> = OnceLock::new();
    RUN_ID
        .get_or_init(|| std::env::var(test_env::RUN_ID).unwrap_or_else(|_| test_env::new_run_id()))
        .clone()
}

/// A KMS key created for one test. Dropping it schedules its deletion with the minimum
/// 7-day window, so keys are retired even when the test fails or panics.
#[derive(Debug)]
pub struct TestKey {
    /// The key id.
    pub id: String,
    /// The key ARN.
    pub arn: String,
    /// The LocalStack endpoint the key lives in when that is not the run's target (the
    /// fault tests' keys under `--target aws`); `None` for the target.
    localstack: Option<String>,
}

impl TestKey {
    /// Creates a key of `spec` and `usage`, tagged as a test key of this run.
    pub async fn create(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> TestKey {
        Self::create_tagged(kms, spec, usage, &[]).await
    }

    /// Creates an Ethereum key with `tags` besides the test tag of this run.
    pub async fn ethereum_tagged(kms: &aws_sdk_kms::Client, tags: &[(&str, &str)]) -> TestKey {
        Self::create_tagged(kms, KeySpec::EccSecgP256K1, KeyUsageType::SignVerify, tags).await
    }

    async fn create_tagged(
        kms: &aws_sdk_kms::Client,
        spec: KeySpec,
        usage: KeyUsageType,
        tags: &[(&str, &str)],
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
            .description(kms_eth_harness::test_names::test_key_description(&run_id()))
            .tags(tag(TEST_TAG, &run_id()));
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
            localstack: None,
        }
    }

    /// Creates an Ethereum key in the LocalStack of [`localstack_endpoint`], whatever the
    /// target, and retires it there.
    pub async fn ethereum_in_localstack() -> TestKey {
        let mut key = Self::ethereum(&localstack_kms().await).await;
        key.localstack = Some(localstack_endpoint());
        key
    }

    /// Creates a secp256k1 signing key: an Ethereum account.
    pub async fn ethereum(kms: &aws_sdk_kms::Client) -> TestKey {
        Self::create(kms, KeySpec::EccSecgP256K1, KeyUsageType::SignVerify).await
    }
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

/// Runs `cleanup` to completion from a `Drop`: drop cannot await, and the test's runtime may
/// be the one calling drop, so a fresh runtime (with its own HTTP client) on its own thread
/// does the calls. Returns whether it succeeded.
pub fn run_detached<F>(cleanup: F) -> bool
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let result = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(cleanup)
    })
    .join();
    matches!(result, Ok(Ok(())))
}

/// Schedules a test key's deletion with the minimum window, unless it is already pending:
/// in the run's target, or in the LocalStack at `localstack`.
async fn retire_key(key_id: &str, localstack: Option<&str>) -> anyhow::Result<()> {
    let kms = match localstack {
        Some(endpoint) => kms_through(endpoint, "kms-eth-tests-retire").await,
        None => kms().await,
    };
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

impl Drop for TestKey {
    fn drop(&mut self) {
        let key_id = self.id.clone();
        let localstack = self.localstack.clone();
        if !run_detached(async move { retire_key(&key_id, localstack.as_deref()).await }) {
            eprintln!(
                "warning: could not schedule deletion of test key {}; `cargo xtask test --cleanup` will",
                self.id
            );
        }
    }
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

/// The IAM role `name`, as IAM describes it.
pub async fn role(name: &str) -> aws_sdk_iam::types::Role {
    iam()
        .await
        .get_role()
        .role_name(name)
        .send()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "GetRole {name} failed: {}",
                aws_sdk_iam::error::DisplayErrorContext(err)
            )
        })
        .role
        .expect("GetRole answered without the role")
}

/// The signer role's trust policy and the key policy of a deployed account, read back from
/// IAM and KMS (LocalStack stores both but enforces neither).
pub async fn account_policies(
    deployed: &serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    let role_name = deployed["signer_role_arn"]
        .as_str()
        .and_then(|arn| arn.rsplit('/').next())
        .expect("a signer role ARN");
    let role = role(role_name).await;
    let trust = policy_document(role.assume_role_policy_document().expect("a trust policy"));
    let key_policy = kms()
        .await
        .get_key_policy()
        .key_id(deployed["key_id"].as_str().expect("a key id"))
        .policy_name("default")
        .send()
        .await
        .unwrap();
    let key_policy = policy_document(key_policy.policy().expect("a key policy"));
    (trust, key_policy)
}

/// The principals a trust policy lets assume the role (`Principal.AWS`, one or a list),
/// sorted.
pub fn trusted_principals(trust: &serde_json::Value) -> Vec<String> {
    let statements = trust["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1, "one trust statement: {trust}");
    assert_eq!(statements[0]["Effect"], "Allow", "{trust}");
    assert_eq!(statements[0]["Action"], "sts:AssumeRole", "{trust}");
    let mut principals: Vec<String> = match &statements[0]["Principal"]["AWS"] {
        serde_json::Value::String(one) => vec![one.clone()],
        serde_json::Value::Array(many) => many
            .iter()
            .map(|p| p.as_str().expect("a principal").to_owned())
            .collect(),
        other => panic!("unexpected principal {other} in {trust}"),
    };
    principals.sort();
    principals
}

/// A stack name unique to this run and test, so that runs never collide.
pub fn stack_name(test: &str) -> String {
    kms_eth_harness::test_names::stack(&run_id(), test)
}

/// The `--tag` that marks what a test deploys, so `cargo xtask test --cleanup` finds it.
pub fn test_tag() -> String {
    format!("{TEST_TAG}={}", run_id())
}

/// A stack deployed by a test. Dropping it deletes the stack if it still exists and
/// schedules the key's deletion, even when the test fails half-way.
#[derive(Debug)]
pub struct TestStack {
    /// The stack name.
    pub name: String,
    /// The key id, once known.
    pub key_id: Option<String>,
}

impl TestStack {
    /// A guard for the stack `name` (deployed or not yet).
    pub fn new(name: String) -> TestStack {
        TestStack { name, key_id: None }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let name = self.name.clone();
        let known_key = self.key_id.take();
        // The key is found from the stack itself when the test failed before it knew it.
        // The stack is deleted and waited for, then the key (retained, restored, or already
        // pending) is retired like any test key.
        let cleaned = run_detached(async move {
            let cloudformation = cloudformation().await;
            let from_stack = stack_key_id(&cloudformation, &name).await;
            if from_stack.is_some() || known_key.is_none() {
                let _ = cloudformation.delete_stack().stack_name(&name).send().await;
                for _ in 0..120 {
                    let gone = match cloudformation
                        .describe_stacks()
                        .stack_name(&name)
                        .send()
                        .await
                    {
                        Ok(r) => r.stacks().iter().all(|s| {
                            s.stack_status()
                                .is_some_and(|st| st.as_str() == "DELETE_COMPLETE")
                        }),
                        Err(_) => true,
                    };
                    if gone {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            if let Some(key_id) = known_key.or(from_stack) {
                retire_key(&key_id, None).await?;
            }
            Ok(())
        });
        if !cleaned {
            eprintln!(
                "warning: could not clean up test stack {}; `cargo xtask test --cleanup` will",
                self.name
            );
        }
    }
}

/// Whether the stack exists (and is not deleted). Only "does not exist" counts as absent:
/// any other error fails the test rather than passing an absence check.
pub async fn stack_exists(name: &str) -> bool {
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    match cloudformation()
        .await
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
    {
        Ok(response) => response.stacks().iter().any(|s| {
            s.stack_status()
                .is_some_and(|st| st.as_str() != "DELETE_COMPLETE")
        }),
        Err(err) if err.message().is_some_and(|m| m.contains("does not exist")) => false,
        Err(err) => panic!(
            "DescribeStacks {name} failed: {}",
            aws_sdk_cloudformation::error::DisplayErrorContext(err)
        ),
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

/// The key of stack `name` (its physical id), if the stack has one.
pub async fn stack_key_id(
    cloudformation: &aws_sdk_cloudformation::Client,
    name: &str,
) -> Option<String> {
    cloudformation
        .describe_stack_resource()
        .stack_name(name)
        .logical_resource_id(KEY_LOGICAL_ID)
        .send()
        .await
        .ok()?
        .stack_resource_detail()?
        .physical_resource_id()
        .map(str::to_owned)
}

/// `destroy --json` of a test stack whose address never held funds, so the balance check
/// is skipped out loud; asserts success.
pub fn destroy_unfunded(stack: &str) -> serde_json::Value {
    kms_eth_command(&["destroy", "--stack-name", stack])
        .args(["--skip-balance-check", "--yes", "--json"])
        .json()
}

/// `key cancel-deletion KEY --enable --json`: the key back in use; asserts success.
pub fn cancel_deletion_and_enable(key_id: &str) -> serde_json::Value {
    kms_eth_command(&["key", "cancel-deletion", key_id, "--enable", "--json"]).json()
}

/// Standard output of a finished command, parsed as JSON; panics with stderr if it failed.
pub fn json_output(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "command failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

pub use kms_eth_harness::testing::{
    assert_exit, assert_usage_error, stderr, PrivateState, TestCommand,
};

/// A fresh KMS account with 100 ether on a fresh anvil node: the key, its address, the node.
pub async fn funded_account() -> (TestKey, String, kms_eth_harness::anvil::Anvil) {
    use kms_eth_harness::anvil::Anvil;
    let key = TestKey::ethereum(&kms().await).await;
    let status = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]));
    let address = status["address"].as_str().unwrap().to_owned();
    let node = Anvil::start(std::time::Duration::from_secs(60)).unwrap();
    kms_eth_harness::jsonrpc::call(
        node.url(),
        "anvil_setBalance",
        serde_json::json!([address, "0x56bc75e2d63100000"]),
    )
    .unwrap();
    (key, address, node)
}

/// The balance of `address` on the node at `url`, in wei.
pub fn balance(url: &str, address: &str) -> kms_eth_signer::U256 {
    let answer = kms_eth_harness::jsonrpc::call(
        url,
        "eth_getBalance",
        serde_json::json!([address, "latest"]),
    )
    .unwrap();
    kms_eth::node::parse_u256(&answer).unwrap()
}

/// The number of transactions `address` has sent, as the node at `url` counts them.
pub fn nonce(url: &str, address: &str) -> u64 {
    let answer = kms_eth_harness::jsonrpc::call(
        url,
        "eth_getTransactionCount",
        serde_json::json!([address, "latest"]),
    )
    .unwrap();
    kms_eth_harness::jsonrpc::quantity(&answer).unwrap()
}

/// Runs `script` with Node.js, where `require("ethers")` finds the pinned ethers of
/// `chain/`, and returns what it printed as JSON; panics with its stderr (and `context`)
/// if it failed.
pub fn run_ethers(script: &str, context: &str) -> serde_json::Value {
    let output = std::process::Command::new("node")
        .args(["-e", script])
        .env(
            "NODE_PATH",
            kms_eth_harness::anvil::package_dir().join("node_modules"),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ethers: {}\n{context}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
