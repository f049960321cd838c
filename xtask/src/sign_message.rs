//! `cargo xtask sign-message`: an EIP-191 `personal_sign` signature made with KMS.

use anyhow::Result;
use kms_eth_signer::Signer;
use serde_json::json;

use crate::flags::SignMessageArgs;
use crate::ui::{self, Aws};
use crate::verify::message_bytes;

pub fn run(args: SignMessageArgs) -> Result<()> {
    ui::check_account(&args.account)?;
    let message = message_bytes(&args.message);
    ui::block_on(async {
        let aws = Aws::connect(&args.target).await?;
        let signer = ui::signer_for(&aws, &args.account).await?;
        let signature = signer.sign_message(&message).await?;
        let hex_signature = format!("0x{}", hex::encode(signature.to_rsv_bytes()));
        if args.json {
            out!(
                "{:#}",
                json!({ "address": signer.address().to_string(), "message": args.message, "signature": hex_signature })
            );
        } else {
            out!("{hex_signature}");
        }
        Ok(())
    })
}
