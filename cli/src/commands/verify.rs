//! `kms-eth verify`: decode a signed transaction (or an EIP-191 message signature) and
//! recover who signed it; a blob transaction's sidecar is checked against it (versioned
//! hashes, KZG proofs). Needs no AWS access.

use std::fmt;

use anyhow::{bail, Context, Result};
use kms_eth_core::UsageError;
use kms_eth_signer::{
    eip191_hash, recover_signer, Eip4844Tx, Signature, SignedTransaction, Transaction,
};
use serde::Serialize;

use kms_eth_core::txinputs::parse_authorization;
use kms_eth_core::typed_data::parse_typed_data;

use crate::flags::VerifyArgs;
use crate::output::{field_lines, Report};
use crate::txreport::{parse_address, parse_hex, TransactionReport};

/// Who signed, and every field of what was signed.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum VerifyReport {
    /// A signed transaction.
    Transaction(Box<TransactionReport>),
    /// An EIP-712 typed data signature, or a signed EIP-7702 authorization.
    TypedData {
        /// The address the signature recovers to.
        signer: String,
        /// The EIP-712 digest that was signed.
        digest: String,
    },
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
        if self.signature.is_some() && !self.message && self.typed_data.is_none() {
            return Err(UsageError(
                "--signature needs --message (an EIP-191 message) or --typed-data (EIP-712)".into(),
            )
            .into());
        }
        let input = match &self.raw_file {
            Some(path) => read_raw_file(path)?,
            None => self.input.clone().unwrap_or_default(),
        };
        let (signer, report) = if let Some(text) = &self.authorization {
            let signed = parse_authorization("--authorization", text)?;
            let signer = signed.recover_authority()?;
            (
                signer,
                VerifyReport::TypedData {
                    signer: signer.to_string(),
                    digest: format!("0x{}", hex::encode(signed.authorization.signing_hash())),
                },
            )
        } else if let Some(path) = &self.typed_data {
            let text = std::fs::read_to_string(path).map_err(|err| {
                UsageError(format!("invalid --typed-data {}: {err}", path.display()))
            })?;
            let request = parse_typed_data("--typed-data", &text)?;
            let signer = recover_signer(&request.digest, &self.signature()?)?;
            (
                signer,
                VerifyReport::TypedData {
                    signer: signer.to_string(),
                    digest: format!("0x{}", hex::encode(request.digest)),
                },
            )
        } else if self.message {
            let message = message_bytes(&input, self.hex)?;
            let signature = self.signature()?;
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
            let raw = parse_hex("raw transaction", &input)?;
            let signed = SignedTransaction::decode(&raw)
                .map_err(|err| UsageError(format!("invalid raw transaction: {err}")))?;
            // Recovery refuses high-s and invalid signatures: exit 1 with the reason.
            let signer = signed.recover_signer()?;
            // The network form of a blob transaction: its sidecar must be the one the
            // transaction commits to (versioned hashes) and its KZG proofs must verify.
            if let Transaction::Eip4844(Eip4844Tx {
                sidecar: Some(sidecar),
                blob_versioned_hashes,
                ..
            }) = &signed.tx
            {
                sidecar
                    .check_against(blob_versioned_hashes)
                    .context("the blob sidecar does not belong to the transaction")?;
            }
            self.check_replay_protection(signed.tx.chain_id())?;
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

impl VerifyArgs {
    /// `--signature`, 65 bytes r || s || v.
    fn signature(&self) -> Result<Signature> {
        let text = self.signature.as_deref().unwrap_or_default();
        Ok(Signature::from_rsv_bytes(&parse_hex("--signature", text)?)
            .map_err(|err| UsageError(format!("invalid --signature: {err}")))?)
    }

    /// A transaction without a chain id (legacy, before EIP-155) or with chain id 0 is
    /// valid on every chain: whoever has it can replay it anywhere the sender has funds.
    /// It verifies only when explicitly allowed, and `--chain-id` pins the one expected.
    fn check_replay_protection(&self, chain_id: Option<u64>) -> Result<()> {
        match (chain_id, self.chain_id) {
            (None | Some(0), _) if !self.allow_unprotected => bail!(
                "the transaction is valid on every chain ({}): anyone can replay it wherever \
                 its sender has funds; pass --allow-unprotected to accept it",
                match chain_id {
                    None => "a legacy transaction without an EIP-155 chain id",
                    Some(_) => "chain id 0",
                }
            ),
            (Some(got), Some(expected)) if got != expected => {
                bail!("the transaction is for chain {got}, not --chain-id {expected}")
            }
            (None, Some(expected)) => {
                bail!("the transaction has no chain id, not --chain-id {expected}")
            }
            _ => Ok(()),
        }
    }
}

/// `--raw-file`: the hex text of a file, or of standard input for `-`, trimmed.
fn read_raw_file(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    // The largest network form: 9 blobs of 128 KiB with 128 cell proofs each, as hex, with
    // room to spare. A bigger input is not a transaction, and is not read into memory.
    const MAX_RAW_FILE_BYTES: u64 = 8 * 1024 * 1024;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_RAW_FILE_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_RAW_FILE_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(|err| UsageError(format!("invalid --raw-file {}: {err}", path.display())))?;
    if text.len() as u64 > MAX_RAW_FILE_BYTES {
        return Err(UsageError(format!(
            "invalid --raw-file {}: more than {MAX_RAW_FILE_BYTES} bytes, larger than any signed \
             transaction's network form",
            path.display()
        ))
        .into());
    }
    Ok(text.trim().to_owned())
}

/// A message's bytes: its UTF-8 text, or with `hex` the bytes its 0x hex spells. Text that
/// looks like hex is still text (signing it as bytes when the user meant text, or the other
/// way round, gives a signature for something else); a note says how to sign the bytes.
pub fn message_bytes(input: &str, hex: bool) -> Result<Vec<u8>> {
    if hex {
        return parse_hex("MESSAGE (with --hex)", input);
    }
    let looks_like_hex = input
        .strip_prefix("0x")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()));
    if looks_like_hex {
        crate::msg::note(format!(
            "{input:?} is taken as text (its UTF-8 bytes); pass --hex to use the bytes it spells"
        ));
    }
    Ok(input.as_bytes().to_vec())
}
