//! CloudFormation stacks that hold one kms-eth account (a secp256k1 KMS key, its alias and
//! a least-privilege signer role), and the key's life cycle after that.
//!
//! Returns plain data and reports progress through a callback; it prints nothing, so the
//! command line decides how things are shown.

mod account;
mod error;
mod keys;
mod stack;

pub use account::{
    validate_stack_name, AccountSpec, RemovalPolicy, SpecError, PENDING_WINDOW_DAYS, TEMPLATE,
};
pub use error::ProvisionError;
pub use keys::{cancel_deletion, key_info, list_accounts, schedule_deletion, KeyInfo, ACCOUNT_TAG};
pub use stack::{
    delete_account, deploy, describe_account, AccountStack, DeployAction, DeployOptions,
    PlannedChange, Progress, StackEvent, KEY_LOGICAL_ID,
};
pub use stack::{stack_parameters, stack_tags};
