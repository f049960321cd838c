//! Nonces under load: concurrent sends from one account take consecutive nonces, and a node
//! restarted under concurrent senders (behind a TCP gate) never gets a transaction twice.

use std::sync::Arc;
use std::time::Duration;

use kms_eth_e2e::served::Served;
use kms_eth_e2e::{funded_account, json_output, kms, kms_eth, nonce, TestKey};
use kms_eth_harness::anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

use super::{receipt, RECIPIENT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_from_one_account_take_consecutive_nonces() {
    let (key, address, node) = funded_account().await;
    let served = Arc::new(Served::unrestricted(node.url(), &key.id));
    const CLIENTS: usize = 16;
    const SENDS: usize = 500;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let served = served.clone();
            let address = address.clone();
            std::thread::spawn(move || {
                (client..SENDS)
                    .step_by(CLIENTS)
                    .map(|_| {
                        served.result(
                            "eth_sendTransaction",
                            json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let hashes: Vec<Value> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(hashes.len(), SENDS);
    let mut nonces: Vec<u64> = hashes
        .iter()
        .map(|hash| {
            let tx = rpc(node.url(), "eth_getTransactionByHash", json!([hash])).unwrap();
            assert!(!tx["blockNumber"].is_null(), "{hash} not mined");
            kms_eth_harness::jsonrpc::quantity(&tx["nonce"]).unwrap()
        })
        .collect();
    nonces.sort_unstable();
    assert_eq!(
        nonces,
        (0..SENDS as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(nonce(node.url(), &address), SENDS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_concurrent_sends_never_gets_a_transaction_twice() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let key = TestKey::ethereum(&kms().await).await;
    let address = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]))["address"]
        .as_str()
        .unwrap()
        .to_owned();
    // `--state`: the node keeps its chain (blocks, receipts) across the restart, as a real
    // node does; what a restart loses is the connections and the requests in flight.
    let state =
        kms_eth_e2e::scratch_dir().join(format!("kms-eth-anvil-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let state_arg = state.to_str().unwrap().to_owned();
    let dir = anvil::test_dir();
    let node = anvil::Anvil::start_with(
        &dir,
        None,
        &["--state", &state_arg],
        Duration::from_secs(60),
    )
    .unwrap();
    rpc(
        node.url(),
        "anvil_setBalance",
        json!([address, "0x56bc75e2d63100000"]),
    )
    .unwrap();
    let port = node.port();
    // The service reaches the node through a gate that is closed for the restart: a node
    // restarting is unreachable for a while. (Straight to anvil, a request that arrived
    // after SIGTERM was answered and mined, but left out of the state anvil had written.)
    let mut gate =
        kms_eth_e2e::tcp_gate::TcpGate::start(format!("127.0.0.1:{port}").parse().unwrap())
            .unwrap();
    let url = gate.url();
    let served = Arc::new(Served::start(&[
        "--rpc-url",
        &url,
        "--key-id",
        &key.id,
        "--unrestricted",
    ]));
    const CLIENTS: usize = 16;
    const SENDS: usize = 200;
    let answered = Arc::new(AtomicUsize::new(0));
    let threads = super::send_concurrently(&served, &address, CLIENTS, SENDS, &answered);
    while answered.load(Ordering::SeqCst) < SENDS / 3 {
        std::thread::sleep(Duration::from_millis(20));
    }
    gate.close(); // the node goes away: connections refused, open ones cut
    std::thread::sleep(Duration::from_millis(300));
    drop(node); // SIGTERM: anvil writes its state and exits
    std::thread::sleep(Duration::from_millis(500));
    let node = anvil::Anvil::start_with(
        &dir,
        Some(port),
        &["--state", &state_arg],
        Duration::from_secs(60),
    )
    .unwrap();
    gate.open().unwrap();
    let replies: Vec<(usize, Value)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let (ok, failed): (Vec<_>, Vec<_>) = replies
        .iter()
        .partition(|(_, reply)| reply.get("result").is_some());
    // Every hash answered is mined on the node.
    for (value, reply) in &ok {
        let tx = rpc(
            node.url(),
            "eth_getTransactionByHash",
            json!([reply["result"]]),
        )
        .unwrap();
        assert!(
            !tx["blockNumber"].is_null(),
            "request {value}: {} answered but not mined",
            reply["result"]
        );
    }
    // Every other request got an error, and no request's transaction is on the chain twice.
    for (value, reply) in &failed {
        assert!(
            reply["error"]["message"].is_string(),
            "request {value}: {reply}"
        );
    }
    // The service goes on with the restarted node: the nonce manager follows its count.
    let after = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": format!("{:#x}", SENDS + 1) }]),
    );
    receipt(node.url(), &after);
    let latest =
        kms_eth_harness::jsonrpc::quantity(&rpc(node.url(), "eth_blockNumber", json!([])).unwrap())
            .unwrap();
    let mut values = Vec::new();
    for number in 1..=latest {
        let block = rpc(
            node.url(),
            "eth_getBlockByNumber",
            json!([format!("{number:#x}"), true]),
        )
        .unwrap();
        for tx in block["transactions"].as_array().unwrap() {
            if tx["from"].as_str().unwrap().eq_ignore_ascii_case(&address) {
                values.push(kms_eth_harness::jsonrpc::quantity(&tx["value"]).unwrap());
            }
        }
    }
    let mined = values.len();
    values.sort_unstable();
    values.dedup();
    assert_eq!(
        values.len(),
        mined,
        "a request's transaction was mined twice"
    );
    assert!(
        mined > ok.len(),
        "{mined} mined, {} answered, latest block {latest}, nonce {}",
        ok.len(),
        nonce(node.url(), &address)
    );
    assert_eq!(
        nonce(node.url(), &address),
        mined as u64,
        "no gap in the nonces"
    );
    eprintln!(
        "node restarted under load: {} answered with a mined hash, {} errors, {mined} mined in all",
        ok.len(),
        failed.len()
    );
    let _ = std::fs::remove_file(&state);
}
