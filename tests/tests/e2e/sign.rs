//! Signing with an account, end to end against KMS (LocalStack by default) and a real anvil
//! node: `sign`, `sign-message` and `verify`, checked with cast (an independent client);
//! `verify` refusing high-s and chain-less transactions; `--expect-address` checked before
//! anything is signed; the original operations' JSON contract (`--event`, amounts signed
//! exactly); and a table of bad inputs refused before any call. Sending is `send`; typed
//! data, EIP-7702 and blobs have modules of their own.

use std::process::Command;
use std::time::Duration;

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    as_strs, assert_exit, assert_usage_error, funded_account, json_output, kms, kms_eth,
    kms_eth_binary, kms_eth_command, kms_eth_through, localstack_endpoint, nonce, stderr,
    transfer_flags,
};
use kms_eth_e2e::{TestCommand, TestKey};
use kms_eth_harness::anvil::{self, Anvil};
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_node::parse_quantity;
use kms_eth_signer::{
    keccak256, KmsSigner, LegacyTx, Signature, SignedTransaction, Signer, Transaction, U256,
};
use serde_json::{json, Value};

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// An address no test key has.
const SOMEONE_ELSE: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

#[tokio::test]
async fn signed_transactions_are_accepted_by_cast_publish() {
    let (key, _address, node) = funded_account().await;
    let chain_id = node.chain_id().to_string();
    let signed = json_output(&kms_eth(&[
        "sign",
        "--key-id",
        &key.id,
        "--chain-id",
        &chain_id,
        "--nonce",
        "0",
        "--gas-limit",
        "21000",
        "--max-fee-per-gas",
        "20gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--to",
        RECIPIENT,
        "--value",
        "1ether",
        "--json",
    ]));
    let published = Command::new(anvil::binary("cast"))
        .args([
            "publish",
            "--rpc-url",
            node.url(),
            signed["raw"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "cast publish refused: {}",
        stderr(&published)
    );
    let receipt = rpc(
        node.url(),
        "eth_getTransactionReceipt",
        json!([signed["hash"]]),
    )
    .unwrap();
    assert_eq!(parse_quantity(&receipt["status"]).unwrap(), 1);
}

#[tokio::test]
async fn message_signatures_are_accepted_by_cast_wallet_verify() {
    let key = TestKey::ethereum(&kms().await).await;
    let signed = json_output(&kms_eth(&[
        "sign-message",
        "--key-id",
        &key.id,
        "hello from KMS",
        "--json",
    ]));
    let (address, signature) = (
        signed["address"].as_str().unwrap(),
        signed["signature"].as_str().unwrap(),
    );
    assert_eq!(signature.len(), 2 + 130, "65 bytes");
    assert!(
        signature.ends_with("1b") || signature.ends_with("1c"),
        "v is 27 or 28"
    );
    anvil::install().unwrap();
    let verified = Command::new(anvil::binary("cast"))
        .args([
            "wallet",
            "verify",
            "--address",
            address,
            "hello from KMS",
            signature,
        ])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "cast wallet verify refused: {}",
        stderr(&verified)
    );

    let ours = kms_eth(&[
        "verify",
        "--message",
        "hello from KMS",
        "--signature",
        signature,
        "--address",
        address,
    ]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let wrong = kms_eth(&[
        "verify",
        "--message",
        "hello from kms",
        "--signature",
        signature,
        "--address",
        address,
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("not to"), "{}", stderr(&wrong));
}

#[tokio::test]
async fn verify_refuses_a_high_s_signature() {
    let (key, _address, node) = funded_account().await;
    let signed = json_output(&kms_eth(&[
        "sign",
        "--key-id",
        &key.id,
        "--chain-id",
        &node.chain_id().to_string(),
        "--nonce",
        "0",
        "--gas-limit",
        "21000",
        "--gas-price",
        "1gwei",
        "--type",
        "legacy",
        "--to",
        RECIPIENT,
        "--json",
    ]));
    let decoded =
        SignedTransaction::decode(&hex::decode(&signed["raw"].as_str().unwrap()[2..]).unwrap())
            .unwrap();
    // The same signature with s replaced by n - s (and the parity flipped) still verifies
    // mathematically, but EIP-2 forbids it.
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let high = Signature {
        s: (n - U256::from_be_bytes(decoded.signature.s)).to_be_bytes(),
        y_parity: !decoded.signature.y_parity,
        ..decoded.signature
    };
    let malleated = decoded.tx.into_signed(high);
    let verified = kms_eth(&["verify", &malleated.raw_hex()]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(
        stderr(&verified).contains("high-s"),
        "{}",
        stderr(&verified)
    );
}

#[tokio::test]
async fn the_status_event_is_answered_like_the_original() {
    let key = TestKey::ethereum(&kms().await).await;
    let status = kms_eth(&[
        "status",
        "--key-id",
        &key.id,
        "--event",
        r#"{"operation":"status"}"#,
    ]);
    let status = json_output(&status);
    assert_eq!(
        status.as_object().unwrap().len(),
        1,
        "exactly the original's one field: {status}"
    );
    let plain = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]));
    assert_eq!(status["eth_checksum_address"], plain["address"]);
}

#[tokio::test]
async fn the_sign_event_is_answered_like_the_original() {
    let key = TestKey::ethereum(&kms().await).await;
    let status = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]));
    let address = status["address"].as_str().unwrap().to_owned();

    let event = json!({
        "operation": "sign", "amount": 0.01, "dst_address": RECIPIENT, "nonce": 0, "chain_id": 31337,
        "max_fee_per_gas": "20gwei", "max_priority_fee_per_gas": "1gwei",
    });
    let signed = json_output(&kms_eth(&[
        "sign",
        "--key-id",
        &key.id,
        "--event",
        &event.to_string(),
    ]));
    let fields: Vec<&String> = signed.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["signed_tx_hash", "signed_tx_payload"]);
    let payload = hex::decode(&signed["signed_tx_payload"].as_str().unwrap()[2..]).unwrap();
    assert_eq!(
        signed["signed_tx_hash"],
        format!("0x{}", hex::encode(keccak256(&payload)))
    );
    let decoded = SignedTransaction::decode(&payload).unwrap();
    assert_eq!(decoded.recover_signer().unwrap().to_string(), address);
    assert_eq!(
        decoded.tx.value(),
        U256::from(10_000_000_000_000_000u64),
        "amount is in ether"
    );
    assert_eq!(decoded.tx.tx_type(), 2);

    // The same event from a file.
    let file =
        kms_eth_e2e::scratch_dir().join(format!("kms-eth-event-{}.json", std::process::id()));
    std::fs::write(&file, event.to_string()).unwrap();
    let from_file = json_output(&kms_eth(&[
        "sign",
        "--key-id",
        &key.id,
        "--event-file",
        file.to_str().unwrap(),
    ]));
    let payload = hex::decode(&from_file["signed_tx_payload"].as_str().unwrap()[2..]).unwrap();
    let from_file = SignedTransaction::decode(&payload).unwrap();
    // KMS signatures are not deterministic; the transaction and the signer are.
    assert_eq!(from_file.tx, decoded.tx);
    assert_eq!(from_file.recover_signer().unwrap().to_string(), address);
    std::fs::remove_file(file).unwrap();

    // A missing parameter is answered with the original's error object, and exit code 2.
    let missing = kms_eth(&[
        "sign",
        "--key-id",
        &key.id,
        "--event",
        r#"{"operation":"sign","dst_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","nonce":0,"chain_id":1}"#,
    ]);
    assert_eq!(missing.status.code(), Some(2));
    let answer: Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(answer["operation"], "sign");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("missing parameter - sign requires amount, dst_address and nonce"));
}

/// Bad inputs are refused before any KMS call: the endpoint given answers nothing, so any
/// call would fail with a connection error instead of the message asserted here.
#[test]
fn bad_inputs_are_refused_with_the_field_named_and_exit_code_2() {
    let base: Vec<(&str, &str)> = vec![
        ("--key-id", "alias/kms-eth-never-called"),
        ("--endpoint-url", "http://127.0.0.1:9"),
        ("--chain-id", "1"),
        ("--nonce", "0"),
        ("--gas-limit", "21000"),
        ("--max-fee-per-gas", "2gwei"),
        ("--max-priority-fee-per-gas", "1gwei"),
        ("--to", RECIPIENT),
    ];
    // `sign` with the base flags, where `extra` (flag, value pairs) replaces or adds flags,
    // and `drop` removes one.
    let sign_args = |extra: &[&str], drop: Option<&str>| -> Vec<String> {
        let mut flags: Vec<(String, String)> = base
            .iter()
            .filter(|(flag, _)| Some(*flag) != drop)
            .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
            .collect();
        for pair in extra.chunks(2) {
            let (flag, value) = (pair[0].to_owned(), pair[1].to_owned());
            match flags.iter_mut().find(|(f, _)| *f == flag) {
                Some(existing) => existing.1 = value,
                None => flags.push((flag, value)),
            }
        }
        std::iter::once("sign".to_owned())
            .chain(flags.into_iter().flat_map(|(f, v)| [f, v]))
            .collect()
    };
    // (extra arguments, message); later flags override the base ones.
    let sign_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--to", "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"],
            "invalid EIP-55 checksum",
        ),
        (
            vec!["--to", "0x1234"],
            "expected 0x followed by 40 hex digits",
        ),
        (vec!["--value", "-1ether"], "is negative"),
        (vec!["--value", "1.5wei"], "not a whole number of wei"),
        (
            vec![
                "--value",
                "115792089237316195423570985008687907853269984665640564039457584007913129639936",
            ],
            "does not fit in 256 bits",
        ),
        (vec!["--value", "1btc"], "unknown unit"),
        (
            vec![
                "--max-fee-per-gas",
                "115792089237316195423570985008687907853269984665640564039457584007913129639936",
            ],
            "invalid --max-fee-per-gas",
        ),
        (vec!["--chain-id", "0"], "0 is not a chain id"),
        (vec!["--chain-id", "mainnet"], "invalid --chain-id"),
        (vec!["--nonce", "-1"], "invalid --nonce: \"-1\" is negative"),
        (vec!["--nonce", "18446744073709551616"], "below 2^64"),
        (vec!["--nonce", "18446744073709551615"], "EIP-2681"),
        (vec!["--gas-limit", "21000.5"], "invalid --gas-limit"),
        (vec!["--data", "0xzz"], "invalid --data: not hex"),
        (vec!["--data", "abcd"], "must start with 0x"),
        (vec!["--data", "0xabc"], "invalid --data: not hex"),
        (vec!["--type", "5"], "not a transaction type"),
        (vec!["--gas-price", "1gwei"], "invalid --gas-price"),
        (
            vec!["--max-priority-fee-per-gas", "3gwei"],
            "above --max-fee-per-gas",
        ),
        (
            vec!["--type", "legacy", "--gas-price", "1gwei"],
            "only EIP-1559 transactions have it",
        ),
        (vec!["--access-list", "{not json"], "invalid --access-list"),
        (
            vec![
                "--access-list",
                r#"[{"address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","storageKeys":[],"slots":[]}]"#,
            ],
            "unknown field",
        ),
        (
            vec![
                "--access-list",
                r#"[{"address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","storageKeys":["0x01"]}]"#,
            ],
            "is not 32 bytes",
        ),
        (
            vec![
                "--event",
                r#"{"operation":"sign","amount":1,"dst_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","nonce":0,"chain_id":1,"gas_prize":1}"#,
            ],
            "unknown field \"gas_prize\"",
        ),
        (vec!["--event", "{not json"], "invalid event"),
        (
            vec![
                "--event",
                r#"{"operation":"sign","amount":1,"dst_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","chain_id":1}"#,
            ],
            "missing parameter",
        ),
        (
            vec![
                "--event",
                r#"{"operation":"sign","amount":-1,"dst_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","nonce":0,"chain_id":1}"#,
            ],
            "is negative",
        ),
        (
            vec![
                "--event",
                r#"{"operation":"sign","amount":1,"dst_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","nonce":0}"#,
            ],
            "invalid chain_id: missing",
        ),
        (vec!["--stack-name", "x"], "cannot be used with"),
    ];
    let mut checked = 0;
    let drop_cases: [(&str, &str); 3] = [
        ("--chain-id", "missing --chain-id"),
        ("--gas-limit", "missing --gas-limit"),
        ("--to", "invalid --to: missing"),
    ];
    let runs = sign_cases
        .iter()
        .map(|(extra, message)| (sign_args(extra, None), *message))
        .chain(
            drop_cases
                .iter()
                .map(|(flag, message)| (sign_args(&[], Some(flag)), *message)),
        );
    for (args, message) in runs {
        let output = TestCommand::new(kms_eth_binary()).args(&args).output();
        assert_usage_error(&output, &args, message);
        assert!(
            !stderr(&output).contains("cannot reach"),
            "{args:?} called the network"
        );
        checked += 1;
    }
    let other_cases: [(&[&str], &str); 5] = [
        (&["verify", "0xzz"], "not hex"),
        (&["verify", "0x02c0"], "invalid raw transaction"),
        (
            &["verify", "--message", "hi", "--signature", "0x1234"],
            "exactly 65 bytes",
        ),
        (
            &[
                "status",
                "--stack-name",
                "bad_name",
                "--endpoint-url",
                "http://127.0.0.1:9",
            ],
            "invalid stack name",
        ),
        (
            &[
                "status",
                "--key-id",
                "k",
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--event",
                r#"{"operation":"sign"}"#,
            ],
            "status answers",
        ),
    ];
    for (args, message) in other_cases {
        let output = TestCommand::new(kms_eth_binary()).args(args).output();
        assert_usage_error(&output, &args, message);
        checked += 1;
    }
    assert!(checked >= 25, "the table has {checked} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_address_is_checked_by_status_sign_and_send_before_anything_is_signed() {
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let key = TestKey::ethereum_in_localstack().await;
    let node = Anvil::start(Duration::from_secs(60)).unwrap();
    let address = kms_eth_through(&proxy, &["status", "--key-id", &key.id, "--json"]).json()
        ["address"]
        .as_str()
        .unwrap()
        .to_owned();
    rpc(
        node.url(),
        "anvil_setBalance",
        json!([address, "0xde0b6b3a7640000"]),
    )
    .unwrap();
    let chain_id = node.chain_id().to_string();
    let transfer = transfer_flags(&chain_id, SOMEONE_ELSE, "1gwei");
    let tx = as_strs(&transfer);
    let commands: [Vec<&str>; 3] = [
        vec!["status"],
        [&["sign", "--nonce", "0"][..], &tx].concat(),
        [&["send", "--rpc-url", node.url(), "--yes"][..], &tx].concat(),
    ];
    for command in &commands {
        let run = |expected: &str| {
            kms_eth_through(&proxy, command).args([
                "--key-id",
                &key.id,
                "--expect-address",
                expected,
                "--json",
            ])
        };
        let signs_before = proxy.counts("Sign").attempts();
        let refused = run(SOMEONE_ELSE).fails(1, &format!("not the expected {SOMEONE_ELSE}"));
        assert!(refused.stdout.is_empty(), "{command:?} printed a report");
        assert_eq!(
            proxy.counts("Sign").attempts(),
            signs_before,
            "{command:?} asked KMS to sign for the wrong account"
        );
        assert_eq!(
            nonce(node.url(), &address),
            0,
            "{command:?} sent a transaction"
        );
        let done = run(&address).json();
        assert!(
            done["address"] == address.as_str() || done["from"] == address.as_str(),
            "{command:?}: {done}"
        );
    }
    assert_eq!(
        nonce(node.url(), &address),
        1,
        "the accepted send was mined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_transactions_valid_on_every_chain() {
    let key = TestKey::ethereum(&kms().await).await;
    let signer = KmsSigner::new(kms().await, key.id.as_str()).await.unwrap();
    let unprotected = LegacyTx {
        chain_id: None,
        nonce: 0,
        gas_price: U256::from(1_000_000_000u64),
        gas_limit: 21_000,
        to: Some(RECIPIENT.parse().unwrap()),
        value: U256::from(1u8),
        input: Vec::new(),
    };
    // The signer signs one only when asked by name; verify must not accept it silently.
    let signed: SignedTransaction = signer
        .sign_unprotected_transaction(Transaction::Legacy(unprotected))
        .await
        .unwrap();
    let raw = signed.raw_hex();
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", raw.as_str()];
        args.extend(extra);
        kms_eth(&args)
    };
    assert_exit(&verify(&[]), &"unprotected", 1, "valid on every chain");
    assert_exit(
        &verify(&["--chain-id", "1"]),
        &"unprotected --chain-id",
        1,
        "valid on every chain",
    );
    let allowed = verify(&["--allow-unprotected", "--json"]);
    assert_eq!(json_output(&allowed)["from"], signer.address().to_string());
    assert_exit(
        &verify(&["--allow-unprotected", "--chain-id", "1"]),
        &"unprotected, --chain-id 1",
        1,
        "has no chain id",
    );

    // An EIP-155 transaction for chain 1 against --chain-id.
    let protected = signer
        .sign_transaction(Transaction::Legacy(LegacyTx {
            chain_id: Some(1),
            ..match signed.tx {
                Transaction::Legacy(tx) => tx,
                _ => unreachable!(),
            }
        }))
        .await
        .unwrap()
        .raw_hex();
    assert_exit(
        &kms_eth(&["verify", &protected, "--chain-id", "5"]),
        &"chain 1 as 5",
        1,
        "is for chain 1, not --chain-id 5",
    );
    assert!(kms_eth(&["verify", &protected, "--chain-id", "1"])
        .status
        .success());
    // A flag that needs another names it.
    assert_exit(
        &kms_eth(&["verify", &protected, "--signature", "0x00"]),
        &"--signature alone",
        2,
        "--message",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_event_amounts_are_signed_exactly() {
    let key = TestKey::ethereum(&kms().await).await;
    for (amount, wei) in [
        ("0.123456789123456789", 123_456_789_123_456_789u128),
        ("0.000001", 1_000_000_000_000),
        ("1e-18", 1),
    ] {
        let event = format!(
            r#"{{"operation":"sign","amount":{amount},"dst_address":"{RECIPIENT}","nonce":0,"chain_id":31337,"max_fee_per_gas":"2gwei","max_priority_fee_per_gas":"1gwei"}}"#
        );
        let answer = json_output(&kms_eth(&["sign", "--key-id", &key.id, "--event", &event]));
        let payload = hex::decode(&answer["signed_tx_payload"].as_str().unwrap()[2..]).unwrap();
        let decoded = SignedTransaction::decode(&payload).unwrap();
        assert_eq!(decoded.tx.value(), U256::from(wei), "amount {amount}");
    }
    // A conflicting pair is refused with its name, with the original's error object.
    let conflicting = format!(
        r#"{{"operation":"sign","amount":1,"dst_address":"{RECIPIENT}","nonce":0,"chain_id":1,"chainid":5,"gas_price":"1gwei","type":0}}"#
    );
    let output = kms_eth(&["sign", "--key-id", &key.id, "--event", &conflicting]);
    assert_exit(
        &output,
        &"chain_id and chainid",
        2,
        "invalid chainid: given together with \"chain_id\"",
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("chainid"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_message_signs_text_that_looks_like_hex_as_text() {
    let key = TestKey::ethereum(&kms().await).await;
    let as_text =
        kms_eth_command(&["sign-message", "--key-id", &key.id, "0xdeadbeef", "--json"]).output();
    assert!(
        stderr(&as_text).contains("pass --hex"),
        "{}",
        stderr(&as_text)
    );
    let as_text = json_output(&as_text);
    let as_bytes = json_output(&kms_eth(&[
        "sign-message",
        "--key-id",
        &key.id,
        "--hex",
        "0xdeadbeef",
        "--json",
    ]));
    let address = as_text["address"].as_str().unwrap();
    let check = |signature: &serde_json::Value, hex: bool| {
        let mut args = vec![
            "verify",
            "--message",
            "0xdeadbeef",
            "--signature",
            signature.as_str().unwrap(),
            "--address",
            address,
        ];
        if hex {
            args.push("--hex");
        }
        kms_eth(&args).status.code()
    };
    assert_eq!(
        check(&as_text["signature"], false),
        Some(0),
        "the text's signature is the text's"
    );
    assert_eq!(
        check(&as_text["signature"], true),
        Some(1),
        "and not the bytes'"
    );
    assert_eq!(
        check(&as_bytes["signature"], true),
        Some(0),
        "--hex signs the bytes"
    );
    assert_eq!(check(&as_bytes["signature"], false), Some(1));
    kms_eth_command(&["sign-message", "--key-id", &key.id, "--hex", "0xnothex"])
        .usage_error("not hex");
}
