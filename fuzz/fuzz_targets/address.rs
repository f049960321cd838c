//! Fuzz target: the address parser (`str::parse::<Address>`).
//! The property it checks is `kms_eth_fuzz_properties::address::check`, which a stable test
//! also runs on the seed corpus in `cargo xtask test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms_eth_fuzz_properties::address::check(data));
