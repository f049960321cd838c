//! An in-memory signer for unit tests and known-answer vectors only: its private key lives in
//! process memory, which is exactly what kms-eth exists to avoid. It is compiled only with the
//! `insecure-local-signer` feature, which no shipped binary enables.

use k256::ecdsa::SigningKey;

use crate::address::Address;
use crate::hash::B256;
use crate::public_key::PublicKey;
use crate::sign::Signer;
use crate::signature::{finalize, Signature, SignatureError};
use crate::Error;

/// A signer holding a raw private key in memory. Never use it for a real account.
#[derive(Clone)]
pub struct InsecureLocalSigner {
    key: SigningKey,
    public_key: PublicKey,
}

impl InsecureLocalSigner {
    /// A signer for the given 32-byte private key.
    pub fn from_private_key(bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        let key = SigningKey::from_slice(bytes).map_err(|_| SignatureError::ScalarOutOfRange {
            component: "private key",
        })?;
        let public_key = PublicKey::from(*key.verifying_key());
        Ok(InsecureLocalSigner { key, public_key })
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Signs synchronously, with RFC 6979 deterministic nonces.
    pub fn sign_digest_sync(&self, digest: &B256) -> Result<Signature, Error> {
        let (signature, _) = self
            .key
            .sign_prehash_recoverable(digest)
            .map_err(|_| SignatureError::Unrecoverable)?;
        let r = signature.r().to_bytes().into();
        let s = signature.s().to_bytes().into();
        Ok(finalize(digest, &r, &s, &self.public_key)?)
    }
}

impl Signer for InsecureLocalSigner {
    fn address(&self) -> Address {
        self.public_key.address()
    }

    async fn sign_digest(&self, digest: &B256) -> Result<Signature, Error> {
        self.sign_digest_sync(digest)
    }
}

impl std::fmt::Debug for InsecureLocalSigner {
    // The private key is never printed, even by a test failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsecureLocalSigner")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}
