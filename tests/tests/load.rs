//! Load on one `KmsSigner`: 2,000 signatures at concurrency 64 against real KMS (LocalStack
//! by default), every one verified, none duplicated, and memory flat while they run. A test
//! binary of its own, so that the resident memory it reads is this test's alone.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Instant;

use kms_eth_e2e::{digests, kms, TestKey};
use kms_eth_signer::{recover_signer, KmsSigner, Signature};

/// A field of `/proc/self/status` in KiB (`VmRSS`: resident now; `VmHWM`: the peak).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_signatures_at_concurrency_64_all_verify_with_flat_memory() {
    const ROUNDS: u32 = 4;
    const PER_ROUND: u32 = 500;
    let key = TestKey::ethereum(&kms().await).await;
    let signer = KmsSigner::new(kms().await, key.id.as_str()).await.unwrap();

    // Warm up first (connection pool, allocator arenas), then sample resident memory
    // after each round of 500: a leak per signature would grow it round after round.
    let warm_up = digests("load warm-up", 64);
    for result in signer.sign_digests(&warm_up, 64).await {
        result.unwrap();
    }
    let mut resident = vec![status_kib("VmRSS")];
    let mut seen = HashSet::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let digests = digests(&format!("load round {round}"), PER_ROUND);
        let results = signer.sign_digests(&digests, 64).await;
        for (i, (digest, result)) in digests.iter().zip(results).enumerate() {
            let signature: Signature =
                result.unwrap_or_else(|err| panic!("round {round} signature {i} failed: {err}"));
            assert!(signature.is_low_s());
            assert_eq!(
                recover_signer(digest, &signature).unwrap(),
                signer.address()
            );
            assert!(
                seen.insert(signature.to_rsv_bytes()),
                "duplicate signature in round {round} at {i}"
            );
        }
        resident.push(status_kib("VmRSS"));
    }
    let elapsed = started.elapsed();
    let total = ROUNDS * PER_ROUND;
    assert_eq!(seen.len(), total as usize);

    let peak = status_kib("VmHWM");
    println!(
        "load: {total} signatures at concurrency 64 in {elapsed:.1?} ({:.0}/s); resident KiB \
         after warm-up and each round of {PER_ROUND}: {resident:?}; peak {peak} KiB",
        f64::from(total) / elapsed.as_secs_f64()
    );
    // Flat: from the end of the first round to the end of the last, resident memory grows by
    // less than 4 MiB. The signatures kept for the duplicate check are 65 bytes each, about
    // 100 KiB in all; a leak of 3 KiB per signature would add 4.4 MiB over three rounds.
    let growth = resident[ROUNDS as usize].saturating_sub(resident[1]);
    assert!(
        growth < 4 * 1024,
        "resident memory grew by {growth} KiB over {} signatures: {resident:?}",
        (ROUNDS - 1) * PER_ROUND
    );
}
