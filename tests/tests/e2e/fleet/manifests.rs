//! Bad fleet manifests through the command line: each refused with exit 2, its line and its
//! field, before any call.

use kms_eth_e2e::{kms_eth_binary, stderr, TestCommand};

use super::helpers::{manifest, tempfile_dir, write, NOWHERE};

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
