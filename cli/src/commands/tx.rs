//! `kms-eth tx status|speed-up|cancel`: the operator's controls of the transactions a
//! running `kms-eth serve` sent, asked of that service (`kmseth_txStatus`, `kmseth_speedUp`,
//! `kmseth_cancel`): it tracks them, holds the keys' policy and signs the replacements.

use std::fmt;

use anyhow::{Context, Result};
use kms_eth_core::UsageError;
use serde::Serialize;
use serde_json::{json, Value};

use crate::commands::send::OutcomeUnknown;
use crate::flags::{TxCmd, TxTarget};
use crate::output::{field_lines, Report};

/// What the service answered.
#[derive(Debug, Serialize)]
pub struct TxReport {
    /// `pending`, `stuck`, `mined` or `replaced` (status); `replaced` (speed-up, cancel).
    pub status: String,
    pub address: String,
    pub nonce: u64,
    /// The new transaction's hash (speed-up, cancel), else the latest version's.
    pub hash: Option<String>,
    /// Every version the service broadcast at this nonce, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mined_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// Why the tracker could not replace it (`stuck`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl fmt::Display for TxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        field_lines(self, f)
    }
}

impl Report for TxReport {}

impl TxCmd {
    /// Checks the flags before anything is called.
    pub fn check(&self) -> Result<()> {
        let target = self.target();
        if let Some(hash) = &target.hash {
            kms_eth_core::txinputs::parse_tx_hash("HASH", hash)?;
        }
        kms_eth_node::Node::new(&target.url)
            .map_err(|err| UsageError(format!("{err}").replace("--rpc-url", "--url")))?;
        token(target)?;
        Ok(())
    }

    fn target(&self) -> &TxTarget {
        match self {
            TxCmd::Status(target)
            | TxCmd::SpeedUp { target, .. }
            | TxCmd::Cancel { target, .. } => target,
        }
    }

    /// Asks the service.
    pub async fn run(&self) -> Result<TxReport> {
        let target = self.target();
        let token = token(target)?;
        let which = match (&target.hash, target.nonce) {
            (Some(hash), _) => json!(hash),
            (None, Some(nonce)) => {
                let from = match target.from {
                    Some(from) => from.to_string(),
                    None => only_account(target, token.as_deref()).await?,
                };
                json!({ "from": from, "nonce": format!("{nonce:#x}") })
            }
            (None, None) => return Err(UsageError("give HASH or --nonce".to_owned()).into()),
        };
        let (method, params) = match self {
            TxCmd::Status(_) => ("kmseth_txStatus", json!([which])),
            TxCmd::SpeedUp { bump, .. } => ("kmseth_speedUp", with_bump(which, *bump)),
            TxCmd::Cancel { bump, .. } => ("kmseth_cancel", with_bump(which, *bump)),
        };
        let answer = call(target, token.as_deref(), method, params).await?;
        Ok(report(self, &answer))
    }
}

fn with_bump(which: Value, bump: Option<f64>) -> Value {
    match bump {
        Some(bump) => json!([which, { "bump": bump }]),
        None => json!([which]),
    }
}

fn report(command: &TxCmd, answer: &Value) -> TxReport {
    let text = |name: &str| answer[name].as_str().map(str::to_owned);
    let replaced = !matches!(command, TxCmd::Status(_));
    TxReport {
        status: if replaced {
            "replaced".to_owned()
        } else {
            text("status").unwrap_or_default()
        },
        address: text("from").unwrap_or_default(),
        nonce: answer["nonce"].as_u64().unwrap_or_default(),
        hash: if replaced {
            text("hash")
        } else {
            text("latest").or(text("mined"))
        },
        hashes: answer["hashes"]
            .as_array()
            .map(|hashes| {
                hashes
                    .iter()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        mined_hash: text("mined"),
        block: answer["block"].as_u64(),
        reason: text("stuck"),
    }
}

fn token(target: &TxTarget) -> Result<Option<String>> {
    let Some(path) = &target.auth_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        UsageError(format!(
            "invalid --auth-token-file {}: {err}",
            path.display()
        ))
    })?;
    Ok(Some(text.trim().to_owned()))
}

/// The service's one account, for `--nonce` without `--from`.
async fn only_account(target: &TxTarget, token: Option<&str>) -> Result<String> {
    let accounts = call(target, token, "eth_accounts", json!([])).await?;
    match accounts.as_array().map(Vec::as_slice) {
        Some([only]) => Ok(only.as_str().unwrap_or_default().to_owned()),
        _ => Err(UsageError(format!(
            "the service has several accounts ({accounts}): say which with --from"
        ))
        .into()),
    }
}

/// One JSON-RPC call to the service; its error told as the CLI's exit codes tell it.
async fn call(
    target: &TxTarget,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> Result<Value> {
    let url = target.url.clone();
    let token = token.map(str::to_owned);
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let shown = kms_eth_node::Node::new(&url)?.shown().to_owned();
    let reply: Value = tokio::task::spawn_blocking(move || -> Result<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into();
        let mut request = agent.post(&url);
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request
            .send_json(&body)
            .map_err(|err| anyhow::anyhow!("cannot reach kms-eth serve at {shown}: {err}"))?;
        let status = response.status();
        response.body_mut().read_json().with_context(|| {
            format!("kms-eth serve at {shown} answered HTTP {status} and no JSON-RPC reply")
        })
    })
    .await
    .context("the call to the service was interrupted")??;
    if let Some(error) = reply.get("error") {
        let message = error["message"].as_str().unwrap_or("no message").to_owned();
        if error["data"]["outcome"] == "unknown" {
            return Err(OutcomeUnknown {
                hash: error["data"]["hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                nonce: error["data"]["nonce"].as_u64().unwrap_or_default(),
                from: error["data"]["from"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(kms_eth_signer::Address([0; 20])),
                reason: message,
            }
            .into());
        }
        return Err(match error["code"].as_i64() {
            Some(-32602) => UsageError(message).into(),
            _ => anyhow::anyhow!("kms-eth serve refused {method}: {message}"),
        });
    }
    Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}
