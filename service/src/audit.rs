//! The service's audit log: one [`AuditRecord`] per decision, a signature or a refusal, as
//! a JSON line on stderr, in the schema the Lambda writes too (`core/src/audit.rs`; README,
//! "The audit record"). Which JSON-RPC method and request id a decision belongs to is kept
//! for the request's task (`scoped`), so the places that sign or refuse need not carry them.

use std::future::Future;
use std::io::Write as _;

use kms_eth_core::audit::AuditRecord;
use kms_eth_signer::Address;
use serde_json::Value;

/// The request a decision belongs to.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    id: Option<Value>,
}

tokio::task_local! {
    static REQUEST: Request;
}

/// Runs `future` (one JSON-RPC request's work) with its method and id known to the audit.
pub async fn scoped<F: Future>(method: &str, id: Option<Value>, future: F) -> F::Output {
    REQUEST
        .scope(
            Request {
                method: method.to_owned(),
                id,
            },
            future,
        )
        .await
}

/// `future` under the current request's scope, for work a request hands to a task of its
/// own (a broadcast that must finish even if the request is cut off): its audit lines still
/// name the request.
pub fn carried<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let request = REQUEST.try_with(Clone::clone).ok();
    async move {
        match request {
            Some(request) => REQUEST.scope(request, future).await,
            None => future.await,
        }
    }
}

/// A new record for `account`, stamped with the current request's method and id.
pub fn record(account: Address) -> AuditRecord {
    let (method, id) = REQUEST
        .try_with(|request| (request.method.clone(), request.id.clone()))
        .unwrap_or_else(|_| (String::new(), None));
    AuditRecord::new("serve", &method, account, crate::state::unix_now(), id)
}

/// Writes `record` to stderr.
///
/// The line is formatted first and written with one `write` call: stderr is unbuffered,
/// and `eprintln!` of a JSON value makes a system call per token, which a pipe's reader
/// could also see as a line in pieces. A line up to `PIPE_BUF` (4 KiB on Linux; these are
/// about 500 bytes) reaches a pipe whole.
pub fn write(record: &AuditRecord) {
    // As `eprintln!` does, a stderr that cannot be written is not the request's failure.
    let _ = std::io::stderr().lock().write_all(record.line().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_record_carries_its_requests_method_and_id() {
        let account = Address([0x11; 20]);
        let inside = scoped("personal_sign", Some(Value::from(7)), async {
            record(account)
        })
        .await;
        assert_eq!(inside.method, "personal_sign");
        assert_eq!(inside.request_id, Some(Value::from(7)));
        assert_eq!(inside.source, "serve");
        // Outside a request (never in the service, but not a panic either).
        assert_eq!(record(account).method, "");
    }
}
