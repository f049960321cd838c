//! A minimal Ethereum JSON-RPC client for talking to a node (anvil, geth, a provider).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kms_eth_signer::U256;
use serde_json::{json, Value};

use crate::harness::process::http_agent;

/// Calls a JSON-RPC method and returns its result, or the node's error as an error.
pub fn rpc(url: &str, method: &str, params: Value) -> Result<Value> {
    let agent = http_agent(Duration::from_secs(10));
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let mut response = agent
        .post(url)
        .send_json(&body)
        .with_context(|| format!("calling {method} on {url}"))?;
    let reply: Value = response
        .body_mut()
        .read_json()
        .with_context(|| format!("reading the answer to {method} from {url}"))?;
    if let Some(error) = reply.get("error") {
        bail!("{method} on {url} failed: {error}");
    }
    reply
        .get("result")
        .cloned()
        .with_context(|| format!("{method} on {url} answered without a result: {reply}"))
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
