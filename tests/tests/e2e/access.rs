//! Who may sign, end to end: the key policy and the signer role's trust policy read back from
//! KMS and IAM after a deploy, the deploying identity as the default signer, signing for a
//! stack through its role, and the role's effective permissions as IAM reports them.
//! LocalStack stores these policies but does not enforce them, so these tests show what is
//! written, not that AWS would refuse anyone; `cargo xtask test` also runs cfn-lint and
//! cfripper on the rendered templates.

use std::collections::BTreeSet;

use kms_eth::target::Target;
use kms_eth_e2e::{
    account_policies, as_strs, deploy_args, deploy_test_account, iam, json_output, kms_eth,
    kms_eth_binary, policy_document, role, run_detached, run_id, stack_name, sts, target,
    trusted_principals, TestCommand, TestStack,
};
use serde_json::Value;

/// A principal as IAM writes it back: an account id means that account's root.
fn as_iam_writes_it(principal: &str) -> String {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{principal}:root")
    } else {
        principal.to_owned()
    }
}

#[tokio::test]
async fn only_the_signer_role_may_sign_and_only_the_given_principals_may_assume_it() {
    let ops = "arn:aws:iam::000000000000:role/ops/kms-eth-test-signer";
    let other_account = "123456789012";
    let (guard, created) = deploy_test_account(
        "policy",
        &[
            "--signer-principal",
            ops,
            "--signer-principal",
            other_account,
        ],
    );
    let role_arn = created["signer_role_arn"].as_str().unwrap();
    let mut given = vec![ops.to_owned(), other_account.to_owned()];
    given.sort();
    assert_eq!(created["signer_principals"], serde_json::json!(given));

    let (trust, key_policy) = account_policies(&created).await;
    // The role trusts exactly the principals given: not the account, not the deployer.
    let mut expected: Vec<String> = given.iter().map(|p| as_iam_writes_it(p)).collect();
    expected.sort();
    let mut trusted: Vec<String> = trusted_principals(&trust)
        .iter()
        .map(|p| as_iam_writes_it(p))
        .collect();
    trusted.sort();
    assert_eq!(trusted, expected, "{trust}");

    let statements = key_policy["Statement"].as_array().unwrap();
    let find = |sid: &str| {
        statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid} in {key_policy}"))
    };
    // The account still administers the key (real KMS refuses a policy that locks it out).
    let admin = find("AccountAdministersTheKey");
    assert_eq!(admin["Effect"], "Allow");
    assert_eq!(admin["Action"], "kms:*");
    // Everyone but the signer role is denied kms:Sign, whatever their IAM policies allow.
    let deny = find("NobodyElseSigns");
    assert_eq!(deny["Effect"], "Deny", "{deny}");
    assert_eq!(deny["Principal"]["AWS"], "*", "{deny}");
    assert_eq!(deny["Action"], "kms:Sign", "{deny}");
    assert_eq!(deny["Resource"], "*", "{deny}");
    assert_eq!(
        deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"], role_arn,
        "{deny}"
    );
    let denies: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .collect();
    assert_eq!(denies.len(), 1, "{key_policy}");
    // Only the role is allowed to sign, and only digests with ECDSA_SHA_256.
    let sign = find("SignerSignsDigests");
    assert_eq!(sign["Principal"]["AWS"], role_arn, "{sign}");
    assert_eq!(
        sign["Condition"]["StringEquals"]["kms:MessageType"],
        "DIGEST"
    );

    // Signing for the stack goes through the role, and the signature is the account's.
    let signed = kms_eth(&[
        "sign-message",
        "--stack-name",
        &guard.name,
        "--json",
        "-v",
        "who signs",
    ]);
    let message = json_output(&signed);
    let log = String::from_utf8_lossy(&signed.stderr);
    assert!(
        log.contains("operation=\"AssumeRole\"") && log.contains(role_arn),
        "{log}"
    );
    TestCommand::new(kms_eth_binary())
        .args(["verify", "--message", "who signs", "--signature"])
        .args([message["signature"].as_str().unwrap()])
        .args(["--address", created["address"].as_str().unwrap()])
        .success();
}

/// Deletes the IAM role when dropped, even when the test fails.
struct TestRole(String);

impl Drop for TestRole {
    fn drop(&mut self) {
        let name = self.0.clone();
        let deleted = run_detached(async move {
            iam().await.delete_role().role_name(name).send().await?;
            Ok(())
        });
        if !deleted {
            eprintln!("warning: could not delete test role {}", self.0);
        }
    }
}

#[tokio::test]
async fn a_deploy_by_an_assumed_role_trusts_that_role_and_not_the_account() {
    // A deployer role, assumed the way CI or an operator's SSO session would be.
    let role_name = format!("kms-eth-test-{}-deployer", run_id());
    let trust_root = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"sts:AssumeRole"}]}"#;
    let created_role = iam()
        .await
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(trust_root)
        .send()
        .await
        .unwrap();
    let _role = TestRole(role_name.clone());
    let role_arn = created_role.role().unwrap().arn().to_owned();
    let session = sts()
        .await
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("deployer-session")
        .send()
        .await
        .unwrap();
    let credentials = session.credentials().unwrap();

    let mut guard = TestStack::new(stack_name("deployer"));
    let mut command = TestCommand::new(kms_eth_binary())
        .args(as_strs(&deploy_args(&guard.name)))
        .args(["--target", "aws"])
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .env("AWS_SESSION_TOKEN", credentials.session_token())
        .env_remove("AWS_PROFILE");
    if let Target::LocalStack { endpoint, region } = target() {
        command = command.args(["--endpoint-url", endpoint, "--region", region]);
    }
    let output = command.success();
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    guard.key_id = created["key_id"].as_str().map(str::to_owned);

    // The session's role, as IAM names it (no session name, not the account root).
    assert_eq!(created["signer_principals"], serde_json::json!([role_arn]));
    let (trust, _) = account_policies(&created).await;
    assert_eq!(
        trusted_principals(&trust),
        std::slice::from_ref(&role_arn),
        "{trust}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the signer role will trust"),
        "the default is said"
    );
}

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
