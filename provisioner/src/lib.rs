//! CloudFormation stacks that hold one kms-eth account (a secp256k1 KMS key, its alias and
//! a least-privilege signer role), and the key's life cycle after that.
//!
//! Returns plain data and reports progress through a callback; it prints nothing, so the
//! command line decides how things are shown. The fleet (`kms-eth-fleet`) builds on it: its
//! reading of a stack uses the stack reads and the logged `call` exported here.

mod account;
mod assets;
mod bucket;
mod call;
mod changeset;
mod error;
mod events;
mod function;
mod import;
mod keys;
mod lambda;
mod material;
mod next_step;
mod redeploy;
mod replicas;
mod rest;
mod stack;
mod template;

pub use account::{
    caller_principal, validate_signer_principal, validate_stack_name, AccountSpec, RemovalPolicy,
    SpecError, DEFAULT_PENDING_WINDOW_DAYS, PENDING_WINDOW_DAYS,
};
pub use assets::{bucket_name, object_key, Asset, AssetStore};
pub use call::{call, On};
pub use changeset::PlannedChange;
pub use error::ProvisionError;
pub use events::{Progress, StackEvent};
pub use function::{
    function_arn, function_name, validate_signing_profile, FunctionArch, FunctionMode,
    FunctionPolicy, FunctionSpec, FUNCTION_LOGICAL_ID, FUNCTION_LOG_GROUP_LOGICAL_ID,
    FUNCTION_ROLE_LOGICAL_ID, FUNCTION_ROLE_POLICY_LOGICAL_ID, MAX_SIGNING_POLICY_BYTES,
    OUTPUT_FUNCTION_ARN, OUTPUT_FUNCTION_ROLE_ARN, PARAM_FUNCTION_ARCHITECTURE,
    PARAM_FUNCTION_CODE_BUCKET, PARAM_FUNCTION_CODE_KEY, PARAM_FUNCTION_CODE_VERSION,
    PARAM_FUNCTION_NAME, PARAM_FUNCTION_SIGNING_POLICY, PARAM_FUNCTION_SIGNING_PROFILE,
};
pub use import::{
    alias_target, create_alias, create_external_key, import_material, replicate_key, retire,
    ImportedKey, NewImportedKey, WRAPPING_ALGORITHM, WRAPPING_KEY_SPEC,
};
pub use keys::{
    cancel_deletion, key_info, key_state, list_accounts, schedule_deletion, tagged_keys, KeyInfo,
};
pub use lambda::{
    check_deployed_code, code_sha256, code_sha256_of_key, function_drift, ExpectedFunction,
    FunctionConfig, LambdaReader,
};
pub use material::{from_keystore, from_text, ImportMaterial, MaterialError};
pub use next_step::{next_step, NextStep};
pub use redeploy::{
    guarded_changes, needs_default_principals, resolve, split_principals, AccountRequest,
    CurrentInputs, GuardedChange,
};
pub use replicas::{
    ensure_replicas, key_regions, kms_in, read_region_key, region_keys, same_policy, KeyRegions,
    RegionKey, ReplicaOutcome,
};
pub use stack::{
    account_stack, current_inputs, delete_account, deploy, describe_account, describe_stack,
    input_differences, key_deletion_policy, template_difference, template_of, AccountStack,
    DeployAction, DeployOptions, Difference,
};
pub use template::{
    render, render_with_replicas, stack_parameters, stack_tags, ACCOUNT_TAG, ALIAS_LOGICAL_ID,
    FUNCTION_TEMPLATE, KEY_LOGICAL_ID, OUTPUT_ALIAS_NAME, OUTPUT_KEY_ARN, OUTPUT_KEY_ID,
    OUTPUT_REMOVAL_POLICY, OUTPUT_SIGNER_ROLE_ARN, PARAM_ALIAS_NAME, PARAM_PENDING_WINDOW_IN_DAYS,
    PARAM_REMOVAL_POLICY, PARAM_REPLICA_REGIONS, PARAM_SIGNER_PRINCIPALS, REMOVAL_POLICY_TAG,
    SIGNER_POLICY_LOGICAL_ID, SIGNER_ROLE_LOGICAL_ID, TEMPLATE,
};
