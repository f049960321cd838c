//! Starting and stopping the service: the configuration a front end hands it (node, chain,
//! policy, spend file, HTTP limits) with the accounts it signs for, and the accept loop: one
//! connection task per client, SIGHUP reloads the policy, SIGTERM or SIGINT stop it
//! gracefully. What the operator should hear of is handed back as `Notice`s, for the front
//! end to show in its own way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hyper_util::rt::{TokioIo, TokioTimer};
use kms_eth_node::Node;
use kms_eth_signer::{Address, KmsSigner, U256};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::http::{self, Limits};
use crate::methods::RpcSettings;
use crate::service::{KeyStates, Rules, Service};

/// What the service runs with, decided by the front end that starts it.
#[derive(Debug)]
pub struct Config {
    /// The upstream node: signed transactions go to it, and every method the service does
    /// not answer itself. Checked by the front end to be on `chain_id`.
    pub node: Node,
    pub chain_id: u64,
    /// The most per gas accepted from the node's fee suggestions for eth_sendTransaction.
    pub fee_cap: U256,
    pub rules: Rules,
    /// Where the rolling 24-hour spend of each account is kept (read and locked only when a
    /// policy caps it).
    pub state_file: PathBuf,
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
    limits: Arc<Limits>,
}

impl Server {
    /// The service for `signers` under `config`, with its spend restored from (and its lock
    /// taken on) the state file if the policy caps some account's 24-hour spend.
    pub fn new(config: Config, signers: Vec<KmsSigner>) -> Result<Server> {
        let mut service = Service::new(
            config.node,
            config.chain_id,
            config.fee_cap,
            config.key_states,
            signers,
            config.rules,
            config.state_file,
        )?;
        service.rpc = config.rpc;
        let limits = Limits {
            token: config.token,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            in_flight: tokio::sync::Semaphore::new(config.max_concurrent_requests),
        };
        Ok(Server {
            service: Arc::new(service),
            limits: Arc::new(limits),
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

    /// Accepts connections on `listener` until SIGTERM or SIGINT, then lets the requests in
    /// flight finish (new ones are refused) for up to 30 s. SIGHUP reloads the policy.
    pub async fn serve(self, listener: TcpListener, notify: impl Fn(Notice)) -> Result<()> {
        let Server { service, limits } = self;
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
        Ok(())
    }
}
