//! Helpers shared by every end-to-end test, each module with one job; everything is
//! re-exported here, so a test imports `kms_eth_e2e::{kms_eth, TestKey, ...}`. The target the
//! tests run against (the harness's LocalStack, or a real AWS account when `cargo xtask test
//! --target aws` asks for it) is resolved once per test process.
//!
//! Nothing here skips: if LocalStack cannot be started, the test fails with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod chain;
pub mod command;
pub mod fault_proxy;
pub mod keys;
pub mod node_proxy;
pub mod policies;
pub mod raw_http;
pub mod run;
pub mod served;
pub mod stacks;
pub mod store;
pub mod target;
pub mod tcp_gate;
pub mod tls_proxy;
pub mod tokens;

pub use chain::*;
pub use command::*;
pub use keys::*;
pub use policies::*;
pub use run::*;
pub use stacks::*;
pub use store::*;
pub use target::*;
pub use tokens::*;
