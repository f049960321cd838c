//! Public keys: the DER SubjectPublicKeyInfo that KMS `GetPublicKey` returns, checked to be
//! a secp256k1 point, and turned into an Ethereum address.

use k256::ecdsa::VerifyingKey;
use spki::der::asn1::ObjectIdentifier;
use spki::SubjectPublicKeyInfoRef;

use crate::address::Address;

/// The KMS key spec of an Ethereum key.
pub const ETHEREUM_KEY_SPEC: &str = "ECC_SECG_P256K1";

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Curve OIDs KMS can hand out, with the key spec name KMS uses for each, so that a wrong key
/// is reported in the words the user will find in the KMS console.
const CURVES: [(ObjectIdentifier, &str); 5] = [
    (
        ObjectIdentifier::new_unwrap("1.3.132.0.10"),
        ETHEREUM_KEY_SPEC,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
        "ECC_NIST_P256",
    ),
    (
        ObjectIdentifier::new_unwrap("1.3.132.0.34"),
        "ECC_NIST_P384",
    ),
    (
        ObjectIdentifier::new_unwrap("1.3.132.0.35"),
        "ECC_NIST_P521",
    ),
    (ObjectIdentifier::new_unwrap("1.2.156.10197.1.301"), "SM2"),
];

/// The length of an uncompressed SEC1 secp256k1 point: the `0x04` tag, then `x` and `y`.
const UNCOMPRESSED_LEN: usize = 65;

/// A secp256k1 public key, known to be a valid point on the curve.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

/// Why bytes are not a usable Ethereum public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    /// The key is a well-formed key of another kind (another curve, RSA, ...).
    #[error(
        "key spec {key_spec} is not {ETHEREUM_KEY_SPEC}: Ethereum accounts need a secp256k1 key"
    )]
    WrongKeySpec {
        /// The KMS key spec (or algorithm) the key actually has.
        key_spec: String,
    },
    /// The bytes are not a DER SubjectPublicKeyInfo at all.
    #[error("the public key is not a valid DER SubjectPublicKeyInfo: {reason}")]
    Malformed {
        /// What the DER decoder objected to.
        reason: String,
    },
    /// The structure names secp256k1 but its point is not on the curve.
    #[error("the public key names secp256k1 but does not hold a valid curve point")]
    InvalidPoint,
}

impl PublicKey {
    /// Parses the DER SubjectPublicKeyInfo returned by KMS `GetPublicKey`.
    ///
    /// Only the canonical form is accepted: the point must be uncompressed (`0x04 || x || y`),
    /// as KMS always writes it. A compressed (`0x02`/`0x03`) or compact (`0x05`) point names the
    /// same key, so accepting those would give one key several accepted encodings.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, PublicKeyError> {
        let spki =
            SubjectPublicKeyInfoRef::try_from(der).map_err(|e| PublicKeyError::Malformed {
                reason: e.to_string(),
            })?;
        let algorithm = spki.algorithm.oid;
        if algorithm == ID_RSA_ENCRYPTION {
            return Err(PublicKeyError::WrongKeySpec {
                key_spec: "RSA".into(),
            });
        }
        if algorithm != ID_EC_PUBLIC_KEY {
            return Err(PublicKeyError::WrongKeySpec {
                key_spec: format!("with algorithm OID {algorithm}"),
            });
        }
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(|| PublicKeyError::Malformed {
                reason: "an EC public key without a named curve".into(),
            })?;
        let key_spec = CURVES.iter().find(|(oid, _)| *oid == curve).map_or_else(
            || format!("with curve OID {curve}"),
            |(_, name)| (*name).to_owned(),
        );
        if key_spec != ETHEREUM_KEY_SPEC {
            return Err(PublicKeyError::WrongKeySpec { key_spec });
        }
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or(PublicKeyError::InvalidPoint)?;
        if point.len() != UNCOMPRESSED_LEN || point.first() != Some(&0x04) {
            return Err(PublicKeyError::Malformed {
                reason: "the point is not in the uncompressed form (0x04 || x || y) KMS writes"
                    .into(),
            });
        }
        Self::from_sec1_bytes(point)
    }

    /// Parses a SEC1-encoded point (compressed or uncompressed).
    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self, PublicKeyError> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self::from)
            .map_err(|_| PublicKeyError::InvalidPoint)
    }

    /// The 65-byte uncompressed SEC1 encoding (`0x04 || x || y`).
    pub fn to_uncompressed(&self) -> [u8; 65] {
        let point = self.key.to_encoded_point(false);
        let mut out = [0u8; 65];
        // An uncompressed encoding of a valid point is always 65 bytes long.
        if let Some(bytes) = point.as_bytes().get(..65) {
            out.copy_from_slice(bytes);
        }
        out
    }

    /// The Ethereum address of this key.
    pub fn address(&self) -> Address {
        let uncompressed = self.to_uncompressed();
        let mut xy = [0u8; 64];
        xy.copy_from_slice(&uncompressed[1..]);
        Address::from_raw_public_key(&xy)
    }

    /// The underlying k256 key, for verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> Self {
        PublicKey { key }
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(0x{})", hex::encode(self.to_uncompressed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The SubjectPublicKeyInfo KMS returns for a secp256k1 key: a fixed 23-byte header
    /// (id-ecPublicKey, secp256k1, BIT STRING) and the uncompressed point.
    fn spki_of(key: &k256::ecdsa::SigningKey) -> Vec<u8> {
        let mut der = hex::decode("3056301006072a8648ce3d020106052b8104000a034200").unwrap();
        der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
        der
    }

    #[test]
    fn secp256k1_spki_gives_the_known_address() {
        // The private key 1 has the generator as public key, whose address is well known.
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = k256::ecdsa::SigningKey::from_slice(&one).unwrap();
        let der = spki_of(&key);
        assert_eq!(der.len(), 88, "KMS-style SPKI for secp256k1 is 88 bytes");
        let public = PublicKey::from_spki_der(&der).unwrap();
        assert_eq!(
            public.address().to_string(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn p256_key_is_refused_by_its_key_spec() {
        // A P-256 SubjectPublicKeyInfo (the generator of P-256), as KMS returns for
        // ECC_NIST_P256 keys.
        let der = hex::decode(concat!(
            "3059301306072a8648ce3d020106082a8648ce3d03010703420004",
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
        ))
        .unwrap();
        let err = PublicKey::from_spki_der(&der).unwrap_err();
        assert_eq!(
            err.to_string().split(':').next().unwrap(),
            "key spec ECC_NIST_P256 is not ECC_SECG_P256K1"
        );
    }

    #[test]
    fn rsa_key_is_refused_by_its_key_spec() {
        // The head of an RSA SubjectPublicKeyInfo with a tiny (but well-formed) key.
        let der =
            hex::decode("301c300d06092a864886f70d0101010500030b003008020300c0fb020101").unwrap();
        let err = PublicKey::from_spki_der(&der).unwrap_err();
        assert_eq!(
            err,
            PublicKeyError::WrongKeySpec {
                key_spec: "RSA".into()
            }
        );
        assert!(err
            .to_string()
            .starts_with("key spec RSA is not ECC_SECG_P256K1"));
    }

    #[test]
    fn point_off_the_curve_is_refused() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut der = spki_of(&k256::ecdsa::SigningKey::from_slice(&one).unwrap());
        let last = der.len() - 1;
        der[last] ^= 1;
        assert_eq!(
            PublicKey::from_spki_der(&der),
            Err(PublicKeyError::InvalidPoint)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            PublicKey::from_spki_der(b"not der"),
            Err(PublicKeyError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = PublicKey::from_spki_der(&bytes);
        }

        #[test]
        fn corrupted_spki_never_panics(index in 0usize..88, value in any::<u8>()) {
            let mut one = [0u8; 32];
            one[31] = 7;
            let mut der = spki_of(&k256::ecdsa::SigningKey::from_slice(&one).unwrap());
            der[index] = value;
            let _ = PublicKey::from_spki_der(&der);
        }
    }
}
