//! `key import` against KMS (LocalStack's imports asymmetric material and signs with it):
//! keystores written by eth_account (scrypt and pbkdf2) and a hex key on standard input
//! imported with their address kept, the imported key sending a transaction mined on anvil;
//! a wrong password, a key of another curve and a keystore promising another address
//! refused before any key exists (the fault proxy counts no CreateKey); KMS deriving another
//! address after the import (the proxy answers GetPublicKey with another key's) refused, the
//! key disabled and scheduled for deletion, no alias made.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use aws_sdk_kms::types::{KeyState, OriginType};
use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    balance, json_output, kms, kms_eth, kms_eth_command, kms_eth_through, localstack_endpoint,
    nonce, run_id, scratch_dir, TestAlias, TestKey,
};
use kms_eth_harness::anvil::Anvil;
use kms_eth_harness::TEST_TAG;

/// The address of the key 0x46...46 (the EIP-155 example's, which the leak scan looks for
/// in every output and log of the run).
const ADDRESS: &str = "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F";
const PASSWORD: &str = "kms-eth import test password";
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// A keystore of the key 0x46...46 written by eth_account with `kdf` (`scrypt` or
/// `pbkdf2`), and a file with its password; `address` replaces the address it promises.
fn keystore(label: &str, kdf: &str, address: Option<&str>) -> (PathBuf, PathBuf) {
    let dir = scratch_dir().join(format!("import-{label}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, password) = (dir.join("keystore.json"), dir.join("password"));
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    // The key is built in the script, so its hex is never on a command line or in a file.
    let script = format!(
        "import json, sys\nfrom eth_account import Account\n\
         ks = Account.encrypt(bytes([0x46]) * 32, {PASSWORD:?}, kdf={kdf:?}, iterations=16384)\n\
         if {address:?} != 'None': ks['address'] = {address:?}\n\
         json.dump(ks, open(sys.argv[1], 'w'))\n",
        address = address.unwrap_or("None"),
    );
    let python = kms_eth_harness::clients::web3_python().unwrap();
    let status = std::process::Command::new(python)
        .args(["-c", &script])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success(), "eth_account could not write the keystore");
    (file, password)
}

/// The flags every import of a test passes: its alias, and the run's tag and description
/// (which `cargo xtask test --cleanup` goes by).
fn import_args(alias: &str) -> Vec<String> {
    [
        "key",
        "import",
        "--alias",
        alias,
        "--description",
        &kms_eth_harness::test_names::test_key_description(&run_id()),
        "--tag",
        &format!("{TEST_TAG}={}", run_id()),
        "--json",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `command --private-key-stdin` run with `key` on its standard input.
fn with_stdin(command: kms_eth_e2e::TestCommand, key: &str) -> std::process::Output {
    let mut child = command
        .args(["--private-key-stdin"])
        .into_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// An alias unique to this run and `label`.
fn alias(label: &str) -> String {
    format!("alias/kms-eth-test-{}-{label}", run_id())
}

/// The key and alias `key import` reported, in the tests' care from now on.
fn adopt(report: &serde_json::Value) -> (TestKey, TestAlias) {
    let key = TestKey::adopt(
        report["key_id"].as_str().unwrap(),
        report["key_arn"].as_str().unwrap(),
    );
    let alias = TestAlias {
        name: report["alias"].as_str().unwrap().to_owned(),
    };
    (key, alias)
}

#[tokio::test]
async fn keystores_and_a_hex_key_keep_their_address_and_the_imported_key_sends_on_anvil() {
    let mut imported = Vec::new();
    for kdf in ["scrypt", "pbkdf2"] {
        let (file, password) = keystore(kdf, kdf, None);
        let name = alias(&format!("import-{kdf}"));
        let mut args = import_args(&name);
        args.extend(["--keystore".into(), file.display().to_string()]);
        args.extend(["--password-file".into(), password.display().to_string()]);
        args.extend(["--expect-address".into(), ADDRESS.into()]);
        let report = kms_eth_command(&kms_eth_e2e::as_strs(&args)).json();
        imported.push(adopt(&report));
        assert_eq!(report["address"], ADDRESS, "{kdf}: {report}");
        assert_eq!(report["key_origin"], "EXTERNAL");
        assert_eq!(report["valid_to"], serde_json::Value::Null);
    }
    // The same key as hex on standard input.
    let name = alias("import-stdin");
    let output = with_stdin(
        kms_eth_command(&kms_eth_e2e::as_strs(&import_args(&name))),
        &format!("0x{}\n", "46".repeat(32)),
    );
    let report = json_output(&output);
    imported.push(adopt(&report));
    assert_eq!(report["address"], ADDRESS);

    let kms = kms().await;
    for (key, alias) in &imported {
        let metadata = kms.describe_key().key_id(&key.id).send().await.unwrap();
        let metadata = metadata.key_metadata().unwrap();
        assert_eq!(metadata.origin(), Some(&OriginType::External));
        assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));
        let status = json_output(&kms_eth(&["status", "--key-id", &alias.name, "--json"]));
        assert_eq!(status["address"], ADDRESS);
    }

    // The imported key signs a transaction that anvil mines, from the keystore's address.
    let node = Anvil::start(std::time::Duration::from_secs(60)).unwrap();
    kms_eth_harness::jsonrpc::call(
        node.url(),
        "anvil_setBalance",
        serde_json::json!([ADDRESS, "0x56bc75e2d63100000"]),
    )
    .unwrap();
    let before = balance(node.url(), RECIPIENT);
    let chain_id = node.chain_id().to_string();
    let sent = kms_eth_command(&[
        "send",
        "--key-id",
        &imported[0].1.name,
        "--rpc-url",
        node.url(),
        "--chain-id",
        &chain_id,
        "--to",
        RECIPIENT,
        "--value",
        "0.001ether",
        "--json",
    ])
    .json();
    assert_eq!(sent["from"], ADDRESS, "{sent}");
    assert_eq!(nonce(node.url(), ADDRESS), 1);
    assert_eq!(
        balance(node.url(), RECIPIENT) - before,
        kms_eth_signer::U256::from(1_000_000_000_000_000u64)
    );
}

/// `kms-eth key import` through a fault proxy that counts the calls.
async fn through_proxy() -> FaultProxy {
    FaultProxy::start(&localstack_endpoint()).await.unwrap()
}

// The proxy runs on the test's runtime while the command blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_another_curve_and_another_promised_address_create_nothing() {
    let proxy = through_proxy().await;
    let (file, _) = keystore("wrong-password", "scrypt", None);
    let wrong = scratch_dir().join("import-wrong-password/wrong");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let name = alias("import-refused");
    let mut args = import_args(&name);
    args.extend(["--keystore".into(), file.display().to_string()]);
    args.extend(["--password-file".into(), wrong.display().to_string()]);
    kms_eth_through(&proxy, &kms_eth_e2e::as_strs(&args)).usage_error("wrong password");

    let (forged, password) = keystore(
        "forged",
        "pbkdf2",
        Some("0000000000000000000000000000000000000001"),
    );
    let mut args = import_args(&name);
    args.extend(["--keystore".into(), forged.display().to_string()]);
    args.extend(["--password-file".into(), password.display().to_string()]);
    kms_eth_through(&proxy, &kms_eth_e2e::as_strs(&args))
        .usage_error("but the keystore promises 0x0000000000000000000000000000000000000001");

    // A P-256 key (the same scalar, OpenSSL's PKCS#8 PEM) on standard input.
    let p256 = "-----BEGIN PRIVATE KEY-----\n\
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgRkZGRkZGRkZGRkZG\n\
        RkZGRkZGRkZGRkZGRkZGRkZGRkahRANCAAQb7BJQqo94J1+ZpmY2iPMQhYSNDtkv\n\
        EgPkRxJfknt0hpduGdLuz9PUD5NfEL4J5jvLyKJKce+2eEjZdyXDoNxz\n\
        -----END PRIVATE KEY-----\n";
    let output = with_stdin(
        kms_eth_through(&proxy, &kms_eth_e2e::as_strs(&import_args(&name))),
        p256,
    );
    kms_eth_e2e::assert_usage_error(
        &output,
        &"key import of a P-256 key",
        "P-256 (ECC_NIST_P256), not secp256k1",
    );

    for operation in [
        "CreateKey",
        "GetParametersForImport",
        "ImportKeyMaterial",
        "CreateAlias",
    ] {
        assert_eq!(proxy.counts(operation).attempts(), 0, "{operation}");
    }
    let alias_free = kms().await.describe_key().key_id(&name).send().await;
    assert!(alias_free.is_err(), "the alias {name} exists");
}

// The proxy runs on the test's runtime while the command blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_deriving_another_address_after_the_import_disables_the_key() {
    let proxy = through_proxy().await;
    // Another key's public key, as KMS would show it had it other material.
    let other = TestKey::ethereum(&kms().await).await;
    let spki = kms()
        .await
        .get_public_key()
        .key_id(&other.id)
        .send()
        .await
        .unwrap();
    let spki = aws_smithy_types::base64::encode(spki.public_key().unwrap().as_ref());
    proxy.replace_public_keys(Some(&spki));

    let (file, password) = keystore("mismatch", "scrypt", None);
    let name = alias("import-mismatch");
    let mut args = import_args(&name);
    args.extend(["--keystore".into(), file.display().to_string()]);
    args.extend(["--password-file".into(), password.display().to_string()]);
    let output = kms_eth_through(&proxy, &kms_eth_e2e::as_strs(&args)).fails(
        1,
        &format!("not {ADDRESS}: the key was disabled and scheduled for deletion"),
    );
    let stderr = kms_eth_e2e::stderr(&output);
    let key_id = stderr
        .split("created key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key id in: {stderr}"))
        .to_owned();
    let key = TestKey::adopt(&key_id, &key_id);
    let metadata = kms()
        .await
        .describe_key()
        .key_id(&key.id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        metadata.key_metadata().unwrap().key_state(),
        Some(&KeyState::PendingDeletion)
    );
    assert_eq!(proxy.counts("DisableKey").attempts(), 1);
    assert_eq!(proxy.counts("CreateAlias").attempts(), 0);
    assert!(kms()
        .await
        .describe_key()
        .key_id(&name)
        .send()
        .await
        .is_err());
}
