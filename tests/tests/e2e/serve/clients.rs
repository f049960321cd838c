//! Clients through the service: cast, ethers and web3.py sending from the KMS address (with
//! `personal_sign`, web3.py's `sign_typed_data`, `eth_signTransaction` and the audit log),
//! viem sending and signing a message and typed data (each checked with viem's own verify),
//! cast signing a message and typed data (checked with `cast wallet verify`), and a sponsored
//! EIP-7702 (type 4) transaction carrying an authorization signed elsewhere.

use std::process::Command;

use kms_eth_e2e::served::Served;
use kms_eth_e2e::{
    funded_account, json_output, kms, kms_eth, kms_eth_command, nonce, stderr, TestKey,
};
use kms_eth_harness::anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use serde_json::{json, Value};

use super::{receipt, RECIPIENT};

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
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
w3 = Web3(Web3.HTTPProvider("{url}"))
tx = w3.eth.send_transaction({{"from": "{address}", "to": "{RECIPIENT}", "value": 777}})
receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=60)
typed = {{
    "types": {{
        "EIP712Domain": [{{"name": "name", "type": "string"}}, {{"name": "chainId", "type": "uint256"}}],
        "Note": [{{"name": "to", "type": "address"}}, {{"name": "text", "type": "string"}}],
    }},
    "primaryType": "Note",
    "domain": {{"name": "web3.py", "chainId": {chain}}},
    "message": {{"to": "{RECIPIENT}", "text": "signed through kms-eth serve"}},
}}
signature = w3.eth.sign_typed_data("{address}", typed)
recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
message_signature = w3.eth.sign("{address}", text="hello from web3.py")
message_signer = Account.recover_message(encode_defunct(text="hello from web3.py"), signature=message_signature)
print(json.dumps({{"from": receipt["from"], "status": receipt["status"], "accounts": w3.eth.accounts,
                  "typed_data_signer": recovered, "message_signer": message_signer}}))
"#,
        url = served.url,
        chain = node.chain_id()
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
    // web3.py's sign_typed_data (eth_signTypedData), checked by eth_account's recovery.
    assert_eq!(result["typed_data_signer"].as_str().unwrap(), address);
    // web3.py's eth.sign (eth_sign, the EIP-191 envelope), checked the same way.
    assert_eq!(result["message_signer"].as_str().unwrap(), address);

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
    // One audit line per signature: four transactions, three messages (ethers', web3.py's
    // and personal_sign's) and a typed-data document, each with what was signed (a transaction by its hash) and the KMS request
    // id that finds it in CloudTrail.
    let log = served.log();
    let audits: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"audit\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(audits.len(), 8, "{log}");
    for line in &audits {
        assert!(
            line["kms_request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{line}"
        );
        assert_eq!(line["account"], address.as_str());
        assert_eq!(line["decision"], "unrestricted");
        assert_eq!(line["source"], "serve");
        assert!(!line["request_id"].is_null(), "{line}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viem_sends_signs_a_message_and_typed_data_through_the_service_and_verifies_each() {
    let (key, address, node) = funded_account().await;
    let served = Served::unrestricted(node.url(), &key.id);
    // viem 2 with a JSON-RPC account (the address alone): every signature is the service's.
    let script = format!(
        r#"const viem = require("viem");
        (async () => {{
          const chain = viem.defineChain({{ id: {chain}, name: "anvil",
            nativeCurrency: {{ name: "Ether", symbol: "ETH", decimals: 18 }},
            rpcUrls: {{ default: {{ http: ["{url}"] }} }} }});
          const transport = viem.http("{url}");
          const wallet = viem.createWalletClient({{ account: "{address}", chain, transport }});
          const client = viem.createPublicClient({{ chain, transport }});
          const hash = await wallet.sendTransaction({{ to: "{RECIPIENT}", value: 4242n }});
          const receipt = await client.waitForTransactionReceipt({{ hash, pollingInterval: 100 }});
          const message = "hello from viem";
          const messageSignature = await wallet.signMessage({{ message }});
          const typed = {{
            domain: {{ name: "viem", version: "1", chainId: {chain},
              verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" }},
            types: {{ Note: [{{ name: "to", type: "address" }}, {{ name: "text", type: "string" }}] }},
            primaryType: "Note",
            message: {{ to: "{RECIPIENT}", text: "signed through kms-eth serve" }},
          }};
          const typedSignature = await wallet.signTypedData(typed);
          console.log(JSON.stringify({{
            from: receipt.from, status: receipt.status,
            message: await viem.verifyMessage({{ address: "{address}", message, signature: messageSignature }}),
            typed: await viem.verifyTypedData({{ address: "{address}", ...typed, signature: typedSignature }}),
          }}));
        }})().catch((err) => {{ console.error(err); process.exit(1); }});"#,
        url = served.url,
        chain = node.chain_id()
    );
    let result = kms_eth_e2e::run_ethers(&script, &served.log());
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(
        result["from"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );
    assert_eq!(result["message"], true, "viem's verifyMessage: {result}");
    assert_eq!(result["typed"], true, "viem's verifyTypedData: {result}");
    assert_eq!(nonce(node.url(), &address), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_signs_a_message_and_typed_data_through_the_service_and_verifies_each() {
    let (key, address, node) = funded_account().await;
    let served = Served::unrestricted(node.url(), &key.id);
    let cast = |args: &[&str]| {
        let output = Command::new(anvil::binary("cast"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cast {args:?}: {}\n{}",
            stderr(&output),
            served.log()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    // The signatures come from the service (cast rpc), the checks from cast's own verifier.
    let signature: String = serde_json::from_str(&cast(&[
        "rpc",
        "--rpc-url",
        &served.url,
        "personal_sign",
        "0x68656c6c6f2066726f6d2063617374",
        &address,
    ]))
    .unwrap();
    cast(&[
        "wallet",
        "verify",
        "--address",
        &address,
        "0x68656c6c6f2066726f6d2063617374",
        &signature,
    ]);
    let typed = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Note": [{"name": "text", "type": "string"}, {"name": "to", "type": "address"}]
        },
        "primaryType": "Note",
        "domain": {"name": "cast through kms-eth", "chainId": node.chain_id()},
        "message": {"text": "hello", "to": RECIPIENT}
    })
    .to_string();
    let typed_signature: String = serde_json::from_str(&cast(&[
        "rpc",
        "--rpc-url",
        &served.url,
        "eth_signTypedData_v4",
        &address,
        &typed,
    ]))
    .unwrap();
    cast(&[
        "wallet",
        "verify",
        "--data",
        "--address",
        &address,
        &typed,
        &typed_signature,
    ]);
    // A signature cast's verifier refuses: the check above is not one that always passes.
    let other = Command::new(anvil::binary("cast"))
        .args([
            "wallet",
            "verify",
            "--address",
            RECIPIENT,
            "0x68656c6c6f2066726f6d2063617374",
            &signature,
        ])
        .output()
        .unwrap();
    assert!(
        !other.status.success(),
        "cast verified a signature for another address"
    );
}
