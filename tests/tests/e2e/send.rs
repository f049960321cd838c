//! `send` end to end against a real anvil (behind a lying-node proxy where the node must
//! lie) and real KMS: the value moved exactly with 1559 and legacy transactions, and every way
//! to lose money that a review found reproduced with the refusal asserted and "nothing was
//! signed or sent" read back from the proxy's call counts and from the chain: no `--to`,
//! fee suggestions above the cap, the worst-case cost above the threshold, a node on another
//! chain, a LocalStack key on a public network, receipts that fail or never come, a
//! transaction that reverts.

use kms_eth_e2e::node_proxy::{Lie, NodeProxy};
use kms_eth_e2e::{
    assert_exit, balance, funded_account, json_output, kms_eth, kms_eth_command, nonce, stderr,
    TestKey,
};
use kms_eth_harness::anvil::Anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_signer::U256;
use serde_json::json;

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// Init code that deploys a one-byte contract (0xfe): MSTORE8 0xfe at 0, RETURN 1 byte.
const INIT_CODE: &str = "0x60fe60005360016000f3";

/// A funded KMS account, its node, and a proxy in front of the node that tells the truth
/// until told to lie.
struct Setup {
    key: TestKey,
    address: String,
    node: Anvil,
    proxy: NodeProxy,
    recipient_balance: U256,
}

impl Setup {
    async fn new() -> Setup {
        let (key, address, node) = funded_account().await;
        let proxy = NodeProxy::start(node.url()).await.unwrap();
        let recipient_balance = balance(node.url(), RECIPIENT);
        Setup {
            key,
            address,
            node,
            proxy,
            recipient_balance,
        }
    }

    /// `send` from the account through the proxy with only `extra` flags.
    fn bare_send(&self, extra: &[&str]) -> kms_eth_e2e::TestCommand {
        kms_eth_command(&[
            "send",
            "--key-id",
            &self.key.id,
            "--rpc-url",
            self.proxy.url(),
        ])
        .args(extra)
    }

    /// `send` of 0.001 ether to RECIPIENT through the proxy, on the right chain, with
    /// `extra` flags after the base ones.
    fn send(&self, extra: &[&str]) -> std::process::Output {
        let chain_id = self.node.chain_id().to_string();
        let mut args = vec![
            "send",
            "--key-id",
            &self.key.id,
            "--rpc-url",
            self.proxy.url(),
            "--chain-id",
            &chain_id,
        ];
        if !extra.contains(&"--value") {
            args.extend(["--value", "0.001ether"]);
        }
        if !extra.contains(&"--create") && !extra.contains(&"--to") {
            args.extend(["--to", RECIPIENT]);
        }
        args.extend(extra);
        kms_eth_command(&args).output()
    }

    /// Nothing left the account: no broadcast reached the proxy, the chain counts no
    /// transaction from it, and the recipient got nothing.
    fn assert_nothing_sent(&self, what: &str) {
        assert_eq!(
            self.proxy.calls("eth_sendRawTransaction"),
            0,
            "{what}: a transaction was broadcast"
        );
        assert_eq!(
            nonce(self.node.url(), &self.address),
            0,
            "{what}: nonce moved"
        );
        assert_eq!(
            balance(self.node.url(), RECIPIENT),
            self.recipient_balance,
            "{what}: the recipient's balance moved"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_to_is_refused_instead_of_creating_a_contract_with_the_value() {
    let setup = Setup::new().await;
    let output = setup
        .bare_send(&["--chain-id", "31337", "--value", "1ether"])
        .output();
    assert_exit(&output, &"send without --to", 2, "invalid --to: missing");
    assert!(stderr(&output).contains("--create"), "{}", stderr(&output));
    assert_eq!(
        setup.proxy.all_calls(),
        0,
        "the node was asked before the refusal"
    );
    // sign the same, and --create without its code.
    kms_eth_command(&[
        "sign",
        "--key-id",
        &setup.key.id,
        "--chain-id",
        "31337",
        "--nonce",
        "0",
        "--gas-limit",
        "60000",
        "--max-fee-per-gas",
        "2gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--value",
        "1ether",
    ])
    .usage_error("invalid --to: missing");
    let output = setup.send(&["--create"]);
    assert_exit(
        &output,
        &"--create without --data",
        2,
        "--create needs the contract's init code",
    );
    let output = setup.send(&["--create", "--to", RECIPIENT, "--data", INIT_CODE]);
    assert_exit(&output, &"--create with --to", 2, "cannot be used with");
    setup.assert_nothing_sent("refused creations");

    // What --create is for: a contract from its code, at the address the receipt names.
    let created = setup.send(&["--create", "--data", INIT_CODE, "--value", "0", "--json"]);
    let created = json_output(&created);
    let contract = created["contract_address"].as_str().unwrap();
    let code = rpc(setup.node.url(), "eth_getCode", json!([contract, "latest"])).unwrap();
    assert_eq!(code, "0xfe", "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_refuses_node_fee_suggestions_above_the_cap() {
    let setup = Setup::new().await;
    // The reproduction: a tip of 2e15 wei per gas made a 0.001 ether transfer pay 42 ether.
    setup.proxy.lie(
        "eth_maxPriorityFeePerGas",
        Lie::Answer(json!("0x71afd498d0000")),
    );
    let output = setup.send(&[]);
    assert_exit(
        &output,
        &"a lying tip",
        1,
        "suggests a priority fee per gas of 2000000 gwei, above --fee-cap 500 gwei",
    );
    // A lying base fee, through the max fee computed from it.
    setup
        .proxy
        .lie("eth_maxPriorityFeePerGas", Lie::Answer(json!("0x3b9aca00")));
    setup.proxy.lie(
        "eth_getBlockByNumber",
        Lie::Rewrite("baseFeePerGas", json!("0xe8d4a51000")),
    );
    let output = setup.send(&[]);
    assert_exit(
        &output,
        &"a lying base fee",
        1,
        "suggests a max fee per gas of 2001 gwei",
    );
    // A lying gas price for a legacy transaction.
    setup
        .proxy
        .lie("eth_gasPrice", Lie::Answer(json!("0xe8d4a51000")));
    let output = setup.send(&["--type", "legacy"]);
    assert_exit(
        &output,
        &"a lying gas price",
        1,
        "suggests a gas price of 1000 gwei",
    );
    // Arithmetic that would wrap is an error, not a small number under the threshold.
    let output = setup.send(&[
        "--gas-limit",
        "18446744073709551614",
        "--max-fee-per-gas",
        "57896044618658097711785492504343953926634992332820282019728792003956564819968",
        "--max-priority-fee-per-gas",
        "1",
    ]);
    assert_exit(
        &output,
        &"an overflowing cost",
        1,
        "does not fit in 256 bits",
    );
    setup.assert_nothing_sent("capped fees");

    // A cap raised on purpose lets the same suggestion through (and --yes its cost).
    setup
        .proxy
        .lie("eth_gasPrice", Lie::Answer(json!("0x174876e800")));
    let output = setup.send(&[
        "--type",
        "legacy",
        "--fee-cap",
        "200gwei",
        "--yes",
        "--json",
    ]);
    assert_eq!(json_output(&output)["gas_price"], "100000000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_shows_the_worst_case_cost_and_asks_above_the_threshold() {
    let setup = Setup::new().await;
    let output = setup.send(&["--value", "1ether"]);
    assert_exit(
        &output,
        &"1 ether without --yes",
        2,
        "pass --yes to confirm",
    );
    let shown = stderr(&output);
    assert!(shown.contains("worst-case cost 1.0000"), "{shown}");
    assert!(shown.contains(": gas limit 210"), "{shown}");
    assert!(shown.contains("above --confirm-above 0.1 ether"), "{shown}");
    setup.assert_nothing_sent("an unconfirmed send");

    let sent = json_output(&setup.send(&["--value", "1ether", "--yes", "--json"]));
    let max_cost: U256 = sent["max_cost"].as_str().unwrap().parse().unwrap();
    let fee: U256 = sent["max_fee_per_gas"].as_str().unwrap().parse().unwrap();
    let gas_limit = U256::from(sent["gas_limit"].as_u64().unwrap());
    assert_eq!(
        max_cost,
        gas_limit * fee + U256::from(10u64).pow(U256::from(18u64)),
        "{sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_needs_the_chain_id_and_refuses_a_node_that_claims_another() {
    let setup = Setup::new().await;
    let output = setup.bare_send(&["--to", RECIPIENT]).output();
    assert_exit(&output, &"no --chain-id", 2, "missing --chain-id");
    assert_eq!(setup.proxy.all_calls(), 0);
    // The reproduction: a node answering chain id 1 got a transaction valid on mainnet.
    setup.proxy.lie("eth_chainId", Lie::Answer(json!("0x1")));
    let output = setup.send(&[]);
    assert_exit(&output, &"a node on chain 1", 2, "is on chain 1, not 31337");
    setup.assert_nothing_sent("a node on another chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_localstack_key_is_labelled_and_never_sends_on_a_public_network() {
    let setup = Setup::new().await;
    let status = kms_eth_command(&["status", "--key-id", &setup.key.id]).success();
    assert!(
        stderr(&status).contains("local test key"),
        "{}",
        stderr(&status)
    );
    setup.proxy.lie("eth_chainId", Lie::Answer(json!("0x1")));
    let chain_args = ["--chain-id", "1"];
    let output = setup
        .bare_send(&["--to", RECIPIENT])
        .args(chain_args)
        .output();
    assert_exit(
        &output,
        &"a LocalStack key on mainnet",
        2,
        "refusing to send on Ethereum mainnet (chain 1) with a LocalStack test key",
    );
    setup.assert_nothing_sent("a LocalStack key on mainnet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_keeps_polling_when_a_receipt_poll_fails() {
    let setup = Setup::new().await;
    setup.proxy.lie("eth_getTransactionReceipt", Lie::Drop(3));
    let output = setup.send(&["--json"]);
    let sent = json_output(&output);
    assert_eq!(sent["status"], 1);
    assert!(stderr(&output).contains("retrying"), "{}", stderr(&output));
    assert!(setup.proxy.calls("eth_getTransactionReceipt") >= 4);
    assert_eq!(nonce(setup.node.url(), &setup.address), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_whose_outcome_is_unknown_exits_3_with_the_hash_and_nonce() {
    let setup = Setup::new().await;
    // A receipt for another transaction is not this one's.
    setup.proxy.lie(
        "eth_getTransactionReceipt",
        Lie::Rewrite("transactionHash", json!(format!("0x{}", "ab".repeat(32)))),
    );
    let output = setup.send(&[]);
    assert_exit(
        &output,
        &"a receipt for another hash",
        3,
        "It was broadcast: check it before sending again",
    );
    let message = stderr(&output);
    assert!(message.contains("nonce 0 from"), "{message}");
    assert!(message.contains("a receipt for 0xabab"), "{message}");

    // A broadcast whose answer is lost, and receipts that never come within the timeout.
    setup.proxy.lie("eth_sendRawTransaction", Lie::Swallow);
    setup
        .proxy
        .lie("eth_getTransactionReceipt", Lie::Drop(u32::MAX));
    let output = setup.send(&["--timeout", "3"]);
    assert_exit(
        &output,
        &"a lost broadcast",
        3,
        "the broadcast got no answer",
    );
    assert!(
        stderr(&output).contains("nonce 1 from"),
        "{}",
        stderr(&output)
    );
    // Both were in fact mined: exactly why "unknown" must not read as "failed".
    assert_eq!(nonce(setup.node.url(), &setup.address), 2);

    // A lost broadcast answer with the receipt found afterwards is a success.
    setup.proxy.lie("eth_getTransactionReceipt", Lie::Drop(0));
    let sent = json_output(&setup.send(&["--json"]));
    assert_eq!(sent["status"], 1);
    assert_eq!(sent["nonce"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_estimates_gas_with_the_access_list() {
    let setup = Setup::new().await;
    let access_list = format!(
        r#"[{{"address":"{RECIPIENT}","storageKeys":["0x{}"]}}]"#,
        "00".repeat(32)
    );
    for tx_type in ["2930", "1559"] {
        let sent =
            json_output(&setup.send(&["--type", tx_type, "--access-list", &access_list, "--json"]));
        assert_eq!(sent["status"], 1, "{tx_type}: {sent}");
        assert_eq!(sent["gas_limit"], 21_000 + 2_400 + 1_900, "{tx_type}");
    }
    // An estimate below what the access list alone costs is a node not to be believed.
    setup
        .proxy
        .lie("eth_estimateGas", Lie::Answer(json!("0x5208")));
    let output = setup.send(&["--access-list", &access_list]);
    assert_exit(
        &output,
        &"a low estimate",
        1,
        "estimates 21000 gas, below the 25300",
    );
    assert_eq!(nonce(setup.node.url(), &setup.address), 2);
}

#[tokio::test]
async fn a_send_whose_transaction_reverts_exits_1_with_status_0_and_the_hash() {
    let (key, address, node) = kms_eth_e2e::funded_account().await;
    let chain_id = node.chain_id().to_string();
    let send = |args: &[&str]| {
        kms_eth_command(&["send", "--key-id", &key.id, "--rpc-url", node.url()])
            .args(["--chain-id", &chain_id, "--yes"])
            .args(args)
    };
    // A contract whose code is `REVERT(0, 0)`: the init code returns the five bytes
    // 60 00 60 00 fd (PUSH1 0, PUSH1 0, REVERT).
    let deployed = send(&[
        "--create",
        "--data",
        "0x6460006000fd6000526005601bf3",
        "--json",
    ])
    .json();
    let contract = deployed["contract_address"].as_str().unwrap().to_owned();

    // An explicit gas limit: the node's estimate would already refuse a reverting call,
    // and a reverting transaction that is mined anyway is what this is about.
    let reverted = send(&["--to", &contract, "--gas-limit", "50000"])
        .fails(1, "reverted (status 0); its gas was paid");
    let message = stderr(&reverted);
    let hash = message
        .split_whitespace()
        .find(|word| word.starts_with("0x") && word.len() == 66)
        .unwrap_or_else(|| panic!("no transaction hash in: {message}"));
    assert!(reverted.stdout.is_empty(), "a success report for a revert");
    let receipt = rpc(node.url(), "eth_getTransactionReceipt", json!([hash])).unwrap();
    assert_eq!(receipt["status"], "0x0", "{receipt}");
    assert_eq!(
        nonce(node.url(), &address),
        2,
        "both transactions were mined"
    );
}

#[tokio::test]
async fn send_moves_exactly_the_value_with_1559_and_legacy_transactions() {
    let (key, address, node) = funded_account().await;
    for (tx_type, value, wei) in [
        ("1559", "0.25ether", 250_000_000_000_000_000u128),
        ("legacy", "7gwei", 7_000_000_000),
    ] {
        let before = balance(node.url(), RECIPIENT);
        let sent = json_output(&kms_eth(&[
            "send",
            "--key-id",
            &key.id,
            "--rpc-url",
            node.url(),
            "--to",
            RECIPIENT,
            "--value",
            value,
            "--type",
            tx_type,
            "--chain-id",
            &node.chain_id().to_string(),
            "--yes",
            "--json",
        ]));
        assert_eq!(sent["status"], 1, "{sent}");
        assert_eq!(sent["from"], address.as_str());
        assert_eq!(
            balance(node.url(), RECIPIENT) - before,
            U256::from(wei),
            "{tx_type} moved exactly {value}"
        );

        // verify recovers the KMS address from the raw transaction.
        let verified = json_output(&kms_eth(&[
            "verify",
            sent["raw"].as_str().unwrap(),
            "--json",
        ]));
        assert_eq!(verified["from"], address.as_str());
        assert_eq!(verified["hash"], sent["hash"]);
    }
}

#[tokio::test]
async fn send_refuses_a_chain_id_that_is_not_the_nodes() {
    let (key, _address, node) = funded_account().await;
    let output = kms_eth(&[
        "send",
        "--key-id",
        &key.id,
        "--rpc-url",
        node.url(),
        "--to",
        RECIPIENT,
        "--chain-id",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is on chain 31337, not 1"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_nonce_far_above_the_latest_is_refused_unless_the_nonce_is_given() {
    let setup = Setup::new().await;
    // The node says 1000 transactions are pending for an account that sent none.
    setup.proxy.lie(
        "eth_getTransactionCount",
        Lie::AnswerWhen("pending", json!("0x3e8")),
    );
    let output = setup.send(&[]);
    assert_exit(
        &output,
        &"a made-up pending nonce",
        1,
        "pending nonce 1000 but mined nonce 0",
    );
    assert!(stderr(&output).contains("--nonce"), "{}", stderr(&output));
    setup.assert_nothing_sent("a made-up pending nonce");
    // The user's own nonce is taken as given, the node's story notwithstanding.
    let output = setup.send(&["--nonce", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(nonce(setup.node.url(), &setup.address), 1);
}
