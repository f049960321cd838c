//! The service behind a node that lies about fees (the lying-node proxy in front of anvil):
//! a priority fee, a base fee or a gas price above `--fee-cap` is refused with an error that
//! names the cap, before KMS is asked (Sign calls counted by the fault proxy), and nothing
//! reaches the chain.

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::node_proxy::{Lie, NodeProxy};
use kms_eth_e2e::served::Served;
use kms_eth_e2e::{balance, funded_account, localstack_endpoint, nonce};
use serde_json::{json, Value};

use super::{receipt, RECIPIENT};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fee_suggestions_above_the_fee_cap_are_refused_before_kms_is_asked() {
    let (key, address, node) = funded_account().await;
    let node_proxy = NodeProxy::start(node.url()).await.unwrap();
    let kms_proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let served = Served::start(&[
        "--rpc-url",
        node_proxy.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--fee-cap",
        "50gwei",
        "--endpoint-url",
        kms_proxy.endpoint(),
    ]);
    let signs = || kms_proxy.counts("Sign").attempts();
    let request = |method: &str, extra: Value| {
        let mut tx = json!({ "from": address, "to": RECIPIENT, "value": "0x1" });
        tx.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        served.call(method, json!([tx]))
    };

    // While the node tells the truth (fees of a few gwei), the service sends: the refusals
    // below are the lies', not a broken setup's.
    let sent = request("eth_sendTransaction", json!({}));
    let hash = sent
        .get("result")
        .unwrap_or_else(|| panic!("an honest send failed: {sent}\n{}", served.log()));
    receipt(node.url(), hash);
    assert_eq!(signs(), 1);
    let (nonce_before, balance_before) =
        (nonce(node.url(), &address), balance(node.url(), &address));
    let broadcasts = node_proxy.calls("eth_sendRawTransaction");

    let refused = |method: &str, extra: Value, shown: &str| {
        let reply = request(method, extra.clone());
        let error = &reply["error"];
        assert_eq!(error["code"], -32603, "{method} {extra}: {reply}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(shown) && message.contains("above --fee-cap 50 gwei"),
            "{method} {extra}: {reply}"
        );
    };
    // A tip of 2,000,000 gwei, for both the service's send and a signature it hands out.
    node_proxy.lie(
        "eth_maxPriorityFeePerGas",
        Lie::Answer(json!("0x71afd498d0000")),
    );
    for method in ["eth_sendTransaction", "eth_signTransaction"] {
        refused(
            method,
            json!({}),
            "suggests a priority fee per gas of 2000000 gwei",
        );
    }
    // A base fee of 1,000 gwei, through the max fee computed from it (twice it, plus 1 gwei).
    node_proxy.lie("eth_maxPriorityFeePerGas", Lie::Answer(json!("0x3b9aca00")));
    node_proxy.lie(
        "eth_getBlockByNumber",
        Lie::Rewrite("baseFeePerGas", json!("0xe8d4a51000")),
    );
    refused(
        "eth_sendTransaction",
        json!({}),
        "suggests a max fee per gas of 2001 gwei",
    );
    // A gas price of 1,000 gwei, for the two types that pay one.
    node_proxy.lie("eth_gasPrice", Lie::Answer(json!("0xe8d4a51000")));
    for kind in ["0x0", "0x1"] {
        refused(
            "eth_sendTransaction",
            json!({ "type": kind }),
            "suggests a gas price of 1000 gwei",
        );
    }

    assert_eq!(signs(), 1, "a refused request made a KMS Sign call");
    assert_eq!(
        node_proxy.calls("eth_sendRawTransaction"),
        broadcasts,
        "a refused request was broadcast"
    );
    assert_eq!(nonce(node.url(), &address), nonce_before, "the nonce moved");
    assert_eq!(
        balance(node.url(), &address),
        balance_before,
        "the balance moved"
    );
}
