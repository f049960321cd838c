//! `Nodes` against JSON-RPC servers on loopback started by each test: which node reads go
//! to, failover on no answer (and none on a JSON-RPC error), batched broadcasts, and the
//! chain checks at start and afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::*;

/// What a test node answers, changed by the test while it runs.
#[derive(Debug, Clone)]
struct Behaviour {
    chain: u64,
    block: u64,
    /// Closes every connection without an answer (a node gone).
    silent: bool,
    /// Raw transactions it refuses, with this message.
    refuses: Vec<(String, String)>,
}

/// A JSON-RPC node on 127.0.0.1 (a thread per connection) that records what it is sent.
#[derive(Clone)]
struct TestNode {
    url: String,
    name: String,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Value>>>,
}

impl TestNode {
    fn start(name: &str, chain: u64, block: u64) -> TestNode {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let node = TestNode {
            url: format!("http://{}", listener.local_addr().expect("local address")),
            name: name.to_owned(),
            behaviour: Arc::new(Mutex::new(Behaviour {
                chain,
                block,
                silent: false,
                refuses: Vec::new(),
            })),
            received: Arc::default(),
        };
        let server = node.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.serve(stream));
            }
        });
        node
    }

    fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.behaviour.lock().expect("behaviour"));
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().expect("received").clone()
    }

    /// The requests received of `method` (batches counted entry by entry).
    fn count(&self, method: &str) -> usize {
        self.received()
            .iter()
            .flat_map(|r| r.as_array().cloned().unwrap_or_else(|| vec![r.clone()]))
            .filter(|r| r["method"] == method)
            .count()
    }

    fn node(&self) -> Node {
        Node::new(&self.url).expect("a loopback URL")
    }

    /// Answers the requests of one connection until the client closes it.
    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut stream = stream;
        loop {
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let behaviour = self.behaviour.lock().expect("behaviour").clone();
            if behaviour.silent {
                return;
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            self.received
                .lock()
                .expect("received")
                .push(request.clone());
            let reply = match &request {
                Value::Array(batch) => {
                    Value::Array(batch.iter().map(|r| self.answer(r, &behaviour)).collect())
                }
                one => self.answer(one, &behaviour),
            };
            let body = reply.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).is_err()
                || stream.write_all(body.as_bytes()).is_err()
            {
                return;
            }
        }
    }

    fn answer(&self, request: &Value, behaviour: &Behaviour) -> Value {
        let id = request["id"].clone();
        let result = match request["method"].as_str().unwrap_or_default() {
            "eth_chainId" => json!(format!("{:#x}", behaviour.chain)),
            "eth_getBlockByNumber" => json!({ "number": format!("{:#x}", behaviour.block) }),
            "eth_call" => {
                return json!({ "jsonrpc": "2.0", "id": id,
                    "error": { "code": 3, "message": "execution reverted" } })
            }
            "eth_sendRawTransaction" => {
                let raw = request["params"][0].as_str().unwrap_or_default();
                if let Some((_, message)) = behaviour.refuses.iter().find(|(r, _)| r == raw) {
                    return json!({ "jsonrpc": "2.0", "id": id,
                        "error": { "code": -32000, "message": message } });
                }
                json!(format!("hash of {raw}"))
            }
            _ => json!(format!("answered by {}", self.name)),
        };
        json!({ "jsonrpc": "2.0", "id": id, "result": result })
    }
}

async fn pool(nodes: &[&TestNode]) -> Nodes {
    Nodes::start(nodes.iter().map(|n| n.node()).collect(), Some(7))
        .await
        .expect("the nodes start")
}

#[tokio::test]
async fn reads_go_to_the_highest_node_that_is_in() {
    let a = TestNode::start("a", 7, 5);
    let b = TestNode::start("b", 7, 9);
    let nodes = pool(&[&a, &b]).await;
    let answer = nodes.call("eth_gasPrice", json!([])).await.expect("answer");
    assert_eq!(answer, "answered by b");
    let passed = nodes
        .exchange(&json!({ "jsonrpc": "2.0", "id": 4, "method": "eth_gasPrice", "params": [] }))
        .await
        .expect("answer");
    assert_eq!(passed["result"], "answered by b");
    assert_eq!(passed["id"], 4);
    // A higher block at the next check moves the reads.
    a.set(|b| b.block = 12);
    nodes.check().await;
    let answer = nodes.call("eth_gasPrice", json!([])).await.expect("answer");
    assert_eq!(answer, "answered by a");
    assert_eq!(nodes.failovers(), 0);
}

#[tokio::test]
async fn a_node_without_an_answer_is_failed_over_and_taken_out_until_it_is_back() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 7, 5);
    let nodes = pool(&[&a, &b]).await;
    a.set(|b| b.silent = true);
    let answer = nodes.call("eth_gasPrice", json!([])).await.expect("answer");
    assert_eq!(answer, "answered by b");
    assert_eq!(nodes.failovers(), 1);
    let health = nodes.health();
    assert!(!health[0].up, "{health:?}");
    assert!(health[1].up, "{health:?}");
    // Out: the next read goes straight to b, with no second failover.
    let passed = nodes
        .exchange(&json!({ "jsonrpc": "2.0", "id": 1, "method": "net_version", "params": [] }))
        .await
        .expect("answer");
    assert_eq!(passed["result"], "answered by b");
    assert_eq!(nodes.failovers(), 1);
    // Still gone at the check, then back.
    assert!(!nodes.check().await[0].up);
    a.set(|b| b.silent = false);
    let health = nodes.check().await;
    assert!(health[0].up && health[0].state == "ok", "{health:?}");
    assert_eq!(
        nodes.call("eth_gasPrice", json!([])).await.expect("answer"),
        "answered by a"
    );
}

#[tokio::test]
async fn every_node_without_an_answer_is_the_last_error() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 7, 5);
    let nodes = pool(&[&a, &b]).await;
    a.set(|b| b.silent = true);
    b.set(|b| b.silent = true);
    let err = nodes
        .call("eth_gasPrice", json!([]))
        .await
        .expect_err("nobody answers");
    assert!(err.downcast_ref::<RpcError>().is_none());
    assert!(format!("{err:#}").contains(&b.url), "{err:#}");
    assert!(nodes.health().iter().all(|h| !h.up));
}

#[tokio::test]
async fn a_json_rpc_error_is_an_answer_and_not_failed_over() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 7, 5);
    let nodes = pool(&[&a, &b]).await;
    let err = nodes
        .call("eth_call", json!([{}, "latest"]))
        .await
        .expect_err("reverted");
    let refusal = err.downcast_ref::<RpcError>().expect("the node's error");
    assert_eq!(refusal.code, Some(3));
    assert_eq!(refusal.node, a.node().shown());
    assert_eq!(b.count("eth_call"), 0);
    assert_eq!(nodes.failovers(), 0);
    assert!(nodes.health().iter().all(|h| h.up));
}

#[tokio::test]
async fn a_broadcast_is_one_ordered_batch_to_every_node_in() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 7, 5);
    let c = TestNode::start("c", 7, 5);
    let nodes = pool(&[&a, &b, &c]).await;
    c.set(|b| b.silent = true);
    nodes.check().await;
    let raws = ["0x01", "0x02", "0x03"].map(str::to_owned);
    // a refuses the second, which b accepts: accepted.
    a.set(|b| b.refuses = vec![("0x02".to_owned(), "nonce too low".to_owned())]);
    let results = nodes.broadcast_raw(&raws).await;
    let hashes: Vec<Value> = results.into_iter().map(|r| r.expect("sent")).collect();
    assert_eq!(hashes, ["hash of 0x01", "hash of 0x02", "hash of 0x03"]);
    for node in [&a, &b] {
        let received = node.received();
        let batch = received
            .iter()
            .find(|r| r.is_array())
            .expect("one batch")
            .clone();
        let params: Vec<Value> = batch
            .as_array()
            .expect("batch")
            .iter()
            .map(|r| r["params"][0].clone())
            .collect();
        assert_eq!(params, ["0x01", "0x02", "0x03"], "in the given order");
    }
    assert_eq!(c.count("eth_sendRawTransaction"), 0, "c is out");
}

#[tokio::test]
async fn a_refusal_wins_over_no_answer_and_one_transaction_is_a_plain_request() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 7, 5);
    let nodes = pool(&[&a, &b]).await;
    a.set(|b| b.refuses = vec![("0x02".to_owned(), "insufficient funds".to_owned())]);
    b.set(|b| b.silent = true);
    let results = nodes
        .broadcast_raw(&["0x01".to_owned(), "0x02".to_owned()])
        .await;
    assert_eq!(results[0].as_ref().expect("sent"), "hash of 0x01");
    let err = results[1].as_ref().expect_err("refused");
    let refusal = err.downcast_ref::<RpcError>().expect("a's refusal");
    assert_eq!(refusal.message, "insufficient funds");
    assert!(!nodes.health()[1].up, "b gave no answer: out");
    let one = nodes.broadcast_raw(&["0x03".to_owned()]).await;
    assert_eq!(one[0].as_ref().expect("sent"), "hash of 0x03");
    assert!(a.received().last().expect("sent").is_object());
}

#[tokio::test]
async fn a_node_on_another_chain_is_refused_at_start_by_name() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 8, 9);
    let err = Nodes::start(vec![a.node(), b.node()], Some(7))
        .await
        .expect_err("b is on chain 8");
    let message = format!("{err:#}");
    assert!(err.downcast_ref::<UsageError>().is_some(), "{message}");
    assert!(
        message.contains(&b.url) && message.contains("chain 8"),
        "{message}"
    );
    // Without --chain-id, the nodes must agree among themselves.
    let err = Nodes::start(vec![a.node(), b.node()], None)
        .await
        .expect_err("two chains");
    let message = format!("{err:#}");
    assert!(
        message.contains(&b.url) && message.contains(&a.url),
        "{message}"
    );
    let one = Nodes::start(vec![a.node()], None).await.expect("one node");
    assert_eq!(one.chain_id(), 7);
}

#[tokio::test]
async fn a_node_down_at_start_starts_out_and_one_that_changes_chain_is_taken_out() {
    let a = TestNode::start("a", 7, 9);
    let b = TestNode::start("b", 7, 9);
    b.set(|b| b.silent = true);
    let nodes = pool(&[&a, &b]).await;
    assert!(!nodes.health()[1].up);
    b.set(|b| b.silent = false);
    assert!(nodes.check().await[1].up);
    a.set(|b| b.chain = 1);
    let health = nodes.check().await;
    assert!(!health[0].up);
    assert_eq!(health[0].state, "on chain 1, not 7");
    assert_eq!(
        nodes.call("eth_gasPrice", json!([])).await.expect("answer"),
        "answered by b"
    );
    // None answering at start is an error naming them.
    a.set(|b| b.silent = true);
    b.set(|b| b.silent = true);
    let err = Nodes::start(vec![a.node(), b.node()], Some(7))
        .await
        .expect_err("nobody answers");
    assert!(format!("{err:#}").contains(&a.url), "{err:#}");
}

#[test]
fn two_urls_of_one_host_are_told_apart() {
    let nodes = Nodes::new(
        vec![
            Node::new("https://node.example/v3/KEY1").expect("url"),
            Node::new("https://node.example/v3/KEY2").expect("url"),
        ],
        1,
    )
    .expect("nodes");
    assert_eq!(
        nodes.shown(),
        "https://node.example, https://node.example#2"
    );
    assert!(!nodes.shown().contains("KEY"));
}
