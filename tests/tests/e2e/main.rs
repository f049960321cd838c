//! The end-to-end tests: one test binary, one module per product area, run against real
//! LocalStack (or a real AWS account with `cargo xtask test --target aws`), real anvil nodes
//! and real clients. `tests/README.md` says which module a new test goes in and how to run
//! one module or one test.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod blobs;
mod cli_contract;
mod credentials;
mod delegation;
mod deletion_guards;
mod deploy;
mod deploy_interrupted;
mod deploy_lambda;
mod faults;
mod fleet;
mod import;
mod kms_signer;
mod lambda_handler;
mod migrate;
mod regions;
mod send;
mod serve;
mod sign;
mod store;
mod tokens;
mod typed_data;
