//! Workload 2, "heap efficiency", after talc's published benchmark (reimplemented).
//!
//! Each round starts from a fresh allocator over the empty fixed heap and loops: 50% allocate
//! `rand(4..rand(16..max_alloc))` bytes at a mostly-word alignment, 10% free a random live
//! allocation, 40% reallocate a random live allocation to `rand(1..max_realloc)`, until the first
//! allocation or reallocation fails. The round's figure is then live bytes ÷ heap bytes, where the
//! live bytes are the requested sizes of the allocations still held. 300 rounds; the headline is
//! their mean (talc's statistic). On the 128 MiB heap `max_alloc` is 10 000 B and `max_realloc`
//! 100 000 B; on the 64 KiB heap they scale down to heap/64 and heap/16.

use crate::action::{gen_align, gen_size};
use crate::peers::{Peer, Region};
use crate::rng::Rng;
use std::alloc::{GlobalAlloc, Layout};

/// One heap size of the workload.
#[derive(Clone, Copy, Debug)]
pub struct HeapCase {
    pub label: &'static str,
    pub len: usize,
    pub max_alloc: usize,
    pub max_realloc: usize,
}

pub const LARGE: HeapCase = HeapCase {
    label: "128 MiB",
    len: 128 << 20,
    max_alloc: 10_000,
    max_realloc: 100_000,
};

pub const SMALL: HeapCase = HeapCase {
    label: "64 KiB",
    len: 64 << 10,
    max_alloc: (64 << 10) / 64,
    max_realloc: (64 << 10) / 16,
};

/// The rounds of one peer on one heap: live ÷ heap per round, in `0.0..=1.0`.
pub type Rounds = Vec<f64>;

pub struct HeapResult {
    pub heap: HeapCase,
    /// Indexed like the peers; `None` for peers without a fixed heap.
    pub per_peer: Vec<Option<Rounds>>,
}

/// One round on a fresh allocator; returns live bytes ÷ heap bytes at the first failure.
fn round(alloc: &dyn GlobalAlloc, heap: HeapCase, rng: &mut Rng) -> f64 {
    let mut live: Vec<(*mut u8, Layout)> = Vec::with_capacity(1 << 16);
    loop {
        match rng.range(0, 10) {
            0..=4 => {
                let size = gen_size(rng, heap.max_alloc);
                let align = gen_align(rng);
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                // SAFETY: non-zero size.
                let p = unsafe { alloc.alloc(layout) };
                if p.is_null() {
                    break;
                }
                live.push((p, layout));
            }
            5 => {
                if !live.is_empty() {
                    let (p, layout) = live.swap_remove(rng.range(0, live.len()));
                    // SAFETY: live, from this allocator, with this layout.
                    unsafe { alloc.dealloc(p, layout) };
                }
            }
            _ => {
                if !live.is_empty() {
                    let index = rng.range(0, live.len());
                    let new_size = rng.range(1, heap.max_realloc);
                    let (p, layout) = live[index];
                    // SAFETY: live, from this allocator, with this layout; non-zero new size.
                    let q = unsafe { alloc.realloc(p, layout, new_size) };
                    if q.is_null() {
                        break;
                    }
                    live[index] = (
                        q,
                        Layout::from_size_align(new_size, layout.align()).expect("a valid layout"),
                    );
                }
            }
        }
    }
    // The allocator is dropped with the round, so its allocations need no freeing.
    let bytes: usize = live.iter().map(|(_, l)| l.size()).sum();
    bytes as f64 / heap.len as f64
}

/// Runs `rounds` rounds per fixed-heap peer on `heap`; `regions[i]` is peer `i`'s region of that
/// size. Round `r` uses the same random stream for every peer.
pub fn run_heap(
    peers: &[Peer],
    regions: &mut [Option<Region>],
    heap: HeapCase,
    rounds: usize,
) -> HeapResult {
    eprintln!("heap efficiency: {}", heap.label);
    let per_peer = peers
        .iter()
        .zip(regions.iter_mut())
        .map(|(peer, region)| {
            if !peer.is_fixed() {
                return None;
            }
            let region = region.as_mut().expect("a fixed heap for a fixed-heap peer");
            assert_eq!(region.len(), heap.len);
            Some(
                (0..rounds)
                    .map(|r| {
                        let alloc = peer.build(Some(&mut *region));
                        let mut rng = Rng::for_stream(&[2, heap.len as u64, r as u64]);
                        round(&*alloc, heap, &mut rng)
                    })
                    .collect(),
            )
        })
        .collect();
    HeapResult { heap, per_peer }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PEERS;

    #[test]
    fn a_round_fills_the_small_heap() {
        for peer in PEERS.iter().filter(|p| p.is_fixed()) {
            let mut region = Region::new(SMALL.len);
            let alloc = peer.build(Some(&mut region));
            let e = round(&*alloc, SMALL, &mut Rng::new(3));
            assert!((0.2..1.0).contains(&e), "{}: {e}", peer.name);
        }
    }
}
