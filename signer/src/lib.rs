//! Ethereum accounts whose secp256k1 private key lives in AWS KMS.
//!
//! The pure modules (addresses, public keys, signatures, transactions, messages) do no I/O
//! and never panic on any input. [`KmsSigner`] (feature `kms`, on by default) is the one
//! type that talks to the network; without it the crate has no AWS SDK, for the fuzz targets.
//! Every signature a [`Signer`] hands out has a low `s`, has been verified against the
//! signer's own public key, and carries the recovery id that recovers it to the signer's
//! address.

mod address;
mod authorization;
mod blob;
mod fixed_base;
mod hash;
#[cfg(feature = "kms")]
mod kms;
#[cfg(feature = "insecure-local-signer")]
mod local;
mod message;
mod public_key;
mod sign;
mod signature;
mod tx;
mod units;

pub use address::{Address, AddressError};
pub use authorization::{Authorization, SignedAuthorization, AUTHORIZATION_MAGIC};
#[cfg(feature = "kms")]
pub use aws_sdk_kms::types::KeyState;
pub use blob::{
    decode_simple, encode_simple, kzg_to_versioned_hash, Blob, BlobError, BlobSidecar, Bytes48,
    SidecarForm, BYTES_PER_BLOB, CELLS_PER_EXT_BLOB, GAS_PER_BLOB, MAX_BLOBS_PER_TX,
    SIMPLE_ENCODING_CAPACITY,
};
pub use hash::{keccak256, B256};
#[cfg(feature = "kms")]
pub use kms::{
    arn_in_region, fails_over, KmsError, KmsErrorKind, KmsSigner, MultiRegionSigner, RegionHealth,
};
#[cfg(feature = "insecure-local-signer")]
pub use local::InsecureLocalSigner;
pub use message::eip191_hash;
pub use public_key::{PublicKey, PublicKeyError, ETHEREUM_KEY_SPEC};
pub use ruint::aliases::U256;
pub use sign::Signer;
pub use signature::{
    encode_der, finalize, finalize_prepared, normalize_s, parse_der, recover_public_key,
    recover_signer, PreparedKey, Signature, SignatureError,
};
pub use tx::{
    AccessListItem, Eip1559Tx, Eip2930Tx, Eip4844Tx, Eip7702Tx, LegacyTx, SignedTransaction,
    Transaction, TxError,
};
pub use units::{format_ether, format_gwei, parse_amount, AmountError};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// KMS refused or failed.
    #[cfg(feature = "kms")]
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The signature was malformed or did not recover to the signer.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The transaction could not be signed.
    #[error(transparent)]
    Transaction(#[from] TxError),
}
