//! Ethereum addresses: derived from a public key, written and parsed with the EIP-55 checksum.

use std::fmt;
use std::str::FromStr;

use crate::hash::keccak256;

/// A 20-byte Ethereum account address.
///
/// `Display` writes the EIP-55 mixed-case checksum form with a `0x` prefix, which is what
/// users copy into wallets and what `cast` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

/// Why a string is not a usable address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string is not `0x` followed by 40 hexadecimal digits.
    #[error("{input:?} is not an address: expected 0x followed by 40 hex digits")]
    Malformed {
        /// The rejected input, as given.
        input: String,
    },
    /// The string mixes upper and lower case, so it claims an EIP-55 checksum, and that
    /// checksum is wrong. This usually means a typo in the address.
    #[error(
        "{input:?} has an invalid EIP-55 checksum (expected {expected}); \
         check the address for a typo, or write it in all lower case to skip the checksum"
    )]
    BadChecksum {
        /// The rejected input, as given.
        input: String,
        /// The same address with the correct checksum.
        expected: String,
    },
}

impl Address {
    /// The address of an uncompressed secp256k1 public key given as its 64-byte `x || y`
    /// coordinates (without the `0x04` SEC1 prefix): the last 20 bytes of their Keccak-256.
    pub fn from_raw_public_key(xy: &[u8; 64]) -> Self {
        let hash = keccak256(xy);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// The address as bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The EIP-55 checksummed form, `0x`-prefixed.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            // Each hex digit of the address is upper-cased when the matching nibble of the
            // hash of the lower-case address is 8 or more.
            let byte = hash.get(i / 2).copied().unwrap_or_default();
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            if nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Parses `0x` + 40 hex digits. All-lower and all-upper case are accepted as they carry
    /// no checksum; mixed case must be a correct EIP-55 checksum.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let malformed = || AddressError::Malformed {
            input: input.to_owned(),
        };
        let digits = input
            .strip_prefix("0x")
            .or_else(|| input.strip_prefix("0X"))
            .ok_or_else(malformed)?;
        if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| malformed())?;
        let address = Address(bytes);

        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper {
            let expected = address.to_checksum();
            if expected.get(2..) != Some(digits) {
                return Err(AddressError::BadChecksum {
                    input: input.to_owned(),
                    expected,
                });
            }
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_checksum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The test vectors listed in the EIP-55 text.
    const EIP55_VECTORS: [&str; 8] = [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors_round_trip() {
        for vector in EIP55_VECTORS {
            let address: Address = vector.parse().unwrap();
            assert_eq!(address.to_checksum(), vector);
            assert_eq!(address.to_string(), vector);
        }
    }

    #[test]
    fn all_lower_and_all_upper_case_are_accepted_without_checksum() {
        for vector in EIP55_VECTORS {
            let digits = &vector[2..];
            let lower: Address = format!("0x{}", digits.to_ascii_lowercase())
                .parse()
                .unwrap();
            let upper: Address = format!("0x{}", digits.to_ascii_uppercase())
                .parse()
                .unwrap();
            assert_eq!(lower, upper);
            assert_eq!(lower.to_checksum(), vector);
        }
    }

    #[test]
    fn a_mistyped_checksum_is_an_error_naming_the_right_one() {
        // One letter's case flipped.
        let err = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
            .parse::<Address>()
            .unwrap_err();
        assert_eq!(
            err,
            AddressError::BadChecksum {
                input: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".into(),
                expected: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
            }
        );
        assert!(err.to_string().contains("typo"));
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        for input in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",
            "0x+aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAé",
        ] {
            assert!(
                matches!(
                    input.parse::<Address>(),
                    Err(AddressError::Malformed { .. })
                ),
                "{input:?} was accepted"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_strings_never_panics(input in ".{0,64}") {
            let _ = input.parse::<Address>();
        }

        #[test]
        fn checksum_form_always_parses_back(bytes in any::<[u8; 20]>()) {
            let address = Address(bytes);
            prop_assert_eq!(address.to_checksum().parse::<Address>().unwrap(), address);
        }
    }
}
