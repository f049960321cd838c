//! The policy against what requests do, not what they name: each attack of issue 24 done
//! through a running service (fees burnt past the caps, a contract creation forwarding value
//! around `recipients`, raw payloads signed as messages, batches past the rate), with what
//! left the account read back from the node and KMS `Sign` calls counted by the fault proxy.

use kms_eth_e2e::served::raw_request;
use serde_json::{json, Value};

use super::guarded::{denied_by, ether, quantity, Guarded};
use super::{receipt, OTHER, RECIPIENT};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fees_count_in_the_caps_so_gas_cannot_burn_past_them() {
    // Case 1 of the issue: creations of 20M gas at 50 gwei (1 ether of fees each) once
    // burnt past a 3 ether cap that counted only their value.
    let guarded = Guarded::start(
        "contract_creation = true\nmax_cost_per_24h = \"3ether\"\nmax_cost_per_tx = \"2ether\"\n",
    )
    .await;
    let creation = |value: &str| {
        json!({
            "data": "0x60fe60005360016000f3",
            "value": quantity(ether(value)),
            "gas": "0x1312d00",
            "maxFeePerGas": "0xba43b7400",
            "maxPriorityFeePerGas": "0x3b9aca00",
        })
    };
    let before = guarded.signs();
    let start_balance = guarded.balance(&guarded.address);
    // 1 ether + 1 ether of fees at most: exactly the per-transaction cap.
    let first = guarded.send(creation("1"));
    assert!(first["result"].is_string(), "{first}");
    receipt(guarded.node.url(), &first["result"]);
    // 0.5 ether more would be 1.5 ether of value in all, under the 24-hour cap; with its
    // fees it may cost 1.5 ether, 3.5 in all: refused.
    assert_eq!(
        denied_by(&guarded.send(creation("0.5"))),
        "max_cost_per_24h"
    );
    // A transaction of no value with 100 kB of call data, 5M gas at 500 gwei: it may cost
    // 2.5 ether, all of it fees. Refused by the per-transaction cap.
    let heavy = json!({
        "to": RECIPIENT,
        "data": format!("0x{}", "ab".repeat(100_000)),
        "gas": "0x4c4b40",
        "maxFeePerGas": "0x746a528800",
        "maxPriorityFeePerGas": "0x3b9aca00",
    });
    assert_eq!(denied_by(&guarded.send(heavy)), "max_cost_per_tx");
    assert_eq!(
        guarded.signs(),
        before + 1,
        "a refusal made a KMS Sign call"
    );
    assert_eq!(guarded.nonce(), 1, "only the first creation was sent");
    let spent = start_balance - guarded.balance(&guarded.address);
    assert!(
        spent > ether("1") && spent <= ether("2"),
        "the account lost {spent} wei"
    );
    // Every decision has its audit record, refusals with the rule and what was refused.
    let log = guarded.served.log();
    let records: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["audit"] == "decision")
        .collect();
    let decisions: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["decision"].as_str().unwrap_or_default(),
                r["rule"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("allowed", ""),
            ("refused", "max_cost_per_24h"),
            ("refused", "max_cost_per_tx")
        ],
        "{log}"
    );
    let refused = &records[1];
    assert_eq!(refused["method"], "eth_sendTransaction");
    assert_eq!(refused["to"], Value::Null, "a creation: {refused}");
    assert_eq!(refused["value"], ether("0.5").to_string());
    assert_eq!(refused["gas_limit"], 20_000_000);
    assert_eq!(refused["max_fee_per_gas"], "50000000000");
    assert_eq!(refused["type"], 2);
    assert_eq!(refused["request_id"], 1);
    assert_eq!(refused["signed"], Value::Null);
    assert_eq!(records[0]["signed"], first["result"]);
    assert!(records[0]["kms_request_id"].is_string(), "{}", records[0]);
}

/// Init code that sends the contract's whole balance (the value it was created with) to
/// [`OTHER`]: PUSH20 OTHER, SELFDESTRUCT.
fn forwarding_init_code() -> String {
    format!("0x73{}ff", OTHER[2..].to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_contract_creation_cannot_get_value_around_recipients() {
    // Case 2: `recipients` set and `contract_creation` left out.
    let guarded = Guarded::start(&format!("recipients = [\"{RECIPIENT}\"]\n")).await;
    let forward = json!({ "data": forwarding_init_code(), "value": quantity(ether("0.3")) });
    let other_before = guarded.balance(OTHER);
    let before = guarded.signs();
    assert_eq!(
        denied_by(&guarded.send(forward.clone())),
        "contract_creation"
    );
    assert_eq!(guarded.signs(), before);
    assert_eq!(guarded.nonce(), 0);
    assert_eq!(guarded.balance(OTHER), other_before);
    // The same request under `contract_creation = true` does forward the value: what the
    // refusal stopped was real.
    std::fs::write(
        &guarded.policy,
        format!(
            "[[account]]\naddress = \"{}\"\nrecipients = [\"{RECIPIENT}\"]\ncontract_creation = true\n",
            guarded.address
        ),
    )
    .unwrap();
    guarded.served.signal(nix::sys::signal::Signal::SIGHUP);
    let mut answer = Value::Null;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        answer = guarded.send(forward.clone());
        if answer["result"].is_string() {
            break;
        }
    }
    assert!(answer["result"].is_string(), "{answer}");
    receipt(guarded.node.url(), &answer["result"]);
    assert_eq!(guarded.balance(OTHER), other_before + ether("0.3"));
}

/// An EIP-4361 message signing in to `domain` on `chain` as `address`.
fn sign_in(domain: &str, address: &str, chain: u64) -> String {
    let text = format!(
        "{domain} wants you to sign in with your Ethereum account:\n{address}\n\nSign in to the \
         app.\n\nURI: https://{domain}\nVersion: 1\nChain ID: {chain}\nNonce: 8x3kq2pl\nIssued \
         At: 2026-12-07T18:00:00Z"
    );
    format!("0x{}", hex::encode(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn personal_sign_and_eth_sign_are_one_rule_family_and_raw_payloads_need_their_own_yes() {
    // Case 3: `eth_sign = false` once left personal_sign signing the same payloads.
    let guarded = Guarded::start("").await;
    let address = guarded.address.clone();
    let chain = guarded.node.chain_id();
    let digest = format!("0x{}", "5a".repeat(32));
    let before = guarded.signs();
    for (method, params, rule) in [
        (
            "personal_sign",
            json!(["0x68656c6c6f", address]),
            "messages",
        ),
        ("eth_sign", json!([address, "0x68656c6c6f"]), "messages"),
        ("personal_sign", json!([digest, address]), "messages.raw"),
    ] {
        assert_eq!(
            denied_by(&guarded.served.call(method, params)),
            rule,
            "{method}"
        );
    }
    // Text allowed, raw payloads not; one app allowed to sign in.
    std::fs::write(
        &guarded.policy,
        format!(
            "[[account]]\naddress = \"{address}\"\nrequests_per_minute = 10\n[account.messages]\n\
             text = true\nsiwe = [{{ domain = \"app.example.com\", chain_id = {chain} }}]\n"
        ),
    )
    .unwrap();
    guarded.served.signal(nix::sys::signal::Signal::SIGHUP);
    let mut hello = Value::Null;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        hello = guarded
            .served
            .call("personal_sign", json!(["0x68656c6c6f", address]));
        if hello["result"].is_string() {
            break;
        }
    }
    assert!(hello["result"].is_string(), "{hello}");
    // 32 bytes (a digest), 31 bytes of binary: each refused by both methods.
    let binary = format!("0x{}", "ff".repeat(31));
    for payload in [&digest, &binary] {
        for (method, params) in [
            ("personal_sign", json!([payload, address])),
            ("eth_sign", json!([address, payload])),
        ] {
            assert_eq!(
                denied_by(&guarded.served.call(method, params)),
                "messages.raw",
                "{method} {payload}"
            );
        }
    }
    let signed_in = guarded.served.call(
        "personal_sign",
        json!([sign_in("app.example.com", &address, chain), address]),
    );
    assert!(signed_in["result"].is_string(), "{signed_in}");
    assert_eq!(
        denied_by(&guarded.served.call(
            "personal_sign",
            json!([sign_in("evil.example", &address, chain), address])
        )),
        "messages.siwe"
    );
    // Two signatures (hello, the sign-in) and seven signing requests since the reload, ten
    // a minute allowed: a batch of five gets three, each of its requests counted.
    assert_eq!(guarded.signs(), before + 2);
    let batch: Vec<Value> = (0..5)
        .map(|id| {
            json!({"jsonrpc": "2.0", "id": id, "method": "personal_sign", "params": [format!("0x{:02x}61", id + 0x61), address]})
        })
        .collect();
    let (status, body) = raw_request(
        &guarded.served.address,
        "POST / HTTP/1.1",
        &["Content-Type: application/json"],
        serde_json::to_string(&batch).unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    let signed = answers.iter().filter(|a| a["result"].is_string()).count();
    let limited = answers
        .iter()
        .filter(|a| a["error"]["data"]["rule"] == "requests_per_minute")
        .count();
    assert_eq!((signed, limited), (3, 2), "{body}");
    assert_eq!(guarded.signs(), before + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulate_refuses_a_transaction_that_would_revert_before_kms_is_asked() {
    let guarded = Guarded::start("simulate = true\nmax_gas_per_tx = 100000\n").await;
    // A contract whose code is the invalid instruction: every call to it fails.
    kms_eth_harness::jsonrpc::call(guarded.node.url(), "anvil_setCode", json!([OTHER, "0xfe"]))
        .unwrap();
    let before = guarded.signs();
    // The gas is given, so that the node's estimate (which would fail too) is not asked.
    let failing = json!({ "to": OTHER, "value": "0x1", "gas": "0x7530" });
    assert_eq!(denied_by(&guarded.send(failing)), "simulate");
    assert_eq!(
        denied_by(&guarded.send(json!({ "to": RECIPIENT, "value": "0x1", "gas": "0x186a1" }))),
        "max_gas_per_tx"
    );
    assert_eq!(guarded.signs(), before);
    assert_eq!(guarded.nonce(), 0);
    let fine = guarded.send(json!({ "to": RECIPIENT, "value": "0x1", "gas": "0x186a0" }));
    assert!(fine["result"].is_string(), "{fine}");
    receipt(guarded.node.url(), &fine["result"]);
    assert_eq!(guarded.signs(), before + 1);
}
