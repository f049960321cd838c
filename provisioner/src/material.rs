//! Key material to import into KMS (`kms-eth key import`): a private key read from a Web3
//! Secret Storage keystore (the JSON that geth, clef, cast and ethers write; scrypt or
//! PBKDF2-HMAC-SHA256, AES-128-CTR, a Keccak-256 MAC) or from text (hex, or a PEM private
//! key), checked to be secp256k1, and wrapped for KMS as PKCS#8 under the import parameters'
//! RSA key with RSAES-OAEP-SHA-256. Pure.
//!
//! This is the one place outside KMS where a private key exists: every plaintext copy (the
//! derived key, the decrypted bytes, the PKCS#8 document) is zeroised when dropped, and
//! nothing here writes or logs any of them.

use aes::cipher::{KeyIvInit, StreamCipher};
use k256::pkcs8::EncodePrivateKey;
use kms_eth_signer::{Address, PublicKey};
use rsa::pkcs8::DecodePublicKey;
use serde_json::Value;
use sha3::{Digest, Keccak256};
use zeroize::Zeroizing;

/// The largest scrypt work a keystore may ask for: `128 * r * n` bytes of memory, 1 GiB
/// (geth's standard keystore, n = 2^18 and r = 8, needs 256 MiB). A keystore is input: a
/// huge `n` would otherwise take the machine's memory.
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// The most PBKDF2 iterations a keystore may ask for (geth writes 262,144).
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// Why material cannot be imported; found before any call to KMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterialError {
    /// The keystore is not Web3 Secret Storage JSON, or a field is missing or malformed.
    #[error("the keystore is not a Web3 Secret Storage file: {0}")]
    Keystore(String),
    /// The keystore uses a KDF, cipher or parameter this reader refuses.
    #[error("the keystore is not supported: {0}")]
    Unsupported(String),
    /// The MAC does not match: the password is wrong (or the file was altered).
    #[error(
        "wrong password for the keystore (its MAC does not match what the password derives); \
         nothing was created"
    )]
    WrongPassword,
    /// The key is not a secp256k1 key.
    #[error("the key is {0}, not secp256k1: an Ethereum account needs a secp256k1 key")]
    WrongCurve(String),
    /// The bytes are not a valid private key.
    #[error("not a private key: {0}")]
    NotAKey(String),
    /// The key's address is not the one the keystore (or --expect-address) promised.
    #[error(
        "the key's address is {actual}, but {promised_by} promises {promised}: refusing to \
         import a key that is not the account expected"
    )]
    AddressMismatch {
        /// The address derived from the private key.
        actual: Address,
        /// The address promised.
        promised: Address,
        /// Who promised it: "the keystore" or "--expect-address".
        promised_by: &'static str,
    },
    /// The import parameters' public key is not an RSA key, or wrapping failed.
    #[error("cannot wrap the key for KMS: {0}")]
    Wrapping(String),
}

/// A secp256k1 private key on its way into KMS, with the address it is and the address its
/// source promised (a keystore's `address` field). Zeroised when dropped.
pub struct ImportMaterial {
    secret: k256::SecretKey,
    address: Address,
    promised: Option<Address>,
}

impl std::fmt::Debug for ImportMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        write!(f, "ImportMaterial({})", self.address)
    }
}

impl ImportMaterial {
    fn new(bytes: &[u8], promised: Option<Address>) -> Result<Self, MaterialError> {
        let secret = k256::SecretKey::from_slice(bytes).map_err(|_| {
            MaterialError::NotAKey(
                "not a secp256k1 private key (zero, or not below the curve order)".into(),
            )
        })?;
        let point = Zeroizing::new(secret.public_key().to_sec1_bytes());
        let address = PublicKey::from_sec1_bytes(&point)
            .map_err(|err| MaterialError::NotAKey(err.to_string()))?
            .address();
        Ok(ImportMaterial {
            secret,
            address,
            promised,
        })
    }

    /// The address of the key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The address the keystore said it holds (its optional `address` field).
    pub fn promised_address(&self) -> Option<Address> {
        self.promised
    }

    /// Refuses the key unless it is the address its source promised and, when given, the
    /// address the user expects.
    pub fn check_address(&self, expected: Option<Address>) -> Result<(), MaterialError> {
        for (promised, promised_by) in [
            (self.promised, "the keystore"),
            (expected, "--expect-address"),
        ] {
            if let Some(promised) = promised {
                if promised != self.address {
                    return Err(MaterialError::AddressMismatch {
                        actual: self.address,
                        promised,
                        promised_by,
                    });
                }
            }
        }
        Ok(())
    }

    /// The key as KMS imports asymmetric material (PKCS#8, RFC 5208, DER), encrypted with
    /// RSAES-OAEP-SHA-256 under `wrapping_key` (the DER SubjectPublicKeyInfo from
    /// `GetParametersForImport`).
    pub fn wrap(&self, wrapping_key: &[u8]) -> Result<Vec<u8>, MaterialError> {
        let rsa_key = rsa::RsaPublicKey::from_public_key_der(wrapping_key).map_err(|err| {
            MaterialError::Wrapping(format!("the wrapping key is not RSA: {err}"))
        })?;
        // A SecretDocument zeroises its bytes when dropped.
        let document = self
            .secret
            .to_pkcs8_der()
            .map_err(|err| MaterialError::Wrapping(err.to_string()))?;
        rsa_key
            .encrypt(
                &mut rand_core::OsRng,
                rsa::Oaep::new::<sha2::Sha256>(),
                document.as_bytes(),
            )
            .map_err(|err| MaterialError::Wrapping(err.to_string()))
    }
}

/// Reads a private key given as text: 32 bytes of hex (`0x` optional), or a PEM private key
/// (`PRIVATE KEY`, PKCS#8, or `EC PRIVATE KEY`, SEC1), whose curve must be secp256k1.
pub fn from_text(text: &str) -> Result<ImportMaterial, MaterialError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return from_pem(text);
    }
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 64 {
        return Err(MaterialError::NotAKey(format!(
            "expected 32 bytes of hex (64 digits) or a PEM private key, got {} characters",
            text.len()
        )));
    }
    let bytes =
        Zeroizing::new(hex::decode(digits).map_err(|_| {
            MaterialError::NotAKey("the hex private key has a non-hex digit".into())
        })?);
    ImportMaterial::new(&bytes, None)
}

/// The OID of elliptic-curve keys, and of the named curves a key may come with.
const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const SECP256K1: &str = "1.3.132.0.10";
const CURVE_NAMES: [(&str, &str); 6] = [
    ("1.2.840.10045.3.1.7", "P-256 (ECC_NIST_P256)"),
    ("1.3.132.0.34", "P-384 (ECC_NIST_P384)"),
    ("1.3.132.0.35", "P-521 (ECC_NIST_P521)"),
    ("1.3.101.112", "Ed25519"),
    ("1.2.840.113549.1.1.1", "RSA"),
    ("1.2.156.10197.1.301", "SM2"),
];

fn curve_name(oid: &str) -> String {
    CURVE_NAMES
        .iter()
        .find(|(known, _)| *known == oid)
        .map_or_else(
            || format!("a key with OID {oid}"),
            |(_, name)| (*name).to_owned(),
        )
}

fn from_pem(text: &str) -> Result<ImportMaterial, MaterialError> {
    use pkcs8::der::Decode;
    let not_pem =
        |err: &dyn std::fmt::Display| MaterialError::NotAKey(format!("unreadable PEM: {err}"));
    if text.starts_with("-----BEGIN EC PRIVATE KEY-----") {
        let (_, der) = pkcs8::der::pem::decode_vec(text.as_bytes()).map_err(|e| not_pem(&e))?;
        let der = Zeroizing::new(der);
        let key = sec1::EcPrivateKey::from_der(&der).map_err(|e| not_pem(&e))?;
        let curve = key
            .parameters
            .and_then(|p| p.named_curve())
            .map(|oid| oid.to_string());
        if curve.as_deref() != Some(SECP256K1) {
            return Err(MaterialError::WrongCurve(curve.map_or_else(
                || "a key without a named curve".into(),
                |c| curve_name(&c),
            )));
        }
        return ImportMaterial::new(key.private_key, None);
    }
    let document = pkcs8::SecretDocument::from_pem(text)
        .map(|(_, document)| document)
        .map_err(|e| not_pem(&e))?;
    let info = pkcs8::PrivateKeyInfo::from_der(document.as_bytes()).map_err(|e| not_pem(&e))?;
    let algorithm = info.algorithm.oid.to_string();
    if algorithm != ID_EC_PUBLIC_KEY {
        return Err(MaterialError::WrongCurve(curve_name(&algorithm)));
    }
    let curve = info
        .algorithm
        .parameters_oid()
        .map(|oid| oid.to_string())
        .unwrap_or_default();
    if curve != SECP256K1 {
        return Err(MaterialError::WrongCurve(curve_name(&curve)));
    }
    let key = sec1::EcPrivateKey::from_der(info.private_key).map_err(|e| not_pem(&e))?;
    ImportMaterial::new(key.private_key, None)
}

/// Decrypts a Web3 Secret Storage keystore (version 3) with `password`.
pub fn from_keystore(json: &str, password: &[u8]) -> Result<ImportMaterial, MaterialError> {
    let bad = |what: &str| MaterialError::Keystore(what.to_owned());
    let file: Value = serde_json::from_str(json).map_err(|err| bad(&format!("not JSON: {err}")))?;
    if file.get("version").and_then(Value::as_u64) != Some(3) {
        return Err(MaterialError::Unsupported(
            "only version 3 keystores are read".into(),
        ));
    }
    let promised = match file.get("address").and_then(Value::as_str) {
        None => None,
        Some(text) => Some(
            prefixed(text)
                .parse::<Address>()
                .map_err(|err| bad(&format!("its address field is not an address: {err}")))?,
        ),
    };
    // geth writes "crypto", some older tools "Crypto".
    let crypto = file
        .get("crypto")
        .or_else(|| file.get("Crypto"))
        .ok_or_else(|| bad("no crypto section"))?;
    let field = |name: &str| {
        crypto
            .get(name)
            .ok_or_else(|| bad(&format!("no crypto.{name}")))
    };
    let hex_field = |value: &Value, name: &str| -> Result<Vec<u8>, MaterialError> {
        let text = value
            .as_str()
            .ok_or_else(|| bad(&format!("{name} is not a string")))?;
        hex::decode(text.strip_prefix("0x").unwrap_or(text))
            .map_err(|_| bad(&format!("{name} is not hex")))
    };
    if field("cipher")?.as_str() != Some("aes-128-ctr") {
        return Err(MaterialError::Unsupported(format!(
            "cipher {} (only aes-128-ctr)",
            field("cipher")?
        )));
    }
    let iv = hex_field(&field("cipherparams")?["iv"], "crypto.cipherparams.iv")?;
    let ciphertext = hex_field(field("ciphertext")?, "crypto.ciphertext")?;
    let mac = hex_field(field("mac")?, "crypto.mac")?;
    if iv.len() != 16 || ciphertext.len() != 32 || mac.len() != 32 {
        return Err(bad(
            "the iv must be 16 bytes, the ciphertext 32 (one private key) and the mac 32",
        ));
    }
    let params = field("kdfparams")?;
    let derived = match field("kdf")?.as_str() {
        Some("scrypt") => scrypt_key(params, password)?,
        Some("pbkdf2") => pbkdf2_key(params, password)?,
        other => {
            return Err(MaterialError::Unsupported(format!(
                "kdf {} (only scrypt and pbkdf2)",
                other.unwrap_or("missing")
            )))
        }
    };
    let mut hasher = Keccak256::new();
    hasher.update(&derived[16..32]);
    hasher.update(&ciphertext);
    let expected: [u8; 32] = hasher.finalize().into();
    // Compared without an early exit, so the time does not say how much of it matched.
    if expected
        .iter()
        .zip(&mac)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        != 0
    {
        return Err(MaterialError::WrongPassword);
    }
    let mut plain = Zeroizing::new([0u8; 32]);
    plain.copy_from_slice(&ciphertext);
    let mut cipher = ctr::Ctr128BE::<aes::Aes128>::new(derived[..16].into(), iv[..].into());
    cipher.apply_keystream(&mut plain[..]);
    ImportMaterial::new(&plain[..], promised)
}

fn prefixed(text: &str) -> String {
    if text.starts_with("0x") {
        text.to_owned()
    } else {
        format!("0x{text}")
    }
}

/// A keystore parameter that must be a positive integer.
fn number(params: &Value, name: &str) -> Result<u64, MaterialError> {
    params
        .get(name)
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            MaterialError::Keystore(format!("kdfparams.{name} is not a positive integer"))
        })
}

fn salt(params: &Value) -> Result<Vec<u8>, MaterialError> {
    let text = params
        .get("salt")
        .and_then(Value::as_str)
        .ok_or_else(|| MaterialError::Keystore("no kdfparams.salt".into()))?;
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|_| MaterialError::Keystore("kdfparams.salt is not hex".into()))
}

fn derived_len(params: &Value) -> Result<(), MaterialError> {
    if number(params, "dklen")? != 32 {
        return Err(MaterialError::Unsupported("dklen other than 32".into()));
    }
    Ok(())
}

fn scrypt_key(params: &Value, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, MaterialError> {
    derived_len(params)?;
    let salt = salt(params)?;
    let (n, r, p) = (
        number(params, "n")?,
        number(params, "r")?,
        number(params, "p")?,
    );
    if !n.is_power_of_two() || n < 2 {
        return Err(MaterialError::Keystore(
            "kdfparams.n is not a power of two".into(),
        ));
    }
    let memory = 128u64.saturating_mul(r).saturating_mul(n);
    if memory > MAX_SCRYPT_MEMORY || p > 16 {
        return Err(MaterialError::Unsupported(format!(
            "scrypt parameters n={n} r={r} p={p} would need more than 1 GiB or 16 passes"
        )));
    }
    let out_of_range = |_| MaterialError::Unsupported("scrypt parameters out of range".into());
    let cost = scrypt::Params::new(
        n.trailing_zeros() as u8,
        u32::try_from(r).map_err(out_of_range)?,
        u32::try_from(p).map_err(out_of_range)?,
        32,
    )
    .map_err(|err| MaterialError::Unsupported(format!("scrypt parameters: {err}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, &salt, &cost, &mut key[..])
        .map_err(|err| MaterialError::Unsupported(format!("scrypt: {err}")))?;
    Ok(key)
}

fn pbkdf2_key(params: &Value, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, MaterialError> {
    derived_len(params)?;
    let salt = salt(params)?;
    if params.get("prf").and_then(Value::as_str) != Some("hmac-sha256") {
        return Err(MaterialError::Unsupported(
            "pbkdf2 with a prf other than hmac-sha256".into(),
        ));
    }
    let rounds = u32::try_from(number(params, "c")?)
        .ok()
        .filter(|c| *c <= MAX_PBKDF2_ROUNDS)
        .ok_or_else(|| {
            MaterialError::Unsupported(format!("more than {MAX_PBKDF2_ROUNDS} pbkdf2 rounds"))
        })?;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, rounds, &mut key[..]);
    Ok(key)
}

#[cfg(test)]
mod tests;
