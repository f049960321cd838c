//! The manifest's reading and flattening, tested on the issue's example and on one bad
//! manifest per check, each refused with its line and field.

#![allow(clippy::unwrap_used)]

use super::*;

const GOOD: &str = r#"
[defaults]
removal_policy = "retain"
pending_window_days = 30
region = "us-east-1"

[[target]]
name = "payments-prod"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
assume_role = "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"

[[target.account]]
name = "treasury"
signer_principals = ["arn:aws:iam::111111111111:role/payments-signer"]
tags = { team = "payments" }

[[target.account]]
name = "hot-wallet"
removal_policy = "destroy"
pending_window_days = 7

[[target]]
name = "ops"
account_id = "222222222222"
profile = "ops-admin"

[[target.account]]
name = "gas"
stack_name = "ops-gas-tank"
alias = "alias/gas"
"#;

#[test]
fn the_issue_example_reads_into_one_entry_per_target_region_and_account() {
    let manifest = Manifest::parse("m.toml", GOOD).unwrap();
    let names: Vec<(String, &str)> = manifest
        .entries
        .iter()
        .map(|e| (e.request.stack_name.clone(), e.region.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("payments-prod-treasury".to_owned(), "us-east-1"),
            ("payments-prod-hot-wallet".to_owned(), "us-east-1"),
            ("payments-prod-treasury".to_owned(), "eu-west-1"),
            ("payments-prod-hot-wallet".to_owned(), "eu-west-1"),
            ("ops-gas-tank".to_owned(), "us-east-1"),
        ]
    );
    let hot = &manifest.entries[1].request;
    assert_eq!(hot.removal_policy, Some(RemovalPolicy::Destroy));
    assert_eq!(hot.pending_window_days, Some(7));
    assert!(hot.signer_principals.is_empty());
    let treasury = &manifest.entries[0].request;
    // The manifest's tags, and the fleet's own (this manifest names no id).
    assert_eq!(
        treasury.tags,
        Some(vec![
            ("kms-eth:fleet".to_owned(), "default".to_owned()),
            ("team".to_owned(), "payments".to_owned())
        ])
    );
    assert!(!manifest.entries[0].adopt);
    let named = Manifest::parse("m", &format!("id = \"payments-prod\"\n{GOOD}")).unwrap();
    let tags = named.entries[0].request.tags.clone().unwrap_or_default();
    assert!(tags.contains(&("kms-eth:fleet".to_owned(), "payments-prod".to_owned())));
    let bad = Manifest::parse("m", &format!("id = \"a b\"\n{GOOD}")).unwrap_err();
    assert!(bad.to_string().contains("not a fleet id"), "{bad}");
    assert_eq!(treasury.removal_policy, Some(RemovalPolicy::Retain));
    assert_eq!(
        manifest.targets[1].access,
        Access::Profile("ops-admin".into())
    );
    assert_eq!(manifest.targets[1].regions, ["us-east-1"]);
    assert_eq!(
        manifest.targets[0].access,
        Access::AssumeRole {
            role_arn: "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole".into(),
            external_id: None
        }
    );
}

/// [`GOOD`] with the ops target moved into payments-prod's AWS account and its account's
/// stack named like payments-prod's treasury (line 30).
fn stack_clash() -> String {
    let role = "assume_role = \"arn:aws:iam::111111111111:role/OrganizationAccountAccessRole\"";
    GOOD.replace(
        "account_id = \"222222222222\"\nprofile = \"ops-admin\"",
        &format!("account_id = \"111111111111\"\n{role}"),
    )
    .replace(
        "stack_name = \"ops-gas-tank\"",
        "stack_name = \"payments-prod-treasury\"",
    )
}

/// Each bad manifest: (what is changed, the line, a word of the error).
#[test]
fn bad_manifests_are_refused_with_the_line_and_field() {
    let role = "assume_role = \"arn:aws:iam::111111111111:role/OrganizationAccountAccessRole\"";
    let cases: Vec<(String, usize, &str)> = vec![
        (
            GOOD.replace(
                "pending_window_days = 7",
                "pending_window_days = 7\ncolour = \"red\"",
            ),
            22,
            "unknown field `colour`",
        ),
        (
            GOOD.replace("name = \"ops\"", "name = \"payments-prod\""),
            24,
            "unique",
        ),
        (
            GOOD.replace("name = \"hot-wallet\"", "name = \"treasury\""),
            19,
            "unique",
        ),
        (
            GOOD.replace(
                role,
                "assume_role = \"arn:aws:iam::111111111111:user/admin\"",
            ),
            11,
            "assume_role",
        ),
        (
            GOOD.replace(role, "assume_role = \"arn:aws:iam::999999999999:role/Org\""),
            11,
            "account_id",
        ),
        (
            GOOD.replace("pending_window_days = 7", "pending_window_days = 40"),
            21,
            "7-30",
        ),
        (
            GOOD.replace("pending_window_days = 30", "pending_window_days = 3"),
            4,
            "7-30",
        ),
        (
            GOOD.replace("\"eu-west-1\"]", "\"eu-wset-1\"]"),
            10,
            "eu-west-1",
        ),
        (
            GOOD.replace("region = \"us-east-1\"", "region = \"moon-1\""),
            5,
            "unknown AWS region",
        ),
        (
            GOOD.replace("\"111111111111\"\nregions", "\"11111\"\nregions"),
            9,
            "12 digits",
        ),
        (
            GOOD.replace(
                "removal_policy = \"destroy\"",
                "removal_policy = \"delete\"",
            ),
            20,
            "removal policy",
        ),
        (
            GOOD.replace("role/payments-signer\"]", "role/payments-signer\", \"*\"]"),
            15,
            "wildcards",
        ),
        (
            GOOD.replace("team = \"payments\"", "\"kms-eth:account\" = \"x\""),
            16,
            "reserved",
        ),
        (
            GOOD.replace(
                "profile = \"ops-admin\"",
                &format!(
                    "profile = \"ops-admin\"\n{}",
                    role.replace("111111111111", "222222222222")
                ),
            ),
            26,
            "not both",
        ),
        (
            GOOD.replace("profile = \"ops-admin\"", "external_id = \"abc\""),
            26,
            "external id",
        ),
        (
            GOOD.replace("name = \"hot-wallet\"", "name = \"hot_wallet\""),
            19,
            "letters, digits and hyphens",
        ),
        (
            GOOD.replace("alias = \"alias/gas\"", "alias = \"alias/aws/gas\""),
            31,
            "reserved",
        ),
        (
            GOOD.replace(
                "\"us-east-1\", \"eu-west-1\"]",
                "\"us-east-1\", \"us-east-1\"]",
            ),
            10,
            "twice",
        ),
        (
            GOOD.replace("stack_name = \"ops-gas-tank\"", "stack_name = \"9gas\""),
            30,
            "start with a letter",
        ),
        (
            GOOD.replace("regions = [\"us-east-1\", \"eu-west-1\"]", "regions = []"),
            10,
            "empty",
        ),
        (stack_clash(), 30, "also account"),
        (
            GOOD.replace("endpoint", "x").replace(
                "profile = \"ops-admin\"",
                "profile = \"ops-admin\"\nendpoint_url = \"localhost:4566\"",
            ),
            27,
            "endpoint_url",
        ),
        (GOOD.replace("\"eu-west-1\"]", "\"cn-north-1\"]"), 8, "partition"),
        (GOOD.replace("arn:aws:iam::111111111111:role/Org", "arn:aws-foo:iam::111111111111:role/Org"), 11, "assume_role"),
        (GOOD.replace("name = \"gas\"\nstack_name = \"ops-gas-tank\"\nalias = \"alias/gas\"", "name = \"gas\"\nalias = \"alias/gas\"\n\n[[target.account]]\nname = \"gas2\"\nalias = \"gas\""), 34, "an alias names one key"),
        (GOOD.replace("tags = { team = \"payments\" }", &format!("tags = {{ {} }}", (0..51).map(|i| format!("t{i} = \"v\"")).collect::<Vec<_>>().join(", "))), 14, "AWS allows 50"),
    ];
    for (text, line, word) in cases {
        let err = Manifest::parse("m.toml", &text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("line {line}")),
            "{err}\nwanted line {line}"
        );
        assert!(err.contains(word), "{err}\nwanted {word:?}");
        assert!(err.starts_with("invalid manifest m.toml"), "{err}");
    }
    let none = Manifest::parse("m.toml", "[defaults]\nregion = \"us-east-1\"\n").unwrap_err();
    assert!(none.to_string().contains("no [[target]]"), "{none}");
    let empty =
        "[[target]]\nname = \"a\"\naccount_id = \"111111111111\"\nregions = [\"us-east-1\"]\n";
    let err = Manifest::parse("m.toml", empty).unwrap_err().to_string();
    assert!(
        err.contains("line 2") && err.contains("no [[target.account]]"),
        "{err}"
    );
    let no_region = "[[target]]\nname = \"a\"\naccount_id = \"111111111111\"\n[[target.account]]\nname = \"b\"\n";
    let err = Manifest::parse("m.toml", no_region)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("regions"), "{err}");
}

/// The checks run target by target and account by account, a stack's and alias's clash with
/// an earlier account before the checks of the next: of two faults, the first is reported.
#[test]
fn of_two_faults_the_first_in_the_file_is_reported() {
    // The ops account's stack clashes with payments-prod's (line 30); a later target has a
    // fault of its own.
    let clash_then_target = stack_clash()
        + "\n[[target]]\nname = \"late\"\naccount_id = \"333333333333\"\nexternal_id = \"abc\"\n";
    // A third account's alias clashes with the first's (line 25); a fourth repeats a name.
    let clash_then_account = GOOD.replace(
        "pending_window_days = 7\n",
        "pending_window_days = 7\n\n[[target.account]]\nname = \"cold\"\nalias = \
         \"payments-prod-treasury\"\n\n[[target.account]]\nname = \"treasury\"\n",
    );
    for (text, line, word) in [
        (clash_then_target, 30, "also account"),
        (clash_then_account, 25, "an alias names one key"),
    ] {
        let err = Manifest::parse("m.toml", &text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("line {line}")) && err.contains(word),
            "{err}\nwanted line {line} and {word:?}"
        );
    }
}
