//! The object layer: size classes served from pages cut out of arena block runs, and large objects
//! as block runs of their own.
//!
//! mimalloc's `page.c` and `segment.c` are the ideas behind it (pages per size class, free lists
//! inside the free objects, pages given back when empty); the layout is ours. A pointer finds its
//! page without any search of the pages: the registry finds the arena (see
//! `arenas::lookup`), the arena's block tag says where the page starts and ends, and the page header
//! sits at the end of the page.
//!
//! A `Heap` is not thread-safe by itself: the global layer keeps several, each behind its own lock,
//! and a thread uses whichever it can lock. Every page belongs to one heap. An object freed by a
//! thread that cannot take that heap goes on the page's `remote` list instead (one compare-and-swap),
//! and the page on the heap's delayed stack, from where the owner takes them back before it makes a
//! new page.

pub(crate) mod class;
pub(crate) mod page;
mod tag;

use crate::arena::Arena;
use crate::arenas::Arenas;
use crate::atomic::AtomicPtr;
use crate::backend::OsBackend;
use crate::error::FreeErrorKind;
use crate::memid::{Allocation, ArenaId, MemKind};
use class::{class_ceiling, class_for, class_size, CLASSES, MAX_CLASS_SIZE};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use page::{Page, HEADER};
use tag::{Tag, MAX_LARGE_BLOCKS, MAX_PAGE_BLOCKS};

/// What a heap has done, for [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapCounters {
    /// Allocations made, in all (a reallocation that moves counts as one, and one free).
    pub allocs: u64,
    /// Allocations given back, in all.
    pub frees: u64,
    /// Bytes handed out now (usable sizes), as this heap counts them: an object is counted by the
    /// heap that hands it out and the heap that takes it back, so one heap's figure may wrap below
    /// zero; the sum over the heaps is exact.
    pub bytes_in_use: usize,
    /// The most `bytes_in_use` has been.
    pub peak_bytes: usize,
    /// Pages made, in all.
    pub pages_made: u64,
    /// Pages given back to their arena, in all.
    pub pages_returned: u64,
}

impl HeapCounters {
    /// Nothing done yet.
    pub const ZERO: HeapCounters = HeapCounters {
        allocs: 0,
        frees: 0,
        bytes_in_use: 0,
        peak_bytes: 0,
        pages_made: 0,
        pages_returned: 0,
    };
}

/// Where an allocation lives, found from its address without holding any heap.
#[derive(Clone, Copy)]
pub(crate) enum Located<'a> {
    /// An object of a page (not yet checked against the page's owner-only state), in `arena`. The
    /// page is a raw pointer, not a reference: a free may give the page's blocks back (and a purge
    /// overwrite them) while this value is still held, so a `&Page` is made only for as long as
    /// the page is known to live.
    Small {
        page: NonNull<Page>,
        arena: &'a Arena,
    },
    /// A large object: a run of `blocks` blocks starting at `block`.
    Large {
        arena: &'a Arena,
        block: usize,
        blocks: usize,
    },
}

/// One heap: for every size class, the list of its pages that have objects to give.
pub(crate) struct Heap {
    /// `pages[c]` heads the list of this heap's pages of class `c` that have a free or never-used
    /// object (null: none). Pages on a list have `linked` set; full pages are on no list.
    pages: [*mut Page; CLASSES],
    /// Pages of each class this heap holds (full ones too), saturating: a class's first page is
    /// made small, and only a class that needs a second gets pages of `page_target`.
    class_pages: [u16; CLASSES],
    /// This heap's index: the owner of the pages it makes.
    id: u8,
    /// Where its pages and large objects come from: any arena that is not exclusive, or one
    /// arena only.
    source: ArenaId,
    /// The largest object served from pages (see [`Heap::max_small`]).
    max_small: usize,
    /// `Config::page_target`: the page size that pages of medium objects grow to.
    page_target: usize,
    /// The block size: pages start on a multiple of it, so larger alignments are not served from
    /// pages.
    block_size: usize,
    pub counters: HeapCounters,
}

// SAFETY: the page pointers are only followed by the holder of the heap (the global layer keeps each
// heap behind a lock); pages live in arena memory owned by the allocator, not by a thread.
unsafe impl Send for Heap {}

/// An allocation handed out by [`Heap::alloc`].
pub(crate) struct Allocated {
    pub ptr: NonNull<u8>,
    /// Bytes usable from `ptr` (at least the size asked for).
    pub usable: usize,
    /// The memory reads as zero.
    pub zero: bool,
}

impl Heap {
    /// A heap drawing on every arena that is not exclusive.
    pub const fn new(id: u8, config: &crate::Config) -> Heap {
        Self::in_arena(id, ArenaId::ANY, config)
    }

    /// A heap drawing on arena `source` only (or on any, for [`ArenaId::ANY`]).
    pub const fn in_arena(id: u8, source: ArenaId, config: &crate::Config) -> Heap {
        Heap {
            pages: [ptr::null_mut(); CLASSES],
            class_pages: [0; CLASSES],
            id,
            source,
            max_small: Self::max_small(config),
            page_target: config.page_target,
            block_size: config.block_size,
            counters: HeapCounters::ZERO,
        }
    }

    /// The largest object served from pages: the configured `small_limit` rounded up to a class
    /// size, at most eight blocks (so that a larger object rounded up to whole blocks wastes less
    /// than an eighth, as the size classes do) and at most the largest class. A `small_limit` of 0
    /// stays 0: no pages at all.
    pub(crate) const fn max_small(config: &crate::Config) -> usize {
        let limit = if config.small_limit < config.block_size << 3 {
            config.small_limit
        } else {
            config.block_size << 3
        };
        if limit == 0 {
            return 0;
        }
        class_ceiling(if limit < MAX_CLASS_SIZE {
            limit
        } else {
            MAX_CLASS_SIZE
        })
    }

    /// Bytes of a page for objects of `size` bytes: at least two blocks, and four objects (two for
    /// objects of a block or more); up to `page_target`, 32 objects. Every class in use keeps a
    /// page that may be mostly empty, so small heaps want small pages; but a page of four objects
    /// fills after four allocations, and then every allocation of the class takes the slow path.
    /// Returns the aimed size and the least size, both whole blocks.
    fn page_bytes(&self, size: usize, block_size: usize) -> (usize, usize) {
        let objects = if size < block_size { 4 } else { 2 };
        let least = (block_size * 2).max(size * objects + HEADER);
        let aimed = (size * 32 + HEADER)
            .min(self.page_target)
            .min(MAX_PAGE_BLOCKS * block_size)
            .max(least);
        (
            aimed.next_multiple_of(block_size),
            least.next_multiple_of(block_size),
        )
    }

    #[inline(always)]
    fn count_alloc(&mut self, usable: usize) {
        self.counters.allocs += 1;
        self.counters.bytes_in_use = self.counters.bytes_in_use.wrapping_add(usable);
        if self.counters.bytes_in_use > self.counters.peak_bytes
            && self.counters.bytes_in_use <= isize::MAX as usize
        {
            self.counters.peak_bytes = self.counters.bytes_in_use;
        }
    }

    #[inline(always)]
    fn count_free(&mut self, usable: usize) {
        self.counters.frees += 1;
        self.counters.bytes_in_use = self.counters.bytes_in_use.wrapping_sub(usable);
    }

    /// Allocates `size` bytes aligned to `align` (a power of two). `delayed` is this heap's stack
    /// of pages with objects freed by other threads (`None`: objects are never freed that way).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn alloc<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        size: usize,
        align: usize,
        delayed: Option<&AtomicPtr<Page>>,
    ) -> Option<Allocated> {
        let allocated = match class_for(size, align, self.max_small, self.block_size) {
            Some(class) => self.alloc_small(arenas, class, delayed)?,
            None => self.alloc_large(arenas, size, align)?,
        };
        self.count_alloc(allocated.usable);
        Some(allocated)
    }

    /// The common allocation, with nothing but loads and stores: an object of a size class from the
    /// first page of its list. `None`, having changed nothing, when the request is not for a page
    /// object or that page has none to give; [`alloc`](Self::alloc) then does the rest.
    #[inline(always)]
    pub fn alloc_fast(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let class = class_for(size, align, self.max_small, self.block_size)?;
        let allocated = self.take_first(class)?;
        self.count_alloc(allocated.usable);
        Some(allocated.ptr)
    }

    /// An object from the first page on class `class`'s list, if there is one and it has one.
    #[inline(always)]
    fn take_first(&mut self, class: usize) -> Option<Allocated> {
        let page = *self.pages.get(class)?;
        if page.is_null() {
            return None;
        }
        // SAFETY: pages on a list are live page headers owned by this heap (invariant on `pages`),
        // and whoever has `&mut self` holds the heap.
        unsafe { Self::take(&*page) }
    }

    /// An object of class `class`: from the first page on the class's list, else from the others
    /// or a new page.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn alloc_small<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
        delayed: Option<&AtomicPtr<Page>>,
    ) -> Option<Allocated> {
        if let Some(allocated) = self.take_first(class) {
            return Some(allocated);
        }
        self.alloc_small_slow(arenas, class, delayed)
    }

    /// An object from `page`, if it has one.
    ///
    /// # Safety
    /// The caller holds the heap that owns `page`.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    unsafe fn take(page: &Page) -> Option<Allocated> {
        // SAFETY: forwarded from the caller.
        let object = unsafe { page.pop() }?;
        Some(Allocated {
            ptr: object.ptr,
            usable: page.size as usize,
            zero: object.zero,
        })
    }

    /// The first page of the class is full (or there is none): take back what other threads freed,
    /// take full pages off the list until one gives an object, else make a new page.
    #[inline(never)]
    fn alloc_small_slow<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
        delayed: Option<&AtomicPtr<Page>>,
    ) -> Option<Allocated> {
        if let Some(delayed) = delayed {
            self.drain(arenas, delayed);
        }
        loop {
            let page = self.pages[class];
            if page.is_null() {
                break;
            }
            // SAFETY: pages on a list are live page headers owned by this heap (invariant on
            // `pages`), and the caller holds the heap.
            let p = unsafe { &*page };
            // SAFETY: as above.
            if let Some(allocated) = unsafe { Self::take(p) } {
                return Some(allocated);
            }
            // SAFETY: as above; the page is full, so it leaves the list.
            unsafe { self.unlink(p) };
        }
        let page = self.new_page(arenas, class)?;
        // SAFETY: a fresh page header, owned by this heap, which the caller holds.
        unsafe { Self::take(page.as_ref()) }
    }

    /// Takes back the objects other threads freed into this heap's pages.
    #[inline(never)]
    pub fn drain<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        delayed: &AtomicPtr<Page>,
    ) {
        let mut page = delayed.swap(ptr::null_mut(), Acquire);
        while let Some(p) = NonNull::new(page) {
            let raw = p;
            // SAFETY: pages on the delayed stack are live pages of this heap (they cannot be
            // retired while objects on their remote list count as used), and the caller holds it.
            let p = unsafe { p.as_ref() };
            // Read the link before the remote list is taken: once it is, another thread may push
            // the page again and rewrite it.
            page = p.delayed_next.load(Relaxed);
            // SAFETY: as above.
            let count = unsafe { p.collect_remote() };
            for _ in 0..count {
                self.count_free(p.size as usize);
            }
            // SAFETY: as above; `p` is not used after this (the page may be retired).
            unsafe { self.after_free(arenas, raw) };
        }
    }

    /// Makes a page for class `class` from arena blocks and puts it at the head of its list.
    fn new_page<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
    ) -> Option<NonNull<Page>> {
        let block_size = arenas.block_size();
        let size = class_size(class);
        let (aimed, least) = self.page_bytes(size, block_size);
        if least / block_size > MAX_PAGE_BLOCKS {
            return None;
        }
        // The first page of a class is the smallest that will do: a class a program uses for one
        // or two objects (a hash table that grew into it) does not hold a large page. A class
        // with a page already gets one of the aimed size if there is room (a small heap, or an
        // arena heap's own arena, may hold only the smallest).
        let aimed = if self.class_pages[class] == 0 {
            least
        } else {
            aimed
        };
        let (run, bytes) = match self.blocks(arenas, aimed, block_size) {
            Some(run) => (run, aimed),
            None if aimed > least => (self.blocks(arenas, least, block_size)?, least),
            None => return None,
        };
        let blocks = bytes / block_size;
        let MemKind::Arena { id, block } = run.memid.kind else {
            return None;
        };
        let arena = arenas.published(id)?;
        // SAFETY: the run is committed (asked for), ours, block-aligned, and larger than a header
        // plus four objects.
        let page = unsafe {
            Page::init(
                run.ptr,
                bytes,
                blocks as u32,
                class,
                size,
                run.memid.initially_zero,
                self.id,
            )
        };
        // The tags go last, with release: a thread that finds the page through them sees it whole.
        for (back, tag) in arena.tags()[block..block + blocks].iter().enumerate() {
            tag.store(Tag::Page { back, blocks }.encode(), Release);
        }
        // SAFETY: the page is new, this heap's, and on no list.
        unsafe { self.link(page.as_ref()) };
        self.class_pages[class] = self.class_pages[class].saturating_add(1);
        self.counters.pages_made += 1;
        Some(page)
    }

    /// A committed block run from this heap's source: any arena (reserving one if need be), or its
    /// own arena only.
    fn blocks<B: OsBackend, const M: usize, const N: usize>(
        &self,
        arenas: &Arenas<B, M, N>,
        size: usize,
        align: usize,
    ) -> Option<Allocation> {
        arenas.alloc_in_arena(size, align, self.source)
    }

    #[inline(never)]
    fn alloc_large<B: OsBackend, const M: usize, const N: usize>(
        &self,
        arenas: &Arenas<B, M, N>,
        size: usize,
        align: usize,
    ) -> Option<Allocated> {
        let run = self.blocks(arenas, size, align)?;
        let MemKind::Arena { id, block } = run.memid.kind else {
            return None;
        };
        let arena = arenas.published(id)?;
        let blocks = run.size >> arena.block_shift();
        if blocks > MAX_LARGE_BLOCKS {
            arenas.release(arena, run.ptr, block, run.size);
            return None;
        }
        arena.tags()[block].store(Tag::Large { blocks }.encode(), Release);
        Some(Allocated {
            ptr: run.ptr,
            usable: run.size,
            zero: run.memid.initially_zero,
        })
    }

    /// Finds the page or the large object of `ptr` without holding any heap, or says why there is
    /// none. A page's owner-only state is not looked at: the holder of its heap checks that.
    #[inline(always)]
    pub fn locate<B: OsBackend, const M: usize, const N: usize>(
        arenas: &Arenas<B, M, N>,
        ptr: NonNull<u8>,
    ) -> Result<Located<'_>, FreeErrorKind> {
        let addr = ptr.addr().get();
        let arena = arenas.find(addr).ok_or(FreeErrorKind::NotOurs)?;
        let shift = arena.block_shift();
        let offset = addr - arena.start().addr().get();
        let block = offset >> shift;
        match Tag::decode(arena.tags()[block].load(Acquire)) {
            Tag::Page { back, blocks } => {
                let end = arena.block_ptr(block - back + blocks);
                // SAFETY: the tag (read with acquire, after the page was made) says a live page
                // ends at `end`, with its header in its last `HEADER` bytes: inside the arena.
                let page = unsafe { end.sub(HEADER) }.cast::<Page>();
                Ok(Located::Small { page, arena })
            }
            Tag::Large { blocks } if offset & ((1 << shift) - 1) == 0 => Ok(Located::Large {
                arena,
                block,
                blocks,
            }),
            Tag::Large { .. } => Err(FreeErrorKind::Misaligned),
            Tag::None if arena.in_use().is_set(block) => Err(FreeErrorKind::Misaligned),
            Tag::None => Err(FreeErrorKind::DoubleFree),
        }
    }

    /// The common free, with nothing but loads and stores: the object at `ptr` goes back to `page`,
    /// a page of this heap that keeps other objects handed out and stays on its list. Returns
    /// `false`, having changed nothing, in every other case (a bad free included):
    /// [`free_small`](Self::free_small) then does the rest.
    ///
    /// # Safety
    /// The caller holds this heap, `page` is this heap's, and if `ptr` is a live object nobody uses
    /// it any more.
    #[inline(always)]
    pub unsafe fn free_fast(&mut self, page: &Page, ptr: NonNull<u8>) -> bool {
        // SAFETY: the caller holds the owner heap.
        let local = unsafe { page.local() };
        let common = local.linked && local.used > 1;
        // SAFETY: the caller holds the owner heap.
        if !common || !unsafe { page.is_handed_out(ptr) } || page.is_free(ptr) {
            return false;
        }
        // SAFETY: `ptr` starts a handed-out object of the page (checked above), which the caller
        // gives up; the caller holds the owner heap.
        unsafe { page.push(ptr) };
        self.count_free(page.size as usize);
        true
    }

    /// Frees the object at `ptr` of `page`, a page of this heap; returns its usable size. On a bad
    /// free nothing changes.
    ///
    /// # Safety
    /// The caller holds this heap, `page` is this heap's, and if `ptr` is a live object nobody uses
    /// it any more.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub unsafe fn free_small<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        page: NonNull<Page>,
        ptr: NonNull<u8>,
    ) -> Result<usize, FreeErrorKind> {
        // SAFETY: the page holds `ptr`, whose free is not applied yet, so it lives until the
        // `after_free` below, after which `p` is not used.
        let p = unsafe { page.as_ref() };
        // SAFETY: the caller holds the owner heap.
        if !unsafe { p.is_handed_out(ptr) } {
            return Err(FreeErrorKind::Misaligned);
        }
        if p.is_free(ptr) {
            return Err(FreeErrorKind::DoubleFree);
        }
        // SAFETY: `ptr` starts a handed-out object of the page (checked above), which the caller
        // gives up; the caller holds the owner heap.
        unsafe { p.push(ptr) };
        // Read before `after_free`, which may give the page back.
        let usable = p.size as usize;
        // SAFETY: as above.
        let local = unsafe { p.local() };
        if !local.linked || local.used == 0 {
            // SAFETY: the page belongs to this heap, which the caller holds.
            unsafe { self.after_free(arenas, page) };
        }
        self.count_free(usable);
        Ok(usable)
    }

    /// Frees a large object found by [`locate`](Self::locate).
    ///
    /// # Safety
    /// If the object is live, nobody uses it any more.
    #[inline(never)]
    pub unsafe fn free_large<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        arena: &Arena,
        block: usize,
        blocks: usize,
        ptr: NonNull<u8>,
    ) -> Result<usize, FreeErrorKind> {
        let bytes = blocks << arena.block_shift();
        let tag = &arena.tags()[block];
        let expected = Tag::Large { blocks }.encode();
        // Clear the tag only if it still says what `locate` read: two frees of the same object
        // racing each other do not both pass.
        if tag.compare_exchange(expected, 0, Relaxed, Relaxed).is_err() {
            return Err(FreeErrorKind::DoubleFree);
        }
        if !arenas.release(arena, ptr, block, bytes) {
            tag.store(expected, Relaxed);
            return Err(FreeErrorKind::DoubleFree);
        }
        self.count_free(bytes);
        Ok(bytes)
    }

    /// After an object went back to `page`: a full page returns to its list; an empty page that is
    /// not the only one of its class goes back to its arena (the last one stays, so that a program
    /// allocating and freeing one object over and over does not make and unmake a page each time).
    ///
    /// # Safety
    /// The page belongs to this heap, which the caller holds.
    #[inline(never)]
    unsafe fn after_free<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        page: NonNull<Page>,
    ) {
        // SAFETY: the page belongs to this heap and lives (caller); the reference is not used once
        // the page may be retired.
        let p = unsafe { page.as_ref() };
        // SAFETY: forwarded from the caller.
        let local = unsafe { p.local() };
        if !local.linked {
            // SAFETY: the page is this heap's and on no list.
            unsafe { self.link(p) };
        } else if local.used == 0 && (!local.prev.is_null() || !local.next.is_null()) {
            // SAFETY: as above; the page is empty and its class keeps another page.
            unsafe { self.retire(arenas, page) };
        }
    }

    /// Gives an empty page's blocks back to its arena.
    ///
    /// # Safety
    /// The page belongs to this heap, which the caller holds, is on its list, has no object handed
    /// out, and no object on its remote list.
    #[cold]
    unsafe fn retire<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        page: NonNull<Page>,
    ) {
        // Everything needed is read before the blocks go back: the header lies inside them, and a
        // purge may overwrite it at once.
        let (class, start, blocks) = {
            // SAFETY: the page is live and this heap's (caller) until its release below.
            let p = unsafe { page.as_ref() };
            // SAFETY: forwarded from the caller.
            unsafe { self.unlink(p) };
            (p.class as usize, p.start, p.blocks as usize)
        };
        self.class_pages[class] = self.class_pages[class].saturating_sub(1);
        let Some(arena) = arenas.find(start.addr().get()) else {
            return;
        };
        let block = (start.addr().get() - arena.start().addr().get()) >> arena.block_shift();
        for tag in &arena.tags()[block..block + blocks] {
            tag.store(0, Relaxed);
        }
        arenas.release(arena, start, block, blocks << arena.block_shift());
        self.counters.pages_returned += 1;
    }

    /// Resizes a large object in place if its arena allows: shrinking always, growing into free
    /// blocks right after it. Returns whether it did.
    pub fn resize_large<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        arena: &Arena,
        block: usize,
        blocks: usize,
        new_size: usize,
    ) -> bool {
        let shift = arena.block_shift();
        let wanted = ((new_size.max(1) - 1) >> shift) + 1;
        if wanted <= blocks {
            arena.shrink(block, blocks, wanted, arenas.purging());
        } else if wanted > MAX_LARGE_BLOCKS
            || arena
                .try_extend(block, blocks, wanted - blocks, arenas.backend())
                .is_none()
        {
            return false;
        }
        arena.tags()[block].store(Tag::Large { blocks: wanted }.encode(), Relaxed);
        self.counters.bytes_in_use = self
            .counters
            .bytes_in_use
            .wrapping_add(wanted << shift)
            .wrapping_sub(blocks << shift);
        true
    }

    /// Bytes usable at `ptr`, if it starts a live allocation.
    pub fn usable_size<B: OsBackend, const M: usize, const N: usize>(
        arenas: &Arenas<B, M, N>,
        ptr: NonNull<u8>,
    ) -> Option<usize> {
        match Self::locate(arenas, ptr).ok()? {
            Located::Small { page, .. } => {
                // SAFETY: the page holds `ptr`, which the caller says is live, so the page lives.
                let page = unsafe { page.as_ref() };
                page.check_live(ptr).ok().map(|()| page.size as usize)
            }
            Located::Large { arena, blocks, .. } => Some(blocks << arena.block_shift()),
        }
    }

    /// Gives every empty page back to its arena, the ones kept against thrashing included.
    pub fn trim<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        delayed: &AtomicPtr<Page>,
    ) {
        self.drain(arenas, delayed);
        for class in 0..CLASSES {
            let mut page = self.pages[class];
            while let Some(p) = NonNull::new(page) {
                // SAFETY: pages on a list are live headers of this heap, which the caller holds.
                let local = unsafe { p.as_ref().local() };
                page = local.next;
                if local.used == 0 {
                    // SAFETY: `p` is this heap's, on its list, and empty.
                    unsafe { self.retire(arenas, p) };
                }
            }
        }
    }

    /// Puts `page` at the head of its class's list.
    ///
    /// # Safety
    /// The page belongs to this heap, which the caller holds, and is on no list.
    unsafe fn link(&mut self, page: &Page) {
        let class = page.class as usize;
        let head = self.pages[class];
        // SAFETY: the caller holds the heap that owns `page` and the list's pages.
        unsafe {
            let local = page.local();
            local.prev = ptr::null_mut();
            local.next = head;
            local.linked = true;
            if !head.is_null() {
                (*head).local().prev = ptr::from_ref(page).cast_mut();
            }
        }
        self.pages[class] = ptr::from_ref(page).cast_mut();
    }

    /// Takes `page` off its class's list.
    ///
    /// # Safety
    /// The page belongs to this heap, which the caller holds, and is on its list.
    unsafe fn unlink(&mut self, page: &Page) {
        // SAFETY: the caller holds the heap that owns `page` and its neighbours.
        unsafe {
            let local = page.local();
            let (prev, next) = (local.prev, local.next);
            if prev.is_null() {
                self.pages[page.class as usize] = next;
            } else {
                (*prev).local().next = next;
            }
            if !next.is_null() {
                (*next).local().prev = prev;
            }
            local.prev = ptr::null_mut();
            local.next = ptr::null_mut();
            local.linked = false;
        }
    }
}
