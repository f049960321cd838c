//! The service's JSON-RPC errors: the codes of the JSON-RPC 2.0 specification and EIP-1474
//! (-32003 transaction rejected, -32004 method not supported), and `RpcFailure`, the error
//! every method, every policy check and the HTTP side answer with.

use kms_eth_core::policy::Denial;
use kms_eth_core::UsageError;
use kms_eth_node::RpcError;
use serde_json::{json, Value};

/// JSON-RPC 2.0: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: not a request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: bad parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0: the service failed.
pub const INTERNAL: i64 = -32603;
/// EIP-1474: the transaction (or signature) was rejected, here by the policy.
pub const DENIED: i64 = -32003;
/// EIP-1474: the method is not supported (kept for methods a later version may add).
pub const NOT_SUPPORTED: i64 = -32004;
/// EIP-1474's generic server error: the node refused, or the outcome is unknown.
pub const SERVER_ERROR: i64 = -32000;

/// A JSON-RPC error: code, message and optional data.
#[derive(Debug)]
pub struct RpcFailure {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcFailure {
    pub fn new(code: i64, message: impl Into<String>) -> RpcFailure {
        RpcFailure {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> RpcFailure {
        self.data = Some(data);
        self
    }

    /// The outcome label of the request metrics.
    pub fn outcome(&self) -> &'static str {
        if self.code == DENIED {
            "denied"
        } else {
            "error"
        }
    }
}

impl From<Denial> for RpcFailure {
    fn from(denial: Denial) -> RpcFailure {
        RpcFailure::new(DENIED, denial.to_string()).with_data(json!({ "rule": denial.rule }))
    }
}

/// Anything else: bad input is "invalid params", the rest an internal error.
pub fn failure(err: anyhow::Error) -> RpcFailure {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        RpcFailure::new(INVALID_PARAMS, format!("{err:#}"))
    } else if let Some(rpc) = err.downcast_ref::<RpcError>() {
        RpcFailure::new(rpc.code.unwrap_or(SERVER_ERROR), format!("{err:#}"))
    } else {
        RpcFailure::new(INTERNAL, format!("{err:#}"))
    }
}
