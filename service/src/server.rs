//! Starting and stopping the service: the configuration a front end hands it (node, chain,
//! policy, spend file, HTTP limits, the edge's settings) with the accounts it signs for, and
//! the accept loops of the main listener and the optional metrics one: one connection task
//! per client, the readiness check in the background, SIGHUP reloads the policy, SIGTERM or
//! SIGINT stop it gracefully. What the operator should hear of is handed back as `Notice`s,
//! for the front end to show in its own way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hyper_util::rt::{TokioIo, TokioTimer};
use kms_eth_node::Nodes;
use kms_eth_signer::{Address, MultiRegionSigner, U256};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::edge::BrowserRules;
use crate::http::{self, Edge, Listener};
use crate::methods::RpcSettings;
use crate::readiness::Readiness;
use crate::service::{KeyStates, Rules, Service};

/// What the service runs with, decided by the front end that starts it.
#[derive(Debug)]
pub struct Config {
    /// The upstream nodes (one or more, of one chain): signed transactions go to every
    /// healthy one, and every method the service does not answer itself to the healthiest.
    /// Checked by the front end to be on `chain_id` (`Nodes::start`).
    pub node: Nodes,
    pub chain_id: u64,
    /// The most per gas accepted from the node's fee suggestions for eth_sendTransaction.
    pub fee_cap: U256,
    pub rules: Rules,
    /// Where the rolling 24-hour spend of each account is kept (read and locked only when a
    /// policy caps it).
    pub state_file: PathBuf,
    /// How the transaction tracker watches what the service broadcast (its file sits beside
    /// `state_file`, as `transactions-<account>.json`).
    pub tracker: crate::tracker::TrackerSettings,
    /// The store shared with other replicas (`--state redis://...`): nonces, the 24-hour
    /// ledger, rate limits and the tracker are kept there instead of in this process and
    /// `state_file`.
    pub store: Option<crate::store::StoreConfig>,
    pub key_states: Box<dyn KeyStates>,
    /// The bearer token clients must send, if any.
    pub token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a request may take before it is answered with a timeout error.
    pub request_timeout: Duration,
    /// Requests handled at once; more are answered 503 until one finishes.
    pub max_concurrent_requests: usize,
    /// The JSON-RPC side's settings: raw transactions, batch size, time to answer.
    pub rpc: RpcSettings,
    /// Browser safety, the body's time limit, readiness and the metrics listener.
    pub edge: EdgeConfig,
}

/// The settings of the service's edge: who may call it from a browser, how long a body may
/// take, how often readiness is checked, where metrics are served.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Origins (`--allow-origin`) and host names (`--allow-host`) allowed besides the
    /// listener's own address.
    pub browser: BrowserRules,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
    /// How often `/readyz`'s report is renewed and the nodes checked (one KMS call per key,
    /// two calls per node).
    pub readiness_interval: Duration,
    /// Where `/metrics` and `/readyz` are served without the token; they then are not
    /// served on the main listener.
    pub metrics_listen: Option<SocketAddr>,
}

/// Something the running service tells its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Progress: what happened, what is being waited for.
    Note(String),
    /// Something went wrong that does not stop the service.
    Warning(String),
}

/// The service, built and ready to accept connections.
#[derive(Debug)]
pub struct Server {
    service: Arc<Service>,
    edge: Arc<Edge>,
    metrics_listen: Option<SocketAddr>,
}

impl Server {
    /// The service for `signers` under `config`, with its spend restored from (and its lock
    /// taken on) the state file if the policy caps some account's 24-hour spend.
    pub fn new(config: Config, signers: Vec<MultiRegionSigner>) -> Result<Server> {
        let mut service = Service::new(
            config.node,
            config.chain_id,
            config.fee_cap,
            config.key_states,
            signers,
            config.rules,
            crate::service::Kept {
                state_file: config.state_file,
                tracker: config.tracker,
                store: config.store,
            },
        )?;
        service.rpc = config.rpc;
        let edge = Edge {
            token: config.token,
            browser: config.edge.browser,
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.edge.body_timeout,
            request_timeout: config.request_timeout,
            in_flight: tokio::sync::Semaphore::new(config.max_concurrent_requests),
            readiness: Arc::new(Readiness::new(config.edge.readiness_interval)),
            metrics_elsewhere: config.edge.metrics_listen.is_some(),
        };
        Ok(Server {
            service: Arc::new(service),
            edge: Arc::new(edge),
            metrics_listen: config.edge.metrics_listen,
        })
    }

    /// Every account's address, in order.
    pub fn addresses(&self) -> Vec<Address> {
        self.service.addresses()
    }

    /// Whether a policy governs the service (false: it signs whatever it is asked).
    pub fn restricted(&self) -> bool {
        self.service.restricted()
    }

    /// Accepts connections on `listener` (and on the metrics address, bound here) until
    /// SIGTERM or SIGINT, then lets the requests in flight finish (new ones are refused) for
    /// up to 30 s. SIGHUP reloads the policy; readiness is checked in the background.
    pub async fn serve(self, listener: TcpListener, notify: impl Fn(Notice)) -> Result<()> {
        let Server {
            service,
            edge,
            metrics_listen,
        } = self;
        let metrics = match metrics_listen {
            Some(address) => {
                let bound = TcpListener::bind(address).await.map_err(|err| {
                    kms_eth_core::UsageError(format!("invalid --metrics-listen {address}: {err}"))
                })?;
                notify(Notice::Note(format!(
                    "serving /metrics and /readyz on http://{} (without the token)",
                    bound.local_addr()?
                )));
                Some(bound)
            }
            None => None,
        };
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let readiness = tokio::spawn(edge.readiness.clone().refresh(service.clone()));
        let tracker = tokio::spawn(crate::watch::watch(service.clone()));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let connection = |stream: tokio::net::TcpStream, listener: Listener| {
            let Ok(local) = stream.local_addr() else {
                return;
            };
            // Answers go out as soon as they are written, not held back by Nagle's
            // algorithm waiting for the client's acknowledgement of the last packet.
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let edge = edge.clone();
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // A client that never finishes its headers is dropped, not waited for.
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(move |request| {
                        http::handle(request, service.clone(), edge.clone(), local, listener)
                    }),
                );
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A client hanging up mid-request is an ordinary end of its connection.
                let _ = connection.await;
            });
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        connection(stream, Listener::Main);
                    }
                }
                accepted = accept(metrics.as_ref()) => {
                    if let Ok((stream, _)) = accepted {
                        connection(stream, Listener::Metrics);
                    }
                }
                _ = hangup.recv() => notify(match service.reload_policy() {
                    Ok(()) => Notice::Note("policy reloaded".to_owned()),
                    Err(err) => Notice::Warning(format!(
                        "the policy was not reloaded, the running one stays: {err:#}"
                    )),
                }),
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        readiness.abort();
        drop(metrics);
        drop(listener);
        notify(Notice::Note(
            "stopping: finishing the requests in flight".to_owned(),
        ));
        if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
            .await
            .is_err()
        {
            notify(Notice::Warning(
                "requests still in flight after 30 s were cut off".to_owned(),
            ));
        }
        // The tracker stops last: what the requests broadcast is in its file for the next
        // start.
        tracker.abort();
        Ok(())
    }
}

/// The next connection on `listener`, or never if there is none.
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
