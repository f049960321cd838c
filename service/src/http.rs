//! The signing service's HTTP side: JSON-RPC on `POST /`, `/healthz`, `/readyz` and
//! `/metrics`; the bearer token, the body size limit, the per-request timeout, the limit on
//! requests in flight. The connections themselves are `server.rs`'s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::error;
use crate::rpc;
use crate::service::Service;

/// The HTTP side's settings.
#[derive(Debug)]
pub struct Limits {
    pub token: Option<String>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub in_flight: Semaphore,
}

/// Answers one HTTP request.
pub async fn handle(
    request: Request<Incoming>,
    service: Arc<Service>,
    limits: Arc<Limits>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, service.metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (&Method::GET, "/readyz") => {
            let (ready, report) = service.readiness().await;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(status, &report)
        }
        (&Method::POST, "/") => json_rpc(request, &service, &limits).await,
        (_, "/") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": "JSON-RPC requests are POSTed to /" }),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not found: POST / (JSON-RPC), GET /healthz, /readyz, /metrics" }),
        ),
    })
}

async fn json_rpc(
    request: Request<Incoming>,
    service: &Service,
    limits: &Limits,
) -> Response<Full<Bytes>> {
    if let Some(token) = &limits.token {
        let given = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
            return rpc_error(
                StatusCode::UNAUTHORIZED,
                error::INVALID_REQUEST,
                "missing or wrong bearer token (Authorization: Bearer ...)",
            );
        }
    }
    let Ok(_permit) = limits.in_flight.try_acquire() else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            error::SERVER_ERROR,
            "too many requests in flight; try again",
        );
    };
    let answered = tokio::time::timeout(limits.request_timeout, async {
        let body = match Limited::new(request.into_body(), limits.max_body_bytes)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(err) => {
                return Err(if err.is::<http_body_util::LengthLimitError>() {
                    rpc_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        error::INVALID_REQUEST,
                        &format!(
                            "the request body is larger than {} bytes",
                            limits.max_body_bytes
                        ),
                    )
                } else {
                    rpc_error(
                        StatusCode::BAD_REQUEST,
                        error::INVALID_REQUEST,
                        "the request body could not be read",
                    )
                });
            }
        };
        Ok(rpc::answer_body(service, &body).await)
    })
    .await;
    match answered {
        Ok(Ok(Some(answer))) => json_response(StatusCode::OK, &answer),
        Ok(Ok(None)) => text(StatusCode::NO_CONTENT, ""),
        Ok(Err(response)) => response,
        Err(_) => rpc_error(
            StatusCode::OK,
            error::INTERNAL,
            &format!(
                "the request took longer than {} s",
                limits.request_timeout.as_secs()
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
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
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
