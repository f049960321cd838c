//! Accounts on anvil nodes: a funded KMS account, balances and nonces read from the node,
//! and scripts run with ethers (an independent client).

use crate::command::{json_output, kms_eth};
use crate::keys::TestKey;
use crate::target::kms;

/// A fresh KMS account with 100 ether on a fresh anvil node: the key, its address, the node.
pub async fn funded_account() -> (TestKey, String, kms_eth_harness::anvil::Anvil) {
    use kms_eth_harness::anvil::Anvil;
    let key = TestKey::ethereum(&kms().await).await;
    let status = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]));
    let address = status["address"].as_str().unwrap().to_owned();
    let node = Anvil::start(std::time::Duration::from_secs(60)).unwrap();
    kms_eth_harness::jsonrpc::call(
        node.url(),
        "anvil_setBalance",
        serde_json::json!([address, "0x56bc75e2d63100000"]),
    )
    .unwrap();
    (key, address, node)
}

/// The balance of `address` on the node at `url`, in wei.
pub fn balance(url: &str, address: &str) -> kms_eth_signer::U256 {
    let answer = kms_eth_harness::jsonrpc::call(
        url,
        "eth_getBalance",
        serde_json::json!([address, "latest"]),
    )
    .unwrap();
    kms_eth_node::parse_u256(&answer).unwrap()
}

/// The number of transactions `address` has sent, as the node at `url` counts them.
pub fn nonce(url: &str, address: &str) -> u64 {
    let answer = kms_eth_harness::jsonrpc::call(
        url,
        "eth_getTransactionCount",
        serde_json::json!([address, "latest"]),
    )
    .unwrap();
    kms_eth_harness::jsonrpc::quantity(&answer).unwrap()
}

/// Runs `script` with Node.js, where `require("ethers")` finds the pinned ethers of
/// `chain/`, and returns what it printed as JSON; panics with its stderr (and `context`)
/// if it failed.
pub fn run_ethers(script: &str, context: &str) -> serde_json::Value {
    let output = std::process::Command::new("node")
        .args(["-e", script])
        .env(
            "NODE_PATH",
            kms_eth_harness::anvil::package_dir().join("node_modules"),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ethers: {}\n{context}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
