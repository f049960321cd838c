//! What one kms-eth account stack is made of: the inputs a user chooses, checked before any
//! AWS call, and the template body and parameters they turn into (the template itself and
//! the names in it are in `template.rs`). Pure code.

use std::fmt;
use std::str::FromStr;

use crate::function::FunctionSpec;
use crate::template::{
    self, PARAM_ALIAS_NAME, PARAM_PENDING_WINDOW_IN_DAYS, PARAM_REMOVAL_POLICY,
    PARAM_REPLICA_REGIONS, PARAM_SIGNER_PRINCIPALS,
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
    /// The signer principal is not an IAM account, role or user ARN, nor an account id.
    #[error(
        "invalid --signer-principal {0:?}: give an IAM ARN like arn:aws:iam::123456789012:role/signer \
         (or :root, or :user/name; no commas) or a 12-digit account id; wildcards would let anyone sign"
    )]
    SignerPrincipal(String),
    /// No principal may assume the signer role (an empty list is never deployed).
    #[error("the signer role needs at least one principal: give --signer-principal")]
    NoSignerPrincipal,
    /// The identity running the deploy cannot be named in a trust policy as it is.
    #[error(
        "the signer role would trust the identity running this deploy, {caller}, but {reason}; \
         give the principals that may sign with --signer-principal (repeatable)"
    )]
    CallerPrincipal {
        /// The caller's ARN, from sts:GetCallerIdentity.
        caller: String,
        /// Why it cannot be used as it is.
        reason: &'static str,
    },
    /// The signing function's policy does not fit in its environment.
    #[error(
        "invalid --lambda-policy: {0} bytes, more than the {max} a Lambda function's environment \
         leaves for it (Lambda keeps 4 KB of variables); shorten it",
        max = crate::function::MAX_SIGNING_POLICY_BYTES
    )]
    FunctionPolicyTooLarge(usize),
    /// A replica Region is not a Region name.
    #[error("invalid --replica-region {0:?}: a Region name is lowercase letters, digits and dashes, as eu-west-1")]
    Region(String),
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
    /// The principals allowed to assume the signer role (IAM ARNs or account ids), sorted
    /// and without repeats so that their order never makes a change.
    pub signer_principals: Vec<String>,
    /// Stack tags, propagated by CloudFormation to the key and role.
    pub tags: Vec<(String, String)>,
    /// The signing function (`deploy --with-lambda`), or none.
    pub function: Option<FunctionSpec>,
    /// The Regions the key is replicated into (`deploy --replica-region`), sorted and without
    /// repeats; none for a key in one Region. Any makes the key multi-Region.
    pub replica_regions: Vec<String>,
}

impl AccountSpec {
    /// An account with the defaults (RETAIN, a 30-day window) whose signer role trusts
    /// `signer_principal`.
    pub fn new(stack_name: impl Into<String>, signer_principal: impl Into<String>) -> Self {
        AccountSpec {
            stack_name: stack_name.into(),
            alias: None,
            removal_policy: RemovalPolicy::Retain,
            pending_window_days: DEFAULT_PENDING_WINDOW_DAYS,
            signer_principals: vec![signer_principal.into()],
            tags: Vec::new(),
            function: None,
            replica_regions: Vec::new(),
        }
    }

    /// Checks every input against the rules CloudFormation and KMS will apply.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_stack_name(&self.stack_name)?;
        if !PENDING_WINDOW_DAYS.contains(&self.pending_window_days) {
            return Err(SpecError::PendingWindow(self.pending_window_days));
        }
        if self.signer_principals.is_empty() {
            return Err(SpecError::NoSignerPrincipal);
        }
        for principal in &self.signer_principals {
            validate_signer_principal(principal)?;
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
        if let Some(function) = &self.function {
            function.validate()?;
        }
        for region in &self.replica_regions {
            validate_region(region)?;
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

    /// The template with the removal policy (and the function, if any) written in.
    pub fn template_body(&self) -> String {
        template::render_with_replicas(
            self.removal_policy,
            self.function.as_ref().map(|f| f.policy.mode()),
            !self.replica_regions.is_empty(),
        )
    }

    /// The template parameters, as (name, value) pairs.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        let mut parameters = vec![
            (
                PARAM_PENDING_WINDOW_IN_DAYS,
                self.pending_window_days.to_string(),
            ),
            (PARAM_ALIAS_NAME, self.alias_name()),
            (PARAM_SIGNER_PRINCIPALS, self.signer_principals.join(",")),
            (
                PARAM_REMOVAL_POLICY,
                self.removal_policy.as_str().to_owned(),
            ),
        ];
        if let Some(function) = &self.function {
            parameters.extend(function.parameters());
        }
        if !self.replica_regions.is_empty() {
            parameters.push((PARAM_REPLICA_REGIONS, self.replica_regions.join(",")));
        }
        parameters
    }
}

/// Checks a replica Region's name: lowercase letters, digits and dashes (`eu-west-1`), the
/// template's `AllowedPattern` for the list.
pub fn validate_region(region: &str) -> Result<(), SpecError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::Region(region.to_owned()))
    }
}

/// The pending window when none is given, the longest KMS allows.
pub const DEFAULT_PENDING_WINDOW_DAYS: u8 = 30;

/// Checks one signer principal: an IAM ARN of an account root, role or user, or a 12-digit
/// account id; the same rule as the template's `AllowedPattern`. Commas are refused: the
/// principals travel as one comma-separated parameter.
pub fn validate_signer_principal(principal: &str) -> Result<(), SpecError> {
    let account_id = |id: &str| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit());
    if account_id(principal) || is_iam_principal_arn(principal) {
        Ok(())
    } else {
        Err(SpecError::SignerPrincipal(principal.to_owned()))
    }
}

/// The principal a trust policy names for the identity `caller_arn` (from
/// sts:GetCallerIdentity): a user or account root as it is; an assumed-role session
/// (`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`) as its role, `arn:aws:iam::ACCT:role/ROLE`.
///
/// The session ARN does not carry the role's path, so a role with a path (`/ops/ROLE`) is
/// named without it and IAM refuses the trust policy; such roles must be given with
/// `--signer-principal`. IAM Identity Center roles always have a path, so they are refused
/// here, before anything changes. Federated users cannot be named in a trust policy at all.
pub fn caller_principal(caller_arn: &str) -> Result<String, SpecError> {
    let refuse = |reason| SpecError::CallerPrincipal {
        caller: caller_arn.to_owned(),
        reason,
    };
    if is_iam_principal_arn(caller_arn) {
        return Ok(caller_arn.to_owned());
    }
    let Some((partition, "sts", account, resource)) = arn_parts(caller_arn) else {
        return Err(refuse(
            "it is not an IAM user, account root or role session",
        ));
    };
    let Some(role) = resource
        .strip_prefix("assumed-role/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(role, _session)| role)
    else {
        return Err(refuse("a federated user cannot be named in a trust policy"));
    };
    if role.starts_with("AWSReservedSSO_") {
        return Err(refuse(
            "IAM Identity Center roles have a path that the session ARN does not show",
        ));
    }
    let principal = format!("arn:{partition}:iam::{account}:role/{role}");
    validate_signer_principal(&principal).map_err(|_| refuse("its role ARN is not valid"))?;
    Ok(principal)
}

/// The partition, service, account and resource of a global ARN (one without a region, as
/// IAM's and STS's are): `arn:PARTITION:SERVICE::ACCOUNT:RESOURCE`.
fn arn_parts(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(partition), Some(service), Some(""), Some(account), Some(resource)) => {
            Some((partition, service, account, resource))
        }
        _ => None,
    }
}

/// Whether `arn` is `arn:<partition>:iam::<12 digits>:root|role/...|user/...`.
fn is_iam_principal_arn(arn: &str) -> bool {
    let Some((partition, "iam", account, resource)) = arn_parts(arn) else {
        return false;
    };
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=.@_/-".contains(&b))
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

    const ME: &str = "arn:aws:iam::123456789012:user/me";

    #[test]
    fn template_has_the_removal_policy_written_in() {
        let mut spec = AccountSpec::new("acct", ME);
        let retain = spec.template_body();
        assert!(retain.contains("DeletionPolicy: \"Retain\""));
        assert!(retain.contains("UpdateReplacePolicy: \"Retain\""));
        assert!(!retain.contains("{{"));
        spec.removal_policy = RemovalPolicy::Destroy;
        let destroy = spec.template_body();
        assert!(destroy.contains("DeletionPolicy: \"Delete\""));
        assert!(spec
            .parameters()
            .contains(&(PARAM_REMOVAL_POLICY, "DESTROY".to_owned())));
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
        let cases: [(Mutation, &str); 12] = [
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
                |s| s.signer_principals = vec!["*".into()],
                "wildcards would let anyone sign",
            ),
            (
                |s| s.signer_principals = vec!["arn:aws:iam::12345:root".into()],
                "invalid --signer-principal",
            ),
            (
                |s| s.signer_principals = vec!["arn:aws:iam::123456789012:role/a,b".into()],
                "no commas",
            ),
            (
                |s| s.signer_principals = vec!["12345678901".into()],
                "12-digit account id",
            ),
            (|s| s.signer_principals.clear(), "give --signer-principal"),
        ];
        for (mutate, message) in cases {
            let mut spec = AccountSpec::new("acct", ME);
            mutate(&mut spec);
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(message), "{err} does not contain {message}");
        }
        AccountSpec::new("acct-1", ME).validate().unwrap();
        let mut spec = AccountSpec::new("acct-2", ME);
        spec.signer_principals = vec![
            "arn:aws:iam::123456789012:role/ops/signer".into(),
            "123456789012".into(),
        ];
        spec.validate().unwrap();
    }

    #[test]
    fn the_caller_is_named_as_a_trust_policy_can_name_it() {
        for same in [
            "arn:aws:iam::123456789012:user/ci/deployer",
            "arn:aws:iam::123456789012:root",
        ] {
            assert_eq!(caller_principal(same).unwrap(), same);
        }
        assert_eq!(
            caller_principal("arn:aws:sts::123456789012:assumed-role/Deployer/session-1").unwrap(),
            "arn:aws:iam::123456789012:role/Deployer"
        );
        assert_eq!(
            caller_principal("arn:aws-cn:sts::123456789012:assumed-role/D/s").unwrap(),
            "arn:aws-cn:iam::123456789012:role/D"
        );
        for (refused, reason) in [
            (
                "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/me",
                "IAM Identity Center",
            ),
            (
                "arn:aws:sts::123456789012:federated-user/bob",
                "federated user",
            ),
            ("arn:aws:s3:::bucket", "not an IAM user"),
        ] {
            let err = caller_principal(refused).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
            assert!(err.contains("--signer-principal"), "{err}");
        }
    }

    #[test]
    fn alias_defaults_to_the_stack_name() {
        let mut spec = AccountSpec::new("treasury", ME);
        assert_eq!(spec.alias_name(), "alias/treasury");
        spec.alias = Some("hot-wallet".into());
        assert_eq!(spec.alias_name(), "alias/hot-wallet");
    }
}
