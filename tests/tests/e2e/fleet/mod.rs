//! `kms-eth fleet` end to end against real LocalStack, which separates AWS accounts by
//! access key id and lets a management account assume roles in the others: three member
//! accounts, each with a bootstrap role trusted by the management account, and a manifest of
//! 3 targets x 2 regions x 2 accounts = 12 stacks. An apply killed half-way and run again
//! converges with one key per stack; a re-apply changes nothing; a changed tag updates only
//! its account's stacks; a key disabled out of band is drift that apply leaves alone; the
//! address book matches what `status` derives for every key; destroy reports every key's
//! fate. Always on LocalStack, also under `--target aws` (these accounts exist only there).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::config::Credentials;
use kms_eth_e2e::{kms_eth_binary, localstack_endpoint, run_detached, run_id, stderr, TestCommand};
use serde_json::{json, Value};

const MEMBERS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// An endpoint where nothing answers: a usage error with it proves nothing was called.
const NOWHERE: &str = "http://127.0.0.1:9";

/// An SDK configuration acting in `account` (LocalStack takes a 12-digit access key id as
/// the account) in `region`.
async fn config_in(account: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(localstack_endpoint())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(account, "test", None, None, "fleet-test"))
        .load()
        .await
}

/// `kms-eth fleet <args>` against LocalStack, as the management account.
fn fleet(args: &[&str]) -> TestCommand {
    TestCommand::new(kms_eth_binary())
        .args([
            "--endpoint-url",
            &localstack_endpoint(),
            "--region",
            "us-east-1",
            "fleet",
        ])
        .args(args)
}

/// A bootstrap role in each of `accounts` that the management account (000000000000) may
/// assume, as an organisation's account-vending step makes it.
async fn bootstrap_roles(role: &str, accounts: &[&str]) {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]});
    for account in accounts {
        let iam = aws_sdk_iam::Client::new(&config_in(account, "us-east-1").await);
        iam.create_role()
            .role_name(role)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap();
    }
}

/// A name prefix for this run's targets (`<kind><run>-`) and its bootstrap role's name.
fn names(kind: &str) -> (String, String) {
    let run: String = run_id()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let prefix = format!("{kind}{run}-");
    let role = format!("kms-eth-bootstrap-{kind}{run}");
    (prefix, role)
}

/// The manifest: three targets, two regions each, a retained treasury and a destroyable hot
/// wallet in each; `treasury_team` is the treasury's tag and `hot_window` the hot wallet's
/// deletion window in the first target.
fn manifest(prefix: &str, role: &str, treasury_team: &str, hot_window: u8) -> String {
    let mut text = String::from(
        "[defaults]\nremoval_policy = \"retain\"\npending_window_days = 30\nregion = \"us-east-1\"\n",
    );
    for (i, account) in MEMBERS.iter().enumerate() {
        let (team, window) = if i == 0 {
            (treasury_team, hot_window)
        } else {
            ("treasury", 7)
        };
        text.push_str(&format!(
            r#"
[[target]]
name = "{prefix}{i}"
account_id = "{account}"
regions = ["us-east-1", "eu-west-1"]
assume_role = "arn:aws:iam::{account}:role/{role}"

[[target.account]]
name = "treasury"
signer_principals = ["arn:aws:iam::{account}:role/{role}"]
tags = {{ team = "{team}" }}

[[target.account]]
name = "hot"
removal_policy = "destroy"
pending_window_days = {window}
"#
        ));
    }
    text
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every kms-eth key of the member accounts and regions whose account tag starts with
/// `prefix`: (account, region, stack name, key id).
async fn fleet_keys(prefix: &str) -> Vec<(String, String, String, String)> {
    let mut found = Vec::new();
    for account in MEMBERS {
        for region in REGIONS {
            let kms = aws_sdk_kms::Client::new(&config_in(account, region).await);
            for (key_id, stack) in kms_eth_provisioner::tagged_keys(&kms).await.unwrap() {
                if stack.starts_with(prefix) {
                    found.push((account.to_owned(), region.to_owned(), stack, key_id));
                }
            }
        }
    }
    found.sort();
    found
}

/// Destroys what the test made when it ends, even after a failure.
struct FleetGuard(PathBuf);

impl Drop for FleetGuard {
    fn drop(&mut self) {
        let manifest = self.0.clone();
        run_detached(async move {
            let _ = fleet(&[
                "destroy",
                "--manifest",
                manifest.to_str().unwrap_or_default(),
                "--skip-balance-check",
                "--yes",
            ])
            .output();
            Ok(())
        });
    }
}

/// The JSON on stdout of a command that exited as the test expected (`fails` checked it).
fn stdout_json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

/// Plans `manifest` (exit 4) and checks that exactly the two stacks (one per region) of
/// account `name` of `target` are updates, each with the one change `change`.
fn planned_updates(manifest: &str, target: &str, name: &str, change: &str) {
    let plan = stdout_json(&fleet(&["plan", "--manifest", manifest, "--json"]).fails(4, ""));
    let updates: Vec<&Value> = plan["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "update")
        .collect();
    assert_eq!(updates.len(), 2, "{plan}");
    for row in updates {
        assert_eq!(
            (row["target"].as_str(), row["name"].as_str()),
            (Some(target), Some(name)),
            "{row}"
        );
        assert_eq!(row["changes"], json!([change]), "{row}");
    }
}

/// The rows of a report with `field` equal to `value`.
fn count(rows: &Value, field: &str, value: &str) -> usize {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r[field] == value)
        .count()
}

#[test]
fn a_fleet_of_twelve_stacks_across_three_accounts_converges_drifts_and_is_destroyed() {
    let (prefix, role) = names("fleet");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bootstrap_roles(&role, &MEMBERS));
    let dir = tempfile_dir(&prefix);
    let path = write(&dir, "fleet.toml", &manifest(&prefix, &role, "treasury", 7));
    let m = path.to_str().unwrap();
    let _guard = FleetGuard(path.clone());

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
    let before = runtime.block_on(fleet_keys(&prefix));
    assert!(
        before.len() < 12,
        "the kill came after every stack was made: {before:?}"
    );

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
    let keys = runtime.block_on(fleet_keys(&prefix));
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

    // A re-apply changes nothing, and the plan says so with exit 0.
    let plan = fleet(&["plan", "--manifest", m, "--json"]).json();
    assert_eq!(count(&plan["stacks"], "action", "no-change"), 12, "{plan}");
    let again = fleet(&["apply", "--manifest", m, "--yes", "--json"]).json();
    assert_eq!(
        count(&again["stacks"], "outcome", "unchanged"),
        12,
        "{again}"
    );

    // A changed tag is planned as an update of that account entry's stacks (one per
    // region) and nothing else. (LocalStack's CloudFormation ignores tag-only updates, so it
    // is applied below with a changed deletion window instead, an input it does apply.)
    write(&dir, "fleet.toml", &manifest(&prefix, &role, "vault", 7));
    planned_updates(
        m,
        &format!("{prefix}0"),
        "treasury",
        "tags: {team=treasury} -> {team=vault}",
    );
    write(&dir, "fleet.toml", &manifest(&prefix, &role, "treasury", 8));
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

    // Destroy: without a balance check it is refused and nothing is deleted; then every
    // key's fate is reported as KMS sees it.
    fleet(&["destroy", "--manifest", m, "--yes"]).usage_error("--skip-balance-check");
    assert_eq!(runtime.block_on(fleet_keys(&prefix)).len(), 12);
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
        .filter(|u| u["stack_name"].as_str().unwrap().starts_with(&prefix))
        .count();
    assert_eq!(unmanaged, 12, "{plan}");
    // The retained keys outlive the test in these accounts: retire them.
    runtime.block_on(async {
        for (account, region, _, key_id) in fleet_keys(&prefix).await {
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

/// Bad manifests through the command line: each one exit 2 naming the line and the field,
/// with an endpoint where nothing answers (a call would be exit 1).
#[test]
fn bad_fleet_manifests_are_refused_with_the_line_and_field_before_any_call() {
    let dir = tempfile_dir("bad-manifests");
    let good = manifest("good-", "boot", "treasury", 7);
    let role0 = "arn:aws:iam::111111111111:role/boot";
    let cases: Vec<(String, &str)> = vec![
        (
            good.replacen(
                "pending_window_days = 7",
                "pending_window_days = 7\nowner = \"x\"",
                1,
            ),
            "line 21",
        ),
        (
            good.replacen("name = \"good-1\"", "name = \"good-0\"", 1),
            "line 23, target.name",
        ),
        (
            good.replacen("name = \"hot\"", "name = \"treasury\"", 1),
            "line 18, target.account.name",
        ),
        (
            good.replacen(role0, "arn:aws:iam::111111111111:group/boot", 1),
            "line 10",
        ),
        (
            good.replacen(role0, "arn:aws:iam::222222222222:role/boot", 1),
            "line 10, target.assume_role",
        ),
        (
            good.replacen("pending_window_days = 7", "pending_window_days = 31", 1),
            "line 20",
        ),
        (
            good.replacen("\"eu-west-1\"]", "\"eu-west-9\"]", 1),
            "line 9",
        ),
        (
            good.replacen("region = \"us-east-1\"", "region = \"us-east1\"", 1),
            "line 4",
        ),
        (
            good.replacen(
                "account_id = \"111111111111\"",
                "account_id = 111111111111",
                1,
            ),
            "line 8",
        ),
        (
            good.replacen(
                "removal_policy = \"destroy\"",
                "removal_policy = \"later\"",
                1,
            ),
            "line 19",
        ),
        (
            good.replacen(
                &format!("signer_principals = [\"{role0}\"]"),
                "signer_principals = [\"arn:aws:iam::*:root\"]",
                1,
            ),
            "line 14",
        ),
        (
            good.replacen("team = \"treasury\"", "\"aws:team\" = \"x\"", 1),
            "line 15",
        ),
        (
            good.replacen(
                &format!("assume_role = \"{role0}\""),
                &format!("assume_role = \"{role0}\"\nprofile = \"admin\""),
                1,
            ),
            "target.profile",
        ),
        (
            good.replacen(
                &format!("assume_role = \"{role0}\""),
                "external_id = \"abc123\"",
                1,
            ),
            "target.external_id",
        ),
        (
            good.replacen("name = \"hot\"", "name = \"hot wallet\"", 1),
            "line 18",
        ),
        (
            good.replacen(
                "name = \"hot\"",
                "name = \"hot\"\nalias = \"alias/aws/hot\"",
                1,
            ),
            "target.account.alias",
        ),
        (
            good.replacen(
                "regions = [\"us-east-1\", \"eu-west-1\"]",
                "regions = [\"us-east-1\", \"us-east-1\"]",
                1,
            ),
            "twice",
        ),
        (
            good.replacen(
                "name = \"hot\"",
                "name = \"hot\"\nstack_name = \"good-0-treasury\"",
                1,
            ),
            "target.account.stack_name",
        ),
        (
            "[defaults]\nregion = \"us-east-1\"\n".to_owned(),
            "no [[target]]",
        ),
        (
            "[[target]]\nname = \"a\"\naccount_id = \"111111111111\"\nregions = [\"us-east-1\"]\n"
                .to_owned(),
            "line 2, target.account",
        ),
        ("this is not toml".to_owned(), "line 1"),
    ];
    assert!(cases.len() >= 15);
    for (i, (text, wanted)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("bad-{i}.toml"), text);
        let output = TestCommand::new(kms_eth_binary())
            .args([
                "--endpoint-url",
                NOWHERE,
                "fleet",
                "plan",
                "--manifest",
                path.to_str().unwrap(),
            ])
            .output();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(wanted),
            "case {i}: wanted {wanted:?} in\n{err}"
        );
        assert!(err.contains("invalid manifest"), "case {i}: {err}");
    }
    // A missing file and a CSV asked for as JSON too: usage errors as well.
    TestCommand::new(kms_eth_binary())
        .args([
            "--endpoint-url",
            NOWHERE,
            "fleet",
            "plan",
            "--manifest",
            "/nonexistent/fleet.toml",
        ])
        .usage_error("cannot read --manifest");
    let path = write(&dir, "good.toml", &good);
    TestCommand::new(kms_eth_binary())
        .args([
            "--endpoint-url",
            NOWHERE,
            "--json",
            "fleet",
            "status",
            "--csv",
            "--manifest",
            path.to_str().unwrap(),
        ])
        .usage_error("give one");
}

/// A folder of this test's own under the system's temporary folder.
fn tempfile_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kms-eth-fleet-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
