//! `kms-eth serve`: a JSON-RPC signing service in front of a node. Applications send it
//! `eth_sendTransaction` and friends as they would to a node with unlocked accounts; it
//! checks each request against the owner's policy before KMS is asked, signs with KMS,
//! broadcasts through the node, and passes every other method through unchanged.
//!
//! - `service.rs`: accounts, policy, spend ledger, rate limits, audit lines.
//! - `rpc.rs`: the methods and their errors.
//! - `http.rs`: HTTP, authentication and limits.
//! - `metrics.rs`: Prometheus metrics.

mod http;
mod metrics;
pub mod rpc;
mod service;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use kms_eth_core::UsageError;
use kms_eth_signer::KmsSigner;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::flags::{AccountArgs, KeyArgs, ServeArgs};
use crate::msg;
use crate::output::Report;
use crate::session::Session;
use kms_eth_node::{parse_quantity, Node};
use service::{read_policy, Rules, Service};

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
        Node::new(&self.rpc_url)?;
        Ok(())
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

    pub async fn run(self, session: &Session) -> Result<ServeReport> {
        let node = Node::new(&self.rpc_url)?;
        let chain_id =
            parse_quantity(&node.call("eth_chainId", json!([])).await?).with_context(|| {
                format!(
                    "asking the upstream node at {} for its chain id",
                    node.shown()
                )
            })?;
        if let Some(expected) = self.chain_id.filter(|expected| *expected != chain_id) {
            return Err(UsageError(format!(
                "invalid --chain-id: the node at {} is on chain {chain_id}, not {expected}",
                node.shown()
            ))
            .into());
        }
        let signers = self.signers(session).await?;
        let rules = match &self.policy {
            Some(path) => Rules::Policy {
                policy: read_policy(path)?,
                path: path.clone(),
            },
            None => Rules::Unrestricted,
        };
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
            .state_file
            .clone()
            .unwrap_or_else(|| kms_eth_harness::process::state_dir("serve").join("spend.json"));
        let service = Arc::new(Service::new(
            node,
            chain_id,
            self.fee_cap,
            session.kms.clone(),
            signers,
            rules,
            state_file,
        )?);
        let limits = Arc::new(http::Limits {
            token: self.token()?,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout),
            in_flight: tokio::sync::Semaphore::new(self.max_concurrent_requests),
        });
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|err| UsageError(format!("invalid --listen {}: {err}", self.listen)))?;
        let listen = listener.local_addr()?;
        let accounts: Vec<String> = service
            .addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        msg::note(format!(
            "serving {} on http://{listen} (chain {chain_id}, {})",
            accounts.join(", "),
            if service.restricted() {
                "policy"
            } else {
                "UNRESTRICTED"
            }
        ));
        serve(listener, service, limits).await?;
        Ok(ServeReport {
            listen: listen.to_string(),
            chain_id,
            accounts,
        })
    }

    /// The KMS signer of every account asked for, each built (one `GetPublicKey`) before
    /// the service answers anything.
    async fn signers(&self, session: &Session) -> Result<Vec<KmsSigner>> {
        let mut signers: Vec<KmsSigner> = Vec::new();
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
            let account = AccountArgs {
                key: KeyArgs { key_id, stack_name },
                expect_address: None,
            };
            signers.push(session.signer(&account).await?);
        }
        if !self.key_tags.is_empty() {
            for key_id in tagged_keys(&session.kms, &self.key_tags).await? {
                signers.push(KmsSigner::new(session.kms.clone(), key_id).await?);
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

/// Whether the service can do its work: every key enabled in KMS, the node answering on
/// its chain. Also says whether a policy governs it.
pub(crate) async fn readiness(service: &Service) -> (bool, Value) {
    let node = match service.node.call("eth_chainId", json!([])).await {
        Ok(answer) if parse_quantity(&answer).ok() == Some(service.chain_id) => json!("ok"),
        Ok(answer) => json!(format!("on chain {answer}, not {}", service.chain_id)),
        Err(err) => json!(format!("{err:#}")),
    };
    let mut ready = node == "ok";
    let mut accounts = Vec::new();
    for account in service.accounts() {
        let state =
            match kms_eth_provisioner::key_info(&service.kms, account.signer.key_arn()).await {
                Ok(info) => info.state.as_str().to_owned(),
                Err(err) => format!("{err:#}"),
            };
        ready &= state == "Enabled";
        accounts.push(json!({ "address": account.address.to_string(), "key_state": state }));
    }
    let report = json!({
        "ready": ready,
        "node": node,
        "chain_id": service.chain_id,
        "policy": if service.restricted() { "policy" } else { "unrestricted" },
        "accounts": accounts,
    });
    (ready, report)
}

/// Accepts connections until SIGTERM or SIGINT, then lets the requests in flight finish
/// (new ones are refused) for up to 30 s. SIGHUP reloads the policy.
async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: Arc<http::Limits>,
) -> Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // Answers go out as soon as they are written, not held back by Nagle's
                // algorithm waiting for the client's acknowledgement of the last packet.
                let _ = stream.set_nodelay(true);
                let service = service.clone();
                let limits = limits.clone();
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    // A client that never finishes its headers is dropped, not waited for.
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(
                        TokioIo::new(stream),
                        hyper::service::service_fn(move |request| {
                            http::handle(request, service.clone(), limits.clone())
                        }),
                    );
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client hanging up mid-request is an ordinary end of its connection.
                    let _ = connection.await;
                });
            }
            _ = hangup.recv() => match service.reload_policy() {
                Ok(()) => msg::note("policy reloaded"),
                Err(err) => msg::warn(format!("the policy was not reloaded, the running one stays: {err:#}")),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    drop(listener);
    msg::note("stopping: finishing the requests in flight");
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        msg::warn("requests still in flight after 30 s were cut off");
    }
    Ok(())
}
