//! The service's other edges: `/readyz` answered from the background check's report (KMS
//! calls counted by the fault proxy: a flood of GETs makes none), `/metrics` and `/readyz`
//! behind the token or on their own `--metrics-listen` address, EIP-1193's 4100 for a
//! missing token, and clients trickling their bodies, which no longer keep everyone out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::raw_http::{exchange, parse_answer, readyz_until};
use kms_eth_e2e::{funded_account, localstack_endpoint};
use serde_json::json;

use super::browser::{send_one_ether, serve_unrestricted, Untouched};
use super::write_temp;

const TOKEN: &str = "edges-test-token-0123456789abcdef";

/// Every KMS call the proxy saw, of any operation.
fn kms_calls(proxy: &FaultProxy) -> u64 {
    proxy.all_counts().values().map(|c| c.attempts()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_cached_and_the_token_guards_metrics_readiness_and_signing() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let token = write_temp("edges-token", TOKEN);
    let served = serve_unrestricted(
        &key,
        &node,
        &proxy,
        // One check at start, then none while the test runs.
        &[
            "--auth-token-file",
            token.to_str().unwrap(),
            "--readiness-interval",
            "3600",
        ],
    );
    let untouched = Untouched::now(&proxy, node.url(), &address);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let report = readyz_until(&served.address, &[&bearer], 200, Duration::from_secs(60));
    assert_eq!(report["accounts"][0]["key_state"], "Enabled", "{report}");
    assert_eq!(
        proxy.counts("DescribeKey").attempts(),
        1,
        "the check asks KMS once per key: {:?}",
        proxy.all_counts()
    );
    let host = format!("Host: {}", served.address);
    let get = |path: &str, auth: Option<&str>| {
        let line = format!("GET {path} HTTP/1.1");
        let mut head = vec![line.as_str(), host.as_str()];
        head.extend(auth);
        exchange(&served.address, &head, b"").unwrap()
    };
    // 100 GETs (each did a node call and four KMS calls before): no KMS call at all.
    let before = kms_calls(&proxy);
    for _ in 0..100 {
        let answer = get("/readyz", Some(&bearer));
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(get("/metrics", Some(&bearer)).status, 200);
    assert_eq!(
        kms_calls(&proxy),
        before,
        "GET /readyz called KMS: {:?}",
        proxy.all_counts()
    );

    // Without the token, or with a wrong one: 401 and EIP-1193's 4100, for the metrics,
    // the report and a signing request alike. /healthz says only that the process runs.
    let wrong = "Authorization: Bearer edges-wrong-token-0123456789ab";
    for path in ["/readyz", "/metrics"] {
        for auth in [None, Some(wrong)] {
            let answer = get(path, auth);
            assert_eq!(answer.status, 401, "{path} {auth:?}: {answer:?}");
            assert_eq!(answer.error_code(), 4100, "{answer:?}");
            assert!(!answer.body.contains(&address[2..]), "{answer:?}");
        }
    }
    assert_eq!(get("/healthz", None).status, 200);
    let send = send_one_ether(&address);
    for auth in [None, Some(wrong)] {
        let mut head = vec![
            "POST / HTTP/1.1",
            host.as_str(),
            "Content-Type: application/json",
        ];
        head.extend(auth);
        let answer = exchange(&served.address, &head, send.as_bytes()).unwrap();
        assert_eq!(answer.status, 401, "{auth:?}: {answer:?}");
        assert_eq!(answer.error_code(), 4100, "{answer:?}");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
    untouched.check("requests without the token");
    let _ = std::fs::remove_file(token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_serves_metrics_and_readiness_alone_and_the_check_keeps_its_pace() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let token = write_temp("edges-metrics-token", TOKEN);
    let metrics_port = kms_eth_harness::process::free_port().unwrap();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let interval = 2;
    let served = serve_unrestricted(
        &key,
        &node,
        &proxy,
        &[
            "--auth-token-file",
            token.to_str().unwrap(),
            "--metrics-listen",
            &metrics,
            "--readiness-interval",
            &interval.to_string(),
        ],
    );
    let untouched = Untouched::now(&proxy, node.url(), &address);
    // On the metrics address, without the token.
    readyz_until(&metrics, &[], 200, Duration::from_secs(60));
    let metrics_host = format!("Host: {metrics}");
    let answer = exchange(&metrics, &["GET /metrics HTTP/1.1", &metrics_host], b"").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("kms_eth_requests_total"), "{answer:?}");
    // Only there: not on the main listener, even with the token; and no JSON-RPC there.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let host = format!("Host: {}", served.address);
    for path in ["/metrics", "/readyz"] {
        let line = format!("GET {path} HTTP/1.1");
        let answer = exchange(&served.address, &[&line, &host, &bearer], b"").unwrap();
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(answer.body.contains("--metrics-listen"), "{answer:?}");
    }
    let send = send_one_ether(&address);
    let posted = exchange(
        &metrics,
        &[
            "POST / HTTP/1.1",
            &metrics_host,
            "Content-Type: application/json",
        ],
        send.as_bytes(),
    )
    .unwrap();
    assert_eq!(posted.status, 404, "{posted:?}");
    // The metrics address keeps the browser checks: a rebound name reads nothing.
    let rebound = format!("Host: rebind.evil.example:{metrics_port}");
    let answer = exchange(&metrics, &["GET /readyz HTTP/1.1", &rebound], b"").unwrap();
    assert_eq!(answer.status, 403, "{answer:?}");
    untouched.check("the metrics listener");

    // The background check: at most one DescribeKey per interval, however many GETs.
    let started = Instant::now();
    let before = proxy.counts("DescribeKey").attempts();
    let mut gets = 0;
    while started.elapsed() < Duration::from_secs(3 * interval) {
        let answer = exchange(&metrics, &["GET /readyz HTTP/1.1", &metrics_host], b"").unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        gets += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let checks = proxy.counts("DescribeKey").attempts() - before;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(gets >= 50, "only {gets} GETs");
    assert!(
        checks >= 1 && checks as f64 <= elapsed / interval as f64 + 1.0,
        "{checks} DescribeKey calls in {elapsed:.1} s at one per {interval} s ({gets} GETs)"
    );
    let _ = std::fs::remove_file(token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_trickling_their_bodies_are_cut_off_and_others_are_answered() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let permits = 2;
    let served = serve_unrestricted(
        &key,
        &node,
        &proxy,
        &[
            "--max-concurrent-requests",
            &permits.to_string(),
            "--body-timeout",
            "2",
            // Far above every bound below: a permit held until the request timeout fails them.
            "--request-timeout",
            "300",
        ],
    );
    let untouched = Untouched::now(&proxy, node.url(), &address);
    let send = send_one_ether(&address);
    // Twice as many slow clients as permits: each sends its headers and the start of a
    // 1-ether send, then one byte a second, never finishing within the test.
    let slow: Vec<_> = (0..2 * permits)
        .map(|_| {
            let address = served.address.clone();
            let send = send.clone();
            std::thread::spawn(move || trickle(&address, &send))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let host = format!("Host: {}", served.address);
    let accounts =
        json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_accounts", "params": [] }).to_string();
    let started = Instant::now();
    let answered = loop {
        let answer = exchange(
            &served.address,
            &["POST / HTTP/1.1", &host, "Content-Type: application/json"],
            accounts.as_bytes(),
        )
        .unwrap();
        if answer.status == 200 {
            break answer;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the slow bodies still hold every permit after 60 s (--body-timeout 2)"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(answered.json()["result"], json!([address]));
    let mut statuses: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [vec![408; permits], vec![503; permits]].concat(),
        "the slow clients' answers"
    );
    untouched.check("the slow bodies");
}

/// Sends `body`'s headers and first bytes to `address`, then a byte a second (at most 120),
/// until the service answers; returns the answer's status.
fn trickle(address: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 1000
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    let mut answer = Vec::new();
    for _ in 0..120 {
        let mut buffer = [0u8; 4096];
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Nothing yet: one more byte (a closed connection ends the loop).
                if stream.write_all(b" ").is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    parse_answer(&answer).map(|a| a.status).unwrap_or(0)
}
