//! The function's entry point: JSON logs, the cold start, then the Lambda runtime loop.

use std::sync::Arc;

use kms_eth_lambda::Handler;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let config = aws_config::load_from_env().await;
    let handler = match Handler::cold_start(aws_sdk_kms::Client::new(&config), |name| {
        std::env::var(name).ok()
    })
    .await
    {
        Ok(handler) => handler,
        Err(err) => {
            // One JSON line with the whole cause, then exit 1: Lambda reports the failed
            // init and keeps this line in the function's log (no panic, no backtrace).
            tracing::error!(error = %format!("{err:#}"), "cold start failed");
            std::process::exit(1);
        }
    };
    let handler = Arc::new(handler);
    // The event arrives as its raw JSON text: a `Value` would already have read amounts
    // through a float.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let handler = handler.clone();
        async move {
            let request_id = event.context.request_id.clone();
            Ok::<_, Error>(handler.answer(event.payload.get(), Some(&request_id)).await)
        }
    }))
    .await
}

/// One JSON object per line, as CloudWatch Logs Insights reads them. `RUST_LOG` overrides
/// the default: the handler's audit lines and one line per KMS call.
fn init_logs() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("kms_eth_lambda", tracing::Level::INFO)
                .with_target("kms_eth_signer", tracing::Level::DEBUG)
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_ansi(false),
        )
        .with(filter)
        .init();
}
