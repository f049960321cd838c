//! The account template and every name in it that code spells: parameters, outputs, tag keys
//! and logical resource ids, and how an [`AccountSpec`] is rendered into the template body,
//! parameters and tags CloudFormation takes. Pure code.
//!
//! The names are constants so that the provisioner, the end-to-end tests and the benchmarks
//! cannot drift from `templates/account.yaml`; the tests below check each one against it.

use aws_sdk_cloudformation::types::{Parameter, Tag};

use crate::account::{AccountSpec, RemovalPolicy};
use crate::function::{FunctionMode, PARAM_FUNCTION_SIGNING_POLICY, POLICY_VAR, UNRESTRICTED_VAR};

/// The CloudFormation template of one account, embedded so the binary works from anywhere.
pub const TEMPLATE: &str = include_str!("../../templates/account.yaml");
/// The signing function's fragments (`deploy --with-lambda`), written into [`TEMPLATE`].
pub const FUNCTION_TEMPLATE: &str = include_str!("../../templates/function.yaml");

/// Parameter: days between scheduling the key's deletion and the deletion (7-30).
pub const PARAM_PENDING_WINDOW_IN_DAYS: &str = "PendingWindowInDays";
/// Parameter: the key's alias (`alias/...`).
pub const PARAM_ALIAS_NAME: &str = "AliasName";
/// Parameter: the principals allowed to assume the signer role, comma-separated.
pub const PARAM_SIGNER_PRINCIPALS: &str = "SignerPrincipals";
/// Parameter: `RETAIN` or `DESTROY`, the removal policy also written into the template.
pub const PARAM_REMOVAL_POLICY: &str = "RemovalPolicy";

/// Output: the key id.
pub const OUTPUT_KEY_ID: &str = "KeyId";
/// Output: the key ARN.
pub const OUTPUT_KEY_ARN: &str = "KeyArn";
/// Output: the key's alias.
pub const OUTPUT_ALIAS_NAME: &str = "AliasName";
/// Output: the signer role's ARN.
pub const OUTPUT_SIGNER_ROLE_ARN: &str = "SignerRoleArn";
/// Output: `RETAIN` or `DESTROY`, the removal policy written into the template.
pub const OUTPUT_REMOVAL_POLICY: &str = "RemovalPolicy";
/// Parameter and output of a multi-Region stack: the Regions its key is replicated into,
/// comma-separated (`deploy --replica-region`).
pub const PARAM_REPLICA_REGIONS: &str = "ReplicaRegions";

/// The tag the template puts on every kms-eth key; its value is the stack name.
pub const ACCOUNT_TAG: &str = "kms-eth:account";
/// The tag the template puts on every kms-eth key; its value is `RETAIN` or `DESTROY`.
pub const REMOVAL_POLICY_TAG: &str = "kms-eth:removal-policy";

/// The logical id of the KMS key in the template.
pub const KEY_LOGICAL_ID: &str = "Key";
/// The logical id of the key's alias in the template.
pub const ALIAS_LOGICAL_ID: &str = "Alias";
/// The logical id of the signer role in the template.
pub const SIGNER_ROLE_LOGICAL_ID: &str = "SignerRole";
/// The logical id of the signer role's inline policy in the template.
pub const SIGNER_POLICY_LOGICAL_ID: &str = "SignerPolicy";

// The placeholders kms-eth fills in before deploying: DeletionPolicy and UpdateReplacePolicy
// take no references, so the removal policy cannot be a parameter.
const DELETION_POLICY_PLACEHOLDER: &str = "{{DELETION_POLICY}}";
const UPDATE_REPLACE_POLICY_PLACEHOLDER: &str = "{{UPDATE_REPLACE_POLICY}}";

// Where the function's fragments go: whole lines of account.yaml, removed without a function.
const FUNCTION_PLACEHOLDERS: [(&str, &str); 4] = [
    ("#{{FUNCTION_PARAMETERS}}\n", "parameters"),
    ("#{{FUNCTION_KEY_POLICY}}\n", "key-policy"),
    ("#{{FUNCTION_RESOURCES}}\n", "resources"),
    ("#{{FUNCTION_OUTPUTS}}\n", "outputs"),
];
// Where a multi-Region key's lines go: whole lines of account.yaml, removed for a key in one
// Region (so the template of such a stack is byte for byte what it was before).
const REPLICA_PLACEHOLDERS: [(&str, &str); 3] = [
    (
        "#{{REPLICA_PARAMETERS}}\n",
        "  # deploy --replica-region: kms-eth replicates the key into these Regions with the KMS API\n  \
         # after the stack; a parameter so that a redeploy keeps them.\n  ReplicaRegions:\n    Type: String\n    AllowedPattern: \"^[a-z0-9-]+(,[a-z0-9-]+)*$\"\n    \
         Description: The Regions kms-eth replicates the key into with the KMS API, comma-separated.\n",
    ),
    (
        "#{{REPLICA_KEY}}\n",
        "      # A multi-Region primary: its replicas share its key material, and so its address.\n      \
         MultiRegion: true\n",
    ),
    (
        "#{{REPLICA_OUTPUTS}}\n",
        "  ReplicaRegions:\n    Value: !Ref ReplicaRegions\n",
    ),
];
// The deny's exception for the signer role alone, which becomes a list of both roles.
const DENY_EXCEPTION: &str = "                aws:PrincipalArn: !GetAtt SignerRole.Arn\n";
// The line of the function's environment that says what it may sign.
const SIGNING_VARIABLE_PLACEHOLDER: &str = "{{FUNCTION_SIGNING_VARIABLE}}";

/// The template with `policy` written in, and the signing function when `function` says in
/// which mode. The same inputs always give the same text, which is what lets an unchanged
/// deploy be recognised as such. Public so that the templates deployed are the ones the
/// linters check (`cargo xtask test`).
pub fn render(policy: RemovalPolicy, function: Option<FunctionMode>) -> String {
    render_with_replicas(policy, function, false)
}

/// [`render`], with the key a multi-Region primary when `multi_region` (`deploy
/// --replica-region`).
pub fn render_with_replicas(
    policy: RemovalPolicy,
    function: Option<FunctionMode>,
    multi_region: bool,
) -> String {
    let mut body = TEMPLATE
        .replace(DELETION_POLICY_PLACEHOLDER, policy.deletion_policy())
        .replace(UPDATE_REPLACE_POLICY_PLACEHOLDER, policy.deletion_policy());
    for (placeholder, lines) in REPLICA_PLACEHOLDERS {
        body = body.replace(placeholder, if multi_region { lines } else { "" });
    }
    let Some(mode) = function else {
        for (placeholder, _) in FUNCTION_PLACEHOLDERS {
            body = body.replace(placeholder, "");
        }
        return body;
    };
    for (placeholder, name) in FUNCTION_PLACEHOLDERS {
        let mut text = fragment(name).to_owned();
        if name == "parameters" {
            if mode == FunctionMode::Policy {
                text.push_str(fragment("signing-policy-parameter"));
            }
            // A top-level section of its own, right after the parameters.
            text.push_str(fragment("conditions"));
        }
        body = body.replace(placeholder, &text);
    }
    let variable = match mode {
        FunctionMode::Policy => format!("{POLICY_VAR}: !Ref {PARAM_FUNCTION_SIGNING_POLICY}"),
        FunctionMode::Unrestricted => format!("{UNRESTRICTED_VAR}: \"true\""),
    };
    body.replace(DENY_EXCEPTION, fragment("deny-exception"))
        .replace(SIGNING_VARIABLE_PLACEHOLDER, &variable)
}

/// The lines of `templates/function.yaml` after `#--- NAME`, up to the next such line.
fn fragment(name: &str) -> &'static str {
    let start = format!("#--- {name}\n");
    let Some((_, rest)) = FUNCTION_TEMPLATE.split_once(&start) else {
        return "";
    };
    rest.find("#--- ").map_or(rest, |end| &rest[..end])
}

/// The template parameters of `spec`, as CloudFormation takes them.
pub fn stack_parameters(spec: &AccountSpec) -> Vec<Parameter> {
    spec.parameters()
        .into_iter()
        .map(|(key, value)| {
            Parameter::builder()
                .parameter_key(key)
                .parameter_value(value)
                .build()
        })
        .collect()
}

/// The stack tags of `spec`, as CloudFormation takes them.
pub fn stack_tags(spec: &AccountSpec) -> Vec<Tag> {
    spec.tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys declared directly under a top-level section (`Parameters:`, ...), in order.
    fn section_keys(section: &str) -> Vec<&'static str> {
        TEMPLATE
            .lines()
            .skip_while(|l| *l != format!("{section}:"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("  "))
            .filter(|l| !l.starts_with([' ', '#']))
            .filter_map(|l| l.strip_suffix(':'))
            .collect()
    }

    #[test]
    fn every_fragment_lands_once_and_nothing_is_left_unfilled() {
        for placeholder in FUNCTION_PLACEHOLDERS
            .map(|(p, _)| p)
            .into_iter()
            .chain([DENY_EXCEPTION])
        {
            assert_eq!(TEMPLATE.matches(placeholder).count(), 1, "{placeholder}");
        }
        for name in FUNCTION_PLACEHOLDERS
            .map(|(_, n)| n)
            .into_iter()
            .chain(["deny-exception", "signing-policy-parameter"])
        {
            assert!(!fragment(name).trim().is_empty(), "{name}");
        }
        for policy in [RemovalPolicy::Retain, RemovalPolicy::Destroy] {
            for mode in [
                None,
                Some(FunctionMode::Policy),
                Some(FunctionMode::Unrestricted),
            ] {
                let body = render(policy, mode);
                assert!(!body.contains("{{"), "{mode:?}");
                assert!(!body.contains("#---"), "{mode:?}");
            }
        }
        // Without the function, the account template is exactly what it was.
        assert!(!render(RemovalPolicy::Retain, None).contains("Function"));
    }

    /// The lines of the resource or key policy statement starting `start` in `body`, up to
    /// the next one at the same indentation.
    fn block<'a>(body: &'a str, start: &str) -> &'a str {
        let begin = body
            .find(start)
            .unwrap_or_else(|| panic!("{start} not in the template"));
        let indent = start.len() - start.trim_start().len();
        let rest = &body[begin + start.len()..];
        let end = rest
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .find(|&i| {
                let line = &rest[i..];
                let spaces = line.len() - line.trim_start_matches(' ').len();
                spaces <= indent && !line.trim().is_empty() && !line.starts_with('#')
            })
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// `(action, resource or principal)` of every statement line pair in `text`.
    fn actions(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("Action:") || l.starts_with("- logs:") || l.starts_with("- kms:")
            })
            .map(|l| {
                l.trim_start_matches("Action:")
                    .trim_start_matches("- ")
                    .trim()
                    .to_owned()
            })
            .filter(|a| !a.is_empty())
            .collect()
    }

    #[test]
    fn the_function_role_may_read_the_public_key_sign_and_log_and_nothing_else() {
        for mode in [FunctionMode::Policy, FunctionMode::Unrestricted] {
            let body = render(RemovalPolicy::Retain, Some(mode));
            // The execution role's inline policy: exactly two KMS actions on this key, and
            // writing to its own log group.
            let policy = block(&body, "  FunctionRolePolicy:\n");
            assert_eq!(
                actions(policy),
                [
                    "kms:GetPublicKey",
                    "kms:Sign",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents"
                ]
            );
            let resources: Vec<&str> = policy
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("Resource:"))
                .collect();
            assert_eq!(
                resources,
                [
                    "Resource: !GetAtt Key.Arn",
                    "Resource: !GetAtt Key.Arn",
                    "Resource: !GetAtt FunctionLogGroup.Arn"
                ]
            );
            assert_eq!(policy.matches("kms:MessageType: DIGEST").count(), 1);
            assert!(!policy.contains('*'), "{policy}");
            // Only Lambda may take the role, and nothing else grants it anything.
            let role = block(&body, "  FunctionRole:\n");
            assert!(role.contains("Service: lambda.amazonaws.com"));
            assert_eq!(actions(role), ["sts:AssumeRole"]);
            assert!(!role.contains("ManagedPolicyArns") && !role.contains("Policies:"));
            // Named in the two key policy grants, its own deny, the deny's exception, the
            // function and the output: nowhere else.
            assert_eq!(body.matches("!GetAtt FunctionRole.Arn").count(), 6);
            // Its kms:Sign, in the key policy and its own policy, holds only from inside the
            // function, and the key policy denies it everywhere else.
            let from_the_function = "lambda:SourceFunctionArn: !Sub \"arn:${AWS::Partition}:\
                                     lambda:${AWS::Region}:${AWS::AccountId}:function:${FunctionName}\"";
            assert_eq!(policy.matches(from_the_function).count(), 1, "{policy}");
            let only_there = block(
                &body,
                "          - Sid: FunctionRoleSignsOnlyInItsFunction\n",
            );
            assert!(only_there.contains("Effect: Deny") && only_there.contains("ArnNotEquals:"));
            assert!(only_there.contains(from_the_function), "{only_there}");
            assert!(only_there.contains("aws:PrincipalArn: !GetAtt FunctionRole.Arn"));
            // The key policy: the function's role reads the public key and signs digests,
            // and is the one exception to the deny beside the signer role.
            let reads = block(&body, "          - Sid: FunctionReadsThePublicKey\n");
            assert_eq!(actions(reads), ["kms:GetPublicKey"]);
            assert!(reads.contains("AWS: !GetAtt FunctionRole.Arn"));
            let signs = block(&body, "          - Sid: FunctionSignsDigests\n");
            assert_eq!(actions(signs), ["kms:Sign"]);
            assert!(signs.contains("AWS: !GetAtt FunctionRole.Arn"));
            assert!(signs.contains("kms:MessageType: DIGEST"));
            assert!(signs.contains(from_the_function), "{signs}");
            let deny = block(&body, "          - Sid: NobodyElseSigns\n");
            assert!(deny.contains(
                "aws:PrincipalArn:\n                  - !GetAtt SignerRole.Arn\n                  \
                 - !GetAtt FunctionRole.Arn\n"
            ), "{deny}");
            // The log group keeps logs for a bounded time, and the function writes there.
            assert!(block(&body, "  FunctionLogGroup:\n").contains("RetentionInDays: 90"));
            let function = block(&body, "  Function:\n");
            for line in [
                "Runtime: provided.al2023",
                "Handler: bootstrap",
                "FunctionName: !Ref FunctionName",
                "S3ObjectVersion: !Ref FunctionCodeVersion",
                "CodeSigningConfigArn: !If [FunctionCodeIsSigned, !Ref FunctionCodeSigningConfig, !Ref AWS::NoValue]",
                "- !Ref FunctionArchitecture",
                "LogGroup: !Ref FunctionLogGroup",
                "KMS_KEY_ID: !Ref Key",
            ] {
                assert!(function.contains(line), "{line} not in {function}");
            }
            let (present, absent) = match mode {
                FunctionMode::Policy => (
                    "KMS_ETH_POLICY: !Ref FunctionSigningPolicy",
                    "KMS_ETH_UNRESTRICTED",
                ),
                FunctionMode::Unrestricted => ("KMS_ETH_UNRESTRICTED: \"true\"", "KMS_ETH_POLICY"),
            };
            assert!(
                function.contains(present) && !body.contains(absent),
                "{function}"
            );
        }
    }

    #[test]
    fn every_name_is_the_one_in_the_template() {
        assert_eq!(
            section_keys("Parameters"),
            [
                PARAM_PENDING_WINDOW_IN_DAYS,
                PARAM_ALIAS_NAME,
                PARAM_SIGNER_PRINCIPALS,
                PARAM_REMOVAL_POLICY
            ]
        );
        assert_eq!(
            section_keys("Resources"),
            [
                SIGNER_ROLE_LOGICAL_ID,
                KEY_LOGICAL_ID,
                ALIAS_LOGICAL_ID,
                SIGNER_POLICY_LOGICAL_ID
            ]
        );
        assert_eq!(
            section_keys("Outputs"),
            [
                OUTPUT_KEY_ID,
                OUTPUT_KEY_ARN,
                OUTPUT_ALIAS_NAME,
                OUTPUT_SIGNER_ROLE_ARN,
                OUTPUT_REMOVAL_POLICY
            ]
        );
        for tag in [ACCOUNT_TAG, REMOVAL_POLICY_TAG] {
            assert!(TEMPLATE.contains(&format!("- Key: {tag}\n")), "{tag}");
        }
    }

    #[test]
    fn parameters_are_the_template_parameters() {
        let names: Vec<String> = stack_parameters(&AccountSpec::new("acct", "111111111111"))
            .iter()
            .filter_map(|p| p.parameter_key().map(str::to_owned))
            .collect();
        assert_eq!(names, section_keys("Parameters"));
    }

    #[test]
    fn template_keeps_the_key_to_secp256k1_signing_and_the_role_to_two_actions() {
        assert!(TEMPLATE.contains("KeySpec: ECC_SECG_P256K1"));
        assert!(TEMPLATE.contains("KeyUsage: SIGN_VERIFY"));
        assert!(TEMPLATE.contains("EnableKeyRotation: false"));
        // Every kms: action the template names for anyone but the account root: granted to
        // the role in both policies, and denied to everyone else (the third kms:Sign).
        let granted: Vec<&str> = TEMPLATE
            .lines()
            .map(str::trim)
            .filter(|l| {
                (l.starts_with("Action: kms:") || l.starts_with("- kms:")) && !l.contains("kms:*")
            })
            .collect();
        assert_eq!(
            granted,
            [
                "Action: kms:GetPublicKey",
                "Action: kms:Sign",
                "Action: kms:Sign",
                "Action: kms:GetPublicKey",
                "Action: kms:Sign"
            ]
        );
        // Signing is conditioned on digests with ECDSA_SHA_256 in both policies.
        assert_eq!(TEMPLATE.matches("kms:MessageType: DIGEST").count(), 2);
    }

    #[test]
    fn only_the_signer_role_may_sign_and_only_the_given_principals_may_assume_it() {
        let deny = TEMPLATE
            .split("- Sid: ")
            .find(|s| s.starts_with("NobodyElseSigns"))
            .expect("the deny statement");
        for line in [
            "Effect: Deny",
            "AWS: \"*\"",
            "Action: kms:Sign",
            "ArnNotEquals:",
            "aws:PrincipalArn: !GetAtt SignerRole.Arn",
        ] {
            assert!(deny.contains(line), "{line} not in {deny}");
        }
        assert!(TEMPLATE.contains("AWS: !Split [\",\", !Ref SignerPrincipals]"));
        // kms:* is the account's administration only (cfripper's one accepted finding,
        // templates/lint/cfripper_filters.py, relies on it).
        assert_eq!(TEMPLATE.matches("\"kms:*\"").count(), 1);
        let admin = TEMPLATE
            .split("- Sid: ")
            .find(|s| s.contains("\"kms:*\""))
            .unwrap_or_default();
        assert!(admin.starts_with("AccountAdministersTheKey"), "{admin}");
        // The wrong claim stays corrected: DIGEST does not keep raw messages out.
        assert!(!TEMPLATE.contains("raw messages"));
    }
}
