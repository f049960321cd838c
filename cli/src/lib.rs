//! kms-eth: Ethereum accounts whose private key never leaves AWS KMS. This library is the
//! product behind the `kms-eth` binary: its 14 commands (deploy, destroy, status, sign,
//! send, verify, sign-message, sign-authorization, sign-typed-data, serve, fleet, key,
//! tx, localstack), each `run(self, ...)` returning a typed report, plus what they share: the
//! flags, target selection and the session of AWS clients, output and messages. It starts
//! the signing service (`kms-eth-service`), it does not contain it.

pub mod commands;
pub mod flags;
pub mod msg;
pub mod output;
pub mod session;
pub mod stack_lock;
pub mod target;
pub mod txreport;
pub mod ui;

pub use kms_eth_core::{txinputs, UsageError};
pub use session::Session;
