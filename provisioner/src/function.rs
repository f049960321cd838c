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
/// Parameter: `x86_64` or `arm64`.
pub const PARAM_FUNCTION_ARCHITECTURE: &str = "FunctionArchitecture";
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
        describe(self.arch, self.policy.mode())
    }

    /// Its template parameters, as (name, value) pairs.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        let mut parameters = vec![
            (PARAM_FUNCTION_CODE_BUCKET, self.code_bucket.clone()),
            (PARAM_FUNCTION_CODE_KEY, self.code_key.clone()),
            (PARAM_FUNCTION_ARCHITECTURE, self.arch.as_str().to_owned()),
        ];
        if let FunctionPolicy::Toml(text) = &self.policy {
            parameters.push((PARAM_FUNCTION_SIGNING_POLICY, text.clone()));
        }
        parameters
    }
}

/// `signing function (x86_64, policy)`, the text a guarded change shows.
pub(crate) fn describe(arch: FunctionArch, mode: FunctionMode) -> String {
    let mode = match mode {
        FunctionMode::Policy => "signing policy",
        FunctionMode::Unrestricted => "unrestricted",
    };
    format!("{}, {mode}", arch.as_str())
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
        assert!("aarch64".parse::<FunctionArch>().is_err());
    }
}
