//! Ethereum transactions: legacy (with EIP-155 replay protection), EIP-2930, EIP-1559,
//! EIP-4844 (type 3, blobs; with or without the sidecar of the network form) and EIP-7702
//! (type 4, with an authorization list).
//! Signing hashes, signed envelopes (raw transactions), transaction hashes, and a strict
//! decoder for signed raw transactions. Pure code that never panics on any input.
//!
//! The types and what every type shares live here; `encode` writes each type's signing
//! preimage and signed envelope, `decode` is the strict decoder.

mod decode;
mod encode;

use ruint::aliases::U256;

use crate::address::Address;
use crate::authorization::SignedAuthorization;
use crate::blob::BlobSidecar;
use crate::hash::B256;
use crate::signature::{recover_signer, Signature, SignatureError};

/// One entry of an EIP-2930 access list: an account and the storage slots the transaction
/// declares it will touch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessListItem {
    /// The account.
    pub address: Address,
    /// The storage keys of that account.
    pub storage_keys: Vec<B256>,
}

/// A legacy transaction. With a chain id it is signed under EIP-155; without one it can be
/// replayed on every chain, which [`crate::Signer`] refuses unless asked explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyTx {
    /// EIP-155 chain id; `None` makes an unprotected (replayable) transaction.
    pub chain_id: Option<u64>,
    /// Sender's transaction count.
    pub nonce: u64,
    /// Price per unit of gas, in wei.
    pub gas_price: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract.
    pub to: Option<Address>,
    /// Amount transferred, in wei.
    pub value: U256,
    /// Call data or contract init code.
    pub input: Vec<u8>,
}

/// An EIP-2930 (type 1) transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eip2930Tx {
    /// Chain id.
    pub chain_id: u64,
    /// Sender's transaction count.
    pub nonce: u64,
    /// Price per unit of gas, in wei.
    pub gas_price: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract.
    pub to: Option<Address>,
    /// Amount transferred, in wei.
    pub value: U256,
    /// Call data or contract init code.
    pub input: Vec<u8>,
    /// Accounts and storage keys the transaction declares.
    pub access_list: Vec<AccessListItem>,
}

/// An EIP-1559 (type 2) transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eip1559Tx {
    /// Chain id.
    pub chain_id: u64,
    /// Sender's transaction count.
    pub nonce: u64,
    /// Tip per unit of gas paid to the block producer, in wei.
    pub max_priority_fee_per_gas: U256,
    /// Most the sender pays per unit of gas (base fee plus tip), in wei.
    pub max_fee_per_gas: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract.
    pub to: Option<Address>,
    /// Amount transferred, in wei.
    pub value: U256,
    /// Call data or contract init code.
    pub input: Vec<u8>,
    /// Accounts and storage keys the transaction declares.
    pub access_list: Vec<AccessListItem>,
}

/// An EIP-7702 (type 4) transaction: an EIP-1559 call that also installs delegations.
/// It always has a recipient (it cannot create a contract).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eip7702Tx {
    /// Chain id.
    pub chain_id: u64,
    /// Sender's transaction count.
    pub nonce: u64,
    /// Tip per unit of gas paid to the block producer, in wei.
    pub max_priority_fee_per_gas: U256,
    /// Most the sender pays per unit of gas (base fee plus tip), in wei.
    pub max_fee_per_gas: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient.
    pub to: Address,
    /// Amount transferred, in wei.
    pub value: U256,
    /// Call data.
    pub input: Vec<u8>,
    /// Accounts and storage keys the transaction declares.
    pub access_list: Vec<AccessListItem>,
    /// The signed authorizations it carries (at least one).
    pub authorization_list: Vec<SignedAuthorization>,
}

/// An EIP-4844 (type 3) transaction: an EIP-1559 call that carries blobs, committed to by
/// their versioned hashes. It always has a recipient (it cannot create a contract).
///
/// The sidecar (the blobs, commitments and proofs) is not signed and not part of the
/// transaction's hash; with it, the signed envelope is the network form that
/// `eth_sendRawTransaction` takes, without it the form a block holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eip4844Tx {
    /// Chain id.
    pub chain_id: u64,
    /// Sender's transaction count.
    pub nonce: u64,
    /// Tip per unit of gas paid to the block producer, in wei.
    pub max_priority_fee_per_gas: U256,
    /// Most the sender pays per unit of gas (base fee plus tip), in wei.
    pub max_fee_per_gas: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient.
    pub to: Address,
    /// Amount transferred, in wei.
    pub value: U256,
    /// Call data.
    pub input: Vec<u8>,
    /// Accounts and storage keys the transaction declares.
    pub access_list: Vec<AccessListItem>,
    /// Most the sender pays per unit of blob gas, in wei.
    pub max_fee_per_blob_gas: U256,
    /// The versioned hashes of the blobs' KZG commitments (at least one).
    pub blob_versioned_hashes: Vec<B256>,
    /// The blobs with their commitments and proofs, for the network form.
    pub sidecar: Option<BlobSidecar>,
}

/// An unsigned transaction of any supported type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    /// Type 0.
    Legacy(LegacyTx),
    /// Type 1.
    Eip2930(Eip2930Tx),
    /// Type 2.
    Eip1559(Eip1559Tx),
    /// Type 3.
    Eip4844(Eip4844Tx),
    /// Type 4.
    Eip7702(Eip7702Tx),
}

/// A signed transaction with its envelope (the raw bytes a node accepts) and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The transaction that was signed.
    pub tx: Transaction,
    /// The signature over [`Transaction::signing_hash`].
    pub signature: Signature,
    /// The signed envelope, ready for `eth_sendRawTransaction` (for a type-3 transaction
    /// with a sidecar, the network form that carries it).
    pub raw: Vec<u8>,
    /// The transaction hash (Keccak-256 of the signed envelope, without any sidecar).
    pub hash: B256,
}

/// Why a transaction could not be encoded, decoded or signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The input is empty.
    #[error("the raw transaction is empty")]
    Empty,
    /// The first byte names a transaction type this crate does not support.
    #[error("transaction type 0x{0:02x} is not supported (legacy, 0x01, 0x02, 0x03 and 0x04 are)")]
    UnsupportedType(u8),
    /// The RLP structure is malformed or not canonical.
    #[error("malformed RLP: {reason}")]
    Rlp {
        /// What the RLP decoder objected to.
        reason: String,
    },
    /// Bytes follow the end of the transaction.
    #[error("{0} unexpected bytes after the end of the transaction")]
    TrailingBytes(usize),
    /// The RLP list has the wrong number of fields for its type.
    #[error("a signed {tx_type} transaction has {expected} fields, this one has {got}")]
    FieldCount {
        /// The transaction type.
        tx_type: &'static str,
        /// How many fields that type has.
        expected: usize,
        /// How many were found.
        got: usize,
    },
    /// An integer field has a leading zero byte (RLP integers are minimal).
    #[error("field {field} is not a canonical integer (leading zero byte)")]
    NonCanonicalInteger {
        /// The field's name.
        field: &'static str,
    },
    /// An integer field is wider than its type allows.
    #[error("field {field} overflows {bits} bits")]
    IntegerOverflow {
        /// The field's name.
        field: &'static str,
        /// The field's width.
        bits: u32,
    },
    /// An address field is neither empty (contract creation, `to` only) nor 20 bytes.
    #[error("field {field} must be a 20-byte address, got {len} bytes")]
    BadAddress {
        /// The field's name.
        field: &'static str,
        /// The length found.
        len: usize,
    },
    /// An access list storage key is not 32 bytes.
    #[error("access list storage keys must be 32 bytes, got {len} bytes")]
    BadStorageKey {
        /// The length found.
        len: usize,
    },
    /// A legacy `v` is neither 27/28 nor an EIP-155 value `chain_id * 2 + 35/36`.
    #[error("legacy signature v = {v} is neither 27/28 nor an EIP-155 value")]
    InvalidV {
        /// The `v` found.
        v: U256,
    },
    /// A type-4 transaction without authorizations (EIP-7702 makes it invalid).
    #[error("an EIP-7702 transaction needs at least one authorization")]
    EmptyAuthorizationList,
    /// A type-3 transaction without blobs (EIP-4844 makes it invalid).
    #[error("an EIP-4844 transaction needs at least one blob versioned hash")]
    EmptyBlobHashes,
    /// A blob versioned hash is not 32 bytes, or not of the KZG version.
    #[error(
        "blob versioned hash {index} is not a 32-byte hash starting with 0x01 (the KZG version)"
    )]
    BadVersionedHash {
        /// The hash's position.
        index: usize,
    },
    /// The network form's sidecar is malformed (wrong wrapper version, blob or proof sizes,
    /// counts that do not fit together).
    #[error("malformed blob sidecar: {reason}")]
    BadSidecar {
        /// What is wrong with it.
        reason: String,
    },
    /// A typed transaction's `y_parity` is not 0 or 1.
    #[error("signature y_parity must be 0 or 1")]
    InvalidYParity,
    /// A legacy transaction without chain id was about to be signed. Such a transaction can
    /// be replayed on every EVM chain, so it must be asked for explicitly.
    #[error(
        "refusing to sign a legacy transaction without a chain id: it could be replayed on any \
         chain; give a chain id (EIP-155) or ask for an unprotected transaction explicitly"
    )]
    MissingChainId,
    /// Chain id 0 names no chain; it is almost always a configuration mistake.
    #[error("chain id 0 is not a valid chain id; give the id of the chain the transaction is for")]
    ZeroChainId,
    /// The bytes decode, but are not the canonical encoding of what they hold (an integer
    /// written in long form, a list where a byte string belongs, stray bytes inside a list).
    /// Accepting them would give one transaction several hashes.
    #[error("the transaction is not canonically encoded (it decodes, but re-encodes to different bytes)")]
    NonCanonical,
    /// The signature could not be recovered.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl From<rlp::DecoderError> for TxError {
    fn from(err: rlp::DecoderError) -> Self {
        TxError::Rlp {
            reason: err.to_string(),
        }
    }
}

impl Transaction {
    /// The EIP-2718 type byte: 0 (legacy) to 4 (EIP-7702).
    pub fn tx_type(&self) -> u8 {
        match self {
            Transaction::Legacy(_) => 0,
            Transaction::Eip2930(_) => 1,
            Transaction::Eip1559(_) => 2,
            Transaction::Eip4844(_) => 3,
            Transaction::Eip7702(_) => 4,
        }
    }

    /// The chain id, if the transaction is bound to one.
    pub fn chain_id(&self) -> Option<u64> {
        match self {
            Transaction::Legacy(tx) => tx.chain_id,
            Transaction::Eip2930(tx) => Some(tx.chain_id),
            Transaction::Eip1559(tx) => Some(tx.chain_id),
            Transaction::Eip4844(tx) => Some(tx.chain_id),
            Transaction::Eip7702(tx) => Some(tx.chain_id),
        }
    }

    /// Sender's transaction count.
    pub fn nonce(&self) -> u64 {
        match self {
            Transaction::Legacy(tx) => tx.nonce,
            Transaction::Eip2930(tx) => tx.nonce,
            Transaction::Eip1559(tx) => tx.nonce,
            Transaction::Eip4844(tx) => tx.nonce,
            Transaction::Eip7702(tx) => tx.nonce,
        }
    }

    /// Recipient; `None` for contract creation.
    pub fn to(&self) -> Option<Address> {
        match self {
            Transaction::Legacy(tx) => tx.to,
            Transaction::Eip2930(tx) => tx.to,
            Transaction::Eip1559(tx) => tx.to,
            Transaction::Eip4844(tx) => Some(tx.to),
            Transaction::Eip7702(tx) => Some(tx.to),
        }
    }

    /// The call data (or init code, for a contract creation).
    pub fn input(&self) -> &[u8] {
        match self {
            Transaction::Legacy(tx) => &tx.input,
            Transaction::Eip2930(tx) => &tx.input,
            Transaction::Eip1559(tx) => &tx.input,
            Transaction::Eip4844(tx) => &tx.input,
            Transaction::Eip7702(tx) => &tx.input,
        }
    }

    /// The most paid per gas: the gas price, or the EIP-1559 max fee.
    pub fn max_price_per_gas(&self) -> U256 {
        match self {
            Transaction::Legacy(tx) => tx.gas_price,
            Transaction::Eip2930(tx) => tx.gas_price,
            Transaction::Eip1559(tx) => tx.max_fee_per_gas,
            Transaction::Eip4844(tx) => tx.max_fee_per_gas,
            Transaction::Eip7702(tx) => tx.max_fee_per_gas,
        }
    }

    /// The gas limit.
    pub fn gas_limit(&self) -> u64 {
        match self {
            Transaction::Legacy(tx) => tx.gas_limit,
            Transaction::Eip2930(tx) => tx.gas_limit,
            Transaction::Eip1559(tx) => tx.gas_limit,
            Transaction::Eip4844(tx) => tx.gas_limit,
            Transaction::Eip7702(tx) => tx.gas_limit,
        }
    }

    /// Amount transferred, in wei.
    pub fn value(&self) -> U256 {
        match self {
            Transaction::Legacy(tx) => tx.value,
            Transaction::Eip2930(tx) => tx.value,
            Transaction::Eip1559(tx) => tx.value,
            Transaction::Eip4844(tx) => tx.value,
            Transaction::Eip7702(tx) => tx.value,
        }
    }
}

impl SignedTransaction {
    /// Recovers the sender's address from the signature. High-s signatures are refused.
    pub fn recover_signer(&self) -> Result<Address, SignatureError> {
        recover_signer(&self.tx.signing_hash(), &self.signature)
    }

    /// The signed transaction without its blob sidecar (type 3): the form a block holds,
    /// with the same hash and signature. Other transactions are returned as they are.
    pub fn without_sidecar(self) -> SignedTransaction {
        match self.tx {
            Transaction::Eip4844(mut tx) if tx.sidecar.is_some() => {
                tx.sidecar = None;
                Transaction::Eip4844(tx).into_signed(self.signature)
            }
            tx => SignedTransaction { tx, ..self },
        }
    }

    /// The raw transaction as `0x`-prefixed hex, as `eth_sendRawTransaction` and
    /// `cast publish` take it.
    pub fn raw_hex(&self) -> String {
        format!("0x{}", hex::encode(&self.raw))
    }
}
