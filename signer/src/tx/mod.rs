//! Ethereum transactions: legacy (with EIP-155 replay protection), EIP-2930, EIP-1559,
//! EIP-4844 (type 3, blobs; with or without the sidecar of the network form) and EIP-7702
//! (type 4, with an authorization list).
//! Signing hashes, signed envelopes (raw transactions), transaction hashes, and a strict
//! decoder for signed raw transactions. Pure code that never panics on any input.

use rlp::{Rlp, RlpStream};
use ruint::aliases::U256;

use crate::address::Address;
use crate::authorization::{Authorization, SignedAuthorization};
use crate::blob::{Blob, BlobSidecar, SidecarForm, VERSIONED_HASH_VERSION_KZG};
use crate::hash::{keccak256, keccak256_concat, B256};
use crate::signature::{recover_signer, Signature, SignatureError};

/// The most blobs a transaction could ever carry (Prague's blob limit per block).
const MAX_BLOBS_EVER: usize = 9;

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
    /// The EIP-2718 type byte: 0, 1 or 2.
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

    /// The hash the sender signs.
    pub fn signing_hash(&self) -> B256 {
        match self {
            Transaction::Legacy(tx) => {
                let mut s = RlpStream::new();
                match tx.chain_id {
                    // EIP-155: the chain id and two empty values take the signature's place.
                    Some(chain_id) => {
                        s.begin_list(9);
                        append_legacy_fields(&mut s, tx);
                        s.append(&chain_id);
                        s.append(&0u8);
                        s.append(&0u8);
                    }
                    None => {
                        s.begin_list(6);
                        append_legacy_fields(&mut s, tx);
                    }
                }
                keccak256(s.out())
            }
            typed => keccak256_concat(&[&[typed.tx_type()], &typed.encode_typed_payload(None)]),
        }
    }

    /// Attaches `signature` and encodes the signed envelope (for a type-3 transaction with
    /// a sidecar, the network form; its hash is still the envelope's without the sidecar).
    pub fn into_signed(self, signature: Signature) -> SignedTransaction {
        let envelope = match &self {
            Transaction::Legacy(tx) => {
                let parity = u64::from(signature.y_parity);
                let v = match tx.chain_id {
                    Some(chain_id) => {
                        U256::from(chain_id) * U256::from(2) + U256::from(35 + parity)
                    }
                    None => U256::from(27 + parity),
                };
                let mut s = RlpStream::new_list(9);
                append_legacy_fields(&mut s, tx);
                append_u256(&mut s, &v);
                append_signature_scalars(&mut s, &signature);
                s.out().to_vec()
            }
            typed => {
                let mut raw = vec![typed.tx_type()];
                raw.extend_from_slice(&typed.encode_typed_payload(Some(&signature)));
                raw
            }
        };
        let hash = keccak256(&envelope);
        let raw = match &self {
            Transaction::Eip4844(Eip4844Tx {
                sidecar: Some(sidecar),
                ..
            }) => encode_network_form(&envelope, sidecar),
            _ => envelope,
        };
        SignedTransaction {
            tx: self,
            signature,
            raw,
            hash,
        }
    }

    /// The RLP list of a typed transaction's fields, with the signature appended if given.
    fn encode_typed_payload(&self, signature: Option<&Signature>) -> Vec<u8> {
        let extra = if signature.is_some() { 3 } else { 0 };
        let mut s = RlpStream::new();
        match self {
            Transaction::Legacy(_) => return Vec::new(),
            Transaction::Eip2930(tx) => {
                s.begin_list(8 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.gas_price);
                s.append(&tx.gas_limit);
                append_to(&mut s, tx.to.as_ref());
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
            }
            Transaction::Eip1559(tx) => {
                s.begin_list(9 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.max_priority_fee_per_gas);
                append_u256(&mut s, &tx.max_fee_per_gas);
                s.append(&tx.gas_limit);
                append_to(&mut s, tx.to.as_ref());
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
            }
            Transaction::Eip4844(tx) => {
                s.begin_list(11 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.max_priority_fee_per_gas);
                append_u256(&mut s, &tx.max_fee_per_gas);
                s.append(&tx.gas_limit);
                append_to(&mut s, Some(&tx.to));
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
                append_u256(&mut s, &tx.max_fee_per_blob_gas);
                s.begin_list(tx.blob_versioned_hashes.len());
                for hash in &tx.blob_versioned_hashes {
                    s.append(&hash.as_slice());
                }
            }
            Transaction::Eip7702(tx) => {
                s.begin_list(10 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.max_priority_fee_per_gas);
                append_u256(&mut s, &tx.max_fee_per_gas);
                s.append(&tx.gas_limit);
                append_to(&mut s, Some(&tx.to));
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
                s.begin_list(tx.authorization_list.len());
                for authorization in &tx.authorization_list {
                    authorization.append_to(&mut s);
                }
            }
        }
        if let Some(signature) = signature {
            s.append(&u8::from(signature.y_parity));
            append_signature_scalars(&mut s, signature);
        }
        s.out().to_vec()
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

    /// Decodes a signed raw transaction (legacy RLP or an EIP-2718 typed envelope). The
    /// encoding is checked strictly: canonical RLP, minimal integers within their field's
    /// width, 20-byte addresses, no trailing bytes. The signature is not checked here; call
    /// [`SignedTransaction::recover_signer`].
    pub fn decode(raw: &[u8]) -> Result<Self, TxError> {
        let (&first, payload) = raw.split_first().ok_or(TxError::Empty)?;
        let (tx, signature) = match first {
            0xc0..=0xff => decode_legacy(raw)?,
            0x01 => decode_eip2930(payload)?,
            0x02 => decode_eip1559(payload)?,
            0x03 => decode_eip4844(payload)?,
            0x04 => decode_eip7702(payload)?,
            other => return Err(TxError::UnsupportedType(other)),
        };
        // The rlp crate's item accessors are lenient (a long-form single byte, a list read
        // as bytes, stray bytes at the end of a list all pass), so canonical form is checked
        // once, completely, by re-encoding: only the canonical encoding survives the trip.
        let signed = tx.into_signed(signature);
        if signed.raw != raw {
            return Err(TxError::NonCanonical);
        }
        Ok(signed)
    }
}

/// The network form of a signed type-3 envelope (`0x03 || rlp(signed fields)`) with its
/// sidecar: `0x03 || rlp([signed fields, blobs, commitments, proofs])` (EIP-4844), or
/// `0x03 || rlp([signed fields, 1, blobs, commitments, cell proofs])` (EIP-7594).
fn encode_network_form(envelope: &[u8], sidecar: &BlobSidecar) -> Vec<u8> {
    let signed_fields = envelope.get(1..).unwrap_or_default();
    let mut s = RlpStream::new();
    match sidecar.form {
        SidecarForm::Eip4844 => {
            s.begin_list(4);
            s.append_raw(signed_fields, 1);
        }
        SidecarForm::Eip7594 => {
            s.begin_list(5);
            s.append_raw(signed_fields, 1);
            s.append(&1u8);
        }
    }
    s.begin_list(sidecar.blobs.len());
    for blob in &sidecar.blobs {
        s.append(&blob.as_bytes());
    }
    for points in [&sidecar.commitments, &sidecar.proofs] {
        s.begin_list(points.len());
        for point in points {
            s.append(&point.as_slice());
        }
    }
    let mut raw = vec![0x03];
    raw.extend_from_slice(&s.out());
    raw
}

fn append_legacy_fields(s: &mut RlpStream, tx: &LegacyTx) {
    s.append(&tx.nonce);
    append_u256(s, &tx.gas_price);
    s.append(&tx.gas_limit);
    append_to(s, tx.to.as_ref());
    append_u256(s, &tx.value);
    s.append(&tx.input);
}

fn append_u256(s: &mut RlpStream, value: &U256) {
    s.append(&value.to_be_bytes_trimmed_vec());
}

fn append_to(s: &mut RlpStream, to: Option<&Address>) {
    match to {
        Some(address) => s.append(&address.0.as_slice()),
        None => s.append_empty_data(),
    };
}

fn append_signature_scalars(s: &mut RlpStream, signature: &Signature) {
    append_u256(s, &U256::from_be_bytes(signature.r));
    append_u256(s, &U256::from_be_bytes(signature.s));
}

fn append_access_list(s: &mut RlpStream, list: &[AccessListItem]) {
    s.begin_list(list.len());
    for item in list {
        s.begin_list(2);
        s.append(&item.address.0.as_slice());
        s.begin_list(item.storage_keys.len());
        for key in &item.storage_keys {
            s.append(&key.as_slice());
        }
    }
}

/// A cursor over the fields of one RLP list, decoding each with the field's name at hand
/// for error messages.
struct Fields<'a> {
    list: Rlp<'a>,
    next: usize,
}

impl<'a> Fields<'a> {
    /// Opens `bytes` as exactly one RLP list of `expected` items.
    fn open(bytes: &'a [u8], tx_type: &'static str, expected: usize) -> Result<Self, TxError> {
        let list = Rlp::new(bytes);
        let info = list.payload_info()?;
        let used = info.header_len + info.value_len;
        if used < bytes.len() {
            return Err(TxError::TrailingBytes(bytes.len() - used));
        }
        if !list.is_list() {
            return Err(TxError::Rlp {
                reason: "a transaction must be an RLP list".into(),
            });
        }
        let got = list.item_count()?;
        if got != expected {
            return Err(TxError::FieldCount {
                tx_type,
                expected,
                got,
            });
        }
        Ok(Fields { list, next: 0 })
    }

    fn item(&mut self) -> Result<Rlp<'a>, TxError> {
        let item = self.list.at(self.next)?;
        self.next += 1;
        Ok(item)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, TxError> {
        Ok(self.item()?.data()?.to_vec())
    }

    fn uint(&mut self, field: &'static str, bits: u32) -> Result<U256, TxError> {
        decode_uint(self.item()?.data()?, field, bits)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, TxError> {
        let value = self.uint(field, 64)?;
        u64::try_from(value).map_err(|_| TxError::IntegerOverflow { field, bits: 64 })
    }

    fn scalar(&mut self, field: &'static str) -> Result<[u8; 32], TxError> {
        Ok(self.uint(field, 256)?.to_be_bytes())
    }

    fn to(&mut self) -> Result<Option<Address>, TxError> {
        let data = self.item()?.data()?;
        if data.is_empty() {
            return Ok(None);
        }
        address_from(data, "to").map(Some)
    }

    fn access_list(&mut self) -> Result<Vec<AccessListItem>, TxError> {
        let list = self.item()?;
        if !list.is_list() {
            return Err(TxError::Rlp {
                reason: "access list must be an RLP list".into(),
            });
        }
        list.iter()
            .map(|entry| {
                if !entry.is_list() || entry.item_count()? != 2 {
                    return Err(TxError::Rlp {
                        reason: "access list entries must be [address, [storage keys]]".into(),
                    });
                }
                let address = address_from(entry.at(0)?.data()?, "access list address")?;
                let keys = entry.at(1)?;
                if !keys.is_list() {
                    return Err(TxError::Rlp {
                        reason: "access list storage keys must be an RLP list".into(),
                    });
                }
                let storage_keys = keys
                    .iter()
                    .map(|key| {
                        let data = key.data()?;
                        B256::try_from(data).map_err(|_| TxError::BadStorageKey { len: data.len() })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(AccessListItem {
                    address,
                    storage_keys,
                })
            })
            .collect()
    }

    fn y_parity_and_scalars(&mut self) -> Result<Signature, TxError> {
        let y_parity = match self.uint("y_parity", 8)? {
            v if v == U256::ZERO => false,
            v if v == U256::from(1) => true,
            _ => return Err(TxError::InvalidYParity),
        };
        Ok(Signature {
            y_parity,
            r: self.scalar("r")?,
            s: self.scalar("s")?,
        })
    }
}

fn address_from(data: &[u8], field: &'static str) -> Result<Address, TxError> {
    <[u8; 20]>::try_from(data)
        .map(Address)
        .map_err(|_| TxError::BadAddress {
            field,
            len: data.len(),
        })
}

fn decode_uint(data: &[u8], field: &'static str, bits: u32) -> Result<U256, TxError> {
    if data.first() == Some(&0) {
        return Err(TxError::NonCanonicalInteger { field });
    }
    if data.len() * 8 > bits as usize {
        return Err(TxError::IntegerOverflow { field, bits });
    }
    U256::try_from_be_slice(data).ok_or(TxError::IntegerOverflow { field, bits })
}

fn decode_legacy(raw: &[u8]) -> Result<(Transaction, Signature), TxError> {
    let mut f = Fields::open(raw, "legacy", 9)?;
    let mut tx = LegacyTx {
        nonce: f.u64("nonce")?,
        gas_price: f.uint("gas_price", 256)?,
        gas_limit: f.u64("gas_limit")?,
        to: f.to()?,
        value: f.uint("value", 256)?,
        input: f.bytes()?,
        chain_id: None,
    };
    let v = f.uint("v", 256)?;
    let (chain_id, y_parity) = legacy_v(v)?;
    tx.chain_id = chain_id;
    let signature = Signature {
        r: f.scalar("r")?,
        s: f.scalar("s")?,
        y_parity,
    };
    Ok((Transaction::Legacy(tx), signature))
}

/// Splits a legacy `v` into the chain id (EIP-155) and the y parity.
fn legacy_v(v: U256) -> Result<(Option<u64>, bool), TxError> {
    let invalid = || TxError::InvalidV { v };
    if v == U256::from(27) || v == U256::from(28) {
        return Ok((None, v == U256::from(28)));
    }
    let offset = v.checked_sub(U256::from(35)).ok_or_else(invalid)?;
    let chain_id = u64::try_from(offset / U256::from(2)).map_err(|_| invalid())?;
    Ok((Some(chain_id), offset.bit(0)))
}

fn decode_eip2930(payload: &[u8]) -> Result<(Transaction, Signature), TxError> {
    let mut f = Fields::open(payload, "EIP-2930", 11)?;
    let tx = Eip2930Tx {
        chain_id: f.u64("chain_id")?,
        nonce: f.u64("nonce")?,
        gas_price: f.uint("gas_price", 256)?,
        gas_limit: f.u64("gas_limit")?,
        to: f.to()?,
        value: f.uint("value", 256)?,
        input: f.bytes()?,
        access_list: f.access_list()?,
    };
    Ok((Transaction::Eip2930(tx), f.y_parity_and_scalars()?))
}

fn decode_eip1559(payload: &[u8]) -> Result<(Transaction, Signature), TxError> {
    let mut f = Fields::open(payload, "EIP-1559", 12)?;
    let tx = Eip1559Tx {
        chain_id: f.u64("chain_id")?,
        nonce: f.u64("nonce")?,
        max_priority_fee_per_gas: f.uint("max_priority_fee_per_gas", 256)?,
        max_fee_per_gas: f.uint("max_fee_per_gas", 256)?,
        gas_limit: f.u64("gas_limit")?,
        to: f.to()?,
        value: f.uint("value", 256)?,
        input: f.bytes()?,
        access_list: f.access_list()?,
    };
    Ok((Transaction::Eip1559(tx), f.y_parity_and_scalars()?))
}

fn decode_eip7702(payload: &[u8]) -> Result<(Transaction, Signature), TxError> {
    let mut f = Fields::open(payload, "EIP-7702", 13)?;
    let tx = Eip7702Tx {
        chain_id: f.u64("chain_id")?,
        nonce: f.u64("nonce")?,
        max_priority_fee_per_gas: f.uint("max_priority_fee_per_gas", 256)?,
        max_fee_per_gas: f.uint("max_fee_per_gas", 256)?,
        gas_limit: f.u64("gas_limit")?,
        to: {
            let data = f.item()?.data()?;
            address_from(data, "to")?
        },
        value: f.uint("value", 256)?,
        input: f.bytes()?,
        access_list: f.access_list()?,
        authorization_list: f.authorization_list()?,
    };
    Ok((Transaction::Eip7702(tx), f.y_parity_and_scalars()?))
}

/// A type-3 payload: the signed fields alone (14 items), or the network form, a list whose
/// first item is the list of signed fields, followed by the sidecar.
fn decode_eip4844(payload: &[u8]) -> Result<(Transaction, Signature), TxError> {
    let outer = Rlp::new(payload);
    let info = outer.payload_info()?;
    let used = info.header_len + info.value_len;
    if used < payload.len() {
        return Err(TxError::TrailingBytes(payload.len() - used));
    }
    if !outer.is_list() || outer.item_count()? == 0 || !outer.at(0)?.is_list() {
        let mut f = Fields::open(payload, "EIP-4844", 14)?;
        let tx = eip4844_fields(&mut f)?;
        return Ok((Transaction::Eip4844(tx), f.y_parity_and_scalars()?));
    }
    let bad = |reason: String| TxError::BadSidecar { reason };
    let (form, first_list) = match outer.item_count()? {
        4 => (SidecarForm::Eip4844, 1),
        5 => {
            let version = decode_uint(outer.at(1)?.data()?, "wrapper_version", 8)?;
            if version != U256::from(1) {
                return Err(bad(format!(
                    "wrapper version {version} is not 1, the only EIP-7594 version"
                )));
            }
            (SidecarForm::Eip7594, 2)
        }
        n => {
            return Err(bad(format!(
                "the network form has 4 items (EIP-4844) or 5 (EIP-7594), this one has {n}"
            )))
        }
    };
    let mut f = Fields::open(outer.at(0)?.as_raw(), "EIP-4844", 14)?;
    let mut tx = eip4844_fields(&mut f)?;
    let signature = f.y_parity_and_scalars()?;
    let list_of = |index: usize, what: &str, size: usize| -> Result<Vec<&[u8]>, TxError> {
        let list = outer.at(index)?;
        if !list.is_list() {
            return Err(bad(format!("the {what} must be an RLP list")));
        }
        list.iter()
            .map(|item| {
                let data = item.data()?;
                if data.len() != size {
                    return Err(bad(format!(
                        "each of the {what} is {size} bytes, one is {}",
                        data.len()
                    )));
                }
                Ok(data)
            })
            .collect()
    };
    let point = |data: &[u8]| -> [u8; 48] {
        let mut point = [0u8; 48];
        point.copy_from_slice(data);
        point
    };
    let blobs = list_of(first_list, "blobs", crate::blob::BYTES_PER_BLOB)?
        .into_iter()
        .map(|data| Blob::from_slice(data).ok_or_else(|| bad("a blob has the wrong size".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let sidecar = BlobSidecar {
        form,
        blobs,
        commitments: list_of(first_list + 1, "commitments", 48)?
            .into_iter()
            .map(point)
            .collect(),
        proofs: list_of(first_list + 2, "proofs", 48)?
            .into_iter()
            .map(point)
            .collect(),
    };
    sidecar.check_shape().map_err(|err| bad(err.to_string()))?;
    if sidecar.blobs.len() != tx.blob_versioned_hashes.len() {
        return Err(bad(format!(
            "the transaction signs {} versioned hashes but the sidecar has {} blobs",
            tx.blob_versioned_hashes.len(),
            sidecar.blobs.len()
        )));
    }
    tx.sidecar = Some(sidecar);
    Ok((Transaction::Eip4844(tx), signature))
}

/// The signed fields of a type-3 transaction before the signature.
fn eip4844_fields(f: &mut Fields<'_>) -> Result<Eip4844Tx, TxError> {
    Ok(Eip4844Tx {
        chain_id: f.u64("chain_id")?,
        nonce: f.u64("nonce")?,
        max_priority_fee_per_gas: f.uint("max_priority_fee_per_gas", 256)?,
        max_fee_per_gas: f.uint("max_fee_per_gas", 256)?,
        gas_limit: f.u64("gas_limit")?,
        to: {
            let data = f.item()?.data()?;
            address_from(data, "to")?
        },
        value: f.uint("value", 256)?,
        input: f.bytes()?,
        access_list: f.access_list()?,
        max_fee_per_blob_gas: f.uint("max_fee_per_blob_gas", 256)?,
        blob_versioned_hashes: f.blob_versioned_hashes()?,
        sidecar: None,
    })
}

impl Fields<'_> {
    fn blob_versioned_hashes(&mut self) -> Result<Vec<B256>, TxError> {
        let list = self.item()?;
        if !list.is_list() {
            return Err(TxError::Rlp {
                reason: "the blob versioned hashes must be an RLP list".into(),
            });
        }
        if list.item_count()? == 0 {
            return Err(TxError::EmptyBlobHashes);
        }
        // No fork ever let a transaction carry more: Prague's blocks held 9 blobs, and
        // Osaka caps a transaction at 6 (EIP-7594). A decoder that took more would vouch for
        // a transaction no node accepts.
        if list.item_count()? > MAX_BLOBS_EVER {
            return Err(TxError::Rlp {
                reason: format!(
                    "{} blob versioned hashes: no fork lets a transaction carry more than \
                     {MAX_BLOBS_EVER}",
                    list.item_count()?
                ),
            });
        }
        list.iter()
            .enumerate()
            .map(|(index, item)| {
                let data = item.data()?;
                match B256::try_from(data) {
                    Ok(hash) if hash[0] == VERSIONED_HASH_VERSION_KZG => Ok(hash),
                    _ => Err(TxError::BadVersionedHash { index }),
                }
            })
            .collect()
    }

    fn authorization_list(&mut self) -> Result<Vec<SignedAuthorization>, TxError> {
        let list = self.item()?;
        if !list.is_list() {
            return Err(TxError::Rlp {
                reason: "the authorization list must be an RLP list".into(),
            });
        }
        if list.item_count()? == 0 {
            return Err(TxError::EmptyAuthorizationList);
        }
        list.iter()
            .map(|entry| {
                if !entry.is_list() || entry.item_count()? != 6 {
                    return Err(TxError::Rlp {
                        reason: "authorizations must be [chain_id, address, nonce, y_parity, r, s]"
                            .into(),
                    });
                }
                let mut f = Fields {
                    list: entry,
                    next: 0,
                };
                let authorization = Authorization {
                    chain_id: f.u64("authorization chain_id")?,
                    address: address_from(f.item()?.data()?, "authorization address")?,
                    nonce: f.u64("authorization nonce")?,
                };
                Ok(authorization.into_signed(f.y_parity_and_scalars()?))
            })
            .collect()
    }
}
