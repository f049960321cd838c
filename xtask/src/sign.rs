//! `cargo xtask sign`: build and sign a transaction without sending it, from flags or from an
//! event of the original design.

use anyhow::Result;
use kms_eth_signer::Signer;
use serde_json::json;
use xtask::txinputs::parse_sign_event;
use xtask::UsageError;

use crate::flags::SignArgs;
use crate::txargs::{self, TxInputs};
use crate::ui::{self, Aws};

pub fn run(args: SignArgs) -> Result<()> {
    ui::check_account(&args.account)?;
    let event = match (&args.event, &args.event_file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|err| {
            UsageError(format!("invalid --event-file {}: {err}", path.display()))
        })?),
        (None, None) => None,
    };
    // Everything is checked before KMS is called.
    let tx = match &event {
        Some(text) => match parse_sign_event(text) {
            Ok(tx) => tx,
            Err(err) => {
                // The original answered a bad event with an error object; so does this, on
                // stdout, and exits 2.
                out!(
                    "{}",
                    json!({ "operation": "sign", "error": format!("{err:#}") })
                );
                return Err(err);
            }
        },
        None => TxInputs::parse(&args.tx)?.complete()?,
    };
    ui::block_on(async {
        let aws = Aws::connect(&args.target).await?;
        let signer = ui::signer_for(&aws, &args.account).await?;
        let signed = signer.sign_transaction(tx).await?;
        if event.is_some() {
            out!(
                "{}",
                json!({
                    "signed_tx_hash": format!("0x{}", hex::encode(signed.hash)),
                    "signed_tx_payload": signed.raw_hex(),
                })
            );
        } else if args.json {
            out!("{:#}", txargs::describe(&signed, Some(signer.address())));
        } else {
            out!("raw   {}", signed.raw_hex());
            out!("hash  0x{}", hex::encode(signed.hash));
        }
        Ok(())
    })
}
