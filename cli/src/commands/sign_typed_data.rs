//! `kms-eth sign-typed-data`: an EIP-712 signature of typed data, made with KMS.

use std::fmt;

use anyhow::Result;
use kms_eth_core::typed_data::{parse_typed_data, TypedDataRequest};
use kms_eth_core::UsageError;
use serde::Serialize;

use crate::flags::SignTypedDataArgs;
use crate::output::Report;
use crate::session::Session;

/// The signature and what was signed; as text, the signature and the digest.
#[derive(Debug, Serialize)]
pub struct SignTypedDataReport {
    pub address: String,
    /// The EIP-712 digest that was signed.
    pub digest: String,
    pub primary_type: String,
    /// 65 bytes, r || s || v with v 27 or 28, as eth_signTypedData_v4 answers.
    pub signature: String,
}

impl fmt::Display for SignTypedDataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "signature  {}", self.signature)?;
        write!(f, "digest     {}", self.digest)
    }
}

impl Report for SignTypedDataReport {}

impl SignTypedDataArgs {
    /// The typed data, read and hashed before any call.
    pub fn request(&self) -> Result<TypedDataRequest> {
        super::check_account(&self.account)?;
        let (field, text) = match (&self.data, &self.file) {
            (Some(text), _) => ("--data", text.clone()),
            (None, Some(path)) => (
                "FILE",
                std::fs::read_to_string(path)
                    .map_err(|err| UsageError(format!("invalid FILE {}: {err}", path.display())))?,
            ),
            (None, None) => {
                return Err(UsageError("give the typed data as FILE or --data".into()).into())
            }
        };
        parse_typed_data(field, &text)
    }

    pub async fn run(self, session: &Session) -> Result<SignTypedDataReport> {
        let request = self.request()?;
        let signer = session.signer(&self.account).await?;
        let signature = signer.sign_digest(&request.digest).await?;
        Ok(SignTypedDataReport {
            address: signer.address().to_string(),
            digest: format!("0x{}", hex::encode(request.digest)),
            primary_type: request.primary_type,
            signature: format!("0x{}", hex::encode(signature.to_rsv_bytes())),
        })
    }
}
