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

use aws_credential_types::Credentials;
use sha2::{Digest, Sha256};

use crate::error::ProvisionError;
use crate::events::Progress;
use crate::rest::{Answer, Signed};

/// The folder of the function's zips in the bucket.
const CODE_PREFIX: &str = "kms-eth-lambda/";

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
    /// The object version holding the zip's bytes: the template pins it, so bytes written
    /// under the same key later are never what CloudFormation deploys.
    pub version: String,
    /// This upload made the bucket (the first deploy with a function in this account and region).
    pub bucket_created: bool,
    /// This upload wrote the zip (false: the same code was there already, read back and
    /// compared byte for byte).
    pub uploaded: bool,
}

/// S3 as the asset bucket needs it, for one account and region.
#[derive(Debug)]
pub struct AssetStore {
    signed: Signed,
    account: String,
    /// The principal deploying (its role for an assumed-role session): the bucket policy
    /// lets it alone write.
    deployer: String,
    /// An explicit endpoint (LocalStack), addressed path-style; `None` is AWS's own regional
    /// endpoint, addressed by virtual host as AWS recommends.
    endpoint: Option<String>,
}

impl AssetStore {
    /// A store acting as `credentials` (the principal `deployer`, as a bucket policy names
    /// it: see `caller_principal`) in `account` and `region`, through `endpoint` when given.
    pub fn new(
        account: &str,
        region: &str,
        deployer: &str,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Result<AssetStore, ProvisionError> {
        Ok(AssetStore {
            signed: Signed::new(region, credentials)?,
            account: account.to_owned(),
            deployer: deployer.to_owned(),
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        })
    }

    /// This account and region's bucket.
    pub fn bucket(&self) -> String {
        bucket_name(&self.account, &self.signed.region)
    }

    /// Makes sure the bucket exists and is set up as kms-eth sets it up (repairing what was
    /// changed, refusing a bucket that cannot be repaired), then puts `zip` in it unless the
    /// same bytes are there already. An object already at the zip's key is read back and
    /// compared: bytes that differ (someone else wrote there) are refused, never deployed.
    pub async fn upload(
        &self,
        zip: &[u8],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Asset, ProvisionError> {
        let bucket = self.bucket();
        let bucket_created = self.ensure_bucket(&bucket, progress).await?;
        let key = object_key(zip);
        let path = format!("/{key}");
        let found = self.send("GET", &path, &[], Vec::new()).await?;
        let (version, uploaded) = match found.status {
            200 => {
                let digest = hex::encode(Sha256::digest(&found.body));
                let wanted = hex::encode(Sha256::digest(zip));
                if digest != wanted {
                    return Err(ProvisionError::Asset(format!(
                        "s3://{bucket}/{key} holds other bytes (SHA-256 {digest}, {} bytes) than \
                         the function's zip (SHA-256 {wanted}, {} bytes): someone other than \
                         kms-eth wrote there, and kms-eth deploys no code it did not upload. \
                         Find out who can write to the bucket (its policy, IAM s3:PutObject \
                         grants), delete that object (every version of it), then deploy again",
                        found.body.len(),
                        zip.len()
                    )));
                }
                (self.version_of(&found, &key)?, false)
            }
            404 => {
                progress(Progress::Note(format!(
                    "uploading the function's code ({} bytes) to s3://{bucket}/{key}",
                    zip.len()
                )));
                let headers = [("content-type", "application/zip".to_owned())];
                let put = self.send("PUT", &path, &headers, zip.to_vec()).await?;
                if put.status != 200 {
                    return Err(self.failed("PutObject", &put));
                }
                (self.version_of(&put, &key)?, true)
            }
            _ => return Err(self.failed("GetObject", &found)),
        };
        Ok(Asset {
            bucket,
            key,
            version,
            bucket_created,
            uploaded,
        })
    }

    /// The version id S3 gave the object; a bucket without versioning has none, and an
    /// unpinned object is not deployed.
    fn version_of(&self, answer: &Answer, key: &str) -> Result<String, ProvisionError> {
        answer
            .header("x-amz-version-id")
            .filter(|v| !v.is_empty() && v != "null")
            .ok_or_else(|| {
                ProvisionError::Asset(format!(
                    "s3://{}/{key} has no version id: the asset bucket's versioning is off, so \
                     the template could not pin the code it deploys; deploy again (kms-eth turns \
                     versioning back on)",
                    self.bucket()
                ))
            })
    }

    /// Creates the bucket if it is missing; then, every time, checks each of its settings and
    /// sets back what differs. True if created here.
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
                let body = if self.signed.region == "us-east-1" {
                    Vec::new()
                } else {
                    format!(
                        "<CreateBucketConfiguration xmlns=\"{XMLNS}\"><LocationConstraint>{}\
                         </LocationConstraint></CreateBucketConfiguration>",
                        self.signed.region
                    )
                    .into_bytes()
                };
                let answer = self.send("PUT", "/", &[], body).await?;
                if answer.status != 200 && !answer.text().contains("BucketAlreadyOwnedByYou") {
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
        for setting in crate::bucket::settings(bucket, &self.deployer) {
            self.enforce(&setting, created, progress).await?;
        }
        Ok(created)
    }

    /// Reads one setting; sets it when it differs (saying so unless the bucket is new), and
    /// reads it back: a bucket that keeps another value is refused.
    async fn enforce(
        &self,
        setting: &crate::bucket::Setting,
        created: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ProvisionError> {
        let path = format!("/?{}", setting.query);
        let before = self.send("GET", &path, &[], Vec::new()).await?;
        if before.status == 200 && (setting.holds)(&before.text()) {
            return Ok(());
        }
        if !created {
            progress(Progress::Warning(format!(
                "the asset bucket {} had its {} changed or removed; setting it back",
                self.bucket(),
                setting.what
            )));
        }
        let put = self
            .send("PUT", &path, &[], setting.body.clone().into_bytes())
            .await?;
        if !matches!(put.status, 200 | 204) {
            return Err(self.unrepairable(setting, &self.failed(setting.operation, &put)));
        }
        let after = self.send("GET", &path, &[], Vec::new()).await?;
        if after.status == 200 && (setting.holds)(&after.text()) {
            Ok(())
        } else {
            let found = format!("it reads back as HTTP {}: {}", after.status, after.text());
            Err(self.unrepairable(setting, &found))
        }
    }

    fn unrepairable(
        &self,
        setting: &crate::bucket::Setting,
        why: &dyn std::fmt::Display,
    ) -> ProvisionError {
        ProvisionError::Asset(format!(
            "the asset bucket {} cannot be given its {} ({why}); kms-eth uploads no code to a \
             bucket it cannot keep to itself: fix the bucket (or delete it; the next deploy \
             makes it again) and deploy again",
            self.bucket(),
            setting.what
        ))
    }

    /// A read-only GET of `path` in the bucket (`/?versioning`, `/KEY`, ...): S3's status and
    /// body, for checking what the bucket holds (the end-to-end tests read its set-up back).
    pub async fn read(&self, path: &str) -> Result<(u16, String), ProvisionError> {
        let answer = self.send("GET", path, &[], Vec::new()).await?;
        Ok((answer.status, answer.text()))
    }

    /// A request to the bucket as the tests make it (to plant an object or open the bucket,
    /// as an attacker would): S3's status and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), ProvisionError> {
        let answer = self.send(method, path, &[], body).await?;
        Ok((answer.status, answer.text()))
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
            None => format!(
                "https://{bucket}.s3.{}.amazonaws.com{path}",
                self.signed.region
            ),
        };
        // S3 wants a checksum on its configuration calls; the zip gets one too, so S3 refuses
        // bytes that changed on the way.
        let checksum = aws_smithy_types::base64::encode(Sha256::digest(&body));
        let mut headers: Vec<(&str, String)> = vec![
            ("x-amz-expected-bucket-owner", self.account.clone()),
            ("x-amz-checksum-sha256", checksum),
        ];
        headers.extend(extra_headers.iter().cloned());
        self.signed.send("s3", method, &url, &headers, body).await
    }

    /// An S3 refusal, with the error code and message S3 gave.
    fn failed(&self, operation: &str, answer: &Answer) -> ProvisionError {
        let text = answer.text();
        let field = |name: &str| {
            let open = format!("<{name}>");
            text.split_once(&open)
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
}

/// S3's XML namespace, on the root element of every request body.
pub(crate) const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

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
