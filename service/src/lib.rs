//! kms-eth's signing service (`kms-eth serve`): JSON-RPC over HTTP in front of an Ethereum
//! node, for applications that would talk to a node with unlocked accounts. It answers
//! `eth_sendTransaction` and friends itself, checking each request against the owner's policy
//! before KMS is asked, signs with KMS, broadcasts through the node, passes an allow-list of
//! reads through and refuses every other method. A front end (the CLI) builds a `Config` and
//! the accounts' signers, and starts a `Server`.
//!
//! - `server.rs`: the configuration, and the accept loops (signals, graceful stop).
//! - `http.rs`: the routes, the bearer token, body size, time and in-flight limits;
//!   `edge.rs`: browser safety (Host, Origin, CORS, Content-Type); `readiness.rs`: the
//!   cached `/readyz` report and its background check.
//! - `rpc.rs`: JSON-RPC requests and batches, each routed by `methods.rs` (answered, passed
//!   through, refused); `sign.rs` signs with KMS, `send.rs` sends (a task per request),
//!   `pipeline.rs` reserves nonces and broadcasts in nonce order (an unknown outcome is never
//!   signed again), `typed.rs` answers typed data; `error.rs`: errors and codes.
//! - `book.rs`: one account's pipeline as data (nonce book, waiting transactions);
//!   `tracker.rs`: what was broadcast and is not yet mined, kept per account; `watch.rs`:
//!   the tracker at work (re-broadcasts, fee bumps, holes) and the replacements
//!   `controls.rs` asks for (`kmseth_txStatus`, `kmseth_speedUp`, `kmseth_cancel`);
//!   `state.rs`: the service's files; `store.rs` (with `store/nonces.rs`): all of that
//!   kept instead in a Redis-protocol store that several replicas share.
//! - `service.rs`: accounts, policy, spend ledger, rate limits, the readiness check;
//!   `simulate.rs`: the policy's `simulate` rule, run on the node.
//! - `metrics.rs`: Prometheus metrics; `audit.rs`: one audit line per signature.
//! - `lock.rs`: the lock on the service's local state (the CLI's fleet uses it too).

mod audit;
mod book;
mod controls;
mod edge;
mod error;
mod http;
pub mod lock;
mod methods;
mod metrics;
mod pipeline;
mod readiness;
mod rpc;
mod send;
mod server;
mod service;
mod sign;
mod simulate;
mod state;
mod store;
mod tracker;
mod typed;
mod watch;

pub use edge::{parse_allowed_host, parse_origin, AllowedHost, BrowserRules};
pub use methods::RpcSettings;
pub use server::{Config, EdgeConfig, Notice, Server};
pub use service::{read_policy, KeyStates, Rules};
pub use store::{parse_url as parse_store_url, StoreConfig};
pub use tracker::TrackerSettings;
