//! What happens to transactions after the broadcast, on anvil with its automatic mining off
//! (blocks come when the test mines them, as on a real chain): one priced below a rising
//! base fee is replaced and mined with no request from anyone, one dropped from the pool is
//! broadcast again, a KMS failure after a nonce was reserved leaves no gap, a speed-up and a
//! cancel through the CLI, and the 24-hour ledger after a replacement.

use std::time::{Duration, Instant};

use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::{balance, funded_account, json_output, kms_eth, kms_eth_command, nonce};
use kms_eth_harness::jsonrpc::{call as rpc, quantity};
use kms_eth_signer::U256;
use serde_json::{json, Value};

use super::proxied::Proxied;
use super::{receipt, write_temp, RECIPIENT};

/// The tracker looks every second and replaces after two blocks.
const FAST_TRACKER: [&str; 4] = ["--track-interval", "1", "--bump-after-blocks", "2"];

/// Waits until the node knows the transaction `hash` again.
fn until_known(node: &str, hash: &Value, what: impl Fn() -> String) {
    until(node, false, what, || {
        !rpc(node, "eth_getTransactionByHash", json!([hash]))
            .unwrap()
            .is_null()
    });
}

/// An unrestricted service whose tracker looks every second and replaces after two blocks.
fn watched(node: &str, key_id: &str) -> Served {
    let mut args = vec!["--rpc-url", node, "--key-id", key_id, "--unrestricted"];
    args.extend(FAST_TRACKER);
    Served::start(&args)
}

fn automine(node: &str, on: bool) {
    rpc(node, "evm_setAutomine", json!([on])).unwrap();
}

fn mine(node: &str, blocks: u64) {
    rpc(node, "anvil_mine", json!([format!("{blocks:#x}")])).unwrap();
}

fn send(served: &Served, from: &str, value: &str) -> Value {
    served.result(
        "eth_sendTransaction",
        json!([{ "from": from, "to": RECIPIENT, "value": value }]),
    )
}

fn status(served: &Served, hash: &Value) -> Value {
    served.result("kmseth_txStatus", json!([hash]))
}

/// Polls `done` every 250 ms, mining a block first if `mining`, for up to 60 s.
fn until(node: &str, mining: bool, what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", what());
        if mining {
            mine(node, 1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A JSON-RPC exchange that waits up to 90 s: a stalled KMS call takes the SDK's 30-second
/// attempt timeout before its retry.
fn patient_exchange(url: &str, request: &Value) -> Value {
    kms_eth_harness::process::http_agent(Duration::from_secs(90))
        .post(url)
        .send_json(request)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// `eth_sendTransaction` of `value` wei under the id `id`, answered on another thread.
fn send_in_background(p: &Proxied, id: &str, value: &str) -> std::thread::JoinHandle<Value> {
    let request = json!({ "jsonrpc": "2.0", "id": id, "method": "eth_sendTransaction",
        "params": [{ "from": p.address, "to": RECIPIENT, "value": value }] });
    let url = p.served.url.clone();
    std::thread::spawn(move || patient_exchange(&url, &request))
}

fn metric(served: &Served, name: &str) -> u64 {
    let (_, body) = raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"").unwrap();
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_priced_below_a_rising_base_fee_is_replaced_and_mined_without_a_request() {
    let (key, address, node) = funded_account().await;
    let served = watched(node.url(), &key.id);
    automine(node.url(), false);
    let received = balance(node.url(), RECIPIENT);
    let hash = send(&served, &address, "0x1234");
    // The base fee jumps to 100 gwei: the transaction's max fee (a few gwei) no longer
    // pays it, and it stays in the pool block after block.
    rpc(
        node.url(),
        "anvil_setNextBlockBaseFeePerGas",
        json!(["0x174876e800"]),
    )
    .unwrap();
    mine(node.url(), 1);
    let replaced = |s: &Value| s["hashes"].as_array().map_or(0, Vec::len) >= 2;
    until(
        node.url(),
        true,
        || {
            format!(
                "no replacement: {}\n{}",
                status(&served, &hash),
                served.log()
            )
        },
        || replaced(&status(&served, &hash)),
    );
    until(
        node.url(),
        true,
        || "the replacement was not mined".to_owned(),
        || status(&served, &hash)["status"] == "mined",
    );
    let done = status(&served, &hash);
    let mined = done["mined"].clone();
    assert_ne!(mined, hash, "{done}");
    assert_eq!(receipt(node.url(), &mined)["status"], "0x1");
    assert!(rpc(node.url(), "eth_getTransactionReceipt", json!([hash]))
        .unwrap()
        .is_null());
    assert_eq!(nonce(node.url(), &address), 1);
    assert_eq!(
        balance(node.url(), RECIPIENT) - received,
        U256::from(0x1234),
        "paid once"
    );
    assert!(metric(&served, "kms_eth_replacements_total") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_from_the_pool_is_broadcast_again() {
    let (key, address, node) = funded_account().await;
    let served = watched(node.url(), &key.id);
    automine(node.url(), false);
    let hash = send(&served, &address, "0x99");
    rpc(node.url(), "anvil_dropTransaction", json!([hash])).unwrap();
    assert!(rpc(node.url(), "eth_getTransactionByHash", json!([hash]))
        .unwrap()
        .is_null());
    until_known(node.url(), &hash, || "not broadcast again".to_owned());
    mine(node.url(), 1);
    assert_eq!(receipt(node.url(), &hash)["status"], "0x1");
    assert_eq!(nonce(node.url(), &address), 1);
    assert!(metric(&served, "kms_eth_rebroadcasts_total") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kms_failure_after_a_nonce_was_reserved_leaves_no_gap() {
    let p = Proxied::start(&FAST_TRACKER).await;
    let node = p.node.url().to_owned();
    // A's signature stalls (its nonce, 0, reserved); B takes nonce 1, is signed, and waits
    // for 0 to be broadcast first.
    p.kms_proxy.stall_next_signs(1);
    let first = send_in_background(&p, "a", "0xa");
    until(
        &node,
        false,
        || "A's Sign never arrived".to_owned(),
        || p.signs() >= 1,
    );
    let second = send_in_background(&p, "b", "0xb");
    until(
        &node,
        false,
        || "B's Sign never arrived".to_owned(),
        || p.signs() >= 2,
    );
    std::thread::sleep(Duration::from_millis(500));
    // A's retry (after the SDK's attempt timeout) gets a signature that is not the key's:
    // A fails after its nonce was reserved.
    p.kms_proxy.tamper_signatures(true);
    let first = first.join().unwrap();
    p.kms_proxy.tamper_signatures(false);
    assert!(first["error"].is_object(), "A was signed: {first}");
    let second = second.join().unwrap();
    let hash_b = second
        .get("result")
        .unwrap_or_else(|| panic!("{second}\n{}", p.served.log()))
        .clone();
    let mined_b = receipt(&node, &hash_b);
    let tx_b = rpc(&node, "eth_getTransactionByHash", json!([hash_b])).unwrap();
    assert_eq!(quantity(&tx_b["nonce"]).unwrap(), 1, "{tx_b}");
    assert_eq!(mined_b["status"], "0x1");
    // Nonce 0 was filled by the service: a transfer of nothing to the account itself.
    assert_eq!(nonce(&node, &p.address), 2, "a gap at nonce 0");
    let block = rpc(&node, "eth_getBlockByNumber", json!(["0x1", true])).unwrap();
    let filler = block["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tx| tx["nonce"] == "0x0")
        .cloned()
        .unwrap_or_else(|| panic!("nonce 0 is not in block 1: {block}"));
    assert!(filler["to"]
        .as_str()
        .unwrap()
        .eq_ignore_ascii_case(&p.address));
    assert_eq!(filler["value"], "0x0");
    assert_eq!(metric(&p.served, "kms_eth_gaps_filled_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speed_up_and_a_cancel_through_the_cli() {
    let (key, address, node) = funded_account().await;
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--track-interval",
        "1",
        // The tracker would replace them itself after that many blocks.
        "--bump-after-blocks",
        "1000",
    ]);
    automine(node.url(), false);
    let received = balance(node.url(), RECIPIENT);
    let first = send(&served, &address, "0x1000");
    let second = send(&served, &address, "0x2000");
    let first_hash = first.as_str().unwrap();

    let sped = json_output(&kms_eth(&[
        "tx",
        "speed-up",
        first_hash,
        "--url",
        &served.url,
        "--bump",
        "20%",
        "--json",
    ]));
    assert_eq!(sped["status"], "replaced", "{sped}");
    assert_eq!(sped["nonce"], 0);
    let faster = sped["hash"].clone();
    assert_ne!(faster, first);
    let cancelled = json_output(&kms_eth(&[
        "tx",
        "cancel",
        "--nonce",
        "1",
        "--url",
        &served.url,
        "--json",
    ]));
    assert_eq!(cancelled["nonce"], 1, "{cancelled}");
    let cancel = cancelled["hash"].clone();
    mine(node.url(), 1);
    assert_eq!(receipt(node.url(), &faster)["status"], "0x1");
    assert_eq!(receipt(node.url(), &cancel)["status"], "0x1");
    for replaced in [&first, &second] {
        assert!(
            rpc(node.url(), "eth_getTransactionReceipt", json!([replaced]))
                .unwrap()
                .is_null()
        );
    }
    assert_eq!(
        balance(node.url(), RECIPIENT) - received,
        U256::from(0x1000),
        "the cancelled transfer never happened"
    );
    // Once the tracker has seen it mined, it says so, and refuses to speed it up.
    until(
        node.url(),
        false,
        || "never seen mined".to_owned(),
        || {
            let shown = json_output(&kms_eth(&[
                "tx",
                "status",
                first_hash,
                "--url",
                &served.url,
                "--json",
            ]));
            shown["status"] == "mined" && shown["mined_hash"] == faster
        },
    );
    kms_eth_command(&["tx", "speed-up", first_hash, "--url", &served.url])
        .usage_error("already mined");
    // Below the node's replacement minimum, and a hash that is not one.
    kms_eth_command(&[
        "tx",
        "speed-up",
        first_hash,
        "--url",
        &served.url,
        "--bump",
        "5%",
    ])
    .usage_error("10 %");
    kms_eth_command(&["tx", "status", "0x1234", "--url", &served.url]).usage_error("64 hex digits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_counts_once_in_the_24_hour_ledger_at_its_costliest_version() {
    let (key, address, node) = funded_account().await;
    let state =
        kms_eth_e2e::scratch_dir().join(format!("ledger-replacement-{}", std::process::id()));
    let policy = write_temp(
        "replacement-policy.toml",
        &format!(
            "[[account]]\naddress = \"{address}\"\nchain_ids = [{}]\nmax_cost_per_24h = \"1ether\"\n",
            node.chain_id()
        ),
    );
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--policy",
        policy.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--bump-after-blocks",
        "1000",
    ]);
    automine(node.url(), false);
    let hash = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x100",
                 "gas": "0x5208", "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x3b9aca00" }]),
    );
    let spent = || -> U256 {
        let ledger: Value =
            serde_json::from_str(&std::fs::read_to_string(state.join("spend.json")).unwrap())
                .unwrap();
        ledger[&address]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["wei"].as_str().unwrap().parse::<U256>().unwrap())
            .fold(U256::ZERO, |a, b| a + b)
    };
    // 21000 gas x 2 gwei + 0x100.
    let first = U256::from(21_000u64 * 2_000_000_000 + 0x100);
    assert_eq!(spent(), first);
    let sped = served.result("kmseth_speedUp", json!([hash, { "bump": "50%" }]));
    // The replacement's worst case (its gas at its max fee, and the value) is what the
    // ledger holds, not the sum of both versions.
    let replacement = rpc(
        node.url(),
        "eth_getTransactionByHash",
        json!([sped["hash"]]),
    )
    .unwrap();
    let max_fee = quantity(&replacement["maxFeePerGas"]).unwrap();
    assert!(max_fee >= 3_000_000_000, "{replacement}");
    let second = U256::from(21_000u64) * U256::from(max_fee) + U256::from(0x100);
    assert_eq!(spent(), second, "{sped}");
    mine(node.url(), 1);
    assert_eq!(receipt(node.url(), &sped["hash"])["status"], "0x1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_watching_and_never_gives_a_tracked_nonce_again() {
    let (key, address, node) = funded_account().await;
    let state = kms_eth_e2e::scratch_dir().join(format!("restart-tracker-{}", std::process::id()));
    let state = state.to_str().unwrap().to_owned();
    let mut args = vec![
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--state-dir",
        &state,
    ];
    args.extend(FAST_TRACKER);
    let mut served = Served::start(&args);
    automine(node.url(), false);
    let first = send(&served, &address, "0x111");
    served.stop_in_place();
    // While the service is down the node forgets the transaction: its pending count is 0
    // again, and only the service's own file says nonce 0 is spent.
    rpc(node.url(), "anvil_dropTransaction", json!([first])).unwrap();
    assert_eq!(
        quantity(
            &rpc(
                node.url(),
                "eth_getTransactionCount",
                json!([address, "pending"])
            )
            .unwrap()
        )
        .unwrap(),
        0
    );
    let served = Served::start(&args);
    let second = send(&served, &address, "0x222");
    let tx = rpc(node.url(), "eth_getTransactionByHash", json!([second])).unwrap();
    assert_eq!(
        quantity(&tx["nonce"]).unwrap(),
        1,
        "nonce 0 given again: {tx}"
    );
    // The restarted tracker broadcasts the first again; both are mined, in order.
    until_known(node.url(), &first, || {
        format!("the first was not broadcast again\n{}", served.log())
    });
    mine(node.url(), 1);
    assert_eq!(receipt(node.url(), &first)["status"], "0x1");
    assert_eq!(receipt(node.url(), &second)["status"], "0x1");
    assert_eq!(nonce(node.url(), &address), 2);
}
