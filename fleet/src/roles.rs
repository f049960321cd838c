//! Drift in a stack's IAM roles (the signer role, and the signing function's role): whoever can
//! add a permission to a role that may sign, or change who may take it, changes who signs. A
//! role must have exactly the template's trust policy and one inline policy, the template's,
//! no attached (managed) policies and no permissions boundary. Network calls (IAM), compared
//! with `drift.rs`'s rendered documents.

use kms_eth_provisioner::{call, On, ProvisionError};
use serde_json::Value;

use crate::drift::{percent_decode, policy_drift};

/// What a role of the stack must be.
#[derive(Debug)]
pub struct ExpectedRole<'a> {
    /// How reports name it: `signer role`, `function role`.
    pub label: &'a str,
    /// Its ARN (the stack's output).
    pub arn: &'a str,
    /// The trust policy the template renders.
    pub trust: Value,
    /// The inline policy's name and document.
    pub inline_name: &'a str,
    pub inline: Value,
}

/// Every way the role differs from `expected`, in words.
pub async fn role_drift(
    iam: &aws_sdk_iam::Client,
    stack_name: &str,
    expected: &ExpectedRole<'_>,
    partition: &str,
) -> Result<Vec<String>, ProvisionError> {
    let label = expected.label;
    let name = expected.arn.rsplit('/').next().unwrap_or_default();
    let on = On::Stack(stack_name);
    let role = call("GetRole", on, iam.get_role().role_name(name).send()).await?;
    let role = role.role();
    let mut found = Vec::new();
    let trust = role
        .and_then(|r| r.assume_role_policy_document())
        .map(percent_decode)
        .unwrap_or_default();
    found.extend(policy_drift(
        &format!("{label}'s trust policy"),
        &trust,
        &expected.trust,
        partition,
    ));
    if let Some(boundary) = role
        .and_then(|r| r.permissions_boundary())
        .and_then(|b| b.permissions_boundary_arn())
    {
        found.push(format!(
            "the {label} has a permissions boundary {boundary} (the template sets none)"
        ));
    }
    let inline = call(
        "ListRolePolicies",
        on,
        iam.list_role_policies().role_name(name).send(),
    )
    .await?;
    let mut has_own = false;
    for policy in inline.policy_names() {
        if policy == expected.inline_name {
            has_own = true;
        } else {
            found.push(format!(
                "the {label} has an extra inline policy {policy} (the template's is {} alone)",
                expected.inline_name
            ));
        }
    }
    if has_own {
        let document = call(
            "GetRolePolicy",
            on,
            iam.get_role_policy()
                .role_name(name)
                .policy_name(expected.inline_name)
                .send(),
        )
        .await?;
        found.extend(policy_drift(
            &format!("{label}'s inline policy {}", expected.inline_name),
            &percent_decode(document.policy_document()),
            &expected.inline,
            partition,
        ));
    } else {
        found.push(format!(
            "the {label} lacks its inline policy {}",
            expected.inline_name
        ));
    }
    let attached = call(
        "ListAttachedRolePolicies",
        on,
        iam.list_attached_role_policies().role_name(name).send(),
    )
    .await?;
    for policy in attached.attached_policies() {
        found.push(format!(
            "the {label} has the attached policy {} (the template attaches none)",
            policy
                .policy_arn()
                .or(policy.policy_name())
                .unwrap_or("without a name")
        ));
    }
    Ok(found)
}
