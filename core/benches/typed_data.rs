//! The local cost of one EIP-712 signature, without the network: from the typed-data JSON
//! (an ERC-2612 permit, as wallets sign them) to its digest, and from there, with the answer
//! KMS would give, to the verified 65-byte signature (DER parse, low-s, recovery id, check
//! against the key). It runs in criterion's `local_overhead` group beside the signer's
//! benchmarks, so `cargo xtask bench` compares it with the same bare k256 recovery.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use k256::ecdsa::SigningKey;
use kms_eth_core::typed_data::parse_typed_data_value;
use kms_eth_signer::{encode_der, finalize_prepared, parse_der, PreparedKey, PublicKey};
use serde_json::{json, Value};

/// How many different documents the benchmark cycles through.
const CASES: usize = 64;

/// An ERC-2612 permit of `value`: a nested domain, five fields, the shape most typed data
/// signed today has.
fn permit(value: u64) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "Permit",
        "domain": {
            "name": "USD Coin", "version": "2", "chainId": 1,
            "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
        },
        "message": {
            "owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "spender": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "value": value.to_string(),
            "nonce": value % 7,
            "deadline": 1_900_000_000u64 + value
        }
    })
}

struct Case {
    document: Value,
    der: Vec<u8>,
}

fn cases(key: &SigningKey) -> Result<Vec<Case>, Box<dyn std::error::Error>> {
    let mut cases = Vec::with_capacity(CASES);
    for i in 0..CASES as u64 {
        let document = permit(1_000_000 + i);
        let digest = parse_typed_data_value("typed data", &document)?.digest;
        let (signature, _) = key.sign_prehash_recoverable(&digest)?;
        let (r, s) = signature.split_scalars();
        // KMS does not normalise s: every other answer carries n - s, as one may.
        let s = if i % 2 == 1 { -*s } else { *s };
        let (r, s): ([u8; 32], [u8; 32]) = (r.to_bytes().into(), s.to_bytes().into());
        cases.push(Case {
            document,
            der: encode_der(&r, &s),
        });
    }
    Ok(cases)
}

fn typed_data(c: &mut Criterion) {
    // A fixed test key: the benchmark needs no secrecy, only a reproducible key.
    let prepared = SigningKey::from_slice(&[0x4b; 32])
        .map_err(|e| e.to_string())
        .and_then(|key| {
            // With the key's table, as a `KmsSigner` verifies.
            let public = PreparedKey::new(PublicKey::from(*key.verifying_key()));
            cases(&key)
                .map(|cases| (public, cases))
                .map_err(|e| e.to_string())
        });
    let (public, cases) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            eprintln!("could not prepare the benchmark inputs: {err}");
            std::process::exit(1);
        }
    };
    let mut group = c.benchmark_group("local_overhead");
    let mut index = 0;
    group.bench_function("typed_data_digest", |b| {
        b.iter(|| {
            index = (index + 1) % CASES;
            parse_typed_data_value("typed data", black_box(&cases[index].document))
        })
    });
    let mut index = 0;
    group.bench_function("typed_data_to_signature", |b| {
        b.iter(|| {
            index = (index + 1) % CASES;
            let case = &cases[index];
            let digest = parse_typed_data_value("typed data", black_box(&case.document))
                .map(|request| request.digest);
            digest.and_then(|digest| {
                let (r, s) = parse_der(black_box(&case.der))?;
                Ok(finalize_prepared(&digest, &r, &s, &public)?)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, typed_data);
criterion_main!(benches);
