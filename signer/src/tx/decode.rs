//! The strict decoder of signed raw transactions: canonical RLP, minimal integers within
//! their field's width, 20-byte addresses, no trailing bytes, and each type's own rules
//! (authorizations, versioned hashes, the shape of a type-3 sidecar).

use rlp::Rlp;
use ruint::aliases::U256;

use super::{
    AccessListItem, Eip1559Tx, Eip2930Tx, Eip4844Tx, Eip7702Tx, LegacyTx, SignedTransaction,
    Transaction, TxError,
};
use crate::address::Address;
use crate::authorization::{Authorization, SignedAuthorization};
use crate::blob::{Blob, BlobSidecar, SidecarForm, VERSIONED_HASH_VERSION_KZG};
use crate::hash::B256;
use crate::signature::Signature;

/// The most blobs a transaction could ever carry (Prague's blob limit per block).
const MAX_BLOBS_EVER: usize = 9;

impl SignedTransaction {
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
