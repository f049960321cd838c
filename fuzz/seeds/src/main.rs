//! Writes the seed corpora of the kms-eth fuzz targets: valid inputs of every shape each
//! parser accepts, so that libFuzzer starts from the interesting part of the input space
//! instead of having to discover DER, RLP or JSON structure by chance.
//!
//! Usage: `cargo run --manifest-path fuzz/Cargo.toml -p kms-eth-fuzz-seeds -- fuzz/corpus`
//! writes `fuzz/corpus/<target>/seed-<n>` for every target (the corpus folders `cargo fuzz
//! run` uses by default). The seeds are generated, so the corpus folder is not committed.

use std::path::{Path, PathBuf};

use kms_eth_fuzz_seeds::corpora;

fn exit(message: &str) -> ! {
    eprintln!("kms-eth-fuzz-seeds: {message}");
    std::process::exit(1)
}

fn write(dir: &Path, target: &str, seeds: &[Vec<u8>]) {
    let folder = dir.join(target);
    std::fs::create_dir_all(&folder)
        .unwrap_or_else(|err| exit(&format!("cannot create {}: {err}", folder.display())));
    for (n, seed) in seeds.iter().enumerate() {
        let path = folder.join(format!("seed-{n}"));
        std::fs::write(&path, seed)
            .unwrap_or_else(|err| exit(&format!("cannot write {}: {err}", path.display())));
    }
    println!("{}: {} seeds", folder.display(), seeds.len());
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| exit("usage: kms-eth-fuzz-seeds <corpus folder>"));
    for (target, seeds) in corpora() {
        write(&dir, target, &seeds);
    }
}
