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
    /// Bytes of freed arena memory purged (given back to the backend), in all.
    pub purged_bytes: usize,
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
            purged_bytes: arenas.purged_bytes,
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

/// One line: `4615 allocations, 3639 frees, 137 KiB in use (peak 142 KiB), 1 arena of 432 KiB
/// (432 KiB committed), 19 pages made, 0 returned, 0 refused frees`.
impl core::fmt::Display for Stats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} allocations, {} frees, {} in use (peak {}), {} arena{} of {} ({} committed), \
             {} pages made, {} returned, {} refused frees{}",
            self.allocations,
            self.frees,
            Bytes(self.bytes_in_use),
            Bytes(self.peak_bytes),
            self.arenas,
            if self.arenas == 1 { "" } else { "s" },
            Bytes(self.reserved_bytes),
            Bytes(self.committed_bytes),
            self.pages_made,
            self.pages_returned,
            self.errors(),
            Purged(self.purged_bytes),
        )
    }
}

/// `, N purged` when purges gave memory back, else nothing.
struct Purged(usize);

impl core::fmt::Display for Purged {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, ", {} purged", Bytes(n)),
        }
    }
}

/// A byte count as people read it: bytes below 10 KiB, then KiB, then MiB from 10 MiB.
struct Bytes(usize);

impl core::fmt::Display for Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            n if n < 10 << 10 => write!(f, "{n} B"),
            n if n < 10 << 20 => write!(f, "{} KiB", n >> 10),
            n => write!(f, "{} MiB", n >> 20),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::Stats;
    use std::string::ToString;

    #[test]
    fn stats_read_as_one_line() {
        let stats = Stats {
            bytes_in_use: 140_000,
            peak_bytes: 145_000,
            reserved_bytes: 12 << 20,
            committed_bytes: 4096,
            arenas: 1,
            allocations: 4615,
            frees: 3639,
            pages_made: 19,
            double_frees: 2,
            ..Stats::default()
        };
        assert_eq!(
            stats.to_string(),
            "4615 allocations, 3639 frees, 136 KiB in use (peak 141 KiB), 1 arena of 12 MiB \
             (4096 B committed), 19 pages made, 0 returned, 2 refused frees"
        );
        let purged = Stats {
            purged_bytes: 20 << 20,
            ..stats
        };
        assert!(purged
            .to_string()
            .ends_with("2 refused frees, 20 MiB purged"));
    }
}
