//! `kms-eth verify`: decode a signed transaction (or an EIP-191 message signature) and
//! recover who signed it. Needs no AWS access.

use std::fmt;

use anyhow::{bail, Result};
use kms_eth_core::UsageError;
use kms_eth_signer::{eip191_hash, recover_signer, Signature, SignedTransaction};
use serde::Serialize;

use crate::flags::VerifyArgs;
use crate::output::{field_lines, Report};
use crate::txreport::{parse_address, parse_hex, TransactionReport};

/// Who signed, and every field of what was signed.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum VerifyReport {
    /// A signed transaction.
    Transaction(Box<TransactionReport>),
    /// An EIP-191 message signature.
    Message {
        /// The address the signature recovers to.
        signer: String,
        /// The EIP-191 hash that was signed.
        message_hash: String,
    },
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        field_lines(self, f)
    }
}

impl Report for VerifyReport {}

impl VerifyArgs {
    pub fn run(self) -> Result<VerifyReport> {
        let expected = self
            .address
            .as_deref()
            .map(|a| parse_address("--address", a))
            .transpose()?;
        let (signer, report) = if self.message {
            let message = message_bytes(&self.input);
            let signature = self.signature.as_deref().unwrap_or_default();
            let signature = Signature::from_rsv_bytes(&parse_hex("--signature", signature)?)
                .map_err(|err| UsageError(format!("invalid --signature: {err}")))?;
            let hash = eip191_hash(&message);
            let signer = recover_signer(&hash, &signature)?;
            (
                signer,
                VerifyReport::Message {
                    signer: signer.to_string(),
                    message_hash: format!("0x{}", hex::encode(hash)),
                },
            )
        } else {
            let raw = parse_hex("raw transaction", &self.input)?;
            let signed = SignedTransaction::decode(&raw)
                .map_err(|err| UsageError(format!("invalid raw transaction: {err}")))?;
            // Recovery refuses high-s and invalid signatures: exit 1 with the reason.
            let signer = signed.recover_signer()?;
            (
                signer,
                VerifyReport::Transaction(Box::new(TransactionReport::new(&signed, Some(signer)))),
            )
        };
        if let Some(expected) = expected {
            if expected != signer {
                bail!("the signature recovers to {signer}, not to {expected}");
            }
        }
        Ok(report)
    }
}

/// A message given as 0x hex is those bytes; anything else is its UTF-8 text.
pub fn message_bytes(input: &str) -> Vec<u8> {
    input
        .strip_prefix("0x")
        .and_then(|digits| hex::decode(digits).ok())
        .unwrap_or_else(|| input.as_bytes().to_vec())
}
