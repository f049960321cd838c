//! One stack of a fleet as it is, against what the manifest asks: absent, busy, refused, or
//! present with the changes a deploy would make and the drift found in its key, alias, key
//! policy and signer-role trust. Network calls here (each through the provisioner's logged
//! `call`); the comparisons are the provisioner's `input_differences` and
//! `template_difference` (the ones that make `deploy` a no-op) and `drift`. The IAM client
//! (`GetRole`) is the only use of the IAM SDK outside the tests.

use aws_sdk_cloudformation::types::{Stack, StackStatus};
use aws_sdk_kms::types::KeyState;
use kms_eth_provisioner::{
    account_stack, call, code_sha256_of_key, describe_stack, function_drift, input_differences,
    key_deletion_policy, key_info, key_regions, kms_in, next_step, read_region_key,
    template_difference, template_of, AccountSpec, AccountStack, DeployOptions, Difference,
    ExpectedFunction, KeyInfo, LambdaReader, NextStep, On, ProvisionError, RegionKey,
    RemovalPolicy, FUNCTION_LOG_GROUP_LOGICAL_ID, KEY_LOGICAL_ID, PARAM_FUNCTION_CODE_KEY,
    PARAM_FUNCTION_SIGNING_POLICY, PARAM_FUNCTION_SIGNING_PROFILE,
};

use crate::drift::{
    policy_drift, rendered_function_policy, rendered_function_trust_policy, rendered_key_policy,
    rendered_signer_policy, rendered_trust_policy, FunctionNames,
};
use crate::roles::{role_drift, ExpectedRole};

/// The clients of one target in one region.
#[derive(Debug, Clone, Copy)]
pub struct Clients<'a> {
    /// CloudFormation: the stacks.
    pub cloudformation: &'a aws_sdk_cloudformation::Client,
    /// KMS: the keys, their aliases and policies.
    pub kms: &'a aws_sdk_kms::Client,
    /// IAM: the signer and function roles.
    pub iam: &'a aws_sdk_iam::Client,
    /// Lambda's API (the signing function's code and settings), when credentials were found.
    pub lambda: Option<&'a LambdaReader>,
}

/// What a fleet stack is found to be.
#[derive(Debug, Clone)]
pub enum Found {
    /// No stack (or only the empty shell of a create that never ran): apply creates it.
    Absent,
    /// An operation is running on it (`status`); apply waits for it, then deploys.
    Busy {
        /// Its status.
        status: String,
    },
    /// Apply will not touch it: why, and what to do.
    Refused {
        /// The reason, with the way out.
        reason: String,
    },
    /// The stack and its key.
    Present(Box<Present>),
}

/// A stack that exists, as read.
#[derive(Debug, Clone)]
pub struct Present {
    /// Its outputs and parameters.
    pub stack: AccountStack,
    /// Its key.
    pub key: KeyInfo,
    /// What a deploy of the manifest's spec would change.
    pub changes: Vec<Difference>,
    /// What was changed outside kms-eth, in words; apply leaves such a stack alone.
    pub drift: Vec<String>,
    /// Whether deleting the stack schedules the key's deletion: its removal policy says
    /// DESTROY, or its template's DeletionPolicy does (or cannot be read).
    pub deletes_key: bool,
    /// Its fleet tag's value (`kms-eth:fleet`), if it has one: which manifest made it.
    pub fleet: Option<String>,
}

/// Reads the stack of `spec` and everything that can drift around it.
pub async fn inspect(clients: Clients<'_>, spec: &AccountSpec) -> Result<Found, ProvisionError> {
    let name = spec.stack_name.as_str();
    let Some(stack) = describe_stack(clients.cloudformation, name).await? else {
        return Ok(Found::Absent);
    };
    let status = stack.stack_status();
    let status_text = status.map(|s| s.as_str().to_owned()).unwrap_or_default();
    match next_step(status, false, &DeployOptions::default()) {
        NextStep::Create => return Ok(Found::Absent),
        NextStep::WaitForOperation => {
            return Ok(Found::Busy {
                status: status_text,
            })
        }
        NextStep::UpdateViaChangeSet => {}
        NextStep::RefuseRollbackComplete | NextStep::RecreateAfterRollbackComplete => {
            return Ok(Found::Refused {
                reason: format!(
                    "ROLLBACK_COMPLETE after a failed create: a key it made was kept or scheduled \
                     for deletion by its removal policy (`fleet plan` lists it as unmanaged); \
                     delete the stack (`kms-eth deploy --stack-name {name}` in its account and \
                     region offers to), then apply again"
                ),
            })
        }
        NextStep::RefuseBusy | NextStep::RefuseBroken => {
            return Ok(Found::Refused {
                reason: format!(
                    "{status_text}: resolve it in CloudFormation first (continue the rollback or \
                     delete the stack)"
                ),
            })
        }
    }
    let account = match account_stack(name, &stack) {
        Ok(account) => account,
        Err(err @ ProvisionError::NotAnAccountStack { .. }) => {
            return Ok(Found::Refused {
                reason: format!(
                    "{err}: it is not a kms-eth account (or its outputs are not written yet: \
                     plan again in a moment); if it is another stack, give the manifest entry \
                     another stack_name"
                ),
            })
        }
        Err(err) => return Err(err),
    };
    // The outputs are only the stack's word: the key they name must be the stack's own Key
    // resource, tagged with this stack's name, or the stack (a copy of another's outputs, a
    // stack that is not kms-eth's) is not trusted with the account.
    let resource = call(
        "DescribeStackResource",
        On::Stack(name),
        clients
            .cloudformation
            .describe_stack_resource()
            .stack_name(name)
            .logical_resource_id(KEY_LOGICAL_ID)
            .send(),
    )
    .await;
    let physical = resource
        .ok()
        .and_then(|r| r.stack_resource_detail().cloned())
        .and_then(|d| d.physical_resource_id().map(str::to_owned));
    let key = key_info(clients.kms, &account.key_id).await?;
    let own_key = physical
        .as_deref()
        .is_some_and(|id| id == account.key_id || id == account.key_arn);
    if !own_key || key.stack.as_deref() != Some(name) {
        return Ok(Found::Refused {
            reason: format!(
                "its outputs name key {} ({}), which is not its own Key resource ({}); not \
                 trusted as a kms-eth account: look at the stack in CloudFormation",
                account.key_id,
                key.stack
                    .as_deref()
                    .map_or("no kms-eth tag".to_owned(), |s| format!(
                        "tagged for stack {s}"
                    )),
                physical.as_deref().unwrap_or("none")
            ),
        });
    }
    let template = template_of(clients.cloudformation, name).await?;
    let mut changes = input_differences(&stack, spec);
    changes.extend(template_difference(&template, spec));
    let mut drift = drift(clients, &stack, &account, &key).await?;
    let template_policy = key_deletion_policy(&template);
    let deletes_key = match template_policy.as_deref() {
        Some("Retain") => false,
        Some("Delete") => true,
        // A template kms-eth did not render: assume the worst for the key.
        _ => true,
    };
    if deletes_key != (account.removal_policy == RemovalPolicy::Destroy) {
        drift.push(format!(
            "the stack says removal policy {}, but its template's DeletionPolicy for the key is \
             {} (deleting the stack would {} the key)",
            account.removal_policy,
            template_policy.as_deref().unwrap_or("not kms-eth's"),
            if deletes_key {
                "schedule the deletion of"
            } else {
                "keep"
            }
        ));
    }
    Ok(Found::Present(Box::new(Present {
        stack: account,
        key,
        changes,
        drift,
        deletes_key,
        fleet: stack
            .tags()
            .iter()
            .find(|t| t.key() == Some(crate::manifest::FLEET_TAG))
            .and_then(|t| t.value().map(str::to_owned)),
    })))
}

/// What was changed outside kms-eth: the key's state, the alias, the key policy and the
/// signer role's trust.
async fn drift(
    clients: Clients<'_>,
    stack: &Stack,
    account: &AccountStack,
    key: &KeyInfo,
) -> Result<Vec<String>, ProvisionError> {
    let mut found = Vec::new();
    match &key.state {
        KeyState::Enabled => {}
        KeyState::PendingDeletion => found.push(format!(
            "the key is pending deletion{}; `kms-eth key cancel-deletion {}` stops it",
            key.deletion_date
                .as_deref()
                .map(|d| format!(" (deleted on {d})"))
                .unwrap_or_default(),
            key.key_id
        )),
        other => found.push(format!(
            "the key is {} (kms-eth never disables a key: find out who did before enabling it)",
            other.as_str()
        )),
    }
    if !key.aliases.contains(&account.alias_name) {
        found.push(format!(
            "the alias {} does not point at the stack's key {} (it was deleted or moved to \
             another key)",
            account.alias_name, account.key_id
        ));
    }
    // ARNs are arn:PARTITION:kms:REGION:ACCOUNT:key/ID.
    let mut arn = account.key_arn.split(':');
    let partition = arn.nth(1).unwrap_or("aws");
    let region = arn.nth(1).unwrap_or_default();
    let account_id = arn.next().unwrap_or_default();
    let name = stack.stack_name().unwrap_or_default();
    let function = match (&account.function_role_arn, &account.function_arn) {
        (Some(role_arn), Some(function_arn)) => Some(FunctionNames {
            role_arn,
            function_arn,
        }),
        _ => None,
    };
    let policy = call(
        "GetKeyPolicy",
        On::Key(&account.key_id),
        clients
            .kms
            .get_key_policy()
            .key_id(&account.key_id)
            .policy_name("default")
            .send(),
    )
    .await?;
    let rendered = rendered_key_policy(partition, account_id, &account.signer_role_arn, function);
    found.extend(policy_drift(
        "key policy",
        policy.policy().unwrap_or_default(),
        &rendered,
        partition,
    ));
    found.extend(replica_drift(clients.kms, account, &rendered, partition).await?);
    let signer = ExpectedRole {
        label: "signer role",
        arn: &account.signer_role_arn,
        trust: rendered_trust_policy(&account.signer_principals),
        inline_name: "kms-eth-signer",
        inline: rendered_signer_policy(&account.key_arn),
    };
    found.extend(role_drift(clients.iam, name, &signer, partition).await?);
    let Some(function) = function else {
        return Ok(found);
    };
    let log_group = call(
        "DescribeStackResource",
        On::Stack(name),
        clients
            .cloudformation
            .describe_stack_resource()
            .stack_name(name)
            .logical_resource_id(FUNCTION_LOG_GROUP_LOGICAL_ID)
            .send(),
    )
    .await?
    .stack_resource_detail()
    .and_then(|d| d.physical_resource_id().map(str::to_owned))
    .unwrap_or_default();
    let function_role = ExpectedRole {
        label: "function role",
        arn: function.role_arn,
        trust: rendered_function_trust_policy(),
        inline_name: "kms-eth-function",
        inline: rendered_function_policy(
            &account.key_arn,
            function.function_arn,
            &format!("arn:{partition}:logs:{region}:{account_id}:log-group:{log_group}:*"),
        ),
    };
    found.extend(role_drift(clients.iam, name, &function_role, partition).await?);
    let parameter = |key: &str| {
        stack
            .parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
    };
    let expected = ExpectedFunction {
        code_sha256: parameter(PARAM_FUNCTION_CODE_KEY)
            .and_then(|key| code_sha256_of_key(&key))
            .unwrap_or_default(),
        role: function.role_arn.to_owned(),
        key_id: account.key_id.clone(),
        policy: parameter(PARAM_FUNCTION_SIGNING_POLICY),
        code_signing: parameter(PARAM_FUNCTION_SIGNING_PROFILE).is_some_and(|p| !p.is_empty()),
    };
    match clients.lambda {
        Some(lambda) => {
            let live = lambda.configuration(function.function_arn).await?;
            found.extend(function_drift(&live, &expected));
        }
        None => found.push(
            "the function could not be read (no credentials for Lambda's API): its code and \
             settings are unchecked"
                .to_owned(),
        ),
    }
    Ok(found)
}

/// A multi-Region key's replicas against its stack, each read in its own Region.
async fn replica_drift(
    kms: &aws_sdk_kms::Client,
    account: &AccountStack,
    rendered: &serde_json::Value,
    partition: &str,
) -> Result<Vec<String>, ProvisionError> {
    let regions = key_regions(kms, &account.key_arn).await?;
    let mut replicas = Vec::new();
    for (region, arn) in &regions.replicas {
        replicas.push(read_region_key(&kms_in(kms, region), region, arn, "replica").await);
    }
    Ok(replica_findings(
        account,
        regions.multi_region,
        &replicas,
        rendered,
        partition,
    ))
}

/// The drift of a key's `replicas` (read in their Regions): one in each Region the stack
/// names (`deploy --replica-region`), none elsewhere, each enabled, with the template's key
/// policy and the stack's alias.
fn replica_findings(
    account: &AccountStack,
    multi_region: bool,
    replicas: &[RegionKey],
    rendered: &serde_json::Value,
    partition: &str,
) -> Vec<String> {
    if !multi_region {
        return if account.replica_regions.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "the stack names replica Regions {} but its key is in one Region (a \
                 multi-Region key cannot be made from it: see `kms-eth deploy --replica-region`)",
                account.replica_regions.join(", ")
            )]
        };
    }
    let mut found = Vec::new();
    for asked in &account.replica_regions {
        if !replicas.iter().any(|r| &r.region == asked) {
            found.push(format!(
                "the key has no replica in {asked}, a Region the stack names (`kms-eth deploy \
                 --stack-name {}` makes it)",
                account.stack_name
            ));
        }
    }
    for replica in replicas {
        let region = &replica.region;
        if !account.replica_regions.contains(region) {
            found.push(format!(
                "the key has a replica in {region} ({}) that the stack does not name: it signs \
                 for the account too",
                replica.key_arn
            ));
        }
        match &replica.state {
            Ok(KeyState::Enabled) => {}
            Ok(state) => found.push(format!(
                "the replica in {region} is {} (the account cannot fail over to it)",
                state.as_str()
            )),
            Err(err) => {
                found.push(format!("the replica in {region} cannot be read: {err}"));
                continue;
            }
        }
        found.extend(policy_drift(
            &format!("key policy of the replica in {region}"),
            replica.policy.as_deref().unwrap_or_default(),
            rendered,
            partition,
        ));
        if !replica.aliases.contains(&account.alias_name) {
            found.push(format!(
                "the alias {} does not point at the replica in {region}",
                account.alias_name
            ));
        }
    }
    found
}

/// The kms-eth account stacks of one account and region (by the template's description),
/// from `ListStacks`: a few calls however many keys the account holds.
pub async fn account_stacks(
    client: &aws_sdk_cloudformation::Client,
) -> Result<Vec<String>, ProvisionError> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = call(
            "ListStacks",
            On::Account,
            client.list_stacks().set_next_token(token.clone()).send(),
        )
        .await?;
        for summary in page.stack_summaries() {
            let gone = summary.stack_status() == Some(&StackStatus::DeleteComplete);
            let ours = summary
                .template_description()
                .is_some_and(|d| d.starts_with(ACCOUNT_DESCRIPTION));
            if ours && !gone {
                names.extend(summary.stack_name().map(str::to_owned));
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                token = Some(next.to_owned());
            }
            _ => return Ok(names),
        }
    }
}

/// How the account template's `Description` starts (`templates/account.yaml`).
const ACCOUNT_DESCRIPTION: &str = "kms-eth Ethereum account";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_stacks_are_known_by_the_templates_description() {
        let description = kms_eth_provisioner::TEMPLATE
            .lines()
            .find_map(|l| l.strip_prefix("Description: "))
            .unwrap_or_default();
        assert!(
            description.starts_with(ACCOUNT_DESCRIPTION),
            "{description}"
        );
    }

    #[test]
    fn every_replica_region_and_each_replicas_state_policy_and_alias_are_drift() {
        let role = "arn:aws:iam::111111111111:role/signer";
        let rendered = rendered_key_policy("aws", "111111111111", role, None);
        let account = AccountStack {
            stack_name: "acct".into(),
            stack_id: String::new(),
            status: String::new(),
            key_id: "mrk-1".into(),
            key_arn: "arn:aws:kms:us-east-1:111111111111:key/mrk-1".into(),
            alias_name: "alias/acct".into(),
            signer_role_arn: role.into(),
            removal_policy: RemovalPolicy::Retain,
            pending_window_days: None,
            signer_principals: Vec::new(),
            function_arn: None,
            function_role_arn: None,
            replica_regions: vec!["eu-west-1".into(), "us-west-2".into()],
        };
        let replica = |region: &str, state: KeyState, policy: &serde_json::Value| RegionKey {
            region: region.into(),
            key_arn: format!("arn:aws:kms:{region}:111111111111:key/mrk-1"),
            role: "replica",
            state: Ok(state),
            policy: Some(policy.to_string()),
            aliases: vec!["alias/acct".into()],
        };
        let good = replica("us-west-2", KeyState::Enabled, &rendered);
        let clean = replica_findings(
            &account,
            true,
            std::slice::from_ref(&good),
            &rendered,
            "aws",
        );
        assert_eq!(clean.len(), 1, "{clean:?}");
        assert!(clean[0].contains("no replica in eu-west-1"), "{clean:?}");
        let mut widened = rendered.clone();
        widened["Statement"][1]["Principal"]["AWS"] = "*".into();
        let mut moved = replica("eu-west-1", KeyState::Disabled, &widened);
        moved.aliases.clear();
        let found = replica_findings(&account, true, &[good, moved], &rendered, "aws");
        assert!(
            found
                .iter()
                .any(|f| f.contains("replica in eu-west-1 is Disabled")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("key policy of the replica in eu-west-1")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("alias alias/acct does not point")),
            "{found:?}"
        );
        let single = replica_findings(&account, false, &[], &rendered, "aws");
        assert!(single[0].contains("in one Region"), "{single:?}");
    }
}
