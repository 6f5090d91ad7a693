//! The compact engine's object layer: the size classes of the main heap, served from pages cut
//! out of the arena, and larger objects as block runs of their own.
//!
//! A page is a run of blocks with its header in its last bytes and a bitmap just below it; every
//! block of it is tagged with the page's end, so a pointer finds its header in two loads. The
//! bitmap has a bit per object, set while the object is free after having been handed out: a free
//! sets it, and finds it set when the object was freed already; an allocation takes the lowest set
//! one. Objects never handed out are taken by a bump index. So neither touches the object's own
//! memory, which is cold by the time a program frees it. A page that empties is given back to the
//! arena unless it is its class's only page with objects to give.

use super::space::{Space, Spot, PAGE, START};
use crate::backend::OsBackend;
use crate::error::FreeErrorKind;
use crate::heap::class::{class_for, class_size, CLASSES, MAX_CLASS_SIZE};
use crate::heap::HeapCounters;
use crate::Config;
use core::num::NonZeroUsize;
use core::ptr;

/// Bits in a word of a page's bitmap.
const WORD: usize = usize::BITS as usize;
/// Bytes in a word of a page's bitmap.
const WORD_BYTES: usize = core::mem::size_of::<usize>();

/// Bytes at the end of every page for its header.
const HEADER: usize = core::mem::size_of::<Page>();

/// The header of a page, in the page's last [`HEADER`] bytes.
pub(crate) struct Page {
    /// The bitmap: words just below the header, enough for `capacity` bits, between the last
    /// object and the header. Bit `i % WORD` of word `i / WORD` is set exactly while object `i`
    /// is free and below `bump`; so `bump - used` bits are set. Derived from the arena's base.
    bits: *mut usize,
    /// Every word of `bits` below this one is zero.
    low: usize,
    /// Neighbours on the class's list of pages with objects to give; the list holds the page
    /// exactly while `linked` is set.
    next: *mut Page,
    prev: *mut Page,
    /// The first object; object `i` is at `start + i * size`. Derived from the arena's base.
    start: *mut u8,
    /// Object size in bytes: the class's size.
    size: NonZeroUsize,
    /// Objects handed out now.
    used: usize,
    /// Objects `[0, bump)` have been handed out at least once; the others never were, and their
    /// bits are clear.
    bump: usize,
    /// Objects that fit before the header.
    capacity: usize,
    class: usize,
    /// The page's blocks: `[first, first + blocks)`.
    first: usize,
    blocks: usize,
    linked: bool,
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
    /// The largest object served from a page.
    max_small: usize,
    /// Bytes a class's later pages aim at (see [`Config::page_target`]).
    page_target: usize,
    pub(crate) counters: HeapCounters,
}

impl<const BLOCKS: usize> Pages<BLOCKS> {
    pub(crate) const fn new(config: &Config) -> Self {
        config.validate();
        let block = config.block_size;
        // As the main heap: at most eight blocks, so that a block run wastes less than an eighth.
        let mut max_small = config.small_limit;
        if max_small > block << 3 {
            max_small = block << 3;
        }
        if max_small > MAX_CLASS_SIZE {
            max_small = MAX_CLASS_SIZE;
        }
        Pages {
            space: Space::new(block.trailing_zeros(), config.arena_reserve),
            lists: [ptr::null_mut(); CLASSES],
            alive: [0; CLASSES],
            max_small,
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

    /// An object of `page`: the lowest free one, else the next never handed out.
    #[inline(always)]
    fn take(page: &mut Page) -> Option<*mut u8> {
        let index = if page.used < page.bump {
            let mut at = page.low;
            loop {
                // SAFETY: `bump - used` bits are set, none in the words below `low` (the
                // invariants on `bits` and `low`), so a set bit lies at or after `at`, in the
                // bitmap.
                let word = unsafe { &mut *page.bits.add(at) };
                if *word != 0 {
                    let bit = word.trailing_zeros() as usize;
                    *word &= *word - 1;
                    page.low = at;
                    break at * WORD + bit;
                }
                at += 1;
            }
        } else if page.bump < page.capacity {
            page.bump += 1;
            page.bump - 1
        } else {
            return None;
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
    /// class used once holds little; 32 objects up to `page_target` for the later ones.
    #[inline(never)]
    fn new_page<B: OsBackend>(&mut self, backend: &B, class: usize) -> bool {
        let shift = self.space.shift();
        let size = class_size(class);
        let objects = if size >> shift == 0 { 4 } else { 2 };
        let mut bytes = size * objects + HEADER;
        if self.alive[class] != 0 {
            bytes = bytes.max((size * 32 + HEADER).min(self.page_target));
        }
        let n = ((bytes - 1) >> shift) + 1;
        let Some(first) = self.space.claim(backend, n, 1 << shift, PAGE) else {
            return false;
        };
        let start = self.space.at(first);
        let room = (n << shift) - HEADER;
        // The bitmap takes a bit for each object that could fit, rounded up to words; the objects
        // the rest (at least one: a page has room for two objects and its header).
        let words = (room / size).div_ceil(WORD);
        let bits = start
            .wrapping_add(room - words * WORD_BYTES)
            .cast::<usize>();
        let header = start.wrapping_add(room).cast::<Page>();
        // SAFETY: the bitmap's and the header's places are inside the blocks just claimed, which
        // nobody else uses, and aligned (the page ends on a block, `HEADER` is a multiple of the
        // header's alignment and of a word).
        unsafe {
            ptr::write_bytes(bits, 0, words);
            header.write(Page {
                bits,
                low: 0,
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                start,
                size: NonZeroUsize::new(size).unwrap_or(NonZeroUsize::MIN),
                used: 0,
                bump: 0,
                capacity: (room - words * WORD_BYTES) / size,
                class,
                first,
                blocks: n,
                linked: false,
            });
            self.link(header);
        }
        self.alive[class] += 1;
        self.counters.pages_made += 1;
        true
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
            Spot::Page { end } => {
                let header = self.space.at(end).wrapping_sub(HEADER).cast::<Page>();
                // SAFETY: a page's blocks are tagged with its end, before which its live header
                // is.
                let page = unsafe { &*header };
                let offset = ptr.addr().wrapping_sub(page.start.addr());
                let index = offset / page.size;
                if offset % page.size != 0 || index >= page.bump {
                    return Err(FreeErrorKind::Misaligned);
                }
                // SAFETY: `index < bump <= capacity`: its bit is in the bitmap.
                if unsafe { *page.bits.add(index / WORD) } & 1 << (index % WORD) != 0 {
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
        // SAFETY: `locate` found object `index` handed out now, below `bump`: its bit is in the
        // bitmap, and clear; setting it keeps the invariant on `bits` with `used` one less.
        unsafe { *page.bits.add(at) |= 1 << (index % WORD) };
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
            let (class, first, n) = (page.class, page.first, page.blocks);
            // SAFETY: listed; `page` is not used again.
            unsafe { self.unlink(header) };
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
        let moved = self.alloc_any(backend, new_size, align);
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
