//! Broadcasts whose outcome the node hides (the lying-node proxy in front of anvil): a
//! node that accepts a transaction and answers "nonce too low", one whose pending count
//! lags, one that goes silent after accepting, and one too slow for the request's time.
//! Each leaves exactly one transaction mined per request (nonces, balances and receipts read
//! back from anvil, KMS `Sign` calls counted by the fault proxy) and the client an answer
//! that names the hash, under the request's own id.

use std::time::Duration;

use kms_eth_e2e::node_proxy::Lie;
use kms_eth_e2e::{balance, nonce};
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_signer::U256;
use serde_json::{json, Value};

use super::proxied::Proxied;
use super::{receipt, RECIPIENT};

const ONE_ETHER: &str = "0xde0b6b3a7640000";

/// The reply to `eth_sendTransaction` of `value` wei to RECIPIENT (with `extra` fields),
/// under the request id `id`.
fn send(proxied: &Proxied, id: Value, value: &str, extra: Value) -> Value {
    let mut tx = json!({ "from": proxied.address, "to": RECIPIENT, "value": value });
    tx.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    proxied.call(id, "eth_sendTransaction", json!([tx]))
}

/// The node's transaction `hash`, which must be mined, and its nonce.
fn mined_nonce(node: &str, hash: &Value) -> u64 {
    assert_eq!(receipt(node, hash)["status"], "0x1", "{hash}");
    let tx = rpc(node, "eth_getTransactionByHash", json!([hash])).unwrap();
    kms_eth_harness::jsonrpc::quantity(&tx["nonce"]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_the_node_accepted_but_answered_nonce_too_low_is_not_signed_again() {
    let p = Proxied::start(&[]).await;
    let (node, address, node_proxy, served) = (&p.node, &p.address, &p.node_proxy, &p.served);
    let received = balance(node.url(), RECIPIENT);
    // The node takes the transaction (anvil mines it), then says it did not.
    node_proxy.lie(
        "eth_sendRawTransaction",
        Lie::ActThenRefuse(-32000, "nonce too low"),
    );
    let reply = send(&p, json!(11), ONE_ETHER, json!({}));
    assert_eq!(reply["id"], 11, "{reply}");
    let hash = reply
        .get("result")
        .unwrap_or_else(|| panic!("{reply}\n{}", served.log()));
    assert_eq!(mined_nonce(node.url(), hash), 0);
    assert_eq!(p.signs(), 1, "signed again");
    assert_eq!(node_proxy.calls("eth_sendRawTransaction"), 1);
    assert_eq!(nonce(node.url(), address), 1, "one transaction mined");
    assert_eq!(
        balance(node.url(), RECIPIENT) - received,
        U256::from(10u64).pow(U256::from(18u64)),
        "exactly 1 ether left the account"
    );
    // The next send follows on: the nonce manager counted the one the node denied.
    node_proxy.truth("eth_sendRawTransaction");
    let next = send(&p, json!(12), "0x1", json!({}));
    assert_eq!(mined_nonce(node.url(), &next["result"]), 1, "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_pending_count_lags_never_gets_one_nonce_for_two_transactions() {
    let p = Proxied::start(&[]).await;
    let (node, address, node_proxy, served) = (&p.node, &p.address, &p.node_proxy, &p.served);
    let first = send(&p, json!(1), "0x1", json!({}));
    assert_eq!(mined_nonce(node.url(), &first["result"]), 0, "{first}");
    // From now on the node's pending count stays at 1, however many transactions it takes.
    node_proxy.lie("eth_getTransactionCount", Lie::Answer(json!("0x1")));
    let received = balance(node.url(), RECIPIENT);
    let mut nonces = Vec::new();
    for id in 2..5 {
        let reply = send(&p, json!(id), "0x100", json!({}));
        assert_eq!(reply["id"], id, "{reply}");
        let hash = reply
            .get("result")
            .unwrap_or_else(|| panic!("request {id}: {reply}\n{}", served.log()));
        nonces.push(mined_nonce(node.url(), hash));
    }
    assert_eq!(nonces, [1, 2, 3], "each transaction its own nonce");
    assert_eq!(nonce(node.url(), address), 4);
    assert_eq!(balance(node.url(), RECIPIENT) - received, U256::from(0x300));
    assert_eq!(p.signs(), 4, "one signature per request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_silent_after_accepting_gets_one_transaction_and_the_client_its_hash() {
    // 8 s per request: 2 s per node call, the service's own answer within 7.2 s.
    let p = Proxied::start(&["--request-timeout", "8"]).await;
    let (node, address, node_proxy, served) = (&p.node, &p.address, &p.node_proxy, &p.served);
    let received = balance(node.url(), RECIPIENT);
    node_proxy.lie("eth_sendRawTransaction", Lie::ActThenHang);

    // The broadcast goes unanswered; the node, asked by hash, has the transaction: sent.
    let reply = send(&p, json!("first"), "0x5", json!({}));
    assert_eq!(reply["id"], "first", "{reply}");
    let hash = reply
        .get("result")
        .unwrap_or_else(|| panic!("{reply}\n{}", served.log()));
    assert_eq!(mined_nonce(node.url(), hash), 0);

    // Silent about the lookup too: the outcome is unknown, and the answer says which
    // transaction, with which nonce, from whom.
    node_proxy.lie("eth_getTransactionByHash", Lie::Hang);
    let reply = send(&p, json!("second"), "0x7", json!({}));
    assert_eq!(reply["id"], "second", "{reply}");
    let error = &reply["error"];
    assert_eq!(error["code"], -32000, "{reply}");
    assert_eq!(error["data"]["outcome"], "unknown", "{reply}");
    assert_eq!(error["data"]["nonce"], 1, "{reply}");
    assert_eq!(error["data"]["from"], address.as_str(), "{reply}");
    let unknown = error["data"]["hash"].clone();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(unknown.as_str().unwrap()),
        "{reply}"
    );
    assert_eq!(mined_nonce(node.url(), &unknown), 1, "it was in fact sent");

    // The client retries as told, with the nonce: the node refuses the second transaction,
    // and nothing is paid twice.
    node_proxy.truth("eth_sendRawTransaction");
    node_proxy.truth("eth_getTransactionByHash");
    let retry = send(&p, json!("retry"), "0x7", json!({ "nonce": "0x1" }));
    assert_eq!(retry["id"], "retry", "{retry}");
    assert_eq!(retry["error"]["code"], -32000, "{retry}");
    assert_eq!(retry["error"]["data"]["outcome"], "refused", "{retry}");
    assert_eq!(nonce(node.url(), address), 2, "one transaction per request");
    assert_eq!(
        balance(node.url(), RECIPIENT) - received,
        U256::from(0x5 + 0x7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_out_of_time_during_its_broadcast_is_answered_with_the_hash_and_its_id() {
    // 10 s per request: 2.5 s per node call, the service's own answer within 9 s.
    let p = Proxied::start(&["--request-timeout", "10"]).await;
    let (node, address, node_proxy) = (&p.node, &p.address, &p.node_proxy);
    // A slow node: filling in the fees and gas and the nonce takes about 7.6 s, and the
    // broadcast (accepted, never answered) is still waiting for the node at 9 s.
    for method in [
        "eth_maxPriorityFeePerGas",
        "eth_getBlockByNumber",
        "eth_estimateGas",
        "eth_getTransactionCount",
    ] {
        node_proxy.lie(method, Lie::Delay(Duration::from_millis(1900)));
    }
    node_proxy.lie("eth_sendRawTransaction", Lie::ActThenHang);
    let reply = send(&p, json!(99), "0x9", json!({}));
    assert_eq!(reply["id"], 99, "never id null: {reply}");
    let error = &reply["error"];
    assert_eq!(error["code"], -32000, "{reply}\n{}", p.served.log());
    assert_eq!(error["data"]["outcome"], "unknown", "{reply}");
    assert_eq!(error["data"]["nonce"], 0, "{reply}");
    assert_eq!(error["data"]["from"], address.as_str(), "{reply}");
    assert_eq!(mined_nonce(node.url(), &error["data"]["hash"]), 0);
    assert_eq!(nonce(node.url(), address), 1);
}
