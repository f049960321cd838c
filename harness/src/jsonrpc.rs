//! A blocking Ethereum JSON-RPC call, for the harness's own nodes (anvil start-up checks,
//! `chain status`) and the tests that fund accounts on them. The product's node client is
//! `kms_eth::node`; this one is for development only.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::process::http_agent;

/// Calls a JSON-RPC method and returns its result, or the node's error as an error.
pub fn call(url: &str, method: &str, params: Value) -> Result<Value> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let reply = exchange(url, &body)?;
    if let Some(error) = reply.get("error") {
        bail!("{method} on {url} failed: {error}");
    }
    reply
        .get("result")
        .cloned()
        .with_context(|| format!("{method} on {url} answered without a result: {reply}"))
}

/// Posts one JSON-RPC request (or batch) and returns the node's reply as it is, errors
/// included: what a proxy in front of the node passes on.
pub fn exchange(url: &str, request: &Value) -> Result<Value> {
    let what = request["method"].as_str().unwrap_or("a batch");
    let mut response = http_agent(Duration::from_secs(10))
        .post(url)
        .send_json(request)
        .with_context(|| format!("calling {what} on {url}"))?;
    response
        .body_mut()
        .read_json()
        .with_context(|| format!("reading the answer to {what} from {url}"))
}

/// Parses a JSON-RPC quantity (`"0x7a69"`) that fits in 64 bits.
pub fn quantity(value: &Value) -> Result<u64> {
    value
        .as_str()
        .and_then(|text| text.strip_prefix("0x"))
        .and_then(|digits| u64::from_str_radix(digits, 16).ok())
        .with_context(|| format!("{value} is not a 0x-prefixed 64-bit quantity"))
}
