//! The interface every signing backend offers, and what is built on it: transaction and
//! message signing. A backend only signs digests; everything Ethereum-specific lives here.

use std::future::Future;

use crate::address::Address;
use crate::authorization::{Authorization, SignedAuthorization};
use crate::hash::B256;
use crate::message::eip191_hash;
use crate::signature::Signature;
use crate::tx::{SignedTransaction, Transaction, TxError};
use crate::Error;

/// Something that holds an Ethereum key and signs 32-byte digests with it.
///
/// Implementations must only return signatures that have low `s` and recover to
/// [`Signer::address`]; [`crate::finalize`] does both.
pub trait Signer: Send + Sync {
    /// The account's address, known without any network call.
    fn address(&self) -> Address;

    /// Signs a 32-byte digest.
    fn sign_digest(&self, digest: &B256) -> impl Future<Output = Result<Signature, Error>> + Send;

    /// Signs a transaction. Legacy transactions must carry a chain id (EIP-155); use
    /// [`Signer::sign_unprotected_transaction`] to sign a replayable one on purpose.
    fn sign_transaction(
        &self,
        tx: Transaction,
    ) -> impl Future<Output = Result<SignedTransaction, Error>> + Send
    where
        Self: Sized,
    {
        async move {
            match tx.chain_id() {
                None => return Err(TxError::MissingChainId.into()),
                Some(0) => return Err(TxError::ZeroChainId.into()),
                Some(_) => {}
            }
            self.sign_unprotected_transaction(tx).await
        }
    }

    /// Signs a transaction even if it has no chain id, so that it can be replayed on every
    /// chain. Only for the rare cases that need it (for example deterministic deployers).
    fn sign_unprotected_transaction(
        &self,
        tx: Transaction,
    ) -> impl Future<Output = Result<SignedTransaction, Error>> + Send
    where
        Self: Sized,
    {
        async move {
            let signature = self.sign_digest(&tx.signing_hash()).await?;
            Ok(tx.into_signed(signature))
        }
    }

    /// Signs an EIP-7702 authorization. Chain id 0 (valid on every chain) is refused: use
    /// [`Signer::sign_authorization_for_every_chain`] to sign one on purpose.
    fn sign_authorization(
        &self,
        authorization: Authorization,
    ) -> impl Future<Output = Result<SignedAuthorization, Error>> + Send
    where
        Self: Sized,
    {
        async move {
            if authorization.chain_id == 0 {
                return Err(TxError::ZeroChainId.into());
            }
            self.sign_authorization_for_every_chain(authorization).await
        }
    }

    /// Signs an EIP-7702 authorization even with chain id 0, which lets anyone install the
    /// delegation on every chain where the account's nonce matches.
    fn sign_authorization_for_every_chain(
        &self,
        authorization: Authorization,
    ) -> impl Future<Output = Result<SignedAuthorization, Error>> + Send
    where
        Self: Sized,
    {
        async move {
            let signature = self.sign_digest(&authorization.signing_hash()).await?;
            Ok(authorization.into_signed(signature))
        }
    }

    /// Signs `message` the way `personal_sign` (EIP-191) does.
    fn sign_message(&self, message: &[u8]) -> impl Future<Output = Result<Signature, Error>> + Send
    where
        Self: Sized,
    {
        let digest = eip191_hash(message);
        async move { self.sign_digest(&digest).await }
    }
}
