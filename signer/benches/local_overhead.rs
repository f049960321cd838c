//! The local cost of one KMS signature, without the network: from the DER answer KMS gives
//! to a complete, verified EIP-1559 signed transaction (encode, hash, DER parse, low-s,
//! recovery id, final verification, signed envelope), measured against one bare k256
//! public key recovery on the same machine. `cargo xtask bench` reads the estimates criterion
//! writes under `target/criterion/local_overhead/`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use k256::ecdsa::{RecoveryId, Signature as K256Signature, SigningKey, VerifyingKey};
use kms_eth_signer::{
    encode_der, finalize_prepared, parse_der, Address, Eip1559Tx, Error, PreparedKey, PublicKey,
    Signature, Signer, Transaction, B256, U256,
};

/// How many different transactions the benchmarks cycle through, so that no single digest's
/// branch pattern is measured alone. Half of them get a high-s answer, as KMS gives about
/// half the time, so the normalisation path is taken as often as in real use.
const CASES: usize = 64;

/// A signing backend that answers with a DER signature computed in advance, exactly as
/// `KmsSigner::sign_digest` treats the bytes of a KMS `Sign` response: strict DER parsing,
/// then `finalize_prepared` with the key's table (low-s, verification, recovery id). Only
/// the network is missing.
struct CannedKms {
    der: Vec<u8>,
    key: Arc<PreparedKey>,
    address: Address,
}

impl Signer for CannedKms {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_digest(&self, digest: &B256) -> Result<Signature, Error> {
        let (r, s) = parse_der(&self.der)?;
        Ok(finalize_prepared(digest, &r, &s, &self.key)?)
    }
}

/// One transaction with everything the benchmarks need about it, computed outside the
/// measured loops.
struct Case {
    tx: Transaction,
    digest: B256,
    backend: CannedKms,
    /// The low-s signature and its recovery id, for the bare k256 recovery baseline.
    low_s: K256Signature,
    recovery_id: RecoveryId,
    /// The answer, parsed, for the `finalize` part alone.
    r: [u8; 32],
    s: [u8; 32],
    /// The finished signature, for the envelope part alone.
    signature: Signature,
}

/// A typical transfer with call data, as the networked benchmark signs.
fn transaction(nonce: u64) -> Transaction {
    Transaction::Eip1559(Eip1559Tx {
        chain_id: 31337,
        nonce,
        max_priority_fee_per_gas: U256::from(1_000_000_000u64),
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 21_000 + nonce,
        to: Some(Address([0x42; 20])),
        value: U256::from(10_000_000_000_000_000u64) + U256::from(nonce),
        input: nonce.to_be_bytes().to_vec(),
        access_list: Vec::new(),
    })
}

/// Runs a future that never waits (the canned backend answers at once) to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

fn cases() -> Result<Vec<Case>, Box<dyn std::error::Error>> {
    // A fixed test key: these benchmarks need no secrecy, only a reproducible key.
    let signing_key = SigningKey::from_slice(&[0x4b; 32])?;
    let verifying_key = *signing_key.verifying_key();
    let key = PublicKey::from(verifying_key);
    // Built once, as a `KmsSigner` builds it at its first signature.
    let prepared = Arc::new(PreparedKey::new(key));
    let mut cases = Vec::with_capacity(CASES);
    for nonce in 0..CASES as u64 {
        let tx = transaction(nonce);
        let digest = tx.signing_hash();
        let (low_s, recovery_id) = signing_key.sign_prehash_recoverable(&digest)?;
        let (r, s) = low_s.split_scalars();
        // KMS does not normalise s; every other answer carries n - s as a KMS answer may.
        let answer_s = if nonce % 2 == 1 { -*s } else { *s };
        let r_bytes: [u8; 32] = r.to_bytes().into();
        let s_bytes: [u8; 32] = answer_s.to_bytes().into();
        let der = encode_der(&r_bytes, &s_bytes);
        let signature = finalize_prepared(&digest, &r_bytes, &s_bytes, &prepared)?;
        cases.push(Case {
            backend: CannedKms {
                der,
                key: Arc::clone(&prepared),
                address: key.address(),
            },
            tx,
            digest,
            low_s,
            recovery_id,
            r: r_bytes,
            s: s_bytes,
            signature,
        });
    }
    Ok(cases)
}

fn local_overhead(c: &mut Criterion) {
    let cases = match cases() {
        Ok(cases) => cases,
        Err(err) => {
            eprintln!("could not prepare the benchmark inputs: {err}");
            std::process::exit(1);
        }
    };
    let mut group = c.benchmark_group("local_overhead");
    let mut next = cycle(&cases);
    group.bench_function("k256_recovery", |b| {
        b.iter(|| {
            let case = next();
            VerifyingKey::recover_from_prehash(
                black_box(&case.digest),
                black_box(&case.low_s),
                case.recovery_id,
            )
        })
    });
    let mut next = cycle(&cases);
    group.bench_function("kms_answer_to_signed_tx", |b| {
        b.iter(|| {
            let case = next();
            ready(case.backend.sign_transaction(black_box(case.tx.clone())))
        })
    });
    // The parts of the pipeline, to show where the time goes.
    let mut next = cycle(&cases);
    group.bench_function("signing_hash", |b| {
        b.iter(|| black_box(&next().tx).signing_hash())
    });
    let mut next = cycle(&cases);
    group.bench_function("parse_der", |b| {
        b.iter(|| parse_der(black_box(&next().backend.der)))
    });
    let mut next = cycle(&cases);
    group.bench_function("finalize", |b| {
        b.iter(|| {
            let case = next();
            finalize_prepared(black_box(&case.digest), &case.r, &case.s, &case.backend.key)
        })
    });
    let mut next = cycle(&cases);
    group.bench_function("into_signed", |b| {
        b.iter(|| {
            let case = next();
            black_box(case.tx.clone()).into_signed(case.signature)
        })
    });
    group.finish();
}

/// A closure handing out the cases one after another, round and round.
fn cycle<'a>(cases: &'a [Case]) -> impl FnMut() -> &'a Case {
    let mut index = 0;
    move || {
        let case = &cases[index % cases.len()];
        index = index.wrapping_add(1);
        case
    }
}

criterion_group!(benches, local_overhead);
criterion_main!(benches);
