//! IAM roles and policy documents as IAM and KMS return them: what a deployed account lets
//! whom do.

use crate::target::{iam, kms};

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
