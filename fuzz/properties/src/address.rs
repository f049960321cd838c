//! The property of the fuzz target `address`: the address parser (`str::parse::<Address>`).
//!
//! Properties: parsing never panics; an accepted string is a `0x` (or `0X`, which the parser
//! takes as part of the all-upper-case form) prefix and 40 hex digits that spell the parsed
//! bytes; if the digits mix cases they are exactly the EIP-55 checksum form; and the checksum
//! form always parses back to the same address.

use kms_eth_signer::Address;

/// Checks the property on one input; a violation panics (a crash, for libFuzzer).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(address) = text.parse::<Address>() else {
        return;
    };
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .expect("accepted an address without a 0x prefix");
    assert_eq!(
        digits.to_ascii_lowercase(),
        hex::encode(address.0),
        "accepted digits that do not spell the parsed bytes"
    );
    let checksum = address.to_checksum();
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        assert_eq!(
            Some(digits),
            checksum.get(2..),
            "accepted a mixed-case address that is not the EIP-55 checksum form"
        );
    }
    assert_eq!(checksum.parse::<Address>(), Ok(address));
}
