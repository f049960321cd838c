//! A redeploy keeps what it is not told to change: the stack's current inputs read back from
//! its parameters and tags, the spec they make together with what the user gave, and the
//! changes (who may sign, what happens to the key) that must be shown and confirmed before
//! they are made. Pure code.

use std::fmt;

use aws_sdk_cloudformation::types::Stack;

use crate::account::{AccountSpec, RemovalPolicy, SpecError, DEFAULT_PENDING_WINDOW_DAYS};
use crate::function::{
    self, FunctionMode, FunctionSpec, PARAM_FUNCTION_ARCHITECTURE, PARAM_FUNCTION_CODE_KEY,
    PARAM_FUNCTION_SIGNING_POLICY, PARAM_FUNCTION_SIGNING_PROFILE,
};
use crate::template::{
    OUTPUT_REMOVAL_POLICY, PARAM_ALIAS_NAME, PARAM_PENDING_WINDOW_IN_DAYS, PARAM_REMOVAL_POLICY,
    PARAM_REPLICA_REGIONS, PARAM_SIGNER_PRINCIPALS,
};

/// The template parameter of kms-eth's first templates: one principal, empty for the whole
/// account. Read only to carry an older stack's trust over unchanged.
const LEGACY_PARAM_SIGNER_PRINCIPAL_ARN: &str = "SignerPrincipalArn";

/// An account as the user asked for it: `None` (or an empty list) is "not given", which
/// keeps the stack's current value, or takes the default for a new stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRequest {
    /// The CloudFormation stack name.
    pub stack_name: String,
    /// The alias.
    pub alias: Option<String>,
    /// What happens to the key when the stack is deleted.
    pub removal_policy: Option<RemovalPolicy>,
    /// Days between scheduling the key's deletion and the deletion.
    pub pending_window_days: Option<u8>,
    /// The principals allowed to assume the signer role.
    pub signer_principals: Vec<String>,
    /// Stack tags; when given they replace the stack's tags.
    pub tags: Option<Vec<(String, String)>>,
    /// The signing function (`--with-lambda`). Not kept from the stack: its code is uploaded
    /// by each deploy that asks for it, and a redeploy without it removes the function, which
    /// is a guarded change.
    pub function: Option<FunctionSpec>,
    /// Regions to replicate the key into (`--replica-region`), added to the stack's own:
    /// a redeploy never removes a replica.
    pub replica_regions: Vec<String>,
}

impl AccountRequest {
    /// Checks what was given, before any AWS call: the spec it makes with the defaults (and a
    /// stand-in principal when none was given) must be valid.
    pub fn validate(&self) -> Result<(), SpecError> {
        let stand_in = ["000000000000".to_owned()];
        let principals = if self.signer_principals.is_empty() {
            &stand_in[..]
        } else {
            &self.signer_principals[..]
        };
        resolve(self, None, principals).validate()
    }
}

/// The inputs an existing stack was deployed with, from its parameters and tags; `None`
/// where the stack does not say (a stack made by another template).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentInputs {
    /// The alias.
    pub alias: Option<String>,
    /// The removal policy.
    pub removal_policy: Option<RemovalPolicy>,
    /// The pending window.
    pub pending_window_days: Option<u8>,
    /// Who may assume the signer role.
    pub signer_principals: Option<Vec<String>>,
    /// The stack's tags.
    pub tags: Vec<(String, String)>,
    /// The signing function the stack has, as [`FunctionSpec::describe`] shows it.
    pub function: Option<String>,
    /// The Regions its key is replicated into (a multi-Region stack's parameter).
    pub replica_regions: Vec<String>,
}

impl CurrentInputs {
    /// What `stack` was deployed with.
    pub fn of(stack: &Stack) -> CurrentInputs {
        let parameter = |key: &str| {
            stack
                .parameters()
                .iter()
                .find(|p| p.parameter_key() == Some(key))
                .and_then(|p| p.parameter_value())
        };
        let output = |key: &str| {
            stack
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
        };
        let signer_principals = match (
            parameter(PARAM_SIGNER_PRINCIPALS),
            parameter(LEGACY_PARAM_SIGNER_PRINCIPAL_ARN),
        ) {
            (Some(list), _) => Some(split_principals(list)),
            // The first template trusted the whole account when the parameter was empty.
            (None, Some("")) => stack_account(stack).map(|account| vec![account.to_owned()]),
            (None, Some(arn)) => Some(vec![arn.to_owned()]),
            (None, None) => None,
        };
        CurrentInputs {
            alias: parameter(PARAM_ALIAS_NAME).map(str::to_owned),
            removal_policy: parameter(PARAM_REMOVAL_POLICY)
                .or_else(|| output(OUTPUT_REMOVAL_POLICY))
                .and_then(|p| p.parse().ok()),
            pending_window_days: parameter(PARAM_PENDING_WINDOW_IN_DAYS)
                .and_then(|d| d.parse().ok()),
            signer_principals,
            replica_regions: parameter(PARAM_REPLICA_REGIONS)
                .map(split_principals)
                .unwrap_or_default(),
            function: parameter(PARAM_FUNCTION_CODE_KEY).map(|_| {
                let arch = parameter(PARAM_FUNCTION_ARCHITECTURE)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_default();
                let mode = if parameter(PARAM_FUNCTION_SIGNING_POLICY).is_some() {
                    FunctionMode::Policy
                } else {
                    FunctionMode::Unrestricted
                };
                function::describe(arch, mode, parameter(PARAM_FUNCTION_SIGNING_PROFILE))
            }),
            tags: stack
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        }
    }
}

/// The principals of the parameter's comma-separated list.
pub fn split_principals(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The account id in the stack's ARN (`arn:aws:cloudformation:REGION:ACCOUNT:stack/...`).
fn stack_account(stack: &Stack) -> Option<&str> {
    stack.stack_id()?.split(':').nth(4)
}

/// The spec to deploy: what the user gave, else the stack's current value, else the default
/// (`default_principals` for the signer role: the identity running the deploy).
pub fn resolve(
    request: &AccountRequest,
    current: Option<&CurrentInputs>,
    default_principals: &[String],
) -> AccountSpec {
    let mut signer_principals = if !request.signer_principals.is_empty() {
        request.signer_principals.clone()
    } else {
        current
            .and_then(|c| c.signer_principals.clone())
            .unwrap_or_else(|| default_principals.to_vec())
    };
    // One order, without repeats: the same principals never make a change.
    signer_principals.sort();
    signer_principals.dedup();
    let current_alias = current.and_then(|c| c.alias.clone());
    let mut replica_regions = request.replica_regions.clone();
    replica_regions.extend(current.iter().flat_map(|c| c.replica_regions.clone()));
    replica_regions.sort();
    replica_regions.dedup();
    AccountSpec {
        stack_name: request.stack_name.clone(),
        alias: request.alias.clone().or(current_alias),
        removal_policy: kept(request.removal_policy, current, |c| c.removal_policy)
            .unwrap_or(RemovalPolicy::Retain),
        pending_window_days: kept(request.pending_window_days, current, |c| {
            c.pending_window_days
        })
        .unwrap_or(DEFAULT_PENDING_WINDOW_DAYS),
        signer_principals,
        tags: request
            .tags
            .clone()
            .or_else(|| current.map(|c| c.tags.clone()))
            .unwrap_or_default(),
        function: request.function.clone(),
        replica_regions,
    }
}

/// The value given, else the stack's current one.
fn kept<T>(
    given: Option<T>,
    current: Option<&CurrentInputs>,
    field: fn(&CurrentInputs) -> Option<T>,
) -> Option<T> {
    given.or_else(|| current.and_then(field))
}

/// Whether `resolve` needs default principals: none were given and the stack has none.
pub fn needs_default_principals(request: &AccountRequest, current: Option<&CurrentInputs>) -> bool {
    request.signer_principals.is_empty()
        && current.and_then(|c| c.signer_principals.as_ref()).is_none()
}

/// A change to an existing stack that must be shown and confirmed before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedChange {
    /// What changes: `signer principals` or `removal policy`.
    pub what: &'static str,
    /// The stack's current value.
    pub old: String,
    /// The value deployed.
    pub new: String,
}

impl fmt::Display for GuardedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.what, self.old, self.new)
    }
}

/// The changes `spec` makes to a stack deployed with `current` that need confirmation: who
/// may assume the signer role, and what happens to the key when the stack is deleted. A new
/// stack (no `current`) has none.
pub fn guarded_changes(current: Option<&CurrentInputs>, spec: &AccountSpec) -> Vec<GuardedChange> {
    let Some(current) = current else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    let mut old_principals = current.signer_principals.clone().unwrap_or_default();
    old_principals.sort();
    old_principals.dedup();
    if old_principals != spec.signer_principals {
        changes.push(GuardedChange {
            what: "signer principals",
            old: if old_principals.is_empty() {
                "unknown".to_owned()
            } else {
                old_principals.join(", ")
            },
            new: spec.signer_principals.join(", "),
        });
    }
    if let Some(old) = current.removal_policy {
        if old != spec.removal_policy {
            changes.push(GuardedChange {
                what: "removal policy",
                old: old.to_string(),
                new: spec.removal_policy.to_string(),
            });
        }
    }
    // The function's role may sign: adding it, removing it or changing what it may sign
    // changes who signs what, like the signer principals.
    let new_function = spec.function.as_ref().map(FunctionSpec::describe);
    if current.function != new_function {
        let or_none = |f: &Option<String>| f.clone().unwrap_or_else(|| "none".to_owned());
        changes.push(GuardedChange {
            what: "signing function",
            old: or_none(&current.function),
            new: or_none(&new_function),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{Output, Parameter, Tag};

    const ME: &str = "arn:aws:iam::111111111111:user/me";
    const OPS: &str = "arn:aws:iam::111111111111:role/ops";

    fn stack(parameters: &[(&str, &str)]) -> Stack {
        let mut builder = Stack::builder()
            .stack_id("arn:aws:cloudformation:us-east-1:111111111111:stack/acct/1")
            .tags(Tag::builder().key("team").value("a").build());
        for (key, value) in parameters {
            builder = builder.parameters(
                Parameter::builder()
                    .parameter_key(*key)
                    .parameter_value(*value)
                    .build(),
            );
        }
        builder.build()
    }

    fn deployed() -> CurrentInputs {
        CurrentInputs::of(&stack(&[
            (PARAM_ALIAS_NAME, "alias/custom"),
            (PARAM_REMOVAL_POLICY, "DESTROY"),
            (PARAM_PENDING_WINDOW_IN_DAYS, "7"),
            (PARAM_SIGNER_PRINCIPALS, &format!("{OPS},{ME}")),
        ]))
    }

    fn request() -> AccountRequest {
        AccountRequest {
            stack_name: "acct".into(),
            ..AccountRequest::default()
        }
    }

    #[test]
    fn replica_regions_are_kept_and_added_to_never_removed() {
        let current = CurrentInputs::of(&stack(&[(PARAM_REPLICA_REGIONS, "us-west-2")]));
        assert_eq!(current.replica_regions, ["us-west-2"]);
        let kept = resolve(&request(), Some(&current), &[ME.to_owned()]);
        assert_eq!(kept.replica_regions, ["us-west-2"]);
        assert!(kept.template_body().contains("MultiRegion: true"));
        let added = AccountRequest {
            replica_regions: vec!["eu-west-1".into(), "us-west-2".into()],
            ..request()
        };
        let spec = resolve(&added, Some(&current), &[ME.to_owned()]);
        assert_eq!(spec.replica_regions, ["eu-west-1", "us-west-2"]);
        assert!(spec
            .parameters()
            .contains(&(PARAM_REPLICA_REGIONS, "eu-west-1,us-west-2".to_owned())));
        let single = resolve(&request(), None, &[ME.to_owned()]);
        assert!(!single.template_body().contains("MultiRegion"));
        assert_eq!(
            single.template_body(),
            crate::template::render(single.removal_policy, None)
        );
        assert!(
            !single.template_body().contains("{{"),
            "every placeholder is filled"
        );
        let bad = AccountRequest {
            replica_regions: vec!["EU West".into()],
            ..request()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_redeploy_without_flags_keeps_every_current_value_and_needs_no_confirmation() {
        let current = deployed();
        assert!(!needs_default_principals(&request(), Some(&current)));
        let spec = resolve(&request(), Some(&current), &[]);
        assert_eq!(spec.alias_name(), "alias/custom");
        assert_eq!(spec.removal_policy, RemovalPolicy::Destroy);
        assert_eq!(spec.pending_window_days, 7);
        assert_eq!(spec.signer_principals, [OPS, ME], "sorted");
        assert_eq!(spec.tags, [("team".to_owned(), "a".to_owned())]);
        assert_eq!(guarded_changes(Some(&current), &spec), []);
    }

    #[test]
    fn a_new_stack_takes_the_defaults_and_the_callers_principal() {
        assert!(needs_default_principals(&request(), None));
        let spec = resolve(&request(), None, &[ME.to_owned()]);
        assert_eq!(spec, AccountSpec::new("acct", ME));
        assert_eq!(guarded_changes(None, &spec), []);
    }

    #[test]
    fn changed_trust_and_removal_policy_are_shown_old_to_new_and_other_changes_are_not() {
        let current = deployed();
        let changed = AccountRequest {
            removal_policy: Some(RemovalPolicy::Retain),
            signer_principals: vec![OPS.into()],
            pending_window_days: Some(9),
            ..request()
        };
        let spec = resolve(&changed, Some(&current), &[]);
        let shown: Vec<String> = guarded_changes(Some(&current), &spec)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                format!("signer principals: {OPS}, {ME} -> {OPS}"),
                "removal policy: DESTROY -> RETAIN".to_owned()
            ]
        );
        // The same principals in another order, repeated: no change.
        let reordered = AccountRequest {
            signer_principals: vec![OPS.into(), ME.into(), OPS.into()],
            ..request()
        };
        let spec = resolve(&reordered, Some(&current), &[]);
        assert_eq!(guarded_changes(Some(&current), &spec), []);
    }

    #[test]
    fn older_stacks_keep_their_trust_and_removal_policy() {
        // The first template: an empty principal and the removal policy only as an output.
        let mut first = stack(&[(LEGACY_PARAM_SIGNER_PRINCIPAL_ARN, "")]);
        first.outputs = Some(vec![Output::builder()
            .output_key(OUTPUT_REMOVAL_POLICY)
            .output_value("DESTROY")
            .build()]);
        let account_wide = CurrentInputs::of(&first);
        assert_eq!(
            account_wide.signer_principals,
            Some(vec!["111111111111".to_owned()])
        );
        assert_eq!(account_wide.removal_policy, Some(RemovalPolicy::Destroy));
        let one = CurrentInputs::of(&stack(&[(LEGACY_PARAM_SIGNER_PRINCIPAL_ARN, OPS)]));
        assert_eq!(one.signer_principals, Some(vec![OPS.to_owned()]));
        let unknown = CurrentInputs::of(&stack(&[]));
        assert!(needs_default_principals(&request(), Some(&unknown)));
        let spec = resolve(&request(), Some(&unknown), &[ME.to_owned()]);
        assert_eq!(
            guarded_changes(Some(&unknown), &spec)[0].to_string(),
            format!("signer principals: unknown -> {ME}")
        );
    }

    #[test]
    fn requests_are_checked_before_any_call() {
        request().validate().unwrap();
        let bad = AccountRequest {
            signer_principals: vec!["*".into()],
            ..request()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("invalid --signer-principal \"*\""));
    }
}
