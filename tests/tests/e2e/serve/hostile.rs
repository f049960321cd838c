//! Hostile requests: malformed JSON-RPC, bad parameters, oversized bodies, wrong methods and
//! paths, batches and a stalled client, each with the right error while the service keeps
//! serving; listening beyond loopback only with a bearer token.

use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::{funded_account, nonce, stderr};
use serde_json::{json, Value};

use super::{write_temp, RECIPIENT};

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
    // A second service for the account while the first runs: a state folder of its own
    // (one folder's nonces and transactions are one service's).
    let state = kms_eth_e2e::scratch_dir().join(format!("hostile-guarded-{port}"));
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
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    let accounts = call("eth_accounts", json!([]));
    let with = |header: &[&str]| {
        let mut headers = vec!["Content-Type: application/json"];
        headers.extend(header);
        raw_request(
            &guarded.address,
            "POST / HTTP/1.1",
            &headers,
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
