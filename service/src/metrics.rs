//! The signing service's metrics, written in the Prometheus text format on `/metrics`:
//! requests by method and outcome, policy denials by rule, KMS signing latency, nonce
//! resynchronisations, each node in or out and the failovers between them (read from the
//! `Nodes` at each scrape). A leaf: the rest of the service counts here, this module knows
//! nothing of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kms_eth_node::Nodes;

/// Upper bounds of the KMS latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every counter the service keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// The upstream nodes, whose health and failovers each scrape reads.
    nodes: OnceLock<Nodes>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    denials: BTreeMap<&'static str, u64>,
    kms_buckets: [u64; BUCKETS.len()],
    kms_count: u64,
    kms_sum: f64,
    resyncs: u64,
}

impl Metrics {
    fn with(&self, update: impl FnOnce(&mut Inner)) {
        update(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// One JSON-RPC request of `method` ended with `outcome` (`ok`, `error`, `denied`).
    /// Both are names the service chose (`'static`), never a client's text: a client cannot
    /// grow the metrics without bound.
    pub fn request(&self, method: &'static str, outcome: &'static str) {
        self.with(|m| *m.requests.entry((method, outcome)).or_default() += 1);
    }

    /// The policy refused a request under `rule`.
    pub fn denial(&self, rule: &'static str) {
        self.with(|m| *m.denials.entry(rule).or_default() += 1);
    }

    /// Reports the health of `nodes` and their failovers from now on.
    pub fn watch(&self, nodes: Nodes) {
        let _ = self.nodes.set(nodes);
    }

    /// A KMS signature took `latency`.
    pub fn kms_sign(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        self.with(|m| {
            for (bucket, bound) in m.kms_buckets.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            m.kms_count += 1;
            m.kms_sum += seconds;
        });
    }

    /// The nonce manager took the node's count over its own.
    pub fn resync(&self) {
        self.with(|m| m.resyncs += 1);
    }

    /// Every metric, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP kms_eth_requests_total JSON-RPC requests by method and outcome."
        );
        let _ = writeln!(out, "# TYPE kms_eth_requests_total counter");
        for ((method, outcome), count) in &m.requests {
            let _ = writeln!(
                out,
                "kms_eth_requests_total{{method=\"{method}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kms_eth_policy_denials_total Requests refused by the policy, by rule."
        );
        let _ = writeln!(out, "# TYPE kms_eth_policy_denials_total counter");
        for (rule, count) in &m.denials {
            let _ = writeln!(
                out,
                "kms_eth_policy_denials_total{{rule=\"{rule}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kms_eth_kms_sign_seconds Latency of KMS signatures."
        );
        let _ = writeln!(out, "# TYPE kms_eth_kms_sign_seconds histogram");
        for (bound, count) in BUCKETS.iter().zip(m.kms_buckets) {
            let _ = writeln!(
                out,
                "kms_eth_kms_sign_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "kms_eth_kms_sign_seconds_bucket{{le=\"+Inf\"}} {}",
            m.kms_count
        );
        let _ = writeln!(out, "kms_eth_kms_sign_seconds_sum {}", m.kms_sum);
        let _ = writeln!(out, "kms_eth_kms_sign_seconds_count {}", m.kms_count);
        let _ = writeln!(out, "# HELP kms_eth_nonce_resyncs_total Times the nonce manager took the node's count over its own.");
        let _ = writeln!(out, "# TYPE kms_eth_nonce_resyncs_total counter");
        let _ = writeln!(out, "kms_eth_nonce_resyncs_total {}", m.resyncs);
        if let Some(nodes) = self.nodes.get() {
            render_nodes(&mut out, nodes);
        }
        out
    }
}

/// `text` as a label value: backslashes, quotes and line ends escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Each node up (1) or taken out (0), by its shown URL, and the failovers between them.
fn render_nodes(out: &mut String, nodes: &Nodes) {
    let _ = writeln!(
        out,
        "# HELP kms_eth_node_up Whether the upstream node is in (1: answering on the chain) or taken out (0)."
    );
    let _ = writeln!(out, "# TYPE kms_eth_node_up gauge");
    for health in nodes.health() {
        let _ = writeln!(
            out,
            "kms_eth_node_up{{node=\"{}\"}} {}",
            label(&health.node),
            u8::from(health.up)
        );
    }
    let _ = writeln!(
        out,
        "# HELP kms_eth_node_failovers_total Calls moved on to another node because one gave no answer."
    );
    let _ = writeln!(out, "# TYPE kms_eth_node_failovers_total counter");
    let _ = writeln!(out, "kms_eth_node_failovers_total {}", nodes.failovers());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_eth_node::Node;

    #[test]
    fn each_node_is_a_gauge_by_its_shown_url_and_failovers_a_counter() {
        let metrics = Metrics::default();
        assert!(!metrics.render().contains("kms_eth_node_up"));
        let nodes = Nodes::new(
            vec![
                Node::new("https://node.example/v3/SECRET").expect("url"),
                Node::new("http://127.0.0.1:8545").expect("url"),
            ],
            1,
        )
        .expect("nodes");
        metrics.watch(nodes);
        let text = metrics.render();
        assert!(
            text.contains("kms_eth_node_up{node=\"https://node.example\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kms_eth_node_up{node=\"http://127.0.0.1:8545\"} 1"),
            "{text}"
        );
        assert!(text.contains("kms_eth_node_failovers_total 0"), "{text}");
        assert!(!text.contains("SECRET"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
