//! Several nodes for one chain (`--rpc-url` repeated): one anvil reached by two URLs (a
//! node proxy each, one behind a TCP gate), the one carrying the load killed under 16
//! concurrent senders while the other carries on with no error to any client; `/readyz` and
//! `/metrics` following each node out and back in, and out again when it answers for another
//! chain; a node on another chain refused at start by its URL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_eth_e2e::node_proxy::{Lie, NodeProxy};
use kms_eth_e2e::raw_http::readyz_until;
use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::tcp_gate::TcpGate;
use kms_eth_e2e::{funded_account, kms_eth_command, nonce};
use kms_eth_harness::anvil;
use kms_eth_harness::jsonrpc::{call as rpc, quantity};
use serde_json::{json, Value};

use super::RECIPIENT;

/// `/readyz` once `nodes[index]` says `up` is `up`, waiting at most 30 s.
fn node_until(served: &Served, index: usize, up: bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, body) = raw_request(&served.address, "GET /readyz HTTP/1.1", &[], b"").unwrap();
        let report: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if report["nodes"][index]["up"] == up {
            return report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node {index} not up={up} in /readyz: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metrics(served: &Served) -> String {
    raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"")
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_leaves_the_other_to_carry_on_with_no_client_error() {
    let (key, address, node) = funded_account().await;
    // Both URLs reach the same anvil. The first claims a far higher block, so that it is
    // the healthiest and carries every call until it is killed (its gate closed: new
    // connections refused, open ones cut mid-request).
    let first = NodeProxy::start(node.url()).await.unwrap();
    first.lie(
        "eth_getBlockByNumber",
        Lie::Rewrite("number", json!("0xffffff")),
    );
    let mut gate =
        TcpGate::start(first.url().trim_start_matches("http://").parse().unwrap()).unwrap();
    let second = NodeProxy::start(node.url()).await.unwrap();
    let gate_url = gate.url();
    let served = Arc::new(Served::start(&[
        "--rpc-url",
        &gate_url,
        "--rpc-url",
        second.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--readiness-interval",
        "1",
    ]));
    let ready = readyz_until(&served.address, &[], 200, Duration::from_secs(60));
    assert_eq!(ready["nodes"][0]["url"], gate_url, "{ready}");
    assert_eq!(ready["nodes"][1]["url"], second.url(), "{ready}");
    assert_eq!(ready["nodes"][1]["up"], true, "{ready}");
    const CLIENTS: usize = 16;
    const SENDS: usize = 160;
    let answered = Arc::new(AtomicUsize::new(0));
    let threads = super::send_concurrently(&served, &address, CLIENTS, SENDS, &answered);
    while answered.load(Ordering::SeqCst) < SENDS / 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Broadcasts go to every node.
    assert!(first.calls("eth_sendRawTransaction") > 0);
    let before = second.calls("eth_sendRawTransaction");
    assert!(before > 0, "broadcast to every node");
    gate.close();
    let replies: Vec<(usize, Value)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // No client heard of the kill: every request answered a hash, each mined.
    let mut nonces = Vec::new();
    for (value, reply) in &replies {
        let hash = reply
            .get("result")
            .unwrap_or_else(|| panic!("request {value}: {reply}\n{}", served.log()));
        let tx = rpc(node.url(), "eth_getTransactionByHash", json!([hash])).unwrap();
        assert!(
            !tx["blockNumber"].is_null(),
            "request {value}: {hash} not mined"
        );
        assert_eq!(quantity(&tx["value"]).unwrap(), *value as u64);
        nonces.push(quantity(&tx["nonce"]).unwrap());
    }
    nonces.sort_unstable();
    assert_eq!(
        nonces,
        (0..SENDS as u64).collect::<Vec<_>>(),
        "no gap, none twice"
    );
    assert_eq!(nonce(node.url(), &address), SENDS as u64);
    assert!(
        second.calls("eth_sendRawTransaction") > before,
        "the second node carried on"
    );
    // Out in /readyz (still ready: the other is in) and in the metrics.
    let report = node_until(&served, 0, false);
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["node"], "ok", "{report}");
    let text = metrics(&served);
    assert!(
        text.contains(&format!("kms_eth_node_up{{node=\"{gate_url}\"}} 0")),
        "{text}"
    );
    assert!(
        text.contains(&format!("kms_eth_node_up{{node=\"{}\"}} 1", second.url())),
        "{text}"
    );
    let failovers = text
        .lines()
        .find_map(|line| line.strip_prefix("kms_eth_node_failovers_total "))
        .and_then(|count| count.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no failover counter: {text}"));
    assert!(failovers >= 1, "{text}");
    // Back in once it answers again; out again when it answers for another chain.
    gate.open().unwrap();
    let report = node_until(&served, 0, true);
    assert_eq!(report["nodes"][0]["state"], "ok", "{report}");
    first.lie("eth_chainId", Lie::Answer(json!("0x1")));
    let report = node_until(&served, 0, false);
    assert_eq!(
        report["nodes"][0]["state"],
        format!("on chain 1, not {}", node.chain_id()),
        "{report}"
    );
    // Reads and sends go on through the node that is in.
    let hash = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
    );
    super::receipt(node.url(), &hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_chain_is_refused_at_start_by_its_url() {
    let (key, _address, node) = funded_account().await;
    let elsewhere = anvil::Anvil::start_with(
        &anvil::test_dir(),
        None,
        &["--chain-id", "4242"],
        Duration::from_secs(60),
    )
    .unwrap();
    let chain = node.chain_id().to_string();
    // The refused start listens on a port already taken: a start that went past its check
    // would fail there, with another message.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let args = [
        "serve",
        "--listen",
        &listen,
        "--rpc-url",
        node.url(),
        "--rpc-url",
        elsewhere.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--chain-id",
        &chain,
    ];
    let message = format!(
        "the node at {} is on chain 4242, not {chain}",
        elsewhere.url()
    );
    kms_eth_command(&args).usage_error(&message);
}
