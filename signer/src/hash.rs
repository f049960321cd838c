//! Keccak-256, the hash Ethereum uses for addresses, transaction hashes and signing hashes.

use sha3::{Digest, Keccak256};

/// A 32-byte hash or digest.
pub type B256 = [u8; 32];

/// Keccak-256 of `data` (the original Keccak padding, not NIST SHA3-256).
pub fn keccak256(data: impl AsRef<[u8]>) -> B256 {
    Keccak256::digest(data.as_ref()).into()
}

/// Keccak-256 of several byte strings, hashed as their concatenation.
pub(crate) fn keccak256_concat(parts: &[&[u8]]) -> B256 {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_input_is_the_well_known_constant() {
        assert_eq!(
            hex::encode(keccak256([])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn concat_equals_hash_of_concatenation() {
        assert_eq!(keccak256_concat(&[b"ab", b"c"]), keccak256(b"abc"));
    }
}
