//! `kms-eth fleet status`: the address book of a fleet, one row per target, region and
//! account, in the manifest's order; as a table, `--json` or `--csv`.

use std::fmt;

use anyhow::Result;
use kms_eth_provisioner::fleet::Found;
use serde::Serialize;
use serde_json::json;

use super::{table, Fleet};
use crate::flags::FleetStatusArgs;
use crate::node::{parse_quantity, parse_u256, Node};
use crate::session::Session;

/// The address book.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub accounts: Vec<StatusRow>,
    /// `--csv` was asked for.
    #[serde(skip)]
    pub csv: bool,
}

/// One account of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub target: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub stack_name: String,
    pub alias: Option<String>,
    pub key_arn: Option<String>,
    /// The key's state, `absent` when there is no stack, or `unknown` when it could not be
    /// read (with `error`).
    pub key_state: String,
    pub address: Option<String>,
    /// With `--rpc-url`: the balance in wei, a decimal string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// With `--rpc-url`: the address's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const COLUMNS: [&str; 11] = [
    "target",
    "account_id",
    "region",
    "name",
    "stack_name",
    "alias",
    "key_arn",
    "key_state",
    "address",
    "balance",
    "nonce",
];

impl StatusRow {
    fn cells(&self) -> Vec<String> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            self.target.clone(),
            self.account_id.clone(),
            self.region.clone(),
            self.name.clone(),
            self.stack_name.clone(),
            text(&self.alias),
            text(&self.key_arn),
            self.key_state.clone(),
            text(&self.address),
            text(&self.balance),
            self.nonce.map(|n| n.to_string()).unwrap_or_default(),
        ]
    }
}

impl StatusReport {
    /// RFC 4180 CSV: a header line, then one line per account; a field with a comma, a
    /// quote or a line break is quoted.
    pub fn to_csv(&self) -> String {
        let field = |text: &str| {
            if text.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_owned()
            }
        };
        let mut out = COLUMNS.join(",");
        out.push('\n');
        for row in &self.accounts {
            let cells: Vec<String> = row.cells().iter().map(|c| field(c)).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_funds = self.accounts.iter().any(|r| r.balance.is_some());
        let shown = if with_funds { 11 } else { 9 };
        let header: Vec<String> = COLUMNS[..shown]
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = self
            .accounts
            .iter()
            .map(|r| r.cells()[..shown].to_vec())
            .collect();
        table(f, &header, &rows)?;
        for row in self.accounts.iter().filter(|r| r.error.is_some()) {
            writeln!(
                f,
                "{}/{}/{}: {}",
                row.target,
                row.region,
                row.name,
                row.error.as_deref().unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

impl FleetStatusArgs {
    pub async fn run(self, session: &Session) -> Result<StatusReport> {
        let fleet = Fleet::connect(session, self.manifest.load()?, None).await;
        let node = self.rpc_url.as_deref().map(Node::new).transpose()?;
        let mut accounts = Vec::new();
        for inspected in fleet.inspect_all(|_| true).await {
            let mut row = StatusRow {
                target: inspected.target.name.clone(),
                account_id: inspected.target.account_id.clone(),
                region: inspected.entry.region.clone(),
                name: inspected.entry.name.clone(),
                stack_name: inspected.entry.request.stack_name.clone(),
                alias: None,
                key_arn: None,
                key_state: "absent".into(),
                address: None,
                balance: None,
                nonce: None,
                error: None,
            };
            match inspected.found {
                Ok(Found::Present(present)) => {
                    row.alias = Some(present.stack.alias_name);
                    row.key_arn = Some(present.stack.key_arn);
                    row.key_state = present.key.state.as_str().to_owned();
                    row.address = present.key.address.map(|a| a.to_string());
                }
                Ok(Found::Absent) => {}
                Ok(Found::Busy { status }) => row.key_state = format!("unknown ({status})"),
                Ok(Found::Refused { reason }) => {
                    row.key_state = "unknown".into();
                    row.error = Some(reason);
                }
                Err(reason) => {
                    row.key_state = "unknown".into();
                    row.error = Some(reason);
                }
            }
            if let (Some(node), Some(address)) = (&node, &row.address) {
                let balance = node
                    .call("eth_getBalance", json!([address, "latest"]))
                    .await?;
                let nonce = node
                    .call("eth_getTransactionCount", json!([address, "latest"]))
                    .await?;
                row.balance = Some(parse_u256(&balance)?.to_string());
                row.nonce = Some(parse_quantity(&nonce)?);
            }
            accounts.push(row);
        }
        Ok(StatusReport {
            accounts,
            csv: self.csv,
        })
    }
}
