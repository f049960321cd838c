//! Several `serve` replicas sharing one real Redis-protocol store (`--state redis://...`):
//! 300 concurrent sends spread over three replicas take consecutive nonces, none twice; the
//! 24-hour cap raced from three replicas stops exactly at it; a store killed under load
//! stops every signature with a clear error and the replicas resume without a gap or a
//! reuse; a replica killed between its reservation and its broadcast leaves a nonce that
//! another replica fills once the lease runs out; a store behind TLS with a password from a
//! file (a wrong one refused, neither ever printed, and none accepted in the URL).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::raw_http::readyz_until;
use kms_eth_e2e::served::Served;
use kms_eth_e2e::store::{
    redis_call, redis_server, redis_server_with, redis_server_with_password, RedisOptions,
    RedisReply,
};
use kms_eth_e2e::tls_proxy::TlsProxy;
use kms_eth_e2e::{funded_account, kms_eth_command, localstack_endpoint, nonce};
use kms_eth_harness::jsonrpc::{call as rpc, quantity};
use serde_json::{json, Value};

use super::{receipt, write_temp, RECIPIENT};

/// `count` replicas of an unrestricted service for `key_id` on the store at `store`.
fn replicas(
    count: usize,
    node: &str,
    key_id: &str,
    store: &str,
    extra: &[&str],
) -> Vec<Arc<Served>> {
    (0..count)
        .map(|_| {
            let mut args = vec!["--rpc-url", node, "--key-id", key_id, "--state", store];
            args.extend(extra);
            Arc::new(Served::start(&args))
        })
        .collect()
}

/// One eth_sendTransaction per entry of `values`, all at once, the i-th to replica i mod n,
/// with `fields` added to each; the replies in order.
fn send_at_once(replicas: &[Arc<Served>], from: &str, values: &[u64], fields: Value) -> Vec<Value> {
    let threads: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let served = replicas[i % replicas.len()].clone();
            let mut tx = json!({ "from": from, "to": RECIPIENT, "value": format!("{value:#x}") });
            for (name, field) in fields.as_object().into_iter().flatten() {
                tx[name] = field.clone();
            }
            std::thread::spawn(move || served.call("eth_sendTransaction", json!([tx])))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The nonces of the mined transactions `hashes` (each checked mined and successful).
fn mined_nonces(node: &str, hashes: &[Value]) -> Vec<u64> {
    hashes
        .iter()
        .map(|hash| {
            assert_eq!(receipt(node, hash)["status"], "0x1", "{hash}");
            let tx = rpc(node, "eth_getTransactionByHash", json!([hash])).unwrap();
            quantity(&tx["nonce"]).unwrap()
        })
        .collect()
}

/// Waits until `served`'s /readyz says 503 because of its store (a check made after the
/// store failed), and answers that report.
fn store_not_ready(served: &Served) -> Value {
    let started = Instant::now();
    loop {
        let report = readyz_until(&served.address, &[], 503, Duration::from_secs(30));
        if report["store"].as_str().is_some_and(|s| s != "ok") {
            return report;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{report}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metrics(served: &Served) -> String {
    kms_eth_e2e::served::raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"")
        .unwrap()
        .1
}

fn logs(replicas: &[Arc<Served>]) -> String {
    replicas
        .iter()
        .map(|r| r.log())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_store_give_300_concurrent_sends_consecutive_nonces() {
    let (key, address, node) = funded_account().await;
    let store = redis_server();
    let replicas = replicas(3, node.url(), &key.id, &store.url(), &["--unrestricted"]);
    let values: Vec<u64> = (1..=300).collect();
    let replies = send_at_once(&replicas, &address, &values, json!({}));
    let hashes: Vec<Value> = replies
        .iter()
        .map(|reply| {
            reply
                .get("result")
                .cloned()
                .unwrap_or_else(|| panic!("{reply}\n{}", logs(&replicas)))
        })
        .collect();
    let nonces: BTreeSet<u64> = mined_nonces(node.url(), &hashes).into_iter().collect();
    // 300 transactions, 300 different nonces, and nothing else from the account.
    assert_eq!(nonces, (0..300).collect::<BTreeSet<u64>>());
    assert_eq!(nonce(node.url(), &address), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_24_hour_cap_raced_from_three_replicas_stops_exactly_at_it() {
    let (key, address, node) = funded_account().await;
    let store = redis_server();
    // Each transfer can cost 0.01 ether + 21000 gas x 2 gwei = 0.010042 ether: the cap
    // holds exactly five.
    let policy = write_temp(
        "replicas-cap.toml",
        &format!(
            "[[account]]\naddress = \"{address}\"\nchain_ids = [{}]\nmax_cost_per_24h = \"0.05021ether\"\n",
            node.chain_id()
        ),
    );
    let policy = policy.to_str().unwrap();
    let replicas = replicas(3, node.url(), &key.id, &store.url(), &["--policy", policy]);
    let fields = json!({ "gas": "0x5208", "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x3b9aca00" });
    let values = vec![10_000_000_000_000_000u64; 15];
    let replies = send_at_once(&replicas, &address, &values, fields);
    let sent: Vec<Value> = replies
        .iter()
        .filter_map(|r| r.get("result").cloned())
        .collect();
    let refused: Vec<&Value> = replies
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert_eq!(sent.len(), 5, "{replies:#?}\n{}", logs(&replicas));
    for reply in &refused {
        assert_eq!(reply["error"]["code"], -32003, "{reply}");
        assert!(reply.to_string().contains("max_cost_per_24h"), "{reply}");
    }
    mined_nonces(node.url(), &sent);
    assert_eq!(nonce(node.url(), &address), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_killed_under_load_stops_every_signature_and_the_replicas_resume_without_a_gap() {
    let (key, address, node) = funded_account().await;
    let mut store = redis_server_with(&RedisOptions {
        append_only: true,
        ..RedisOptions::default()
    });
    let kms = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let replicas = replicas(
        2,
        node.url(),
        &key.id,
        &store.url(),
        &[
            "--unrestricted",
            "--endpoint-url",
            kms.endpoint(),
            "--readiness-interval",
            "1",
            "--track-interval",
            "1",
            "--lease",
            "10",
        ],
    );
    let (mut hashes, mut not_sent) = (Vec::new(), Vec::new());
    let before: Vec<u64> = (1..=20).collect();
    for reply in send_at_once(&replicas, &address, &before, json!({})) {
        hashes.push(reply["result"].clone());
    }
    // The store dies while requests are in flight.
    let during: Vec<u64> = (21..=60).collect();
    let load = {
        let (replicas, address) = (replicas.clone(), address.clone());
        std::thread::spawn(move || send_at_once(&replicas, &address, &during, json!({})))
    };
    std::thread::sleep(Duration::from_millis(100));
    store.kill().unwrap();
    for reply in load.join().unwrap() {
        match reply.get("result") {
            Some(hash) => hashes.push(hash.clone()),
            None => {
                // Refused for the store, or not broadcast because the outage kept it past
                // three quarters of its lease: either way the client is told.
                let text = reply.to_string();
                assert!(
                    text.contains("state store") || text.contains("was not broadcast"),
                    "{reply}"
                );
                // "Nothing was sent" must stay true: such a transaction is never mined.
                let message = reply["error"]["message"].as_str().unwrap_or_default();
                if message.contains("was not broadcast") {
                    let at = message.find("0x").unwrap();
                    not_sent.push(message[at..at + 66].to_owned());
                }
            }
        }
    }
    // While it is down: every request refused, saying why, and KMS not asked.
    let signs = kms.counts("Sign").attempts();
    for reply in send_at_once(&replicas, &address, &[61, 62, 63, 64], json!({})) {
        assert_eq!(reply["error"]["code"], -32000, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("state store") && message.contains("Nothing was signed"),
            "{reply}"
        );
    }
    assert_eq!(
        kms.counts("Sign").attempts(),
        signs,
        "a signature while the store was down"
    );
    store_not_ready(&replicas[0]);
    assert!(metrics(&replicas[0]).contains("kms_eth_store_up 0"));
    store.restart().unwrap();
    for replica in &replicas {
        readyz_until(&replica.address, &[], 200, Duration::from_secs(30));
    }
    assert!(metrics(&replicas[1]).contains("kms_eth_store_up 1"));
    let after: Vec<u64> = (101..=120).collect();
    for reply in send_at_once(&replicas, &address, &after, json!({})) {
        hashes.push(
            reply
                .get("result")
                .cloned()
                .unwrap_or_else(|| panic!("{reply}\n{}", logs(&replicas))),
        );
    }
    let nonces = mined_nonces(node.url(), &hashes);
    let distinct: BTreeSet<u64> = nonces.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        nonces.len(),
        "a nonce used twice: {nonces:?}"
    );
    // No gap: whatever reservations the outage left are filled, and nothing waits behind
    // a missing nonce.
    let started = Instant::now();
    loop {
        let mined = nonce(node.url(), &address);
        let pending = quantity(
            &rpc(
                node.url(),
                "eth_getTransactionCount",
                json!([address, "pending"]),
            )
            .unwrap(),
        )
        .unwrap();
        let holes_left = rpc(node.url(), "txpool_content", json!([]))
            .map(|pool| pool["queued"].as_object().is_some_and(|q| !q.is_empty()))
            .unwrap_or(false);
        if mined == pending && !holes_left && distinct.iter().all(|n| *n < mined) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "transactions wait behind a gap: mined {mined}, pending {pending}\n{}",
            logs(&replicas)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for hash in not_sent {
        let tx = rpc(node.url(), "eth_getTransactionByHash", json!([hash])).unwrap();
        assert!(
            tx.is_null(),
            "answered \"nothing was sent\" but the node has it: {tx}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_between_reservation_and_broadcast_leaves_a_gap_another_fills() {
    let (key, address, node) = funded_account().await;
    let store = redis_server();
    let kms = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let fast = ["--unrestricted", "--track-interval", "1", "--lease", "3"];
    let mut a_args = fast.to_vec();
    a_args.extend(["--endpoint-url", kms.endpoint()]);
    let doomed = replicas(1, node.url(), &key.id, &store.url(), &a_args).remove(0);
    let survivor = replicas(1, node.url(), &key.id, &store.url(), &fast).remove(0);
    // A reserves nonce 0 and hangs in KMS; then it dies.
    kms.stall_next_signs(1);
    let stuck = {
        let (doomed, address) = (doomed.clone(), address.clone());
        std::thread::spawn(move || {
            doomed.call(
                "eth_sendTransaction",
                json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
            )
        })
    };
    let started = Instant::now();
    while kms.counts("Sign").attempts() < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "A's Sign never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    doomed.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = stuck.join();
    let killed = Instant::now();
    // B goes on: its transactions take the nonces after A's, and wait in the node's pool
    // for nonce 0.
    let mut hashes = Vec::new();
    for value in 2..=4u64 {
        let reply = survivor.call(
            "eth_sendTransaction",
            json!([{ "from": address, "to": RECIPIENT, "value": format!("{value:#x}") }]),
        );
        hashes.push(
            reply
                .get("result")
                .cloned()
                .unwrap_or_else(|| panic!("{reply}\n{}", survivor.log())),
        );
    }
    // Within the lease (3 s) and a look of the tracker, B fills nonce 0 and all are mined.
    while nonce(node.url(), &address) < 4 {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "nonce 0 was never filled\n{}",
            survivor.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // B's three, on three nonces of the four; nonce 0 is B's own only if its first request
    // came after the lease ran out and took the hole itself.
    let ours: BTreeSet<u64> = mined_nonces(node.url(), &hashes).into_iter().collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    assert!(ours.iter().all(|n| *n < 4), "{ours:?}");
    if ours.contains(&0) {
        return;
    }
    let head = quantity(&rpc(node.url(), "eth_blockNumber", json!([])).unwrap()).unwrap();
    let block_txs = (0..=head)
        .filter_map(|n| {
            rpc(
                node.url(),
                "eth_getBlockByNumber",
                json!([format!("{n:#x}"), true]),
            )
            .ok()
        })
        .flat_map(|block| {
            block["transactions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect::<Vec<_>>();
    let filler = block_txs
        .iter()
        .find(|tx| {
            tx["nonce"] == "0x0"
                && tx["from"]
                    .as_str()
                    .is_some_and(|f| f.eq_ignore_ascii_case(&address))
        })
        .unwrap_or_else(|| panic!("no nonce 0 from the account: {block_txs:#?}"));
    assert!(
        filler["to"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&address),
        "{filler}"
    );
    assert_eq!(filler["value"], "0x0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reaches_its_store_over_tls_with_a_password_never_in_the_url() {
    let (key, address, node) = funded_account().await;
    let password = "store-password-for-this-test-only";
    let (store, password_file) = redis_server_with_password(password);
    let tls = TlsProxy::start(store.port());
    let url = format!("rediss://localhost:{}/0", tls.port());
    let ca = tls.ca_file().to_str().unwrap().to_owned();
    let base = [
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--state",
        &url,
        "--state-password-file",
        password_file.to_str().unwrap(),
    ]);
    let served = Served::start_with_env(&args, &[("SSL_CERT_FILE", &ca)]);
    let hash = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
    );
    assert_eq!(receipt(node.url(), &hash)["status"], "0x1");
    // The nonce was counted in the store, through TLS.
    let next = format!("kms-eth:{{{}:{address}}}:next", node.chain_id());
    assert_eq!(
        redis_call(&store, Some(password), &["GET", &next]),
        RedisReply::Bulk(Some(b"1".to_vec())),
    );
    // A wrong password from the environment: refused, said, and never printed.
    let wrong = "not-the-store-password";
    let mut args = base.to_vec();
    args.extend(["--state", &url, "--readiness-interval", "1"]);
    let refused = Served::start_with_env(
        &args,
        &[("SSL_CERT_FILE", &ca), ("KMS_ETH_STATE_PASSWORD", wrong)],
    );
    let reply = refused.call(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x2" }]),
    );
    assert_eq!(reply["error"]["code"], -32000, "{reply}");
    assert!(reply.to_string().contains("state store"), "{reply}");
    store_not_ready(&refused);
    for log in [served.log(), refused.log()] {
        assert!(!log.contains(password) && !log.contains(wrong), "{log}");
    }
    // A password in the URL is refused before anything starts.
    kms_eth_command(&[
        "serve",
        "--rpc-url",
        node.url(),
        "--chain-id",
        &node.chain_id().to_string(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--state",
        &format!("rediss://:{password}@localhost:{}/0", tls.port()),
    ])
    .usage_error("--state-password-file");
}
