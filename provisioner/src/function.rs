//! The signing function of `deploy --with-lambda` as the account spec holds it: where its code
//! is, the architecture it was built for and what it may sign, checked before any call, and
//! the template parameters they become (the fragments themselves are `templates/function.yaml`,
//! written in by `template.rs`). Pure code.

use std::fmt;
use std::str::FromStr;

use crate::account::SpecError;

/// Parameter: the asset bucket holding the function's zip.
pub const PARAM_FUNCTION_CODE_BUCKET: &str = "FunctionCodeBucket";
/// Parameter: the zip's object key, `kms-eth-lambda/<sha256>.zip`.
pub const PARAM_FUNCTION_CODE_KEY: &str = "FunctionCodeKey";
/// Parameter: the zip's S3 object version, pinned.
pub const PARAM_FUNCTION_CODE_VERSION: &str = "FunctionCodeVersion";
/// Parameter: `x86_64` or `arm64`.
pub const PARAM_FUNCTION_ARCHITECTURE: &str = "FunctionArchitecture";
/// Parameter: the function's name (its ARN is what the role may sign from).
pub const PARAM_FUNCTION_NAME: &str = "FunctionName";
/// Parameter: the AWS Signer profile version the code must be signed by, or empty.
pub const PARAM_FUNCTION_SIGNING_PROFILE: &str = "FunctionSigningProfileVersionArn";
/// Parameter (policy mode only): the signing policy's TOML text.
pub const PARAM_FUNCTION_SIGNING_POLICY: &str = "FunctionSigningPolicy";

/// Output: the function's ARN.
pub const OUTPUT_FUNCTION_ARN: &str = "FunctionArn";
/// Output: the function's execution role's ARN.
pub const OUTPUT_FUNCTION_ROLE_ARN: &str = "FunctionRoleArn";

/// The logical id of the function.
pub const FUNCTION_LOGICAL_ID: &str = "Function";
/// The logical id of the function's execution role.
pub const FUNCTION_ROLE_LOGICAL_ID: &str = "FunctionRole";
/// The logical id of the execution role's inline policy.
pub const FUNCTION_ROLE_POLICY_LOGICAL_ID: &str = "FunctionRolePolicy";
/// The logical id of the function's log group.
pub const FUNCTION_LOG_GROUP_LOGICAL_ID: &str = "FunctionLogGroup";

/// The longest signing policy kms-eth deploys, in bytes: Lambda keeps at most 4 KB of
/// environment variables, names and values together, and the key id takes some of them.
pub const MAX_SIGNING_POLICY_BYTES: usize = 3800;

/// The environment variable names the function reads (`lambda/src/lib.rs`).
pub(crate) const POLICY_VAR: &str = "KMS_ETH_POLICY";
pub(crate) const UNRESTRICTED_VAR: &str = "KMS_ETH_UNRESTRICTED";

/// A CPU architecture Lambda runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunctionArch {
    /// The default, and what tests and CI build.
    #[default]
    X86_64,
    /// Graviton.
    Arm64,
}

impl FunctionArch {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionArch::X86_64 => "x86_64",
            FunctionArch::Arm64 => "arm64",
        }
    }
}

impl FromStr for FunctionArch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" => Ok(FunctionArch::X86_64),
            "arm64" => Ok(FunctionArch::Arm64),
            _ => Err(format!("{s:?} is not x86_64 or arm64")),
        }
    }
}

/// What the function may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionPolicy {
    /// A kms-eth policy file's TOML text, checked by the function before KMS is called.
    Toml(String),
    /// Whatever it is asked to: only when the deploy said so (`--lambda-unrestricted`).
    Unrestricted,
}

/// The two shapes of the rendered template: they differ in the function's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionMode {
    /// `KMS_ETH_POLICY` from the `FunctionSigningPolicy` parameter.
    Policy,
    /// `KMS_ETH_UNRESTRICTED=true`.
    Unrestricted,
}

impl FunctionPolicy {
    /// The template shape this policy needs.
    pub fn mode(&self) -> FunctionMode {
        match self {
            FunctionPolicy::Toml(_) => FunctionMode::Policy,
            FunctionPolicy::Unrestricted => FunctionMode::Unrestricted,
        }
    }
}

/// The signing function of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The asset bucket (`kms-eth-assets-<account>-<region>`).
    pub code_bucket: String,
    /// The zip's key in it, `kms-eth-lambda/<sha256>.zip`.
    pub code_key: String,
    /// The object version holding the zip (known once it is uploaded or read back).
    pub code_version: String,
    /// The function's name: [`function_name`] of the stack's.
    pub name: String,
    /// An AWS Signer profile version ARN the code must be signed by (Lambda code signing).
    pub signing_profile: Option<String>,
    /// What the zip was built for.
    pub arch: FunctionArch,
    /// What the function may sign.
    pub policy: FunctionPolicy,
}

impl FunctionSpec {
    /// Checks what Lambda and the template's patterns would refuse later.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let FunctionPolicy::Toml(text) = &self.policy {
            if text.len() > MAX_SIGNING_POLICY_BYTES {
                return Err(SpecError::FunctionPolicyTooLarge(text.len()));
            }
        }
        Ok(())
    }

    /// How the function appears in a guarded change (`old -> new`): what it may sign and on
    /// which architecture; the code is left out, since new code does not change who signs.
    pub fn describe(&self) -> String {
        describe(
            self.arch,
            self.policy.mode(),
            self.signing_profile.as_deref(),
        )
    }

    /// Its template parameters, as (name, value) pairs.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        let mut parameters = vec![
            (PARAM_FUNCTION_CODE_BUCKET, self.code_bucket.clone()),
            (PARAM_FUNCTION_CODE_KEY, self.code_key.clone()),
            (PARAM_FUNCTION_CODE_VERSION, self.code_version.clone()),
            (PARAM_FUNCTION_ARCHITECTURE, self.arch.as_str().to_owned()),
            (PARAM_FUNCTION_NAME, self.name.clone()),
            (
                PARAM_FUNCTION_SIGNING_PROFILE,
                self.signing_profile.clone().unwrap_or_default(),
            ),
        ];
        if let FunctionPolicy::Toml(text) = &self.policy {
            parameters.push((PARAM_FUNCTION_SIGNING_POLICY, text.clone()));
        }
        parameters
    }
}

/// `x86_64, signing policy` (and `, code signed by ARN`), the text a guarded change shows:
/// dropping code signing lets unsigned code sign, so it is guarded too.
pub(crate) fn describe(arch: FunctionArch, mode: FunctionMode, signing: Option<&str>) -> String {
    let mode = match mode {
        FunctionMode::Policy => "signing policy",
        FunctionMode::Unrestricted => "unrestricted",
    };
    let signed = signing
        .filter(|arn| !arn.is_empty())
        .map(|arn| format!(", code signed by {arn}"))
        .unwrap_or_default();
    format!("{}, {mode}{signed}", arch.as_str())
}

/// The function's name for stack `stack_name`: `<stack>-signer`, or for a stack name too
/// long for Lambda's 64 characters its first 40 characters, a hash of the whole name and
/// `-signer`, so two stacks never share a name.
pub fn function_name(stack_name: &str) -> String {
    const SUFFIX: &str = "-signer";
    if stack_name.len() + SUFFIX.len() <= 64 {
        return format!("{stack_name}{SUFFIX}");
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(stack_name.as_bytes()));
    let prefix: String = stack_name.chars().take(40).collect();
    format!("{prefix}-{}{SUFFIX}", &digest[..16])
}

/// The ARN a function of `name` has in `partition`, `region` and `account`: what its role's
/// `kms:Sign` is conditioned on (`lambda:SourceFunctionArn`).
pub fn function_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:lambda:{region}:{account}:function:{name}")
}

/// Checks an AWS Signer profile version ARN (`--lambda-signing-profile`) the way the template's
/// pattern will.
pub fn validate_signing_profile(arn: &str) -> Result<(), String> {
    let mut parts = arn.splitn(6, ':');
    let ok = parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some("signer")
        && parts.next().is_some_and(|r| !r.is_empty())
        && parts
            .next()
            .is_some_and(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_some_and(|rest| {
            let mut segments = rest.split('/');
            segments.next() == Some("")
                && segments.next() == Some("signing-profiles")
                && segments.next().is_some_and(|n| {
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                && segments
                    .next()
                    .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
                && segments.next().is_none()
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an AWS Signer profile version ARN              (arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME/VERSION)"
        ))
    }
}

impl fmt::Display for FunctionArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(policy: FunctionPolicy) -> FunctionSpec {
        FunctionSpec {
            code_bucket: "kms-eth-assets-000000000000-us-east-1".into(),
            code_key: format!("kms-eth-lambda/{}.zip", "a".repeat(64)),
            code_version: "v1".into(),
            name: function_name("acct"),
            signing_profile: None,
            arch: FunctionArch::X86_64,
            policy,
        }
    }

    #[test]
    fn a_policy_too_large_for_lambda_is_refused_before_any_call() {
        let large = spec(FunctionPolicy::Toml(
            "#".repeat(MAX_SIGNING_POLICY_BYTES + 1),
        ));
        let err = large.validate().unwrap_err().to_string();
        assert!(err.contains("--lambda-policy"), "{err}");
        spec(FunctionPolicy::Toml("#".repeat(MAX_SIGNING_POLICY_BYTES)))
            .validate()
            .unwrap();
    }

    #[test]
    fn the_policy_parameter_exists_only_in_policy_mode() {
        let names = |s: FunctionSpec| -> Vec<&str> {
            s.parameters().into_iter().map(|(name, _)| name).collect()
        };
        assert!(names(spec(FunctionPolicy::Unrestricted))
            .iter()
            .all(|n| *n != PARAM_FUNCTION_SIGNING_POLICY));
        assert!(names(spec(FunctionPolicy::Toml(String::new())))
            .contains(&PARAM_FUNCTION_SIGNING_POLICY));
        assert_eq!(
            spec(FunctionPolicy::Unrestricted).describe(),
            "x86_64, unrestricted"
        );
        assert_eq!("arm64".parse(), Ok(FunctionArch::Arm64));
        let signed = FunctionSpec {
            signing_profile: Some(
                "arn:aws:signer:us-east-1:111111111111:/signing-profiles/p/v1".into(),
            ),
            ..spec(FunctionPolicy::Unrestricted)
        };
        assert!(signed.describe().ends_with(
            "code signed by arn:aws:signer:us-east-1:111111111111:/signing-profiles/p/v1"
        ));
    }

    #[test]
    fn function_names_fit_lambda_and_differ_for_long_stack_names() {
        assert_eq!(function_name("acct"), "acct-signer");
        let long_a = format!("{}a", "x".repeat(100));
        let long_b = format!("{}b", "x".repeat(100));
        assert_eq!(function_name(&long_a).len(), 64);
        assert_ne!(function_name(&long_a), function_name(&long_b));
        assert_eq!(function_name(&"y".repeat(57)).len(), 64);
        assert_eq!(
            function_arn("aws", "eu-west-1", "111111111111", "acct-signer"),
            "arn:aws:lambda:eu-west-1:111111111111:function:acct-signer"
        );
    }

    #[test]
    fn signing_profiles_are_signer_profile_version_arns() {
        validate_signing_profile(
            "arn:aws:signer:us-east-1:111111111111:/signing-profiles/kms_eth/a1B2",
        )
        .unwrap();
        for bad in [
            "",
            "arn:aws:signer:us-east-1:111111111111:/signing-profiles/kms_eth",
            "arn:aws:iam::111111111111:role/x",
            "arn:aws:signer:us-east-1:1111:/signing-profiles/p/v",
        ] {
            assert!(validate_signing_profile(bad).is_err(), "{bad}");
        }
        assert!("aarch64".parse::<FunctionArch>().is_err());
    }
}
