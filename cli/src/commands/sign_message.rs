//! `kms-eth sign-message`: an EIP-191 `personal_sign` signature made with KMS.

use std::fmt;

use anyhow::Result;
use kms_eth_signer::Signer;
use serde::Serialize;

use crate::commands::verify::message_bytes;
use crate::flags::SignMessageArgs;
use crate::output::Report;
use crate::session::Session;

/// The signature; as text, only the 65-byte signature (what `cast wallet verify` takes).
#[derive(Debug, Serialize)]
pub struct SignMessageReport {
    pub address: String,
    pub message: String,
    pub signature: String,
}

impl fmt::Display for SignMessageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.signature)
    }
}

impl Report for SignMessageReport {}

impl SignMessageArgs {
    /// Checks the flags before any call: the account, and the message's hex with --hex.
    pub fn check(&self) -> Result<()> {
        super::check_account(&self.account)?;
        if self.hex {
            message_bytes(&self.message, true)?;
        }
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<SignMessageReport> {
        let message = message_bytes(&self.message, self.hex)?;
        let signer = session.signer(&self.account).await?;
        let signature = signer.sign_message(&message).await?;
        Ok(SignMessageReport {
            address: signer.address().to_string(),
            message: self.message,
            signature: format!("0x{}", hex::encode(signature.to_rsv_bytes())),
        })
    }
}
