//! The signing service's HTTP side: JSON-RPC on `POST /`, `/healthz`, `/readyz` and
//! `/metrics`, on the main listener and the optional metrics one; browser safety first
//! (`edge.rs`: Host, Origin, CORS), then the bearer token, `Content-Type`, the limit on
//! requests in flight, the body's size and time limits and the per-request timeout. The
//! connections themselves are `server.rs`'s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::edge::{
    add_cors, add_preflight, check_host, check_origin, is_json, BrowserRules, Origin,
};
use crate::error;
use crate::readiness::Readiness;
use crate::rpc;
use crate::service::Service;

/// EIP-1193's "unauthorized": what wallets' clients expect for a missing or wrong token
/// (viem's `UnauthorizedProviderError`; -32600 read as "not a valid request").
const UNAUTHORIZED: i64 = 4100;

/// Everything the HTTP side runs with besides the service.
#[derive(Debug)]
pub struct Edge {
    pub token: Option<String>,
    pub browser: BrowserRules,
    pub max_body_bytes: usize,
    /// How long a client may take to send its body: short, since a permit is held meanwhile.
    pub body_timeout: Duration,
    /// How long the answer may take once the body is in.
    pub request_timeout: Duration,
    pub in_flight: Semaphore,
    pub readiness: Arc<Readiness>,
    /// Whether `/metrics` and `/readyz` have a listener of their own (`--metrics-listen`),
    /// and so are not served on the main one.
    pub metrics_elsewhere: bool,
}

/// The listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `--listen`: JSON-RPC, and `/metrics` and `/readyz` unless they have their own.
    Main,
    /// `--metrics-listen`: `/metrics`, `/readyz` and `/healthz` only, without the token.
    Metrics,
}

/// Answers one HTTP request that came in on `listener` at the local address `local`.
pub async fn handle(
    request: Request<Incoming>,
    service: Arc<Service>,
    edge: Arc<Edge>,
    local: SocketAddr,
    listener: Listener,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Before anything else, the token included: a page that may not call the service
    // learns nothing from it, not even whether a token is needed.
    let refusal = match check_host(request.headers(), request.uri(), local, &edge.browser) {
        Err(why) => Err(why),
        Ok(()) => match check_origin(request.headers(), &edge.browser) {
            Origin::Absent => Ok(None),
            Origin::Allowed(origin) => Ok(Some(origin)),
            Origin::Refused(why) => Err(why),
        },
    };
    let origin = match refusal {
        Ok(origin) => origin,
        Err(why) => {
            // The operator hears of it: a web page is trying to use the signer.
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                "refused a request a web page could have sent: {why}"
            );
            return Ok(rpc_error(
                StatusCode::FORBIDDEN,
                error::INVALID_REQUEST,
                &why,
            ));
        }
    };
    let mut response = route(request, &service, &edge, listener, origin.is_some()).await;
    if let Some(origin) = &origin {
        add_cors(response.headers_mut(), origin);
    }
    Ok(response)
}

async fn route(
    request: Request<Incoming>,
    service: &Arc<Service>,
    edge: &Edge,
    listener: Listener,
    from_allowed_origin: bool,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if method == Method::OPTIONS {
        // A preflight: answered for a listed origin (the caller adds its CORS headers).
        // Browsers send no Authorization with it, so it needs no token.
        let mut response = text(StatusCode::NO_CONTENT, "");
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        if from_allowed_origin {
            add_preflight(response.headers_mut());
        }
        return response;
    }
    match (listener, &method, path.as_str()) {
        (_, &Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Listener::Main, &Method::GET, "/metrics" | "/readyz") if edge.metrics_elsewhere => {
            json_response(
                StatusCode::NOT_FOUND,
                &json!({ "error": format!("{path} is served on the --metrics-listen address") }),
            )
        }
        (_, &Method::GET, "/metrics" | "/readyz") => {
            if listener == Listener::Main && !authorized(request.headers(), edge) {
                return unauthorized();
            }
            if path == "/metrics" {
                let metrics = service.metrics.render()
                    + &crate::metrics::Metrics::render_tracked(
                        &service.tracker.summary().await,
                        crate::state::unix_now(),
                    )
                    + &crate::metrics::Metrics::render_regions(
                        service.accounts().map(|a| (a.address, a.signer.health())),
                    );
                let mut response = text(StatusCode::OK, metrics);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            } else {
                let (ready, report) = edge.readiness.report();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                json_response(status, &report)
            }
        }
        (Listener::Main, &Method::POST, "/") => json_rpc(request, service, edge).await,
        (Listener::Main, _, "/") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": "JSON-RPC requests are POSTed to /" }),
        ),
        (Listener::Main, _, _) => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not found: POST / (JSON-RPC), GET /healthz, /readyz, /metrics" }),
        ),
        (Listener::Metrics, _, _) => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not found: this address serves GET /metrics, /readyz and /healthz; JSON-RPC is on the --listen address" }),
        ),
    }
}

/// Whether the request carries the bearer token, when one is configured.
fn authorized(headers: &HeaderMap, edge: &Edge) -> bool {
    let Some(token) = &edge.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// The answer to a request without the token: 401 and EIP-1193's 4100.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut refused = rpc_error(
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
        "unauthorized: missing or wrong bearer token (send Authorization: Bearer <the token of --auth-token-file>)",
    );
    refused
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    refused
}

async fn json_rpc(
    request: Request<Incoming>,
    service: &Arc<Service>,
    edge: &Edge,
) -> Response<Full<Bytes>> {
    if !authorized(request.headers(), edge) {
        return unauthorized();
    }
    // Every POST, not only the signing methods: the other methods reach the node (a
    // signed transaction replayed, whatever the node answers), a web page can send
    // text/plain or a form to any address without the browser asking first, and every
    // JSON-RPC client sends application/json. Decided from the headers, so a forged
    // request's body is never read.
    if !is_json(request.headers()) {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error::INVALID_REQUEST,
            "JSON-RPC requests need the header Content-Type: application/json (other types are \
             what web pages can make a browser send to any address)",
        );
    }
    let Ok(_permit) = edge.in_flight.try_acquire() else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            error::SERVER_ERROR,
            "too many requests in flight; try again",
        );
    };
    // The body has its own short time: a client trickling it in would otherwise hold its
    // permit until the request timeout, and enough of them would keep everyone out.
    let body = Limited::new(request.into_body(), edge.max_body_bytes).collect();
    let body = match tokio::time::timeout(edge.body_timeout, body).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                error::INVALID_REQUEST,
                &format!(
                    "the request body is larger than {} bytes (--max-body-bytes)",
                    edge.max_body_bytes
                ),
            )
        }
        Ok(Err(_)) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                error::INVALID_REQUEST,
                "the request body could not be read",
            )
        }
        Err(_) => {
            let mut response = rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                error::INVALID_REQUEST,
                &format!(
                    "the request body did not arrive within {} s (--body-timeout)",
                    edge.body_timeout.as_secs()
                ),
            );
            // The rest of the body may still come: the connection cannot carry another
            // request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    match tokio::time::timeout(edge.request_timeout, rpc::answer_body(service, &body)).await {
        Ok(Some(answer)) => json_response(StatusCode::OK, &answer),
        Ok(None) => text(StatusCode::NO_CONTENT, ""),
        Err(_) => rpc_error(
            StatusCode::OK,
            error::INTERNAL,
            &format!(
                "the request took longer than {} s",
                edge.request_timeout.as_secs()
            ),
        ),
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } }),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
    }
}
