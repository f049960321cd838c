//! `account migrate` on anvil with the test token and native funds: B receives every token
//! and all the ether but the fees, A is left with exactly 0 wei; the command killed after
//! broadcasting its first transfer (anvil not mining) is re-run to the same end; `--retire`
//! refuses while A holds funds (dust below a transfer's fee) and schedules A's key for
//! deletion once A holds nothing.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use aws_sdk_kms::types::KeyState;
use kms_eth_e2e::{
    balance, deploy_token, funded_account, json_output, key_state, kms, kms_eth, kms_eth_command,
    token_balance, TestKey,
};
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_signer::U256;
use serde_json::json;

/// A second account, B: a fresh key and its address.
async fn account_b() -> (TestKey, String) {
    let key = TestKey::ethereum(&kms().await).await;
    let status = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]));
    let address = status["address"].as_str().unwrap().to_owned();
    (key, address)
}

fn migrate_args<'a>(a: &'a str, b: &'a str, url: &'a str, chain: &'a str) -> Vec<&'a str> {
    vec![
        "account",
        "migrate",
        "--from-key",
        a,
        "--to-key",
        b,
        "--rpc-url",
        url,
        "--chain-id",
        chain,
        "--yes",
        "--json",
    ]
}

/// The fee a mined transaction paid: gas used x effective gas price.
fn fee(url: &str, hash: &str) -> U256 {
    let receipt = rpc(url, "eth_getTransactionReceipt", json!([hash])).unwrap();
    let gas = kms_eth_node::parse_u256(&receipt["gasUsed"]).unwrap();
    let price = kms_eth_node::parse_u256(&receipt["effectiveGasPrice"]).unwrap();
    gas * price
}

#[tokio::test]
async fn a_killed_migration_reruns_to_everything_at_b_and_exactly_zero_wei_at_a() {
    let (a, a_address, node) = funded_account().await;
    let (b, b_address) = account_b().await;
    let supply = U256::from(1_000u64) * U256::from(10u64).pow(U256::from(18u64));
    let token = deploy_token(node.url(), &a_address, supply);
    let native = balance(node.url(), &a_address);
    let chain = node.chain_id().to_string();
    let mut args = migrate_args(&a.id, &b.id, node.url(), &chain);
    args.extend(["--token", &token]);

    // Anvil stops mining: the first transfer is broadcast and waits; the run is killed then.
    rpc(node.url(), "evm_setAutomine", json!([false])).unwrap();
    let mut child = kms_eth_command(&args)
        .into_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the migration ended before sending anything"))
            .unwrap();
        if let Some(rest) = line.strip_prefix("kms-eth: sending ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Killed once the node has the transfer in its pool (it is then out, unmined).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rpc(node.url(), "eth_getTransactionByHash", json!([first]))
        .unwrap()
        .is_null()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{first} never reached the node"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(token_balance(node.url(), &token, &b_address), U256::ZERO);
    rpc(node.url(), "evm_setAutomine", json!([true])).unwrap();
    rpc(node.url(), "evm_mine", json!([])).unwrap();

    // The re-run finds the token moved and sweeps the rest.
    let report = kms_eth_command(&args).json();
    let sent: Vec<String> = report["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 1, "only the sweep is left to send: {report}");
    assert_eq!(balance(node.url(), &a_address), U256::ZERO);
    assert_eq!(report["native_left"], "0");
    assert_eq!(token_balance(node.url(), &token, &a_address), U256::ZERO);
    assert_eq!(token_balance(node.url(), &token, &b_address), supply);
    let fees = fee(node.url(), &first) + fee(node.url(), &sent[0]);
    assert_eq!(balance(node.url(), &b_address), native - fees);

    // A third run has nothing to move and sends nothing.
    let again = kms_eth_command(&args).json();
    assert_eq!(again["transactions"], json!([]));
}

#[tokio::test]
async fn retire_refuses_while_a_holds_funds_and_retires_a_key_that_holds_none() {
    let (a, a_address, node) = funded_account().await;
    let (b, _) = account_b().await;
    let chain = node.chain_id().to_string();
    // 1000 wei: less than any transfer's fee, so it cannot be moved and stays.
    rpc(node.url(), "anvil_setBalance", json!([a_address, "0x3e8"])).unwrap();
    let mut args = migrate_args(&a.id, &b.id, node.url(), &chain);
    args.push("--retire");
    kms_eth_command(&args).fails(1, "it still holds 1000 wei");
    assert_eq!(key_state(&a.id).await, KeyState::Enabled);

    rpc(
        node.url(),
        "anvil_setBalance",
        json!([a_address, "0xde0b6b3a7640000"]),
    )
    .unwrap();
    args.extend(["--days", "7"]);
    let report = kms_eth_command(&args).json();
    assert_eq!(balance(node.url(), &a_address), U256::ZERO);
    assert_eq!(report["retired_key"], a.id.as_str());
    assert_eq!(key_state(&a.id).await, KeyState::PendingDeletion);
}
