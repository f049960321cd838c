//! The asset bucket's settings, as kms-eth keeps them: public access blocked, encrypted by
//! default, objects owned by the bucket's account (no ACLs), a bucket policy that refuses
//! plain HTTP and lets only the deploying principal write, and versioning (so the template
//! can pin the object version it deploys). `assets.rs` reads each on every deploy, sets back
//! what differs and refuses a bucket that keeps another value. Pure code.

use serde_json::{json, Value};

use crate::assets::XMLNS;

/// One bucket setting: the S3 subresource that holds it, the body that sets it, and the
/// check of what S3 answers when it is read.
pub(crate) struct Setting {
    /// The subresource (`?publicAccessBlock`, ...) without its `?`.
    pub query: &'static str,
    /// The S3 operation that sets it, for errors.
    pub operation: &'static str,
    /// What it is, in words.
    pub what: &'static str,
    /// The request body that sets it.
    pub body: String,
    /// Whether a GET's body says it holds.
    pub holds: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

/// Every setting, in the order they are checked: versioning last, as before.
pub(crate) fn settings(bucket: &str, deployer: &str) -> Vec<Setting> {
    let policy = bucket_policy(bucket, deployer);
    let policy_text = policy.to_string();
    vec![
        Setting {
            query: "publicAccessBlock",
            operation: "PutPublicAccessBlock",
            what: "public access block",
            body: format!(
                "<PublicAccessBlockConfiguration xmlns=\"{XMLNS}\">\
                 <BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>\
                 <BlockPublicPolicy>true</BlockPublicPolicy>\
                 <RestrictPublicBuckets>true</RestrictPublicBuckets>\
                 </PublicAccessBlockConfiguration>"
            ),
            holds: Box::new(|body| {
                [
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                ]
                .iter()
                .all(|name| body.contains(&format!("<{name}>true</{name}>")))
            }),
        },
        Setting {
            query: "encryption",
            operation: "PutBucketEncryption",
            what: "default encryption",
            body: format!(
                "<ServerSideEncryptionConfiguration xmlns=\"{XMLNS}\"><Rule>\
                 <ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>\
                 </ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
            ),
            // A KMS key of the user's own is encryption too; kms-eth does not undo it.
            holds: Box::new(|body| {
                body.contains("<SSEAlgorithm>AES256</SSEAlgorithm>")
                    || body.contains("<SSEAlgorithm>aws:kms")
            }),
        },
        Setting {
            query: "ownershipControls",
            operation: "PutBucketOwnershipControls",
            what: "object ownership (bucket owner enforced, no ACLs)",
            body: format!(
                "<OwnershipControls xmlns=\"{XMLNS}\"><Rule><ObjectOwnership>BucketOwnerEnforced\
                 </ObjectOwnership></Rule></OwnershipControls>"
            ),
            holds: Box::new(|body| {
                body.contains("<ObjectOwnership>BucketOwnerEnforced</ObjectOwnership>")
            }),
        },
        Setting {
            query: "policy",
            operation: "PutBucketPolicy",
            what: "bucket policy (TLS only; only the deploying principal writes)",
            body: policy_text,
            holds: Box::new(move |body| {
                serde_json::from_str::<Value>(body).ok() == Some(policy.clone())
            }),
        },
        // Last: the template pins object versions, which need it.
        Setting {
            query: "versioning",
            operation: "PutBucketVersioning",
            what: "versioning",
            body: format!(
                "<VersioningConfiguration xmlns=\"{XMLNS}\"><Status>Enabled</Status>\
                 </VersioningConfiguration>"
            ),
            holds: Box::new(|body| body.contains("<Status>Enabled</Status>")),
        },
    ]
}

/// The bucket policy: every request over plain HTTP refused, and every write (objects, and
/// the settings above) refused to all but `deployer`, so that the code CloudFormation reads
/// was put there by the identity that deploys it.
pub(crate) fn bucket_policy(bucket: &str, deployer: &str) -> Value {
    let partition = deployer.split(':').nth(1).unwrap_or("aws");
    let resources = json!([
        format!("arn:{partition}:s3:::{bucket}"),
        format!("arn:{partition}:s3:::{bucket}/*")
    ]);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": { "Bool": { "aws:SecureTransport": "false" } }
            },
            {
                "Sid": "OnlyTheDeployerWrites",
                "Effect": "Deny",
                "Principal": "*",
                "Action": [
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                    "s3:PutBucketPolicy",
                    "s3:DeleteBucketPolicy",
                    "s3:PutBucketAcl",
                    "s3:PutObjectAcl",
                    "s3:PutBucketPublicAccessBlock",
                    "s3:PutEncryptionConfiguration",
                    "s3:PutBucketOwnershipControls",
                    "s3:PutBucketVersioning"
                ],
                "Resource": resources,
                "Condition": { "ArnNotLike": { "aws:PrincipalArn": deployer_patterns(deployer) } }
            }
        ]
    })
}

/// How `aws:PrincipalArn` may spell the deployer: an assumed role's session names its role
/// without the role's path, which the principal ARN has, so a role is matched with any path
/// (`role/NAME` and `role/*/NAME`: a wildcard inside a name would match other roles).
fn deployer_patterns(deployer: &str) -> Value {
    match deployer.split_once(":role/") {
        Some((account, name)) if !name.contains('/') => {
            json!([deployer, format!("{account}:role/*/{name}")])
        }
        _ => json!(deployer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_plain_http_and_writes_by_anyone_but_the_deployer() {
        let deployer = "arn:aws-cn:iam::111111111111:role/deployer";
        let policy = bucket_policy("kms-eth-assets-111111111111-cn-north-1", deployer);
        let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
        assert_eq!(statements.len(), 2);
        assert!(statements.iter().all(|s| s["Effect"] == "Deny"));
        assert_eq!(
            statements[1]["Condition"]["ArnNotLike"]["aws:PrincipalArn"],
            json!([deployer, "arn:aws-cn:iam::111111111111:role/*/deployer"])
        );
        assert_eq!(
            deployer_patterns("arn:aws:iam::111111111111:root"),
            json!("arn:aws:iam::111111111111:root")
        );
        assert_eq!(
            statements[0]["Resource"][1],
            "arn:aws-cn:s3:::kms-eth-assets-111111111111-cn-north-1/*"
        );
        let settings = settings("b", deployer);
        let policy_setting = settings.iter().find(|s| s.query == "policy");
        let holds = policy_setting.map(|s| &s.holds);
        // The same document however S3 spaces it holds; one naming another writer does not.
        let text = bucket_policy("b", deployer).to_string();
        assert!(holds.is_some_and(|h| h(&text.replace(',', ", "))));
        let other = bucket_policy("b", "arn:aws-cn:iam::222222222222:root").to_string();
        assert!(holds.is_some_and(|h| !h(&other)));
        assert_eq!(settings.last().map(|s| s.query), Some("versioning"));
    }
}
