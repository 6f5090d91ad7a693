//! The allocator's figures in one struct.

use crate::arenas::ArenaStats;
use crate::heap::HeapCounters;

/// What a [`crate::Quarry`] holds and has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes handed out now (usable sizes: requests rounded up to their size class or blocks).
    pub bytes_in_use: usize,
    /// The most `bytes_in_use` has been: exact with one heap; with several, the sum of each heap's
    /// own peak (an upper bound).
    pub peak_bytes: usize,
    /// Bytes of memory in arenas, taken from the backend.
    pub reserved_bytes: usize,
    /// Bytes of arena memory committed.
    pub committed_bytes: usize,
    /// Arenas.
    pub arenas: usize,
    /// Allocations made, in all.
    pub allocations: u64,
    /// Allocations freed, in all.
    pub frees: u64,
    /// Pages made and given back, in all.
    pub pages_made: u64,
    /// Pages given back to their arenas, in all.
    pub pages_returned: u64,
    /// Refused frees: memory that is not ours.
    pub not_ours: usize,
    /// Refused frees: memory that is free already.
    pub double_frees: usize,
    /// Refused frees: pointers that do not start an allocation.
    pub misaligned: usize,
}

impl Stats {
    pub(crate) fn new(heap: &HeapCounters, arenas: &ArenaStats) -> Stats {
        Stats {
            bytes_in_use: heap.bytes_in_use,
            peak_bytes: heap.peak_bytes,
            reserved_bytes: arenas.arena_bytes,
            committed_bytes: arenas.committed_bytes,
            arenas: arenas.arenas,
            allocations: heap.allocs,
            frees: heap.frees,
            pages_made: heap.pages_made,
            pages_returned: heap.pages_returned,
            not_ours: arenas.not_ours,
            double_frees: arenas.double_frees,
            misaligned: arenas.misaligned + arenas.past_end,
        }
    }

    /// All refused frees.
    pub fn errors(&self) -> usize {
        self.not_ours + self.double_frees + self.misaligned
    }
}
