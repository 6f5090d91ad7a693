//! Workload 3, "latency": the time of one free + one allocation on a warm heap, in rlsf's
//! firmware stress shape (its `stress` benchmark, reimplemented): 256 live blocks of 1..=255 bytes
//! at alignments 4, 8, 16 or 32; each step frees the block in the next slot (round robin) and
//! allocates a new one of a fresh random layout in its place.
//!
//! Timing: each pair is timed on its own between two `Instant::now()` reads (the vDSO clock), and
//! the timer's own cost — the median of 10 000 back-to-back `Instant::now()` pairs, measured at the
//! start of the trial — is subtracted. The layouts are drawn before the timed window. Per trial:
//! a fresh allocator over the peer's 128 MiB heap, the 256 blocks allocated, `warmup` untimed
//! pairs, then `pairs` timed ones; p50 and p99 of those. For a check on the subtraction, `pairs`
//! more pairs are then timed as one batch, and their mean reported beside the percentiles.

use crate::peers::{Peer, Region};
use crate::rng::Rng;
use crate::stats::quantile;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

const LIVE: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub trials: usize,
    pub warmup: usize,
    pub pairs: usize,
}

impl Params {
    pub const FULL: Params = Params {
        trials: 7,
        warmup: 100_000,
        pairs: 400_000,
    };
    pub const QUICK: Params = Params {
        trials: 3,
        warmup: 10_000,
        pairs: 20_000,
    };
}

fn layout(rng: &mut Rng) -> Layout {
    let size = rng.range(1, 256);
    let align = 4 << rng.range(0, 4);
    Layout::from_size_align(size, align).expect("a valid layout")
}

/// The cost of reading the clock twice, in ns: the median of `n` back-to-back pairs.
pub fn timer_overhead(n: usize) -> u64 {
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            let t1 = black_box(Instant::now());
            (t1 - t0).as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    quantile(&v, 0.5)
}

/// One trial's figures, ns.
#[derive(Clone, Copy, Debug)]
struct Trial {
    /// Of the individually timed pairs, the timer overhead subtracted.
    p50: f64,
    p99: f64,
    /// The timer overhead subtracted.
    overhead: u64,
    /// The mean of `pairs` further pairs timed as one batch (no timer in between).
    batch_mean: f64,
}

fn trial(alloc: &dyn GlobalAlloc, params: Params, seed: u64) -> Trial {
    let mut rng = Rng::for_stream(&[3, seed]);
    let mut slots: Vec<(*mut u8, Layout)> = (0..LIVE)
        .map(|_| {
            let l = layout(&mut rng);
            // SAFETY: non-zero size.
            let p = unsafe { alloc.alloc(l) };
            assert!(!p.is_null(), "the warm heap's blocks");
            (p, l)
        })
        .collect();
    let step = |i: usize, l: Layout, slots: &mut [(*mut u8, Layout)]| {
        let (p, old) = slots[i % LIVE];
        // SAFETY: live, from this allocator, with `old`; replaced right away.
        let q = unsafe {
            alloc.dealloc(p, old);
            alloc.alloc(l)
        };
        slots[i % LIVE] = (q, l);
    };
    for i in 0..params.warmup {
        let l = layout(&mut rng);
        step(i, l, &mut slots);
    }
    let overhead = timer_overhead(10_000);
    let mut samples = Vec::with_capacity(params.pairs);
    for i in 0..params.pairs {
        let l = layout(&mut rng);
        let t0 = Instant::now();
        step(i, l, &mut slots);
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as u64);
    }
    let layouts: Vec<Layout> = (0..params.pairs).map(|_| layout(&mut rng)).collect();
    let t0 = Instant::now();
    for (i, &l) in layouts.iter().enumerate() {
        step(i, l, &mut slots);
    }
    let batch_mean = t0.elapsed().as_nanos() as f64 / params.pairs as f64;
    assert!(slots.iter().all(|(p, _)| !p.is_null()), "a pair failed");
    for (p, l) in slots {
        // SAFETY: live, from this allocator, with `l`.
        unsafe { alloc.dealloc(p, l) };
    }
    samples.sort_unstable();
    let net = |q: f64| quantile(&samples, q).saturating_sub(overhead) as f64;
    Trial {
        p50: net(0.5),
        p99: net(0.99),
        overhead,
        batch_mean,
    }
}

#[derive(Clone, Debug, Default)]
pub struct PeerLatency {
    /// Per trial, ns.
    pub p50: Vec<f64>,
    pub p99: Vec<f64>,
    /// Per trial, the mean ns per pair of a batch timed as a whole.
    pub batch_mean: Vec<f64>,
}

pub struct LatencyResult {
    pub per_peer: Vec<PeerLatency>,
    /// The timer overheads subtracted, ns (one per trial and peer).
    pub overheads: Vec<u64>,
    pub params: Params,
}

/// Trials interleaved across the peers, rotating the order; `heaps[i]` is peer `i`'s 128 MiB
/// heap or `None`.
pub fn run(peers: &[Peer], heaps: &mut [Option<Region>], params: Params) -> LatencyResult {
    eprintln!("latency");
    let mut per_peer = vec![PeerLatency::default(); peers.len()];
    let mut overheads = Vec::new();
    for t in 0..params.trials {
        for k in 0..peers.len() {
            let i = (k + t) % peers.len();
            let alloc = peers[i].build(heaps[i].as_mut());
            let r = trial(&*alloc, params, t as u64);
            per_peer[i].p50.push(r.p50);
            per_peer[i].p99.push(r.p99);
            per_peer[i].batch_mean.push(r.batch_mean);
            overheads.push(r.overhead);
        }
    }
    LatencyResult {
        per_peer,
        overheads,
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PEERS;

    #[test]
    fn a_short_trial_on_every_peer() {
        let params = Params {
            trials: 1,
            warmup: 1000,
            pairs: 2000,
        };
        for peer in PEERS {
            let mut region = peer.is_fixed().then(|| Region::new(4 << 20));
            let alloc = peer.build(region.as_mut());
            let r = trial(&*alloc, params, 0);
            assert!(r.p50 <= r.p99 && r.p99 < 1e6, "{}: {r:?}", peer.name);
            assert!(r.batch_mean > 0.0, "{}: {r:?}", peer.name);
        }
    }
}
