//! Rounds in which the variants being compared take turns in short slices, so that each
//! variant is measured across the whole round rather than in a block of its own.
//!
//! On a shared two-core machine the speed of LocalStack (and of everything else) drifts over
//! seconds. When each variant ran its whole share of a round as one block of about three
//! seconds, a ratio of two variants taken within a round moved by 10-20 % from one round to
//! the next, more than any difference being measured. Cut into slices that alternate, both
//! sides of a ratio see the same drift, and a round's ratio averages over several pairs.
//!
//! The slices follow each other without a pause: every operation's variant is fixed by its
//! place in the round, and the tasks take the next operation as soon as they are free, so
//! `concurrency` operations are always in flight. Waiting for a slice to drain before the
//! next one made each slice as long as its slowest operation: at concurrency 32 one stalled
//! `Sign` in a slice of 100 changed that slice's rate by a quarter, and the ratio of a
//! variant against itself still moved by 11 % from round to round. A slice's time runs from
//! the start of its first operation to the start of the next slice's first, so the drain at
//! the end of the round (and the start, when all tasks begin at once) falls on uncounted
//! filler operations.

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
// tokio's clock is the system's, except in tests that pause it.
use tokio::time::Instant;

use crate::stats::millis;

/// Slices each variant's share of a round is cut into, at most. Ten slices of a
/// 3000-signature round take about 0.85 s each here at concurrency 1 (and at 32, where a
/// slice needs at least 256): shorter than the swings of a shared machine's speed.
pub const SLICES: usize = 10;

/// Operations in flight at once, times this, is the smallest slice: for its first
/// `concurrency` operations a slice's time is partly the previous slice's operations
/// finishing, which pulls two variants' rates towards each other by at most 1/8.
const MIN_SLICE_PER_TASK: usize = 8;

/// What one variant did over one round: the time of its slices added up, each slice's
/// time (in the order of the slices, which hold the same operations for every variant), and
/// every operation's latency in milliseconds.
#[derive(Debug, Default)]
pub struct Tally {
    pub elapsed: Duration,
    pub slices: Vec<Duration>,
    pub latencies: Vec<f64>,
}

/// How fast `x` ran against `y` over one round: the median, over the slices, of `y`'s time
/// for a slice over `x`'s time for the same operations. The two slices of a pair ran next to
/// each other, under the same conditions, so each pair is a comparison of its own; the
/// median keeps a burst of load from outside (it reaches a few hundred milliseconds here) in
/// one slice from deciding the round. Measuring one variant against itself this way, the
/// rounds of a run spread 2.6 % at concurrency 1, against 4.4 % for the ratio of the rounds'
/// totals.
pub fn paired_ratio(x: &Tally, y: &Tally) -> f64 {
    let ratios: Vec<f64> = x
        .slices
        .iter()
        .zip(&y.slices)
        .map(|(x, y)| y.as_secs_f64() / x.as_secs_f64())
        .collect();
    crate::stats::median(&ratios)
}

/// The index ranges of the slices of `count` operations at `concurrency`: as equal as they
/// can be, together exactly `0..count`, none empty.
pub fn slices(count: usize, concurrency: usize) -> Vec<Range<usize>> {
    let smallest = concurrency.saturating_mul(MIN_SLICE_PER_TASK).max(1);
    let n = SLICES.min(count / smallest).max(1).min(count.max(1));
    (0..n).map(|k| k * count / n..(k + 1) * count / n).collect()
}

/// One slice of one variant, or filler (not counted) at either end of the round.
#[derive(Debug, Clone, PartialEq)]
struct Phase {
    variant: usize,
    indices: Range<usize>,
    counted: bool,
}

/// The phases of a round: slice k of every variant comes before slice k + 1 of any, and
/// within slice k the variants take turns starting from variant `(first + k) % variants`,
/// so that none always goes first; `concurrency` filler operations of the first and of the
/// last counted variant open and close the round.
fn plan(variants: usize, count: usize, concurrency: usize, first: usize) -> Vec<Phase> {
    let mut phases = Vec::new();
    for (k, indices) in slices(count, concurrency).into_iter().enumerate() {
        for turn in 0..variants {
            phases.push(Phase {
                variant: (first + k + turn) % variants,
                indices: indices.clone(),
                counted: true,
            });
        }
    }
    let filler = |variant: usize| Phase {
        variant,
        indices: 0..concurrency.min(count),
        counted: false,
    };
    let (opening, closing) = match (phases.first(), phases.last()) {
        (Some(first), Some(last)) => (filler(first.variant), filler(last.variant)),
        _ => return phases,
    };
    phases.insert(0, opening);
    phases.push(closing);
    phases
}

/// One round of `variants` variants, each doing operations `0..count` at `concurrency`:
/// `op(variant, index)` does one. Returns each variant's tally.
pub async fn round<F, Fut>(
    variants: usize,
    count: usize,
    concurrency: usize,
    first: usize,
    op: F,
) -> Result<Vec<Tally>>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let phases = plan(variants, count, concurrency, first);
    // Every operation of the round in order: (phase, variant, index).
    let ops: Arc<Vec<(usize, usize, usize)>> = Arc::new(
        phases
            .iter()
            .enumerate()
            .flat_map(|(p, phase)| phase.indices.clone().map(move |i| (p, phase.variant, i)))
            .collect(),
    );
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (op, ops, next) = (Arc::clone(&op), Arc::clone(&ops), Arc::clone(&next));
        workers.spawn(async move {
            // (phase, start, latency) of each operation this task did.
            let mut done = Vec::new();
            loop {
                let Some(&(phase, variant, index)) = ops.get(next.fetch_add(1, Ordering::Relaxed))
                else {
                    return Ok::<_, anyhow::Error>(done);
                };
                let began = Instant::now();
                op(variant, index).await?;
                done.push((phase, began, began.elapsed()));
            }
        });
    }
    let mut done = Vec::with_capacity(ops.len());
    while let Some(worker) = workers.join_next().await {
        done.extend(worker.context("a measured task failed")??);
    }
    let mut starts: Vec<Option<Instant>> = vec![None; phases.len()];
    let mut tallies: Vec<Tally> = (0..variants).map(|_| Tally::default()).collect();
    for &(phase, began, latency) in &done {
        let start = starts[phase].get_or_insert(began);
        *start = (*start).min(began);
        if phases[phase].counted {
            tallies[phases[phase].variant]
                .latencies
                .push(millis(latency));
        }
    }
    for (p, phase) in phases.iter().enumerate().filter(|(_, phase)| phase.counted) {
        // A counted phase is always followed by another (the closing filler at least).
        let (Some(start), Some(Some(end))) = (starts[p], starts.get(p + 1)) else {
            anyhow::bail!("a slice of the round did not run");
        };
        let took = end.saturating_duration_since(start);
        let tally = &mut tallies[phase.variant];
        tally.elapsed += took;
        tally.slices.push(took);
    }
    Ok(tallies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_index_once_and_none_is_empty() {
        for (count, concurrency) in [
            (1, 1),
            (2, 1),
            (9, 1),
            (10, 1),
            (11, 1),
            (200, 1),
            (1000, 1),
            (1000, 32),
            (200, 32),
            (5, 64),
        ] {
            let slices = slices(count, concurrency);
            assert_eq!(slices.first().map(|s| s.start), Some(0));
            assert_eq!(slices.last().map(|s| s.end), Some(count));
            assert!(slices.windows(2).all(|w| w[0].end == w[1].start));
            assert!(slices.iter().all(|s| !s.is_empty()));
        }
        assert_eq!(slices(1000, 1).len(), SLICES);
        // At concurrency 32 a slice holds at least 8 operations per task.
        assert_eq!(slices(1000, 32).len(), 3);
        assert_eq!(slices(200, 32).len(), 1);
    }

    #[test]
    fn variants_alternate_slice_by_slice_between_fillers() {
        // 30 operations at concurrency 1: three slices of 10 (at least 8 per task).
        let phases = plan(3, 30, 1, 1);
        let order: Vec<(usize, bool)> = phases.iter().map(|p| (p.variant, p.counted)).collect();
        // Slice 0 starts with variant 1, slice 1 with variant 2, slice 2 with variant 0; the
        // fillers repeat the first and the last counted variant.
        assert_eq!(
            order,
            [
                (1, false),
                (1, true),
                (2, true),
                (0, true),
                (2, true),
                (0, true),
                (1, true),
                (0, true),
                (1, true),
                (2, true),
                (2, false)
            ]
        );
        assert_eq!(phases[1].indices, 0..10);
        assert_eq!(phases[4].indices, 10..20);
        assert_eq!(phases[0].indices, 0..1);
        for variant in 0..3 {
            let indices: usize = phases
                .iter()
                .filter(|p| p.counted && p.variant == variant)
                .map(|p| p.indices.len())
                .sum();
            assert_eq!(indices, 30);
        }
    }

    #[test]
    fn a_round_times_each_variants_slices_and_keeps_only_their_latencies() {
        // Variant 1 takes twice as long per operation as variant 0.
        let tallies = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(round(2, 40, 1, 0, |variant, _| async move {
                tokio::time::sleep(Duration::from_millis(10 * (variant as u64 + 1))).await;
                Ok(())
            }))
            .unwrap();
        assert_eq!(tallies[0].latencies.len(), 40);
        assert_eq!(tallies[1].latencies.len(), 40);
        let ratio = tallies[1].elapsed.as_secs_f64() / tallies[0].elapsed.as_secs_f64();
        assert!((ratio - 2.0).abs() < 0.05, "ratio {ratio}");
        assert_eq!(tallies[0].slices.len(), slices(40, 1).len());
        let paired = paired_ratio(&tallies[1], &tallies[0]);
        assert!(
            (paired - 0.5).abs() < 0.02,
            "variant 1 runs at half the rate: {paired}"
        );
    }

    #[test]
    fn one_slow_slice_does_not_decide_a_paired_ratio() {
        let slices = |times: &[u64]| Tally {
            elapsed: Duration::ZERO,
            slices: times.iter().map(|&t| Duration::from_millis(t)).collect(),
            latencies: Vec::new(),
        };
        // y is 10 % slower in every slice but one, where a burst of load made it 3x slower.
        let x = slices(&[100, 100, 100, 100, 100]);
        let y = slices(&[110, 110, 300, 110, 110]);
        assert!((paired_ratio(&y, &x) - 1.0 / 1.1).abs() < 1e-9);
    }
}
