//! Fuzz target: the strict raw-transaction decoder (`SignedTransaction::decode`).
//! The property it checks is `kms_eth_fuzz_properties::raw_transaction::check`, which a stable test
//! also runs on the seed corpus in `cargo xtask test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms_eth_fuzz_properties::raw_transaction::check(data));
