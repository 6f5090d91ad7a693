//! Workload 1, "random actions", after talc's published benchmark (reimplemented, not copied).
//!
//! One heap (128 MiB, pre-touched) per allocator. Every thread loops over actions drawn from
//! `0..=6` (`0..=5` without realloc): 6 reallocates a random live allocation to `rand(1..3*max)`;
//! below 3, or while fewer than 300 allocations are live, it allocates `rand(4..rand(16..max))`
//! bytes at a mostly-word alignment; otherwise it frees a random live allocation. The clock is read
//! every 100 actions. Every allocation has its first and last byte written, and a realloc checks
//! that the first byte survived. Per trial: a fresh allocator over the heap, each thread warms up
//! for 2 ms, the threads meet at a barrier, then run for 200 ms; the score is the number of
//! successful actions of all threads together.

use crate::action::{Actions, Done};
use crate::peers::{Peer, Region};
use crate::rng::Rng;
use std::alloc::GlobalAlloc;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Below this many live allocations a thread always allocates.
const MIN_LIVE: usize = 300;

/// How long and how often.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub trials: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

impl Params {
    /// The protocol: 7 trials × (2 ms warm-up + 200 ms).
    pub const FULL: Params = Params {
        trials: 7,
        warmup: Duration::from_millis(2),
        duration: Duration::from_millis(200),
    };
    /// A smoke test.
    pub const QUICK: Params = Params {
        trials: 3,
        warmup: Duration::from_millis(1),
        duration: Duration::from_millis(20),
    };
}

/// One configuration of the workload.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The `max` of the size distribution, in bytes.
    pub max: usize,
    pub realloc: bool,
    /// Threads sharing the one allocator.
    pub threads: usize,
}

impl Case {
    pub fn label(&self) -> String {
        format!(
            "{} thread{}, max {} B, {}",
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.max,
            if self.realloc {
                "with realloc"
            } else {
                "no realloc"
            }
        )
    }
}

/// Max 200 B and 30000 B, with and without realloc, on 1 and 2 threads.
pub const CASES: [Case; 8] = {
    const fn case(threads: usize, max: usize, realloc: bool) -> Case {
        Case {
            max,
            realloc,
            threads,
        }
    }
    [
        case(1, 200, true),
        case(1, 200, false),
        case(1, 30000, true),
        case(1, 30000, false),
        case(2, 200, true),
        case(2, 200, false),
        case(2, 30000, true),
        case(2, 30000, false),
    ]
};

/// What one thread did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    /// Successful allocations, frees and reallocations.
    pub score: u64,
    /// Allocations and reallocations that returned null.
    failures: u64,
}

/// How long an action loop runs.
#[derive(Clone, Copy)]
pub enum Limit {
    /// For a time (the benchmark).
    Time(Duration),
    /// For a number of rounds of 100 action draws, without reading the clock (for counting
    /// instructions under callgrind, where time means nothing).
    Rounds(u64),
}

/// Runs the action loop on one thread until `limit`, then frees what is left (untimed).
pub fn actions(
    alloc: &dyn GlobalAlloc,
    case: Case,
    rng: &mut Rng,
    limit: Limit,
    start: Option<&Barrier>,
) -> Outcome {
    let mut actions = Actions::new(case.max, case.realloc, MIN_LIVE, 100_000);
    let mut out = Outcome::default();
    if let Some(barrier) = start {
        barrier.wait();
    }
    let t0 = Instant::now();
    let mut rounds = 0;
    while match limit {
        Limit::Time(duration) => t0.elapsed() < duration,
        Limit::Rounds(n) => rounds < n,
    } {
        rounds += 1;
        for _ in 0..100 {
            // SAFETY: every live allocation came from `alloc`.
            match unsafe { actions.act(alloc, rng) } {
                Done::Action => out.score += 1,
                Done::Failed => out.failures += 1,
                Done::Nothing => {}
            }
        }
    }
    // SAFETY: as above.
    unsafe { actions.free_all(alloc) };
    out
}

fn trial(
    alloc: &(dyn GlobalAlloc + Sync),
    case_index: usize,
    case: Case,
    trial: usize,
    params: Params,
) -> Outcome {
    let barrier = Barrier::new(case.threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..case.threads)
            .map(|thread| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut warm =
                        Rng::for_stream(&[1, case_index as u64, trial as u64, thread as u64, 0]);
                    actions(alloc, case, &mut warm, Limit::Time(params.warmup), None);
                    let mut rng =
                        Rng::for_stream(&[1, case_index as u64, trial as u64, thread as u64, 1]);
                    actions(
                        alloc,
                        case,
                        &mut rng,
                        Limit::Time(params.duration),
                        Some(barrier),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark thread panicked"))
            .fold(Outcome::default(), |a, b| Outcome {
                score: a.score + b.score,
                failures: a.failures + b.failures,
            })
    })
}

/// The scores of one peer in one case.
#[derive(Clone, Debug, Default)]
pub struct PeerScores {
    /// Actions per trial.
    pub samples: Vec<f64>,
    /// Failed allocations and reallocations, over all trials.
    pub failures: u64,
}

pub struct CaseResult {
    pub case: Case,
    /// Indexed like the peers passed to [`run`].
    pub per_peer: Vec<PeerScores>,
}

/// Runs every case. Within a case the trials are interleaved across the peers (the order rotating
/// from trial to trial), so that a drift of the machine's speed falls on all of them alike.
/// `heaps[i]` is peer `i`'s fixed heap (`None` for those that get memory themselves).
pub fn run(peers: &[Peer], heaps: &mut [Option<Region>], params: Params) -> Vec<CaseResult> {
    assert_eq!(peers.len(), heaps.len());
    CASES
        .iter()
        .enumerate()
        .map(|(case_index, &case)| {
            eprintln!("random actions: {}", case.label());
            let mut per_peer = vec![PeerScores::default(); peers.len()];
            for t in 0..params.trials {
                for k in 0..peers.len() {
                    let i = (k + t) % peers.len();
                    let alloc = peers[i].build(heaps[i].as_mut());
                    let out = trial(&*alloc, case_index, case, t, params);
                    per_peer[i].samples.push(out.score as f64);
                    per_peer[i].failures += out.failures;
                }
            }
            CaseResult { case, per_peer }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PEERS;

    #[test]
    fn a_short_trial_on_every_peer() {
        let params = Params {
            trials: 1,
            warmup: Duration::from_millis(1),
            duration: Duration::from_millis(5),
        };
        for peer in PEERS {
            let mut region = peer.is_fixed().then(|| Region::new(16 << 20));
            let alloc = peer.build(region.as_mut());
            let out = trial(&*alloc, 4, CASES[4], 0, params);
            assert!(out.score > 100, "{}: {out:?}", peer.name);
            assert_eq!(out.failures, 0, "{}", peer.name);
        }
    }
}
