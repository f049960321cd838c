//! A target that cannot be reached fails its own stacks and no other's.

use super::helpers::{
    bootstrap_roles, count, fleet, names, stdout_json, tempfile_dir, write, FleetGuard,
};

/// One target that cannot be reached (its profile does not exist) fails its own stacks and
/// no other's: the reachable target's stacks are created, and apply exits 1 listing both.
#[test]
fn a_target_that_cannot_be_reached_does_not_stop_the_others() {
    let (prefix, role) = names("split");
    let account = "555555555555";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bootstrap_roles(&role, &[account]));
    let dir = tempfile_dir(&prefix);
    let text = format!(
        "[defaults]\nremoval_policy = \"destroy\"\npending_window_days = 7\nregion = \"us-east-1\"\n\n\
         [[target]]\nname = \"{prefix}good\"\naccount_id = \"{account}\"\nassume_role = \"arn:aws:iam::{account}:role/{role}\"\n\
         [[target.account]]\nname = \"a\"\n\n\
         [[target]]\nname = \"{prefix}bad\"\naccount_id = \"666666666666\"\nprofile = \"kms-eth-no-such-profile-{prefix}\"\n\
         [[target.account]]\nname = \"a\"\n"
    );
    let path = write(&dir, "fleet.toml", &text);
    let m = path.to_str().unwrap();
    let _guard = FleetGuard(path.clone());
    let output = fleet(&["apply", "--manifest", m, "--yes", "--json"]).fails(1, "");
    let applied = stdout_json(&output);
    let rows = applied["stacks"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{applied}");
    let good = rows
        .iter()
        .find(|r| r["target"] == format!("{prefix}good"))
        .unwrap();
    let bad = rows
        .iter()
        .find(|r| r["target"] == format!("{prefix}bad"))
        .unwrap();
    assert_eq!(good["outcome"], "created", "{applied}");
    assert!(good["address"].is_string(), "{good}");
    assert_eq!(bad["outcome"], "failed", "{applied}");
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .contains("cannot reach target"),
        "{bad}"
    );
    // The plan says the same: the good stack is there, the bad target is an error (exit 1).
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(1, ""));
    assert_eq!(plan["stacks"][0]["action"], "no-change", "{plan}");
    assert_eq!(plan["stacks"][1]["action"], "error", "{plan}");
    // Tear down only the reachable target's stacks.
    let destroyed = fleet(&[
        "destroy",
        "--manifest",
        m,
        "--only",
        &format!("{prefix}good"),
        "--skip-balance-check",
        "--yes",
        "--json",
    ])
    .json();
    assert_eq!(
        count(&destroyed["stacks"], "outcome", "deleted"),
        1,
        "{destroyed}"
    );
}
