//! The service's JSON-RPC errors: the codes of the JSON-RPC 2.0 specification and EIP-1474
//! (-32003 transaction rejected, -32004 method not supported), and `RpcFailure`, the error
//! every method, every policy check and the HTTP side answer with.
//!
//! Only the service's own policy answers -32003: an error the node gave is wrapped in
//! -32000 with the node's code in `data`, so that no node can make a refusal of its own look
//! like the policy's (or a policy refusal look like the node's). KMS errors name the key's
//! ARN and may name the caller's role and account: they go to the log, the client gets a
//! short message.

use kms_eth_core::policy::Denial;
use kms_eth_core::UsageError;
use kms_eth_node::RpcError;
use kms_eth_signer::{KeyState, KmsErrorKind};
use serde_json::{json, Value};

/// JSON-RPC 2.0: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: not a request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: no such method (here also: a method the service does not pass through).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC 2.0: bad parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0: the service failed.
pub const INTERNAL: i64 = -32603;
/// EIP-1474: the transaction (or signature) was rejected, here by the policy, and only by it.
pub const DENIED: i64 = -32003;
/// EIP-1474: the method is not supported (kept for methods a later version may add).
pub const NOT_SUPPORTED: i64 = -32004;
/// EIP-1474's generic server error: the node refused, or the outcome is unknown.
pub const SERVER_ERROR: i64 = -32000;

/// The error of a request the replicas' shared store could not serve: nothing was signed
/// (a replica that cannot reach the store signs nothing).
pub fn store_failure(err: anyhow::Error) -> RpcFailure {
    tracing::warn!(error = %format!("{err:#}"), "the state store failed: the request is refused");
    RpcFailure::new(
        SERVER_ERROR,
        format!(
            "{err:#}. Nothing was signed: this service signs only with its state store, \
             and again once the store answers (/readyz says when)"
        ),
    )
}

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

/// Anything else: bad input is "invalid params", the node's refusal a wrapped node error,
/// the rest an internal error.
pub fn failure(err: anyhow::Error) -> RpcFailure {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        RpcFailure::new(INVALID_PARAMS, format!("{err:#}"))
    } else if let Some(rpc) = err.downcast_ref::<RpcError>() {
        node_failure(rpc, format!("{err:#}"))
    } else {
        RpcFailure::new(INTERNAL, format!("{err:#}"))
    }
}

/// The node's JSON-RPC error `rpc`, told as `message`: -32000, with the node's own code,
/// message and data in `data.node`.
pub fn node_failure(rpc: &RpcError, message: String) -> RpcFailure {
    RpcFailure::new(SERVER_ERROR, message).with_data(json!({ "node": node_error(rpc) }))
}

/// The node's error as `data` shows it.
pub fn node_error(rpc: &RpcError) -> Value {
    json!({ "code": rpc.code, "message": rpc.message, "data": rpc.data })
}

/// Codes a client reads as the service's own verdicts (the policy's -32003, EIP-1193's
/// 4001 "user rejected", 4100 "unauthorized" and the other 4xxx provider errors), which a
/// node's answer passed through must not carry.
pub fn reserved(code: i64) -> bool {
    code == DENIED || (4000..5000).contains(&code)
}

/// A KMS failure as the client sees it: what it means for the request, and the KMS
/// request id (which finds the call in CloudTrail); the whole error, with the key's ARN and
/// whatever AWS said, is logged.
pub fn kms_failure(err: &kms_eth_signer::Error) -> RpcFailure {
    tracing::error!(error = %err, "KMS could not sign");
    let kms = match err {
        kms_eth_signer::Error::Kms(kms) => kms,
        _ => {
            return RpcFailure::new(
                INTERNAL,
                "KMS answered a signature that does not check; nothing was signed (the \
                 service's log has the details)",
            )
        }
    };
    let message = match kms.kind() {
        KmsErrorKind::KeyNotFound => "KMS does not find the account's key".to_owned(),
        // A state KMS only named in its message carries that message: not shown.
        KmsErrorKind::KeyState { state, .. } if KeyState::values().contains(&state.as_str()) => {
            format!(
                "the account's key is {} in KMS and cannot sign",
                state.as_str()
            )
        }
        KmsErrorKind::KeyState { .. } => "the account's key cannot sign in its state".to_owned(),
        KmsErrorKind::Throttled { .. } => {
            "KMS is throttling this account's requests; try again later".to_owned()
        }
        _ => "KMS could not sign; the service's log has the details".to_owned(),
    };
    RpcFailure::new(INTERNAL, message).with_data(json!({ "kms_request_id": kms.request_id() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_error_never_carries_the_policy_code() {
        let rpc = RpcError {
            method: "eth_sendRawTransaction".to_owned(),
            node: "http://node".to_owned(),
            code: Some(DENIED),
            message: "rejected".to_owned(),
            data: Some(json!("0x08c379a0")),
        };
        let wrapped = failure(anyhow::Error::new(rpc));
        assert_eq!(wrapped.code, SERVER_ERROR);
        assert_eq!(wrapped.outcome(), "error");
        assert_eq!(
            wrapped.data,
            Some(
                json!({ "node": { "code": DENIED, "message": "rejected", "data": "0x08c379a0" } })
            )
        );
        assert!(reserved(DENIED) && reserved(4100) && !reserved(-32000) && !reserved(3));
    }
}
