//! Small statistics over measured samples: medians, percentiles and spreads, computed the
//! same way for every variant so that the figures compare like with like.

use std::time::Duration;

/// The value at percentile `p` (0-100) of `sorted`, by the nearest-rank method: the
/// smallest sample that at least `p` percent of the samples do not exceed.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The smallest and largest of `values`.
pub fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// How much `values` disagree around `center`: (max - min) / center, the round spread the
/// targets bound.
pub fn spread(values: &[f64], center: f64) -> f64 {
    let (low, high) = range(values);
    (high - low) / center
}

/// Milliseconds, as the tables show latencies.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
