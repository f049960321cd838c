//! A manifest cannot take over a stack it did not make: another team's DESTROY account
//! (deployed on its own, trusting that team's role) named by a manifest's `stack_name` is
//! refused by `fleet apply --yes`; with `adopt = true` the move of its signer role to the
//! fleet's identity is shown in a section of its own and refused without
//! `--allow-trust-change`; only with it does apply change who signs. The trust policy is read
//! back after each step.

use kms_eth_e2e::{deploy_test_account, policy_document, role, sts, trusted_principals};
use serde_json::Value;

use super::helpers::{fleet, names, stdout_json, tempfile_dir, write};

/// The principals the stack's signer role trusts, read back from IAM.
async fn trusted(signer_role_arn: &str) -> Vec<String> {
    let name = signer_role_arn.rsplit('/').next().unwrap();
    let role = role(name).await;
    trusted_principals(&policy_document(
        role.assume_role_policy_document().unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_another_teams_stack_is_refused_unless_adopted_and_the_trust_change_allowed(
) {
    let account = sts()
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .account()
        .unwrap()
        .to_owned();
    let team = format!("arn:aws:iam::{account}:role/other-team");
    // The other team's account: its own deploy, its own signer.
    let (_guard, created) =
        deploy_test_account("other-team", &["--signer-principal", &team, "--yes"]);
    let stack = created["stack_name"].as_str().unwrap().to_owned();
    let signer_role = created["signer_role_arn"].as_str().unwrap().to_owned();
    assert_eq!(trusted(&signer_role).await, std::slice::from_ref(&team));

    let (prefix, _) = names("own");
    let dir = tempfile_dir(&prefix);
    let manifest = |adopt: bool| {
        format!(
            "id = \"{prefix}fleet\"\n\n[[target]]\nname = \"{prefix}t\"\naccount_id = \"{account}\"\n\
             regions = [\"us-east-1\"]\n\n[[target.account]]\nname = \"taken\"\nstack_name = \"{stack}\"\n\
             removal_policy = \"destroy\"\npending_window_days = 7\nadopt = {adopt}\n"
        )
    };
    let path = write(&dir, "fleet.toml", &manifest(false));
    let m = path.to_str().unwrap();

    // Not adopted: refused, the trust untouched.
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(5, ""));
    assert_eq!(plan["stacks"][0]["action"], "refused", "{plan}");
    let reason = plan["stacks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("is not this fleet's") && reason.contains("adopt = true"),
        "{reason}"
    );
    let applied = stdout_json(&fleet(&["apply", "--manifest", m, "--yes", "--json"]).fails(1, ""));
    assert_eq!(applied["stacks"][0]["outcome"], "refused", "{applied}");
    assert_eq!(trusted(&signer_role).await, std::slice::from_ref(&team));
    // Nor may the manifest delete it.
    fleet(&["destroy", "--manifest", m, "--skip-balance-check", "--yes"])
        .fails(1, "is not this fleet's");
    assert!(
        kms_eth_e2e::stack_exists(&stack).await,
        "fleet destroy deleted it"
    );

    // Adopted: the trust change is shown on its own and needs its own flag.
    write(&dir, "fleet.toml", &manifest(true));
    let refused = fleet(&["apply", "--manifest", m, "--yes"]).usage_error("--allow-trust-change");
    let said = kms_eth_e2e::stderr(&refused);
    assert!(said.contains("changes of who may sign"), "{said}");
    assert!(
        said.contains("SignerPrincipals:") && said.contains(&team),
        "{said}"
    );
    assert_eq!(trusted(&signer_role).await, std::slice::from_ref(&team));

    // With it, the fleet takes the stack over, and tags it as its own.
    let applied: Value = fleet(&[
        "apply",
        "--manifest",
        m,
        "--yes",
        "--allow-trust-change",
        "--json",
    ])
    .json();
    assert_eq!(applied["stacks"][0]["outcome"], "updated", "{applied}");
    // Read from the stack again: LocalStack replaces a role whose trust changes.
    let described = kms_eth_e2e::cloudformation()
        .await
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    let now = described.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("SignerRoleArn"))
        .and_then(|o| o.output_value())
        .unwrap()
        .to_owned();
    assert!(!trusted(&now).await.contains(&team), "the team still signs");
    // The stack now carries the fleet's tag: the manifest owns it without adopt. (No "no
    // change" plan here: LocalStack replaced the role and left the key policy naming the old
    // one, which plan rightly reports as drift.)
    let tags = described.stacks()[0].tags();
    let fleet_id = format!("{prefix}fleet");
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("kms-eth:fleet") && t.value() == Some(fleet_id.as_str())),
        "{tags:?}"
    );
    write(&dir, "fleet.toml", &manifest(false));
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).output());
    assert_ne!(plan["stacks"][0]["action"], "refused", "{plan}");
}
