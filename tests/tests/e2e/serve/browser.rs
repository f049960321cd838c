//! Browser safety, with the exact requests browsers send: a web page of another site
//! posting text/plain or a form (simple requests, no preflight), its preflight, and a page
//! on a name rebound to 127.0.0.1 (DNS rebinding) posting as its own origin. Each tries to
//! send 1 ether from an unrestricted service; none reaches KMS (Sign calls counted by the
//! fault proxy), the balance and nonce stay as they were. Listed origins and hosts work.

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::raw_http::{exchange, Answer};
use kms_eth_e2e::served::Served;
use kms_eth_e2e::{balance, funded_account, localstack_endpoint, nonce, TestKey};
use kms_eth_harness::anvil::Anvil;
use serde_json::json;

use super::RECIPIENT;

/// An unrestricted service (the worst case: no policy stands behind the edge) for `key`
/// in front of `node`, reaching KMS through `proxy`, with `extra` flags.
pub(super) fn serve_unrestricted(
    key: &TestKey,
    node: &Anvil,
    proxy: &FaultProxy,
    extra: &[&str],
) -> Served {
    let mut args = vec![
        "--rpc-url",
        node.url(),
        "--key-id",
        &key.id,
        "--unrestricted",
        "--endpoint-url",
        proxy.endpoint(),
    ];
    args.extend_from_slice(extra);
    Served::start(&args)
}

/// What the service's refusals must leave as it was: no KMS `Sign`, the account's balance
/// and nonce on the node.
pub(super) struct Untouched<'a> {
    proxy: &'a FaultProxy,
    node: &'a str,
    address: &'a str,
    signs: u64,
    balance: kms_eth_signer::U256,
    nonce: u64,
}

impl<'a> Untouched<'a> {
    pub(super) fn now(proxy: &'a FaultProxy, node: &'a str, address: &'a str) -> Untouched<'a> {
        Untouched {
            proxy,
            node,
            address,
            signs: proxy.counts("Sign").attempts(),
            balance: balance(node, address),
            nonce: nonce(node, address),
        }
    }

    pub(super) fn check(&self, what: &str) {
        assert_eq!(
            self.proxy.counts("Sign").attempts(),
            self.signs,
            "{what}: KMS was asked to sign"
        );
        assert_eq!(balance(self.node, self.address), self.balance, "{what}");
        assert_eq!(nonce(self.node, self.address), self.nonce, "{what}");
    }
}

/// The body that sent 1 ether from a web page before: `eth_sendTransaction` from `from`.
pub(super) fn send_one_ether(from: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_sendTransaction",
        "params": [{ "from": from, "to": RECIPIENT, "value": "0xde0b6b3a7640000" }]
    })
    .to_string()
}

/// The headers Chromium adds to a `fetch` from a page (the request line, Host, Origin and
/// Content-Type are the test's).
const FETCH_HEADERS: [&str; 6] = [
    "Accept: */*",
    "Accept-Language: en-US",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: cors",
    "Sec-Fetch-Site: cross-site",
];

fn request(address: &str, lines: &[&str], body: &str) -> Answer {
    let mut head: Vec<&str> = lines.to_vec();
    head.extend(FETCH_HEADERS);
    exchange(address, &head, body.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_other_sites_and_rebound_names_cannot_make_the_service_sign() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let app = "http://app.example:3000";
    let served = serve_unrestricted(
        &key,
        &node,
        &proxy,
        &["--allow-origin", app, "--allow-host", "signer.test"],
    );
    let port = served.address.rsplit(':').next().unwrap();
    let own_host = format!("Host: {}", served.address);
    let untouched = Untouched::now(&proxy, node.url(), &address);
    let send = send_one_ether(&address);
    let refused = |answer: &Answer, status: u16, what: &str| {
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert_eq!(answer.error_code(), -32600, "{what}: {answer:?}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            None,
            "{what}: a refusal names no origin"
        );
    };

    // A page of another site: fetch(url, {method: "POST", body}) with a string body is a
    // simple request, text/plain, sent without a preflight.
    let simple = request(
        &served.address,
        &[
            "POST / HTTP/1.1",
            &own_host,
            "Origin: http://evil.example",
            "Content-Type: text/plain;charset=UTF-8",
        ],
        &send,
    );
    refused(&simple, 403, "a cross-site simple POST");
    assert!(simple.body.contains("--allow-origin"), "{simple:?}");
    // Its form: <form method=post enctype=text/plain> with the JSON in a field's name.
    let form_body = format!("{}=", &send[..send.len() - 1]);
    for content_type in [
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
    ] {
        let form = exchange(
            &served.address,
            &[
                "POST / HTTP/1.1",
                &own_host,
                "Origin: http://evil.example",
                content_type,
                "Sec-Fetch-Mode: navigate",
                "Sec-Fetch-Dest: document",
                "Sec-Fetch-Site: cross-site",
            ],
            form_body.as_bytes(),
        )
        .unwrap();
        refused(&form, 403, content_type);
    }
    // What a fetch with Content-Type: application/json needs first: its preflight.
    let preflight = |origin: &str| {
        request(
            &served.address,
            &[
                "OPTIONS / HTTP/1.1",
                &own_host,
                &format!("Origin: {origin}"),
                "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: content-type",
            ],
            "",
        )
    };
    let evil_preflight = preflight("http://evil.example");
    refused(&evil_preflight, 403, "another site's preflight");
    // Had the browser sent the POST anyway (or a script outside one, with that Origin).
    let json_from_evil = request(
        &served.address,
        &[
            "POST / HTTP/1.1",
            &own_host,
            "Origin: http://evil.example",
            "Content-Type: application/json",
        ],
        &send,
    );
    refused(&json_from_evil, 403, "application/json from another site");
    // A text/plain POST without an Origin (browsers send one with every POST today; an
    // old browser or an extension stripping it may not), and one from the listed origin:
    // refused for their type.
    for (origin, what) in [
        (None, "text/plain without Origin"),
        (Some(app), "text/plain from the listed origin"),
    ] {
        let origin = origin.map(|o| format!("Origin: {o}"));
        let mut lines = vec![
            "POST / HTTP/1.1",
            own_host.as_str(),
            "Content-Type: text/plain;charset=UTF-8",
        ];
        lines.extend(origin.as_deref());
        let answer = request(&served.address, &lines, &send);
        assert_eq!(answer.status, 415, "{what}: {answer:?}");
        assert_eq!(answer.error_code(), -32600, "{what}: {answer:?}");
        assert!(answer.body.contains("application/json"), "{answer:?}");
    }

    // DNS rebinding: rebind.evil.example now resolves to 127.0.0.1, so the page's fetch
    // is same-origin: no preflight, its own name in Host and Origin, and it could read
    // the answer.
    let rebound = format!("http://rebind.evil.example:{port}");
    let rebound_host = format!("Host: rebind.evil.example:{port}");
    let rebinding = request(
        &served.address,
        &[
            "POST / HTTP/1.1",
            &rebound_host,
            &format!("Origin: {rebound}"),
            "Content-Type: application/json",
            "Sec-Fetch-Site: same-origin",
        ],
        &send,
    );
    refused(&rebinding, 403, "a rebound page's POST");
    assert!(
        rebinding.body.contains("rebind.evil.example"),
        "{rebinding:?}"
    );
    // The Host alone is refused: the rebound page's GET (browsers send no Origin with a
    // same-origin GET) reads nothing, and neither does a POST without an Origin.
    for lines in [
        vec!["GET /readyz HTTP/1.1", rebound_host.as_str()],
        vec!["GET /metrics HTTP/1.1", rebound_host.as_str()],
        vec![
            "POST / HTTP/1.1",
            rebound_host.as_str(),
            "Content-Type: application/json",
        ],
        vec![
            "POST / HTTP/1.1",
            "Host: rebind.evil.example",
            "Content-Type: application/json",
        ],
    ] {
        let answer = exchange(&served.address, &lines, send.as_bytes()).unwrap();
        refused(&answer, 403, &lines.join(" | "));
    }
    // The authority of an absolute request target wins over Host (HTTP/1.1): checked too.
    let absolute_target = format!("POST http://rebind.evil.example:{port}/ HTTP/1.1");
    let absolute = exchange(
        &served.address,
        &[
            &absolute_target,
            &own_host,
            "Content-Type: application/json",
        ],
        send.as_bytes(),
    )
    .unwrap();
    refused(&absolute, 403, "an absolute target naming another host");
    untouched.check("the browser's requests");

    // What is allowed: the listed origin's preflight and call (CORS headers naming it
    // alone), localhost and the listed host name, the listener's own address.
    let app_preflight = preflight(app);
    assert_eq!(app_preflight.status, 204, "{app_preflight:?}");
    assert_eq!(
        app_preflight.header("access-control-allow-origin"),
        Some(app)
    );
    assert!(app_preflight
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    assert!(app_preflight
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("content-type")));
    let accounts =
        json!({ "jsonrpc": "2.0", "id": 2, "method": "eth_accounts", "params": [] }).to_string();
    let localhost = format!("Host: localhost:{port}");
    let listed = format!("Host: signer.test:{port}");
    let app_origin = format!("Origin: {app}");
    for lines in [
        vec![
            "POST / HTTP/1.1",
            own_host.as_str(),
            app_origin.as_str(),
            "Content-Type: application/json",
        ],
        vec![
            "POST / HTTP/1.1",
            localhost.as_str(),
            "Content-Type: application/json",
        ],
        vec![
            "POST / HTTP/1.1",
            listed.as_str(),
            "Content-Type: application/json; charset=utf-8",
        ],
    ] {
        let answer = exchange(&served.address, &lines, accounts.as_bytes()).unwrap();
        assert_eq!(answer.status, 200, "{lines:?}: {answer:?}");
        assert_eq!(answer.json()["result"], json!([address]), "{answer:?}");
        let expected = lines.contains(&app_origin.as_str()).then_some(app);
        assert_eq!(
            answer.header("access-control-allow-origin"),
            expected,
            "{answer:?}"
        );
    }
    // The listed origin's page may sign: the same send, from it, goes through.
    let sent = request(
        &served.address,
        &[
            "POST / HTTP/1.1",
            &own_host,
            &app_origin,
            "Content-Type: application/json",
        ],
        &send,
    );
    assert!(sent.json()["result"].is_string(), "{sent:?}");
    assert_eq!(
        proxy.counts("Sign").attempts(),
        untouched.signs + 1,
        "one send, one signature"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser_cannot_make_the_service_sign() {
    let (key, address, node) = funded_account().await;
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let served = serve_unrestricted(&key, &node, &proxy, &[]);
    let untouched = Untouched::now(&proxy, node.url(), &address);
    let port = served.address.rsplit(':').next().unwrap();
    let config =
        json!({ "service_port": port.parse::<u16>().unwrap(), "from": address, "to": RECIPIENT });
    let seen = kms_eth_harness::browser::run_script("attack.js", &[&config.to_string()])
        .unwrap_or_else(|err| panic!("the browser could not be run: {err:#}"));

    // The other site's page: the browser let it read nothing, and its form went out.
    let cross_site = &seen["cross_site"];
    for name in ["text_plain_post", "json_post", "readyz"] {
        assert!(
            cross_site[name]["error"].is_string(),
            "{name}: the page read an answer: {seen}"
        );
    }
    assert_eq!(cross_site["no_cors_post"]["type"], "opaque", "{seen}");
    assert_eq!(cross_site["form_post"]["submitted"], true, "{seen}");
    // The rebound page may read its same-origin answers: each a refusal naming its Host.
    let rebound = &seen["rebound"];
    for name in ["json_post", "text_plain_post", "readyz"] {
        assert_eq!(rebound[name]["status"], 403, "{name}: {seen}");
        let body: serde_json::Value = serde_json::from_str(rebound[name]["body"].as_str().unwrap())
            .unwrap_or_else(|_| panic!("{name}: {seen}"));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rebind.evil.example"),
            "{name}: {seen}"
        );
    }
    // The requests did reach the service, which refused each: the cross-site page's four
    // fetches (the JSON one as its preflight) and its form, the rebound page's three.
    let log = served.log();
    let refusals = |what: &str| {
        log.lines()
            .filter(|line| {
                line.contains("refused a request a web page could have sent") && line.contains(what)
            })
            .count()
    };
    assert!(refusals("http://evil.example") >= 5, "{log}");
    assert!(refusals("rebind.evil.example") >= 3, "{log}");
    untouched.check("the pages in the browser");
}
