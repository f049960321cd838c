//! The signing function as Lambda reports it (`GetFunctionConfiguration`, and its code signing
//! configuration), compared with what kms-eth deployed: the code's hash right after a deploy,
//! and every setting that decides what the function signs when drift is looked for. Whoever
//! can change the function's code or configuration signs with the key, so these are checked,
//! not trusted. Lambda's REST API is spoken through `rest.rs` (no `aws-sdk-lambda`).

use std::collections::BTreeMap;

use aws_credential_types::Credentials;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ProvisionError;
use crate::function::{POLICY_VAR, UNRESTRICTED_VAR};
use crate::rest::Signed;

/// What Lambda says about a function, in the fields that decide what it signs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionConfig {
    /// Base64 of the deployed package's SHA-256.
    pub code_sha256: String,
    /// `provided.al2023`.
    pub runtime: String,
    /// `bootstrap`.
    pub handler: String,
    /// The execution role's ARN.
    pub role: String,
    /// Layer ARNs (kms-eth adds none: a layer is code that runs in the function).
    pub layers: Vec<String>,
    /// The environment variables.
    pub environment: BTreeMap<String, String>,
    /// The code signing configuration's ARN, if any.
    pub code_signing_config: Option<String>,
}

/// What a kms-eth function must be, from the stack's outputs and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFunction {
    /// Base64 of the zip's SHA-256 (from the content-addressed object key).
    pub code_sha256: String,
    /// The function role's ARN (the stack's output).
    pub role: String,
    /// The key id the function signs with.
    pub key_id: String,
    /// The signing policy's TOML text, or `None`: unrestricted.
    pub policy: Option<String>,
    /// Whether the stack asks for code signing.
    pub code_signing: bool,
}

/// Base64 of a zip's SHA-256, as Lambda's `CodeSha256` gives it.
pub fn code_sha256(zip: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(zip))
}

/// Base64 of the SHA-256 that a content-addressed object key (`kms-eth-lambda/HEX.zip`)
/// names, or `None` for a key of another shape.
pub fn code_sha256_of_key(key: &str) -> Option<String> {
    let hex_digest = key.strip_prefix("kms-eth-lambda/")?.strip_suffix(".zip")?;
    let bytes = hex::decode(hex_digest).ok().filter(|b| b.len() == 32)?;
    Some(aws_smithy_types::base64::encode(bytes))
}

/// Each way `live` differs from `expected`, in words; empty when it is what kms-eth deployed.
pub fn function_drift(live: &FunctionConfig, expected: &ExpectedFunction) -> Vec<String> {
    let mut found = Vec::new();
    if live.code_sha256 != expected.code_sha256 {
        found.push(format!(
            "the function's code is not the code kms-eth deployed (CodeSha256 {}, the stack's \
             zip {})",
            live.code_sha256, expected.code_sha256
        ));
    }
    for (what, value, wanted) in [
        ("runtime", &live.runtime, "provided.al2023"),
        ("handler", &live.handler, "bootstrap"),
        ("execution role", &live.role, expected.role.as_str()),
    ] {
        if value != wanted {
            found.push(format!("the function's {what} is {value}, not {wanted}"));
        }
    }
    if !live.layers.is_empty() {
        found.push(format!(
            "the function has layers (code that runs inside it): {}",
            live.layers.join(", ")
        ));
    }
    let mut wanted = BTreeMap::from([("KMS_KEY_ID".to_owned(), expected.key_id.clone())]);
    match &expected.policy {
        Some(text) => wanted.insert(POLICY_VAR.to_owned(), text.clone()),
        None => wanted.insert(UNRESTRICTED_VAR.to_owned(), "true".to_owned()),
    };
    for name in live.environment.keys().chain(wanted.keys()) {
        let (value, want) = (live.environment.get(name), wanted.get(name));
        if value == want || found.iter().any(|f| f.contains(&format!(" {name} "))) {
            continue;
        }
        // The policy is shown by its hash: a long TOML text says nothing in one line.
        let show = |v: Option<&String>| match v {
            None => "unset".to_owned(),
            Some(text) if name == POLICY_VAR => {
                format!("SHA-256 {}", &hex::encode(Sha256::digest(text))[..16])
            }
            Some(text) => format!("{text:?}"),
        };
        found.push(format!(
            "the function's environment variable {name} is {}, not {}",
            show(value),
            show(want)
        ));
    }
    if expected.code_signing != live.code_signing_config.is_some() {
        found.push(format!(
            "the function's code signing is {}, but the stack {} it",
            if live.code_signing_config.is_some() {
                "on"
            } else {
                "off"
            },
            if expected.code_signing {
                "requires"
            } else {
                "does not set"
            }
        ));
    }
    found
}

/// Lambda's API for one identity in one region.
#[derive(Debug, Clone)]
pub struct LambdaReader {
    signed: Signed,
    /// An explicit endpoint (LocalStack); `None`: AWS's regional one.
    endpoint: Option<String>,
}

impl LambdaReader {
    /// A reader acting as `credentials` in `region`, through `endpoint` when given.
    pub fn new(
        region: &str,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Result<LambdaReader, ProvisionError> {
        Ok(LambdaReader {
            signed: Signed::new(region, credentials)?,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        })
    }

    /// The function's configuration (`function` is its name or ARN).
    pub async fn configuration(&self, function: &str) -> Result<FunctionConfig, ProvisionError> {
        let config = self
            .get(
                "GetFunctionConfiguration",
                &format!("/2015-03-31/functions/{function}/configuration"),
            )
            .await?
            .ok_or_else(|| {
                ProvisionError::Asset(format!(
                    "Lambda has no function {function}: it was deleted outside kms-eth (deploy \
                     again to recreate it)"
                ))
            })?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let signing = self
            .get(
                "GetFunctionCodeSigningConfig",
                &format!("/2020-06-30/functions/{function}/code-signing-config"),
            )
            .await?
            .and_then(|v| v.get("CodeSigningConfigArn").map(text))
            .filter(|arn| !arn.is_empty());
        Ok(FunctionConfig {
            code_sha256: text(&config["CodeSha256"]),
            runtime: text(&config["Runtime"]),
            handler: text(&config["Handler"]),
            role: text(&config["Role"]),
            layers: config["Layers"]
                .as_array()
                .map(|l| l.iter().map(|layer| text(&layer["Arn"])).collect())
                .unwrap_or_default(),
            environment: config["Environment"]["Variables"]
                .as_object()
                .map(|vars| vars.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default(),
            code_signing_config: signing,
        })
    }

    /// One GET; `None` for a 404.
    async fn get(&self, operation: &str, path: &str) -> Result<Option<Value>, ProvisionError> {
        let region = &self.signed.region;
        let url = match &self.endpoint {
            Some(endpoint) => format!("{endpoint}{path}"),
            None => format!("https://lambda.{region}.amazonaws.com{path}"),
        };
        let answer = self
            .signed
            .send("lambda", "GET", &url, &[], Vec::new())
            .await?;
        match answer.status {
            200 => serde_json::from_slice(&answer.body)
                .map(Some)
                .map_err(|err| {
                    ProvisionError::Asset(format!("lambda:{operation} answered no JSON: {err}"))
                }),
            404 => Ok(None),
            status => Err(ProvisionError::Asset(format!(
                "lambda:{operation} failed with HTTP {status}: {}",
                answer.text()
            ))),
        }
    }
}

/// After a deploy: the function's code must be the zip kms-eth uploaded, else the deploy
/// fails and says what Lambda runs instead.
pub async fn check_deployed_code(
    reader: &LambdaReader,
    function_arn: &str,
    zip: &[u8],
) -> Result<(), ProvisionError> {
    let live = reader.configuration(function_arn).await?;
    let wanted = code_sha256(zip);
    if live.code_sha256 == wanted {
        return Ok(());
    }
    Err(ProvisionError::FunctionCode {
        function: function_arn.to_owned(),
        found: live.code_sha256,
        wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> ExpectedFunction {
        ExpectedFunction {
            code_sha256: code_sha256(b"zip"),
            role: "arn:aws:iam::111111111111:role/fn".into(),
            key_id: "k".into(),
            policy: None,
            code_signing: false,
        }
    }

    fn deployed() -> FunctionConfig {
        FunctionConfig {
            code_sha256: code_sha256(b"zip"),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            role: "arn:aws:iam::111111111111:role/fn".into(),
            layers: Vec::new(),
            environment: BTreeMap::from([
                ("KMS_KEY_ID".into(), "k".into()),
                ("KMS_ETH_UNRESTRICTED".into(), "true".into()),
            ]),
            code_signing_config: None,
        }
    }

    #[test]
    fn the_key_names_the_hash_lambda_reports() {
        let key = crate::assets::object_key(b"zip");
        assert_eq!(code_sha256_of_key(&key), Some(code_sha256(b"zip")));
        assert_eq!(code_sha256_of_key("kms-eth-lambda/zz.zip"), None);
    }

    #[test]
    fn every_setting_that_decides_what_is_signed_is_drift_by_name() {
        assert!(function_drift(&deployed(), &expected()).is_empty());
        let mut changed = deployed();
        changed.code_sha256 = code_sha256(b"other");
        changed.runtime = "python3.12".into();
        changed.handler = "x".into();
        changed.role = "arn:aws:iam::111111111111:role/admin".into();
        changed.layers = vec!["arn:aws:lambda:us-east-1:1:layer:x:1".into()];
        changed.environment.remove("KMS_ETH_UNRESTRICTED");
        changed
            .environment
            .insert("KMS_ETH_POLICY".into(), "[[account]]".into());
        changed.code_signing_config = Some("arn:csc".into());
        let found = function_drift(&changed, &expected());
        for word in [
            "code",
            "runtime",
            "handler",
            "execution role",
            "layers",
            "KMS_ETH_UNRESTRICTED is unset",
            "KMS_ETH_POLICY is SHA-256",
            "code signing is on",
        ] {
            assert!(found.iter().any(|f| f.contains(word)), "{word}: {found:?}");
        }
        assert_eq!(found.len(), 8, "{found:?}");
    }
}
