//! The service's policy: each rule refuses before KMS is asked (Sign calls counted by the
//! fault proxy) and lets through what it allows; the 24-hour spend kept across a restart and
//! its file locked; the policy reloaded on SIGHUP, a bad one refused.

use std::time::Duration;

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::{funded_account, kms_eth_command, localstack_endpoint, stderr};
use serde_json::{json, Value};

use super::{receipt, write_temp, OTHER, RECIPIENT};

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
max_cost_per_tx = "1.01ether"
max_cost_per_24h = "1.5ether"
max_fee_per_gas = "100gwei"
[account.selectors]
"{OTHER}" = ["0x12345678"]
"#,
            chain = node.chain_id()
        ),
    );
    let state = kms_eth_e2e::scratch_dir().join(format!("kms-eth-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let args = [
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--policy",
        policy.to_str().unwrap(),
        "--state-dir",
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
            "max_cost_per_tx",
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
        "messages",
        "messages are refused unless the policy allows them"
    );
    assert_eq!(signs(), before, "a denied request made a KMS Sign call");

    // The same rules let through what they allow; each allowed send is one Sign.
    for tx in [
        json!({ "to": RECIPIENT, "value": "0xde0b6b3a7640000" }), // 1 ether
        json!({ "to": OTHER, "data": "0x12345678" }),
    ] {
        let hash = send(&served, tx.clone());
        assert!(hash.get("result").is_some(), "{tx}: {hash}");
        receipt(node.url(), &hash["result"]);
    }
    assert_eq!(signs(), before + 2);
    // 1 ether spent: another 1 ether passes the per-transaction cap, not the 24-hour one,
    // and a restart does not forget the spend.
    let again = json!({ "to": RECIPIENT, "value": "0xde0b6b3a7640000" });
    assert_eq!(denied_by(&send(&served, again.clone())), "max_cost_per_24h");
    drop(served);
    let served = Served::start(&args);
    assert_eq!(denied_by(&send(&served, again)), "max_cost_per_24h");
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
        metrics.contains("kms_eth_policy_denials_total{rule=\"max_cost_per_24h\"} 1"),
        "{metrics}"
    );
    assert_eq!(signs(), before + 2);

    // requests_per_minute (every signing method counts: the eth_sign below is one of the
    // three), and text messages allowed, with a policy reloaded on SIGHUP; the
    // chain_ids rule (the service's chain is the node's, so a policy without it refuses
    // every transaction).
    std::fs::write(
        &policy,
        format!(
            "[[account]]\naddress = \"{address}\"\nrequests_per_minute = 3\nmessages = {{ text = true }}\nchain_ids = [{}]\n",
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
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_file(&policy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_is_found_by_the_user_not_by_the_folder_the_service_starts_in() {
    // Two services with a 24-hour cap, one started inside the clone and one outside it:
    // before, each kept a ledger of its own (the clone's .kms-eth, the per-user folder) and
    // each allowed the whole cap. Without KMS_ETH_HOME, both must find the per-user folder.
    let (key, address, node) = funded_account().await;
    let scratch = kms_eth_e2e::scratch_dir().join(format!("ledger-home-{}", &address[2..10]));
    let (home, first_folder, second_folder) = (
        scratch.join("data"),
        kms_eth_harness::process::project_root(),
        scratch.join("elsewhere"),
    );
    for folder in [&home, &second_folder] {
        std::fs::create_dir_all(folder).unwrap();
    }
    let policy = write_temp(
        "ledger-policy.toml",
        &format!(
            "[[account]]\naddress = \"{address}\"\nchain_ids = [{}]\nmax_cost_per_24h = \"1ether\"\n",
            node.chain_id()
        ),
    );
    let serve = |folder: &std::path::Path| {
        let port = kms_eth_harness::process::free_port().unwrap();
        let mut command = kms_eth_command(&[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rpc-url",
            node.url(),
            "--key-id",
            &key.id,
            "--policy",
            policy.to_str().unwrap(),
        ])
        .env_remove("KMS_ETH_HOME")
        .env_remove("KMS_ETH_STATE_DIR")
        .env("XDG_DATA_HOME", &home)
        .into_command();
        command.current_dir(folder);
        (command, format!("127.0.0.1:{port}"))
    };
    let (mut first, listen) = serve(&first_folder);
    // Stopped when dropped, so that a failing assertion does not leave it running.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let first = Running(
        first
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok((200, _)) = raw_request(&listen, "GET /healthz HTTP/1.1", &[], b"") {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(healthy, "the first service did not start");
    assert!(
        home.join("kms-eth/serve/spend.lock").exists(),
        "the ledger's lock is in the per-user data folder"
    );
    let (mut second, _) = serve(&second_folder);
    let refused = second.output().unwrap();
    drop(first);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("another kms-eth serve"),
        "{}",
        stderr(&refused)
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_file(&policy);
}
