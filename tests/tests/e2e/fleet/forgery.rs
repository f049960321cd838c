//! A forged stack (another stack's outputs on a placeholder) refused by plan, apply and
//! status, and an alias moved to another key reported as drift.

use serde_json::{json, Value};

use super::helpers::{
    bootstrap_roles, config_in, count, fleet, names, stdout_json, tempfile_dir, write, FleetGuard,
};

/// A stack that only claims to be an account (another stack's outputs copied onto a
/// placeholder) is refused by plan, apply and status, and apply adds no key to it; an alias
/// re-pointed at another key is drift that status reports too.
#[test]
fn a_stack_that_only_claims_to_be_an_account_is_refused_and_a_moved_alias_is_drift() {
    let (prefix, role) = names("forge");
    let account = "444444444444";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bootstrap_roles(&role, &[account]));
    let dir = tempfile_dir(&prefix);
    let target = |accounts: &[&str]| {
        let mut text = format!(
            "[[target]]\nname = \"{prefix}t\"\naccount_id = \"{account}\"\nregions = [\"us-east-1\"]\nassume_role = \"arn:aws:iam::{account}:role/{role}\"\n"
        );
        for name in accounts {
            text.push_str(&format!("\n[[target.account]]\nname = \"{name}\"\nremoval_policy = \"destroy\"\npending_window_days = 7\n"));
        }
        text
    };
    let path = write(&dir, "fleet.toml", &target(&["real"]));
    let m = path.to_str().unwrap();
    let _guard = FleetGuard(path.clone());
    let applied = fleet(&["apply", "--manifest", m, "--yes", "--json"]).json();
    let real = applied["stacks"][0].clone();

    // The forgery: a placeholder stack with the real one's outputs, under the name of a new
    // manifest entry.
    let cloudformation = runtime.block_on(async {
        aws_sdk_cloudformation::Client::new(&config_in(account, "us-east-1").await)
    });
    let outputs = runtime
        .block_on(
            cloudformation
                .describe_stacks()
                .stack_name(real["stack_name"].as_str().unwrap())
                .send(),
        )
        .unwrap()
        .stacks()[0]
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap().to_owned(),
                json!({"Value": o.output_value().unwrap()}),
            )
        })
        .collect::<serde_json::Map<String, Value>>();
    let forged = json!({"Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}, "Outputs": outputs});
    let fake_stack = format!("{prefix}t-fake");
    runtime
        .block_on(
            cloudformation
                .create_stack()
                .stack_name(&fake_stack)
                .template_body(forged.to_string())
                .send(),
        )
        .unwrap();
    for _ in 0..60 {
        let status = runtime
            .block_on(
                cloudformation
                    .describe_stacks()
                    .stack_name(&fake_stack)
                    .send(),
            )
            .unwrap();
        if status.stacks()[0].stack_status().unwrap().as_str() == "CREATE_COMPLETE" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    write(&dir, "fleet.toml", &target(&["real", "fake"]));
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(5, ""));
    let fake = plan["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "fake")
        .unwrap()
        .clone();
    assert_eq!(fake["action"], "refused", "{plan}");
    assert!(
        fake["reason"]
            .as_str()
            .unwrap()
            .contains("not its own Key resource"),
        "{fake}"
    );
    let book = stdout_json(&fleet(&["status", "--manifest", m, "--json"]).fails(1, ""));
    let row = book["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "fake")
        .unwrap()
        .clone();
    assert!(
        row["address"].is_null() && row["error"].is_string(),
        "status vouched for a forged stack: {row}"
    );
    let applied = stdout_json(&fleet(&["apply", "--manifest", m, "--yes", "--json"]).fails(1, ""));
    assert_eq!(
        count(&applied["stacks"], "outcome", "refused"),
        1,
        "{applied}"
    );
    let resources = runtime
        .block_on(
            cloudformation
                .describe_stack_resources()
                .stack_name(&fake_stack)
                .send(),
        )
        .unwrap();
    assert_eq!(
        resources.stack_resources().len(),
        1,
        "apply changed the forged stack"
    );
    runtime
        .block_on(cloudformation.delete_stack().stack_name(&fake_stack).send())
        .unwrap();

    // The real account's alias moved to another key: drift for plan and for status.
    write(&dir, "fleet.toml", &target(&["real"]));
    let kms = runtime
        .block_on(async { aws_sdk_kms::Client::new(&config_in(account, "us-east-1").await) });
    let other = runtime
        .block_on(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccSecgP256K1)
                .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                .send(),
        )
        .unwrap();
    let other_id = other.key_metadata().unwrap().key_id().to_owned();
    runtime
        .block_on(
            kms.update_alias()
                .alias_name(format!("alias/{}", real["stack_name"].as_str().unwrap()))
                .target_key_id(&other_id)
                .send(),
        )
        .unwrap();
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(5, ""));
    assert!(
        plan["stacks"][0]["drift"][0]
            .as_str()
            .unwrap()
            .contains("does not point at the stack's key"),
        "{plan}"
    );
    let book = stdout_json(&fleet(&["status", "--manifest", m, "--json"]).fails(5, ""));
    assert!(
        !book["accounts"][0]["drift"].as_array().unwrap().is_empty(),
        "{book}"
    );
    let _ = runtime.block_on(
        kms.schedule_key_deletion()
            .key_id(other_id)
            .pending_window_in_days(7)
            .send(),
    );
}
