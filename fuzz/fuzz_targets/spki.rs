//! Fuzz target: the SubjectPublicKeyInfo parser for what KMS `GetPublicKey` returns.
//! The property it checks is `kms_eth_fuzz_properties::spki::check`, which a stable test
//! also runs on the seed corpus in `cargo xtask test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms_eth_fuzz_properties::spki::check(data));
