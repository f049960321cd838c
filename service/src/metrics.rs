//! The signing service's metrics, written in the Prometheus text format on `/metrics`:
//! requests by method and outcome, policy denials by rule, KMS signing latency, nonce
//! resynchronisations, each node in or out and the failovers between them (read from the
//! `Nodes` at each scrape), each account's KMS Regions up or down and the failovers between
//! them. A leaf: the rest of the service counts here, this module knows nothing of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kms_eth_node::Nodes;
use kms_eth_signer::{Address, RegionHealth};

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
    gaps_filled: u64,
    gaps_unfilled: u64,
    rebroadcasts: u64,
    replacements: u64,
    stuck: u64,
    /// Whether the replicas' shared store answered at the last readiness check, if there is
    /// one.
    store_up: Option<bool>,
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

    /// The shared store answered the readiness check (`true`) or did not.
    pub fn store_up(&self, up: bool) {
        self.with(|m| m.store_up = Some(up));
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

    /// A nonce left unused was filled with a transfer to the account itself.
    pub fn gap_filled(&self) {
        self.with(|m| m.gaps_filled += 1);
    }

    /// A nonce left unused could not be filled (the policy, KMS or the node refused).
    pub fn gap_unfilled(&self) {
        self.with(|m| m.gaps_unfilled += 1);
    }

    /// The tracker broadcast a transaction again that the node no longer knew.
    pub fn rebroadcast(&self) {
        self.with(|m| m.rebroadcasts += 1);
    }

    /// A pending transaction was replaced with higher fees (or cancelled).
    pub fn replacement(&self) {
        self.with(|m| m.replacements += 1);
    }

    /// The tracker could not replace a transaction that is not being mined.
    pub fn stuck(&self) {
        self.with(|m| m.stuck += 1);
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
        if let Some(up) = m.store_up {
            let _ = writeln!(out, "# HELP kms_eth_store_up Whether the replicas' shared state store answered the last readiness check (0: this replica signs nothing).");
            let _ = writeln!(out, "# TYPE kms_eth_store_up gauge");
            let _ = writeln!(out, "kms_eth_store_up {}", u8::from(up));
        }
        let _ = writeln!(out, "# HELP kms_eth_nonce_resyncs_total Times the nonce manager took the node's count over its own.");
        let _ = writeln!(out, "# TYPE kms_eth_nonce_resyncs_total counter");
        let _ = writeln!(out, "kms_eth_nonce_resyncs_total {}", m.resyncs);
        for (name, help, value) in [
            (
                "kms_eth_gaps_filled_total",
                "Nonces left unused that were filled with a transfer to the account itself.",
                m.gaps_filled,
            ),
            (
                "kms_eth_gaps_unfilled_total",
                "Attempts to fill an unused nonce that the policy, KMS or the node refused.",
                m.gaps_unfilled,
            ),
            (
                "kms_eth_rebroadcasts_total",
                "Pending transactions broadcast again because the node no longer knew them.",
                m.rebroadcasts,
            ),
            (
                "kms_eth_replacements_total",
                "Pending transactions replaced with higher fees (speed-ups and cancels).",
                m.replacements,
            ),
            (
                "kms_eth_stuck_total",
                "Times the tracker could not replace a transaction that was not being mined.",
                m.stuck,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(nodes) = self.nodes.get() {
            render_nodes(&mut out, nodes);
        }
        out
    }

    /// The tracker's gauges: pending transactions per account and the age of the oldest,
    /// from `(account, pending, oldest first seen)` at `now` (Unix seconds).
    pub fn render_tracked(summary: &[(String, usize, Option<u64>)], now: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP kms_eth_pending_transactions Transactions broadcast and not yet mined, per account.");
        let _ = writeln!(out, "# TYPE kms_eth_pending_transactions gauge");
        for (account, pending, _) in summary {
            let _ = writeln!(
                out,
                "kms_eth_pending_transactions{{account=\"{account}\"}} {pending}"
            );
        }
        let _ = writeln!(out, "# HELP kms_eth_oldest_pending_seconds Age of the account's oldest transaction not yet mined.");
        let _ = writeln!(out, "# TYPE kms_eth_oldest_pending_seconds gauge");
        for (account, _, oldest) in summary {
            if let Some(oldest) = oldest {
                let _ = writeln!(
                    out,
                    "kms_eth_oldest_pending_seconds{{account=\"{account}\"}} {}",
                    now.saturating_sub(*oldest)
                );
            }
        }
        out
    }

    /// Each account's KMS Regions up (1) or down (0), and the signatures that moved on from
    /// each to another Region, from `(account, its Regions' health)`.
    pub fn render_regions(accounts: impl Iterator<Item = (Address, Vec<RegionHealth>)>) -> String {
        let accounts: Vec<_> = accounts.collect();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP kms_eth_kms_region_up Whether the account's key answered in the Region at its last call (1) or not (0).");
        let _ = writeln!(out, "# TYPE kms_eth_kms_region_up gauge");
        for (account, regions) in &accounts {
            for region in regions {
                let _ = writeln!(
                    out,
                    "kms_eth_kms_region_up{{account=\"{account}\",region=\"{}\"}} {}",
                    label(&region.region),
                    u8::from(region.up)
                );
            }
        }
        let _ = writeln!(out, "# HELP kms_eth_kms_failovers_total Signatures that moved on from the Region to the account's next one.");
        let _ = writeln!(out, "# TYPE kms_eth_kms_failovers_total counter");
        for (account, regions) in &accounts {
            for region in regions {
                let _ = writeln!(
                    out,
                    "kms_eth_kms_failovers_total{{account=\"{account}\",region=\"{}\"}} {}",
                    label(&region.region),
                    region.failovers
                );
            }
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
