//! The signing Lambda of the original design, run for real: the function's binary under
//! cargo-lambda's Lambda emulator, against LocalStack's KMS through the fault proxy (which
//! counts every KMS call), with its answers compared to the CLI's `--event` answers, its
//! transactions mined on anvil, and its refusals made without a KMS call.

use std::process::Command;
use std::time::{Duration, Instant};

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    funded_account, json_output, kms, kms_eth, lambda_binary, localstack_endpoint, stderr,
    xtask_binary, TestKey,
};
use kms_eth_harness::anvil;
use kms_eth_harness::cargo_lambda::Emulator;
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_signer::{SignedTransaction, U256};
use serde_json::{json, Value};

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// The README's example event, exactly as documented.
fn readme_example() -> String {
    format!(
        r#"{{"operation":"sign","amount":0.01,"dst_address":"{RECIPIENT}","nonce":0,"chain_id":1}}"#
    )
}

/// The function for `key`, with `config` (policy or unrestricted) added to its environment,
/// reaching KMS through `proxy`.
fn function(key: &TestKey, proxy: &FaultProxy, config: (&str, String)) -> Emulator {
    let env = [
        ("KMS_KEY_ID", key.id.clone()),
        ("AWS_ENDPOINT_URL", proxy.endpoint().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        (config.0, config.1),
    ]
    .map(|(name, value)| (name.to_owned(), value));
    Emulator::start(lambda_binary(), &env, Duration::from_secs(120)).unwrap()
}

fn unrestricted() -> (&'static str, String) {
    ("KMS_ETH_UNRESTRICTED", "true".to_owned())
}

fn decode(answer: &Value) -> SignedTransaction {
    let payload = answer["signed_tx_payload"]
        .as_str()
        .unwrap_or_else(|| panic!("no payload in {answer}"));
    SignedTransaction::decode(&hex::decode(&payload[2..]).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lambda_answers_every_operation_as_the_cli_does_and_its_transfer_is_mined() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let function = function(&key, &proxy, unrestricted());
    let cold_start = function.since_start();
    assert_eq!(
        proxy.counts("GetPublicKey").attempts(),
        1,
        "one GetPublicKey per cold start"
    );

    // status: the same answer as the CLI's --event.
    let status = function.invoke(r#"{"operation":"status"}"#).unwrap();
    let cli_status = json_output(&kms_eth(&[
        "status",
        "--key-id",
        &key.id,
        "--event",
        r#"{"operation":"status"}"#,
    ]));
    assert_eq!(status, cli_status);
    assert_eq!(status, json!({ "eth_checksum_address": address }));

    // sign, in the original's two versions (legacy, then EIP-1559) and the README's
    // example: the same transaction as the CLI signs for the same event, recovering to the
    // key's address. KMS signatures are not deterministic; transactions and signers are.
    let legacy = format!(
        r#"{{"operation":"sign","amount":0.5,"dst_address":"{RECIPIENT}","nonce":0,"chain_id":{},"type":0,"gas_price":"2gwei","gas":21000}}"#,
        node.chain_id()
    );
    let eip1559 = format!(
        r#"{{"operation":"sign","amount":"0.000001","dst_address":"{RECIPIENT}","nonce":1,"chainid":{},"max_fee_per_gas":20000000000,"max_priority_fee_per_gas":1000000000}}"#,
        node.chain_id()
    );
    let mut warm = Vec::new();
    for event in [&legacy, &eip1559, &readme_example()] {
        let started = Instant::now();
        let answer = function.invoke(event).unwrap();
        warm.push(started.elapsed());
        let fields: Vec<&String> = answer.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["signed_tx_hash", "signed_tx_payload"], "{answer}");
        let ours = decode(&answer);
        let cli = decode(&json_output(&kms_eth(&[
            "sign", "--key-id", &key.id, "--event", event,
        ])));
        assert_eq!(ours.tx, cli.tx, "{event}");
        assert_eq!(ours.recover_signer().unwrap().to_string(), address);
        assert_eq!(
            answer["signed_tx_hash"],
            format!("0x{}", hex::encode(ours.hash))
        );
    }
    warm.sort();
    eprintln!(
        "lambda under the emulator: cold start {} ms (process start to ready, one \
         GetPublicKey), warm sign invoke median {} ms",
        cold_start.as_millis(),
        warm[warm.len() / 2].as_millis()
    );

    // The legacy transfer, published by cast (an independent client) and mined: anvil
    // recovers the sender itself.
    let answer = function.invoke(&legacy).unwrap();
    let published = Command::new(anvil::binary("cast"))
        .args(["publish", "--rpc-url", node.url()])
        .arg(answer["signed_tx_payload"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "cast publish: {}",
        stderr(&published)
    );
    let mined = rpc(
        node.url(),
        "eth_getTransactionByHash",
        json!([answer["signed_tx_hash"]]),
    )
    .unwrap();
    assert_eq!(
        mined["from"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );
    assert_eq!(
        kms_eth_node::parse_u256(&mined["value"]).unwrap(),
        U256::from(500_000_000_000_000_000u64)
    );
    assert_eq!(
        proxy.counts("GetPublicKey").attempts(),
        1,
        "still one GetPublicKey"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_events_get_json_errors_naming_the_field_or_rule_and_no_kms_call() {
    let key = TestKey::ethereum(&kms().await).await;
    let address = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]))["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy = format!(
        "[[account]]\naddress = \"{address}\"\nchain_ids = [31337]\nrecipients = [\"{RECIPIENT}\"]\n\
         max_cost_per_tx = \"1.001ether\"\nmax_fee_per_gas = \"50gwei\"\nmax_gas_per_tx = 1000000\n"
    );
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let function = function(&key, &proxy, ("KMS_ETH_POLICY", policy));
    let sign = |fields: &str| {
        format!(
            r#"{{"operation":"sign","dst_address":"{RECIPIENT}","nonce":0,"chain_id":31337{fields}}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        ("{}".to_owned(), "invalid operation: missing"),
        (
            r#"{"operation":"stats"}"#.to_owned(),
            "invalid operation: \"stats\" is not",
        ),
        (
            r#"{"operation":7}"#.to_owned(),
            "invalid operation: expected a string",
        ),
        (
            r#"{"operation":"status","key":1}"#.to_owned(),
            "unknown field \"key\"",
        ),
        ("[1,2]".to_owned(), "invalid event"),
        (
            sign(""),
            "missing parameter - sign requires amount, dst_address and nonce",
        ),
        (
            sign(r#","amount":true"#),
            "invalid amount: expected a number, got a boolean",
        ),
        (
            sign(r#","amount":-1"#),
            "invalid amount: \"-1\" is negative",
        ),
        (sign(r#","amount":0.0000000000000000001"#), "invalid amount"),
        (
            sign(r#","amount":1,"amount":2"#),
            "field \"amount\" is given twice",
        ),
        (
            sign(r#","amount":1,"chainid":1"#),
            "invalid chainid: given together with \"chain_id\"",
        ),
        (
            sign(r#","amount":1,"type":null"#),
            "invalid type: expected a number, got null",
        ),
        (
            sign(r#","amount":1,"data":12"#),
            "invalid data: expected a string",
        ),
        (
            sign(r#","amount":1,"gas_prize":1"#),
            "unknown field \"gas_prize\"",
        ),
        (
            sign(r#","amount":1,"nonce":1.5"#),
            "field \"nonce\" is given twice",
        ),
        (
            format!(r#"{{"operation":"sign","amount":1,"dst_address":"{RECIPIENT}","nonce":0}}"#),
            "invalid chain_id: missing; a transaction without a chain id can be replayed",
        ),
        (
            r#"{"operation":"sign","amount":1,"dst_address":"0x1234","nonce":0,"chain_id":1}"#
                .to_owned(),
            "invalid dst_address",
        ),
        // Policy denials: well-formed events the owner did not allow.
        (
            format!(
                r#"{{"operation":"sign","amount":1,"dst_address":"{RECIPIENT}","nonce":0,"chain_id":1,"max_fee_per_gas":"1gwei"}}"#
            ),
            "refused by the policy's chain_ids rule",
        ),
        (
            sign(r#","amount":2,"max_fee_per_gas":"1gwei""#),
            "refused by the policy's max_cost_per_tx rule",
        ),
        // 1 ether is under the cap, but not with 160,000 gas at 50 gwei (0.008 ether) on top:
        // the cap counts what the transaction can cost, fees included.
        (
            sign(r#","amount":1,"max_fee_per_gas":"50gwei""#),
            "refused by the policy's max_cost_per_tx rule",
        ),
        (
            sign(r#","amount":0,"max_fee_per_gas":"1gwei","gas_limit":1000001"#),
            "refused by the policy's max_gas_per_tx rule",
        ),
        (
            sign(r#","amount":1,"max_fee_per_gas":"60gwei""#),
            "refused by the policy's max_fee_per_gas rule",
        ),
        (
            // The original's default fee (100 gwei) is above this policy's cap.
            sign(r#","amount":1"#),
            "refused by the policy's max_fee_per_gas rule",
        ),
        (
            r#"{"operation":"sign","amount":1,"dst_address":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC","nonce":0,"chain_id":31337,"max_fee_per_gas":"1gwei"}"#
                .to_owned(),
            "refused by the policy's recipients rule",
        ),
    ];
    assert!(cases.len() >= 15);
    for (event, expected) in &cases {
        let answer = function.invoke(event).unwrap();
        let error = answer["error"]
            .as_str()
            .or_else(|| answer["errorMessage"].as_str())
            .unwrap_or_else(|| panic!("{event}: no error in {answer}"));
        assert!(error.contains(expected), "{event}: {error}");
        assert!(answer.get("signed_tx_payload").is_none());
    }
    assert_eq!(
        proxy.counts("Sign").attempts(),
        0,
        "a refused event called KMS"
    );
    // And the same function signs what the policy allows.
    let allowed = function
        .invoke(&sign(r#","amount":1,"max_fee_per_gas":"1gwei""#))
        .unwrap();
    assert!(allowed.get("signed_tx_payload").is_some(), "{allowed}");
    assert_eq!(proxy.counts("Sign").attempts(), 1);
    // The audit records, in the schema `kms-eth serve` writes: every refusal with its rule
    // and the transaction's fields, the signature with its hash and KMS request id.
    let log = function.function_log();
    let records: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["audit"] == "decision")
        .collect();
    let refused = records
        .iter()
        .find(|r| r["rule"] == "chain_ids")
        .unwrap_or_else(|| panic!("no chain_ids refusal in {log}"));
    assert_eq!(refused["decision"], "refused", "{refused}");
    assert_eq!(refused["source"], "lambda");
    assert_eq!(refused["to"], RECIPIENT, "{refused}");
    assert_eq!(refused["signed"], Value::Null);
    let signed: Vec<&Value> = records
        .iter()
        .filter(|r| r["decision"] == "allowed")
        .collect();
    assert_eq!(signed.len(), 1, "{log}");
    assert!(
        signed[0]["kms_request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
            && signed[0]["signed"].as_str().is_some_and(|h| h.len() == 66)
            && signed[0]["request_id"].is_string(),
        "{}",
        signed[0]
    );
    assert!(
        records
            .iter()
            .filter(|r| r["decision"] == "refused")
            .count()
            >= 5,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_function_without_a_policy_or_with_a_rule_it_cannot_keep_refuses_to_start() {
    let key = TestKey::ethereum(&kms().await).await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let env = |extra: Option<(&str, &str)>| {
        let mut env = vec![
            ("KMS_KEY_ID".to_owned(), key.id.clone()),
            ("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint().to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ];
        env.extend(extra.map(|(n, v)| (n.to_owned(), v.to_owned())));
        env
    };
    let refusal = |extra| {
        format!(
            "{:#}",
            Emulator::start(lambda_binary(), &env(extra), Duration::from_secs(60))
                .expect_err("started")
        )
    };
    assert!(
        refusal(None).contains("KMS_ETH_POLICY"),
        "{}",
        refusal(None)
    );
    let address = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]))["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let stateful = format!("[[account]]\naddress = \"{address}\"\nmax_cost_per_24h = \"1ether\"\n");
    let message = refusal(Some(("KMS_ETH_POLICY", &stateful)));
    assert!(
        message.contains("cannot enforce max_cost_per_24h"),
        "{message}"
    );
    let bad = refusal(Some(("KMS_ETH_POLICY", "[[account]]\naddress = 5\n")));
    assert!(bad.contains("line 2"), "{bad}");
    let other = format!("[[account]]\naddress = \"{RECIPIENT}\"\n");
    let message = refusal(Some(("KMS_ETH_POLICY", &other)));
    assert!(message.contains("no [[account]] block for"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_xtask_lambda_invoke_answers_the_readme_example() {
    let key = TestKey::ethereum(&kms().await).await;
    let output = Command::new(xtask_binary())
        .args([
            "lambda",
            "invoke",
            "--key-id",
            &key.id,
            "--unrestricted",
            "--event",
        ])
        .arg(readme_example())
        .output()
        .unwrap();
    let answer = json_output(&output);
    let signed = decode(&answer);
    assert_eq!(signed.tx.chain_id(), Some(1));
    assert_eq!(signed.tx.value(), U256::from(10_000_000_000_000_000u64));
    assert!(
        stderr(&output).contains("cold start"),
        "{}",
        stderr(&output)
    );
}
