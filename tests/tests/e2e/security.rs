//! Security properties, end to end: the signer role's effective permissions as IAM reports
//! them, and credentials that never appear in any command's output, JSON or error.
//! (`cargo xtask test` also scans the whole run's output and the harness's logs and state
//! for the tests' private keys and canary credentials afterwards.)

use std::collections::BTreeSet;
use std::process::Output;

use kms_eth::target::LOCALSTACK_REGION;
use kms_eth_e2e::TestCommand;
use kms_eth_e2e::{
    as_strs, deploy_args, iam, json_output, kms_eth, kms_eth_binary, localstack_endpoint,
    policy_document, role, stack_name, transfer_flags, TestStack,
};
use kms_eth_harness::test_env::{CANARY_SECRET_ACCESS_KEY, CANARY_SESSION_TOKEN};
use serde_json::Value;

/// A JSON string or array of strings, as a list.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

/// Every policy that grants the role something, read back from IAM: its inline policies
/// and the default version of each managed policy attached to it.
async fn role_policies(role_name: &str) -> Vec<(String, Value)> {
    let iam = iam().await;
    let mut policies = Vec::new();
    let inline = iam
        .list_role_policies()
        .role_name(role_name)
        .send()
        .await
        .unwrap();
    for name in inline.policy_names() {
        let policy = iam
            .get_role_policy()
            .role_name(role_name)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        policies.push((
            format!("inline {name}"),
            policy_document(policy.policy_document()),
        ));
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(role_name)
        .send()
        .await
        .unwrap();
    for policy in attached.attached_policies() {
        let arn = policy.policy_arn().unwrap();
        let version = iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .unwrap()
            .policy()
            .and_then(|p| p.default_version_id())
            .unwrap()
            .to_owned();
        let document = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .unwrap();
        policies.push((
            format!("managed {arn}"),
            policy_document(document.policy_version().unwrap().document().unwrap()),
        ));
    }
    policies
}

#[tokio::test]
async fn the_signer_role_may_only_get_the_public_key_and_sign_digests_with_its_one_key() {
    let mut guard = TestStack::new(stack_name("role-policy"));
    let created = json_output(&kms_eth(&as_strs(&deploy_args(&guard.name))));
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    let key_arn = created["key_arn"].as_str().unwrap();
    let role_arn = created["signer_role_arn"].as_str().unwrap();
    let role_name = role_arn.rsplit('/').next().unwrap();

    // Nothing can widen what the policies grant: no permissions boundary is needed to read
    // them right, and every grant is in the policies below.
    assert!(role(role_name).await.permissions_boundary().is_none());

    let policies = role_policies(role_name).await;
    assert!(!policies.is_empty(), "the role has no policy at all");
    let mut allowed = BTreeSet::new();
    for (name, document) in &policies {
        for statement in document["Statement"].as_array().unwrap() {
            // The negated forms grant everything except what they name.
            for negated in ["NotAction", "NotResource", "NotPrincipal"] {
                assert!(
                    statement.get(negated).is_none(),
                    "{name}: {negated} in {statement}"
                );
            }
            assert_eq!(statement["Effect"], "Allow", "{name}: {statement}");
            assert_eq!(
                strings(&statement["Resource"]),
                [key_arn],
                "{name}: only on the account's key: {statement}"
            );
            for action in strings(&statement["Action"]) {
                if action == "kms:Sign" {
                    // Signing is limited to 32-byte digests with ECDSA over secp256k1.
                    let condition = &statement["Condition"]["StringEquals"];
                    assert_eq!(condition["kms:MessageType"], "DIGEST", "{statement}");
                    assert_eq!(
                        condition["kms:SigningAlgorithm"], "ECDSA_SHA_256",
                        "{statement}"
                    );
                }
                allowed.insert(action);
            }
        }
    }
    assert_eq!(
        allowed.into_iter().collect::<Vec<_>>(),
        ["kms:GetPublicKey", "kms:Sign"],
        "the role's effective actions: {policies:?}"
    );
}

/// Runs the CLI through the standard AWS credential chain (`--target aws`) against the
/// tests' LocalStack, with canary credentials in the environment.
fn with_canary_credentials(args: &[&str]) -> Output {
    let endpoint = localstack_endpoint();
    canary(TestCommand::new(kms_eth_binary()).args(args))
        .args(["--target", "aws", "--endpoint-url", &endpoint])
        .args(["--region", LOCALSTACK_REGION])
        .env_remove("AWS_PROFILE")
        .output()
}

/// The command with canary credentials in its environment.
fn canary(command: TestCommand) -> TestCommand {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", CANARY_SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", CANARY_SESSION_TOKEN)
}

#[tokio::test]
async fn no_command_prints_credentials_in_its_output_json_or_errors() {
    let mut guard = TestStack::new(stack_name("canary"));
    let deployed = with_canary_credentials(&as_strs(&deploy_args(&guard.name)));
    let created = json_output(&deployed);
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    let stack = guard.name.clone();
    let recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    let mut outputs = vec![("deploy --json", deployed)];
    let local_transfer = transfer_flags("31337", recipient, "0");
    let mainnet_transfer = transfer_flags("1", recipient, "0");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "status --json",
            vec!["status", "--stack-name", &stack, "--json"],
        ),
        (
            "sign --json",
            [
                &["sign", "--stack-name", &stack, "--nonce", "0", "--json"][..],
                &as_strs(&local_transfer),
            ]
            .concat(),
        ),
        (
            "sign-message --json",
            vec!["sign-message", "--stack-name", &stack, "--json", "hello"],
        ),
        ("key list --json", vec!["key", "list", "--json"]),
        // Failures print the SDK's whole error chain: it must not carry credentials either.
        (
            "status of a missing key",
            vec!["status", "--key-id", "alias/kms-eth-no-such-key", "--json"],
        ),
        (
            "sign with a missing stack",
            [
                &[
                    "sign",
                    "--stack-name",
                    "kms-eth-no-such-stack",
                    "--nonce",
                    "0",
                ][..],
                &as_strs(&mainnet_transfer),
            ]
            .concat(),
        ),
    ];
    for (name, args) in runs {
        outputs.push((name, with_canary_credentials(&args)));
    }
    // One call to an endpoint that does not answer: connection errors are printed in full.
    outputs.push((
        "an unreachable endpoint",
        canary(TestCommand::new(kms_eth_binary()))
            .args(["status", "--stack-name", &stack, "--target", "aws"])
            .args([
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--region",
                LOCALSTACK_REGION,
            ])
            .output(),
    ));

    let mut succeeded = 0;
    for (name, output) in &outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!text.is_empty(), "{name} printed nothing");
        for secret in [CANARY_SECRET_ACCESS_KEY, CANARY_SESSION_TOKEN] {
            // The assertion message must not repeat the secret's context into the log.
            assert!(
                !text.contains(secret),
                "{name} printed a credential (output withheld)"
            );
        }
        succeeded += usize::from(output.status.success());
    }
    // The runs really used the canary credentials: the five good commands succeeded and the
    // three bad ones failed.
    assert_eq!(succeeded, 5, "{outputs:?}");
}
