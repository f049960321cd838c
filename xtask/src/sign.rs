//! `cargo xtask sign`: build and sign a transaction without sending it, from flags or from an
//! event of the original design.

use anyhow::Result;
use kms_eth_signer::{parse_amount, Signer, Transaction};
use serde_json::{json, Map, Value};
use xtask::UsageError;

use crate::flags::SignArgs;
use crate::txargs::{self, bad, Kind, TxInputs};
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
        Some(text) => match from_event(text) {
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

/// The original sign event: amount (ether), dst_address, nonce, plus chain id, type, gas and
/// fee fields. Unknown fields are refused: a misspelt field would otherwise be ignored.
fn from_event(text: &str) -> Result<Transaction> {
    let event: Value = serde_json::from_str(text).map_err(|err| bad("event", err))?;
    let fields: &Map<String, Value> = event
        .as_object()
        .ok_or_else(|| bad("event", "not a JSON object"))?;
    const KNOWN: [&str; 13] = [
        "operation",
        "amount",
        "dst_address",
        "nonce",
        "chain_id",
        "chainid",
        "type",
        "gas",
        "gas_limit",
        "max_fee_per_gas",
        "max_priority_fee_per_gas",
        "gas_price",
        "data",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad("event", format!("unknown field {unknown:?}")));
    }
    if fields.get("operation").and_then(Value::as_str) != Some("sign") {
        return Err(bad(
            "event operation",
            "sign answers {\"operation\":\"sign\", ...}",
        ));
    }
    // Numbers may be JSON numbers or strings; both are read as exact decimal text.
    let text_of = |name: &str| -> Option<String> {
        fields.get(name).and_then(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
    };
    let require = |name: &str| {
        text_of(name).ok_or_else(|| {
            bad(
                name,
                "missing parameter - sign requires amount, dst_address and nonce to be specified",
            )
        })
    };
    let amount = require("amount")?;
    let value = parse_amount(&format!("{amount}ether")).map_err(|err| bad("amount", err))?;
    let chain_id = text_of("chain_id").or_else(|| text_of("chainid"));
    let wei = |name: &str| {
        text_of(name)
            .map(|v| txargs::parse_wei(name, &v))
            .transpose()
    };
    let inputs = TxInputs {
        kind: text_of("type").map_or(Ok(Kind::Eip1559), |t| txargs::parse_kind("type", &t))?,
        to: Some(txargs::parse_address(
            "dst_address",
            &require("dst_address")?,
        )?),
        value,
        nonce: Some(txargs::parse_u64("nonce", &require("nonce")?)?),
        chain_id: chain_id
            .map(|c| txargs::parse_u64("chain_id", &c))
            .transpose()?,
        // The original used a fixed gas limit of 160000 when none was given.
        gas_limit: Some(
            text_of("gas_limit")
                .or_else(|| text_of("gas"))
                .map_or(Ok(160_000), |g| txargs::parse_u64("gas_limit", &g))?,
        ),
        max_fee_per_gas: wei("max_fee_per_gas")?,
        max_priority_fee_per_gas: wei("max_priority_fee_per_gas")?,
        gas_price: wei("gas_price")?,
        data: text_of("data")
            .map(|d| txargs::parse_hex("data", &d))
            .transpose()?
            .unwrap_or_default(),
        access_list: Vec::new(),
    };
    inputs.check()?;
    if inputs.chain_id.is_none() {
        return Err(bad(
            "chain_id",
            "missing; a transaction without a chain id can be replayed on any chain",
        ));
    }
    inputs.complete().map_err(|err| bad("event", err))
}
