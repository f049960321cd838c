//! `cargo xtask verify`: decode a signed transaction (or an EIP-191 message signature) and
//! recover who signed it. Needs no AWS access.

use anyhow::{bail, Result};
use kms_eth_signer::{eip191_hash, recover_signer, Signature, SignedTransaction};
use serde_json::json;
use xtask::UsageError;

use crate::flags::VerifyArgs;
use crate::txargs::{self, parse_address, parse_hex};

pub fn run(args: VerifyArgs) -> Result<()> {
    let expected = args
        .address
        .as_deref()
        .map(|a| parse_address("--address", a))
        .transpose()?;
    let (signer, details) = if args.message {
        let message = message_bytes(&args.input);
        let signature = args.signature.as_deref().unwrap_or_default();
        let signature = Signature::from_rsv_bytes(&parse_hex("--signature", signature)?)
            .map_err(|err| UsageError(format!("invalid --signature: {err}")))?;
        let signer = recover_signer(&eip191_hash(&message), &signature)?;
        (
            signer,
            json!({ "signer": signer.to_string(), "message_hash": format!("0x{}", hex::encode(eip191_hash(&message))) }),
        )
    } else {
        let raw = parse_hex("raw transaction", &args.input)?;
        let signed = SignedTransaction::decode(&raw)
            .map_err(|err| UsageError(format!("invalid raw transaction: {err}")))?;
        // Recovery refuses high-s and invalid signatures: exit 1 with the reason.
        let signer = signed.recover_signer()?;
        (signer, txargs::describe(&signed, Some(signer)))
    };
    if args.json {
        out!("{details:#}");
    } else if let Some(fields) = details.as_object() {
        for (name, value) in fields {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            out!("{name:<26} {value}");
        }
    }
    if let Some(expected) = expected {
        if expected != signer {
            bail!("the signature recovers to {signer}, not to {expected}");
        }
    }
    Ok(())
}

/// A message given as 0x hex is those bytes; anything else is its UTF-8 text.
pub fn message_bytes(input: &str) -> Vec<u8> {
    input
        .strip_prefix("0x")
        .and_then(|digits| hex::decode(digits).ok())
        .unwrap_or_else(|| input.as_bytes().to_vec())
}
