//! Several nodes of one chain seen as one (`serve --rpc-url` repeated): reads go to the
//! healthiest node and fail over to the next when it gives no answer, signed transactions
//! go to every healthy node at once, and a health check takes out a node that stops
//! answering or answers for another chain (and puts it back when it recovers).
//!
//! A JSON-RPC error is an answer: the node received the call and refused it, and another
//! node would refuse it too (a reverted call, a nonce too low). Only a call that got no
//! answer (a transport error, a timeout, a reply that is not JSON-RPC) moves on to the next
//! node, and takes its node out until the next check says it is back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures_util::future::join_all;
use kms_eth_core::UsageError;
use serde_json::{json, Value};

use crate::client::{parse_quantity, Node, Rpc, RpcError};

/// The nodes of one chain, cheap to clone (the clones share their health and counts).
#[derive(Debug, Clone)]
pub struct Nodes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    members: Vec<Member>,
    chain_id: u64,
    /// Every node as shown, joined: what messages name when they speak of "the node".
    shown: String,
    failovers: AtomicU64,
}

#[derive(Debug)]
struct Member {
    node: Node,
    /// The node as shown, made unique (two URLs of one host differ only in their hidden
    /// path, so the second is `#2`).
    shown: String,
    health: Mutex<Health>,
}

#[derive(Debug, Clone)]
struct Health {
    /// Why the node is out, or `None` while it is in.
    out: Option<String>,
    block: u64,
    latency: Duration,
}

/// What the last check (or the last call) found of one node, for `/readyz` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    /// The node as shown: scheme and host (`#2` and on for a host given twice).
    pub node: String,
    /// Whether reads and broadcasts go to it.
    pub up: bool,
    /// `ok`, or why it was taken out.
    pub state: String,
    /// Its latest block number at the last check it answered.
    pub block: u64,
    /// How long its latest block took to read at the last check it answered.
    pub latency: Duration,
}

/// One request made to one node at a time: a call, or a request passed on as it is.
enum Ask<'a> {
    Call(&'static str, &'a Value),
    Exchange(&'a Value),
}

impl Nodes {
    /// `nodes` pinned to `chain_id`, all in until a check or a call says otherwise. Nothing
    /// is called: [`Nodes::start`] checks them first.
    pub fn new(nodes: Vec<Node>, chain_id: u64) -> Result<Nodes> {
        if nodes.is_empty() {
            return Err(UsageError("serve needs at least one --rpc-url".to_owned()).into());
        }
        let mut members: Vec<Member> = Vec::with_capacity(nodes.len());
        for node in nodes {
            let same = members
                .iter()
                .filter(|m| m.node.shown() == node.shown())
                .count();
            let shown = match same {
                0 => node.shown().to_owned(),
                n => format!("{}#{}", node.shown(), n + 1),
            };
            members.push(Member {
                node,
                shown,
                health: Mutex::new(Health {
                    out: None,
                    block: 0,
                    latency: Duration::ZERO,
                }),
            });
        }
        let shown = members
            .iter()
            .map(|m| m.shown.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Nodes {
            inner: Arc::new(Inner {
                members,
                chain_id,
                shown,
                failovers: AtomicU64::new(0),
            }),
        })
    }

    /// `nodes`, each asked for its chain id and latest block before the service starts. The
    /// chain is `chain_id` if given, else the one every answering node is on. A node on
    /// another chain is refused by name (it would broadcast and read on the wrong chain); a
    /// node that does not answer starts out, and comes in when a check finds it back, as long
    /// as one node answers.
    pub async fn start(nodes: Vec<Node>, chain_id: Option<u64>) -> Result<Nodes> {
        let probes = join_all(nodes.iter().map(probe)).await;
        let mut chain = chain_id;
        let mut answered = false;
        for (node, probe) in nodes.iter().zip(&probes) {
            let Ok((on, _, _)) = probe else { continue };
            answered = true;
            match chain {
                None => chain = Some(*on),
                Some(expected) if expected != *on => {
                    let pinned = match chain_id {
                        Some(_) => "--chain-id".to_owned(),
                        None => format!("the chain of {}", first_on(&nodes, &probes, expected)),
                    };
                    return Err(UsageError(format!(
                        "invalid --rpc-url: the node at {} is on chain {on}, not {expected} \
                         ({pinned}); every --rpc-url must be a node of the chain the service \
                         signs for",
                        node.shown()
                    ))
                    .into());
                }
                Some(_) => {}
            }
        }
        let Some(chain) = chain.filter(|_| answered) else {
            let mut errors = probes.into_iter().filter_map(Result::err);
            let first = errors.next().unwrap_or_else(|| anyhow!("no node given"));
            return Err(first.context(format!(
                "asking the upstream node{} at {} for its chain id",
                if nodes.len() > 1 { "s" } else { "" },
                nodes.iter().map(Node::shown).collect::<Vec<_>>().join(", ")
            )));
        };
        let pool = Nodes::new(nodes, chain)?;
        for (member, probe) in pool.inner.members.iter().zip(probes) {
            member.record(probe, chain);
        }
        Ok(pool)
    }

    /// The chain every node must be on.
    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// How many nodes there are, in or out.
    pub fn len(&self) -> usize {
        self.inner.members.len()
    }

    /// Always false: there is at least one node.
    pub fn is_empty(&self) -> bool {
        self.inner.members.is_empty()
    }

    /// How long one call to one node may take.
    pub fn timeout(&self) -> Duration {
        self.inner
            .members
            .first()
            .map_or(crate::client::DEFAULT_TIMEOUT, |m| m.node.timeout())
    }

    /// Every node as it may be shown (scheme and host), joined by commas.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// How many times a call moved on to another node because one gave no answer.
    pub fn failovers(&self) -> u64 {
        self.inner.failovers.load(Ordering::Relaxed)
    }

    /// Calls `method` on the healthiest node, and on the next when one gives no answer;
    /// returns its result, or its JSON-RPC error as an [`RpcError`].
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value> {
        if let [only] = &self.inner.members[..] {
            return only.node.call(method, params).await;
        }
        self.failing_over(Ask::Call(method, &params)).await
    }

    /// Sends a JSON-RPC request (or batch) as it is to the healthiest node, and to the next
    /// when one gives no answer; returns the reply as it is, errors included.
    pub async fn exchange(&self, request: &Value) -> Result<Value> {
        if let [only] = &self.inner.members[..] {
            return only.node.exchange(request).await;
        }
        self.failing_over(Ask::Exchange(request)).await
    }

    /// Broadcasts the signed transactions `raws` (0x hex), in this order, as one JSON-RPC
    /// batch of `eth_sendRawTransaction` to every node that is in (to all of them when none
    /// is), at once. Per transaction: the first node's result if any node accepted it, else
    /// a node's refusal (an [`RpcError`]) over a node that gave no answer.
    pub async fn broadcast_raw(&self, raws: &[String]) -> Vec<Result<Value>> {
        const METHOD: &str = "eth_sendRawTransaction";
        if raws.is_empty() {
            return Vec::new();
        }
        // One transaction goes as a plain request: the same cost as a call today.
        let request = match raws {
            [raw] => json!({ "jsonrpc": "2.0", "id": 0, "method": METHOD, "params": [raw] }),
            _ => Value::Array(
                raws.iter()
                    .enumerate()
                    .map(|(id, raw)| {
                        json!({ "jsonrpc": "2.0", "id": id, "method": METHOD, "params": [raw] })
                    })
                    .collect(),
            ),
        };
        let order = self.order();
        let mut targets: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| self.inner.members[i].is_in())
            .collect();
        if targets.is_empty() {
            targets = order;
        }
        let replies = join_all(
            targets
                .iter()
                .map(|&i| self.inner.members[i].node.exchange(&request)),
        )
        .await;
        let mut per_node = Vec::with_capacity(targets.len());
        for (&i, reply) in targets.iter().zip(replies) {
            let member = &self.inner.members[i];
            if let Err(err) = &reply {
                member.take_out(format!("{err:#}"));
            }
            per_node.push(answers(reply, raws.len(), &member.shown, METHOD));
        }
        (0..raws.len())
            .map(|k| {
                let mut best: Option<Result<Value>> = None;
                for answers in &mut per_node {
                    let answer = std::mem::replace(&mut answers[k], Err(anyhow!("taken")));
                    best = Some(match (best, answer) {
                        (None, answer) => answer,
                        (Some(Ok(value)), _) => Ok(value),
                        (Some(Err(_)), Ok(value)) => Ok(value),
                        (Some(Err(kept)), Err(err)) => {
                            if kept.downcast_ref::<RpcError>().is_none()
                                && err.downcast_ref::<RpcError>().is_some()
                            {
                                Err(err)
                            } else {
                                Err(kept)
                            }
                        }
                    });
                }
                best.unwrap_or_else(|| Err(anyhow!("no node to broadcast to")))
            })
            .collect()
    }

    /// Asks every node for its chain id and latest block, at once: a node that does not
    /// answer, or answers for another chain, is taken out; one that answers on the chain
    /// comes (back) in. Returns what it found of each, in the order the nodes were given.
    pub async fn check(&self) -> Vec<NodeHealth> {
        let members = &self.inner.members;
        let probes = join_all(members.iter().map(|m| probe(&m.node))).await;
        for (member, probe) in members.iter().zip(probes) {
            member.record(probe, self.inner.chain_id);
        }
        self.health()
    }

    /// What the last check or call found of each node, without calling any.
    pub fn health(&self) -> Vec<NodeHealth> {
        self.inner
            .members
            .iter()
            .map(|m| {
                let health = m.health();
                NodeHealth {
                    node: m.shown.clone(),
                    up: health.out.is_none(),
                    state: health.out.unwrap_or_else(|| "ok".to_owned()),
                    block: health.block,
                    latency: health.latency,
                }
            })
            .collect()
    }

    /// The nodes, healthiest first: in before out, then the highest block, then the
    /// shortest latency, then the order given.
    fn order(&self) -> Vec<usize> {
        let members = &self.inner.members;
        let healths: Vec<Health> = members.iter().map(Member::health).collect();
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| {
            let h = &healths[i];
            (h.out.is_some(), std::cmp::Reverse(h.block), h.latency, i)
        });
        order
    }

    async fn failing_over(&self, ask: Ask<'_>) -> Result<Value> {
        let order = self.order();
        let mut last = None;
        for (tried, &i) in order.iter().enumerate() {
            let member = &self.inner.members[i];
            let result = match &ask {
                Ask::Call(method, params) => member.node.call(method, (*params).clone()).await,
                Ask::Exchange(request) => member.node.exchange(request).await,
            };
            match result {
                Err(err) if err.downcast_ref::<RpcError>().is_none() => {
                    member.take_out(format!("{err:#}"));
                    if let Some(&next) = order.get(tried + 1) {
                        self.inner.failovers.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            node = %member.shown,
                            next = %self.inner.members[next].shown,
                            error = %format!("{err:#}"),
                            "no answer from the node: asking the next"
                        );
                    }
                    last = Some(err);
                }
                answered => return answered,
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no node to ask")))
    }
}

impl Member {
    fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_in(&self) -> bool {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .out
            .is_none()
    }

    /// Takes the node out for `why`, until a check finds it back.
    fn take_out(&self, why: String) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if health.out.is_none() {
            tracing::warn!(node = %self.shown, reason = %why, "node taken out");
        }
        health.out = Some(why);
    }

    /// What a check found: in if it answered on `chain`, else out with the reason.
    fn record(&self, probe: Result<(u64, u64, Duration)>, chain: u64) {
        match probe {
            Ok((on, block, latency)) if on == chain => {
                let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
                if health.out.is_some() {
                    tracing::info!(node = %self.shown, block, "node back in");
                }
                *health = Health {
                    out: None,
                    block,
                    latency,
                };
            }
            Ok((on, _, _)) => self.take_out(format!("on chain {on}, not {chain}")),
            Err(err) => self.take_out(format!("{err:#}")),
        }
    }
}

/// A node's chain id, latest block, and how long the block number took to come.
async fn probe(node: &Node) -> Result<(u64, u64, Duration)> {
    let chain = parse_quantity(&node.call("eth_chainId", json!([])).await?)
        .with_context(|| format!("the chain id of the node at {}", node.shown()))?;
    let started = Instant::now();
    // The latest block's header rather than eth_blockNumber: a method clients call far
    // less, so that the health check stays out of the way of what they count and cache.
    let latest = node
        .call("eth_getBlockByNumber", json!(["latest", false]))
        .await?;
    let block = parse_quantity(&latest["number"])
        .with_context(|| format!("the block number of the node at {}", node.shown()))?;
    Ok((chain, block, started.elapsed()))
}

/// The first node whose probe found it on `chain`, as shown.
fn first_on(nodes: &[Node], probes: &[Result<(u64, u64, Duration)>], chain: u64) -> String {
    nodes
        .iter()
        .zip(probes)
        .find(|(_, p)| matches!(p, Ok((on, _, _)) if *on == chain))
        .map_or_else(String::new, |(n, _)| n.shown().to_owned())
}

/// One node's reply to a broadcast of `count` transactions (one plain request, or a batch
/// with ids 0..count) as one answer per transaction.
fn answers(reply: Result<Value>, count: usize, shown: &str, method: &str) -> Vec<Result<Value>> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(err) => return (0..count).map(|_| Err(anyhow!("{err:#}"))).collect(),
    };
    let one = |entry: &Value| -> Result<Value> {
        if let Some(error) = entry.get("error") {
            return Err(RpcError::new(method, shown, error).into());
        }
        entry
            .get("result")
            .cloned()
            .with_context(|| format!("{method} on {shown} answered without a result: {entry}"))
    };
    match &reply {
        Value::Array(entries) => (0..count)
            .map(|k| {
                entries
                    .iter()
                    .find(|e| e.get("id").and_then(Value::as_u64) == Some(k as u64))
                    .map_or_else(
                        || {
                            Err(anyhow!(
                                "the node at {shown} answered the batch of {count} without an \
                                 answer for its transaction {k}"
                            ))
                        },
                        one,
                    )
            })
            .collect(),
        // One request's answer, or a batch refused as a whole (one error for all).
        single => (0..count).map(|_| one(single)).collect(),
    }
}

impl Rpc for Nodes {
    fn call(
        &self,
        method: &'static str,
        params: Value,
    ) -> impl std::future::Future<Output = Result<Value>> + Send {
        Nodes::call(self, method, params)
    }

    fn shown(&self) -> &str {
        Nodes::shown(self)
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
