//! The properties the fuzz targets check, one module per target, in a crate of their own
//! so that both the libFuzzer targets (nightly, `cargo fuzz`) and a stable test over the seed
//! corpus (`tests/seed_corpus.rs`, run by `cargo xtask test`) check exactly the same thing.
//! Each `check` panics when the property does not hold.

pub mod address;
pub mod der_signature;
pub mod raw_transaction;
pub mod sign_event;
pub mod spki;

/// A property: returns when it holds on the input, panics when it does not.
pub type Check = fn(&[u8]);

/// Every fuzz target by name (its `fuzz_targets/` file and corpus folder) with its property.
pub const TARGETS: [(&str, Check); 5] = [
    ("der_signature", der_signature::check),
    ("spki", spki::check),
    ("raw_transaction", raw_transaction::check),
    ("address", address::check),
    ("sign_event", sign_event::check),
];
