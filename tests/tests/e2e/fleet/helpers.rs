//! What the fleet tests share: the member accounts and Regions, SDK clients acting in a member
//! account, `kms-eth fleet` as the management account, bootstrap roles, the twelve-stack
//! manifest, the keys a fleet made, the guard that destroys it, and report readers.

use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::config::Credentials;
use kms_eth_e2e::{kms_eth_binary, localstack_endpoint, run_detached, run_id, stderr, TestCommand};
use serde_json::{json, Value};

pub(super) const MEMBERS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// An endpoint where nothing answers: a usage error with it proves nothing was called.
pub(super) const NOWHERE: &str = "http://127.0.0.1:9";

/// An SDK configuration acting in `account` (LocalStack takes a 12-digit access key id as
/// the account) in `region`.
pub(super) async fn config_in(account: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(localstack_endpoint())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(account, "test", None, None, "fleet-test"))
        .load()
        .await
}

/// `kms-eth fleet <args>` against LocalStack, as the management account.
pub(super) fn fleet(args: &[&str]) -> TestCommand {
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
pub(super) async fn bootstrap_roles(role: &str, accounts: &[&str]) {
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
pub(super) fn names(kind: &str) -> (String, String) {
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
pub(super) fn manifest(prefix: &str, role: &str, treasury_team: &str, hot_window: u8) -> String {
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

pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every kms-eth key of the member accounts and regions whose account tag starts with
/// `prefix`: (account, region, stack name, key id).
pub(super) async fn fleet_keys(prefix: &str) -> Vec<(String, String, String, String)> {
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
pub(super) struct FleetGuard(pub(super) PathBuf);

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
pub(super) fn stdout_json(output: &std::process::Output) -> Value {
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
pub(super) fn planned_updates(manifest: &str, target: &str, name: &str, change: &str) {
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
pub(super) fn count(rows: &Value, field: &str, value: &str) -> usize {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r[field] == value)
        .count()
}

/// A folder of this test's own under the system's temporary folder.
pub(super) fn tempfile_dir(label: &str) -> PathBuf {
    let dir =
        kms_eth_e2e::scratch_dir().join(format!("kms-eth-fleet-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
