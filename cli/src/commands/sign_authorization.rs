//! `kms-eth sign-authorization`: an EIP-7702 authorization signed with KMS, printed as the
//! JSON that `--authorization` (and the JSON-RPC specification) takes.

use std::fmt;

use anyhow::Result;
use kms_eth_core::txinputs::bad;
use kms_eth_core::UsageError;
use kms_eth_signer::{Authorization, Signer};
use serde_json::{json, Value};

use crate::flags::SignAuthorizationArgs;
use crate::output::Report;
use crate::session::Session;
use kms_eth_node::fill::authorization_json;
use kms_eth_node::{parse_quantity, Node};

/// The signed authorization: `{"chainId","address","nonce","yParity","r","s"}`, 0x hex
/// quantities, as text and as JSON alike (text output can be fed to `--authorization`).
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct SignAuthorizationReport(pub Value);

impl fmt::Display for SignAuthorizationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Report for SignAuthorizationReport {}

impl SignAuthorizationArgs {
    /// Checks the flags before any call.
    pub fn check(&self) -> Result<()> {
        super::check_account(&self.account)?;
        if self.chain_id == 0 && !self.any_chain {
            return Err(bad(
                "--chain-id",
                "0 makes the authorization valid on every chain: anyone could install the \
                 delegation wherever the account's nonce matches. Give the chain's id, or add \
                 --any-chain if that is what you want",
            ));
        }
        if self.nonce == Some(u64::MAX) {
            return Err(bad("--nonce", "2^64-1 is not a valid nonce (EIP-2681)"));
        }
        if let Some(url) = &self.rpc_url {
            Node::new(url)?;
        }
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<SignAuthorizationReport> {
        self.check()?;
        let signer = session.signer(&self.account).await?;
        let nonce = match (self.nonce, &self.rpc_url) {
            (Some(nonce), _) => nonce,
            (None, Some(url)) => {
                let node = Node::new(url)?;
                let node_chain = parse_quantity(&node.call("eth_chainId", json!([])).await?)?;
                if self.chain_id != 0 && node_chain != self.chain_id {
                    return Err(UsageError(format!(
                        "invalid --chain-id: the node at {} is on chain {node_chain}, not {}",
                        node.shown(),
                        self.chain_id
                    ))
                    .into());
                }
                parse_quantity(
                    &node
                        .call(
                            "eth_getTransactionCount",
                            json!([signer.address().to_string(), "pending"]),
                        )
                        .await?,
                )?
            }
            (None, None) => return Err(bad("--nonce", "missing; or give --rpc-url")),
        };
        let authorization = Authorization {
            chain_id: self.chain_id,
            address: self.delegate,
            nonce,
        };
        let signed = if self.any_chain {
            signer
                .sign_authorization_for_every_chain(authorization)
                .await?
        } else {
            signer.sign_authorization(authorization).await?
        };
        Ok(SignAuthorizationReport(authorization_json(&signed)))
    }
}
