//! `kms-eth serve` end to end: real clients (cast, ethers) sending through it to anvil, a
//! sponsored EIP-7702 delegation, the policy refusing before KMS is asked (KMS calls counted
//! by the fault proxy), hostile requests, concurrent sends from one account, tag discovery,
//! health and metrics.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::{
    funded_account, json_output, kms, kms_eth, kms_eth_command, localstack_endpoint, nonce, stderr,
    TestKey,
};
use kms_eth_harness::anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const OTHER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("kms-eth-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_ethers_and_web3py_send_through_the_service_and_each_transaction_is_mined_from_the_kms_address(
) {
    let (key, address, node) = funded_account().await;
    let served = Served::unrestricted(node.url(), &key.id);
    assert_eq!(served.result("eth_accounts", json!([])), json!([address]));
    // Passed through: the node's own answer.
    assert_eq!(
        served.result("eth_chainId", json!([])),
        json!(format!("{:#x}", node.chain_id()))
    );

    // cast: eth_sendTransaction from an "unlocked" account, as with a node's own accounts.
    let cast = Command::new(anvil::binary("cast"))
        .args([
            "send",
            "--unlocked",
            "--from",
            &address,
            "--rpc-url",
            &served.url,
            "--json",
        ])
        .args([RECIPIENT, "--value", "1000000000"])
        .output()
        .unwrap();
    assert!(
        cast.status.success(),
        "cast send: {}\n{}",
        stderr(&cast),
        served.log()
    );
    let cast_receipt: Value = serde_json::from_slice(&cast.stdout).unwrap();
    assert_eq!(cast_receipt["status"], "0x1", "{cast_receipt}");
    assert_eq!(
        cast_receipt["from"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );

    // ethers v6: JsonRpcSigner.sendTransaction and signMessage.
    let script = format!(
        r#"const {{ ethers }} = require("ethers");
        (async () => {{
          const provider = new ethers.JsonRpcProvider("{url}", undefined, {{ staticNetwork: true }});
          const signer = await provider.getSigner("{address}");
          const tx = await signer.sendTransaction({{ to: "{RECIPIENT}", value: 12345n }});
          const mined = await tx.wait();
          const signature = await signer.signMessage("hello from ethers");
          console.log(JSON.stringify({{ hash: tx.hash, from: mined.from, status: mined.status,
            recovered: ethers.verifyMessage("hello from ethers", signature) }}));
        }})().catch((err) => {{ console.error(err); process.exit(1); }});"#,
        url = served.url
    );
    let result = kms_eth_e2e::run_ethers(&script, &served.log());
    assert_eq!(result["status"], 1, "{result}");
    assert_eq!(result["from"].as_str().unwrap(), address);
    assert_eq!(result["recovered"].as_str().unwrap(), address);

    // web3.py: eth.send_transaction, with web3.py filling in gas and fees through the
    // service (passed through to the node).
    let python = kms_eth_harness::clients::web3_python().unwrap();
    let script = format!(
        r#"
import json
from web3 import Web3
w3 = Web3(Web3.HTTPProvider("{url}"))
tx = w3.eth.send_transaction({{"from": "{address}", "to": "{RECIPIENT}", "value": 777}})
receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=60)
print(json.dumps({{"from": receipt["from"], "status": receipt["status"], "accounts": w3.eth.accounts}}))
"#,
        url = served.url
    );
    let web3 = Command::new(&python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        web3.status.success(),
        "web3.py: {}\n{}",
        stderr(&web3),
        served.log()
    );
    let result: Value = serde_json::from_slice(&web3.stdout).unwrap();
    assert_eq!(result["status"], 1, "{result}");
    assert_eq!(result["from"].as_str().unwrap(), address);
    assert_eq!(result["accounts"], json!([address]));

    // personal_sign answers what kms-eth verify (and so EIP-191) recovers.
    let signature = served.result(
        "personal_sign",
        json!([format!("0x{}", hex::encode("hi")), address]),
    );
    let verified = kms_eth(&[
        "verify",
        "--message",
        "hi",
        "--signature",
        signature.as_str().unwrap(),
        "--address",
        &address,
    ]);
    assert!(verified.status.success(), "{}", stderr(&verified));

    // eth_signTransaction: a raw transaction anvil accepts from the KMS address.
    let raw = served.result(
        "eth_signTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
    );
    let hash = rpc(node.url(), "eth_sendRawTransaction", json!([raw])).unwrap();
    let mined = receipt(node.url(), &hash);
    assert_eq!(
        mined["from"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );
    assert_eq!(nonce(node.url(), &address), 4);
    // One audit line per signature: four transactions and two messages, each with what was
    // signed (a transaction by its hash) and the KMS request id that finds it in CloudTrail.
    let log = served.log();
    let audits: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"audit\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(audits.len(), 6, "{log}");
    for line in &audits {
        assert!(
            line["kms_request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{line}"
        );
        assert_eq!(line["account"], address.as_str());
        assert_eq!(line["policy"], "unrestricted");
    }
    assert!(audits.iter().any(|line| line["signed"] == hash), "{log}");
    assert_eq!(served.stop(), Some(0), "a SIGTERM ends the service cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_4_transaction_through_the_service_installs_an_authorization_signed_elsewhere() {
    let (key, address, node) = funded_account().await;
    // Another KMS account consents to delegate to RECIPIENT's code (nonce 0: it has never
    // sent); the service's account sends and pays for it (a sponsored delegation).
    let authority = TestKey::ethereum(&kms().await).await;
    let sign_authorization = |chain_id: &str| -> Value {
        let signed = kms_eth_command(&[
            "sign-authorization",
            "--key-id",
            &authority.id,
            "--delegate",
            RECIPIENT,
            "--chain-id",
            chain_id,
            "--nonce",
            "0",
        ])
        .success();
        serde_json::from_slice(&signed.stdout).unwrap()
    };
    let authorization = sign_authorization(&node.chain_id().to_string());
    let authority_address = json_output(&kms_eth(&[
        "verify",
        "--authorization",
        &authorization.to_string(),
        "--json",
    ]))["signer"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = Served::unrestricted(node.url(), &key.id);
    let invalid = |tx: Value, expected: &str| {
        let reply = served.call("eth_sendTransaction", json!([tx]));
        assert_eq!(reply["error"]["code"], -32602, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{expected}: {reply}");
    };
    // Refused before anything is signed: an authorization for another chain (it would be
    // mined and paid for without delegating), a list on another type, a type 4 without one.
    invalid(
        json!({ "from": address, "to": authority_address, "authorizationList": [sign_authorization("999")] }),
        "an authorization for chain 999 cannot take effect on chain",
    );
    invalid(
        json!({ "from": address, "to": authority_address, "type": "0x2", "authorizationList": [authorization] }),
        "only type 0x4",
    );
    invalid(
        json!({ "from": address, "to": authority_address, "type": "0x4" }),
        "invalid authorizationList: missing or empty",
    );
    // The sending account's own authorization needs the transaction's nonce + 1: with the
    // account's current nonce (0, which the transaction itself takes) it would be mined and
    // paid for, and install nothing.
    let own = serde_json::from_slice::<Value>(
        &kms_eth_command(&[
            "sign-authorization",
            "--key-id",
            &key.id,
            "--delegate",
            RECIPIENT,
            "--chain-id",
            &node.chain_id().to_string(),
            "--nonce",
            "0",
        ])
        .success()
        .stdout,
    )
    .unwrap();
    invalid(
        json!({ "from": address, "to": address, "authorizationList": [own] }),
        "is signed by the sending account",
    );
    assert_eq!(nonce(node.url(), &address), 0, "nothing was sent");

    let hash = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": authority_address, "authorizationList": [authorization] }]),
    );
    let mined = receipt(node.url(), &hash);
    assert_eq!(mined["status"], "0x1", "{mined}");
    assert_eq!(mined["type"], "0x4", "{mined}");
    assert_eq!(
        mined["from"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );
    let code = rpc(
        node.url(),
        "eth_getCode",
        json!([authority_address, "latest"]),
    )
    .unwrap();
    assert_eq!(
        code.as_str().unwrap().to_lowercase(),
        format!(
            "0xef0100{}",
            RECIPIENT.trim_start_matches("0x").to_lowercase()
        ),
        "the authority's code is the delegation designator"
    );
    // eth_signTransaction gives the same kind of transaction without sending it.
    let raw = served.result(
        "eth_signTransaction",
        json!([{ "from": address, "to": authority_address, "authorizationList": [authorization] }]),
    );
    let verified = json_output(&kms_eth(&["verify", raw.as_str().unwrap(), "--json"]));
    assert_eq!(verified["from"], address.as_str(), "{verified}");
    assert_eq!(
        verified["authorization_list"][0]["authority"],
        authority_address.as_str(),
        "{verified}"
    );
    // The audit line says whose code the transaction changed, and to what.
    let log = served.log();
    let audit: Value = log
        .lines()
        .filter(|l| l.contains("\"audit\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|line: &Value| line["signed"] == hash)
        .unwrap_or_else(|| panic!("no audit line for {hash}: {log}"));
    assert_eq!(
        audit["authorizations"],
        json!([{
            "authority": authority_address,
            "delegate": RECIPIENT,
            "chain_id": node.chain_id(),
            "nonce": 0,
        }]),
        "{audit}"
    );
    assert_eq!(served.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_policy_rule_refuses_before_kms_is_asked_and_allows_the_rest() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let policy = write_temp(
        "policy.toml",
        &format!(
            r#"[[account]]
address = "{address}"
chain_ids = [{chain}]
recipients = ["{RECIPIENT}", "{OTHER}"]
max_value_per_tx = "1ether"
max_value_per_24h = "1.5ether"
max_fee_per_gas = "100gwei"
contract_creation = false
[account.selectors]
"{OTHER}" = ["0xa9059cbb"]
"#,
            chain = node.chain_id()
        ),
    );
    let state = std::env::temp_dir().join(format!("kms-eth-spend-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let args = [
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--policy",
        policy.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
        "--endpoint-url",
        proxy.endpoint(),
    ];
    let served = Served::start(&args);
    let send = |served: &Served, tx: Value| {
        let mut tx = tx;
        tx["from"] = json!(address);
        served.call("eth_sendTransaction", json!([tx]))
    };
    let denied_by = |reply: &Value| -> String {
        assert_eq!(reply["error"]["code"], -32003, "{reply}");
        reply["error"]["data"]["rule"].as_str().unwrap().to_owned()
    };
    // An EIP-7702 transaction, here carrying the account's own consent to a delegation
    // (signed beforehand, outside the service), which the policy does not allow.
    let own_authorization: Value = serde_json::from_slice(
        &kms_eth_command(&[
            "sign-authorization",
            "--key-id",
            &key.id,
            "--delegate",
            OTHER,
            "--chain-id",
            &node.chain_id().to_string(),
            "--nonce",
            "1",
        ])
        .success()
        .stdout,
    )
    .unwrap();
    let signs = || proxy.counts("Sign").attempts();
    let before = signs();
    for (tx, rule) in [
        (
            json!({ "to": RECIPIENT, "nonce": "0x0", "authorizationList": [own_authorization] }),
            "authorizations",
        ),
        (
            json!({ "to": "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "value": "0x1" }),
            "recipients",
        ),
        (
            json!({ "to": RECIPIENT, "value": "0x1bc16d674ec80000" }),
            "max_value_per_tx",
        ),
        (
            json!({ "to": RECIPIENT, "value": "0x1", "maxFeePerGas": "0x2e90edd000", "maxPriorityFeePerGas": "0x1" }),
            "max_fee_per_gas",
        ),
        (
            json!({ "data": "0x60fe60005360016000f3" }),
            "contract_creation",
        ),
        (json!({ "to": OTHER, "data": "0x095ea7b3" }), "selectors"),
    ] {
        assert_eq!(denied_by(&send(&served, tx.clone())), rule, "{tx}");
    }
    assert_eq!(
        denied_by(&served.call("eth_sign", json!([address, "0x1234"]))),
        "eth_sign",
        "eth_sign is off unless the policy allows it"
    );
    assert_eq!(signs(), before, "a denied request made a KMS Sign call");

    // The same rules let through what they allow; each allowed send is one Sign.
    for tx in [
        json!({ "to": RECIPIENT, "value": "0xde0b6b3a7640000" }), // 1 ether
        json!({ "to": OTHER, "data": "0xa9059cbb" }),
    ] {
        let hash = send(&served, tx.clone());
        assert!(hash.get("result").is_some(), "{tx}: {hash}");
        receipt(node.url(), &hash["result"]);
    }
    assert_eq!(signs(), before + 2);
    // 1 ether spent: another 1 ether passes the per-transaction cap, not the 24-hour one,
    // and a restart does not forget the spend.
    let again = json!({ "to": RECIPIENT, "value": "0xde0b6b3a7640000" });
    assert_eq!(
        denied_by(&send(&served, again.clone())),
        "max_value_per_24h"
    );
    drop(served);
    let served = Served::start(&args);
    assert_eq!(denied_by(&send(&served, again)), "max_value_per_24h");
    // A second service on the same spend file, while this one runs, would double the cap:
    // it is refused at start, and the running one goes on.
    let port = kms_eth_harness::process::free_port().unwrap();
    kms_eth_e2e::TestCommand::new(kms_eth_e2e::kms_eth_binary())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--region",
            "us-east-1",
        ])
        .args(args)
        .usage_error("another kms-eth serve");
    let metrics = raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"")
        .unwrap()
        .1;
    assert!(
        metrics.contains("kms_eth_policy_denials_total{rule=\"max_value_per_24h\"} 1"),
        "{metrics}"
    );
    assert_eq!(signs(), before + 2);

    // requests_per_minute, and eth_sign allowed, with a policy reloaded on SIGHUP; the
    // chain_ids rule (the service's chain is the node's, so a policy without it refuses
    // every transaction).
    std::fs::write(
        &policy,
        format!(
            "[[account]]\naddress = \"{address}\"\nrequests_per_minute = 2\neth_sign = true\nchain_ids = [{}]\n",
            node.chain_id()
        ),
    )
    .unwrap();
    served.signal(nix::sys::signal::Signal::SIGHUP);
    let mut reloaded = false;
    for _ in 0..50 {
        if served.log().contains("policy reloaded") {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reloaded, "{}", served.log());
    let signature = served.call("eth_sign", json!([address, "0x1234"]));
    assert!(
        signature["result"].is_string(),
        "eth_sign allowed: {signature}"
    );
    let small = json!({ "to": RECIPIENT, "value": "0x1" });
    assert!(send(&served, small.clone()).get("result").is_some());
    assert!(send(&served, small.clone()).get("result").is_some());
    assert_eq!(
        denied_by(&send(&served, small.clone())),
        "requests_per_minute"
    );
    std::fs::write(
        &policy,
        format!("[[account]]\naddress = \"{address}\"\nchain_ids = [1]\n"),
    )
    .unwrap();
    served.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(denied_by(&send(&served, small)), "chain_ids");
    // A bad policy on reload keeps the running one; at start it is refused with its line.
    std::fs::write(&policy, "[[account]]\naddress = \"0x12\"\n").unwrap();
    served.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        served.log().contains("the running one stays"),
        "{}",
        served.log()
    );
    let refused = kms_eth_e2e::kms_eth_command(&[
        "serve",
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--policy",
        policy.to_str().unwrap(),
    ])
    .output();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("line 2"), "{}", stderr(&refused));
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&policy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_the_right_error_and_the_service_keeps_serving() {
    let (key, address, node) = funded_account().await;
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--max-body-bytes",
        "4096",
    ]);
    let post = |body: &str| {
        raw_request(
            &served.address,
            "POST / HTTP/1.1",
            &["Content-Type: application/json"],
            body.as_bytes(),
        )
        .unwrap()
    };
    let code = |body: &str| -> i64 {
        let (_, answer) = post(body);
        let answer: Value =
            serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{body}: {answer}"));
        answer["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{body}: {answer}"))
    };
    let call = |method: &str, params: Value| {
        json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params }).to_string()
    };
    let cases: Vec<(String, i64)> = vec![
        ("{not json".to_owned(), -32700),
        ("".to_owned(), -32700),
        ("5".to_owned(), -32600),
        ("[]".to_owned(), -32600),
        (r#"{"id":1,"method":"eth_accounts"}"#.to_owned(), -32600),
        (r#"{"jsonrpc":"2.0","id":1,"method":7}"#.to_owned(), -32600),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_accounts","params":"x"}"#.to_owned(),
            -32600,
        ),
        (call("eth_sendTransaction", json!([])), -32602),
        (call("eth_sendTransaction", json!([5])), -32602),
        (
            call(
                "eth_sendTransaction",
                json!([{ "from": address, "to": RECIPIENT, "gas": 21000 }]),
            ),
            -32602,
        ),
        (
            call(
                "eth_sendTransaction",
                json!([{ "from": RECIPIENT, "to": RECIPIENT }]),
            ),
            -32602,
        ),
        (
            call("eth_sendTransaction", json!([{ "from": address }])),
            -32602,
        ),
        (
            call(
                "eth_sendTransaction",
                json!([{ "from": address, "to": RECIPIENT, "chainId": "0x1" }]),
            ),
            -32602,
        ),
        (
            call(
                "eth_sendTransaction",
                json!([{ "from": address, "to": RECIPIENT, "nonce": "0xffffffffffffffff" }]),
            ),
            -32602,
        ),
        (
            call(
                "eth_signTransaction",
                json!([{ "from": address, "to": "0x1234" }]),
            ),
            -32602,
        ),
        (call("personal_sign", json!(["hello", address])), -32602),
        (call("personal_sign", json!(["0x1234"])), -32602),
        (call("eth_sign", json!([7, "0x12"])), -32602),
        (call("eth_signTypedData_v4", json!([address, "{}"])), -32602),
        (
            call(
                "eth_sendTransaction",
                json!([{ "from": address, "to": RECIPIENT, "blobVersionedHashes": [] }]),
            ),
            -32602,
        ),
    ];
    for (body, expected) in &cases {
        assert_eq!(code(body), *expected, "{body}");
    }
    // Oversized, the wrong HTTP method, an unknown path, a notification.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000));
    assert_eq!(post(&big).0, 413);
    assert_eq!(
        raw_request(&served.address, "GET / HTTP/1.1", &[], b"")
            .unwrap()
            .0,
        405
    );
    assert_eq!(
        raw_request(&served.address, "GET /admin HTTP/1.1", &[], b"")
            .unwrap()
            .0,
        404
    );
    let notification = r#"{"jsonrpc":"2.0","method":"eth_accounts","params":[]}"#;
    assert_eq!(post(notification).0, 204);
    // A batch answers each call, errors in place.
    let (_, batch) = post(&format!("[{},{}]", call("eth_accounts", json!([])), "5"));
    let batch: Value = serde_json::from_str(&batch).unwrap();
    assert_eq!(batch[0]["result"], json!([address]));
    assert_eq!(batch[1]["error"]["code"], -32600);
    // A slow client that never finishes its headers does not hold the service up.
    let mut slow = std::net::TcpStream::connect(&served.address).unwrap();
    std::io::Write::write_all(&mut slow, b"POST / HTTP/1.1\r\nContent-Le").unwrap();
    assert_eq!(served.result("eth_accounts", json!([])), json!([address]));
    assert_eq!(
        nonce(node.url(), &address),
        0,
        "no hostile request sent anything"
    );
    assert!(cases.len() + 5 >= 20);

    // Listening beyond loopback needs a token, and then every request needs it.
    let refused = kms_eth_e2e::kms_eth_command(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
    ])
    .output();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--auth-token-file"),
        "{}",
        stderr(&refused)
    );
    let token = write_temp("token", "a-long-enough-test-token-0123456789");
    let port = kms_eth_harness::process::free_port().unwrap();
    let guarded = Served::start_on(
        &format!("0.0.0.0:{port}"),
        &[
            "--rpc-url",
            node.url(),
            "--key-id",
            &key.id,
            "--unrestricted",
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
    );
    let accounts = call("eth_accounts", json!([]));
    let with = |header: &[&str]| {
        raw_request(
            &guarded.address,
            "POST / HTTP/1.1",
            header,
            accounts.as_bytes(),
        )
        .unwrap()
        .0
    };
    assert_eq!(with(&[]), 401);
    assert_eq!(
        with(&["Authorization: Bearer wrong-token-wrong-token-00"]),
        401
    );
    assert_eq!(
        with(&["Authorization: Bearer a-long-enough-test-token-0123456789"]),
        200
    );
    let _ = std::fs::remove_file(token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_from_one_account_take_consecutive_nonces() {
    let (key, address, node) = funded_account().await;
    let served = Arc::new(Served::unrestricted(node.url(), &key.id));
    const CLIENTS: usize = 16;
    const SENDS: usize = 500;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let served = served.clone();
            let address = address.clone();
            std::thread::spawn(move || {
                (client..SENDS)
                    .step_by(CLIENTS)
                    .map(|_| {
                        served.result(
                            "eth_sendTransaction",
                            json!([{ "from": address, "to": RECIPIENT, "value": "0x1" }]),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let hashes: Vec<Value> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(hashes.len(), SENDS);
    let mut nonces: Vec<u64> = hashes
        .iter()
        .map(|hash| {
            let tx = rpc(node.url(), "eth_getTransactionByHash", json!([hash])).unwrap();
            assert!(!tx["blockNumber"].is_null(), "{hash} not mined");
            kms_eth_harness::jsonrpc::quantity(&tx["nonce"]).unwrap()
        })
        .collect();
    nonces.sort_unstable();
    assert_eq!(
        nonces,
        (0..SENDS as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(nonce(node.url(), &address), SENDS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_tags_select_only_enabled_tagged_kms_eth_keys() {
    // Web3Signer #1052: a tag filter that matched untagged keys. Here four kms-eth keys:
    // tagged and enabled, untagged, tagged but disabled, tagged but pending deletion.
    let kms = kms().await;
    let team = format!("serve-{}", std::process::id());
    let account_tag = ("kms-eth:account", "serve-test");
    let tagged = TestKey::ethereum_tagged(&kms, &[account_tag, ("team", &team)]).await;
    let _untagged = TestKey::ethereum_tagged(&kms, &[account_tag]).await;
    let disabled = TestKey::ethereum_tagged(&kms, &[account_tag, ("team", &team)]).await;
    kms.disable_key().key_id(&disabled.id).send().await.unwrap();
    let pending = TestKey::ethereum_tagged(&kms, &[account_tag, ("team", &team)]).await;
    kms.schedule_key_deletion()
        .key_id(&pending.id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let expected =
        json_output(&kms_eth(&["status", "--key-id", &tagged.id, "--json"]))["address"].clone();
    let node = anvil::Anvil::start(Duration::from_secs(60)).unwrap();
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-tag",
        &format!("team={team}"),
        "--unrestricted",
    ]);
    assert_eq!(served.result("eth_accounts", json!([])), json!([expected]));
    let (status, ready) = raw_request(&served.address, "GET /readyz HTTP/1.1", &[], b"").unwrap();
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["policy"], "unrestricted");
    // A key disabled under the running service makes it not ready.
    kms.disable_key().key_id(&tagged.id).send().await.unwrap();
    let (status, ready) = raw_request(&served.address, "GET /readyz HTTP/1.1", &[], b"").unwrap();
    assert_eq!(status, 503, "{ready}");
    kms.enable_key().key_id(&tagged.id).send().await.unwrap();
    let metrics = raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"")
        .unwrap()
        .1;
    assert!(
        metrics.contains("kms_eth_requests_total{method=\"eth_accounts\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_concurrent_sends_never_gets_a_transaction_twice() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let key = TestKey::ethereum(&kms().await).await;
    let address = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]))["address"]
        .as_str()
        .unwrap()
        .to_owned();
    // `--state`: the node keeps its chain (blocks, receipts) across the restart, as a real
    // node does; what a restart loses is the connections and the requests in flight.
    let state =
        std::env::temp_dir().join(format!("kms-eth-anvil-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let state_arg = state.to_str().unwrap().to_owned();
    let dir = anvil::test_dir();
    let node = anvil::Anvil::start_with(
        &dir,
        None,
        &["--state", &state_arg],
        Duration::from_secs(60),
    )
    .unwrap();
    rpc(
        node.url(),
        "anvil_setBalance",
        json!([address, "0x56bc75e2d63100000"]),
    )
    .unwrap();
    let port = node.port();
    // The service reaches the node through a gate that is closed for the restart: a node
    // restarting is unreachable for a while. (Straight to anvil, a request that arrived
    // after SIGTERM was answered and mined, but left out of the state anvil had written.)
    let mut gate =
        kms_eth_e2e::tcp_gate::TcpGate::start(format!("127.0.0.1:{port}").parse().unwrap())
            .unwrap();
    let url = gate.url();
    let served = Arc::new(Served::start(&[
        "--rpc-url",
        &url,
        "--key-id",
        &key.id,
        "--unrestricted",
    ]));
    const CLIENTS: usize = 16;
    const SENDS: usize = 200;
    let answered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (served, address, answered) = (served.clone(), address.clone(), answered.clone());
            std::thread::spawn(move || {
                (client..SENDS)
                    .step_by(CLIENTS)
                    .map(|index| {
                        // Each request's value is its own: a transaction sent twice would show.
                        let reply = served.call(
                            "eth_sendTransaction",
                            json!([{ "from": address, "to": RECIPIENT, "value": format!("{:#x}", index + 1) }]),
                        );
                        answered.fetch_add(1, Ordering::SeqCst);
                        (index + 1, reply)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < SENDS / 3 {
        std::thread::sleep(Duration::from_millis(20));
    }
    gate.close(); // the node goes away: connections refused, open ones cut
    std::thread::sleep(Duration::from_millis(300));
    drop(node); // SIGTERM: anvil writes its state and exits
    std::thread::sleep(Duration::from_millis(500));
    let node = anvil::Anvil::start_with(
        &dir,
        Some(port),
        &["--state", &state_arg],
        Duration::from_secs(60),
    )
    .unwrap();
    gate.open().unwrap();
    let replies: Vec<(usize, Value)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let (ok, failed): (Vec<_>, Vec<_>) = replies
        .iter()
        .partition(|(_, reply)| reply.get("result").is_some());
    // Every hash answered is mined on the node.
    for (value, reply) in &ok {
        let tx = rpc(
            node.url(),
            "eth_getTransactionByHash",
            json!([reply["result"]]),
        )
        .unwrap();
        assert!(
            !tx["blockNumber"].is_null(),
            "request {value}: {} answered but not mined",
            reply["result"]
        );
    }
    // Every other request got an error, and no request's transaction is on the chain twice.
    for (value, reply) in &failed {
        assert!(
            reply["error"]["message"].is_string(),
            "request {value}: {reply}"
        );
    }
    // The service goes on with the restarted node: the nonce manager follows its count.
    let after = served.result(
        "eth_sendTransaction",
        json!([{ "from": address, "to": RECIPIENT, "value": format!("{:#x}", SENDS + 1) }]),
    );
    receipt(node.url(), &after);
    let latest =
        kms_eth_harness::jsonrpc::quantity(&rpc(node.url(), "eth_blockNumber", json!([])).unwrap())
            .unwrap();
    let mut values = Vec::new();
    for number in 1..=latest {
        let block = rpc(
            node.url(),
            "eth_getBlockByNumber",
            json!([format!("{number:#x}"), true]),
        )
        .unwrap();
        for tx in block["transactions"].as_array().unwrap() {
            if tx["from"].as_str().unwrap().eq_ignore_ascii_case(&address) {
                values.push(kms_eth_harness::jsonrpc::quantity(&tx["value"]).unwrap());
            }
        }
    }
    let mined = values.len();
    values.sort_unstable();
    values.dedup();
    assert_eq!(
        values.len(),
        mined,
        "a request's transaction was mined twice"
    );
    assert!(
        mined > ok.len(),
        "{mined} mined, {} answered, latest block {latest}, nonce {}",
        ok.len(),
        nonce(node.url(), &address)
    );
    assert_eq!(
        nonce(node.url(), &address),
        mined as u64,
        "no gap in the nonces"
    );
    eprintln!(
        "node restarted under load: {} answered with a mined hash, {} errors, {mined} mined in all",
        ok.len(),
        failed.len()
    );
    let _ = std::fs::remove_file(&state);
}
