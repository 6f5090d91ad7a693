//! One arena: a region cut into blocks of `block_size` bytes, with a descriptor and its bitmaps in
//! the metadata area. Blocks are claimed in runs with compare-and-swap, so any number of threads can
//! allocate and free in the same arena at once.
//!
//! Follows the seed's `mi_arena_t`, `mi_arena_try_alloc_at` and the checks of `_mi_arena_free`.

use crate::atomic::{AtomicU32, AtomicUsize, Ordering};
use crate::backend::{OsBackend, Region};
use crate::bitmap::Bitmap;
use crate::memid::{Allocation, ArenaId, MemId, MemKind};
use core::fmt;
use core::mem::size_of;
use core::ptr::NonNull;

mod purge;
pub(crate) use purge::Purging;

/// Bits per bitmap field.
const FIELD_BITS: usize = usize::BITS as usize;

/// The bitmaps of an arena, in the order they follow the descriptor in memory.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Map {
    InUse = 0,
    Dirty = 1,
    Committed = 2,
    Purge = 3,
}

/// What a new arena is made of.
pub(crate) struct ArenaInit {
    pub id: ArenaId,
    /// First byte; a multiple of `block_size`.
    pub start: NonNull<u8>,
    /// Usable bytes from `start`; at least one block.
    pub size: usize,
    /// Blocks the arena may grow to (see [`Arena::grow`]); at most `size`'s blocks means none.
    pub capacity: usize,
    /// `log2(block_size)`.
    pub block_shift: u32,
    /// The backend region to free when the arena is destroyed; `None` for memory the user manages.
    pub region: Option<Region>,
    pub committed: bool,
    pub zero: bool,
    pub pinned: bool,
    pub exclusive: bool,
    /// The backend region the descriptor itself lives in; `None` when it is in the static area.
    pub meta_region: Option<Region>,
}

/// A block run handed out by [`Arena::try_alloc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claimed {
    /// First block of the run.
    pub block: usize,
    /// Every block of the run is committed.
    pub committed: bool,
    /// Every byte of the run reads as zero.
    pub zero: bool,
}

/// An arena descriptor. It lives in the metadata area, followed directly by its bitmaps, and is never
/// moved once published.
pub(crate) struct Arena {
    /// The arena's id; never changes once the arena is published in the registry.
    pub id: ArenaId,
    /// The first byte of the arena, a multiple of the block size. Every block pointer is derived from
    /// this pointer (strict provenance).
    start: NonNull<u8>,
    /// `log2` of the block size.
    block_shift: u32,
    /// Usable blocks: `[start, start + block_count << block_shift)` is the arena. Only grows, up
    /// to `capacity`, by [`grow`](Self::grow); a block below it stays in the arena for good.
    block_count: AtomicUsize,
    /// Blocks the bitmaps and tags have room for: the most `block_count` can grow to.
    capacity: usize,
    /// Fields per bitmap: `field_count * FIELD_BITS >= capacity`.
    field_count: usize,
    /// Serves only requests that name this arena.
    pub exclusive: bool,
    /// The memory can never be decommitted; then there is no committed and no purge bitmap.
    pinned: bool,
    /// The backend region behind the arena, freed by `destroy_all`; `None` for managed memory.
    pub region: Option<Region>,
    /// The backend region holding this descriptor; `None` when it is in the static area.
    pub meta_region: Option<Region>,
    /// Field at which the last search succeeded: only a hint where to start the next one.
    search_hint: AtomicUsize,
    /// When the blocks marked in the purge bitmap are due (the backend's clock in milliseconds,
    /// wrapping); 0 when none is scheduled. See [`purge`].
    purge_expire: AtomicUsize,
    /// Blocks purged so far, for the statistics.
    purged_blocks: AtomicUsize,
    /// The bitmaps, `field_count` fields each, right after the descriptor:
    /// - in-use: bit i set ⇔ block i is handed out, or lies past `block_count` (not grown into
    ///   yet, or padding past `capacity`);
    /// - dirty: bit i clear ⇒ block i reads as zero (it has not been handed out since it was);
    /// - committed (absent when `pinned`): bit i clear ⇒ block i must be committed before it is
    ///   handed out;
    /// - purge (absent when `pinned`): bit i set ⇒ block i is free and scheduled for a purge.
    bitmaps: NonNull<AtomicUsize>,
    /// `capacity` tags, one per block, right after the bitmaps: a word the layer above keeps
    /// for each block it holds (the heap says there which page a block belongs to). Zero for a
    /// free block; the holder of a block run writes its tags and zeroes them before releasing it.
    tags: NonNull<AtomicU32>,
}

// SAFETY: all shared mutable state is in atomics (`search_hint`, the bitmaps); the rest is written once
// before the descriptor is published and only read after.
unsafe impl Sync for Arena {}
// SAFETY: as above; the pointers name memory owned by the registry, not by a thread.
unsafe impl Send for Arena {}

impl Arena {
    /// Number of bitmaps an arena keeps.
    const fn bitmap_count(pinned: bool) -> usize {
        if pinned {
            2
        } else {
            4
        }
    }

    /// Bitmap fields needed for `block_count` blocks.
    pub const fn field_count(block_count: usize) -> usize {
        block_count.div_ceil(FIELD_BITS)
    }

    /// Bytes of metadata (descriptor and bitmaps) for an arena of `block_count` blocks.
    pub fn meta_size(block_count: usize, pinned: bool) -> Option<usize> {
        let fields = Self::field_count(block_count)
            .checked_mul(Self::bitmap_count(pinned))?
            .checked_mul(size_of::<AtomicUsize>())?;
        let tags = block_count.checked_mul(size_of::<AtomicU32>())?;
        size_of::<Arena>().checked_add(fields)?.checked_add(tags)
    }

    /// Writes a new arena descriptor and its bitmaps at `place`.
    ///
    /// # Safety
    /// `place` is zeroed, writable memory of `Arena::meta_size(init.capacity, init.pinned)` bytes,
    /// aligned for `Arena`, that nobody else uses; `init.start` points to `init.size` bytes that
    /// belong to the new arena.
    pub unsafe fn init(place: NonNull<u8>, init: ArenaInit) -> NonNull<Arena> {
        let block_count = init.size >> init.block_shift;
        let capacity = init.capacity.max(block_count);
        let field_count = Self::field_count(capacity);
        let arena = place.cast::<Arena>();
        // SAFETY: `place` is large enough for the descriptor followed by the bitmaps and the tags
        // (caller), and a descriptor's size is a multiple of its alignment, which is at least
        // `AtomicUsize`'s (and so `AtomicU32`'s).
        let (bitmaps, tags) = unsafe {
            let bitmaps = place.add(size_of::<Arena>()).cast::<AtomicUsize>();
            let words = Self::bitmap_count(init.pinned) * field_count;
            (bitmaps, bitmaps.add(words).cast::<AtomicU32>())
        };
        // SAFETY: `place` is valid, aligned and unused (caller).
        unsafe {
            arena.write(Arena {
                id: init.id,
                start: init.start,
                block_shift: init.block_shift,
                block_count: AtomicUsize::new(block_count),
                capacity,
                field_count,
                exclusive: init.exclusive,
                pinned: init.pinned,
                region: init.region,
                meta_region: init.meta_region,
                search_hint: AtomicUsize::new(0),
                purge_expire: AtomicUsize::new(0),
                purged_blocks: AtomicUsize::new(0),
                bitmaps,
                tags,
            })
        };
        // SAFETY: just written; the bitmaps and tags are zeroed memory (caller), which is a valid
        // atomic each, and all clear.
        let this = unsafe { arena.as_ref() };
        this.mark_fresh(init.committed, init.zero);
        arena
    }

    /// Sets the bitmaps to a fresh arena's state: nothing in use but the padding past the last block,
    /// everything committed (or not), everything dirty unless the memory is known zero.
    fn reset_bitmaps(&self, committed: bool, zero: bool) {
        for field in self.in_use().fields().iter().chain(self.dirty().fields()) {
            field.store(0, Ordering::Relaxed);
        }
        for tag in self.tags() {
            tag.store(0, Ordering::Relaxed);
        }
        self.purge_expire.store(0, Ordering::Relaxed);
        if let Some(purge_map) = self.purge() {
            for field in purge_map.fields() {
                field.store(0, Ordering::Relaxed);
            }
        }
        self.mark_fresh(committed, zero);
    }

    /// The bits of a fresh arena that are set, over bitmaps and tags that are all clear: the
    /// padding past the last block is in use, everything is dirty unless the memory is known zero,
    /// and everything is committed if it is.
    fn mark_fresh(&self, committed: bool, zero: bool) {
        let count = self.block_count();
        let padding = self.field_count * FIELD_BITS - count;
        if padding > 0 {
            self.in_use().claim(count, padding);
        }
        if !zero {
            self.dirty().claim(0, self.field_count * FIELD_BITS);
        }
        if let Some(commit_map) = self.committed() {
            for field in commit_map.fields() {
                field.store(if committed { usize::MAX } else { 0 }, Ordering::Relaxed);
            }
        }
    }

    /// Frees every block at once (for `destroy_all` on memory that cannot be given back): the arena
    /// is as it was when reserved, but dirty.
    ///
    /// # Safety
    /// No block of the arena is used any more, and no other thread uses the arena during the call.
    pub unsafe fn clear(&self) {
        let committed = self
            .committed()
            .is_none_or(|c| c.count_set() == c.bit_count());
        self.reset_bitmaps(committed, false);
    }

    #[inline]
    fn bitmap(&self, map: Map) -> Bitmap<'_, AtomicUsize> {
        debug_assert!((map as usize) < Self::bitmap_count(self.pinned));
        // SAFETY: `bitmaps` points to `bitmap_count * field_count` initialised atomics that live as
        // long as the descriptor (see `init`); bitmap `map` is the `map`-th run of `field_count`.
        let fields = unsafe {
            core::slice::from_raw_parts(
                self.bitmaps.as_ptr().add(map as usize * self.field_count),
                self.field_count,
            )
        };
        Bitmap::new(fields)
    }

    /// Blocks purged so far.
    pub fn purged_blocks(&self) -> usize {
        self.purged_blocks.load(Ordering::Relaxed)
    }

    /// Blocks committed now.
    pub fn committed_blocks(&self) -> usize {
        match self.committed() {
            None => self.block_count(),
            Some(committed) => (0..self.block_count())
                .filter(|&block| committed.is_set(block))
                .count(),
        }
    }

    /// The block tags (see the field's invariant).
    #[inline(always)]
    pub fn tags(&self) -> &[AtomicU32] {
        // SAFETY: `tags` points to `capacity` initialised atomics that live as long as the
        // descriptor (see `init`).
        unsafe { core::slice::from_raw_parts(self.tags.as_ptr(), self.capacity) }
    }

    /// The in-use bitmap.
    #[inline]
    pub fn in_use(&self) -> Bitmap<'_, AtomicUsize> {
        self.bitmap(Map::InUse)
    }

    /// The dirty bitmap.
    #[inline]
    pub fn dirty(&self) -> Bitmap<'_, AtomicUsize> {
        self.bitmap(Map::Dirty)
    }

    /// The committed bitmap; `None` for pinned memory, which is always committed.
    #[inline]
    pub fn committed(&self) -> Option<Bitmap<'_, AtomicUsize>> {
        (!self.pinned).then(|| self.bitmap(Map::Committed))
    }

    /// The purge bitmap; `None` for pinned memory, which is never purged.
    #[inline]
    pub fn purge(&self) -> Option<Bitmap<'_, AtomicUsize>> {
        (!self.pinned).then(|| self.bitmap(Map::Purge))
    }

    /// The block size in bytes.
    #[inline]
    pub fn block_size(&self) -> usize {
        1 << self.block_shift
    }

    /// Number of usable blocks.
    #[inline(always)]
    pub fn block_count(&self) -> usize {
        // Relaxed: a thread that holds a pointer into grown blocks got it, through some
        // synchronisation, from the claim that followed the growth, so it sees the new count.
        self.block_count.load(Ordering::Relaxed)
    }

    /// Number of blocks the arena can grow to.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.start.addr().get() + self.size()
    }

    /// Adds the `blocks` blocks that follow the arena's last one, making them free (and dirty
    /// unless `zero`). Returns `false`, changing nothing, when the arena has no room for them or is
    /// not pinned (an arena with commit state does not grow).
    ///
    /// # Safety
    /// The `blocks << block_shift` bytes right after the arena's end are committed memory that
    /// now belongs to the arena, reachable from the arena's start pointer; no other thread grows
    /// this arena at the same time.
    pub unsafe fn grow(&self, blocks: usize, zero: bool) -> bool {
        let old = self.block_count();
        if !self.pinned || blocks == 0 || blocks > self.capacity - old {
            return false;
        }
        if zero {
            self.dirty().unclaim(old, blocks);
        } else {
            self.dirty().claim(old, blocks);
        }
        self.block_count.store(old + blocks, Ordering::Release);
        // Last, with release: whoever claims one of the new blocks sees the count and the dirty
        // bits above.
        self.in_use().unclaim(old, blocks);
        true
    }

    /// The first byte.
    pub fn start(&self) -> NonNull<u8> {
        self.start
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.block_count() << self.block_shift
    }

    /// The first byte of block `block` (`block <= block_count`).
    #[inline]
    pub fn block_ptr(&self, block: usize) -> NonNull<u8> {
        debug_assert!(block <= self.block_count());
        // SAFETY: `block <= block_count`, so the offset is inside the arena or one past its end.
        unsafe { self.start.add(block << self.block_shift) }
    }

    /// `log2` of the block size.
    #[inline(always)]
    pub fn block_shift(&self) -> u32 {
        self.block_shift
    }

    /// Byte offset of `addr` from the start, if it lies inside the arena.
    #[inline]
    pub fn offset_of(&self, addr: usize) -> Option<usize> {
        addr.checked_sub(self.start.addr().get())
            .filter(|&offset| offset < self.size())
    }

    /// Hands out a run of `blocks` blocks aligned to `align`, as [`try_alloc`](Self::try_alloc)
    /// claims it, named by its memory id.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn alloc<B: OsBackend>(
        &self,
        blocks: usize,
        align: usize,
        commit: bool,
        backend: &B,
    ) -> Option<Allocation> {
        let claimed = self.try_alloc(blocks, align, commit, backend)?;
        Some(Allocation {
            ptr: self.block_ptr(claimed.block),
            size: blocks << self.block_shift,
            memid: MemId {
                kind: MemKind::Arena {
                    id: self.id,
                    block: claimed.block,
                },
                initially_committed: claimed.committed,
                initially_zero: claimed.zero,
                pinned: self.pinned,
            },
        })
    }

    /// Claims a run of `blocks` blocks whose start is a multiple of `align`, committing it if
    /// `commit` is asked and the run is not committed yet.
    ///
    /// Returns `None`, with no bit left claimed, if there is no such run or the commit fails.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn try_alloc<B: OsBackend>(
        &self,
        blocks: usize,
        align: usize,
        commit: bool,
        backend: &B,
    ) -> Option<Claimed> {
        if blocks == 0 || blocks > self.block_count() {
            return None;
        }
        let in_use = self.in_use();
        let dirty = self.dirty();
        // The dirty word of the field the search starts in, read before the claim: a load after a
        // compare-and-swap waits for it to complete. Reading early is safe only towards "dirty":
        // dirty bits are cleared only by a purge, which makes the early answer merely conservative.
        // Small builds (wasm, firmware: one core, no compare-and-swap to wait for) skip the trick
        // and leave the answer to `prepare`, in a hundred bytes less.
        let (hint, dirty_before) = match self.search_hint.load(Ordering::Relaxed) {
            hint if hint < self.field_count && cfg!(not(small_code)) => {
                (hint, dirty.fields()[hint].load(Ordering::Relaxed))
            }
            hint if hint < self.field_count => (hint, 0),
            _ => (0, 0),
        };
        let block = if align <= self.block_size() {
            let block = in_use.try_find_claim(hint, blocks)?;
            if block / FIELD_BITS != hint {
                self.search_hint
                    .store(block / FIELD_BITS, Ordering::Relaxed);
            }
            block
        } else {
            self.try_claim_aligned(blocks, align)?
        };
        // The run is ours now: no other thread touches its bits in any bitmap.

        // In a warm arena the run is dirty already, as the early read shows without another load.
        let offset = block % FIELD_BITS;
        let known_dirty = block / FIELD_BITS == hint && offset + blocks <= FIELD_BITS && {
            let mask = usize::MAX >> (FIELD_BITS - blocks);
            (dirty_before >> offset) & mask == mask
        };
        match self.prepare(block, blocks, commit, known_dirty, backend) {
            Some((committed, zero)) => Some(Claimed {
                block,
                committed,
                zero,
            }),
            None => {
                in_use.unclaim(block, blocks);
                None
            }
        }
    }

    /// Makes a run that was just claimed ready to hand out: no purge pending on it, committed if
    /// asked, marked dirty. Returns whether it is committed and whether it reads as zero, or `None`
    /// if the commit failed (the caller then gives the run back).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn prepare<B: OsBackend>(
        &self,
        block: usize,
        blocks: usize,
        commit: bool,
        known_dirty: bool,
        backend: &B,
    ) -> Option<(bool, bool)> {
        // The run is ours now: no other thread touches its bits in any bitmap.
        let (committed, zeroed_by_commit) = if B::COMMITS {
            self.prepare_commit(block, blocks, commit, backend)?
        } else {
            // Every arena over such a backend is pinned (see `OsBackend::COMMITS`).
            (true, false)
        };
        let dirty = self.dirty();
        let never_used = !known_dirty
            && !dirty.is_claimed(block, blocks)
            && dirty.claim(block, blocks).all_clear;
        Some((committed, committed && (never_used || zeroed_by_commit)))
    }

    /// The commit and purge part of [`prepare`](Self::prepare), for backends with commit state:
    /// clears any purge pending on the run, and commits it if asked. Returns whether the run is
    /// committed and whether the commit zeroed it, or `None` if the commit failed.
    fn prepare_commit<B: OsBackend>(
        &self,
        block: usize,
        blocks: usize,
        commit: bool,
        backend: &B,
    ) -> Option<(bool, bool)> {
        // None of the claimed blocks may stay scheduled for a purge (test first: rarely any is).
        if let Some(purge) = self.purge() {
            if purge.is_any_claimed(block, blocks) {
                purge.unclaim(block, blocks);
            }
        }
        match self.committed() {
            None => Some((true, false)),
            Some(committed) if committed.is_claimed(block, blocks) => Some((true, false)),
            Some(committed) if commit => {
                let ptr = self.block_ptr(block);
                // SAFETY: the run lies inside the arena's region and is claimed by the caller, so
                // nobody else touches it.
                let zeroed = unsafe { backend.commit(ptr, blocks << self.block_shift) }.ok()?;
                committed.claim(block, blocks);
                Some((true, zeroed))
            }
            Some(_) => Some((false, false)),
        }
    }

    /// Grows the run `[block, block + blocks)`, which the caller holds, by the `extra` blocks right
    /// after it if they are free, committing them. Returns whether the new blocks read as zero, or
    /// `None` (and nothing changed) if they are not free or cannot be committed.
    pub fn try_extend<B: OsBackend>(
        &self,
        block: usize,
        blocks: usize,
        extra: usize,
        backend: &B,
    ) -> Option<bool> {
        let from = block.checked_add(blocks)?;
        if extra == 0 || from.checked_add(extra)? > self.block_count() {
            return None;
        }
        if !self.in_use().try_claim(from, extra) {
            return None;
        }
        match self.prepare(from, extra, true, false, backend) {
            Some((_, zero)) => Some(zero),
            None => {
                self.in_use().unclaim(from, extra);
                None
            }
        }
    }

    /// Gives back the last blocks of the run `[block, block + blocks)`, which the caller holds,
    /// keeping the first `keep` (at least one); they are scheduled for a purge.
    pub fn shrink<B: OsBackend>(
        &self,
        block: usize,
        blocks: usize,
        keep: usize,
        purging: Purging<'_, B>,
    ) {
        debug_assert!(keep >= 1 && keep <= blocks && block + blocks <= self.block_count());
        if keep < blocks {
            self.schedule_purge(block + keep, blocks - keep, purging);
            self.in_use().unclaim(block + keep, blocks - keep);
            self.lower_hint(block + keep);
        }
    }

    /// Claims a free run of `blocks` blocks starting at an address that is a multiple of `align`
    /// (larger than the block size): candidate starts are `align / block_size` blocks apart.
    #[inline(never)]
    fn try_claim_aligned(&self, blocks: usize, align: usize) -> Option<usize> {
        let start = self.start.addr().get();
        let first = (crate::backend::align_up(start, align)? - start) >> self.block_shift;
        let step = align >> self.block_shift;
        let in_use = self.in_use();
        let mut block = first;
        while block.checked_add(blocks)? <= self.block_count() {
            if !in_use.is_any_claimed(block, blocks) && in_use.try_claim(block, blocks) {
                return Some(block);
            }
            block = block.checked_add(step)?;
        }
        None
    }

    /// Gives back the run of `size` bytes at `ptr` that was handed out as block `block`, if it is
    /// exactly that: `ptr` is the start of block `block`, the run lies inside the arena, and every
    /// block of it is in use. Otherwise nothing changes and the answer is `false`. A run given
    /// back is scheduled for a purge (see [`purge`]).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn release<B: OsBackend>(
        &self,
        ptr: NonNull<u8>,
        block: usize,
        size: usize,
        purging: Purging<'_, B>,
    ) -> bool {
        if block >= self.block_count()
            || ptr.addr().get() != self.start.addr().get() + (block << self.block_shift)
        {
            return false;
        }
        // `size == 0` wraps to a block count larger than any arena, refused below.
        let blocks = (size.wrapping_sub(1) >> self.block_shift) + 1;
        if blocks > self.block_count() - block {
            return false;
        }
        if purging.enabled() && !self.pinned {
            // The purge is marked (or done) while the run is still ours: only a run that is
            // all in use is.
            if !self.in_use().is_claimed(block, blocks) {
                return false;
            }
            self.schedule_purge(block, blocks, purging);
        }
        let released = self.in_use().try_unclaim(block, blocks);
        if released {
            self.lower_hint(block);
        }
        released
    }

    /// Moves the search hint down to the field of `block`, which was just freed: searches start at
    /// the lowest field known to have room, so freed memory (still in the caches) is reused before
    /// untouched memory further up, and the arena stays packed towards its start.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn lower_hint(&self, block: usize) {
        let field = block / FIELD_BITS;
        if field < self.search_hint.load(Ordering::Relaxed) {
            self.search_hint.store(field, Ordering::Relaxed);
        }
    }

    /// Writes the arena's part of the arena map: a header, then one line per in-use field, with `x`
    /// for a block in use and `.` for a free one, block 0 first.
    pub fn write_map(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        // Read once: writing the map may allocate, and so grow the arena, while it is written.
        let count = self.block_count();
        let in_use = self.in_use();
        let used = (0..count).filter(|&block| in_use.is_set(block)).count();
        writeln!(
            out,
            "arena {}: {} blocks of {} bytes at {:#x}, {} field{}{}{}",
            self.id.get(),
            count,
            self.block_size(),
            self.start.addr().get(),
            self.field_count,
            if self.field_count == 1 { "" } else { "s" },
            if self.exclusive { ", exclusive" } else { "" },
            if self.pinned { ", pinned" } else { "" },
        )?;
        if self.capacity > count {
            writeln!(out, "  grows to {} blocks", self.capacity)?;
        }
        let shown = count.div_ceil(FIELD_BITS);
        for (f, field) in in_use.fields().iter().enumerate().take(shown) {
            let bits = field.load(Ordering::Relaxed);
            let end = (count - f * FIELD_BITS).min(FIELD_BITS);
            out.write_str("  ")?;
            for bit in 0..end {
                out.write_char(if bits & (1 << bit) != 0 { 'x' } else { '.' })?;
            }
            out.write_char('\n')?;
        }
        writeln!(out, "  in use: {used} of {count} blocks")
    }
}
