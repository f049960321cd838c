//! The kms-eth service core: what every front end (the command line, the JSON-RPC server
//! and the Lambda handler) checks before it signs. It depends on the signer's pure modules
//! only: no AWS SDK, no I/O, so the fuzz targets can drive it directly.

pub mod audit;
pub mod event;
pub mod fees;
pub mod input;
mod kind;
pub mod nonce;
pub mod policy;
pub mod txinputs;
pub mod txobject;
pub mod typed_data;

/// An error in what the user asked for (a bad flag or field value, a missing argument)
/// rather than in the environment, in words for the user. The command line exits 2 on it,
/// like clap's own usage errors, and the JSON-RPC server answers it as "invalid params". A
/// check between a transaction's fields answers an [`input::InputError`] instead, which each
/// front end turns into this with its own names.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
