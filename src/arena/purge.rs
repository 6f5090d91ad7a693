//! Purging: giving the physical memory of free blocks back to the backend, a while after they were
//! freed (the seed's `mi_arena_schedule_purge`, `mi_arena_try_purge` and `mi_arena_purge`).
//!
//! A freed run is marked in the purge bitmap, and the arena's expiry is set to the backend's clock
//! plus the delay (or pushed back by a tenth of the delay when a purge is pending already, so that
//! a program freeing steadily is not purged under its feet). Once the expiry has passed, the next
//! release or [`collect`](crate::Arenas::collect) purges every marked run that is still free. A
//! purge owns its blocks the way an allocation does, by claiming their in-use bits first, so it
//! never touches a block in use, and an allocation that claims a marked block clears its mark.
//!
//! Over a backend without commit state ([`OsBackend::COMMITS`] `false`) every arena is pinned and
//! none of this runs; the code compiles away.

use super::{Arena, FIELD_BITS};
use crate::atomic::Ordering;
use crate::backend::OsBackend;

/// What a release needs to schedule a purge: the backend, for its clock and its purge, and the
/// delay in milliseconds (below 0: never purge, 0: purge at once).
pub(crate) struct Purging<'a, B> {
    pub backend: &'a B,
    pub delay_ms: i64,
    /// The clock, if it was read already for this operation.
    pub clock: Option<usize>,
}

impl<B> Clone for Purging<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for Purging<'_, B> {}

impl<B: OsBackend> Purging<'_, B> {
    /// Whether purges happen at all over this backend with this delay.
    #[inline(always)]
    pub fn enabled(&self) -> bool {
        B::COMMITS && self.delay_ms >= 0
    }

    /// The backend's clock in milliseconds, as arenas keep it: wrapping.
    pub fn now(&self) -> Option<usize> {
        self.clock
            .or_else(|| self.backend.now_ms().map(|ms| ms as usize))
    }

    /// The same, with the clock read once now for everything that follows.
    pub fn read_clock(self) -> Self {
        Purging {
            clock: self.now(),
            ..self
        }
    }

    /// The delay as a wrapping addend to a clock reading.
    fn delay(&self) -> usize {
        self.delay_ms.max(0) as usize
    }
}

/// `now` has reached `expire` (clock readings that wrap: compared by their difference).
pub(crate) fn expired(now: usize, expire: usize) -> bool {
    (now.wrapping_sub(expire) as isize) >= 0
}

/// `clock + delay`, as an expiry: never 0.
fn expiry(clock: usize, delay: usize) -> usize {
    match clock.wrapping_add(delay) {
        0 => 1,
        expire => expire,
    }
}

impl Arena {
    /// Whether this arena has purge state at all (it is not pinned).
    #[inline(always)]
    fn purgeable<B: OsBackend>(&self, purging: &Purging<'_, B>) -> bool {
        purging.enabled() && !self.pinned
    }

    /// Whether a purge is scheduled in this arena.
    pub(crate) fn purge_pending(&self) -> bool {
        self.purge_expire.load(Ordering::Relaxed) != 0
    }

    /// Marks the run `[block, block + blocks)`, which the caller still holds and is about to free,
    /// for a purge after the delay; with a delay of 0, or a backend without a clock, purges it now.
    /// The clock is read only when nothing is pending yet (or was read for this release already).
    pub(crate) fn schedule_purge<B: OsBackend>(
        &self,
        block: usize,
        blocks: usize,
        purging: Purging<'_, B>,
    ) {
        if !self.purgeable(&purging) {
            return;
        }
        let Some(purge_map) = self.purge() else {
            return;
        };
        if purging.delay_ms == 0 {
            // At once: the caller holds the run, as `purge_run` requires.
            return self.purge_run(block, blocks, purging);
        }
        let delay = purging.delay();
        let expire = self.purge_expire.load(Ordering::Relaxed);
        let due = if expire == 0 {
            match purging.now() {
                Some(now) => expiry(now, delay),
                // No clock to wait by: at once.
                None => return self.purge_run(block, blocks, purging),
            }
        } else {
            // Something is pending: push it back by a tenth of the delay, so that steady freeing
            // does not purge memory about to be used again; but, when the clock was read for
            // this release, never past a whole delay from now (a burst of frees would push it
            // back without end).
            let later = expiry(expire, delay / 10);
            match purging.clock {
                Some(now) if expired(later, expiry(now, delay)) => expiry(now, delay),
                _ => later,
            }
        };
        // A lost race with another schedule leaves its expiry, which is as good.
        let _ =
            self.purge_expire
                .compare_exchange(expire, due, Ordering::AcqRel, Ordering::Relaxed);
        purge_map.claim(block, blocks);
    }

    /// Purges the marked runs of this arena that are still free, if its expiry has passed at `now`
    /// (or whenever something is marked, when `force`d). Returns whether anything was purged.
    pub(crate) fn try_purge<B: OsBackend>(
        &self,
        now: Option<usize>,
        force: bool,
        purging: Purging<'_, B>,
    ) -> bool {
        if !self.purgeable(&purging) {
            return false;
        }
        let Some(purge_map) = self.purge() else {
            return false;
        };
        let expire = self.purge_expire.load(Ordering::Relaxed);
        if expire == 0 || !(force || now.is_some_and(|now| expired(now, expire))) {
            return false;
        }
        // Taken by this purge (unless another schedule moved it meanwhile: then it stays).
        let _ = self
            .purge_expire
            .compare_exchange(expire, 0, Ordering::AcqRel, Ordering::Relaxed);
        let in_use = self.in_use();
        let mut any = false;
        let mut all = true;
        for (f, field) in purge_map.fields().iter().enumerate() {
            let marked = field.load(Ordering::Relaxed);
            let mut bit = 0;
            while bit < FIELD_BITS && marked >> bit != 0 {
                bit += (marked >> bit).trailing_zeros() as usize;
                let run = (!(marked >> bit)).trailing_zeros() as usize;
                let start = f * FIELD_BITS + bit;
                // Own as long a prefix of the run as can be claimed.
                let owned = in_use.try_claim_prefix(start, run);
                if owned < run {
                    all = false;
                }
                if owned > 0 {
                    // Read the marks again now that the blocks are ours: an allocation that took
                    // one of them in between cleared its mark.
                    let now_marked = field.load(Ordering::Acquire);
                    self.purge_marked(start, owned, now_marked, purging);
                    in_use.unclaim(start, owned);
                    any = true;
                }
                bit += owned + 1;
            }
        }
        if !all {
            // Some marked blocks were busy: look again after another delay.
            if let Some(now) = purging.now() {
                let _ = self.purge_expire.compare_exchange(
                    0,
                    expiry(now, purging.delay()),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        any
    }

    /// Purges the sub-runs of `[start, start + blocks)` (inside one field) whose bits are set in
    /// `marked`, the field's purge bits. The caller holds the blocks.
    fn purge_marked<B: OsBackend>(
        &self,
        start: usize,
        blocks: usize,
        marked: usize,
        purging: Purging<'_, B>,
    ) {
        let first = start % FIELD_BITS;
        let mut bit = first;
        let end = first + blocks;
        while bit < end {
            let rest = marked >> bit;
            if rest == 0 {
                break;
            }
            bit += rest.trailing_zeros() as usize;
            if bit >= end {
                break;
            }
            let run = ((!(marked >> bit)).trailing_zeros() as usize).min(end - bit);
            self.purge_run(start - first + bit, run, purging);
            bit += run;
        }
    }

    /// Gives the physical memory of `[block, block + blocks)` back to the backend and updates the
    /// bitmaps: the purge marks cleared, the blocks uncommitted if the backend decommitted them,
    /// and clean (reading as zero) if it zeroed them. The caller holds the blocks (their in-use
    /// bits), so nobody else reads or writes them meanwhile.
    pub(crate) fn purge_run<B: OsBackend>(
        &self,
        block: usize,
        blocks: usize,
        purging: Purging<'_, B>,
    ) {
        let (Some(purge_map), Some(committed)) = (self.purge(), self.committed()) else {
            return;
        };
        // Memory that is not all committed must not be reset (its contents kept mapped): only
        // decommitted.
        let allow_reset = committed.is_claimed(block, blocks);
        // SAFETY: the run lies inside the arena's region, which came from this backend (a purgeable
        // arena is never pinned, so it is backend memory or memory the user gave as such), and the
        // caller holds it, so nobody uses it during the call.
        let purged = unsafe {
            purging.backend.purge(
                self.block_ptr(block),
                blocks << self.block_shift,
                allow_reset,
            )
        };
        purge_map.unclaim(block, blocks);
        if purged.needs_recommit {
            committed.unclaim(block, blocks);
        }
        if purged.zeroed {
            self.dirty().unclaim(block, blocks);
        }
        self.purged_blocks.fetch_add(blocks, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_never_zero_and_survives_the_clock_wrapping() {
        assert_eq!(expiry(5, 10), 15);
        assert_eq!(expiry(usize::MAX, 1), 1);
        assert_eq!(expiry(usize::MAX - 4, 10), 5);
        assert!(expired(15, 15));
        assert!(expired(16, 15));
        assert!(!expired(14, 15));
        // Across the wrap: an expiry just past it is not reached before it, and is after it.
        let expire = expiry(usize::MAX - 4, 10);
        assert!(!expired(usize::MAX - 1, expire));
        assert!(expired(6, expire));
    }
}
