//! The twelve-stack fleet's life: planned, applied and killed after its first stack, re-run
//! to one key per stack, re-applied as a no-op, a changed tag and window planned and applied
//! to exactly their stacks, a disabled key as drift, the address book checked against
//! `status`, and destroy refused without a balance check, then reporting every key's fate.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use kms_eth_e2e::{kms_eth_binary, localstack_endpoint, TestCommand};
use serde_json::Value;
use tokio::runtime::Runtime;

use super::helpers::{
    bootstrap_roles, config_in, count, fleet, fleet_keys, manifest, names, planned_updates,
    stdout_json, tempfile_dir, write, FleetGuard, MEMBERS,
};

#[test]
fn a_fleet_of_twelve_stacks_across_three_accounts_converges_drifts_and_is_destroyed() {
    let (prefix, role) = names("fleet");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bootstrap_roles(&role, &MEMBERS));
    let dir = tempfile_dir(&prefix);
    let path = write(&dir, "fleet.toml", &manifest(&prefix, &role, "treasury", 7));
    let m = path.to_str().unwrap();
    let _guard = FleetGuard(path.clone());

    plan_twelve_then_apply_killed_after_the_first_stack(&runtime, m, &prefix);
    a_rerun_converges_with_one_key_per_stack(&runtime, m, &prefix);
    a_reapply_changes_nothing(m);
    a_changed_tag_and_window_touch_only_their_stacks(&dir, m, &prefix, &role);
    a_key_disabled_out_of_band_is_drift_that_apply_leaves_alone(&runtime, m);
    the_address_book_matches_status_in_each_keys_account(m);
    destroy_is_refused_without_a_balance_check_then_reports_each_fate(&runtime, m, &prefix);
}

/// A first plan of 12 creations, then an apply killed once its first stack is made.
fn plan_twelve_then_apply_killed_after_the_first_stack(runtime: &Runtime, m: &str, prefix: &str) {
    // A first plan: 12 stacks to create, exit 4 (changes pending).
    let output = fleet(&["plan", "--manifest", m, "--json"]).fails(4, "");
    let plan = stdout_json(&output);
    assert_eq!(plan["stacks"].as_array().unwrap().len(), 12, "{plan}");
    assert_eq!(count(&plan["stacks"], "action", "create"), 12, "{plan}");

    // Apply, killed as soon as the first stack is created; the others are half-way.
    let mut child = fleet(&["apply", "--manifest", m, "--yes", "--parallel", "1"])
        .into_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let created = line.ends_with(": created");
        seen.push(line);
        if created {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen.iter().any(|l| l.ends_with(": created")),
        "{}",
        seen.join("\n")
    );
    let before = runtime.block_on(fleet_keys(prefix));
    assert!(
        before.len() < 12,
        "the kill came after every stack was made: {before:?}"
    );
}

/// The apply run again converges: one key per stack, each the stack's own.
fn a_rerun_converges_with_one_key_per_stack(runtime: &Runtime, m: &str, prefix: &str) {
    // Run again: it converges, with exactly one key per stack, each the stack's own.
    let applied = fleet(&["apply", "--manifest", m, "--yes", "--json"]).json();
    let stacks = &applied["stacks"];
    assert_eq!(stacks.as_array().unwrap().len(), 12, "{applied}");
    for row in stacks.as_array().unwrap() {
        assert!(
            matches!(row["outcome"].as_str(), Some("created" | "unchanged")),
            "{row}"
        );
    }
    let keys = runtime.block_on(fleet_keys(prefix));
    assert_eq!(keys.len(), 12, "one key per stack: {keys:?}");
    for row in stacks.as_array().unwrap() {
        let stack = row["stack_name"].as_str().unwrap();
        let mine: Vec<_> = keys
            .iter()
            .filter(|(a, r, s, _)| *a == row["account_id"] && *r == row["region"] && s == stack)
            .collect();
        assert_eq!(mine.len(), 1, "{row}: {keys:?}");
        assert_eq!(row["key_id"], mine[0].3.as_str(), "{row}");
    }
}

/// A re-apply is a no-op, and the plan says so.
fn a_reapply_changes_nothing(m: &str) {
    // A re-apply changes nothing, and the plan says so with exit 0.
    let plan = fleet(&["plan", "--manifest", m, "--json"]).json();
    assert_eq!(count(&plan["stacks"], "action", "no-change"), 12, "{plan}");
    let again = fleet(&["apply", "--manifest", m, "--yes", "--json"]).json();
    assert_eq!(
        count(&again["stacks"], "outcome", "unchanged"),
        12,
        "{again}"
    );
}

/// A changed tag and a changed deletion window planned as exactly their stacks, and the
/// window applied to exactly those.
fn a_changed_tag_and_window_touch_only_their_stacks(dir: &Path, m: &str, prefix: &str, role: &str) {
    // A changed tag is planned as an update of that account entry's stacks (one per
    // region) and nothing else. (LocalStack's CloudFormation ignores tag-only updates, so it
    // is applied below with a changed deletion window instead, an input it does apply.)
    write(dir, "fleet.toml", &manifest(prefix, role, "vault", 7));
    planned_updates(
        m,
        &format!("{prefix}0"),
        "treasury",
        "tags: {kms-eth:fleet=default, team=treasury} -> {kms-eth:fleet=default, team=vault}",
    );
    write(dir, "fleet.toml", &manifest(prefix, role, "treasury", 8));
    planned_updates(
        m,
        &format!("{prefix}0"),
        "hot",
        "PendingWindowInDays: 7 -> 8",
    );
    let applied = fleet(&["apply", "--manifest", m, "--yes", "--json"]).json();
    assert_eq!(
        count(&applied["stacks"], "outcome", "updated"),
        2,
        "{applied}"
    );
    assert_eq!(
        count(&applied["stacks"], "outcome", "unchanged"),
        10,
        "{applied}"
    );
    let plan = fleet(&["plan", "--manifest", m, "--json"]).json();
    assert_eq!(count(&plan["stacks"], "action", "no-change"), 12, "{plan}");
}

/// A key disabled out of band is drift for plan, status and apply; apply leaves it disabled.
fn a_key_disabled_out_of_band_is_drift_that_apply_leaves_alone(runtime: &Runtime, m: &str) {
    // A key disabled out of band is drift: plan exits 5, apply leaves it alone (exit 5).
    let status = fleet(&["status", "--manifest", m, "--json"]).json();
    let victim = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account_id"] == MEMBERS[1] && r["region"] == "eu-west-1" && r["name"] == "hot")
        .unwrap()
        .clone();
    let victim_key = victim["key_arn"].as_str().unwrap().to_owned();
    let member_kms = runtime
        .block_on(async { aws_sdk_kms::Client::new(&config_in(MEMBERS[1], "eu-west-1").await) });
    runtime
        .block_on(member_kms.disable_key().key_id(&victim_key).send())
        .unwrap();
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(5, ""));
    let drifted: Vec<&Value> = plan["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "drift")
        .collect();
    assert_eq!(drifted.len(), 1, "{plan}");
    assert_eq!(drifted[0]["stack_name"], victim["stack_name"]);
    assert!(
        drifted[0]["drift"][0]
            .as_str()
            .unwrap()
            .contains("Disabled"),
        "{plan}"
    );
    let book = stdout_json(&fleet(&["status", "--manifest", m, "--json"]).fails(5, ""));
    let flagged: Vec<&Value> = book["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["drift"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(flagged.len(), 1, "status shows the drift too: {book}");
    let applied = stdout_json(&fleet(&["apply", "--manifest", m, "--yes", "--json"]).fails(5, ""));
    assert_eq!(
        count(&applied["stacks"], "outcome", "drift"),
        1,
        "{applied}"
    );
    let state = runtime
        .block_on(member_kms.describe_key().key_id(&victim_key).send())
        .unwrap();
    assert_eq!(
        state.key_metadata().unwrap().key_state().unwrap().as_str(),
        "Disabled",
        "apply enabled it"
    );
    runtime
        .block_on(member_kms.enable_key().key_id(&victim_key).send())
        .unwrap();
}

/// The address book, as JSON and CSV, against `status` run in each key's own account.
fn the_address_book_matches_status_in_each_keys_account(m: &str) {
    // The address book: 12 addresses, each the one `status` derives for that key, acting in
    // the key's own account.
    let book = fleet(&["status", "--manifest", m, "--json"]).json();
    let rows = book["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), 12, "{book}");
    for row in rows {
        let key = row["key_arn"].as_str().unwrap();
        let status = TestCommand::new(kms_eth_binary())
            .args(["--target", "aws", "--endpoint-url", &localstack_endpoint()])
            .args([
                "--region",
                row["region"].as_str().unwrap(),
                "status",
                "--key-id",
                key,
                "--json",
            ])
            .env("AWS_ACCESS_KEY_ID", row["account_id"].as_str().unwrap())
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .json();
        assert_eq!(status["address"], row["address"], "{row}");
        assert_eq!(row["key_state"], "Enabled", "{row}");
    }
    let csv = String::from_utf8(
        fleet(&["status", "--manifest", m, "--csv"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(csv.lines().count(), 13, "{csv}");
    assert!(
        csv.starts_with("target,account_id,region,name,stack_name,alias,key_arn,key_state,address"),
        "{csv}"
    );
}

/// Destroy refused without a balance check, then every key's fate; the retained keys retired.
fn destroy_is_refused_without_a_balance_check_then_reports_each_fate(
    runtime: &Runtime,
    m: &str,
    prefix: &str,
) {
    // Destroy: without a balance check it is refused and nothing is deleted; then every
    // key's fate is reported as KMS sees it.
    fleet(&["destroy", "--manifest", m, "--yes"]).usage_error("--skip-balance-check");
    assert_eq!(runtime.block_on(fleet_keys(prefix)).len(), 12);
    let plan = fleet(&["plan", "--manifest", m, "--json"]).json();
    assert_eq!(
        count(&plan["stacks"], "action", "no-change"),
        12,
        "a refused destroy changed something: {plan}"
    );
    fleet(&[
        "destroy",
        "--manifest",
        m,
        "--only",
        "nobody",
        "--skip-balance-check",
        "--yes",
    ])
    .usage_error("no such target");
    let destroyed = fleet(&[
        "destroy",
        "--manifest",
        m,
        "--skip-balance-check",
        "--yes",
        "--json",
    ])
    .json();
    let rows = destroyed["stacks"].as_array().unwrap();
    assert_eq!(
        count(&destroyed["stacks"], "outcome", "deleted"),
        12,
        "{destroyed}"
    );
    for row in rows {
        let expected = if row["name"] == "hot" {
            ("DESTROY", "PendingDeletion")
        } else {
            ("RETAIN", "Enabled")
        };
        assert_eq!(
            (
                row["removal_policy"].as_str().unwrap(),
                row["key_state"].as_str().unwrap()
            ),
            expected,
            "{row}"
        );
    }
    let plan = stdout_json(&fleet(&["plan", "--manifest", m, "--json"]).fails(4, ""));
    assert_eq!(count(&plan["stacks"], "action", "create"), 12, "{plan}");
    // Their keys (retained, or pending deletion) are reported as unmanaged, never touched.
    let unmanaged = plan["unmanaged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["stack_name"].as_str().unwrap().starts_with(prefix))
        .count();
    assert_eq!(unmanaged, 12, "{plan}");
    // The retained keys outlive the test in these accounts: retire them.
    runtime.block_on(async {
        for (account, region, _, key_id) in fleet_keys(prefix).await {
            let kms = aws_sdk_kms::Client::new(&config_in(&account, &region).await);
            let _ = kms
                .schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(7)
                .send()
                .await;
        }
    });
}
