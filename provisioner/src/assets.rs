//! The asset bucket: where `deploy --with-lambda` puts the function's zip for CloudFormation to
//! read. One bucket per AWS account and region, `kms-eth-assets-<account>-<region>`, made by
//! the first deploy that needs it (no separate bootstrap step) with public access blocked,
//! default encryption and versioning, and reused after that. The object key is the zip's
//! SHA-256, so uploading the same code again changes nothing.
//!
//! S3 is spoken directly: requests signed with SigV4 (`aws-sigv4`, which the AWS SDK already
//! builds) and sent through hyper and rustls (also already built for the SDK), instead of
//! `aws-sdk-s3`, one of the largest crates of the SDK, for six calls. Every request names the
//! bucket's expected owner, so a bucket of that name made by someone else is refused rather
//! than written to.

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
use sha2::{Digest, Sha256};

use crate::error::ProvisionError;
use crate::events::Progress;

/// The folder of the function's zips in the bucket.
const CODE_PREFIX: &str = "kms-eth-lambda/";
/// How long one S3 request may take, the zip's upload included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The asset bucket of `account` in `region`. At most 63 characters, as S3 requires: the
/// prefix, 12 digits and the longest region names fit.
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("kms-eth-assets-{account}-{region}")
}

/// The key of a zip in the bucket: `kms-eth-lambda/<sha256 of its bytes>.zip`.
pub fn object_key(zip: &[u8]) -> String {
    format!("{CODE_PREFIX}{}.zip", hex::encode(Sha256::digest(zip)))
}

/// Where the zip is, and what uploading it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// The asset bucket.
    pub bucket: String,
    /// The zip's key.
    pub key: String,
    /// This upload made the bucket (the first deploy with a function in this account and region).
    pub bucket_created: bool,
    /// This upload wrote the zip (false: the same code was there already).
    pub uploaded: bool,
}

/// S3 as the asset bucket needs it, for one account and region.
#[derive(Debug)]
pub struct AssetStore {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    account: String,
    region: String,
    credentials: Credentials,
    /// An explicit endpoint (LocalStack), addressed path-style; `None` is AWS's own regional
    /// endpoint, addressed by virtual host as AWS recommends.
    endpoint: Option<String>,
}

/// One S3 answer: its status and body.
struct Answer {
    status: u16,
    body: String,
}

impl AssetStore {
    /// A store acting as `credentials` in `account` and `region`, through `endpoint` when given.
    pub fn new(
        account: &str,
        region: &str,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Result<AssetStore, ProvisionError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|err| ProvisionError::Asset(format!("loading the system's TLS roots: {err}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(AssetStore {
            client: Client::builder(TokioExecutor::new()).build(https),
            account: account.to_owned(),
            region: region.to_owned(),
            credentials,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        })
    }

    /// This account and region's bucket.
    pub fn bucket(&self) -> String {
        bucket_name(&self.account, &self.region)
    }

    /// Makes sure the bucket exists, set up, then puts `zip` in it unless the same bytes are
    /// there already.
    pub async fn upload(
        &self,
        zip: &[u8],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Asset, ProvisionError> {
        let bucket = self.bucket();
        let bucket_created = self.ensure_bucket(&bucket, progress).await?;
        let key = object_key(zip);
        let path = format!("/{key}");
        let head = self.send("HEAD", &path, &[], Vec::new()).await?;
        let uploaded = match head.status {
            200 => false,
            404 => {
                progress(Progress::Note(format!(
                    "uploading the function's code ({} bytes) to s3://{bucket}/{key}",
                    zip.len()
                )));
                let headers = [("content-type", "application/zip".to_owned())];
                self.expect_ok("PutObject", "PUT", &path, &headers, zip.to_vec())
                    .await?;
                true
            }
            _ => return Err(self.failed("HeadObject", &head)),
        };
        Ok(Asset {
            bucket,
            key,
            bucket_created,
            uploaded,
        })
    }

    /// Creates and sets up the bucket if it is missing; finishes the set-up of one whose
    /// creation was interrupted (versioning, the last step, is not on). True if created here.
    async fn ensure_bucket(
        &self,
        bucket: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<bool, ProvisionError> {
        let head = self.send("HEAD", "/", &[], Vec::new()).await?;
        let created = match head.status {
            200 => false,
            404 => {
                progress(Progress::Note(format!(
                    "creating the asset bucket {bucket} (once per account and region)"
                )));
                // us-east-1 is S3's default location and refuses to be named as a constraint.
                let body = if self.region == "us-east-1" {
                    Vec::new()
                } else {
                    format!(
                        "<CreateBucketConfiguration xmlns=\"{XMLNS}\"><LocationConstraint>{}\
                         </LocationConstraint></CreateBucketConfiguration>",
                        self.region
                    )
                    .into_bytes()
                };
                let answer = self.send("PUT", "/", &[], body).await?;
                if answer.status != 200 && !answer.body.contains("BucketAlreadyOwnedByYou") {
                    return Err(self.failed("CreateBucket", &answer));
                }
                true
            }
            403 => {
                return Err(ProvisionError::Asset(format!(
                    "the asset bucket {bucket} exists but is not this account's ({}), or these \
                     credentials may not read it (s3:ListBucket); kms-eth writes its code to no \
                     other account's bucket",
                    self.account
                )))
            }
            _ => return Err(self.failed("HeadBucket", &head)),
        };
        let versioning = self.send("GET", "/?versioning", &[], Vec::new()).await?;
        if !created && versioning.status == 200 && versioning.body.contains("<Status>Enabled<") {
            return Ok(false);
        }
        if !created {
            progress(Progress::Note(format!(
                "finishing the set-up of the asset bucket {bucket}"
            )));
        }
        for (operation, query, body) in [
            (
                "PutPublicAccessBlock",
                "publicAccessBlock",
                "<PublicAccessBlockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <BlockPublicAcls>true</BlockPublicAcls>\
                 <IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy>\
                 <RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>",
            ),
            (
                "PutBucketEncryption",
                "encryption",
                "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <Rule><ApplyServerSideEncryptionByDefault>\
                 <SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>\
                 </ServerSideEncryptionConfiguration>",
            ),
            // Last: a bucket with versioning on has been set up completely.
            (
                "PutBucketVersioning",
                "versioning",
                "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <Status>Enabled</Status></VersioningConfiguration>",
            ),
        ] {
            self.expect_ok(operation, "PUT", &format!("/?{query}"), &[], body.into())
                .await?;
        }
        Ok(created)
    }

    /// A read-only GET of `path` in the bucket (`/?versioning`, `/KEY`, ...): S3's status and
    /// body, for checking what the bucket holds (the end-to-end tests read its set-up back).
    pub async fn read(&self, path: &str) -> Result<(u16, String), ProvisionError> {
        let answer = self.send("GET", path, &[], Vec::new()).await?;
        Ok((answer.status, answer.body))
    }

    /// A request that must answer 200.
    async fn expect_ok(
        &self,
        operation: &str,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(), ProvisionError> {
        let answer = self.send(method, path, headers, body).await?;
        if answer.status == 200 {
            Ok(())
        } else {
            Err(self.failed(operation, &answer))
        }
    }

    /// One signed request to the bucket; `path` is `/`, `/?subresource` or `/key`.
    async fn send(
        &self,
        method: &str,
        path: &str,
        extra_headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, ProvisionError> {
        let bucket = self.bucket();
        let url = match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/{bucket}{path}"),
            None => format!("https://{bucket}.s3.{}.amazonaws.com{path}", self.region),
        };
        // S3 wants a checksum on its configuration calls; the zip gets one too, so S3 refuses
        // bytes that changed on the way.
        let checksum = aws_smithy_types::base64::encode(Sha256::digest(&body));
        let mut headers: Vec<(&str, String)> = vec![
            ("x-amz-expected-bucket-owner", self.account.clone()),
            ("x-amz-checksum-sha256", checksum),
        ];
        headers.extend(extra_headers.iter().cloned());
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity = Identity::from(self.credentials.clone());
        let signing_error = |err: &dyn std::fmt::Display| {
            ProvisionError::Asset(format!("signing the S3 request: {err}"))
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|err| signing_error(&err))?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(name, value)| (*name, value.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|err| signing_error(&err))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|err| signing_error(&err))?
            .into_parts();
        let mut request = http::Request::builder().method(method).uri(&url);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| ProvisionError::Asset(format!("building the S3 request: {err}")))?;
        let started = std::time::Instant::now();
        let unreachable = |err: &dyn std::fmt::Display| {
            ProvisionError::Asset(format!("S3 at {}: {err}", self.describe_endpoint()))
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unreachable(&"no answer within 120 s"))?
            .map_err(|err| unreachable(&err))?;
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-amz-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| unreachable(&err))?
            .to_bytes();
        // Like every other AWS call: one debug event, never the body or the credentials.
        tracing::debug!(
            operation = %format!("{method} {path}"),
            bucket = %bucket,
            request_id = %request_id,
            latency_ms = started.elapsed().as_millis() as u64,
            status,
            "S3 call"
        );
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// An S3 refusal, with the error code and message S3 gave.
    fn failed(&self, operation: &str, answer: &Answer) -> ProvisionError {
        let field = |name: &str| {
            let open = format!("<{name}>");
            answer
                .body
                .split_once(&open)
                .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
                .map(|(value, _)| value.to_owned())
        };
        ProvisionError::Asset(format!(
            "s3:{operation} on the asset bucket {} failed with HTTP {}: {} {}",
            self.bucket(),
            answer.status,
            field("Code").unwrap_or_default(),
            field("Message").unwrap_or_default()
        ))
    }

    fn describe_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("s3.{}.amazonaws.com", self.region))
    }
}

/// S3's XML namespace, on the root element of every request body.
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_named_by_account_and_region_and_the_key_by_content() {
        let name = bucket_name("123456789012", "ap-southeast-3");
        assert_eq!(name, "kms-eth-assets-123456789012-ap-southeast-3");
        assert!(name.len() <= 63);
        let key = object_key(b"zip");
        assert_eq!(key, object_key(b"zip"));
        assert_ne!(key, object_key(b"zip2"));
        assert!(key.starts_with(CODE_PREFIX) && key.ends_with(".zip"));
        assert_eq!(key.len(), CODE_PREFIX.len() + 64 + 4);
    }
}
