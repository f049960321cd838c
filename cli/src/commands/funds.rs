//! The look at an address's funds before its key's deletion is scheduled (`destroy` of a
//! DESTROY stack, `key schedule-deletion`): every node given is asked its chain id, the
//! address's native balance and its nonce, and an address that holds ether or has ever
//! sent a transaction is refused unless forced. The check is never implicit: without
//! `--rpc-url` it must be skipped out loud with `--skip-balance-check`.

use std::fmt;

use anyhow::{bail, Context, Result};
use kms_eth_core::UsageError;
use kms_eth_signer::{format_ether, Address, U256};
use serde::Serialize;
use serde_json::json;

use crate::flags::FundsCheckArgs;
use crate::msg;
use kms_eth_node::{parse_quantity, parse_u256, Node};

/// What no check here can see, said in every report: a zero native balance on the chains
/// given says nothing about token balances or about any other chain.
pub const NOT_CHECKED: &str =
    "tokens (ERC-20 and other contract balances) and chains not given with --rpc-url were not checked";

/// What the funds check looked at and found (`balance_check` in the JSON output).
#[derive(Debug, Clone, Serialize)]
pub struct FundsCheck {
    /// The check was skipped with `--skip-balance-check`.
    pub skipped: bool,
    /// One entry per `--rpc-url`, in the order given.
    pub chains: Vec<ChainFunds>,
    /// What was not looked at ([`NOT_CHECKED`]).
    pub not_checked: &'static str,
}

/// The address on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainFunds {
    /// The node, by scheme and host only (its path may hold an API key).
    pub node: String,
    /// The chain id the node answered.
    pub chain_id: u64,
    /// The native balance in wei (a decimal string, like `value`).
    #[serde(serialize_with = "decimal")]
    pub balance: U256,
    /// The number of transactions the address has sent.
    pub nonce: u64,
}

fn decimal<S: serde::Serializer>(wei: &U256, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&wei.to_string())
}

impl fmt::Display for ChainFunds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {} ({}): balance {} ether, nonce {}",
            self.chain_id,
            self.node,
            format_ether(self.balance),
            self.nonce
        )
    }
}

impl fmt::Display for FundsCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.skipped {
            return write!(f, "balance check skipped (--skip-balance-check)");
        }
        for chain in &self.chains {
            writeln!(f, "checked {chain}")?;
        }
        write!(f, "not checked: {}", self.not_checked)
    }
}

impl FundsCheckArgs {
    /// The nodes to ask, checked before any call: a malformed URL, or neither `--rpc-url`
    /// nor `--skip-balance-check` (for `what`, the action about to delete a key), is a
    /// usage error.
    pub fn nodes(&self, what: &str) -> Result<Vec<(u64, Node)>> {
        require_a_choice(self.rpc_urls.len(), self.skip_balance_check, what)?;
        self.rpc_urls
            .iter()
            .map(|given| {
                let (chain_id, url) = pinned(given, self.chain_id, self.rpc_urls.len())?;
                Ok((chain_id, Node::new(url)?))
            })
            .collect()
    }

    /// Checks every `--rpc-url` (its chain pinned, its URL well formed) before any call,
    /// whether or not the check will be needed.
    pub fn check_urls(&self) -> Result<()> {
        for given in &self.rpc_urls {
            let (_, url) = pinned(given, self.chain_id, self.rpc_urls.len())?;
            Node::new(url)?;
        }
        Ok(())
    }

    /// Looks at `address` on every node given; refuses (exit 1) an address in use unless
    /// `--force`. `what` names the action, as in [`FundsCheckArgs::nodes`].
    pub async fn run(&self, address: Address, what: &str) -> Result<FundsCheck> {
        let nodes = self.nodes(what)?;
        if self.skip_balance_check {
            msg::warn(format!(
                "balance check skipped (--skip-balance-check): nothing was looked up about \
                 what {address} holds, on any chain"
            ));
            return Ok(FundsCheck {
                skipped: true,
                chains: Vec::new(),
                not_checked: NOT_CHECKED,
            });
        }
        let mut chains = Vec::with_capacity(nodes.len());
        for (pinned, node) in &nodes {
            let chain = look_up(node, *pinned, address).await.with_context(|| {
                format!(
                    "the balance check of {address} failed at {}: every --rpc-url must answer \
                     (leave out a node that cannot), and nothing was deleted",
                    node.shown()
                )
            })?;
            msg::note(format!("checked {chain}"));
            chains.push(chain);
        }
        if let Some(reason) = in_use(address, &chains) {
            if !self.force {
                bail!(
                    "{reason}; refusing to schedule its key for deletion. Move the funds and \
                     stop using the address first, or pass --force to go on anyway"
                );
            }
            msg::warn(format!("{reason}; going on anyway (--force)"));
        }
        msg::note(NOT_CHECKED);
        Ok(FundsCheck {
            skipped: false,
            chains,
            not_checked: NOT_CHECKED,
        })
    }
}

/// The chain id a `--rpc-url` value must answer, and its URL: `CHAIN_ID=URL`, or a plain URL
/// with `--chain-id` when it is the only node. A node whose chain is not pinned is refused
/// before any call: a balance of 0 from a node on another chain says nothing.
pub fn pinned(given: &str, chain_id: Option<u64>, nodes: usize) -> Result<(u64, &str), UsageError> {
    let (id, url) = match given.split_once('=') {
        Some((id, url)) if !id.contains(':') && !id.contains('/') => (Some(id), url),
        _ => (None, given),
    };
    match (id, chain_id) {
        (Some(id), None) => id.parse().map(|id| (id, url)).map_err(|_| {
            UsageError(format!(
                "invalid --rpc-url: {id:?} before '=' is not a chain id (CHAIN_ID=URL)"
            ))
        }),
        (Some(_), Some(_)) => Err(UsageError(
            "give each node's chain id once: --rpc-url CHAIN_ID=URL or --chain-id, not both".into(),
        )),
        (None, Some(id)) if nodes == 1 => Ok((id, url)),
        (None, _) => Err(UsageError(format!(
            "--rpc-url {}: which chain must it be? Give CHAIN_ID=URL (for example \
             1=https://...){}; a node on another chain would report another chain's balance, \
             and nothing was scheduled for deletion",
            Node::new(url).map_or_else(|_| "(not a URL)".to_owned(), |n| n.shown().to_owned()),
            if nodes == 1 {
                ", or --chain-id ID"
            } else {
                " for each node"
            }
        ))),
    }
}

/// One node's chain id (which must be `pinned`), and the address's balance and nonce there.
async fn look_up(node: &Node, pinned: u64, address: Address) -> Result<ChainFunds> {
    let at = address.to_string();
    let chain_id = parse_quantity(&node.call("eth_chainId", json!([])).await?)
        .context("reading the chain id")?;
    if chain_id != pinned {
        bail!(
            "the node answers chain id {chain_id}, not {pinned} as given: it is on another chain \
             (or lies), so its balance says nothing about chain {pinned}"
        );
    }
    let balance = parse_u256(&node.call("eth_getBalance", json!([at, "latest"])).await?)
        .context("reading the balance")?;
    let nonce = parse_quantity(
        &node
            .call("eth_getTransactionCount", json!([at, "latest"]))
            .await?,
    )
    .context("reading the nonce")?;
    Ok(ChainFunds {
        node: node.shown().to_owned(),
        chain_id,
        balance,
        nonce,
    })
}

/// Neither `--rpc-url` nor `--skip-balance-check`: the user has not said where to look.
fn require_a_choice(rpc_urls: usize, skip: bool, what: &str) -> Result<(), UsageError> {
    if rpc_urls == 0 && !skip {
        return Err(UsageError(format!(
            "{what} deletes a key, and funds at its address are lost with it: pass --rpc-url \
             URL (a node of each chain where the address may hold funds; repeatable) to check \
             them first, or --skip-balance-check to go on without looking; nothing was \
             scheduled for deletion"
        )));
    }
    Ok(())
}

/// Why `address` counts as in use on `chains` (a balance, or any transaction sent), if it
/// does.
pub fn in_use(address: Address, chains: &[ChainFunds]) -> Option<String> {
    let findings: Vec<String> = chains
        .iter()
        .filter(|chain| chain.balance > U256::ZERO || chain.nonce > 0)
        .map(|chain| {
            let mut found = Vec::new();
            if chain.balance > U256::ZERO {
                found.push(format!(
                    "holds {} ether ({} wei)",
                    format_ether(chain.balance),
                    chain.balance
                ));
            }
            if chain.nonce > 0 {
                found.push(format!(
                    "has sent {} transaction(s) (nonce {})",
                    chain.nonce, chain.nonce
                ));
            }
            format!(
                "on chain {} ({}) it {}",
                chain.chain_id,
                chain.node,
                found.join(" and ")
            )
        })
        .collect();
    (!findings.is_empty()).then(|| format!("address {address} is in use: {}", findings.join("; ")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn chain(chain_id: u64, balance: u64, nonce: u64) -> ChainFunds {
        ChainFunds {
            node: format!("http://node-{chain_id}"),
            chain_id,
            balance: U256::from(balance),
            nonce,
        }
    }

    fn address() -> Address {
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap()
    }

    #[test]
    fn an_empty_unused_address_is_not_in_use_on_any_chain() {
        assert_eq!(in_use(address(), &[chain(1, 0, 0), chain(10, 0, 0)]), None);
        assert_eq!(in_use(address(), &[]), None);
    }

    #[test]
    fn a_balance_or_a_sent_transaction_on_any_chain_is_in_use_and_named() {
        let reason = in_use(address(), &[chain(1, 0, 0), chain(10, 0, 3)]).unwrap();
        assert!(reason.contains("on chain 10 (http://node-10)"), "{reason}");
        assert!(reason.contains("has sent 3 transaction(s)"), "{reason}");
        assert!(!reason.contains("chain 1 "), "{reason}");

        let reason = in_use(address(), &[chain(1, 1_500_000_000_000_000_000, 2)]).unwrap();
        assert!(
            reason.contains("holds 1.5 ether (1500000000000000000 wei) and has sent 2"),
            "{reason}"
        );
    }

    #[test]
    fn deleting_without_rpc_url_or_skip_balance_check_names_both_flags() {
        let err = require_a_choice(0, false, "key schedule-deletion").unwrap_err();
        assert!(err.0.contains("--rpc-url"), "{}", err.0);
        assert!(err.0.contains("--skip-balance-check"), "{}", err.0);
        assert!(require_a_choice(1, false, "x").is_ok());
        assert!(require_a_choice(0, true, "x").is_ok());
    }

    #[test]
    fn every_node_is_pinned_to_a_chain_before_any_call() {
        assert_eq!(
            pinned("1=https://n/key", None, 2).unwrap(),
            (1, "https://n/key")
        );
        assert_eq!(
            pinned("http://n:8545", Some(5), 1).unwrap(),
            (5, "http://n:8545")
        );
        for (given, chain_id, nodes) in [
            ("http://n:8545", None, 1),
            ("http://n:8545", Some(5), 2),
            ("x=http://n", None, 1),
            ("1=http://n", Some(1), 1),
        ] {
            let err = pinned(given, chain_id, nodes).unwrap_err();
            assert!(
                err.0.contains("--rpc-url") || err.0.contains("chain id"),
                "{}",
                err.0
            );
        }
        // A URL whose query has '=' is not read as pinned.
        assert!(pinned("http://n/?key=1", None, 1).is_err());
    }

    #[test]
    fn the_json_names_the_balance_in_wei_as_a_decimal_string() {
        let check = FundsCheck {
            skipped: false,
            chains: vec![chain(31337, 7, 1)],
            not_checked: NOT_CHECKED,
        };
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["chains"][0]["balance"], "7");
        assert_eq!(json["chains"][0]["chain_id"], 31337);
        assert!(json["not_checked"].as_str().unwrap().contains("tokens"));
    }
}
