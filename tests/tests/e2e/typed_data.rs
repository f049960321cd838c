//! EIP-712 typed data signed with a KMS key: EIP-712's own example and its published
//! digest, checked by cast; 256 generated documents hashed the same as ethers (an
//! independent implementation) and their KMS signatures recovering to the key's address;
//! the signing service's eth_signTypedData_v4 under a domain policy; and bad input refused
//! before any call.

use std::process::Command;

use kms_eth_core::typed_data::parse_typed_data;
use kms_eth_e2e::served::Served;
use kms_eth_e2e::{
    assert_usage_error, json_output, kms, kms_eth, kms_eth_binary, stderr, TestCommand, TestKey,
};
use kms_eth_harness::anvil;
use kms_eth_signer::{recover_signer, KmsSigner};
use serde_json::{json, Value};

/// EIP-712's "Ether Mail" example, with the digest the EIP publishes.
const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;
const MAIL_DIGEST: &str = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2";

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = kms_eth_e2e::scratch_dir().join(format!("kms-eth-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_eip_712_example_is_signed_with_its_published_digest_and_cast_verifies_it() {
    let key = TestKey::ethereum(&kms().await).await;
    let file = temp_file("mail.json", MAIL);
    let signed = json_output(&kms_eth(&[
        "sign-typed-data",
        "--key-id",
        &key.id,
        file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(signed["digest"], MAIL_DIGEST);
    assert_eq!(signed["primary_type"], "Mail");
    let (address, signature) = (
        signed["address"].as_str().unwrap(),
        signed["signature"].as_str().unwrap(),
    );
    anvil::install().unwrap();
    let cast = Command::new(anvil::binary("cast"))
        .args([
            "wallet",
            "verify",
            "--data",
            "--from-file",
            "--address",
            address,
        ])
        .arg(&file)
        .arg(signature)
        .output()
        .unwrap();
    assert!(
        cast.status.success(),
        "cast wallet verify --data: {}",
        stderr(&cast)
    );
    let ours = json_output(&kms_eth(&[
        "verify",
        "--typed-data",
        file.to_str().unwrap(),
        "--signature",
        signature,
        "--address",
        address,
        "--json",
    ]));
    assert_eq!(ours["signer"], address);
    assert_eq!(ours["digest"], MAIL_DIGEST);
    // The same document inline, and a signature checked against another address.
    let inline = json_output(&kms_eth(&[
        "sign-typed-data",
        "--key-id",
        &key.id,
        "--data",
        MAIL,
        "--json",
    ]));
    assert_eq!(inline["digest"], MAIL_DIGEST);
    let wrong = kms_eth(&[
        "verify",
        "--typed-data",
        file.to_str().unwrap(),
        "--signature",
        signature,
        "--address",
        "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
    ]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    std::fs::remove_file(file).unwrap();
}

/// A generator of varied typed data: nested structs, arrays of structs, strings with
/// non-ASCII text, bytes, fixed bytes, signed and unsigned integers of several widths.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn hex(&mut self, bytes: usize) -> String {
        let data: Vec<u8> = (0..bytes).map(|_| self.next() as u8).collect();
        format!("0x{}", hex::encode(data))
    }

    fn text(&mut self) -> String {
        let words = ["kms", "eth", "ünïcødé", "🦀", "", "a b", "\"quoted\"", "x"];
        (0..self.next() % 4)
            .map(|_| words[(self.next() % words.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join("-")
    }

    fn item(&mut self) -> Value {
        let blob_length = (self.next() % 40) as usize;
        let blob = self.hex(blob_length);
        json!({
            "count": self.next() % 256,
            "balance": (self.next() as u128 * self.next() as u128).to_string(),
            "delta": -((self.next() % 1_000_000) as i64),
            "flag": self.next().is_multiple_of(2),
            "owner": self.hex(20),
            "blob": blob,
            "tag": self.hex(32),
            "label": self.text(),
        })
    }

    fn document(&mut self, index: usize) -> Value {
        let items: Vec<Value> = (0..self.next() % 4).map(|_| self.item()).collect();
        let notes: Vec<String> = (0..self.next() % 3).map(|_| self.text()).collect();
        json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
                ],
                "Item": [
                    {"name": "count", "type": "uint8"}, {"name": "balance", "type": "uint256"},
                    {"name": "delta", "type": "int64"}, {"name": "flag", "type": "bool"},
                    {"name": "owner", "type": "address"}, {"name": "blob", "type": "bytes"},
                    {"name": "tag", "type": "bytes32"}, {"name": "label", "type": "string"}
                ],
                "Order": [
                    {"name": "main", "type": "Item"}, {"name": "items", "type": "Item[]"},
                    {"name": "notes", "type": "string[]"}, {"name": "nonce", "type": "uint64"}
                ]
            },
            "primaryType": "Order",
            "domain": {
                "name": format!("Generated {index}"), "version": "1",
                "chainId": 1 + self.next() % 100_000, "verifyingContract": self.hex(20)
            },
            "message": { "main": self.item(), "items": items, "notes": notes, "nonce": self.next() % 1_000_000_000 }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_typed_data_hashes_as_ethers_does_and_kms_signatures_recover() {
    let mut generator = Gen(0x2545_F491_4F6C_DD1D);
    let documents: Vec<Value> = (0..256).map(|i| generator.document(i)).collect();
    let ours: Vec<String> = documents
        .iter()
        .map(|doc| {
            let request = parse_typed_data("typed data", &doc.to_string())
                .unwrap_or_else(|err| panic!("{doc}: {err:#}"));
            format!("0x{}", hex::encode(request.digest))
        })
        .collect();
    // ethers' TypedDataEncoder, on every document in one run.
    let file = temp_file(
        "generated.json",
        &Value::Array(documents.clone()).to_string(),
    );
    let script = format!(
        r#"const {{ ethers }} = require("ethers");
        const docs = JSON.parse(require("fs").readFileSync("{}", "utf8"));
        const hashes = docs.map((d) => {{
          const types = {{ ...d.types }};
          delete types.EIP712Domain;
          return ethers.TypedDataEncoder.hash(d.domain, types, d.message);
        }});
        console.log(JSON.stringify(hashes));"#,
        file.display()
    );
    let theirs: Vec<String> =
        serde_json::from_value(kms_eth_e2e::run_ethers(&script, "hashing the documents")).unwrap();
    for (index, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(ours, theirs, "document {index}: {}", documents[index]);
    }
    assert_eq!(theirs.len(), 256);
    std::fs::remove_file(file).unwrap();

    // Each digest signed by the KMS key recovers to its address.
    let key = TestKey::ethereum(&kms().await).await;
    let signer = KmsSigner::new(kms().await, key.id.as_str()).await.unwrap();
    let digests: Vec<_> = documents
        .iter()
        .map(|doc| {
            parse_typed_data("typed data", &doc.to_string())
                .unwrap()
                .digest
        })
        .collect();
    let signatures = signer.sign_digests(&digests, 16).await;
    for (digest, signature) in digests.iter().zip(signatures) {
        assert_eq!(
            recover_signer(digest, &signature.unwrap()).unwrap(),
            signer.address()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_signs_typed_data_for_ethers_and_refuses_a_domain_the_policy_does_not_list() {
    let (key, address, node) = kms_eth_e2e::funded_account().await;
    let policy = temp_file(
        "typed-policy.toml",
        &format!(
            "[[account]]\naddress = \"{address}\"\n[[account.typed_data_domains]]\nname = \"Ether Mail\"\nchain_id = {}\n",
            node.chain_id()
        ),
    );
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let script = format!(
        r#"const {{ ethers }} = require("ethers");
        (async () => {{
          const provider = new ethers.JsonRpcProvider("{url}", undefined, {{ staticNetwork: true }});
          const signer = await provider.getSigner("{address}");
          const domain = {{ name: "Ether Mail", version: "1", chainId: {chain}, verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" }};
          const types = {{ Person: [{{ name: "name", type: "string" }}, {{ name: "wallet", type: "address" }}] }};
          const value = {{ name: "Cow", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" }};
          const signature = await signer.signTypedData(domain, types, value);
          let refused = null;
          try {{ await signer.signTypedData({{ ...domain, name: "Seaport" }}, types, value); }}
          catch (err) {{ refused = err.error ? err.error.message : String(err); }}
          console.log(JSON.stringify({{ recovered: ethers.verifyTypedData(domain, types, value, signature), refused }}));
        }})().catch((err) => {{ console.error(err); process.exit(1); }});"#,
        url = served.url,
        chain = node.chain_id()
    );
    let result = kms_eth_e2e::run_ethers(&script, &served.log());
    assert_eq!(result["recovered"].as_str().unwrap(), address);
    assert!(
        result["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("typed_data_domains"),
        "{result}"
    );
    // Typed data for another chain than the service's is refused as wallets refuse it.
    let mut other_chain: Value = serde_json::from_str(MAIL).unwrap();
    other_chain["domain"]["chainId"] = json!(5);
    let reply = served.call(
        "eth_signTypedData_v4",
        json!([address, other_chain.to_string()]),
    );
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let _ = std::fs::remove_file(policy);
}

#[test]
fn bad_typed_data_is_refused_with_the_field_named_before_any_call() {
    let mail: Value = serde_json::from_str(MAIL).unwrap();
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut value = mail.clone();
        edit(&mut value);
        value.to_string()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--data".into(), "{".into()], "invalid --data"),
        (
            vec!["--data".into(), "[]".into()],
            "invalid --data: typed data is a JSON object",
        ),
        (vec!["--data".into(), "{}".into()], "missing \"types\""),
        (
            vec![
                "--data".into(),
                edited(&|v| v["primaryType"] = "Letter".into()),
            ],
            "Letter",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| {
                    v["message"].as_object_mut().unwrap().remove("contents");
                }),
            ],
            "message.contents is missing",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| v["message"]["to"]["age"] = 1.into()),
            ],
            "message.to.age is not a field of Person",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| v["types"]["Person"][1]["type"] = "adress".into()),
            ],
            "adress",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| v["message"]["from"]["wallet"] = "0x12".into()),
            ],
            "invalid --data",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| v["types"]["Mail"][2]["type"] = "uint8".into()),
            ],
            "invalid --data",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| {
                    v["message"]["contents"] = json!(300);
                    v["types"]["Mail"][2]["type"] = "uint8".into();
                }),
            ],
            "invalid --data",
        ),
        (
            vec!["--data".into(), edited(&|v| v["extra"] = 1.into())],
            "unknown field \"extra\"",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| v["domain"]["chainId"] = "x".into()),
            ],
            "invalid --data",
        ),
        (
            vec![
                "--data".into(),
                edited(&|v| v["message"]["from"] = "Cow".into()),
            ],
            "message.from is a Person",
        ),
        (
            vec!["/nonexistent/typed.json".into()],
            "invalid FILE /nonexistent/typed.json",
        ),
        (vec![], "required"),
        (
            vec!["--data".into(), MAIL.into(), "/tmp/also-a-file.json".into()],
            "cannot be used with",
        ),
    ];
    assert!(cases.len() >= 15);
    for (extra, message) in cases {
        let mut args = vec![
            "sign-typed-data".to_owned(),
            "--key-id".into(),
            "alias/never-called".into(),
            "--endpoint-url".into(),
            "http://127.0.0.1:9".into(),
        ];
        args.extend(extra);
        let output = TestCommand::new(kms_eth_binary()).args(&args).output();
        assert_usage_error(&output, &args, message);
        assert!(
            !stderr(&output).contains("cannot reach"),
            "{args:?} called KMS"
        );
    }
    // verify: --signature without what it signs, and a typed-data file with a transaction.
    for (args, message) in [
        (
            &["verify", "0x00", "--signature", "0x00"][..],
            "--signature needs --message",
        ),
        (&["verify", "--typed-data", "x.json"][..], "--signature"),
    ] {
        let output = TestCommand::new(kms_eth_binary()).args(args).output();
        assert_usage_error(&output, &args, message);
    }
}
