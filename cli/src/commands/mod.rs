//! The account commands, one module each. Every command is `async fn run(self, &Session)`
//! (or without a session, for `verify`, which needs no AWS) returning a typed report that
//! `output::emit` prints as text or JSON.

pub mod deploy;
pub mod destroy;
pub mod funds;
pub mod key;
pub mod localstack;
pub mod send;
pub mod sign;
pub mod sign_message;
pub mod sign_typed_data;
pub mod status;
pub mod verify;

use kms_eth_core::UsageError;

use crate::flags::AccountArgs;

/// Checks the account flags before any call (a stack name must be a valid one).
pub fn check_account(account: &AccountArgs) -> anyhow::Result<()> {
    if let Some(stack) = &account.key.stack_name {
        kms_eth_provisioner::validate_stack_name(stack)
            .map_err(|err| UsageError(err.to_string()))?;
    }
    Ok(())
}
