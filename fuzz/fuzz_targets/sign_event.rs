//! Fuzz target: the event JSON parser behind `kms-eth sign --event`. Run it with
//! `-dict=fuzz/sign_event.dict` so that mutations use the event's field names and value shapes.
//! The property it checks is `kms_eth_fuzz_properties::sign_event::check`, which a stable test
//! also runs on the seed corpus in `cargo xtask test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms_eth_fuzz_properties::sign_event::check(data));
