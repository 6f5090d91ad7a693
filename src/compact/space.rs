//! The compact engine's arena: one run of blocks that grows at its end, and a tag per block that
//! says who holds it. No bitmap, no registry, no compare-and-swap: the engine's one lock covers it.
//! The tags are a table of `BLOCKS` words in the arena's first blocks, held for good, so that the
//! allocator value itself stays small.
//!
//! A tag is 0 for a free block. A held block's tag leads to the end of its holder (the block after
//! its last), so that a search steps over a whole page or run at once:
//!
//! | holder | first block | other blocks |
//! |---|---|---|
//! | a page | `PAGE \| record` | `PAGE \| record` |
//! | a run handed out | `START \| end` | `INNER \| first` |
//! | a gap (memory another user took between two growths, or blocks of page records) | `end` | `INNER \| first` |
//!
//! A page's tag names its record, the page's header and bitmap, which live together with the
//! other pages' records in blocks of their own (see [`pages`](super::pages)): `record` is the
//! record's offset from the arena's start in units of [`RECORD_UNIT`] bytes, and the record's first
//! word is the page's end.

use crate::backend::OsBackend;
use core::ptr;

/// Tag bit of every block of a page.
pub(crate) const PAGE: u32 = 1 << 31;
/// Tag bit of the first block of a run handed out.
pub(crate) const START: u32 = 1 << 30;
/// Tag bit of the blocks of a run or gap after its first.
const INNER: u32 = 1 << 29;
/// The block number (or record number) in a tag.
const NUMBER: u32 = INNER - 1;
/// log2 of the unit in which a page's tag names its record: the smallest block size, so that a
/// record at the start of any block has a number.
pub(crate) const RECORD_UNIT: u32 = 6;

/// Where an address lies in the arena.
pub(crate) enum Spot {
    /// In a block of a page, whose record is number `record`.
    Page { record: usize },
    /// At the start of the run `[first, end)` handed out.
    Run { first: usize, end: usize },
    /// At the start of a free block.
    Free,
    /// Inside a run or a gap, not at the start of one handed out.
    Inside,
    /// Not in the arena.
    Outside,
}

/// The arena of a compact engine: up to `BLOCKS` blocks from its first region on.
pub(crate) struct Space<const BLOCKS: usize> {
    /// The first byte of block 0, null until the first region comes. Every pointer the engine hands
    /// out is derived from it, and so are the later regions, which continue the same memory.
    base: *mut u8,
    /// Blocks the arena spans: `[0, blocks)` are the engine's, `blocks <= BLOCKS`.
    blocks: usize,
    /// log2 of the block size.
    shift: u32,
    /// Blocks asked for at first use from a backend that does not grow in place: the arena's size
    /// for good.
    reserve: usize,
    /// Every block below `hint` is held; `hint` is the first block of a holder or a free block.
    hint: usize,
    /// The tag table: `BLOCKS` words at `base` (null until the first region), one per block as
    /// the module's table says, 0 for blocks at or past `blocks`. It lies in the arena's first
    /// blocks, which are held for good.
    tags: *mut u32,
}

impl<const BLOCKS: usize> Space<BLOCKS> {
    /// An empty arena of blocks of `1 << shift` bytes (at least the record unit). Panics (at
    /// compile time in a `static`) if `BLOCKS` blocks of that size do not fit in the address
    /// space or in a tag, or span more than 32 GiB, past which a record's number would not fit in
    /// a tag.
    pub(crate) const fn new(shift: u32, reserve_bytes: usize) -> Self {
        assert!(
            BLOCKS > 0 && BLOCKS <= NUMBER as usize,
            "BLOCKS must be between 1 and 2^29 - 1"
        );
        assert!(
            shift >= RECORD_UNIT && shift < usize::BITS && BLOCKS <= (isize::MAX as usize) >> shift,
            "BLOCKS blocks of this size do not fit in the address space"
        );
        assert!(
            BLOCKS <= (NUMBER as usize) >> (shift - RECORD_UNIT),
            "BLOCKS blocks of this size span more than 32 GiB"
        );
        let mut reserve = reserve_bytes >> shift;
        if reserve > BLOCKS {
            reserve = BLOCKS;
        }
        Space {
            base: ptr::null_mut(),
            blocks: 0,
            shift,
            reserve,
            hint: 0,
            tags: ptr::null_mut(),
        }
    }

    /// Blocks the tag table takes.
    fn table_blocks(&self) -> usize {
        ((BLOCKS * 4 - 1) >> self.shift) + 1
    }

    /// log2 of the block size.
    #[inline(always)]
    pub(crate) fn shift(&self) -> u32 {
        self.shift
    }

    /// Blocks the arena spans now.
    pub(crate) fn blocks(&self) -> usize {
        self.blocks
    }

    /// The first byte of `block` (at most `blocks`).
    #[inline(always)]
    pub(crate) fn at(&self, block: usize) -> *mut u8 {
        self.base.wrapping_add(block << self.shift)
    }

    #[inline(always)]
    fn tag(&self, block: usize) -> u32 {
        debug_assert!(block < self.blocks);
        // SAFETY: callers pass a block below `blocks`, which is at most `BLOCKS`; with a block in
        // the arena, the table is there, `BLOCKS` words long.
        unsafe { *self.tags.add(block) }
    }

    #[inline(always)]
    fn set(&mut self, block: usize, tag: u32) {
        debug_assert!(block < self.blocks);
        // SAFETY: as for `tag`; the lock makes this the only access.
        unsafe { *self.tags.add(block) = tag };
    }

    /// Record number `number`: the first byte of a page's record, whose first word is the page's
    /// end (the module's table).
    #[inline(always)]
    pub(crate) fn record(&self, number: usize) -> *mut u8 {
        self.base.wrapping_add(number << RECORD_UNIT)
    }

    /// The number a page's tag gives the record at `record`, which lies in the arena at a multiple
    /// of the record unit from its start. It fits in a tag, as the arena spans at most 32 GiB
    /// (`new`).
    pub(crate) fn record_number(&self, record: *mut u8) -> u32 {
        (record.addr().wrapping_sub(self.base.addr()) >> RECORD_UNIT) as u32
    }

    /// The end of the holder of the held `block`.
    fn end_of(&self, block: usize) -> usize {
        let mut tag = self.tag(block);
        if tag & PAGE != 0 {
            // SAFETY: a page's tag names its live record, whose first word is the page's end (the
            // module's table); records lie in the arena, in blocks held for good.
            return unsafe { *self.record((tag & NUMBER) as usize).cast::<usize>() };
        }
        if tag & INNER != 0 {
            tag = self.tag((tag & NUMBER) as usize);
        }
        (tag & NUMBER) as usize
    }

    /// What holds `addr`.
    #[inline(always)]
    pub(crate) fn spot(&self, addr: usize) -> Spot {
        let offset = addr.wrapping_sub(self.base.addr());
        if offset >= self.blocks << self.shift {
            return Spot::Outside;
        }
        let block = offset >> self.shift;
        let tag = self.tag(block);
        let at_start = offset & ((1 << self.shift) - 1) == 0;
        if tag & PAGE != 0 {
            Spot::Page {
                record: (tag & NUMBER) as usize,
            }
        } else if !at_start || tag & INNER != 0 || (tag != 0 && tag & START == 0) {
            Spot::Inside
        } else if tag == 0 {
            Spot::Free
        } else {
            Spot::Run {
                first: block,
                end: (tag & NUMBER) as usize,
            }
        }
    }

    /// Claims the lowest run of `n` free blocks whose first byte is a multiple of `align` (a power
    /// of two), growing the arena over `backend` when there is none, and tags it as `kind` says
    /// (see [`hold`](Self::hold)). Returns its first block.
    pub(crate) fn claim<B: OsBackend>(
        &mut self,
        backend: &B,
        n: usize,
        align: usize,
        kind: u32,
    ) -> Option<usize> {
        if n > BLOCKS || align > BLOCKS << self.shift {
            return None;
        }
        let mut block = self.hint;
        // Free blocks found in a row, ending before `block`.
        let mut run = 0;
        loop {
            if block >= self.blocks {
                // `block + n - run` blocks make the run; grow the arena to them.
                if block + n - run > BLOCKS || !self.grow(backend, block + n - run - self.blocks) {
                    return None;
                }
                continue;
            }
            if self.tag(block) != 0 {
                let end = self.end_of(block);
                if block == self.hint {
                    self.hint = end;
                }
                run = 0;
                block = end;
                continue;
            }
            if run == 0 {
                let pad = self.at(block).addr().wrapping_neg() & (align - 1);
                if pad != 0 {
                    // The arena's blocks are block-aligned, so a larger alignment is a whole
                    // number of blocks away.
                    block += (pad >> self.shift).max(1);
                    continue;
                }
            }
            run += 1;
            block += 1;
            if run == n {
                let first = block - n;
                self.hold(first, n, kind);
                return Some(first);
            }
        }
    }

    /// Tags `[first, first + n)` as a page (`kind` is `PAGE | record`, the tag of all its
    /// blocks), a run handed out (`START`) or a gap (0).
    fn hold(&mut self, first: usize, n: usize, kind: u32) {
        let (head, rest) = if kind & PAGE != 0 {
            (kind, kind)
        } else {
            (kind | (first + n) as u32, INNER | first as u32)
        };
        self.set(first, head);
        for block in first + 1..first + n {
            self.set(block, rest);
        }
    }

    /// Frees `[first, first + n)`, held by one page or run.
    pub(crate) fn release(&mut self, first: usize, n: usize) {
        for block in first..first + n {
            self.set(block, 0);
        }
        self.hint = self.hint.min(first);
    }

    /// Resizes the run handed out at `first` from `n` blocks to `wanted` (at least 1) in place:
    /// shrinking always, growing into the free blocks that follow it, and past the arena's end
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
            self.release(end, n - wanted);
        } else if wanted > n {
            let free = |space: &Self, to: usize| (first + n..to).all(|b| space.tag(b) == 0);
            if end > BLOCKS || !free(self, end.min(self.blocks)) {
                return false;
            }
            if end > self.blocks
                && !(backend.grows_in_place()
                    && self.grow(backend, end - self.blocks)
                    && free(self, end))
            {
                return false;
            }
            for block in first + n..end {
                self.set(block, INNER | first as u32);
            }
        }
        self.set(first, START | end as u32);
        true
    }

    /// At least `more` blocks more at the arena's end. The first region starts the arena; a later
    /// one must come after it (a break pointer's next piece), and what lies between the two
    /// becomes a gap held for good. A region that cannot continue the arena is given back if the
    /// backend can take it. Only backends that grow in place are asked twice: over others the
    /// arena is its first region, of `reserve` blocks or what the first request needs.
    #[inline(never)]
    fn grow<B: OsBackend>(&mut self, backend: &B, more: usize) -> bool {
        let block = 1 << self.shift;
        let first = self.base.is_null();
        let table = if first { self.table_blocks() } else { 0 };
        let more = if backend.grows_in_place() {
            more + table
        } else if first {
            (more + table).max(self.reserve)
        } else {
            return false;
        };
        let Some(bytes) = more
            .checked_mul(block)
            .filter(|&bytes| bytes <= BLOCKS << self.shift)
        else {
            return false;
        };
        let Some(region) = backend.alloc(bytes, block, true) else {
            return false;
        };
        if first {
            self.base = region.ptr.as_ptr();
        }
        let offset = region.ptr.addr().get().wrapping_sub(self.base.addr());
        let start = offset >> self.shift;
        if offset % block != 0 || start < self.blocks || start + table >= BLOCKS {
            // SAFETY: the region came from `backend` just now and nothing uses it.
            unsafe { backend.free(region) };
            if first {
                self.base = ptr::null_mut();
            }
            return false;
        }
        let end = (offset + region.size) >> self.shift;
        let old = self.blocks;
        self.blocks = end.min(BLOCKS);
        if first {
            self.tags = self.base.cast::<u32>();
            if !region.zeroed {
                // SAFETY: the table's `BLOCKS` words lie in the region's first `table` blocks
                // (`start + table < BLOCKS <= end`), which are ours, aligned to a block.
                unsafe { self.tags.write_bytes(0, BLOCKS) };
            }
            self.hold(0, table, 0);
        } else if start > old {
            self.hold(old, start - old, 0);
        }
        true
    }

    /// Blocks `blocks` of the arena (those past its end left out), for the map: whether each is
    /// held, and whether by a page.
    pub(crate) fn states(
        &self,
        blocks: core::ops::Range<usize>,
    ) -> impl Iterator<Item = (bool, bool)> + '_ {
        (blocks.start..blocks.end.min(self.blocks)).map(|block| {
            let tag = self.tag(block);
            (tag != 0, tag & PAGE != 0)
        })
    }
}
