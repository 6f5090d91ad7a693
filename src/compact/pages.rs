//! The compact engine's object layer: the size classes of the main heap, served from pages cut
//! out of the arena, and larger objects as block runs of their own.
//!
//! A page is a run of blocks holding objects only. Its header and its bitmap are its *record*, a
//! fixed-size slot in blocks of records that serve every page; every block of a page is tagged
//! with its record's number, so a pointer finds its header in two loads. The records of all pages
//! lie together in a few blocks. A header at each page's end, as the engine had before, was a
//! cache line and a memory page of its own for every page, and its load the costliest instruction
//! of a free (`BENCHMARKS.md`).
//!
//! The bitmap has a bit per object, set while the object is handed out: an allocation takes the
//! lowest clear one and sets it, a free clears it, and finds it clear when the object was freed
//! already (or never handed out). So neither touches the object's own memory, which is cold by the
//! time a program frees it. A page that empties is given back to the arena unless it is its
//! class's only page with objects to give; its record, bitmap all clear, goes back to the free
//! records. Blocks of records are held for good.

use super::space::{Space, Spot, PAGE, START};
use crate::backend::OsBackend;
use crate::error::FreeErrorKind;
use crate::heap::class::{class_for, class_size, CLASSES};
use crate::heap::{Heap, HeapCounters};
use crate::Config;
use core::num::NonZeroUsize;
use core::ptr;

/// Bits in a word of a page's bitmap.
const WORD: usize = usize::BITS as usize;

/// Objects a page holds at most: the bits of its record's bitmap. With blocks of 4 KiB only a page
/// of 8-byte objects would hold more (its block's second half stays unused); with larger blocks,
/// the pages of more small classes.
const MAX_OBJECTS: usize = 256;

/// Above this many bytes, a realloc that grows an allocation out of its object moves it into the
/// power of two that holds the new size (see `realloc_at`). Below it, objects are small enough that
/// a copy costs little, and the classes are close together.
#[cfg(not(opt_size))]
const GROWTH_ROOM_FROM: usize = 1024;

/// Bytes of a record: a power of two, so that records tile their blocks, and a multiple of the
/// record unit, so that each has a number.
const RECORD: usize = core::mem::size_of::<Page>().next_power_of_two();
const _: () = assert!(RECORD % (1 << super::space::RECORD_UNIT) == 0);
// 128 bytes on 32- and 64-bit targets alike, as the engine's docs say.
const _: () = assert!(RECORD == 128);

/// A page's record: its header and bitmap, in a block of records, away from its objects.
#[repr(C)]
pub(crate) struct Page {
    /// The block after the page's last. First, for the arena's search, which reads it through the
    /// page's tags.
    end: usize,
    /// Every word of `bits` below this one has all its bits set: its objects are all handed out.
    low: usize,
    /// Neighbours on the class's list of pages with objects to give; the list holds the page
    /// exactly while `linked` is set. In a free record, `next` is the next free record.
    next: *mut Page,
    prev: *mut Page,
    /// The first object; object `i` is at `start + i * size`. Derived from the arena's base.
    start: *mut u8,
    /// Object size in bytes: the class's size.
    size: NonZeroUsize,
    /// Objects handed out now.
    used: usize,
    /// `⌊(2^32 - 1) / size⌋ + 1`, at least `2^32 / size`: an offset into the page times this,
    /// shifted right by 32, is the number of the object it starts, a multiply where a division
    /// costs more (see `locate`). Builds for size divide instead.
    #[cfg(not(opt_size))]
    reciprocal: u64,
    /// Objects that fit in the page's blocks, at most [`MAX_OBJECTS`].
    capacity: usize,
    class: usize,
    /// The page's blocks: `[first, end)`.
    first: usize,
    linked: bool,
    /// The bitmap: bit `i % WORD` of word `i / WORD` is set exactly while object `i` is handed
    /// out, so `used` bits are set, all below `capacity`. All are clear in a free record (a page
    /// goes back when it has nothing handed out, and blocks of records start zeroed), so a new
    /// page needs no clearing.
    bits: [usize; MAX_OBJECTS / WORD],
}

/// What a page keeps to find an object's number from an offset, for objects of `size` bytes.
#[cfg(not(opt_size))]
pub(crate) const fn reciprocal(size: usize) -> u64 {
    u32::MAX as u64 / size as u64 + 1
}

/// The number of the object that `offset` starts, in a page of objects with this reciprocal;
/// see `locate`.
#[cfg(not(opt_size))]
#[inline(always)]
pub(crate) fn object_at(offset: usize, reciprocal: u64) -> usize {
    ((offset as u64 * reciprocal) >> 32) as usize
}

/// Where a live allocation lives.
#[derive(Clone, Copy)]
pub(crate) enum Found {
    /// Object `index` of the page with this header.
    Object { page: *mut Page, index: usize },
    /// The block run `[first, first + n)`.
    Run { first: usize, n: usize },
}

/// The arena and the pages of a compact engine. Not thread-safe by itself: the engine keeps it
/// behind its lock.
pub(crate) struct Pages<const BLOCKS: usize> {
    pub(crate) space: Space<BLOCKS>,
    /// Per class, the first page with an object to give (null: none). Every page on a list is a
    /// live page of that class, `linked`, and has a free object or one never handed out.
    lists: [*mut Page; CLASSES],
    /// Per class, pages alive; a class's first page is the smallest that will do.
    alive: [u16; CLASSES],
    /// The free records, linked through `next` (null: none). Each lies in a block of records and is
    /// no page's.
    records: *mut Page,
    /// The largest object served from a page: the main heap's bound, a class size
    /// ([`Heap::max_small`]).
    max_small: usize,
    /// Bytes a class's later pages aim at (see [`Config::page_target`]).
    page_target: usize,
    pub(crate) counters: HeapCounters,
}

impl<const BLOCKS: usize> Pages<BLOCKS> {
    pub(crate) const fn new(config: &Config) -> Self {
        config.validate();
        Pages {
            space: Space::new(config.block_size.trailing_zeros(), config.arena_reserve),
            lists: [ptr::null_mut(); CLASSES],
            alive: [0; CLASSES],
            records: ptr::null_mut(),
            max_small: Heap::max_small(config),
            page_target: config.page_target,
            counters: HeapCounters::ZERO,
        }
    }

    #[inline(always)]
    fn list(&mut self, class: usize) -> &mut *mut Page {
        debug_assert!(class < CLASSES);
        // SAFETY: every class comes from `class_for`, below `CLASSES`.
        unsafe { self.lists.get_unchecked_mut(class) }
    }

    #[inline(always)]
    fn counted(&mut self, ptr: *mut u8, usable: usize) -> *mut u8 {
        let c = &mut self.counters;
        c.allocs += 1;
        c.bytes_in_use += usable;
        c.peak_bytes = c.peak_bytes.max(c.bytes_in_use);
        ptr
    }

    /// The common allocation, with nothing but loads and stores: an object of a size class from
    /// the first page of its list. `None`, having changed nothing, when the request is not for a
    /// page object or that page is missing or full; [`alloc`](Self::alloc) then does the rest.
    /// Builds for size do without it.
    #[cfg(not(opt_size))]
    #[inline(always)]
    pub(crate) fn alloc_fast(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let class = class_for(size, align, self.max_small, 1 << self.space.shift())?;
        let listed = *self.list(class);
        if listed.is_null() {
            return None;
        }
        // SAFETY: pages on a list are live headers (the invariant on `lists`), and the engine's
        // lock makes this the only reference.
        let object = unsafe { Self::take(&mut *listed) }?;
        // SAFETY: as above.
        let size = unsafe { (*listed).size.get() };
        Some(self.counted(object, size))
    }

    /// Any allocation: the fast path first, in builds that have it, then the rest.
    #[inline(always)]
    pub(crate) fn alloc_any<B: OsBackend>(
        &mut self,
        backend: &B,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        #[cfg(not(opt_size))]
        if let Some(ptr) = self.alloc_fast(size, align) {
            return ptr;
        }
        self.alloc(backend, size, align)
    }

    /// The lowest free object of `page`, if it has one.
    #[inline(always)]
    fn take(page: &mut Page) -> Option<*mut u8> {
        if page.used == page.capacity {
            return None;
        }
        let mut at = page.low;
        let index = loop {
            // SAFETY: fewer than `capacity` bits are set, all below `capacity`, and the words below
            // `low` have all theirs set (the invariants on `bits` and `low`): a clear bit below
            // `capacity` lies at or after `at`, and the lowest clear bit is that one or before
            // it, in the bitmap.
            let word = unsafe { page.bits.get_unchecked_mut(at) };
            if *word != usize::MAX {
                let bit = word.trailing_ones() as usize;
                *word |= 1 << bit;
                page.low = at;
                break at * WORD + bit;
            }
            at += 1;
        };
        page.used += 1;
        Some(page.start.wrapping_add(index * page.size.get()))
    }

    /// `size` bytes (at least 1) aligned to `align` (a power of two), or null: any request, the
    /// fast path's included.
    #[inline(never)]
    pub(crate) fn alloc<B: OsBackend>(
        &mut self,
        backend: &B,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        let shift = self.space.shift();
        // A page starts on a block, so its objects are aligned to whatever of the block size
        // divides their size.
        if let Some(class) = class_for(size, align, self.max_small, 1 << shift) {
            return self.alloc_small(backend, class);
        }
        let n = (size - 1) >> shift;
        match self.space.claim(backend, n + 1, align, START) {
            Some(first) => self.counted(self.space.at(first), (n + 1) << shift),
            None => ptr::null_mut(),
        }
    }

    fn alloc_small<B: OsBackend>(&mut self, backend: &B, class: usize) -> *mut u8 {
        loop {
            let listed = *self.list(class);
            if listed.is_null() {
                if !self.new_page(backend, class) {
                    return ptr::null_mut();
                }
                continue;
            }
            // SAFETY: pages on a list are live headers (the invariant on `lists`), and this
            // engine's lock makes this the only reference.
            let page = unsafe { &mut *listed };
            let size = page.size.get();
            if let Some(object) = Self::take(page) {
                return self.counted(object, size);
            }
            // Full: off the list until one of its objects is freed.
            // SAFETY: listed, and `page` is not used again.
            unsafe { self.unlink(listed) };
        }
    }

    /// Makes a page for `class` and puts it on the class's list; `false` when the arena has no
    /// room. Its size: four objects (two of a block or more) for a class's first page, so that a
    /// class used once holds little; 32 objects up to `page_target` for the later ones; at most
    /// [`MAX_OBJECTS`] fit in it.
    #[inline(never)]
    fn new_page<B: OsBackend>(&mut self, backend: &B, class: usize) -> bool {
        let shift = self.space.shift();
        let size = class_size(class);
        let objects = if size >> shift == 0 { 4 } else { 2 };
        let mut bytes = size * objects;
        if self.alive[class] != 0 {
            bytes = bytes.max((size * 32).min(self.page_target));
        }
        let n = ((bytes - 1) >> shift) + 1;
        if self.records.is_null() && !self.more_records(backend) {
            return false;
        }
        // Taken off the free records once the page's blocks are claimed.
        let header = self.records;
        let number = self.space.record_number(header.cast());
        let Some(first) = self.space.claim(backend, n, 1 << shift, PAGE | number) else {
            return false;
        };
        // SAFETY: a free record (the invariant on `records`), which only this list knows.
        self.records = unsafe { (*header).next };
        // SAFETY: a free record, in a block of records held for good, aligned (records tile their
        // blocks at multiples of `RECORD`, a multiple of the record's alignment), and nobody else
        // uses it. Its bitmap is clear already (the invariant on `bits`); the other fields are
        // written here, through the raw pointer, as a free record's may hold any bytes.
        unsafe {
            (*header).end = first + n;
            (*header).low = 0;
            (*header).start = self.space.at(first);
            (*header).size = NonZeroUsize::new(size).unwrap_or(NonZeroUsize::MIN);
            (*header).used = 0;
            #[cfg(not(opt_size))]
            {
                (*header).reciprocal = reciprocal(size);
            }
            (*header).capacity = ((n << shift) / size).min(MAX_OBJECTS);
            (*header).class = class;
            (*header).first = first;
            self.link(header);
        }
        self.alive[class] += 1;
        self.counters.pages_made += 1;
        true
    }

    /// Claims a block of records (more than one when a record is larger than a block) and puts
    /// them on the free records; `false` when the arena has no room. The blocks are a gap, held
    /// for good.
    fn more_records<B: OsBackend>(&mut self, backend: &B) -> bool {
        let shift = self.space.shift();
        let n = ((RECORD - 1) >> shift) + 1;
        let Some(first) = self.space.claim(backend, n, 1 << shift, 0) else {
            return false;
        };
        let start = self.space.at(first);
        // SAFETY: the blocks just claimed, which nobody else uses: their records start with a
        // clear bitmap.
        unsafe { start.write_bytes(0, n << shift) };
        for i in 0..(n << shift) / RECORD {
            // SAFETY: a record's place in the blocks just claimed, which nobody else uses.
            unsafe { self.give_record(start.wrapping_add(i * RECORD).cast()) };
        }
        true
    }

    /// Puts `record` on the free records.
    ///
    /// # Safety
    /// `record` is a record in a block of records, free (no page's), not on the list.
    unsafe fn give_record(&mut self, record: *mut Page) {
        // SAFETY: the caller's promise: the record is ours to write.
        unsafe { ptr::addr_of_mut!((*record).next).write(self.records) };
        self.records = record;
    }

    /// Puts `page` at the head of its class's list.
    ///
    /// # Safety
    /// `page` is a live header, not on the list, and no reference to it is used afterwards (the
    /// list keeps this pointer).
    unsafe fn link(&mut self, page: *mut Page) {
        // SAFETY: a live header (the caller's promise) and the lists' pages are live headers;
        // only raw pointers are used, so the pointers the lists keep stay valid.
        unsafe {
            let head = self.list((*page).class);
            let next = *head;
            *head = page;
            (*page).prev = ptr::null_mut();
            (*page).next = next;
            (*page).linked = true;
            if !next.is_null() {
                (*next).prev = page;
            }
        }
    }

    /// Takes `page` off its class's list.
    ///
    /// # Safety
    /// `page` is a live header on the list, and no reference to it is used afterwards.
    unsafe fn unlink(&mut self, page: *mut Page) {
        // SAFETY: as for `link`: a listed page and its neighbours are live headers.
        unsafe {
            let (prev, next) = ((*page).prev, (*page).next);
            if prev.is_null() {
                *self.list((*page).class) = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*page).linked = false;
        }
    }

    /// Where the allocation at `ptr` lives, or why `ptr` is not one. Inlined into the free and
    /// realloc, except in builds for size.
    #[cfg_attr(not(opt_size), inline(always))]
    #[cfg_attr(opt_size, inline(never))]
    pub(crate) fn locate(&self, ptr: *mut u8) -> Result<Found, FreeErrorKind> {
        match self.space.spot(ptr.addr()) {
            Spot::Page { record } => {
                let header = self.space.record(record).cast::<Page>();
                // SAFETY: a page's blocks are tagged with the number of its live record.
                let page = unsafe { &*header };
                let offset = ptr.addr().wrapping_sub(page.start.addr());
                // Exact where `offset` is an object's start, `k * size`: `size * reciprocal` is
                // `2^32 + e` with `e < size`, and `k * e < offset`, below 2^26 (a page spans at
                // most 32 objects of at most 1 MiB, rounded up to a block of at most 1 MiB).
                // Elsewhere it may be one off, and the check below refuses `ptr` either way.
                #[cfg(not(opt_size))]
                let index = object_at(offset, page.reciprocal);
                #[cfg(opt_size)]
                let index = offset / page.size;
                if offset != index * page.size.get() || index >= page.capacity {
                    return Err(FreeErrorKind::Misaligned);
                }
                // SAFETY: `index < capacity`: its bit is in the bitmap.
                if unsafe { *page.bits.get_unchecked(index / WORD) } & 1 << (index % WORD) == 0 {
                    return Err(FreeErrorKind::DoubleFree);
                }
                Ok(Found::Object {
                    page: header,
                    index,
                })
            }
            Spot::Run { first, end } => Ok(Found::Run {
                first,
                n: end - first,
            }),
            Spot::Free => Err(FreeErrorKind::DoubleFree),
            Spot::Inside => Err(FreeErrorKind::Misaligned),
            Spot::Outside => Err(FreeErrorKind::NotOurs),
        }
    }

    /// Frees `ptr` if it is a live allocation; else says why not, having changed nothing.
    ///
    /// # Safety
    /// If `ptr` is a live allocation, the caller gives it up.
    #[inline(always)]
    pub(crate) unsafe fn free(&mut self, ptr: *mut u8) -> Result<(), FreeErrorKind> {
        let found = self.locate(ptr)?;
        // SAFETY: just located; the caller gives the allocation up.
        unsafe { self.free_at(found) };
        Ok(())
    }

    /// Frees the allocation that `locate` found at `found`.
    ///
    /// # Safety
    /// `found` is what `locate` returned for a pointer since the last change to the engine, and the
    /// caller gives the allocation up.
    #[cfg_attr(not(opt_size), inline(always))]
    #[cfg_attr(opt_size, inline(never))]
    pub(crate) unsafe fn free_at(&mut self, found: Found) {
        let (header, index) = match found {
            Found::Object { page, index } => (page, index),
            Found::Run { first, n } => return self.free_run(first, n),
        };
        self.counters.frees += 1;
        // SAFETY: `locate` found the page's live header; the lock makes this the only reference.
        let page = unsafe { &mut *header };
        let at = index / WORD;
        // SAFETY: `locate` found object `index` handed out now, below `capacity`: its bit is in
        // the bitmap, and set; clearing it keeps the invariant on `bits` with `used` one less.
        unsafe { *page.bits.get_unchecked_mut(at) &= !(1 << (index % WORD)) };
        page.low = page.low.min(at);
        page.used -= 1;
        self.counters.bytes_in_use -= page.size.get();
        if !page.linked || page.used == 0 {
            // SAFETY: a live header, and `page` is not used again.
            unsafe { self.settle(header) };
        }
    }

    /// Frees the block run `[first, first + n)`.
    #[inline(never)]
    fn free_run(&mut self, first: usize, n: usize) {
        self.counters.frees += 1;
        self.counters.bytes_in_use -= n << self.space.shift();
        self.space.release(first, n);
    }

    /// After a free from `page`: a page that was full goes back on its list, and one that
    /// emptied goes back to the arena unless it is its class's only page with room.
    ///
    /// # Safety
    /// `page` is a live header, and no reference to it is used afterwards.
    #[inline(never)]
    unsafe fn settle(&mut self, header: *mut Page) {
        // SAFETY: the caller's promise; the lock makes this the only reference.
        let page = unsafe { &mut *header };
        if !page.linked {
            // SAFETY: a live header off its list; `page` is not used again.
            unsafe { self.link(header) };
        } else if !(page.prev.is_null() && page.next.is_null()) {
            let (class, first, n) = (page.class, page.first, page.end - page.first);
            // SAFETY: listed; `page` is not used again; once off the list, the record is no
            // page's.
            unsafe {
                self.unlink(header);
                self.give_record(header);
            }
            self.alive[class] -= 1;
            self.counters.pages_returned += 1;
            self.space.release(first, n);
        }
    }

    /// Resizes the allocation at `ptr`, found at `found`, to `new_size` bytes aligned to `align`:
    /// in place when its object or run can hold them and `ptr` is aligned so, else by moving it.
    /// Null when there is no room (the allocation is left as it was).
    ///
    /// # Safety
    /// As for [`free_at`](Self::free_at); the allocation holds at least `old_size` bytes the caller
    /// wrote, and was made with `align`.
    pub(crate) unsafe fn realloc_at<B: OsBackend>(
        &mut self,
        backend: &B,
        ptr: *mut u8,
        found: Found,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> *mut u8 {
        let shift = self.space.shift();
        let aligned = ptr.addr() & (align - 1) == 0;
        let usable = match found {
            Found::Run { first, n } => {
                let wanted = ((new_size.max(1) - 1) >> shift) + 1;
                if aligned && self.space.resize(backend, first, n, wanted) {
                    let c = &mut self.counters;
                    c.bytes_in_use = c.bytes_in_use - (n << shift) + (wanted << shift);
                    c.peak_bytes = c.peak_bytes.max(c.bytes_in_use);
                    return ptr;
                }
                n << shift
            }
            Found::Object { page, .. } => {
                // SAFETY: `locate` found the page's live header.
                let size = unsafe { (*page).size.get() };
                if aligned && new_size <= size {
                    return ptr;
                }
                size
            }
        };
        // An allocation that grows out of its object is likely to grow again: above
        // `GROWTH_ROOM_FROM` it moves into the power of two that holds it (a class, up to
        // `max_small`), so that the next growth finds room in place. If memory is short for that,
        // the new size alone will do. Builds for size move to the new size.
        #[cfg(not(opt_size))]
        let moved = {
            let room = if new_size > usable && new_size > GROWTH_ROOM_FROM {
                new_size
                    .next_power_of_two()
                    .min(self.max_small)
                    .max(new_size)
            } else {
                new_size
            };
            let moved = self.alloc_any(backend, room, align);
            if moved.is_null() && room != new_size {
                self.alloc(backend, new_size, align)
            } else {
                moved
            }
        };
        #[cfg(opt_size)]
        let moved = self.alloc(backend, new_size, align);
        if !moved.is_null() {
            // SAFETY: both are ours and distinct; the old one holds the bytes the caller wrote
            // (at most its usable size), the new one at least `new_size`. The old one is still
            // handed out, so its page or run is still where `found` says.
            unsafe {
                ptr::copy_nonoverlapping(ptr, moved, old_size.min(usable).min(new_size));
                self.free_at(found);
            }
        }
        moved
    }
}
