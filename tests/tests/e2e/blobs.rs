//! EIP-4844 with a KMS key on anvil (its default hardfork, Osaka rules with the BPO1 blob
//! schedule): a blob transaction signed through KMS is mined with its blob gas, in both
//! sidecar forms (EIP-7594 cell proofs, EIP-4844 blob proofs); `verify` decodes the
//! network form, checks its sidecar (a changed blob byte fails) and recovers the KMS
//! address, and reads the signed transaction alone too; blob gas counts in the worst-case cost that --confirm-above
//! guards; bad blob input is refused before any call.

use std::path::PathBuf;

use kms_eth_e2e::{funded_account, json_output, kms_eth, kms_eth_command, nonce, stderr};
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_harness::testing::{assert_exit, assert_usage_error, TestCommand};
use kms_eth_signer::U256;
use serde_json::{json, Value};

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// A file of `len` bytes (a pattern that differs per `name`) in this test binary's folder.
fn blob_file(name: &str, len: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("blobs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let seed = name
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
    std::fs::write(&path, data).unwrap();
    path
}

/// `kms-eth verify --raw-file` of `raw` written to a file: a network form with blobs is
/// longer than one command-line argument may be.
fn verify(name: &str, raw: &str, extra: &[&str]) -> std::process::Output {
    let path = blob_file(&format!("raw-{name}"), 0);
    std::fs::write(&path, raw).unwrap();
    TestCommand::new(kms_eth_e2e::kms_eth_binary())
        .args(["verify", "--raw-file", path.to_str().unwrap()])
        .args(extra)
        .output()
}

/// The receipt of `hash`, once anvil has mined it (10 s at most).
fn mined_receipt(url: &str, hash: &Value) -> Value {
    for _ in 0..100 {
        let receipt = rpc(url, "eth_getTransactionReceipt", json!([hash])).unwrap();
        if !receipt.is_null() {
            return receipt;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{hash} was not mined within 10 s");
}

fn quantity(value: &Value) -> u64 {
    u64::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn wei(value: &Value) -> U256 {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_transaction_signed_through_kms_is_mined_and_verify_recovers_the_kms_address() {
    let (key, address, node) = funded_account().await;
    let chain_id = node.chain_id().to_string();
    let first = blob_file("first", 1_000);
    let second = blob_file("second", 126_945);

    // send: the blob fee from the node, two blobs, the cell-proof form by default.
    let sent = json_output(
        &kms_eth_command(&[
            "send",
            "--key-id",
            &key.id,
            "--rpc-url",
            node.url(),
            "--chain-id",
            &chain_id,
            "--type",
            "4844",
            "--to",
            RECIPIENT,
            "--value",
            "1gwei",
            "--blob-file",
            first.to_str().unwrap(),
            "--blob-file",
            second.to_str().unwrap(),
            "--yes",
            "--json",
        ])
        .output(),
    );
    assert_eq!(sent["type"], 3, "{sent}");
    assert_eq!(sent["status"], 1);
    assert_eq!(sent["blob_gas_used"], 2 * 131_072);
    assert_eq!(sent["sidecar"]["form"], "eip7594");
    assert_eq!(sent["sidecar"]["blobs"], 2);
    assert_eq!(sent["sidecar"]["proofs"].as_array().unwrap().len(), 256);
    assert_eq!(sent["blob_versioned_hashes"].as_array().unwrap().len(), 2);
    // anvil's blob base fee is 1 wei: send offers twice it.
    assert_eq!(sent["max_fee_per_blob_gas"], "2");
    // The worst-case cost counts the blob gas.
    let max_cost = U256::from(sent["gas_limit"].as_u64().unwrap()) * wei(&sent["max_fee_per_gas"])
        + U256::from(2 * 131_072u64) * wei(&sent["max_fee_per_blob_gas"])
        + wei(&sent["value"]);
    assert_eq!(wei(&sent["max_cost"]), max_cost, "{sent}");
    let receipt = rpc(
        node.url(),
        "eth_getTransactionReceipt",
        json!([sent["hash"]]),
    )
    .unwrap();
    assert_eq!(receipt["type"], "0x3");
    assert_eq!(quantity(&receipt["blobGasUsed"]), 2 * 131_072);
    let mined = rpc(
        node.url(),
        "eth_getTransactionByHash",
        json!([sent["hash"]]),
    )
    .unwrap();
    assert_eq!(mined["blobVersionedHashes"], sent["blob_versioned_hashes"]);
    assert_eq!(
        mined["from"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );

    // verify decodes the raw network form, checks its sidecar and recovers the KMS address.
    let verified = json_output(&verify(
        "sent",
        sent["raw"].as_str().unwrap(),
        &["--chain-id", &chain_id, "--address", &address, "--json"],
    ));
    assert_eq!(verified["from"], address.as_str());
    assert_eq!(verified["hash"], sent["hash"]);
    assert_eq!(
        verified["sidecar"]["commitments"],
        sent["sidecar"]["commitments"]
    );
    // A changed byte in the blobs keeps every length but not the proofs: verify exits 1.
    let raw = sent["raw"].as_str().unwrap();
    let middle = raw.len() / 2;
    let flipped = if &raw[middle..=middle] == "1" {
        "2"
    } else {
        "1"
    };
    let tampered = format!("{}{flipped}{}", &raw[..middle], &raw[middle + 1..]);
    let output = verify("tampered", &tampered, &[]);
    assert_exit(
        &output,
        &"a tampered blob",
        1,
        "the blob sidecar does not belong to the transaction",
    );

    // sign, in each form, and publish what it prints, as `cast publish` would.
    for (n, form) in [(1u64, "7594"), (2, "4844")] {
        let nonce_flag = n.to_string();
        let signed = json_output(&kms_eth(&[
            "sign",
            "--key-id",
            &key.id,
            "--chain-id",
            &chain_id,
            "--nonce",
            &nonce_flag,
            "--gas-limit",
            "21000",
            "--max-fee-per-gas",
            "5gwei",
            "--max-priority-fee-per-gas",
            "1gwei",
            "--max-fee-per-blob-gas",
            "10",
            "--type",
            "4844",
            "--to",
            RECIPIENT,
            "--blob-file",
            first.to_str().unwrap(),
            "--sidecar",
            form,
            "--json",
        ]));
        assert_eq!(signed["type"], 3);
        assert_eq!(signed["from"], address.as_str());
        assert_eq!(signed["max_fee_per_blob_gas"], "10");
        assert_eq!(signed["sidecar"]["form"], format!("eip{form}"));
        let hash = rpc(node.url(), "eth_sendRawTransaction", json!([signed["raw"]])).unwrap();
        assert_eq!(hash, signed["hash"]);
        let receipt = mined_receipt(node.url(), &hash);
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        assert_eq!(quantity(&receipt["blobGasUsed"]), 131_072);
        let verified = json_output(&verify(form, signed["raw"].as_str().unwrap(), &["--json"]));
        assert_eq!(verified["from"], address.as_str());
    }
    assert_eq!(nonce(node.url(), &address), 3);

    // --no-sidecar: the signed transaction alone, same hash; verify reads it too.
    let bare = json_output(&kms_eth(&[
        "sign",
        "--key-id",
        &key.id,
        "--chain-id",
        &chain_id,
        "--nonce",
        "3",
        "--gas-limit",
        "21000",
        "--max-fee-per-gas",
        "5gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--max-fee-per-blob-gas",
        "10",
        "--type",
        "4844",
        "--to",
        RECIPIENT,
        "--blob-file",
        first.to_str().unwrap(),
        "--no-sidecar",
        "--json",
    ]));
    assert!(bare["sidecar"].is_null(), "{bare}");
    assert!(bare["raw"].as_str().unwrap().len() < 1_000);
    let verified = json_output(&kms_eth(&[
        "verify",
        bare["raw"].as_str().unwrap(),
        "--json",
    ]));
    assert_eq!(verified["from"], address.as_str());
    assert_eq!(verified["hash"], bare["hash"]);
    assert_eq!(
        verified["blob_versioned_hashes"],
        bare["blob_versioned_hashes"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_gas_counts_in_the_cost_that_confirm_above_guards() {
    let (key, address, node) = funded_account().await;
    let chain_id = node.chain_id().to_string();
    let file = blob_file("costly", 10);
    // 21000 gas at 5 gwei is 0.000105 ether, below the default --confirm-above of 0.1
    // ether; one blob at 1000 gwei per blob gas is 0.131072 ether more, above it.
    let output = kms_eth_command(&[
        "send",
        "--key-id",
        &key.id,
        "--rpc-url",
        node.url(),
        "--chain-id",
        &chain_id,
        "--type",
        "4844",
        "--to",
        RECIPIENT,
        "--gas-limit",
        "21000",
        "--max-fee-per-gas",
        "5gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--max-fee-per-blob-gas",
        "1000gwei",
        "--blob-file",
        file.to_str().unwrap(),
    ])
    .output();
    assert_usage_error(
        &output,
        &"a costly blob without --yes",
        "pass --yes to confirm",
    );
    let shown = stderr(&output);
    assert!(
        shown.contains("worst-case cost 0.131177 ether")
            && shown.contains("blob gas 131072 (1 blobs x 131072) x 1000 gwei per blob gas"),
        "{shown}"
    );
    assert_eq!(nonce(node.url(), &address), 0, "nothing was sent");

    // A blob base fee suggestion above --fee-cap stops the send before signing.
    rpc(
        node.url(),
        "anvil_setBalance",
        json!([address, "0x56bc75e2d63100000"]),
    )
    .unwrap();
    let output = kms_eth_command(&[
        "send",
        "--key-id",
        &key.id,
        "--rpc-url",
        node.url(),
        "--chain-id",
        &chain_id,
        "--type",
        "4844",
        "--to",
        RECIPIENT,
        "--fee-cap",
        "1",
        "--max-fee-per-gas",
        "5gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
        "--blob-file",
        file.to_str().unwrap(),
        "--yes",
    ])
    .output();
    assert_exit(
        &output,
        &"a blob fee above --fee-cap",
        1,
        "max fee per blob gas",
    );
    assert_eq!(nonce(node.url(), &address), 0, "nothing was sent");
}

#[test]
fn bad_blob_input_is_refused_before_any_call() {
    let nowhere = [
        "--key-id",
        "alias/never-called",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ];
    let small = blob_file("small", 100);
    let small = small.to_str().unwrap();
    let empty = blob_file("empty", 0);
    let too_large = blob_file("too-large", 126_946);
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-blob-file");
    let signed_fields = [
        "--chain-id",
        "1",
        "--nonce",
        "0",
        "--gas-limit",
        "21000",
        "--max-fee-per-gas",
        "2gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
    ];
    let seven: Vec<&str> = std::iter::repeat_n(["--blob-file", small], 7)
        .flatten()
        .collect();
    let blob4844 = [
        "--type",
        "4844",
        "--to",
        RECIPIENT,
        "--max-fee-per-blob-gas",
        "1gwei",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        blob4844
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let plain = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (with(&[]), "invalid --blob-file: missing"),
        (
            plain(&["--to", RECIPIENT, "--blob-file", small]),
            "invalid --blob-file: only EIP-4844 transactions carry blobs",
        ),
        (with(&seven), "7 blobs are more than the 6"),
        (
            with(&["--blob-file", empty.to_str().unwrap()]),
            "the data is empty",
        ),
        (
            with(&["--blob-file", too_large.to_str().unwrap()]),
            "126946 bytes do not fit in one blob",
        ),
        (
            with(&["--blob-file", missing.to_str().unwrap()]),
            "invalid --blob-file",
        ),
        (
            plain(&[
                "--type",
                "4844",
                "--create",
                "--data",
                "0x60",
                "--max-fee-per-blob-gas",
                "1",
                "--blob-file",
                small,
            ]),
            "an EIP-4844 transaction cannot create a contract",
        ),
        (
            plain(&["--type", "4844", "--to", RECIPIENT, "--blob-file", small]),
            "missing --max-fee-per-blob-gas",
        ),
        (
            plain(&[
                "--type",
                "4844",
                "--to",
                RECIPIENT,
                "--blob-file",
                small,
                "--max-fee-per-blob-gas",
                "-1",
            ]),
            "invalid --max-fee-per-blob-gas",
        ),
        (
            plain(&["--to", RECIPIENT, "--max-fee-per-blob-gas", "1gwei"]),
            "invalid --max-fee-per-blob-gas: only EIP-4844",
        ),
        (
            with(&["--blob-file", small, "--sidecar", "7595"]),
            "invalid --sidecar",
        ),
        (
            plain(&["--to", RECIPIENT, "--no-sidecar"]),
            "invalid --no-sidecar",
        ),
        // Found by review: each of these was accepted, and something else signed.
        (
            plain(&[
                "--type",
                "4844",
                "--to",
                RECIPIENT,
                "--blob-file",
                small,
                "--max-fee-per-blob-gas",
                "0",
            ]),
            "0 can never be paid",
        ),
        (
            plain(&["--to", RECIPIENT, "--sidecar", "4844"]),
            "invalid --sidecar: only EIP-4844",
        ),
        (
            with(&["--blob-file", small, "--sidecar", "4844", "--no-sidecar"]),
            "invalid --sidecar: --no-sidecar prints no sidecar",
        ),
        (
            plain(&[
                "--event",
                r#"{"operation":"sign","amount":0.01,"dst_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","nonce":0,"chain_id":1}"#,
                "--type",
                "4844",
                "--blob-file",
                small,
            ]),
            "invalid --blob-file: the event is the whole transaction",
        ),
        (
            with(&["--blob-file", "/dev/zero"]),
            "do not fit in one blob",
        ),
    ];
    for (extra, message) in cases {
        let mut args: Vec<String> = vec!["sign".into()];
        args.extend(signed_fields.iter().map(|s| s.to_string()));
        args.extend(nowhere.iter().map(|s| s.to_string()));
        args.extend(extra.iter().cloned());
        let output = TestCommand::new(kms_eth_e2e::kms_eth_binary())
            .args(&args)
            .output();
        assert_usage_error(&output, &extra, message);
        assert!(
            !stderr(&output).contains("cannot reach"),
            "{extra:?} called KMS"
        );
    }
    // send checks the same flags before it asks the node or KMS.
    let output = TestCommand::new(kms_eth_e2e::kms_eth_binary())
        .args(["send"])
        .args(nowhere)
        .args([
            "--rpc-url",
            "http://127.0.0.1:9",
            "--chain-id",
            "1",
            "--type",
            "4844",
            "--to",
            RECIPIENT,
        ])
        .args(seven.iter())
        .output();
    assert_usage_error(&output, &"send with 7 blobs", "more than the 6");
}
