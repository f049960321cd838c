//! EIP-7702 authorizations: an account's signed consent that its code be a delegate
//! contract's. The signed digest is `keccak256(0x05 || rlp([chain_id, address, nonce]))`;
//! the signature travels as `y_parity, r, s` inside a type-4 transaction's authorization
//! list.
//!
//! Chain id 0 makes an authorization valid on every chain; this module encodes it like any
//! other (decoding must accept what the network accepts), and the signing paths above it
//! refuse it unless asked.

use rlp::RlpStream;
use ruint::aliases::U256;

use crate::address::Address;
use crate::hash::{keccak256_concat, B256};
use crate::signature::{recover_signer, Signature, SignatureError};

/// The magic byte that opens an authorization's signed digest.
pub const AUTHORIZATION_MAGIC: u8 = 0x05;

/// What an account authorizes: on chain `chain_id` (0: every chain), while its nonce is
/// `nonce`, its code is a delegation to `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Authorization {
    pub chain_id: u64,
    pub address: Address,
    pub nonce: u64,
}

/// An authorization with the authorizing account's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedAuthorization {
    pub authorization: Authorization,
    pub signature: Signature,
}

impl Authorization {
    /// The digest the authorizing account signs.
    pub fn signing_hash(&self) -> B256 {
        let mut s = RlpStream::new_list(3);
        s.append(&self.chain_id);
        s.append(&self.address.0.as_slice());
        s.append(&self.nonce);
        keccak256_concat(&[&[AUTHORIZATION_MAGIC], &s.out()])
    }

    /// Attaches `signature`.
    pub fn into_signed(self, signature: Signature) -> SignedAuthorization {
        SignedAuthorization {
            authorization: self,
            signature,
        }
    }
}

impl SignedAuthorization {
    /// The account that signed it (high-s signatures are refused, as EIP-7702 requires).
    pub fn recover_authority(&self) -> Result<Address, SignatureError> {
        recover_signer(&self.authorization.signing_hash(), &self.signature)
    }

    /// Appends the list item `[chain_id, address, nonce, y_parity, r, s]`.
    pub(crate) fn append_to(&self, s: &mut RlpStream) {
        let a = &self.authorization;
        s.begin_list(6);
        s.append(&a.chain_id);
        s.append(&a.address.0.as_slice());
        s.append(&a.nonce);
        s.append(&u8::from(self.signature.y_parity));
        s.append(&U256::from_be_bytes(self.signature.r).to_be_bytes_trimmed_vec());
        s.append(&U256::from_be_bytes(self.signature.s).to_be_bytes_trimmed_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_hash_is_keccak_of_the_magic_and_the_rlp_triple() {
        let auth = Authorization {
            chain_id: 1,
            address: Address([0x11; 20]),
            nonce: 7,
        };
        // rlp([1, 0x11..11, 7]) = 0xd7 01 94 <20 bytes> 07
        let mut expected = vec![0x05, 0xd7, 0x01, 0x94];
        expected.extend([0x11; 20]);
        expected.push(0x07);
        assert_eq!(auth.signing_hash(), crate::hash::keccak256(&expected));
        // Chain id 0 and nonce 0 encode as empty strings (0x80), not as a zero byte.
        let zero = Authorization::default();
        let mut expected = vec![0x05, 0xd7, 0x80, 0x94];
        expected.extend([0; 20]);
        expected.push(0x80);
        assert_eq!(zero.signing_hash(), crate::hash::keccak256(&expected));
    }
}
