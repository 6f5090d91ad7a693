//! The object layer: size classes served from pages cut out of arena block runs, and large objects
//! as block runs of their own.
//!
//! mimalloc's `page.c` and `segment.c` are the ideas behind it (pages per size class, free lists
//! inside the free objects, pages given back when empty); the layout is ours. A pointer finds its
//! page without any search of the pages: the registry finds the arena (see
//! `arenas::lookup`), the arena's block tag says where the page starts and ends, and the page header
//! sits at the end of the page.
//!
//! A `Heap` is not thread-safe by itself; the global layer holds a lock around every call.

pub(crate) mod class;
mod page;
mod tag;

use crate::arena::Arena;
use crate::arenas::Arenas;
use crate::backend::OsBackend;
use crate::error::FreeErrorKind;
use crate::memid::MemKind;
use class::{class_for, class_size, CLASSES, MAX_CLASS_SIZE};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;
use page::{Page, HEADER};
use tag::{Tag, MAX_LARGE_BLOCKS, MAX_PAGE_BLOCKS};

/// What a heap has done, for [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapCounters {
    /// Allocations made, in all (a reallocation that moves counts as one, and one free).
    pub allocs: u64,
    /// Allocations given back, in all.
    pub frees: u64,
    /// Bytes handed out now (usable sizes: requests rounded up to their class or blocks).
    pub bytes_in_use: usize,
    /// The most `bytes_in_use` has been.
    pub peak_bytes: usize,
    /// Pages made, in all.
    pub pages_made: u64,
    /// Pages given back to their arena, in all.
    pub pages_returned: u64,
}

/// Where a heap allocation lives, found from its address.
enum Found<'a> {
    /// An object of a page.
    Small { page: &'a mut Page },
    /// A large object: a run of `blocks` blocks starting at `block`.
    Large {
        arena: &'a Arena,
        block: usize,
        blocks: usize,
    },
}

/// One heap: for every size class, the list of its pages that have objects to give.
pub(crate) struct Heap {
    /// `pages[c]` heads the list of pages of class `c` that have a free or never-used object (null:
    /// none). Pages on a list have `linked` set; full pages are on no list.
    pages: [*mut Page; CLASSES],
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
    pub const fn new() -> Heap {
        Heap {
            pages: [ptr::null_mut(); CLASSES],
            counters: HeapCounters {
                allocs: 0,
                frees: 0,
                bytes_in_use: 0,
                peak_bytes: 0,
                pages_made: 0,
                pages_returned: 0,
            },
        }
    }

    /// The largest object served from pages for a block size: eight blocks, so that a larger object
    /// rounded up to whole blocks wastes less than an eighth, as the size classes do.
    #[inline(always)]
    fn max_small(block_size: usize) -> usize {
        (block_size << 3).min(MAX_CLASS_SIZE)
    }

    /// Bytes of a page for objects of `size` bytes: at least four blocks and four objects.
    fn page_bytes(size: usize, block_size: usize) -> usize {
        let bytes = (block_size * 4).max(size * 4 + HEADER);
        bytes.next_multiple_of(block_size)
    }

    /// Allocates `size` bytes aligned to `align` (a power of two).
    #[inline(always)]
    pub fn alloc<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        size: usize,
        align: usize,
    ) -> Option<Allocated> {
        let allocated = match class_for(size, align, Self::max_small(arenas.block_size())) {
            Some(class) => self.alloc_small(arenas, class)?,
            None => Self::alloc_large(arenas, size, align)?,
        };
        self.counters.allocs += 1;
        self.counters.bytes_in_use += allocated.usable;
        if self.counters.bytes_in_use > self.counters.peak_bytes {
            self.counters.peak_bytes = self.counters.bytes_in_use;
        }
        Some(allocated)
    }

    /// An object of class `class`: from the first page on the class's list, else from the others
    /// or a new page.
    #[inline(always)]
    fn alloc_small<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
    ) -> Option<Allocated> {
        let page = self.pages[class];
        if !page.is_null() {
            // SAFETY: pages on a list are live page headers owned by this heap (invariant on
            // `pages`), and the caller holds the heap.
            let p = unsafe { &mut *page };
            if let Some(object) = p.pop() {
                return Some(Allocated {
                    ptr: object.ptr,
                    usable: p.size as usize,
                    zero: object.zero,
                });
            }
        }
        self.alloc_small_slow(arenas, class)
    }

    /// The first page of the class is full (or there is none): take full pages off the list until
    /// one gives an object, else make a new page.
    #[inline(never)]
    fn alloc_small_slow<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
    ) -> Option<Allocated> {
        let mut page = self.pages[class];
        while !page.is_null() {
            // SAFETY: pages on a list are live page headers owned by this heap (invariant on
            // `pages`), and the caller holds the heap.
            let p = unsafe { &mut *page };
            if let Some(object) = p.pop() {
                return Some(Allocated {
                    ptr: object.ptr,
                    usable: p.size as usize,
                    zero: object.zero,
                });
            }
            page = p.next;
            // SAFETY: as above; the page is full, so it leaves the list.
            unsafe { self.unlink(p) };
        }
        self.alloc_in_new_page(arenas, class)
    }

    #[cold]
    fn alloc_in_new_page<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
    ) -> Option<Allocated> {
        let page = self.new_page(arenas, class)?;
        // SAFETY: a fresh page header, owned by this heap.
        let p = unsafe { &mut *page.as_ptr() };
        let object = p.pop()?;
        Some(Allocated {
            ptr: object.ptr,
            usable: p.size as usize,
            zero: object.zero,
        })
    }

    /// Makes a page for class `class` from arena blocks and puts it at the head of its list.
    fn new_page<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        class: usize,
    ) -> Option<NonNull<Page>> {
        let block_size = arenas.block_size();
        let size = class_size(class);
        let bytes = Self::page_bytes(size, block_size);
        let blocks = bytes / block_size;
        if blocks > MAX_PAGE_BLOCKS {
            return None;
        }
        let run = arenas.alloc_in_arena(bytes, block_size)?;
        let MemKind::Arena { id, block } = run.memid.kind else {
            return None;
        };
        let arena = arenas.published(id)?;
        for (back, tag) in arena.tags()[block..block + blocks].iter().enumerate() {
            tag.store(Tag::Page { back, blocks }.encode(), Relaxed);
        }
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
            )
        };
        // SAFETY: the page is new and on no list.
        unsafe { self.link(page.as_ptr()) };
        self.counters.pages_made += 1;
        Some(page)
    }

    #[inline(never)]
    fn alloc_large<B: OsBackend, const M: usize, const N: usize>(
        arenas: &Arenas<B, M, N>,
        size: usize,
        align: usize,
    ) -> Option<Allocated> {
        let run = arenas.alloc_in_arena(size, align)?;
        let blocks = run.size / arenas.block_size();
        let MemKind::Arena { id, block } = run.memid.kind else {
            return None;
        };
        let arena = arenas.published(id)?;
        if blocks > MAX_LARGE_BLOCKS {
            arena.release(run.ptr, block, run.size);
            return None;
        }
        arena.tags()[block].store(Tag::Large { blocks }.encode(), Relaxed);
        Some(Allocated {
            ptr: run.ptr,
            usable: run.size,
            zero: run.memid.initially_zero,
        })
    }

    /// Finds the page object or large object that starts at `ptr`, or says why there is none.
    #[inline(always)]
    fn find<'a, B: OsBackend, const M: usize, const N: usize>(
        arenas: &'a Arenas<B, M, N>,
        ptr: NonNull<u8>,
    ) -> Result<Found<'a>, FreeErrorKind> {
        let addr = ptr.addr().get();
        let arena = arenas.find(addr).ok_or(FreeErrorKind::NotOurs)?;
        let shift = arena.block_shift();
        let offset = addr - arena.start().addr().get();
        let block = offset >> shift;
        match Tag::decode(arena.tags()[block].load(Relaxed)) {
            Tag::Page { back, blocks } => {
                let end = arena.block_ptr(block - back + blocks);
                // SAFETY: the tag says a page of this heap's layer ends at `end`, with its header in
                // its last `HEADER` bytes; pages are only changed by the holder of their heap, which
                // the caller is.
                let page = unsafe { &mut *end.as_ptr().sub(HEADER).cast::<Page>() };
                match page.index_of(ptr) {
                    Some(_) => Ok(Found::Small { page }),
                    None => Err(FreeErrorKind::Misaligned),
                }
            }
            Tag::Large { blocks } if offset & ((1 << shift) - 1) == 0 => Ok(Found::Large {
                arena,
                block,
                blocks,
            }),
            Tag::Large { .. } => Err(FreeErrorKind::Misaligned),
            Tag::None if arena.in_use().is_set(block) => Err(FreeErrorKind::Misaligned),
            Tag::None => Err(FreeErrorKind::DoubleFree),
        }
    }

    /// Gives back the allocation at `ptr`, returning its usable size; on a bad free nothing
    /// changes.
    ///
    /// # Safety
    /// If `ptr` was handed out by this heap's allocator and not freed, nobody uses it any more.
    #[inline(always)]
    pub unsafe fn free<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        ptr: NonNull<u8>,
    ) -> Result<usize, FreeErrorKind> {
        // The common case in as few steps as it takes to prove it valid: an object of a page, in
        // the arena found last time, handed out and not free.
        if let Some(arena) = arenas.find(ptr.addr().get()) {
            let offset = ptr.addr().get() - arena.start().addr().get();
            let block = offset >> arena.block_shift();
            if let Tag::Page { back, blocks } = Tag::decode(arena.tags()[block].load(Relaxed)) {
                let end = arena.block_ptr(block - back + blocks);
                // SAFETY: the tag says a page ends at `end`, with its header in its last `HEADER`
                // bytes; pages are changed only by the holder of their heap, which the caller is.
                let page = unsafe { &mut *end.as_ptr().sub(HEADER).cast::<Page>() };
                if page.index_of(ptr).is_some() && !page.is_free(ptr) {
                    let usable = page.size as usize;
                    // SAFETY: `ptr` starts a handed-out object of the page (checked above), which
                    // the caller gives up.
                    unsafe { page.push(ptr) };
                    if !page.linked || page.used == 0 {
                        // SAFETY: the page belongs to this heap, which the caller holds.
                        unsafe { self.after_free(arenas, page) };
                    }
                    self.counters.frees += 1;
                    self.counters.bytes_in_use -= usable;
                    return Ok(usable);
                }
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.free_slow(arenas, ptr) }
    }

    /// Everything but a valid free of a page object: large objects, and bad frees (found and named
    /// without changing anything).
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    #[inline(never)]
    unsafe fn free_slow<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        ptr: NonNull<u8>,
    ) -> Result<usize, FreeErrorKind> {
        let usable = match Self::find(arenas, ptr)? {
            Found::Small { page } => {
                if page.is_free(ptr) {
                    return Err(FreeErrorKind::DoubleFree);
                }
                let usable = page.size as usize;
                // SAFETY: `ptr` starts a handed-out object of the page (checked above), which the
                // caller gives up.
                unsafe { page.push(ptr) };
                // SAFETY: the page belongs to this heap, which the caller holds.
                unsafe { self.after_free(arenas, page) };
                usable
            }
            Found::Large {
                arena,
                block,
                blocks,
            } => {
                arena.tags()[block].store(0, Relaxed);
                let bytes = blocks << arena.block_shift();
                if !arena.release(ptr, block, bytes) {
                    return Err(FreeErrorKind::DoubleFree);
                }
                bytes
            }
        };
        self.counters.frees += 1;
        self.counters.bytes_in_use -= usable;
        Ok(usable)
    }

    /// After an object went back to `page`: a full page returns to its list; an empty page that is
    /// not the only one of its class goes back to its arena (the last one stays, so that a program
    /// allocating and freeing one object over and over does not make and unmake a page each time).
    ///
    /// # Safety
    /// The page belongs to this heap.
    #[inline(never)]
    unsafe fn after_free<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        page: &mut Page,
    ) {
        if !page.linked {
            // SAFETY: the page is this heap's and on no list.
            unsafe { self.link(page) };
        } else if page.used == 0 && (!page.prev.is_null() || !page.next.is_null()) {
            // SAFETY: as above; the page is empty and its class keeps another page.
            unsafe { self.retire(arenas, page) };
        }
    }

    /// Gives an empty page's blocks back to its arena.
    ///
    /// # Safety
    /// The page belongs to this heap, is on its list, and has no object handed out.
    #[cold]
    unsafe fn retire<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        page: &mut Page,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { self.unlink(page) };
        let start = page.start;
        let blocks = page.blocks as usize;
        let Some(arena) = arenas.find(start.addr().get()) else {
            return;
        };
        let block = (start.addr().get() - arena.start().addr().get())
            >> arenas.block_size().trailing_zeros();
        for tag in &arena.tags()[block..block + blocks] {
            tag.store(0, Relaxed);
        }
        // The header is inside the run: nothing reads it after this.
        arena.release(start, block, blocks * arenas.block_size());
        self.counters.pages_returned += 1;
    }

    /// Resizes the allocation at `ptr` to `new_size` bytes aligned to `align`: in place when its
    /// class still fits (or, for a large object, when the blocks after it are free or it shrinks),
    /// else by moving it. Returns the new allocation, `Ok(None)` when there is no memory (the old
    /// allocation is untouched then), or the error of a bad pointer.
    ///
    /// # Safety
    /// `ptr` was handed out by this heap's allocator with at least `old_size` bytes and is not
    /// used by anybody else during the call.
    pub unsafe fn realloc<B: OsBackend, const M: usize, const N: usize>(
        &mut self,
        arenas: &Arenas<B, M, N>,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, FreeErrorKind> {
        let block_size = arenas.block_size();
        let usable = match Self::find(arenas, ptr)? {
            Found::Small { page } => {
                if page.is_free(ptr) {
                    return Err(FreeErrorKind::DoubleFree);
                }
                let size = page.size as usize;
                if new_size <= size && size % align == 0 {
                    return Ok(Some(ptr));
                }
                size
            }
            Found::Large {
                arena,
                block,
                blocks,
            } => {
                let wanted = new_size.max(1).div_ceil(block_size);
                if ptr.addr().get() % align == 0 {
                    if wanted <= blocks {
                        arena.shrink(block, blocks, wanted);
                        arena.tags()[block].store(Tag::Large { blocks: wanted }.encode(), Relaxed);
                        self.counters.bytes_in_use -= (blocks - wanted) * block_size;
                        return Ok(Some(ptr));
                    }
                    if wanted <= MAX_LARGE_BLOCKS
                        && arena
                            .try_extend(block, blocks, wanted - blocks, arenas.backend())
                            .is_some()
                    {
                        arena.tags()[block].store(Tag::Large { blocks: wanted }.encode(), Relaxed);
                        self.counters.bytes_in_use += (wanted - blocks) * block_size;
                        self.counters.peak_bytes =
                            self.counters.peak_bytes.max(self.counters.bytes_in_use);
                        return Ok(Some(ptr));
                    }
                }
                blocks * block_size
            }
        };
        let Some(moved) = self.alloc(arenas, new_size, align) else {
            return Ok(None);
        };
        // SAFETY: both allocations are ours and distinct; the old one holds at least
        // `min(old_size, usable)` bytes the caller wrote, the new one at least `new_size`.
        unsafe {
            ptr::copy_nonoverlapping(
                ptr.as_ptr(),
                moved.ptr.as_ptr(),
                old_size.min(usable).min(new_size),
            )
        };
        // SAFETY: the old allocation is valid (found above) and the caller gives it up.
        unsafe { self.free(arenas, ptr) }?;
        Ok(Some(moved.ptr))
    }

    /// Bytes usable at `ptr`, if it starts a live allocation of this heap's allocator.
    pub fn usable_size<B: OsBackend, const M: usize, const N: usize>(
        arenas: &Arenas<B, M, N>,
        ptr: NonNull<u8>,
    ) -> Option<usize> {
        match Self::find(arenas, ptr).ok()? {
            Found::Small { page } => (!page.is_free(ptr)).then_some(page.size as usize),
            Found::Large { blocks, .. } => Some(blocks * arenas.block_size()),
        }
    }

    /// Gives every empty page back to its arena, the ones kept against thrashing included.
    pub fn trim<B: OsBackend, const M: usize, const N: usize>(&mut self, arenas: &Arenas<B, M, N>) {
        for class in 0..CLASSES {
            let mut page = self.pages[class];
            while !page.is_null() {
                // SAFETY: pages on a list are live headers of this heap, which the caller holds.
                let p = unsafe { &mut *page };
                page = p.next;
                if p.used == 0 {
                    // SAFETY: `p` is this heap's, on its list, and empty.
                    unsafe { self.retire(arenas, p) };
                }
            }
        }
    }

    /// Puts `page` at the head of its class's list.
    ///
    /// # Safety
    /// The page belongs to this heap and is on no list.
    unsafe fn link(&mut self, page: *mut Page) {
        // SAFETY: `page` and the list head are live headers of this heap (caller).
        unsafe {
            let class = (*page).class as usize;
            let head = self.pages[class];
            (*page).prev = ptr::null_mut();
            (*page).next = head;
            (*page).linked = true;
            if !head.is_null() {
                (*head).prev = page;
            }
            self.pages[class] = page;
        }
    }

    /// Takes `page` off its class's list.
    ///
    /// # Safety
    /// The page belongs to this heap and is on its list.
    unsafe fn unlink(&mut self, page: *mut Page) {
        // SAFETY: `page` and its neighbours are live headers of this heap (caller).
        unsafe {
            let (prev, next) = ((*page).prev, (*page).next);
            if prev.is_null() {
                self.pages[(*page).class as usize] = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*page).prev = ptr::null_mut();
            (*page).next = ptr::null_mut();
            (*page).linked = false;
        }
    }
}
