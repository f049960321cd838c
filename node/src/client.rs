//! The Ethereum node client: JSON-RPC calls to the node given by `--rpc-url`, made off the
//! async runtime (the HTTP client blocks), and the pure parsing of its quantities.
//!
//! Node URLs often carry an API key in their path or query (`https://host/v3/KEY`), so
//! messages and logs name only the scheme and host.

use std::time::Duration;

use anyhow::{Context, Result};
use kms_eth_core::UsageError;
use kms_eth_signer::U256;
use serde_json::{json, Value};

/// How long one call to the node may take, unless the front end says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's JSON-RPC endpoint.
#[derive(Debug, Clone)]
pub struct Node {
    url: String,
    shown: String,
    agent: ureq::Agent,
    timeout: Duration,
}

impl Node {
    /// A client for `url`, checked to be an http(s) URL before anything is called.
    pub fn new(url: &str) -> Result<Node> {
        let shown = redact(url).ok_or_else(|| {
            UsageError(format!(
                "invalid --rpc-url: {:?} is not an http:// or https:// URL",
                redact_all(url)
            ))
        })?;
        Ok(Node {
            url: url.to_owned(),
            shown,
            agent: agent(DEFAULT_TIMEOUT),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same node, each call given at most `timeout` (at least 1 s) before it ends without
    /// an answer: a front end that must answer its own client in time gives the node less.
    pub fn with_timeout(self, timeout: Duration) -> Node {
        let timeout = timeout.max(Duration::from_secs(1));
        Node {
            agent: agent(timeout),
            timeout,
            ..self
        }
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The node as it may be shown: scheme and host, never the path or query.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Calls `method` and returns its result, or the node's error as an error.
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value> {
        let node = self.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || node.call_blocking(method, &params))
            .await
            .context("the node call was interrupted")?;
        tracing::debug!(
            node = %self.shown,
            method,
            ok = result.is_ok(),
            latency_ms = started.elapsed().as_millis() as u64,
            "node call"
        );
        result
    }

    /// Sends a JSON-RPC request (or batch) as it is and returns the node's reply as it is,
    /// errors included: what a proxy in front of the node passes on.
    pub async fn exchange(&self, request: &Value) -> Result<Value> {
        let node = self.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || {
            let what = request["method"].as_str().unwrap_or("a batch").to_owned();
            node.post(&what, &request)
        })
        .await
        .context("the node call was interrupted")?
    }

    /// Posts `body` and reads the JSON reply.
    fn post(&self, what: &str, body: &Value) -> Result<Value> {
        let mut response = self
            .agent
            .post(&self.url)
            .send_json(body)
            .map_err(|err| anyhow::anyhow!("cannot reach the node at {}: {err}", self.shown))
            .with_context(|| format!("calling {what}"))?;
        let status = response.status();
        response.body_mut().read_json().with_context(|| {
            format!(
                "the node at {} answered {what} with HTTP {status} and no JSON-RPC reply",
                self.shown
            )
        })
    }

    fn call_blocking(&self, method: &str, params: &Value) -> Result<Value> {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let reply = self.post(method, &body)?;
        if let Some(error) = reply.get("error") {
            return Err(RpcError::new(method, &self.shown, error).into());
        }
        reply.get("result").cloned().with_context(|| {
            format!(
                "{method} on {} answered without a result: {reply}",
                self.shown
            )
        })
    }
}

/// What asks a node for things: one [`Node`], or several of one chain
/// ([`crate::Nodes`]). `fill` works through it, for the CLI's `send` and the service alike.
pub trait Rpc: Sync {
    /// Calls `method` and returns its result, or the node's error as an [`RpcError`].
    fn call(
        &self,
        method: &'static str,
        params: Value,
    ) -> impl std::future::Future<Output = Result<Value>> + Send;

    /// The node (or nodes) as they may be shown: scheme and host only.
    fn shown(&self) -> &str;
}

impl Rpc for Node {
    fn call(
        &self,
        method: &'static str,
        params: Value,
    ) -> impl std::future::Future<Output = Result<Value>> + Send {
        Node::call(self, method, params)
    }

    fn shown(&self) -> &str {
        Node::shown(self)
    }
}

/// The node answered, with a JSON-RPC error: it received the call and refused it (as opposed
/// to a call that may or may not have reached it).
#[derive(Debug)]
pub struct RpcError {
    pub method: String,
    pub node: String,
    pub code: Option<i64>,
    pub message: String,
    /// The error's `data`, if the node gave any (a revert's return data, for example).
    pub data: Option<Value>,
}

impl RpcError {
    /// The JSON-RPC error object `error` that the node shown as `node` answered `method` with.
    pub fn new(method: &str, node: &str, error: &Value) -> RpcError {
        RpcError {
            method: method.to_owned(),
            node: node.to_owned(),
            code: error.get("code").and_then(Value::as_i64),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned),
            data: error.get("data").cloned(),
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} failed: {}",
            self.method, self.node, self.message
        )?;
        if let Some(code) = self.code {
            write!(f, " (error {code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

/// An HTTP client whose calls end after `timeout`, connecting included (5 s at most).
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `scheme://host[:port]` of an http(s) URL, or `None` if it is not one.
fn redact(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // user:password@host keeps only the host.
    let host = host.rsplit('@').next().unwrap_or_default();
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// What can be shown of a string that is not a valid URL: its first characters.
fn redact_all(text: &str) -> String {
    let shown: String = text.chars().take(12).collect();
    if shown.len() < text.len() {
        format!("{shown}...")
    } else {
        shown
    }
}

/// Parses a JSON-RPC quantity (`"0x7a69"`) that fits in 64 bits.
pub fn parse_quantity(value: &Value) -> Result<u64> {
    u64::try_from(parse_u256(value)?).with_context(|| format!("{value} does not fit in 64 bits"))
}

/// Parses a JSON-RPC quantity (`"0xde0b6b3a7640000"`) of up to 256 bits.
pub fn parse_u256(value: &Value) -> Result<U256> {
    let text = value
        .as_str()
        .with_context(|| format!("expected a hex quantity, got {value}"))?;
    let digits = text
        .strip_prefix("0x")
        .with_context(|| format!("expected 0x-prefixed hex, got {text:?}"))?;
    U256::from_str_radix(digits, 16).with_context(|| format!("{text:?} is not a hex quantity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_are_shown_without_their_path_query_or_credentials() {
        assert_eq!(
            redact("https://mainnet.example/v3/SECRETKEY?x=1").as_deref(),
            Some("https://mainnet.example")
        );
        assert_eq!(
            redact("http://user:pw@127.0.0.1:8545").as_deref(),
            Some("http://127.0.0.1:8545")
        );
        assert_eq!(redact("ws://127.0.0.1:8545"), None);
        assert_eq!(redact("127.0.0.1:8545"), None);
    }
}
