//! `kms-eth serve` end to end: real clients (cast, ethers) sending through it to anvil, a
//! sponsored EIP-7702 delegation, the policy refusing before KMS is asked (KMS calls counted
//! by the fault proxy), a lying node's fee suggestions above --fee-cap, hostile requests,
//! concurrent sends from one account, several nodes for one chain (failover, a node on
//! another chain refused), tag discovery, health and metrics; broadcasts whose
//! outcome a lying node hides, the methods that reach the node, typed data under every
//! name, checksums, the chain pinned at start; web pages' requests (raw and in a real
//! browser) and the other edges (readiness, the token, slow bodies). One file per job; the
//! constants and helpers they share are here.

use std::time::Duration;

use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

mod broadcasts;
mod browser;
mod chain_pin;
mod clients;
mod discovery;
mod edges;
mod effects;
mod guarded;
mod hostile;
mod lifecycle;
mod lying_node;
mod nodes;
mod nonces;
mod policy;
mod proxied;
mod replicas;
mod requests;
mod routes;
mod token_effects;

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const OTHER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let path = kms_eth_e2e::scratch_dir().join(format!("kms-eth-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// `sends` eth_sendTransaction requests from `address` by `clients` threads at once, each
/// with its own value (its number, from 1: a transaction sent twice would show), counted in
/// `answered` as they are answered. Each thread returns its (value, reply) pairs.
fn send_concurrently(
    served: &std::sync::Arc<kms_eth_e2e::served::Served>,
    address: &str,
    clients: usize,
    sends: usize,
    answered: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Vec<(usize, Value)>>> {
    (0..clients)
        .map(|client| {
            let (served, address, answered) = (served.clone(), address.to_owned(), answered.clone());
            std::thread::spawn(move || {
                (client..sends)
                    .step_by(clients)
                    .map(|index| {
                        let reply = served.call(
                            "eth_sendTransaction",
                            json!([{ "from": address, "to": RECIPIENT, "value": format!("{:#x}", index + 1) }]),
                        );
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        (index + 1, reply)
                    })
                    .collect()
            })
        })
        .collect()
}

/// The receipt of `hash`, once mined (anvil mines at once).
fn receipt(node: &str, hash: &Value) -> Value {
    for _ in 0..100 {
        let receipt = rpc(node, "eth_getTransactionReceipt", json!([hash])).unwrap();
        if !receipt.is_null() {
            return receipt;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{hash} was not mined")
}
