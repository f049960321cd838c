//! The property of the fuzz target `sign_event`: the event JSON parser behind `kms-eth sign
//! --event` (`kms_eth_core::event::parse_sign_event`).
//!
//! Properties: parsing never panics on any UTF-8 text; every refusal is a `UsageError`, so the
//! command line exits 2 with the error object, as for the original; an accepted event has a
//! non-zero chain id (a transaction without one could be replayed on any chain); and its
//! transaction, signed with a placeholder signature, decodes back to the same transaction.

use kms_eth_core::event::parse_sign_event;
use kms_eth_core::UsageError;
use kms_eth_signer::{Signature, SignedTransaction};

/// Checks the property on one input; a violation panics (a crash, for libFuzzer).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_sign_event(text) {
        Err(err) => assert!(
            err.chain().any(|cause| cause.is::<UsageError>()),
            "an event error that would not exit 2: {err:#}"
        ),
        Ok(tx) => {
            assert!(
                tx.chain_id().is_some_and(|id| id != 0),
                "accepted an event without a usable chain id"
            );
            // The decoder does not check signatures, so any valid scalars will do.
            let mut one = [0u8; 32];
            one[31] = 1;
            let placeholder = Signature {
                r: one,
                s: one,
                y_parity: false,
            };
            let signed = tx.into_signed(placeholder);
            assert_eq!(SignedTransaction::decode(&signed.raw).as_ref(), Ok(&signed));
        }
    }
}
