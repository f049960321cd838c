//! The fuzz targets' properties on the stable toolchain, where libFuzzer cannot run: each
//! property on every seed of its corpus (the seeds `cargo fuzz` starts from), then on
//! seeds mutated the way a fuzzer first mutates them (bytes flipped, inserted, removed,
//! cut off), chosen by proptest. This is no substitute for hours of coverage-guided
//! fuzzing, but it runs in every `cargo xtask test`, so a change that breaks a property on
//! inputs next to valid ones fails the run instead of waiting for the next fuzzing session.

use std::collections::BTreeMap;

use kms_eth_fuzz_properties::{Check, TARGETS};
use proptest::prelude::*;

fn seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    kms_eth_fuzz_seeds::corpora().into_iter().collect()
}

/// The property of `target`, looked up by name.
fn property(target: &str) -> Check {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no property for target {target}"))
}

#[test]
fn every_target_has_seeds_and_every_seed_holds_its_property() {
    let seeds = seeds();
    for (target, check) in TARGETS {
        let corpus = seeds
            .get(target)
            .unwrap_or_else(|| panic!("no seed corpus for target {target}"));
        assert!(corpus.len() >= 4, "{target}: only {} seeds", corpus.len());
        for seed in corpus {
            check(seed);
        }
    }
    assert_eq!(
        seeds.len(),
        TARGETS.len(),
        "a corpus for a target that does not exist"
    );
}

/// One edit a mutating fuzzer makes, at a position taken modulo the input's length.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, bits: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
    Set { at: usize, byte: u8 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(at, bits)| Edit::Flip { at, bits }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        any::<usize>().prop_map(|at| Edit::Remove { at }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
        // Values that sit on the parsers' boundaries: lengths, tags, sign bits, quotes.
        (
            any::<usize>(),
            prop::sample::select(vec![0x00, 0x01, 0x02, 0x30, 0x7f, 0x80, 0x81, 0xff, b'"'])
        )
            .prop_map(|(at, byte)| Edit::Set { at, byte }),
    ]
}

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for edit in edits {
        let len = data.len().max(1);
        match *edit {
            Edit::Flip { at, bits } => {
                if let Some(byte) = data.get_mut(at % len) {
                    *byte ^= bits;
                }
            }
            Edit::Insert { at, byte } => data.insert(at % (data.len() + 1), byte),
            Edit::Remove { at } => {
                if !data.is_empty() {
                    data.remove(at % len);
                }
            }
            Edit::Truncate { at } => data.truncate(at % len),
            Edit::Set { at, byte } => {
                if let Some(slot) = data.get_mut(at % len) {
                    *slot = byte;
                }
            }
        }
    }
    data
}

/// A proptest of `target`'s property on its seeds with one to four edits each.
fn mutated_seeds_hold(target: &str) {
    let check = property(target);
    let corpus = seeds().remove(target).unwrap_or_default();
    assert!(!corpus.is_empty(), "no seeds for {target}");
    let config = ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(pick in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..=4))| {
        let seed = pick.get(&corpus);
        check(&mutate(seed, &edits));
    });
}

#[test]
fn der_signature_holds_on_mutated_seeds() {
    mutated_seeds_hold("der_signature");
}

#[test]
fn spki_holds_on_mutated_seeds() {
    mutated_seeds_hold("spki");
}

#[test]
fn raw_transaction_holds_on_mutated_seeds() {
    mutated_seeds_hold("raw_transaction");
}

#[test]
fn address_holds_on_mutated_seeds() {
    mutated_seeds_hold("address");
}

#[test]
fn sign_event_holds_on_mutated_seeds() {
    mutated_seeds_hold("sign_event");
}
