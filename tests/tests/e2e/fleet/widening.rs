//! What widens who can sign without touching the stack, found by `fleet plan` and `status` as
//! drift (exit 5), each by name: the signer role given AdministratorAccess and an inline
//! `kms:PutKeyPolicy`, a permissions boundary, and the key policy's deny removed. The key
//! policy and the role's policies are read back before the plan, so the test knows what the
//! attack left.

use serde_json::{json, Value};

use super::helpers::{
    bootstrap_roles, config_in, fleet, names, stdout_json, tempfile_dir, write, FleetGuard,
};

/// The account this module's stacks live in (no other fleet test uses it).
const ACCOUNT: &str = "666666666666";

#[test]
fn permissions_added_to_the_signer_role_and_a_removed_deny_are_drift_by_name() {
    let (prefix, role) = names("widen");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bootstrap_roles(&role, &[ACCOUNT]));
    let dir = tempfile_dir(&prefix);
    let manifest = format!(
        "[[target]]\nname = \"{prefix}t\"\naccount_id = \"{ACCOUNT}\"\nregions = [\"us-east-1\"]\n\
         assume_role = \"arn:aws:iam::{ACCOUNT}:role/{role}\"\n\n[[target.account]]\nname = \"w\"\n\
         removal_policy = \"destroy\"\npending_window_days = 7\n"
    );
    let path = write(&dir, "fleet.toml", &manifest);
    let m = path.to_str().unwrap();
    let _guard = FleetGuard(path.clone());
    let applied = fleet(&["apply", "--manifest", m, "--yes", "--json"]).json();
    let stack_name = applied["stacks"][0]["stack_name"]
        .as_str()
        .unwrap()
        .to_owned();
    // A fresh stack: no drift in its roles or key policy.
    let plan = fleet(&["plan", "--manifest", m, "--json"]).json();
    assert_eq!(plan["stacks"][0]["action"], "no-change", "{plan}");

    let (iam, kms, outputs) = runtime.block_on(async {
        let config = config_in(ACCOUNT, "us-east-1").await;
        let cloudformation = aws_sdk_cloudformation::Client::new(&config);
        let stack = cloudformation
            .describe_stacks()
            .stack_name(&stack_name)
            .send()
            .await
            .unwrap();
        let outputs: std::collections::HashMap<String, String> = stack.stacks()[0]
            .outputs()
            .iter()
            .map(|o| {
                (
                    o.output_key().unwrap().to_owned(),
                    o.output_value().unwrap().to_owned(),
                )
            })
            .collect();
        (
            aws_sdk_iam::Client::new(&config),
            aws_sdk_kms::Client::new(&config),
            outputs,
        )
    });
    let role_name = outputs["SignerRoleArn"]
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let key_id = outputs["KeyId"].clone();
    // The attack, as an administrator of the account would make it.
    let escalate = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "kms:PutKeyPolicy", "Resource": "*"}]});
    runtime.block_on(async {
        iam.attach_role_policy()
            .role_name(&role_name)
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name(&role_name)
            .policy_name("escalate")
            .policy_document(escalate.to_string())
            .send()
            .await
            .unwrap();
        iam.put_role_permissions_boundary()
            .role_name(&role_name)
            .permissions_boundary("arn:aws:iam::aws:policy/PowerUserAccess")
            .send()
            .await
            .unwrap();
        let policy = kms
            .get_key_policy()
            .key_id(&key_id)
            .policy_name("default")
            .send()
            .await
            .unwrap();
        let mut policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        policy["Statement"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["Sid"] != "NobodyElseSigns");
        kms.put_key_policy()
            .key_id(&key_id)
            .policy_name("default")
            .policy(policy.to_string())
            .send()
            .await
            .unwrap();
    });
    // Read back: the attack is in place.
    runtime.block_on(async {
        let attached = iam
            .list_attached_role_policies()
            .role_name(&role_name)
            .send()
            .await
            .unwrap();
        assert_eq!(attached.attached_policies().len(), 1);
        let inline = iam
            .list_role_policies()
            .role_name(&role_name)
            .send()
            .await
            .unwrap();
        assert!(inline.policy_names().iter().any(|n| n == "escalate"));
        let policy = kms
            .get_key_policy()
            .key_id(&key_id)
            .policy_name("default")
            .send()
            .await
            .unwrap();
        assert!(!policy.policy().unwrap().contains("NobodyElseSigns"));
    });

    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(5, ""));
    let row = &plan["stacks"][0];
    assert_eq!(row["action"], "drift", "{plan}");
    let drift: Vec<&str> = row["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for said in [
        "the signer role has the attached policy arn:aws:iam::aws:policy/AdministratorAccess",
        "the signer role has an extra inline policy escalate",
        "the signer role has a permissions boundary arn:aws:iam::aws:policy/PowerUserAccess",
        "the key policy lacks or changed statement NobodyElseSigns",
    ] {
        assert!(
            drift.iter().any(|d| d.starts_with(said)),
            "{said:?} not in {drift:?}"
        );
    }
    let book = stdout_json(&fleet(&["status", "--manifest", m, "--json"]).fails(5, ""));
    let reported = book["accounts"][0]["drift"].to_string();
    assert!(
        reported.contains("AdministratorAccess") && reported.contains("escalate"),
        "{book}"
    );
    // Apply leaves a drifted stack alone (it would not know whose change to undo).
    let applied = stdout_json(&fleet(&["apply", "--manifest", m, "--yes", "--json"]).fails(5, ""));
    assert_eq!(applied["stacks"][0]["outcome"], "drift", "{applied}");
    // Undone, so that the guard's destroy meets the stack as kms-eth made it.
    runtime.block_on(async {
        let _ = iam
            .detach_role_policy()
            .role_name(&role_name)
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send()
            .await;
        let _ = iam
            .delete_role_policy()
            .role_name(&role_name)
            .policy_name("escalate")
            .send()
            .await;
        let _ = iam
            .delete_role_permissions_boundary()
            .role_name(&role_name)
            .send()
            .await;
    });
}
