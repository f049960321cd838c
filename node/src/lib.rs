//! The Ethereum node as every front end that talks to one sees it: `client` calls a node's
//! JSON-RPC endpoint (off the async runtime, URLs shown by scheme and host only) and parses
//! its quantities; `fill` asks it for what a sender leaves out (nonce, fees, gas) without
//! trusting the answers; `pool` sees several nodes of one chain as one (reads from the
//! healthiest, failover, broadcasts to all, health checks). The CLI's `send`, the signing service and the fleet's address book
//! share it; nothing here signs.

pub mod client;
pub mod fill;
pub mod pool;

pub use client::{parse_quantity, parse_u256, Node, Rpc, RpcError};
pub use pool::{NodeHealth, Nodes};
