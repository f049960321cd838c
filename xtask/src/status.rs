//! `cargo xtask status`: an account's key, state, alias and address.

use anyhow::Result;
use kms_eth_provisioner::key_info;
use serde_json::{json, Value};
use xtask::UsageError;

use crate::flags::StatusArgs;
use crate::ui::{self, Aws};

pub fn run(args: StatusArgs) -> Result<()> {
    ui::check_account(&args.account)?;
    if let Some(event) = &args.event {
        let event: Value = serde_json::from_str(event)
            .map_err(|err| UsageError(format!("invalid --event: {err}")))?;
        let fields = event
            .as_object()
            .ok_or_else(|| UsageError("invalid --event: not a JSON object".into()))?;
        if fields.get("operation").and_then(Value::as_str) != Some("status") {
            return Err(UsageError(
                "invalid --event: status answers {\"operation\":\"status\"}".into(),
            )
            .into());
        }
        if let Some(unknown) = fields.keys().find(|k| *k != "operation") {
            return Err(UsageError(format!("invalid --event: unknown field {unknown:?}")).into());
        }
    }
    ui::block_on(async {
        let aws = Aws::connect(&args.target).await?;
        let signer = ui::signer_for(&aws, &args.account).await?;
        let address = signer.address().to_string();
        if args.event.is_some() {
            // The original operation's answer, exactly.
            out!("{}", json!({ "eth_checksum_address": address }));
            return Ok(());
        }
        let info = key_info(&aws.kms(), signer.key_arn())
            .await
            .map_err(ui::classify)?;
        if args.json {
            out!(
                "{:#}",
                json!({
                    "key_id": info.key_id,
                    "key_arn": info.arn,
                    "state": info.state.as_str(),
                    "alias": info.alias,
                    "stack": info.stack,
                    "eth_checksum_address": address,
                })
            );
        } else {
            out!("key id   {}", info.key_id);
            out!("state    {}", info.state.as_str());
            out!("alias    {}", info.alias.as_deref().unwrap_or("-"));
            out!("address  {address}");
        }
        Ok(())
    })
}
