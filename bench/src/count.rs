//! `quarry-bench count PEER MAX REALLOC ROUNDS`: the random-actions loop of workload 1 on one
//! thread for a fixed number of rounds (100 draws each), without a clock, on a fresh 128 MiB heap.
//! Run it under `valgrind --tool=callgrind` twice with different round counts: the difference of
//! the totals divided by the difference of the actions is the instruction count per action, which
//! is repeatable where times are not.

use crate::peers::{Region, Source, PEERS};
use crate::random_actions::{actions, Case, Limit};
use crate::rng::Rng;

pub fn run(peer: &str, max: usize, realloc: bool, rounds: u64) -> u64 {
    let peer = PEERS
        .iter()
        .find(|p| p.name == peer)
        .unwrap_or_else(|| panic!("no allocator named {peer}"));
    let region;
    let alloc = match peer.source {
        Source::Fixed(ctor) => {
            region = Region::new(128 << 20);
            // SAFETY: the region is fresh, pre-touched, and given to this allocator alone.
            unsafe { ctor(region.ptr(), region.len()) }
        }
        Source::Own(ctor) => ctor(),
    };
    let case = Case {
        max,
        realloc,
        threads: 1,
    };
    let mut rng = Rng::for_stream(&[1, max as u64, realloc as u64]);
    actions(&*alloc, case, &mut rng, Limit::Rounds(rounds), None).score
}
