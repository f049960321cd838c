//! The account commands, one module each. Every command is `async fn run(self, &Session)`
//! (or without a session, for `verify`, which needs no AWS) returning a typed report that
//! `output::emit` prints as text or JSON.

pub mod deploy;
pub mod destroy;
pub mod fleet;
pub mod funds;
pub mod import;
pub mod key;
pub mod localstack;
pub mod migrate;
pub mod regions;
pub mod send;
pub mod serve;
pub mod sign;
pub mod sign_authorization;
pub mod sign_message;
pub mod sign_typed_data;
pub mod status;
pub mod tx;
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

/// `--delegate`: the sender signs its own EIP-7702 authorization to `delegate` and adds it
/// to `inputs`. EIP-7702 increments the sender's nonce for the transaction before it
/// applies the authorizations, so a self-sponsored authorization takes the transaction's
/// nonce + 1: computed here, never left to the user to guess.
pub async fn delegate_self(
    signer: &kms_eth_signer::KmsSigner,
    inputs: &mut kms_eth_core::txinputs::TxInputs,
    delegate: kms_eth_signer::Address,
) -> anyhow::Result<()> {
    use kms_eth_signer::Signer;
    let authorization = self_authorization(inputs, delegate)?;
    inputs
        .authorizations
        .push(signer.sign_authorization(authorization).await?);
    Ok(())
}

fn self_authorization(
    inputs: &kms_eth_core::txinputs::TxInputs,
    delegate: kms_eth_signer::Address,
) -> anyhow::Result<kms_eth_signer::Authorization> {
    let bad = kms_eth_core::txinputs::bad;
    let chain_id = inputs.chain_id.ok_or_else(|| {
        bad(
            "--chain-id",
            "missing: the delegation is for the transaction's chain",
        )
    })?;
    let nonce = inputs.nonce.ok_or_else(|| {
        bad(
            "--nonce",
            "missing: the delegation's nonce follows the transaction's",
        )
    })?;
    Ok(kms_eth_signer::Authorization {
        chain_id,
        address: delegate,
        nonce: nonce
            .checked_add(1)
            .ok_or_else(|| bad("--nonce", "no nonce follows it"))?,
    })
}

/// `inputs` with a placeholder for the `--delegate` authorization that is signed later, so
/// that everything else can be checked complete before any call.
pub fn with_placeholder_delegation(
    mut inputs: kms_eth_core::txinputs::TxInputs,
    delegate: Option<kms_eth_signer::Address>,
) -> anyhow::Result<kms_eth_core::txinputs::TxInputs> {
    if let Some(delegate) = delegate {
        let authorization = self_authorization(&inputs, delegate)?;
        inputs
            .authorizations
            .push(authorization.into_signed(kms_eth_signer::Signature {
                y_parity: false,
                r: [0; 32],
                s: [0; 32],
            }));
    }
    Ok(inputs)
}
