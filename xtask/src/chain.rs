//! `cargo xtask chain up|down|status`: a local anvil node left running in the background.

use std::time::Duration;

use anyhow::{bail, Result};
use kms_eth_harness::anvil::{self, Anvil};
use kms_eth_harness::jsonrpc;
use serde_json::json;

use crate::flags::ChainCmd;

pub fn run(command: ChainCmd) -> Result<()> {
    let dir = anvil::service_dir();
    match command {
        ChainCmd::Up { port, timeout } => {
            let _lock = dir.lock()?;
            if let Some(record) = dir.running() {
                kms_eth_harness::say("chain", format!("already running ({})", record.handle));
                out!("{}", record.url);
                return Ok(());
            }
            let node = Anvil::start_in(&dir, port, Duration::from_secs(timeout))?;
            let chain_id = node.chain_id();
            if let Some(record) = node.detach() {
                dir.save(&record)?;
                kms_eth_harness::say(
                    "chain",
                    format!("anvil running ({}, chain id {chain_id})", record.handle),
                );
                out!("{}", record.url);
            }
            Ok(())
        }
        ChainCmd::Down => {
            let _lock = dir.lock()?;
            match dir.stop(Duration::from_secs(5))? {
                Some(record) => out!("stopped anvil ({}) at {}", record.handle, record.url),
                None => out!("anvil is not running (nothing to stop)"),
            }
            Ok(())
        }
        ChainCmd::Status => {
            let Some(record) = dir.running() else {
                bail!("anvil is not running; start it with `cargo xtask chain up`");
            };
            let chain_id = jsonrpc::call(&record.url, "eth_chainId", json!([]))
                .and_then(|id| jsonrpc::quantity(&id));
            match chain_id {
                Ok(id) => out!("anvil at {} ({}): chain id {id}", record.url, record.handle),
                Err(err) => bail!(
                    "anvil ({}) at {} does not answer: {err:#}",
                    record.handle,
                    record.url
                ),
            }
            Ok(())
        }
    }
}
