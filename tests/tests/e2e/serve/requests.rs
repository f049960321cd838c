//! Requests the service answers itself, at their edges: typed data under every method name
//! clients use (`eth_signTypedData`, `_v3`, `_v4`: signed by the service with v4's
//! semantics, never forwarded to the node; the v1 list format refused), mixed-case
//! addresses with a wrong EIP-55 checksum refused wherever a request names one, and a KMS
//! failure told to the client without the AWS text (key ARN, account id) that the log keeps.
//! Nothing refused is signed (KMS `Sign` calls counted by the fault proxy) or sent (the
//! nonce read back from anvil).

use kms_eth_e2e::served::Served;
use kms_eth_e2e::{funded_account, kms, kms_eth, nonce, stderr};
use serde_json::{json, Value};

use super::proxied::Proxied;
use super::{write_temp, RECIPIENT};

/// The EIP-712 example document ("Ether Mail"), for chain `chain_id`.
fn mail(chain_id: u64, wallet: &str) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" },
                { "name": "verifyingContract", "type": "address" },
            ],
            "Person": [
                { "name": "name", "type": "string" },
                { "name": "wallet", "type": "address" },
            ],
            "Mail": [
                { "name": "from", "type": "Person" },
                { "name": "to", "type": "Person" },
                { "name": "contents", "type": "string" },
            ],
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
        },
        "message": {
            "from": { "name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
            "to": { "name": "Bob", "wallet": wallet },
            "contents": "Hello, Bob!",
        },
    })
}

const BOB: &str = "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB";
/// Bob's address with one letter's case changed: a wrong EIP-55 checksum.
const BOB_TYPO: &str = "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbb";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_data_under_every_name_is_signed_by_the_service_and_never_forwarded() {
    let p = Proxied::start(&[]).await;
    let (node, address, node_proxy, served) = (&p.node, &p.address, &p.node_proxy, &p.served);
    let document = mail(node.chain_id(), BOB);
    let file = write_temp("mail.json", &document.to_string());
    for (method, params) in [
        // web3.py's sign_typed_data: the document as an object.
        ("eth_signTypedData", json!([address, document])),
        (
            "eth_signTypedData_v3",
            json!([address, document.to_string()]),
        ),
        (
            "eth_signTypedData_v4",
            json!([address, document.to_string()]),
        ),
    ] {
        let signature = served.result(method, params);
        let verified = kms_eth(&[
            "verify",
            "--typed-data",
            file.to_str().unwrap(),
            "--signature",
            signature.as_str().unwrap(),
            "--address",
            address,
        ]);
        assert!(verified.status.success(), "{method}: {}", stderr(&verified));
        assert_eq!(node_proxy.calls(method), 0, "{method} was forwarded");
    }
    assert_eq!(p.signs(), 3);
    // The v1 format (a list of {type, name, value}, MetaMask's first eth_signTypedData) is
    // refused with what to send instead, in either parameter order.
    let v1 = json!([{ "type": "string", "name": "message", "value": "Hi, Alice!" }]);
    for params in [json!([address, v1]), json!([v1, address])] {
        let reply = served.call("eth_signTypedData", params);
        assert_eq!(reply["error"]["code"], -32602, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("v1 format") && message.contains("eth_signTypedData_v4"),
            "{reply}"
        );
    }
    assert_eq!(p.signs(), 3, "the v1 document was signed");
    let _ = std::fs::remove_file(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_case_addresses_with_a_wrong_checksum_are_refused_before_kms_is_asked() {
    let p = Proxied::start(&[]).await;
    let (node, address, served) = (&p.node, &p.address, &p.served);
    // The KMS address with one letter's case flipped.
    let flipped = {
        let (at, letter) = address
            .char_indices()
            .skip(2)
            .find(|(_, c)| c.is_ascii_alphabetic())
            .unwrap();
        let other = if letter.is_ascii_uppercase() {
            letter.to_ascii_lowercase()
        } else {
            letter.to_ascii_uppercase()
        };
        format!("{}{other}{}", &address[..at], &address[at + 1..])
    };
    let recipient_typo = "0x70997970C51812dc3A010C7d01b50e0d17dc79c8";
    for (method, params, field) in [
        (
            "eth_sendTransaction",
            json!([{ "from": flipped, "to": RECIPIENT, "value": "0x1" }]),
            "from",
        ),
        (
            "eth_sendTransaction",
            json!([{ "from": address, "to": recipient_typo, "value": "0x1" }]),
            "to",
        ),
        (
            "eth_signTransaction",
            json!([{ "from": address, "to": recipient_typo, "value": "0x1" }]),
            "to",
        ),
        ("personal_sign", json!(["0x6869", flipped]), "address"),
        ("eth_sign", json!([flipped, "0x6869"]), "address"),
        (
            "eth_signTypedData_v4",
            json!([flipped, mail(node.chain_id(), BOB)]),
            "address",
        ),
        (
            "eth_signTypedData_v4",
            json!([address, mail(node.chain_id(), BOB_TYPO)]),
            "typedData.message.to.wallet",
        ),
    ] {
        let reply = served.call(method, params.clone());
        assert_eq!(reply["error"]["code"], -32602, "{method} {params}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("checksum") && message.contains(field),
            "{method} {params}: {reply}"
        );
    }
    // All lower case claims no checksum, and is taken.
    let lower = served.call("personal_sign", json!(["0x6869", address.to_lowercase()]));
    assert!(lower["result"].is_string(), "{lower}");
    assert_eq!(p.signs(), 1, "a refused request was signed");
    assert_eq!(nonce(node.url(), address), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_failure_reaches_the_client_without_the_aws_text() {
    let (key, address, node) = funded_account().await;
    // The key by its ARN, which names the AWS account: KMS's errors then carry it.
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.arn,
        "--unrestricted",
    ]);
    kms()
        .await
        .disable_key()
        .key_id(&key.id)
        .send()
        .await
        .unwrap();
    let reply = served.call("personal_sign", json!(["0x6869", address]));
    let error = reply["error"].to_string();
    assert_eq!(reply["error"]["code"], -32603, "{reply}");
    assert!(error.contains("Disabled"), "{reply}");
    // Neither the ARN nor the account it names reaches the client; the log has both.
    let account_id = key.arn.split(':').nth(4).unwrap();
    assert!(!account_id.is_empty(), "{}", key.arn);
    assert!(
        !error.contains(account_id) && !error.contains("arn:") && !error.contains(&key.id),
        "{reply}"
    );
    assert!(served.log().contains(&key.arn), "{}", served.log());
}
