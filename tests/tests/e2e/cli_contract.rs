//! The command line's contract with scripts: every command's `--json` speaks one vocabulary
//! (the same thing has the same field name everywhere, and the same value), each class of
//! failure has its documented exit code, and `cargo xtask <command>` runs every product
//! command as the binary does.

use std::collections::BTreeSet;
use std::time::Duration;

use kms_eth_e2e::TestCommand;
use kms_eth_e2e::{
    as_strs, cancel_deletion_and_enable, deploy_args, destroy_unfunded, json_output, kms_eth,
    kms_eth_binary, kms_eth_command, stack_name, transfer_flags, xtask_binary, TestStack,
};
use kms_eth_harness::anvil::Anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// Names that once meant one of the vocabulary's fields (`arn` and `state` in `key list`,
/// `stack` in `status`, the event's `eth_checksum_address` in `status --json`) or would be
/// easy to drift to. None may appear in any command's `--json`.
const FORBIDDEN: [&str; 9] = [
    "arn",
    "state",
    "stack",
    "keyId",
    "key",
    "id",
    "eth_checksum_address",
    "checksum_address",
    "stackName",
];

/// Every field name in `value`, nested objects and arrays included.
fn field_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                names.insert(name.clone());
                field_names(inner, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| field_names(item, names)),
        _ => {}
    }
}

/// Asserts that `report` (the `--json` of `command`) has `fields`, and no forbidden name.
fn assert_vocabulary(command: &str, report: &Value, fields: &[&str]) {
    let mut names = BTreeSet::new();
    field_names(report, &mut names);
    for field in fields {
        assert!(
            names.contains(*field),
            "{command} --json lacks {field}: {report:#}"
        );
    }
    for name in FORBIDDEN {
        assert!(
            !names.contains(name),
            "{command} --json uses {name:?}: {report:#}"
        );
    }
}

#[tokio::test]
async fn every_command_names_the_same_field_the_same_way_in_json() {
    let mut guard = TestStack::new(stack_name("vocabulary"));
    let deployed = json_output(&kms_eth(&as_strs(&deploy_args(&guard.name))));
    assert_vocabulary(
        "deploy",
        &deployed,
        &[
            "address",
            "key_id",
            "key_arn",
            "alias",
            "stack_name",
            "stack_id",
            "removal_policy",
        ],
    );
    let key_id = deployed["key_id"].as_str().unwrap().to_owned();
    guard.key_id = Some(key_id.clone());
    let address = deployed["address"].as_str().unwrap().to_owned();
    let stack = guard.name.clone();

    let status = json_output(&kms_eth(&["status", "--stack-name", &stack, "--json"]));
    assert_vocabulary(
        "status",
        &status,
        &[
            "address",
            "key_id",
            "key_arn",
            "key_state",
            "alias",
            "stack_name",
        ],
    );

    let listed = json_output(&kms_eth(&["key", "list", "--json"]));
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["key_id"] == key_id.as_str())
        .unwrap_or_else(|| panic!("key list lacks {key_id}: {listed:#}"))
        .clone();
    assert_vocabulary(
        "key list",
        &entry,
        &[
            "address",
            "key_id",
            "key_arn",
            "key_state",
            "alias",
            "stack_name",
        ],
    );

    let transfer = transfer_flags("31337", RECIPIENT, "0");
    let signed = json_output(&kms_eth(
        &[
            &["sign", "--stack-name", &stack, "--nonce", "0", "--json"][..],
            &as_strs(&transfer),
        ]
        .concat(),
    ));
    assert_vocabulary(
        "sign",
        &signed,
        &["from", "to", "hash", "raw", "chain_id", "nonce"],
    );

    let verified = json_output(&kms_eth(&[
        "verify",
        signed["raw"].as_str().unwrap(),
        "--json",
    ]));
    assert_vocabulary(
        "verify",
        &verified,
        &["from", "to", "hash", "raw", "chain_id"],
    );

    let message = json_output(&kms_eth(&[
        "sign-message",
        "--stack-name",
        &stack,
        "hello",
        "--json",
    ]));
    assert_vocabulary("sign-message", &message, &["address", "signature"]);

    let node = Anvil::start(Duration::from_secs(60)).unwrap();
    rpc(
        node.url(),
        "anvil_setBalance",
        json!([address, "0xde0b6b3a7640000"]),
    )
    .unwrap();
    let sent = json_output(&kms_eth(&[
        "send",
        "--stack-name",
        &stack,
        "--rpc-url",
        node.url(),
        "--to",
        RECIPIENT,
        "--value",
        "1gwei",
        "--chain-id",
        "31337",
        "--json",
    ]));
    assert_vocabulary(
        "send",
        &sent,
        &["from", "to", "hash", "raw", "block_number", "status"],
    );

    let destroyed = destroy_unfunded(&stack);
    assert_vocabulary(
        "destroy",
        &destroyed,
        &[
            "address",
            "key_id",
            "key_state",
            "stack_name",
            "removal_policy",
        ],
    );
    let restored = cancel_deletion_and_enable(&key_id);
    assert_vocabulary(
        "key cancel-deletion",
        &restored,
        &["address", "key_id", "key_arn", "key_state"],
    );
    let scheduled = json_output(&kms_eth(&[
        "key",
        "schedule-deletion",
        &key_id,
        "--days",
        "7",
        // The address has sent a transaction above: in use, so forced.
        "--rpc-url",
        node.url(),
        "--chain-id",
        &node.chain_id().to_string(),
        "--force",
        "--yes",
        "--json",
    ]));
    assert_vocabulary(
        "key schedule-deletion",
        &scheduled,
        &[
            "address",
            "key_id",
            "key_arn",
            "key_state",
            "deletion_date",
            "balance_check",
            "chain_id",
            "nonce",
        ],
    );

    // The same things have the same values, whichever command reports them.
    for (command, value) in [
        ("status", &status["address"]),
        ("key list", &entry["address"]),
        ("sign", &signed["from"]),
        ("verify", &verified["from"]),
        ("sign-message", &message["address"]),
        ("send", &sent["from"]),
        ("destroy", &destroyed["address"]),
        ("key cancel-deletion", &restored["address"]),
    ] {
        assert_eq!(value, address.as_str(), "{command} reports another address");
    }
    for (command, value) in [
        ("status", &status["key_arn"]),
        ("key list", &entry["key_arn"]),
        ("key cancel-deletion", &restored["key_arn"]),
    ] {
        assert_eq!(
            value, &deployed["key_arn"],
            "{command} reports another key ARN"
        );
    }
    assert_eq!(status["stack_name"], stack.as_str());
    assert_eq!(entry["stack_name"], stack.as_str());
    assert_eq!(destroyed["stack_name"], stack.as_str());
    assert_eq!(scheduled["key_state"], "PendingDeletion");
}

/// The binary with exactly these arguments (no target flags added).
fn kms_eth_exactly(args: &[&str]) -> TestCommand {
    TestCommand::new(kms_eth_binary()).args(args)
}

/// The signed transaction of EIP-155's worked example (a known signer, no KMS needed).
const EIP155_EXAMPLE: &str = "0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83";

#[test]
fn each_class_of_failure_has_its_exit_code() {
    // Exit 1, failures: an AWS endpoint or a node nobody answers on (nothing typed is
    // wrong; never 2), and a signature by someone else than expected.
    let nowhere = "http://127.0.0.1:9";
    let key = ["--key-id", "alias/anything", "--endpoint-url", nowhere];
    kms_eth_exactly(&["status"])
        .args(key)
        .fails(1, "cannot reach");
    kms_eth_exactly(&[
        "send",
        "--rpc-url",
        nowhere,
        "--to",
        RECIPIENT,
        "--chain-id",
        "1",
    ])
    .args(key)
    .fails(1, "cannot reach the node at http://127.0.0.1:9");
    kms_eth_exactly(&["verify", EIP155_EXAMPLE]).success();
    kms_eth_exactly(&["verify", EIP155_EXAMPLE, "--address", RECIPIENT]).fails(1, "recovers to");

    // Exit 2, bad usage: from clap's own checks and from kms-eth's, before any call.
    for (args, message) in [
        (&["status"][..], "required arguments were not provided"),
        (
            &["sign", "--key-id", "k", "--chain-id", "0"],
            "0 is not a chain id",
        ),
        (
            &[
                "send",
                "--key-id",
                "k",
                "--rpc-url",
                "ftp://node",
                "--to",
                RECIPIENT,
                "--chain-id",
                "1",
            ],
            "invalid --rpc-url",
        ),
        (&["no-such-command"], "unrecognized subcommand"),
    ] {
        kms_eth_exactly(args).usage_error(message);
    }
}

#[tokio::test]
async fn a_missing_key_and_a_missing_stack_are_both_exit_2() {
    // Both are a wrong name given by the user: the same class, the same code.
    kms_eth_command(&["status", "--key-id", "alias/kms-eth-test-no-such-key"])
        .usage_error("not found");
    let no_stack = "kms-eth-test-no-such-stack";
    kms_eth_command(&["status", "--stack-name", no_stack]).usage_error("no stack named");
    kms_eth_command(&["destroy", "--stack-name", no_stack, "--yes"]).usage_error("no stack named");
}

/// The product commands whose names `cargo xtask` has for tasks of its own, which run
/// instead (xtask's `localstack` does what the product's does, and more). The test below
/// fails if this list is wrong either way.
const XTASK_OWN: [&str; 1] = ["localstack"];

#[test]
fn cargo_xtask_runs_every_product_command_and_refuses_an_unknown_one() {
    // The product's own command line is the list: a command added there is checked here.
    let product = <kms_eth::flags::Cli as clap::CommandFactory>::command();
    let mut forwarded = Vec::new();
    for command in product.get_subcommands() {
        let name = command.get_name();
        let direct = kms_eth_exactly(&[name, "--help"]).success();
        let through_xtask = TestCommand::new(xtask_binary())
            .args([name, "--help"])
            .success();
        let (direct, through_xtask) = (
            String::from_utf8_lossy(&direct.stdout),
            String::from_utf8_lossy(&through_xtask.stdout),
        );
        if XTASK_OWN.contains(&name) {
            assert_ne!(
                through_xtask, direct,
                "`cargo xtask {name}` is forwarded, yet XTASK_OWN lists it as xtask's own"
            );
            continue;
        }
        assert_eq!(through_xtask, direct, "`cargo xtask {name} --help`");
        forwarded.push(name.to_owned());
    }
    // The two that a copied list once left out.
    for name in ["sign-typed-data", "sign-authorization"] {
        assert!(forwarded.iter().any(|f| f == name), "{name}: {forwarded:?}");
    }
    for own in XTASK_OWN {
        assert!(
            product.find_subcommand(own).is_some(),
            "XTASK_OWN names {own}, which is not a product command"
        );
    }
    TestCommand::new(xtask_binary())
        .args(["no-such-command"])
        .usage_error("unrecognized subcommand 'no-such-command'");
}
