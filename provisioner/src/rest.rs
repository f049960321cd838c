//! AWS REST calls signed with SigV4 (`aws-sigv4`) and sent through hyper and rustls, all of
//! which the AWS SDK already builds: the asset bucket's S3 calls and the Lambda reads that
//! check a deployed function, without `aws-sdk-s3` or `aws-sdk-lambda` (two of the SDK's
//! largest crates) for a handful of calls. Every call leaves one `tracing` debug event, never
//! a body or a credential.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::ProvisionError;

/// How long one request may take, a zip's upload included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One answer: its status, headers and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text (S3's XML, Lambda's JSON).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A SigV4 signer and HTTPS client acting as one identity in one region.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub region: String,
    credentials: Credentials,
}

impl Signed {
    pub fn new(region: &str, credentials: Credentials) -> Result<Signed, ProvisionError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|err| ProvisionError::Asset(format!("loading the system's TLS roots: {err}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Signed {
            client: Client::builder(TokioExecutor::new()).build(https),
            region: region.to_owned(),
            credentials,
        })
    }

    /// One signed request of `service` (`s3`, `lambda`) to `url`; `what` names it in errors
    /// and in the debug event.
    pub async fn send(
        &self,
        service: &str,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, ProvisionError> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = if service == "s3" {
            PercentEncodingMode::Single
        } else {
            PercentEncodingMode::Double
        };
        if service == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let identity = Identity::from(self.credentials.clone());
        let signing_error = |err: &dyn std::fmt::Display| {
            ProvisionError::Asset(format!("signing the {service} request: {err}"))
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|err| signing_error(&err))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(name, value)| (*name, value.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|err| signing_error(&err))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|err| signing_error(&err))?
            .into_parts();
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|err| {
            ProvisionError::Asset(format!("building the {service} request: {err}"))
        })?;
        let started = std::time::Instant::now();
        let host = url.split('/').nth(2).unwrap_or_default().to_owned();
        let unreachable = |err: &dyn std::fmt::Display| {
            ProvisionError::Asset(format!("{service} at {host}: {err}"))
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unreachable(&"no answer within 120 s"))?
            .map_err(|err| unreachable(&err))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| unreachable(&err))?
            .to_bytes();
        let answer = Answer {
            status,
            headers,
            body,
        };
        // The path only: never the query's values or the body.
        let path = url.split('?').next().unwrap_or_default();
        tracing::debug!(
            operation = %format!("{service} {method} {path}"),
            request_id = %answer
                .header("x-amz-request-id")
                .or_else(|| answer.header("x-amzn-requestid"))
                .unwrap_or_else(|| "unknown".into()),
            latency_ms = started.elapsed().as_millis() as u64,
            status,
            "AWS REST call"
        );
        Ok(answer)
    }
}
