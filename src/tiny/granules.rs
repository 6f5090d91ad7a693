//! The tiny engine's arena: one run of 16-byte granules that grows at its end, each granule
//! claimed in two bitmaps, as the arena layer claims blocks, but with granules small enough that
//! an allocation is a run of them and needs no object layer.
//!
//! Two bits per granule, `used` and `start`, tell its state:
//!
//! | `used` | `start` | the granule is |
//! |---|---|---|
//! | 0 | 0 | free |
//! | 1 | 1 | the first of a run handed out |
//! | 1 | 0 | in a run handed out, after its first |
//! | 0 | 1 | held for good: the bitmaps themselves, or a gap another user of the backend took |
//!
//! A run ends at the first granule that is not "in a run, after its first", so its length is
//! never stored, and a free can tell a run's start from its inside, from a free granule (a second
//! free) and from memory held for good.

use crate::backend::OsBackend;
use crate::error::FreeErrorKind;
use core::ptr;

/// Bytes in a granule: the unit of every allocation and the alignment of each.
pub(crate) const GRANULE: usize = 16;
/// log2 of [`GRANULE`].
const SHIFT: u32 = GRANULE.trailing_zeros();

/// Which bitmap.
const USED: usize = 0;
const START: usize = 1;

/// What [`Granules::seek`] looks for: a granule that is not free, a free one, or one that does
/// not continue a run handed out (not used, or the start of something).
const TAKEN: u8 = 0;
const FREE: u8 = 1;
const AFTER_RUN: u8 = 2;

/// The arena of a tiny engine: up to `GRANULES` granules from its first region on.
pub(crate) struct Granules<const GRANULES: usize> {
    /// The first byte of granule 0, null until the first region comes. Every pointer the engine
    /// hands out is derived from it, and so are the later regions, which continue the same memory.
    base: *mut u8,
    /// Granules the arena spans: `[0, granules)` are the engine's, `granules <= GRANULES`.
    granules: usize,
    /// Where the next search starts: the end of the last run claimed (at most `granules`).
    rover: usize,
    /// The bitmaps: `WORDS` words of `used` bits, then `WORDS` of `start` bits, bit `g % 32` of
    /// word `g / 32` for granule `g`, both 0 for granules at or past `granules`. Null until the
    /// first region; then at `base`, in the arena's first granules, which are held for good.
    bits: *mut u32,
}

impl<const GRANULES: usize> Granules<GRANULES> {
    /// Words in each bitmap.
    const WORDS: usize = GRANULES.div_ceil(32);
    /// Granules the two bitmaps take.
    const TABLE: usize = (Self::WORDS * 8).div_ceil(GRANULE);

    /// An empty arena. Panics (at compile time in a `static`) if `GRANULES` granules do not fit
    /// in the address space, or leave no room past the bitmaps.
    pub(crate) const fn new() -> Self {
        assert!(
            GRANULES > Self::TABLE && GRANULES <= (isize::MAX as usize) >> SHIFT,
            "GRANULES must leave room past the bitmaps and fit in the address space"
        );
        Granules {
            base: ptr::null_mut(),
            granules: 0,
            rover: 0,
            bits: ptr::null_mut(),
        }
    }

    /// Granules the arena spans now.
    pub(crate) fn granules(&self) -> usize {
        self.granules
    }

    /// The first byte of granule `g` (at most `granules`).
    #[inline(always)]
    pub(crate) fn at(&self, g: usize) -> *mut u8 {
        self.base.wrapping_add(g << SHIFT)
    }

    /// The word of bitmap `map` that holds granule `g`'s bit.
    #[inline(always)]
    fn word(&self, map: usize, g: usize) -> *mut u32 {
        debug_assert!(g < GRANULES && !self.bits.is_null());
        // SAFETY: callers pass a granule below `GRANULES`, so the word lies in the table of
        // `2 * WORDS` words at `bits`, which is there once the arena has a granule.
        unsafe { self.bits.add(map * Self::WORDS + g / 32) }
    }

    /// Granule `g`'s bit in bitmap `map`.
    #[inline(always)]
    fn bit(&self, map: usize, g: usize) -> bool {
        // SAFETY: the word is in the table (see `word`); the lock makes this the only access.
        unsafe { *self.word(map, g) >> (g % 32) & 1 != 0 }
    }

    /// Sets the bits of granules `[from, to)` in bitmap `map` to `on`, a word at a time.
    #[inline(never)]
    fn fill(&mut self, map: usize, mut from: usize, to: usize, on: bool) {
        while from < to {
            let bit = from % 32;
            // Granules of this word in the range: 1 to 32.
            let k = (32 - bit).min(to - from);
            let mask = (u32::MAX >> (32 - k)) << bit;
            let word = self.word(map, from);
            // SAFETY: the word is in the table (see `word`); the lock makes this the only access.
            unsafe { *word = if on { *word | mask } else { *word & !mask } };
            from += k;
        }
    }

    /// Holds the free granules `[first, end)` for good.
    fn hold(&mut self, first: usize, end: usize) {
        self.fill(START, first, end, true);
    }

    /// The run handed out at `addr`, as its first granule and length, or why `addr` starts none.
    #[cfg_attr(opt_size, inline(never))]
    pub(crate) fn locate(&self, addr: usize) -> Result<(usize, usize), FreeErrorKind> {
        let offset = addr.wrapping_sub(self.base.addr());
        if offset >= self.granules << SHIFT {
            return Err(FreeErrorKind::NotOurs);
        }
        if offset % GRANULE != 0 {
            return Err(FreeErrorKind::Misaligned);
        }
        let first = offset >> SHIFT;
        // By the state's two bits, `start` high: free, inside a run, held for good.
        const WHY: [FreeErrorKind; 3] = [
            FreeErrorKind::DoubleFree,
            FreeErrorKind::Misaligned,
            FreeErrorKind::NotOurs,
        ];
        match usize::from(self.bit(USED, first)) | usize::from(self.bit(START, first)) << 1 {
            3 => Ok((first, self.seek(first + 1, AFTER_RUN) - first)),
            state => Err(WHY[state]),
        }
    }

    /// The first granule at or after `g` that is what `what` asks for ([`TAKEN`], [`FREE`] or
    /// [`AFTER_RUN`]), or `granules` if none is: a word at a time.
    #[inline(never)]
    fn seek(&self, mut g: usize, what: u8) -> usize {
        while g < self.granules {
            // SAFETY: `g < granules <= GRANULES`: the words are in the table.
            let (used, start) = unsafe { (*self.word(USED, g), *self.word(START, g)) };
            let found = match what {
                TAKEN => used | start,
                FREE => !(used | start),
                _ => !used | start,
            } >> (g % 32);
            if found != 0 {
                return (g + found.trailing_zeros() as usize).min(self.granules);
            }
            g = (g | 31) + 1;
        }
        self.granules
    }

    /// Claims a run of `n` free granules (at least 1) whose first byte is a multiple of `align`
    /// (a power of two): the first found from where the last claim ended, round the arena once,
    /// and at its end, grown over `backend`, when none is free. Returns its first granule.
    pub(crate) fn claim<B: OsBackend>(
        &mut self,
        backend: &B,
        n: usize,
        align: usize,
    ) -> Option<usize> {
        // No overflow below: `g` stays under `GRANULES` plus one alignment's pad, and `n` under
        // `usize::MAX >> SHIFT` (it counts granules of at most `isize::MAX` bytes); a run or an
        // alignment the arena cannot hold ends at the check against `GRANULES`.
        let mut g = self.rover;
        // Whether the search has gone round from the arena's end to its start.
        let mut wrapped = g == 0;
        // Free granules found in a row, ending before `g`.
        let mut run = 0;
        loop {
            if g >= self.granules && !wrapped {
                (g, run, wrapped) = (0, 0, true);
                continue;
            }
            if g >= self.granules {
                // `g + n - run` granules make the run; grow the arena to them.
                if g + n - run > GRANULES || !self.grow(backend, g + n - run - self.granules) {
                    return None;
                }
                continue;
            }
            let free = self.seek(g, FREE);
            if free > g {
                run = 0;
                g = free;
                continue;
            }
            if run == 0 {
                let pad = self.at(g).addr().wrapping_neg() & (align - 1);
                if pad != 0 {
                    // Granules are granule-aligned, so a larger alignment is whole granules away.
                    g += pad >> SHIFT;
                    continue;
                }
            }
            // The free granules from `g` on, as many as the run still needs.
            let k = (self.seek(g, TAKEN) - g).min(n - run);
            run += k;
            g += k;
            if run == n {
                let first = g - n;
                // Free granules have both bits clear: only `start` of the first is set.
                self.fill(USED, first, g, true);
                self.fill(START, first, first + 1, true);
                self.rover = g;
                return Some(first);
            }
        }
    }

    /// Frees the run `[first, first + n)` handed out.
    pub(crate) fn release(&mut self, first: usize, n: usize) {
        self.fill(USED, first, first + n, false);
        self.fill(START, first, first + 1, false);
    }

    /// Resizes the run handed out at `first` from `n` granules to `wanted` (at least 1) in place:
    /// shrinking always, growing into the free granules that follow it, and past the arena's end
    /// over a backend that grows in place. Returns whether it did.
    pub(crate) fn resize<B: OsBackend>(
        &mut self,
        backend: &B,
        first: usize,
        n: usize,
        wanted: usize,
    ) -> bool {
        let end = first + wanted;
        if wanted < n {
            self.fill(USED, end, first + n, false);
            return true;
        }
        if end > GRANULES
            || end > self.granules
                && !(backend.grows_in_place() && self.grow(backend, end - self.granules))
            || self.seek(first + n, TAKEN) < end
        {
            return false;
        }
        self.fill(USED, first + n, end, true);
        true
    }

    /// At least `more` granules more at the arena's end. The first region starts the arena and
    /// holds the bitmaps; a later one must come after it (a break pointer's next piece), and what
    /// lies between the two is held for good. A region that cannot continue the arena is given
    /// back if the backend can take it. Only backends that grow in place are asked twice: over
    /// others the arena is its first region, all `GRANULES` granules of it.
    #[inline(never)]
    fn grow<B: OsBackend>(&mut self, backend: &B, more: usize) -> bool {
        let first = self.base.is_null();
        let table = if first { Self::TABLE } else { 0 };
        let more = if backend.grows_in_place() {
            more + table
        } else if first {
            GRANULES
        } else {
            return false;
        };
        if more > GRANULES {
            return false;
        }
        let Some(region) = backend.alloc(more << SHIFT, GRANULE, true) else {
            return false;
        };
        let base = if first {
            region.ptr.as_ptr()
        } else {
            self.base
        };
        let offset = region.ptr.addr().get().wrapping_sub(base.addr());
        // The first granule of the region past the bitmaps. A region below `base` wraps to a start
        // past `GRANULES`, as does one past the arena's room; one below the arena's end would
        // overlap it, which a backend never does, but a wrong one is refused all the same.
        let start = (offset >> SHIFT) + table;
        if start >= GRANULES || start < self.granules {
            // SAFETY: the region came from `backend` just now and nothing uses it.
            unsafe { backend.free(region) };
            return false;
        }
        self.base = base;
        self.bits = base.cast::<u32>();
        if first && !region.zeroed {
            // SAFETY: the table's `2 * WORDS` words lie in the region's first `TABLE` granules
            // (`TABLE < GRANULES` and the region spans `more >= TABLE` of them), which are ours
            // and aligned to a granule.
            unsafe { self.bits.write_bytes(0, 2 * Self::WORDS) };
        }
        let old = self.granules;
        self.granules = ((offset + region.size) >> SHIFT).min(GRANULES);
        // The bitmaps, or the gap since the arena's old end, held for good.
        self.hold(old, start);
        true
    }

    /// How many of the granules of bitmap word `w` (below `granules.div_ceil(32)`) are not free,
    /// for the map.
    pub(crate) fn taken_in_word(&self, w: usize) -> u32 {
        // SAFETY: `w * 32 < granules <= GRANULES`: the words are in the table.
        unsafe { (*self.word(USED, w * 32) | *self.word(START, w * 32)).count_ones() }
    }
}
