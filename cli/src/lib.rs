//! kms-eth: Ethereum accounts whose private key never leaves AWS KMS. This library is the
//! product behind the `kms-eth` binary: the account commands (deploy, destroy, status,
//! sign, send, verify, sign-message, key), each `async fn run(self, &Session) -> Result<R>`
//! returning a typed report, plus what they share: target selection and the session of AWS
//! clients, the node client, output and messages.

pub mod commands;
pub mod flags;
pub mod lock;
pub mod msg;
pub mod output;
pub mod serve;
pub mod session;
pub mod target;
pub mod txreport;
pub mod ui;

pub use kms_eth_core::{txinputs, UsageError};
pub use session::Session;
