//! `kms-eth serve`: starts the signing service (the `kms-eth-service` crate) from the
//! command line: checks the flags (the chain pinned by `--chain-id` or the policy's
//! `chain_ids`, never by the node alone), checks every node is on that chain, builds each
//! account's KMS signer with the session, turns the flags into the service's `Config`, binds
//! the address, and shows what the service has to say until it stops.

use std::fmt;
use std::time::Duration;

use anyhow::Result;
use futures_util::future::BoxFuture;
use kms_eth_core::UsageError;
use kms_eth_node::{Node, Nodes};
use kms_eth_service::{read_policy, Config, KeyStates, Notice, RpcSettings, Rules, Server};
use kms_eth_signer::MultiRegionSigner;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::flags::{AccountArgs, KeyArgs, ServeArgs};
use crate::msg;
use crate::output::Report;
use crate::session::Session;

/// What the service did, printed when it stops.
#[derive(Debug, Serialize)]
pub struct ServeReport {
    pub listen: String,
    pub chain_id: u64,
    pub accounts: Vec<String>,
}

impl fmt::Display for ServeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped serving {} on http://{}",
            self.accounts.join(", "),
            self.listen
        )
    }
}

impl Report for ServeReport {}

impl ServeArgs {
    /// Checks the flags before anything is started or called.
    pub fn check(&self) -> Result<()> {
        if self.key_ids.is_empty() && self.stack_names.is_empty() && self.key_tags.is_empty() {
            return Err(UsageError(
                "serve needs its accounts: --key-id, --stack-name or --key-tag (each repeatable)"
                    .to_owned(),
            )
            .into());
        }
        for stack in &self.stack_names {
            kms_eth_provisioner::validate_stack_name(stack)
                .map_err(|err| UsageError(err.to_string()))?;
        }
        if self.policy.is_none() && !self.unrestricted {
            return Err(UsageError(
                "serve needs --policy FILE (what each account may sign), or --unrestricted to \
                 sign whatever it is asked"
                    .to_owned(),
            )
            .into());
        }
        if let Some(path) = &self.policy {
            read_policy(path)?;
        }
        if !self.listen.ip().is_loopback() && self.auth_token_file.is_none() {
            return Err(UsageError(format!(
                "invalid --listen: {} is reachable from other machines; give \
                 --auth-token-file so that only clients with the token can sign",
                self.listen
            ))
            .into());
        }
        self.token()?;
        if self.max_body_bytes == 0
            || self.max_concurrent_requests == 0
            || self.request_timeout == 0
        {
            return Err(UsageError(
                "--max-body-bytes, --max-concurrent-requests and --request-timeout must be above 0"
                    .to_owned(),
            )
            .into());
        }
        if self.max_batch == 0 {
            return Err(UsageError("--max-batch must be above 0".to_owned()).into());
        }
        for url in &self.rpc_urls {
            Node::new(url)?;
        }
        self.check_chain_pinned()?;
        Ok(())
    }

    /// The chain the service signs for is never the node's word alone: `--chain-id` names
    /// it, or else the policy pins every account's `chain_ids` (the node's chain must then be
    /// in each, checked in [`ServeArgs::run`]).
    fn check_chain_pinned(&self) -> Result<()> {
        if self.chain_id.is_some() {
            return Ok(());
        }
        let Some(path) = &self.policy else {
            return Err(UsageError(
                "serve needs --chain-id (the chain it signs for): with --unrestricted nothing \
                 else pins it, and the node's word alone must not decide where money moves"
                    .to_owned(),
            )
            .into());
        };
        let policy = read_policy(path)?;
        if let Some(unpinned) = policy.accounts().iter().find(|a| a.chain_ids.is_none()) {
            return Err(UsageError(format!(
                "serve needs --chain-id (the chain it signs for), or chain_ids in every \
                 [[account]] block of {}: the block for {} has none, and the node's word alone \
                 must not decide where money moves",
                path.display(),
                unpinned.address
            ))
            .into());
        }
        if policy.accounts().is_empty() {
            return Err(UsageError(format!(
                "serve needs --chain-id (the chain it signs for): {} has no [[account]] block \
                 to pin it",
                path.display()
            ))
            .into());
        }
        Ok(())
    }

    /// The chain the service signs for: the node's, which must be `--chain-id` if given, and
    /// must be in the `chain_ids` of every account of `signers` the policy lists them for
    /// (a disagreement would refuse every transaction, or sign for a chain nobody chose).
    /// (`Nodes::start` has checked every node against `--chain-id`, or against each other.)
    fn chain_for(&self, node: &Nodes, rules: &Rules, signers: &[MultiRegionSigner]) -> Result<u64> {
        let node_chain = node.chain_id();
        let Rules::Policy { policy, path } = rules else {
            return Ok(node_chain);
        };
        for signer in signers {
            let Ok(rules) = policy.account(signer.address()) else {
                continue;
            };
            if let Some(ids) = rules
                .chain_ids
                .as_ref()
                .filter(|ids| !ids.contains(&node_chain))
            {
                let pinned = if self.chain_id.is_some() {
                    format!("--chain-id {node_chain}")
                } else {
                    format!(
                        "the node{} at {} {} on chain {node_chain}",
                        if node.len() > 1 { "s" } else { "" },
                        node.shown(),
                        if node.len() > 1 { "are" } else { "is" }
                    )
                };
                return Err(UsageError(format!(
                    "{pinned}, but the [[account]] block for {} in {} allows chain_ids {ids:?}: \
                     they must agree",
                    signer.address(),
                    path.display()
                ))
                .into());
            }
        }
        Ok(node_chain)
    }

    fn token(&self) -> Result<Option<String>> {
        let Some(path) = &self.auth_token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path)
            .map_err(|err| {
                UsageError(format!(
                    "invalid --auth-token-file {}: {err}",
                    path.display()
                ))
            })?
            .trim()
            .to_owned();
        if token.len() < 16 {
            return Err(UsageError(format!(
                "invalid --auth-token-file {}: the token must be at least 16 characters",
                path.display()
            ))
            .into());
        }
        Ok(Some(token))
    }

    /// Where the replicas' shared store is, and its password (from a file or
    /// KMS_ETH_STATE_PASSWORD, never the command line).
    fn store_config(&self) -> Result<Option<kms_eth_service::StoreConfig>> {
        let Some(url) = &self.state else {
            return Ok(None);
        };
        // Checked here rather than by clap, whose message would repeat the value: a
        // password in it would be printed back.
        let url = kms_eth_service::parse_store_url(url).map_err(UsageError)?;
        let password = match &self.state_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|err| {
                        UsageError(format!(
                            "invalid --state-password-file {}: {err}",
                            path.display()
                        ))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => std::env::var("KMS_ETH_STATE_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
        };
        Ok(Some(kms_eth_service::StoreConfig {
            url,
            password,
            lease: Duration::from_secs(self.lease),
        }))
    }

    pub async fn run(self, session: &Session) -> Result<ServeReport> {
        let store = self.store_config()?;
        let request_timeout = Duration::from_secs(self.request_timeout);
        // A node call gets a quarter of a request's time, so that a broadcast and the lookup
        // that follows an error from it both end before the request must be answered.
        let node_timeout = (request_timeout / 4).min(kms_eth_node::client::DEFAULT_TIMEOUT);
        let nodes = self
            .rpc_urls
            .iter()
            .map(|url| Ok(Node::new(url)?.with_timeout(node_timeout)))
            .collect::<Result<Vec<Node>>>()?;
        // Each node's chain id against --chain-id (or the others'): one on another chain is
        // refused by name; one that does not answer starts out, while another answers.
        let node = Nodes::start(nodes, self.chain_id).await?;
        for health in node.health().iter().filter(|h| !h.up) {
            msg::warn(format!(
                "the node at {} is out until it answers on the chain: {}",
                health.node, health.state
            ));
        }
        let signers = self.signers(session).await?;
        let rules = match &self.policy {
            Some(path) => Rules::Policy {
                policy: read_policy(path)?,
                path: path.clone(),
            },
            None => Rules::Unrestricted,
        };
        let chain_id = self.chain_for(&node, &rules, &signers)?;
        if let Rules::Policy { policy, .. } = &rules {
            for signer in &signers {
                if policy.account(signer.address()).is_err() {
                    msg::warn(format!(
                        "the policy has no [[account]] block for {}: every request for it will be refused",
                        signer.address()
                    ));
                }
            }
        } else {
            msg::warn("--unrestricted: the service signs whatever it is asked, with no policy");
        }
        let state_file = self
            .state_dir
            .clone()
            .unwrap_or_else(|| kms_eth_harness::process::user_state_dir("serve"))
            .join("spend.json");
        let config = Config {
            node,
            chain_id,
            fee_cap: self.fee_cap,
            rules,
            state_file,
            tracker: self.tracker_settings(),
            store,
            key_states: Box::new(KeyStatesFromKms(session.kms.clone())),
            token: self.token()?,
            max_body_bytes: self.max_body_bytes,
            request_timeout,
            max_concurrent_requests: self.max_concurrent_requests,
            rpc: RpcSettings {
                allow_raw: self.allow_raw,
                max_batch: self.max_batch,
                // The service's own answer, with the request's id and what a broadcast left
                // behind, comes before the HTTP side's timeout cuts the request off.
                answer_within: request_timeout.mul_f64(0.9),
            },
            edge: self.edge_config(),
        };
        let server = Server::new(config, signers)?;
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|err| UsageError(format!("invalid --listen {}: {err}", self.listen)))?;
        let listen = listener.local_addr()?;
        let accounts: Vec<String> = server.addresses().iter().map(ToString::to_string).collect();
        msg::note(format!(
            "serving {} on http://{listen} (chain {chain_id}, {})",
            accounts.join(", "),
            if server.restricted() {
                "policy"
            } else {
                "UNRESTRICTED"
            }
        ));
        server
            .serve(listener, |notice| match notice {
                Notice::Note(text) => msg::note(text),
                Notice::Warning(text) => msg::warn(text),
            })
            .await?;
        Ok(ServeReport {
            listen: listen.to_string(),
            chain_id,
            accounts,
        })
    }

    /// The KMS signer of every account asked for, each built (one `GetPublicKey` per
    /// Region) before the service answers anything: in the session's Region, and in each
    /// failover Region for a multi-Region key.
    async fn signers(&self, session: &Session) -> Result<Vec<MultiRegionSigner>> {
        let home = super::regions::home_region(session);
        let mut signers: Vec<MultiRegionSigner> = Vec::new();
        let accounts = self
            .key_ids
            .iter()
            .map(|id| (Some(id.clone()), None))
            .chain(
                self.stack_names
                    .iter()
                    .map(|stack| (None, Some(stack.clone()))),
            );
        for (key_id, stack_name) in accounts {
            let regions = match (&key_id, &stack_name) {
                (Some(key_id), _) => self.failover_for(key_id),
                (None, Some(stack)) if self.failover_regions.is_empty() => {
                    kms_eth_provisioner::describe_account(&session.cloudformation, stack)
                        .await?
                        .replica_regions
                }
                (None, _) => self.failover_regions.clone(),
            };
            let account = AccountArgs {
                key: KeyArgs { key_id, stack_name },
                expect_address: None,
            };
            signers.push(if regions.is_empty() {
                MultiRegionSigner::one(&home, session.signer(&account).await?)
            } else {
                super::regions::failover_signer(session, &account, &regions).await?
            });
        }
        if !self.key_tags.is_empty() {
            for key_id in tagged_keys(&session.kms, &self.key_tags).await? {
                let regions = self.failover_for(&key_id);
                let account = AccountArgs {
                    key: KeyArgs {
                        key_id: Some(key_id),
                        stack_name: None,
                    },
                    expect_address: None,
                };
                signers.push(super::regions::failover_signer(session, &account, &regions).await?);
            }
        }
        signers.sort_by_key(|s| s.address());
        signers.dedup_by_key(|s| s.address());
        if signers.is_empty() {
            return Err(UsageError(format!(
                "no enabled kms-eth key carries every tag of {:?}",
                self.key_tags
            ))
            .into());
        }
        Ok(signers)
    }
}

impl ServeArgs {
    /// The failover Regions of the key `key_id`: `--failover-region`'s for a multi-Region
    /// key (its id, ARN or alias target named `mrk-...`), none for a key in one Region,
    /// which has no replica to fail over to.
    fn failover_for(&self, key_id: &str) -> Vec<String> {
        let multi_region = key_id
            .rsplit('/')
            .next()
            .is_some_and(|id| id.starts_with("mrk-"));
        if multi_region || key_id.starts_with("alias/") {
            self.failover_regions.clone()
        } else {
            Vec::new()
        }
    }
}

/// The kms-eth keys that are enabled and carry every one of `tags`. A key without tags, or
/// disabled, or pending deletion, never matches (Web3Signer's #1052 matched untagged keys).
async fn tagged_keys(kms: &aws_sdk_kms::Client, tags: &[(String, String)]) -> Result<Vec<String>> {
    let mut matching = Vec::new();
    for key in kms_eth_provisioner::list_accounts(kms).await? {
        if key.state != aws_sdk_kms::types::KeyState::Enabled {
            continue;
        }
        // The tags `list_accounts` read with the key: no second listing per key.
        if tags.iter().all(|tag| key.tags.contains(tag)) {
            matching.push(key.key_id);
        }
    }
    Ok(matching)
}

/// The state of each account's key for the service's `/readyz`: the provisioner's `key_info`,
/// which the service crate does not depend on. It asks with the session's own credentials,
/// not the signer's: the signer role may only `GetPublicKey` and `Sign` (templates/
/// account.yaml), so a `DescribeKey` through the signer would be refused on AWS and the
/// service never ready (LocalStack does not enforce the policy, so no test here sees it).
#[derive(Debug)]
struct KeyStatesFromKms(aws_sdk_kms::Client);

impl KeyStates for KeyStatesFromKms {
    fn key_state<'a>(&'a self, key_arn: &'a str) -> BoxFuture<'a, String> {
        Box::pin(async move {
            // A multi-Region key is asked about in the Region whose ARN the service names
            // (the one it signs in now), with the same credentials.
            let region = key_arn.split(':').nth(3).unwrap_or_default();
            let home = self.0.config().region().map(|r| r.as_ref().to_owned());
            let client = if region.is_empty() || home.as_deref() == Some(region) {
                self.0.clone()
            } else {
                kms_eth_provisioner::kms_in(&self.0, region)
            };
            match kms_eth_provisioner::key_state(&client, key_arn).await {
                Ok(state) => state.as_str().to_owned(),
                Err(err) => format!("{err:#}"),
            }
        })
    }
}
