//! Key discovery by tag (only enabled, tagged kms-eth keys), readiness that follows the key's
//! state, and the metrics endpoint.

use std::time::Duration;

use kms_eth_e2e::raw_http::readyz_until;
use kms_eth_e2e::served::{raw_request, Served};
use kms_eth_e2e::{json_output, kms, kms_eth, TestKey};
use kms_eth_harness::anvil;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_tags_select_only_enabled_tagged_kms_eth_keys() {
    // Web3Signer #1052: a tag filter that matched untagged keys. Here four kms-eth keys:
    // tagged and enabled, untagged, tagged but disabled, tagged but pending deletion.
    let kms = kms().await;
    let team = format!("serve-{}", std::process::id());
    let account_tag = ("kms-eth:account", "serve-test");
    let tagged = TestKey::ethereum_tagged(&kms, &[account_tag, ("team", &team)]).await;
    let _untagged = TestKey::ethereum_tagged(&kms, &[account_tag]).await;
    let disabled = TestKey::ethereum_tagged(&kms, &[account_tag, ("team", &team)]).await;
    kms.disable_key().key_id(&disabled.id).send().await.unwrap();
    let pending = TestKey::ethereum_tagged(&kms, &[account_tag, ("team", &team)]).await;
    kms.schedule_key_deletion()
        .key_id(&pending.id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let expected =
        json_output(&kms_eth(&["status", "--key-id", &tagged.id, "--json"]))["address"].clone();
    let node = anvil::Anvil::start(Duration::from_secs(60)).unwrap();
    let served = Served::start(&[
        "--rpc-url",
        node.url(),
        "--key-tag",
        &format!("team={team}"),
        "--unrestricted",
        "--readiness-interval",
        "1",
    ]);
    assert_eq!(served.result("eth_accounts", json!([])), json!([expected]));
    // Readiness comes from a background check, once a second here.
    let ready = readyz_until(&served.address, &[], 200, Duration::from_secs(60));
    assert_eq!(ready["policy"], "unrestricted");
    // A key disabled under the running service makes it not ready at the next check.
    kms.disable_key().key_id(&tagged.id).send().await.unwrap();
    let ready = readyz_until(&served.address, &[], 503, Duration::from_secs(30));
    assert_eq!(ready["ready"], false, "{ready}");
    kms.enable_key().key_id(&tagged.id).send().await.unwrap();
    let metrics = raw_request(&served.address, "GET /metrics HTTP/1.1", &[], b"")
        .unwrap()
        .1;
    assert!(
        metrics.contains("kms_eth_requests_total{method=\"eth_accounts\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
}
