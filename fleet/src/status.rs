//! `fleet status`: the address book of a fleet, one row per target, region and account, in
//! the manifest's order, with each address's balance and nonce when a node is given; as a
//! table (`Display`), JSON (`Serialize`) or CSV (`to_csv`).

use std::fmt;

use anyhow::Result;
use kms_eth_node::{parse_quantity, parse_u256, Node};
use serde::Serialize;
use serde_json::json;

use crate::inspect::Found;
use crate::table::table;
use crate::{Fleet, Verdict};

/// The address book.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub accounts: Vec<StatusRow>,
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
    /// What was changed outside kms-eth (as `fleet plan` finds it): a row with drift is
    /// not to be trusted as it reads (an alias re-pointed signs with another key).
    pub drift: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const COLUMNS: [&str; 12] = [
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
    "drift",
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
            self.drift.join("; "),
        ]
    }
}

impl StatusReport {
    /// Failed if a row could not be read; else needs attention if a row has drift (the book
    /// does not say what signing through that alias does); else clean.
    pub fn verdict(&self) -> Verdict {
        if self.accounts.iter().any(|r| r.error.is_some()) {
            Verdict::Failed
        } else if self.accounts.iter().any(|r| !r.drift.is_empty()) {
            Verdict::NeedsAttention
        } else {
            Verdict::Clean
        }
    }

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
        // The balance and nonce columns only when asked for; drift always.
        let with_funds = self.accounts.iter().any(|r| r.balance.is_some());
        let shown: Vec<usize> = (0..COLUMNS.len())
            .filter(|&i| with_funds || !matches!(COLUMNS[i], "balance" | "nonce"))
            .collect();
        let header: Vec<String> = shown
            .iter()
            .map(|&i| COLUMNS[i].to_ascii_uppercase())
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = self
            .accounts
            .iter()
            .map(|r| {
                let cells = r.cells();
                shown.iter().map(|&i| cells[i].clone()).collect()
            })
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

/// The balance (wei, decimal) and nonce of `address` on `node`.
async fn funds(node: &Node, address: &str) -> Result<(String, u64)> {
    let balance = node
        .call("eth_getBalance", json!([address, "latest"]))
        .await?;
    let nonce = node
        .call("eth_getTransactionCount", json!([address, "latest"]))
        .await?;
    Ok((parse_u256(&balance)?.to_string(), parse_quantity(&nonce)?))
}

/// The address book of `fleet`; with `node`, each address's balance and nonce there.
pub async fn status(fleet: &Fleet, node: Option<&Node>) -> StatusReport {
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
            drift: Vec::new(),
            error: None,
        };
        match inspected.found {
            Ok(Found::Present(present)) => {
                row.alias = Some(present.stack.alias_name);
                row.key_arn = Some(present.stack.key_arn);
                row.key_state = present.key.state.as_str().to_owned();
                row.address = present.key.address.map(|a| a.to_string());
                row.drift = present.drift;
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
        if let (Some(node), Some(address)) = (node, &row.address) {
            // A node that fails leaves this row without funds, and says why, rather than
            // throwing the whole book away.
            match funds(node, address).await {
                Ok((balance, nonce)) => {
                    row.balance = Some(balance);
                    row.nonce = Some(nonce);
                }
                Err(err) => row.error = Some(format!("{err:#}")),
            }
        }
        accounts.push(row);
    }
    StatusReport { accounts }
}
