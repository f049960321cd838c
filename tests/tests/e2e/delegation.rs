//! EIP-7702 with a KMS key on anvil (Prague rules): a KMS account delegates its code to a
//! contract deployed in the test and runs it; the self-sponsored nonce rule (authorization
//! nonce = transaction nonce + 1) computed by `--delegate`, and shown to matter; chain id 0
//! refused unless asked; the type-4 transaction decoded by `verify`.

use kms_eth_e2e::{funded_account, json_output, kms_eth, kms_eth_command, stderr};
use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

/// Init code of a contract whose code returns 42 (0x2a) as one 32-byte word:
/// PUSH10 <runtime> PUSH1 0 MSTORE PUSH1 10 PUSH1 22 RETURN, where the runtime is
/// PUSH1 0x2a PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN.
const INIT_CODE: &str = "0x69602a60005260206000f3600052600a6016f3";

fn send(key: &str, node: &kms_eth_harness::anvil::Anvil, extra: &[&str]) -> Value {
    let chain_id = node.chain_id().to_string();
    let mut args = vec![
        "send",
        "--key-id",
        key,
        "--rpc-url",
        node.url(),
        "--chain-id",
        &chain_id,
        "--yes",
        "--json",
    ];
    args.extend(extra);
    json_output(&kms_eth_command(&args).output())
}

fn code(node: &kms_eth_harness::anvil::Anvil, address: &str) -> String {
    rpc(node.url(), "eth_getCode", json!([address, "latest"]))
        .unwrap()
        .as_str()
        .unwrap()
        .to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_account_delegates_to_a_contract_and_runs_its_code() {
    let (key, address, node) = funded_account().await;
    let created = send(
        &key.id,
        &node,
        &["--create", "--data", INIT_CODE, "--value", "0"],
    );
    let contract = created["contract_address"].as_str().unwrap().to_owned();
    assert_eq!(code(&node, &contract), "0x602a60005260206000f3");

    // One command: the account authorizes its own delegation (nonce 1 + 1) and sends it.
    let sent = send(
        &key.id,
        &node,
        &["--type", "7702", "--delegate", &contract, "--to", &address],
    );
    assert_eq!(sent["type"], 4);
    assert_eq!(sent["nonce"], 1);
    let authorization = &sent["authorization_list"][0];
    assert_eq!(authorization["nonce"], 2, "{sent}");
    assert_eq!(authorization["authority"], address.as_str());
    assert_eq!(
        code(&node, &address),
        format!(
            "0xef0100{}",
            contract.trim_start_matches("0x").to_lowercase()
        ),
        "the account's code is the delegation designator"
    );
    // A call to the account runs the delegate's code.
    let answer = rpc(
        node.url(),
        "eth_call",
        json!([{ "to": address, "data": "0x" }, "latest"]),
    )
    .unwrap();
    assert_eq!(answer, format!("0x{:064x}", 42), "{answer}");
    // verify decodes the type-4 transaction, its authorization and who signed each.
    let verified = json_output(&kms_eth(&[
        "verify",
        sent["raw"].as_str().unwrap(),
        "--json",
    ]));
    assert_eq!(verified["from"], address.as_str());
    assert_eq!(
        verified["authorization_list"][0]["authority"],
        address.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_sponsored_authorization_with_the_transactions_own_nonce_installs_nothing() {
    let (key, address, node) = funded_account().await;
    let created = send(
        &key.id,
        &node,
        &["--create", "--data", INIT_CODE, "--value", "0"],
    );
    let contract = created["contract_address"].as_str().unwrap().to_owned();
    let chain_id = node.chain_id().to_string();
    // The guess users make: the account's current nonce (1), which the transaction itself
    // takes first. EIP-7702 then sees nonce 2 and skips the authorization.
    let signed = kms_eth_command(&[
        "sign-authorization",
        "--key-id",
        &key.id,
        "--delegate",
        &contract,
        "--chain-id",
        &chain_id,
        "--rpc-url",
        node.url(),
    ])
    .success();
    let text = String::from_utf8(signed.stdout).unwrap();
    let authorization: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(authorization["nonce"], "0x1");
    assert_eq!(authorization["chainId"], format!("{:#x}", node.chain_id()));
    // It is a valid authorization by the account...
    let verified = json_output(&kms_eth(&[
        "verify",
        "--authorization",
        text.trim(),
        "--json",
    ]));
    assert_eq!(verified["signer"], address.as_str());
    // ...and the transaction carrying it is mined, but nothing is delegated.
    let sent = send(
        &key.id,
        &node,
        &[
            "--type",
            "7702",
            "--authorization",
            text.trim(),
            "--to",
            &address,
        ],
    );
    assert_eq!(sent["status"], 1);
    assert_eq!(
        code(&node, &address),
        "0x",
        "a wrong nonce must not install the delegation"
    );
}

#[test]
fn chain_id_0_and_bad_authorization_input_are_refused_before_any_call() {
    let nowhere = [
        "--key-id",
        "alias/never-called",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ];
    let delegate = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let sign_auth = |extra: &[&str]| {
        let mut args = vec!["sign-authorization"];
        args.extend(nowhere);
        args.extend(extra);
        kms_eth_harness::testing::TestCommand::new(kms_eth_e2e::kms_eth_binary())
            .args(args)
            .output()
    };
    for (extra, message) in [
        (
            &["--delegate", delegate, "--chain-id", "0", "--nonce", "0"][..],
            "--any-chain",
        ),
        (
            &["--delegate", "0x1234", "--chain-id", "1", "--nonce", "0"][..],
            "invalid --delegate",
        ),
        (&["--delegate", delegate, "--chain-id", "1"][..], "--nonce"),
        (
            &["--delegate", delegate, "--chain-id", "1", "--nonce", "-1"][..],
            "invalid --nonce",
        ),
        (
            &[
                "--delegate",
                delegate,
                "--chain-id",
                "1",
                "--nonce",
                "18446744073709551615",
            ][..],
            "EIP-2681",
        ),
        (
            &[
                "--delegate",
                delegate,
                "--chain-id",
                "1",
                "--nonce",
                "0",
                "--rpc-url",
                "http://x",
            ][..],
            "cannot be used with",
        ),
        (
            &[
                "--delegate",
                delegate,
                "--chain-id",
                "1",
                "--rpc-url",
                "ftp://node",
            ][..],
            "invalid --rpc-url",
        ),
    ] {
        let output = sign_auth(extra);
        kms_eth_harness::testing::assert_usage_error(&output, &extra, message);
        assert!(
            !stderr(&output).contains("cannot reach"),
            "{extra:?} called KMS"
        );
    }
    let sign = |extra: &[&str]| {
        let mut args = vec![
            "sign",
            "--chain-id",
            "1",
            "--nonce",
            "0",
            "--gas-limit",
            "60000",
            "--max-fee-per-gas",
            "2gwei",
            "--max-priority-fee-per-gas",
            "1gwei",
        ];
        args.extend(nowhere);
        args.extend(extra);
        kms_eth_harness::testing::TestCommand::new(kms_eth_e2e::kms_eth_binary())
            .args(args)
            .output()
    };
    let good = r#"{"chainId":"0x1","address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","nonce":"0x0","yParity":"0x0","r":"0x1","s":"0x1"}"#;
    for (extra, message) in [
        (
            vec!["--type", "7702", "--to", delegate],
            "missing: an EIP-7702 transaction carries at least one",
        ),
        (
            vec![
                "--type",
                "7702",
                "--create",
                "--data",
                "0x60",
                "--delegate",
                delegate,
            ],
            "cannot create a contract",
        ),
        (
            vec!["--delegate", delegate, "--to", delegate],
            "add --type 7702",
        ),
        (
            vec!["--type", "7702", "--to", delegate, "--authorization", "{"],
            "invalid --authorization",
        ),
        (
            vec![
                "--type",
                "7702",
                "--to",
                delegate,
                "--authorization",
                &good.replace("0x0\",\"r", "0x2\",\"r"),
            ],
            "not 0 or 1",
        ),
        (
            vec![
                "--type",
                "7702",
                "--to",
                delegate,
                "--authorization",
                &good.replace("\"nonce\"", "\"nonse\""),
            ],
            "unknown field \"nonse\"",
        ),
        (
            vec!["--type", "1559", "--to", delegate, "--authorization", good],
            "invalid --authorization",
        ),
        (
            vec![
                "--type",
                "7702",
                "--to",
                delegate,
                "--authorization",
                "/nonexistent/auth.json",
            ],
            "neither JSON nor a readable file",
        ),
    ] {
        let output = sign(&extra);
        kms_eth_harness::testing::assert_usage_error(&output, &extra, message);
        assert!(
            !stderr(&output).contains("cannot reach"),
            "{extra:?} called KMS"
        );
    }
}
