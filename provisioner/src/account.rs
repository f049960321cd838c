//! What one kms-eth account stack is made of: the inputs a user chooses, checked before any
//! AWS call, and the template body and parameters they turn into (the template itself and
//! the names in it are in `template.rs`). Pure code.

use std::fmt;
use std::str::FromStr;

use crate::template::{
    self, PARAM_ALIAS_NAME, PARAM_PENDING_WINDOW_IN_DAYS, PARAM_SIGNER_PRINCIPAL_ARN,
};

/// The smallest and largest deletion windows KMS allows, in days.
pub const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<u8> = 7..=30;

/// What happens to the key when its stack is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalPolicy {
    /// The key (its address, and any funds sent there) outlives the stack. The default: a
    /// funded account must never disappear because a stack was deleted.
    Retain,
    /// Deleting the stack schedules the key for deletion after the pending window; until
    /// then the deletion can be cancelled.
    Destroy,
}

impl RemovalPolicy {
    /// `RETAIN` or `DESTROY`, as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalPolicy::Retain => "RETAIN",
            RemovalPolicy::Destroy => "DESTROY",
        }
    }

    /// The CloudFormation `DeletionPolicy` and `UpdateReplacePolicy` it becomes.
    ///
    /// RETAIN is plain `Retain`, not `RetainExceptOnCreate` (which would also clean up the
    /// key of a first create that rolled back): LocalStack treats `RetainExceptOnCreate` as
    /// `Delete`, and a policy that deletes a retained key anywhere is not worth the tidiness.
    pub fn deletion_policy(self) -> &'static str {
        match self {
            RemovalPolicy::Retain => "Retain",
            RemovalPolicy::Destroy => "Delete",
        }
    }
}

impl FromStr for RemovalPolicy {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "retain" => Ok(RemovalPolicy::Retain),
            "destroy" => Ok(RemovalPolicy::Destroy),
            _ => Err(SpecError::RemovalPolicy(s.to_owned())),
        }
    }
}

impl fmt::Display for RemovalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the requested account is not valid. Found before any AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The stack name breaks CloudFormation's rules.
    #[error("invalid stack name {name:?}: {reason}")]
    StackName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The removal policy is neither RETAIN nor DESTROY.
    #[error("unknown removal policy {0:?}: use retain (keep the key) or destroy (schedule its deletion)")]
    RemovalPolicy(String),
    /// The pending window is outside what KMS allows.
    #[error("pending window of {0} days is outside the 7-30 days KMS allows")]
    PendingWindow(u8),
    /// The signer principal is not an IAM account, role or user ARN.
    #[error(
        "invalid signer principal {0:?}: give an IAM ARN like arn:aws:iam::123456789012:role/signer \
         (or :root, or :user/name); wildcards would let anyone sign"
    )]
    SignerPrincipal(String),
    /// The alias breaks KMS's rules.
    #[error("invalid alias {alias:?}: {reason}")]
    Alias {
        /// The alias given.
        alias: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// One account as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    /// The CloudFormation stack name.
    pub stack_name: String,
    /// The alias (`alias/<stack name>` when `None`).
    pub alias: Option<String>,
    /// What happens to the key when the stack is deleted.
    pub removal_policy: RemovalPolicy,
    /// Days between scheduling the key's deletion and the deletion (7-30).
    pub pending_window_days: u8,
    /// The principal allowed to assume the signer role (the account itself when `None`).
    pub signer_principal: Option<String>,
    /// Stack tags, propagated by CloudFormation to the key and role.
    pub tags: Vec<(String, String)>,
}

impl AccountSpec {
    /// An account with the defaults: RETAIN, a 30-day window, the account as signer.
    pub fn new(stack_name: impl Into<String>) -> Self {
        AccountSpec {
            stack_name: stack_name.into(),
            alias: None,
            removal_policy: RemovalPolicy::Retain,
            pending_window_days: 30,
            signer_principal: None,
            tags: Vec::new(),
        }
    }

    /// Checks every input against the rules CloudFormation and KMS will apply.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_stack_name(&self.stack_name)?;
        if !PENDING_WINDOW_DAYS.contains(&self.pending_window_days) {
            return Err(SpecError::PendingWindow(self.pending_window_days));
        }
        if let Some(principal) = &self.signer_principal {
            if !is_iam_principal_arn(principal) {
                return Err(SpecError::SignerPrincipal(principal.clone()));
            }
        }
        let alias = self.alias_name();
        let bad_alias = |reason| SpecError::Alias {
            alias: alias.clone(),
            reason,
        };
        let name = alias
            .strip_prefix("alias/")
            .ok_or_else(|| bad_alias("it must start with alias/"))?;
        if name.is_empty() || name.len() > 250 {
            return Err(bad_alias("the name after alias/ must be 1-250 characters"));
        }
        if name.starts_with("aws/") {
            return Err(bad_alias("alias/aws/ is reserved for AWS managed keys"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
        {
            return Err(bad_alias("only letters, digits, /, _ and - are allowed"));
        }
        Ok(())
    }

    /// The alias: the one given, or `alias/<stack name>`.
    pub fn alias_name(&self) -> String {
        match &self.alias {
            Some(alias) if alias.starts_with("alias/") => alias.clone(),
            Some(alias) => format!("alias/{alias}"),
            None => format!("alias/{}", self.stack_name),
        }
    }

    /// The template with the removal policy written in.
    pub fn template_body(&self) -> String {
        template::render(self.removal_policy)
    }

    /// The template parameters, as (name, value) pairs.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                PARAM_PENDING_WINDOW_IN_DAYS,
                self.pending_window_days.to_string(),
            ),
            (PARAM_ALIAS_NAME, self.alias_name()),
            (
                PARAM_SIGNER_PRINCIPAL_ARN,
                self.signer_principal.clone().unwrap_or_default(),
            ),
        ]
    }
}

/// Whether `arn` is `arn:<partition>:iam::<12 digits>:root|role/...|user/...`, the same rule
/// as the template's `AllowedPattern`.
fn is_iam_principal_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/-".contains(&b))
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (resource == "root"
            || resource.strip_prefix("role/").is_some_and(name_ok)
            || resource.strip_prefix("user/").is_some_and(name_ok))
}

/// Checks a CloudFormation stack name: a letter first, then letters, digits and hyphens, at
/// most 128 characters.
pub fn validate_stack_name(name: &str) -> Result<(), SpecError> {
    let bad = |reason| SpecError::StackName {
        name: name.to_owned(),
        reason,
    };
    let first = name.chars().next().ok_or_else(|| bad("it is empty"))?;
    if !first.is_ascii_alphabetic() {
        return Err(bad("it must start with a letter"));
    }
    if name.len() > 128 {
        return Err(bad("it must be at most 128 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(bad("only letters, digits and hyphens are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_has_the_removal_policy_written_in() {
        let mut spec = AccountSpec::new("acct");
        let retain = spec.template_body();
        assert!(retain.contains("DeletionPolicy: \"Retain\""));
        assert!(retain.contains("UpdateReplacePolicy: \"Retain\""));
        assert!(!retain.contains("{{"));
        spec.removal_policy = RemovalPolicy::Destroy;
        let destroy = spec.template_body();
        assert!(destroy.contains("DeletionPolicy: \"Delete\""));
        assert!(destroy.contains("Value: \"DESTROY\""));
    }

    #[test]
    fn removal_policy_parses_both_spellings_and_names_bad_input() {
        assert_eq!("retain".parse(), Ok(RemovalPolicy::Retain));
        assert_eq!("DESTROY".parse(), Ok(RemovalPolicy::Destroy));
        let err = "delete".parse::<RemovalPolicy>().unwrap_err();
        assert!(err
            .to_string()
            .contains("unknown removal policy \"delete\""));
    }

    #[test]
    fn bad_inputs_are_refused_before_any_call() {
        type Mutation = fn(&mut AccountSpec);
        let cases: [(Mutation, &str); 9] = [
            (|s| s.stack_name = String::new(), "it is empty"),
            (|s| s.stack_name = "1abc".into(), "must start with a letter"),
            (
                |s| s.stack_name = "my_stack".into(),
                "only letters, digits and hyphens",
            ),
            (|s| s.stack_name = "a".repeat(129), "at most 128"),
            (|s| s.pending_window_days = 3, "3 days is outside"),
            (|s| s.pending_window_days = 31, "31 days is outside"),
            (|s| s.alias = Some("alias/aws/x".into()), "reserved"),
            (
                |s| s.signer_principal = Some("*".into()),
                "wildcards would let anyone sign",
            ),
            (
                |s| s.signer_principal = Some("arn:aws:iam::12345:root".into()),
                "invalid signer principal",
            ),
        ];
        for (mutate, message) in cases {
            let mut spec = AccountSpec::new("acct");
            mutate(&mut spec);
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(message), "{err} does not contain {message}");
        }
        AccountSpec::new("acct-1").validate().unwrap();
        let mut spec = AccountSpec::new("acct-2");
        spec.signer_principal = Some("arn:aws:iam::123456789012:role/ops/signer".into());
        spec.validate().unwrap();
    }

    #[test]
    fn alias_defaults_to_the_stack_name() {
        let mut spec = AccountSpec::new("treasury");
        assert_eq!(spec.alias_name(), "alias/treasury");
        spec.alias = Some("hot-wallet".into());
        assert_eq!(spec.alias_name(), "alias/hot-wallet");
    }
}
