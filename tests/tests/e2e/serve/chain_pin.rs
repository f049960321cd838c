//! The chain the service signs for is never the node's word alone: `serve` starts only with
//! `--chain-id` or a policy that lists `chain_ids` in every `[[account]]` block, refuses to
//! start when the two disagree (or the node is on another chain), and once pinned answers
//! `eth_chainId` with its own chain.

use kms_eth_e2e::node_proxy::{Lie, NodeProxy};
use kms_eth_e2e::served::Served;
use kms_eth_e2e::{funded_account, kms_eth_command};
use serde_json::json;

use super::{receipt, write_temp, RECIPIENT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_only_with_its_chain_pinned_and_never_by_the_node_alone() {
    let (key, address, node) = funded_account().await;
    let chain = node.chain_id().to_string();
    let policy = |name: &str, chain_ids: &str| {
        write_temp(
            &format!("chain-policy-{name}.toml"),
            &format!("[[account]]\naddress = \"{address}\"\n{chain_ids}"),
        )
    };
    let unpinned = policy("unpinned", "");
    let pinned = policy("pinned", &format!("chain_ids = [{chain}]\n"));
    let elsewhere = policy("elsewhere", "chain_ids = [1, 10]\n");
    // The refused starts listen on a port already taken: a start that went past its check
    // would fail there, with another message, instead of serving for ever.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            &listen,
            "--rpc-url",
            node.url(),
            "--key-id",
            &key.id,
        ];
        args.extend(extra);
        kms_eth_command(&args)
    };
    for (extra, message) in [
        (&["--unrestricted"][..], "serve needs --chain-id"),
        (
            &["--policy", unpinned.to_str().unwrap()][..],
            "chain_ids in every [[account]] block",
        ),
        (
            &["--unrestricted", "--chain-id", "1"][..],
            &format!("is on chain {chain}, not 1")[..],
        ),
        (
            &["--policy", elsewhere.to_str().unwrap()][..],
            &format!("is on chain {chain}, but the [[account]] block for")[..],
        ),
        (
            &[
                "--policy",
                elsewhere.to_str().unwrap(),
                "--chain-id",
                &chain,
            ][..],
            &format!("--chain-id {chain}, but the [[account]] block for")[..],
        ),
    ] {
        serve(extra).usage_error(message);
    }
    // Pinned by the policy alone, the service starts, and signs.
    let served = Served::start_as_given(&[
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--policy",
        pinned.to_str().unwrap(),
    ]);
    let hash = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
    );
    receipt(node.url(), &hash);
    drop(served);
    // Pinned by --chain-id, eth_chainId is the service's own answer: a node that changes
    // its story after the start is not repeated.
    let node_proxy = NodeProxy::start(node.url()).await.unwrap();
    let served = Served::start_as_given(&[
        "--rpc-url",
        node_proxy.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--chain-id",
        &chain,
    ]);
    node_proxy.lie("eth_chainId", Lie::Answer(json!("0x1")));
    assert_eq!(
        served.result("eth_chainId", json!([])),
        json!(format!("{:#x}", node.chain_id()))
    );
    for file in [unpinned, pinned, elsewhere] {
        let _ = std::fs::remove_file(file);
    }
}
