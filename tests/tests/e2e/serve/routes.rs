//! What reaches the node through the service, and what answers come back: only reads pass
//! through (`anvil_setCode` on the KMS account, the node's admin, debug and personal
//! methods, and raw transactions without `--allow-raw` are refused with -32601 and never
//! reach it), signing requests sent as notifications and batches above `--max-batch` are
//! refused and not executed, the node's errors never carry the policy's code, and every
//! answer keeps its request's id. Node calls counted by the lying-node proxy, KMS `Sign`
//! calls by the fault proxy, the chain read back from anvil.

use kms_eth_e2e::node_proxy::Lie;
use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::{balance, nonce};
use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

use super::proxied::Proxied;
use super::{receipt, RECIPIENT};

fn request(id: Value, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// POSTs `body` as JSON and returns the HTTP status and the answer (null if none).
fn post(served: &Served, body: &Value) -> (u16, Value) {
    let (status, answer) = raw_request(
        &served.address,
        "POST / HTTP/1.1",
        &["Content-Type: application/json"],
        body.to_string().as_bytes(),
    )
    .unwrap();
    (status, serde_json::from_str(&answer).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_reads_pass_through_and_the_node_s_own_methods_never_reach_it() {
    let mut p = Proxied::start(&[]).await;
    let (node, address, node_proxy) = (&p.node, p.address.clone(), &p.node_proxy);
    let call = |id: Value, method: &str, params: Value| p.call(id, method, params);
    for (method, params) in [
        ("eth_blockNumber", json!([])),
        ("eth_getBalance", json!([address, "latest"])),
        ("eth_getCode", json!([address, "latest"])),
        ("eth_getTransactionCount", json!([address, "pending"])),
        ("eth_feeHistory", json!(["0x1", "latest", []])),
        ("net_version", json!([])),
        ("web3_clientVersion", json!([])),
    ] {
        let reply = call(json!(method), method, params);
        assert!(reply.get("result").is_some(), "{method}: {reply}");
        assert_eq!(reply["id"], method, "{reply}");
        assert_eq!(node_proxy.calls(method), 1, "{method} passed through");
    }
    // A transaction signed by the service, for eth_sendRawTransaction below.
    let raw = call(
        json!(0),
        "eth_signTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x3" }]),
    )["result"]
        .clone();
    assert!(raw.is_string(), "{raw}");
    let (balance_before, block_before) = (
        balance(node.url(), &address),
        rpc(node.url(), "eth_blockNumber", json!([])).unwrap(),
    );
    let refused = [
        // The attack: code installed at the KMS account through the service.
        ("anvil_setCode", json!([address, "0x60006000fd"])),
        ("anvil_setBalance", json!([address, "0x0"])),
        ("anvil_impersonateAccount", json!([RECIPIENT])),
        ("hardhat_setBalance", json!([address, "0x0"])),
        ("evm_mine", json!([])),
        ("admin_addPeer", json!(["enode://00@127.0.0.1:30303"])),
        ("debug_traceCall", json!([{ "to": RECIPIENT }, "latest"])),
        ("personal_unlockAccount", json!([RECIPIENT, "", 0])),
        ("eth_sendRawTransaction", json!([raw])),
        ("eth_subscribe", json!(["newHeads"])),
    ];
    for (method, params) in &refused {
        let reply = call(json!(format!("id-{method}")), method, params.clone());
        assert_eq!(reply["error"]["code"], -32601, "{method}: {reply}");
        assert_eq!(reply["id"], format!("id-{method}"), "{reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(method),
            "{reply}"
        );
        assert_eq!(node_proxy.calls(method), 0, "{method} reached the node");
    }
    assert_eq!(
        rpc(node.url(), "eth_getCode", json!([address, "latest"])).unwrap(),
        "0x"
    );
    assert_eq!(balance(node.url(), &address), balance_before);
    assert_eq!(
        rpc(node.url(), "eth_blockNumber", json!([])).unwrap(),
        block_before
    );
    assert_eq!(nonce(node.url(), &address), 0);
    assert_eq!(p.signs(), 1, "only eth_signTransaction signed");

    // With --allow-raw, a raw transaction is passed through, and mined.
    p.restart(&["--allow-raw"]);
    let hash = p.served.result("eth_sendRawTransaction", json!([raw]));
    receipt(p.node.url(), &hash);
    assert_eq!(nonce(p.node.url(), &address), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_that_sign_and_batches_above_the_cap_are_refused_and_not_executed() {
    let p = Proxied::start(&["--max-batch", "3"]).await;
    let (node, address, node_proxy, served) = (&p.node, &p.address, &p.node_proxy, &p.served);
    let signs = || p.signs();
    let personal_sign = json!(["0x68656c6c6f", address]);
    let send = json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]);
    // Notifications (no id): a signing one is refused, said with a null id (there is none).
    for (method, params) in [
        ("eth_sendTransaction", &send),
        ("personal_sign", &personal_sign),
    ] {
        let notification = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        let (status, answer) = post(served, &notification);
        assert_eq!(status, 200, "{method}: {answer}");
        assert_eq!(answer["error"]["code"], -32600, "{method}: {answer}");
        assert!(answer["id"].is_null(), "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("notification"),
            "{answer}"
        );
    }
    // A read sent as a notification is not executed either, and gets no answer.
    let (status, _) = post(
        served,
        &json!({ "jsonrpc": "2.0", "method": "eth_blockNumber", "params": [] }),
    );
    assert_eq!(status, 204);
    assert_eq!(node_proxy.calls("eth_blockNumber"), 0);
    // A batch above --max-batch: every request is told, under its own id, and none is done.
    let batch: Vec<Value> = (0..4)
        .map(|id| request(json!(id), "personal_sign", personal_sign.clone()))
        .collect();
    let (_, answer) = post(served, &json!(batch));
    let answers = answer.as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(answers.len(), 4, "{answer}");
    for (id, answer) in answers.iter().enumerate() {
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(answer["error"]["code"], -32600, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--max-batch"),
            "{answer}"
        );
    }
    assert_eq!(signs(), 0, "a refused request made a KMS Sign call");
    assert_eq!(node_proxy.calls("eth_sendRawTransaction"), 0);
    assert_eq!(nonce(node.url(), address), 0);
    // At the cap, a batch is answered call by call.
    let (_, answer) = post(
        served,
        &json!([
            request(json!("a"), "eth_accounts", json!([])),
            request(json!("b"), "personal_sign", personal_sign.clone()),
            request(json!("c"), "eth_blockNumber", json!([])),
        ]),
    );
    assert_eq!(answer[0]["result"], json!([address]), "{answer}");
    assert!(answer[1]["result"].is_string(), "{answer}");
    assert_eq!(answer[2]["id"], "c", "{answer}");
    assert_eq!(signs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_errors_never_pass_for_policy_refusals() {
    let p = Proxied::start(&[]).await;
    let (node, address, node_proxy, served) = (&p.node, &p.address, &p.node_proxy, &p.served);
    // The node refuses the broadcast with the policy's code: wrapped, its code in data.
    node_proxy.lie(
        "eth_sendRawTransaction",
        Lie::Refuse(-32003, "transaction rejected"),
    );
    let reply = served.call(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
    );
    let error = &reply["error"];
    assert_eq!(error["code"], -32000, "{reply}");
    assert_eq!(error["data"]["node"]["code"], -32003, "{reply}");
    assert_eq!(error["data"]["outcome"], "refused", "{reply}");
    assert!(error["data"]["hash"].is_string(), "{reply}");
    assert_eq!(nonce(node.url(), address), 0);
    // Passed through, the same: a read the node refuses with -32003 is wrapped; another
    // code (a revert's 3) comes back as the node gave it.
    node_proxy.lie("eth_getBalance", Lie::Refuse(-32003, "rejected"));
    let reply = served.call("eth_getBalance", json!([address, "latest"]));
    assert_eq!(reply["error"]["code"], -32000, "{reply}");
    assert_eq!(reply["error"]["data"]["node"]["code"], -32003, "{reply}");
    node_proxy.lie("eth_call", Lie::Refuse(3, "execution reverted"));
    let reply = served.call("eth_call", json!([{ "to": RECIPIENT }, "latest"]));
    assert_eq!(reply["error"]["code"], 3, "{reply}");
    let metrics = raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"")
        .unwrap()
        .1;
    assert!(!metrics.contains("outcome=\"denied\""), "{metrics}");
    assert!(
        !metrics.contains("kms_eth_policy_denials_total{"),
        "{metrics}"
    );
}
