//! EIP-191 `personal_sign` messages: the prefix that keeps a signed message from ever being a
//! valid transaction.

use crate::hash::{keccak256_concat, B256};

/// The hash `personal_sign` signs:
/// `keccak256("\x19Ethereum Signed Message:\n" || len(message) || message)`, with the length
/// written in decimal.
pub fn eip191_hash(message: &[u8]) -> B256 {
    let len = message.len().to_string();
    keccak256_concat(&[b"\x19Ethereum Signed Message:\n", len.as_bytes(), message])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_matches_the_well_known_hash() {
        // The hash ethers.js and web3.js document for hashMessage("Hello World").
        assert_eq!(
            hex::encode(eip191_hash(b"Hello World")),
            "a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"
        );
    }
}
