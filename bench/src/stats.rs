//! Medians and spreads of repeated trials.

use std::time::Instant;

/// The median and the range of a set of trials.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(mut samples: Vec<f64>) -> Summary {
        assert!(!samples.is_empty());
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Summary {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }
}

/// Runs `op` `iterations` times per trial, `trials` times (after one untimed warm-up trial), and
/// summarises the nanoseconds per operation.
pub fn time_per_op(trials: usize, iterations: usize, mut op: impl FnMut()) -> Summary {
    for _ in 0..iterations {
        op();
    }
    let samples = (0..trials)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                op();
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    Summary::of(samples)
}

/// The `q`-quantile (`0.0..=1.0`) of `sorted` (ascending, not empty), by nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    assert!(!sorted.is_empty());
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::{quantile, Summary};

    #[test]
    fn median_and_spread() {
        let s = Summary::of(vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[7], 0.99), 7);
    }
}
