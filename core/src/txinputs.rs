//! Transaction inputs checked before any network call, whichever front end they come from:
//! the command line's transaction flags, a JSON-RPC transaction object ([`crate::txobject`])
//! or a sign event ([`crate::event`]). A value parser's error is a [`UsageError`] naming the
//! value as its caller does; a check between fields answers an [`InputError`], which each
//! front end names its own way ([`crate::input`]).

use anyhow::Result;
use kms_eth_signer::{
    encode_simple, parse_amount, AccessListItem, Address, Authorization, Blob, BlobSidecar,
    Eip1559Tx, Eip2930Tx, Eip4844Tx, Eip7702Tx, LegacyTx, SidecarForm, Signature,
    SignedAuthorization, Transaction, GAS_PER_BLOB, MAX_BLOBS_PER_TX, U256,
};

use crate::input::{Field, InputError, Problem};
pub use crate::kind::Kind;
use crate::UsageError;

/// A usage error about one flag or field, named as the caller names it.
pub fn bad(field: &str, problem: impl std::fmt::Display) -> anyhow::Error {
    UsageError(format!("invalid {field}: {problem}")).into()
}

/// An [`InputError`] about `field`.
fn wrong<T>(field: Field, problem: Problem) -> Result<T, InputError> {
    Err(InputError::new(field, problem))
}

/// `value`, or the error that `field` is required.
fn need<T>(value: Option<T>, field: Field) -> Result<T, InputError> {
    value.ok_or(InputError::new(field, Problem::Required))
}

/// Call data or other raw bytes. (An alias, not `Vec<u8>` spelt out, so that clap's derive
/// takes a flag of this type as one value rather than a list.)
pub type Bytes = Vec<u8>;

/// An EIP-2930 access list (an alias for the same reason as [`Bytes`]).
pub type AccessList = Vec<AccessListItem>;

/// A signed EIP-7702 authorization as JSON, in the JSON-RPC specification's names
/// (`{"chainId","address","nonce","yParity","r","s"}`, quantities as 0x hex or numbers), or
/// the name of a file holding it. Its signature is checked to recover.
pub fn parse_authorization(field: &str, text: &str) -> Result<SignedAuthorization> {
    let text = text.trim();
    let json = if text.starts_with('{') {
        text.to_owned()
    } else {
        std::fs::read_to_string(text).map_err(|err| {
            bad(
                field,
                format!("{text:?} is neither JSON nor a readable file: {err}"),
            )
        })?
    };
    let value: serde_json::Value = serde_json::from_str(&json).map_err(|err| bad(field, err))?;
    authorization_value(field, &value)
}

/// A signed EIP-7702 authorization as a JSON value (an item of a transaction object's
/// `authorizationList`), read as [`parse_authorization`] reads its text.
pub fn authorization_value(field: &str, value: &serde_json::Value) -> Result<SignedAuthorization> {
    let fields = value
        .as_object()
        .ok_or_else(|| bad(field, "an authorization is a JSON object"))?;
    const NAMES: [&str; 6] = ["chainId", "address", "nonce", "yParity", "r", "s"];
    if let Some(unknown) = fields.keys().find(|k| !NAMES.contains(&k.as_str())) {
        return Err(bad(field, format!("unknown field {unknown:?}")));
    }
    let number = |name: &str| -> Result<U256> {
        let value = fields
            .get(name)
            .ok_or_else(|| bad(field, format!("missing \"{name}\"")))?;
        let parsed = match value {
            serde_json::Value::String(text) => match text.strip_prefix("0x") {
                Some(digits) if !digits.is_empty() && digits.len() <= 64 => {
                    U256::from_str_radix(digits, 16).ok()
                }
                _ => None,
            },
            serde_json::Value::Number(n) => n.as_u64().map(U256::from),
            _ => None,
        };
        parsed.ok_or_else(|| {
            bad(
                field,
                format!("\"{name}\" is not a 0x hex quantity: {value}"),
            )
        })
    };
    let small = |name: &str| -> Result<u64> {
        u64::try_from(number(name)?)
            .map_err(|_| bad(field, format!("\"{name}\" does not fit in 64 bits")))
    };
    let address = fields
        .get("address")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad(field, "missing \"address\""))?;
    let y_parity = match small("yParity")? {
        0 => false,
        1 => true,
        other => return Err(bad(field, format!("\"yParity\" is {other}, not 0 or 1"))),
    };
    let signed = Authorization {
        chain_id: small("chainId")?,
        address: parse_address(field, address)?,
        nonce: small("nonce")?,
    }
    .into_signed(Signature {
        y_parity,
        r: number("r")?.to_be_bytes(),
        s: number("s")?.to_be_bytes(),
    });
    signed
        .recover_authority()
        .map_err(|err| bad(field, format!("the signature does not recover: {err}")))?;
    Ok(signed)
}

/// A `--blob-file`: the file's bytes in one blob, in the simple encoding (the first field
/// element holds the length, each other one 31 bytes; alloy's `SimpleCoder`, as `cast send
/// --blob` writes them). An empty file, or one above 126,945 bytes, is refused.
pub fn parse_blob_file(field: &str, path: &str) -> Result<Blob> {
    use std::io::Read;
    // At most one byte more than a blob holds is read: a large file (or /dev/zero) given by
    // mistake is refused without being loaded.
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(kms_eth_signer::SIMPLE_ENCODING_CAPACITY as u64 + 1)
                .read_to_end(&mut data)
        })
        .map_err(|err| bad(field, format!("{path}: {err}")))?;
    encode_simple(&data).map_err(|err| bad(field, format!("{path}: {err}")))
}

/// `7594` (cell proofs, the form since Osaka) or `4844` (one proof per blob, before it).
pub fn parse_sidecar_form(field: &str, text: &str) -> Result<SidecarForm> {
    match text.trim().to_ascii_lowercase().as_str() {
        "7594" | "eip7594" | "cell" => Ok(SidecarForm::Eip7594),
        "4844" | "eip4844" | "blob" => Ok(SidecarForm::Eip4844),
        other => Err(bad(
            field,
            format!(
                "{other:?} is not a sidecar form; use 7594 (cell proofs, Osaka and later) or \
                 4844 (one proof per blob, Cancun and Prague)"
            ),
        )),
    }
}

/// EIP-3860's limit on contract init code, in bytes.
pub const MAX_INIT_CODE_SIZE: usize = 49_152;

/// A transaction as given: every given field checked, the rest left for the node (`send`)
/// or reported missing (`sign`).
#[derive(Debug, Clone)]
pub struct TxInputs {
    pub kind: Kind,
    pub to: Option<Address>,
    /// The transaction creates a contract: no recipient, and `data` is the init code. It
    /// must be asked for explicitly; a missing recipient alone is a mistake, not a request.
    pub create: bool,
    pub value: U256,
    pub nonce: Option<u64>,
    pub chain_id: Option<u64>,
    pub gas_limit: Option<u64>,
    pub max_fee_per_gas: Option<U256>,
    pub max_priority_fee_per_gas: Option<U256>,
    pub gas_price: Option<U256>,
    pub data: Bytes,
    pub access_list: AccessList,
    /// EIP-7702 authorizations (type 7702 only).
    pub authorizations: Authorizations,
    /// EIP-4844: the most paid per unit of blob gas (type 4844 only).
    pub max_fee_per_blob_gas: Option<U256>,
    /// EIP-4844: the blobs with their commitments and proofs (type 4844 only); the
    /// transaction signs their versioned hashes.
    pub sidecar: Option<BlobSidecar>,
}

/// Signed EIP-7702 authorizations (an alias for the same reason as [`Bytes`]).
pub type Authorizations = Vec<SignedAuthorization>;

// The parsers below take the flag or field name first, so that every error names it as the
// caller does; the command line uses them as clap value parsers, the event parser field by
// field.

/// `legacy`/`0`, `2930`/`1`, `1559`/`2`, `4844`/`3`, `7702`/`4`.
pub fn parse_kind(field: &str, text: &str) -> Result<Kind> {
    match text.trim().to_ascii_lowercase().as_str() {
        "legacy" | "0" => Ok(Kind::Legacy),
        "2930" | "1" => Ok(Kind::Eip2930),
        "1559" | "2" => Ok(Kind::Eip1559),
        "4844" | "3" => Ok(Kind::Eip4844),
        "7702" | "4" => Ok(Kind::Eip7702),
        other => Err(bad(
            field,
            format!("{other:?} is not a transaction type; use legacy, 2930, 1559, 4844 or 7702"),
        )),
    }
}

/// An address, EIP-55 checksummed or all one case.
pub fn parse_address(field: &str, text: &str) -> Result<Address> {
    text.trim().parse().map_err(|err| bad(field, err))
}

/// A whole number below 2^64 (nonces, chain ids, gas limits).
pub fn parse_u64(field: &str, text: &str) -> Result<u64> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(bad(field, format!("{text:?} is negative")));
    }
    text.parse()
        .map_err(|_| bad(field, format!("{text:?} is not a whole number below 2^64")))
}

/// An amount with a unit (`0.01ether`, `5gwei`) or plain wei.
pub fn parse_wei(field: &str, text: &str) -> Result<U256> {
    parse_amount(text).map_err(|err| bad(field, err))
}

/// 0x-prefixed hex bytes.
pub fn parse_hex(field: &str, text: &str) -> Result<Bytes> {
    let digits = text
        .trim()
        .strip_prefix("0x")
        .ok_or_else(|| bad(field, "hex data must start with 0x"))?;
    hex::decode(digits).map_err(|err| bad(field, format!("not hex: {err}")))
}

/// A transaction hash: 0x and 64 hex digits.
pub fn parse_tx_hash(field: &str, text: &str) -> Result<kms_eth_signer::B256> {
    parse_hex(field, text)?
        .try_into()
        .map_err(|_| bad(field, format!("{text:?}: expected 0x and 64 hex digits")))
}

/// An access list as JSON: `[{"address":"0x...","storageKeys":["0x..."]}]`.
pub fn parse_access_list(field: &str, text: &str) -> Result<AccessList> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Item {
        address: String,
        #[serde(default)]
        storage_keys: Vec<String>,
    }
    let items: Vec<Item> = serde_json::from_str(text).map_err(|err| bad(field, err))?;
    items
        .into_iter()
        .map(|item| {
            Ok(AccessListItem {
                address: parse_address(field, &item.address)?,
                storage_keys: item
                    .storage_keys
                    .iter()
                    .map(|key| {
                        let bytes = parse_hex(field, key)?;
                        <[u8; 32]>::try_from(bytes.as_slice())
                            .map_err(|_| bad(field, format!("storage key {key} is not 32 bytes")))
                    })
                    .collect::<Result<_>>()?,
            })
        })
        .collect()
}

impl TxInputs {
    /// Checks the fields against each other and the type.
    pub fn check(&self) -> Result<(), InputError> {
        if self.chain_id == Some(0) {
            return wrong(Field::ChainId, Problem::ZeroChainId);
        }
        // EIP-2681: a nonce of 2^64-1 could never be followed by another transaction.
        if self.nonce == Some(u64::MAX) {
            return wrong(Field::Nonce, Problem::LastNonce);
        }
        self.check_recipient()?;
        if self.kind != Kind::Eip7702 && !self.authorizations.is_empty() {
            return wrong(Field::Authorizations, Problem::AuthorizationsOutsideEip7702);
        }
        self.check_blobs()?;
        if self.kind == Kind::Eip7702 && self.to.is_none() {
            return wrong(Field::To, Problem::CannotCreate(Kind::Eip7702));
        }
        match self.kind {
            Kind::Eip1559 | Kind::Eip4844 | Kind::Eip7702 => {
                if self.gas_price.is_some() {
                    return wrong(Field::GasPrice, Problem::GasPriceWithFeeMarket(self.kind));
                }
                if let (Some(max), Some(tip)) =
                    (self.max_fee_per_gas, self.max_priority_fee_per_gas)
                {
                    if tip > max {
                        return wrong(Field::MaxPriorityFeePerGas, Problem::TipAboveMaxFee);
                    }
                }
            }
            Kind::Legacy | Kind::Eip2930 => {
                if self.max_fee_per_gas.is_some() || self.max_priority_fee_per_gas.is_some() {
                    return wrong(Field::MaxFeePerGas, Problem::FeeMarketWithGasPrice);
                }
                if self.kind == Kind::Legacy && !self.access_list.is_empty() {
                    return wrong(Field::AccessList, Problem::AccessListInLegacy);
                }
            }
        }
        Ok(())
    }

    /// The blob fields belong to type 4844 only, which needs a recipient and 1 to
    /// [`MAX_BLOBS_PER_TX`] blobs.
    fn check_blobs(&self) -> Result<(), InputError> {
        if self.kind != Kind::Eip4844 {
            if self.sidecar.is_some() {
                return wrong(Field::Blobs, Problem::BlobsOutsideEip4844);
            }
            if self.max_fee_per_blob_gas.is_some() {
                return wrong(Field::MaxFeePerBlobGas, Problem::BlobFeeOutsideEip4844);
            }
            return Ok(());
        }
        if self.to.is_none() {
            return wrong(Field::To, Problem::CannotCreate(Kind::Eip4844));
        }
        if self.max_fee_per_blob_gas == Some(U256::ZERO) {
            return wrong(Field::MaxFeePerBlobGas, Problem::ZeroBlobFee);
        }
        let blobs = self.sidecar.as_ref().map_or(0, |s| s.blobs.len());
        if blobs == 0 {
            return wrong(Field::Blobs, Problem::NoBlobs);
        }
        if blobs > MAX_BLOBS_PER_TX {
            return wrong(Field::Blobs, Problem::TooManyBlobs { blobs });
        }
        Ok(())
    }

    /// The blob gas the transaction uses: [`GAS_PER_BLOB`] per blob.
    pub fn blob_gas(&self) -> u64 {
        let blobs = self.sidecar.as_ref().map_or(0, |s| s.blobs.len());
        GAS_PER_BLOB.saturating_mul(blobs as u64)
    }

    /// A transaction without a recipient creates a contract, and the value sent goes to
    /// that contract. Sent with empty code by a forgotten `--to`, the value is lost: the new
    /// contract has no code to move it. So creation is asked for by name, with its code.
    fn check_recipient(&self) -> Result<(), InputError> {
        match (self.to, self.create) {
            (Some(_), true) => wrong(Field::Create, Problem::CreationWithRecipient),
            (None, false) => wrong(Field::To, Problem::NoRecipient),
            (None, true) if self.data.is_empty() => {
                wrong(Field::Data, Problem::CreationWithoutCode)
            }
            (None, true) if self.data.len() > MAX_INIT_CODE_SIZE => wrong(
                Field::Data,
                Problem::InitCodeTooLarge {
                    max: MAX_INIT_CODE_SIZE,
                    bytes: self.data.len(),
                },
            ),
            _ => Ok(()),
        }
    }

    /// The tip and the max fee of a fee-market type (EIP-1559, EIP-7702), both needed.
    fn fee_market(&self) -> Result<(U256, U256), InputError> {
        Ok((
            need(self.max_priority_fee_per_gas, Field::MaxPriorityFeePerGas)?,
            need(self.max_fee_per_gas, Field::MaxFeePerGas)?,
        ))
    }

    /// The recipient of a type that cannot create a contract.
    fn recipient(&self) -> Result<Address, InputError> {
        self.to.ok_or(InputError::new(Field::To, Problem::Missing))
    }

    /// The transaction, when every field is known; the error names the first missing one.
    pub fn complete(&self) -> Result<Transaction, InputError> {
        let chain_id = need(self.chain_id, Field::ChainId)?;
        let nonce = need(self.nonce, Field::Nonce)?;
        let gas_limit = need(self.gas_limit, Field::GasLimit)?;
        Ok(match self.kind {
            Kind::Legacy => Transaction::Legacy(LegacyTx {
                chain_id: Some(chain_id),
                nonce,
                gas_price: need(self.gas_price, Field::GasPrice)?,
                gas_limit,
                to: self.to,
                value: self.value,
                input: self.data.clone(),
            }),
            Kind::Eip2930 => Transaction::Eip2930(Eip2930Tx {
                chain_id,
                nonce,
                gas_price: need(self.gas_price, Field::GasPrice)?,
                gas_limit,
                to: self.to,
                value: self.value,
                input: self.data.clone(),
                access_list: self.access_list.clone(),
            }),
            Kind::Eip1559 => {
                let (max_priority_fee_per_gas, max_fee_per_gas) = self.fee_market()?;
                Transaction::Eip1559(Eip1559Tx {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas,
                    max_fee_per_gas,
                    gas_limit,
                    to: self.to,
                    value: self.value,
                    input: self.data.clone(),
                    access_list: self.access_list.clone(),
                })
            }
            Kind::Eip4844 => {
                let (max_priority_fee_per_gas, max_fee_per_gas) = self.fee_market()?;
                let sidecar = self
                    .sidecar
                    .clone()
                    .ok_or(InputError::new(Field::Blobs, Problem::Missing))?;
                Transaction::Eip4844(Eip4844Tx {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas,
                    max_fee_per_gas,
                    gas_limit,
                    to: self.recipient()?,
                    value: self.value,
                    input: self.data.clone(),
                    access_list: self.access_list.clone(),
                    max_fee_per_blob_gas: need(self.max_fee_per_blob_gas, Field::MaxFeePerBlobGas)?,
                    blob_versioned_hashes: sidecar.versioned_hashes(),
                    sidecar: Some(sidecar),
                })
            }
            Kind::Eip7702 => {
                if self.authorizations.is_empty() {
                    return wrong(Field::Authorizations, Problem::NoAuthorizations);
                }
                let (max_priority_fee_per_gas, max_fee_per_gas) = self.fee_market()?;
                Transaction::Eip7702(Eip7702Tx {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas,
                    max_fee_per_gas,
                    gas_limit,
                    to: self.recipient()?,
                    value: self.value,
                    input: self.data.clone(),
                    access_list: self.access_list.clone(),
                    authorization_list: self.authorizations.clone(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Flags;

    fn inputs() -> TxInputs {
        TxInputs {
            kind: Kind::Eip1559,
            to: Some(
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                    .parse()
                    .unwrap(),
            ),
            create: false,
            value: U256::from(1u8),
            nonce: Some(0),
            chain_id: Some(31337),
            gas_limit: Some(21_000),
            max_fee_per_gas: Some(U256::from(2u8)),
            max_priority_fee_per_gas: Some(U256::from(1u8)),
            gas_price: None,
            data: Vec::new(),
            access_list: Vec::new(),
            authorizations: Vec::new(),
            max_fee_per_blob_gas: None,
            sidecar: None,
        }
    }

    fn refusal(inputs: &TxInputs) -> String {
        inputs.check().expect_err("accepted").message(&Flags)
    }

    #[test]
    fn a_missing_recipient_is_refused_unless_creation_is_asked_for_with_code() {
        let mut tx = inputs();
        tx.to = None;
        assert!(refusal(&tx).starts_with("invalid --to: missing"));
        tx.create = true;
        assert!(refusal(&tx).starts_with("invalid --data: --create needs"));
        tx.data = vec![0x60; MAX_INIT_CODE_SIZE + 1];
        assert!(refusal(&tx).contains("EIP-3860"));
        tx.data = vec![0x60, 0x00];
        assert!(tx.check().is_ok());
        assert!(tx.complete().unwrap().to().is_none());
        tx.to = inputs().to;
        assert!(refusal(&tx).starts_with("invalid --create"));
    }

    /// A sidecar of `blobs` blobs with made-up points (core checks shapes, not KZG proofs).
    fn sidecar(blobs: usize) -> BlobSidecar {
        BlobSidecar {
            form: SidecarForm::Eip4844,
            blobs: vec![encode_simple(b"blob").unwrap(); blobs],
            commitments: (0..blobs).map(|i| [i as u8; 48]).collect(),
            proofs: vec![[0; 48]; blobs],
        }
    }

    #[test]
    fn blob_fields_belong_to_type_4844_which_needs_a_recipient_and_1_to_6_blobs() {
        let mut tx = inputs();
        tx.max_fee_per_blob_gas = Some(U256::from(1u8));
        assert!(refusal(&tx).starts_with("invalid --max-fee-per-blob-gas: only EIP-4844"));
        tx.max_fee_per_blob_gas = None;
        tx.sidecar = Some(sidecar(1));
        assert!(refusal(&tx).starts_with("invalid --blob-file: only EIP-4844"));
        tx.kind = Kind::Eip4844;
        tx.max_fee_per_blob_gas = Some(U256::from(3u8));
        assert!(tx.check().is_ok());
        assert_eq!(tx.blob_gas(), 131_072);
        let Transaction::Eip4844(complete) = tx.complete().unwrap() else {
            panic!("not type 3")
        };
        assert_eq!(
            complete.blob_versioned_hashes,
            vec![kms_eth_signer::kzg_to_versioned_hash(&[0; 48])]
        );
        tx.sidecar = Some(sidecar(MAX_BLOBS_PER_TX + 1));
        assert!(refusal(&tx).contains("7 blobs are more than the 6"));
        tx.sidecar = None;
        assert!(refusal(&tx).starts_with("invalid --blob-file: missing"));
        tx.sidecar = Some(sidecar(1));
        tx.to = None;
        tx.create = true;
        tx.data = vec![0x60];
        assert!(refusal(&tx).contains("cannot create a contract"));
        tx.to = inputs().to;
        tx.create = false;
        tx.max_fee_per_blob_gas = None;
        let missing = tx.complete().unwrap_err().message(&Flags);
        assert!(
            missing.contains("missing --max-fee-per-blob-gas"),
            "{missing}"
        );
    }

    #[test]
    fn the_nonce_2_pow_64_minus_1_is_refused() {
        let mut tx = inputs();
        tx.nonce = Some(u64::MAX);
        assert!(refusal(&tx).contains("EIP-2681"));
        tx.nonce = Some(u64::MAX - 1);
        assert!(tx.check().is_ok());
    }
}
