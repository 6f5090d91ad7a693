//! A measuring reference for workloads 4 and 5, not an allocator to use: what an arena engine
//! written for size first weighs in a wasm module, and how fast it runs there.
//!
//! It keeps what quarry-alloc's object layer does and drops the generality of its arena engine:
//!
//! - **one arena**, grown in place with `memory.grow` (on wasm32; elsewhere a region given at
//!   construction, for the tests), cut into 4 KiB blocks; no registry, no exclusive arenas, no
//!   commit or purge state, no metadata area: the bitmap and the block tags are static arrays
//!   sized for 256 MiB (264 KiB of the module's memory);
//! - **a plain bitmap** of blocks in use, claimed with a bit-by-bit search that skips full words,
//!   under the allocator's one lock (or none), not with compare-and-swap;
//! - **pages per size class** (quarry's classes: 8-byte steps to 64 bytes, then eight per power of
//!   two, up to 32 KiB), cut from block runs, header at the end, free list through the free
//!   objects, never-used objects taken by a bump index, an empty page given back unless it is
//!   its class's only one; larger objects are block runs of their own;
//! - **realloc in place** within an object's class, and for a block run by shrinking it or
//!   growing it into the free blocks that follow;
//! - **every free checked**: a pointer outside the arena, one that does not start an object, and
//!   a second free of an object (its second word holds a cookie made from its address while it
//!   is free) change nothing, are counted and go to an error hook;
//! - **statistics**: allocations, frees, bytes in use and their peak, pages made and returned.
//!
//! Alignments up to the block size are honoured; larger ones get null.
//!
//! `cargo xtask bench-wasm` measures it next to quarry-alloc and the peers: with the lock as the
//! default configuration's counterpart, without as the minimal one's.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::num::NonZeroUsize;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

/// Block size: 4 KiB, as `Config::WASM`.
const BLOCK_SHIFT: u32 = 12;
const BLOCK: usize = 1 << BLOCK_SHIFT;
/// Blocks the arena can span: 256 MiB.
const MAX_BLOCKS: usize = 1 << 16;
/// The largest object served from pages; larger ones are block runs.
const SMALL_LIMIT: usize = 32 * 1024;
/// Size classes up to [`SMALL_LIMIT`].
const CLASSES: usize = class_of(SMALL_LIMIT) + 1;
/// Pages aim at 32 objects, up to this size.
const PAGE_TARGET: usize = 256 * 1024;
/// A free object's second word holds `address ^ COOKIE`.
const COOKIE: usize = 0x5EED_B0BA;
/// Tag of a page's blocks: this bit and the block after the page's last.
const PAGE_TAG: u32 = 1 << 31;
/// Bytes at the end of every page for its header.
const HEADER: usize = core::mem::size_of::<Page>();
/// `memory.grow` counts in pages of 64 KiB.
#[cfg(target_arch = "wasm32")]
const WASM_PAGE_SHIFT: u32 = 16;

/// The class of an object of `size` bytes (1 to [`SMALL_LIMIT`]): 8-byte steps to 64, then eight
/// classes per power of two, each an eighth of it apart.
const fn class_of(size: usize) -> usize {
    if size <= 64 {
        let size = if size < 8 { 8 } else { size };
        (size - 1) >> 3
    } else {
        let s = size - 1;
        let octave = (usize::BITS - 1 - s.leading_zeros()) as usize;
        8 + ((octave - 6) << 3) + ((s >> (octave - 3)) - 8)
    }
}

/// The object size of class `class`.
const fn class_size(class: usize) -> usize {
    if class < 8 {
        (class + 1) << 3
    } else {
        let octave = 6 + (class - 8) / 8;
        (9 + (class - 8) % 8) << (octave - 3)
    }
}

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFree {
    /// The pointer is not inside the arena.
    NotOurs,
    /// The pointer does not start an object or a block run that is handed out.
    NotAnObject,
    /// The object is free already.
    DoubleFree,
}

/// What the allocator has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub allocs: u64,
    pub frees: u64,
    /// Bytes handed out now (usable sizes) and the most there have been.
    pub bytes_in_use: usize,
    pub peak_bytes: usize,
    pub pages_made: u64,
    pub pages_returned: u64,
    pub bad_frees: u64,
}

/// The header of a page, in the page's last [`HEADER`] bytes.
#[repr(C)]
struct Page {
    /// The first free object (null: none). A free object holds the next in its first word.
    free: *mut u8,
    /// Neighbours on the class's list (pages with an object to give); `linked` while on it.
    next: *mut Page,
    prev: *mut Page,
    /// The first object; object `i` is at `start + i * size`.
    start: *mut u8,
    size: NonZeroUsize,
    /// Objects handed out now.
    used: usize,
    /// Objects ever handed out: `0..bump`. The others have never been and are not on `free`.
    bump: usize,
    capacity: usize,
    class: usize,
    /// The page's first block and its length.
    block: usize,
    blocks: usize,
    linked: bool,
}

/// Everything the allocator holds; reached only under the lock.
struct State {
    /// The arena's first block (null before first use on wasm32). Every pointer handed out is
    /// derived from it.
    base: *mut u8,
    /// Blocks in the arena, at most [`MAX_BLOCKS`].
    blocks: usize,
    /// Every word of `bits` below this one is full.
    hint: usize,
    /// Bit `i` set: block `i` is handed out (in a page or a run), or lies in a gap another user
    /// of `memory.grow` made.
    bits: [u32; MAX_BLOCKS / 32],
    /// Per block: `PAGE_TAG | end` for the blocks of a page ending before block `end`; `n` for
    /// the first block of a run of `n`; 0 for the others.
    tags: [u32; MAX_BLOCKS],
    /// Per class, the first page with an object to give (null: none).
    pages: [*mut Page; CLASSES],
    stats: Stats,
    hook: Option<fn(*mut u8, BadFree)>,
}

/// The allocator; `LOCK` says whether a spin lock guards it.
pub struct Compact<const LOCK: bool> {
    busy: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: with `LOCK`, the state is reached only while `busy` is held; without, the constructor's
// caller promised that no two calls overlap.
unsafe impl<const LOCK: bool> Sync for Compact<LOCK> {}

impl Compact<true> {
    /// The allocator behind a spin lock, over `memory.grow`.
    pub const fn new() -> Self {
        Self::build(ptr::null_mut(), 0)
    }
}

impl Default for Compact<true> {
    fn default() -> Self {
        Self::new()
    }
}

impl Compact<false> {
    /// The allocator without a lock, over `memory.grow`.
    ///
    /// # Safety
    /// No two calls into it ever overlap (the program has one thread and no reentrant calls).
    pub const unsafe fn new_single_threaded() -> Self {
        Self::build(ptr::null_mut(), 0)
    }
}

impl<const LOCK: bool> Compact<LOCK> {
    const fn build(base: *mut u8, blocks: usize) -> Self {
        Compact {
            busy: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                base,
                blocks,
                hint: 0,
                bits: [0; MAX_BLOCKS / 32],
                tags: [0; MAX_BLOCKS],
                pages: [ptr::null_mut(); CLASSES],
                stats: Stats {
                    allocs: 0,
                    frees: 0,
                    bytes_in_use: 0,
                    peak_bytes: 0,
                    pages_made: 0,
                    pages_returned: 0,
                    bad_frees: 0,
                },
                hook: None,
            }),
        }
    }

    /// The allocator over the memory `[start, start + len)` instead of `memory.grow` (whole
    /// blocks from `start`, which is block-aligned): for tests on the host.
    ///
    /// # Safety
    /// The memory is valid for reads and writes, nobody else uses it while the allocator exists,
    /// and `start` is aligned to 4 KiB.
    #[cfg(not(target_arch = "wasm32"))]
    pub unsafe fn in_region(start: *mut u8, len: usize) -> Self {
        Self::build(start, (len >> BLOCK_SHIFT).min(MAX_BLOCKS))
    }

    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        if LOCK {
            while self.busy.swap(true, Ordering::Acquire) {
                core::hint::spin_loop();
            }
        }
        // SAFETY: the lock is held (or no call overlaps: the constructor's promise), so this is
        // the only reference to the state until `f` returns.
        let result = f(unsafe { &mut *self.state.get() });
        if LOCK {
            self.busy.store(false, Ordering::Release);
        }
        result
    }

    /// What the allocator has done.
    pub fn stats(&self) -> Stats {
        self.with(|state| state.stats)
    }

    /// Sets the function called on every refused free. It runs under the lock, so it must not
    /// allocate.
    pub fn set_error_hook(&self, hook: Option<fn(*mut u8, BadFree)>) {
        self.with(|state| state.hook = hook);
    }
}

#[cfg(target_arch = "wasm32")]
extern "C" {
    /// Where the linker put the first byte after the module's static data.
    static __heap_base: u8;
}

impl State {
    /// Word `index` of the bitmap.
    #[inline(always)]
    fn word(&mut self, index: usize) -> &mut u32 {
        debug_assert!(index < MAX_BLOCKS / 32);
        // SAFETY: callers pass a block below `blocks` (at most `MAX_BLOCKS`), shifted by 5.
        unsafe { self.bits.get_unchecked_mut(index) }
    }

    /// The tag of block `block`.
    #[inline(always)]
    fn tag(&mut self, block: usize) -> &mut u32 {
        debug_assert!(block < MAX_BLOCKS);
        // SAFETY: callers pass a block below `blocks`, at most `MAX_BLOCKS`.
        unsafe { self.tags.get_unchecked_mut(block) }
    }

    /// The list head of class `class`.
    #[inline(always)]
    fn head(&mut self, class: usize) -> &mut *mut Page {
        debug_assert!(class < CLASSES);
        // SAFETY: callers pass `class_of` of a size up to `SMALL_LIMIT`, below `CLASSES`.
        unsafe { self.pages.get_unchecked_mut(class) }
    }

    fn in_use(&mut self, block: usize) -> bool {
        *self.word(block >> 5) & (1 << (block & 31)) != 0
    }

    /// Marks blocks `first..first + n` in use or free.
    fn mark(&mut self, first: usize, n: usize, in_use: bool) {
        for block in first..first + n {
            let bit = 1 << (block & 31);
            let word = self.word(block >> 5);
            if in_use {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// At least `more` blocks more at the arena's end, from `memory.grow`: the arena's first use
    /// takes the memory after the static data, and memory another user grew in between becomes a
    /// gap that stays marked in use.
    #[cfg(target_arch = "wasm32")]
    fn grow(&mut self, more: usize) -> bool {
        use core::arch::wasm32::{memory_grow, memory_size};
        if self.base.is_null() {
            let heap_base = ptr::addr_of!(__heap_base).cast_mut();
            self.base = heap_base.wrapping_add(heap_base.addr().wrapping_neg() & (BLOCK - 1));
            let end = memory_size(0) << WASM_PAGE_SHIFT;
            self.blocks = (end.saturating_sub(self.base.addr()) >> BLOCK_SHIFT).min(MAX_BLOCKS);
            if self.blocks >= more {
                return true;
            }
        }
        if self.blocks + more > MAX_BLOCKS {
            return false;
        }
        let pages = (more << BLOCK_SHIFT).div_ceil(1 << WASM_PAGE_SHIFT);
        let first = memory_grow(0, pages);
        if first == usize::MAX {
            return false;
        }
        let start = (first << WASM_PAGE_SHIFT) - self.base.addr();
        let end = ((start + (pages << WASM_PAGE_SHIFT)) >> BLOCK_SHIFT).min(MAX_BLOCKS);
        let old = self.blocks;
        self.mark(old, (start >> BLOCK_SHIFT) - old, true);
        self.blocks = end;
        true
    }

    /// Outside wasm32 the arena is the region it was given, and never grows.
    #[cfg(not(target_arch = "wasm32"))]
    fn grow(&mut self, _more: usize) -> bool {
        false
    }

    /// Claims a run of `n` free blocks, the lowest there is, growing the arena when none is free;
    /// returns its first block.
    fn claim(&mut self, n: usize) -> Option<usize> {
        let mut block = self.hint << 5;
        let mut run = 0;
        loop {
            if block >= self.blocks {
                if !self.grow(n - run) {
                    return None;
                }
                continue;
            }
            if *self.word(block >> 5) == u32::MAX {
                if block >> 5 == self.hint {
                    self.hint += 1;
                }
                run = 0;
                block = (block | 31) + 1;
                continue;
            }
            if self.in_use(block) {
                run = 0;
            } else {
                run += 1;
                if run == n {
                    let first = block + 1 - n;
                    self.mark(first, n, true);
                    return Some(first);
                }
            }
            block += 1;
        }
    }

    fn release(&mut self, first: usize, n: usize) {
        self.mark(first, n, false);
        self.hint = self.hint.min(first >> 5);
    }

    fn counted(&mut self, ptr: *mut u8, usable: usize) -> *mut u8 {
        self.stats.allocs += 1;
        self.stats.bytes_in_use += usable;
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.stats.bytes_in_use);
        ptr
    }

    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        // A free object holds a link and a cookie: two words.
        let wanted = size.max(align).max(2 * core::mem::size_of::<usize>());
        // A page starts on a block, so object `i` is aligned to every power of two up to the
        // block size that divides the object size; larger alignments are not served at all.
        if wanted <= SMALL_LIMIT && align <= BLOCK {
            let class = class_of(wanted);
            if class_size(class).is_multiple_of(align) {
                return self.alloc_small(class);
            }
        }
        if align > BLOCK || size > MAX_BLOCKS << BLOCK_SHIFT {
            return ptr::null_mut();
        }
        let n = (size.max(1) - 1) / BLOCK + 1;
        let Some(first) = self.claim(n) else {
            return ptr::null_mut();
        };
        *self.tag(first) = n as u32;
        let ptr = self.base.wrapping_add(first << BLOCK_SHIFT);
        self.counted(ptr, n << BLOCK_SHIFT)
    }

    fn alloc_small(&mut self, class: usize) -> *mut u8 {
        loop {
            let page = *self.head(class);
            if page.is_null() {
                break;
            }
            // SAFETY: pages on a list are live headers of this allocator's pages.
            let page = unsafe { &mut *page };
            let object = if !page.free.is_null() {
                let object = page.free;
                // SAFETY: a listed object is free, holds the next in its first word, and is at
                // least two words long; its cookie is cleared now that it is handed out.
                unsafe {
                    page.free = object.cast::<*mut u8>().read();
                    object.cast::<usize>().add(1).write(0);
                }
                object
            } else if page.bump < page.capacity {
                let object = page.start.wrapping_add(page.bump * page.size.get());
                page.bump += 1;
                // SAFETY: a never-used object of the page; its memory may hold a cookie from an
                // earlier page over the same blocks.
                unsafe { object.cast::<usize>().add(1).write(0) };
                object
            } else {
                self.unlink(page);
                continue;
            };
            page.used += 1;
            return self.counted(object, page.size.get());
        }
        self.new_page(class)
    }

    #[inline(never)]
    fn new_page(&mut self, class: usize) -> *mut u8 {
        let size = class_size(class);
        let bytes = (size * 32 + HEADER)
            .min(PAGE_TARGET)
            .max(size * 2 + HEADER)
            .next_multiple_of(BLOCK);
        let n = bytes >> BLOCK_SHIFT;
        let Some(first) = self.claim(n) else {
            return ptr::null_mut();
        };
        for block in first..first + n {
            *self.tag(block) = PAGE_TAG | (first + n) as u32;
        }
        let start = self.base.wrapping_add(first << BLOCK_SHIFT);
        let page = start.wrapping_add(bytes - HEADER).cast::<Page>();
        // SAFETY: the header's place is inside the claimed blocks, which nobody else uses, and
        // aligned (the page ends on a block, the header's size is a multiple of its alignment).
        unsafe {
            page.write(Page {
                free: ptr::null_mut(),
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                start,
                size: NonZeroUsize::new(size).unwrap_or(NonZeroUsize::MIN),
                used: 0,
                bump: 0,
                capacity: (bytes - HEADER) / size,
                class,
                block: first,
                blocks: n,
                linked: false,
            });
            self.link(&mut *page);
        }
        self.stats.pages_made += 1;
        self.alloc_small(class)
    }

    fn link(&mut self, page: &mut Page) {
        let head = self.head(page.class);
        let next = *head;
        *head = page;
        page.prev = ptr::null_mut();
        page.next = next;
        page.linked = true;
        if !next.is_null() {
            // SAFETY: a listed page is a live header.
            unsafe { (*next).prev = page };
        }
    }

    fn unlink(&mut self, page: &mut Page) {
        if page.prev.is_null() {
            *self.head(page.class) = page.next;
        } else {
            // SAFETY: a listed page's neighbours are live headers.
            unsafe { (*page.prev).next = page.next };
        }
        if !page.next.is_null() {
            // SAFETY: as above.
            unsafe { (*page.next).prev = page.prev };
        }
        page.linked = false;
    }

    /// Where `ptr` lives: its page's header, or null and the first block of its run.
    fn locate(&mut self, ptr: *mut u8) -> Result<(*mut Page, usize), BadFree> {
        let offset = ptr.addr().wrapping_sub(self.base.addr());
        if offset >= self.blocks << BLOCK_SHIFT {
            return Err(BadFree::NotOurs);
        }
        let block = offset >> BLOCK_SHIFT;
        let tag = *self.tag(block);
        if tag & PAGE_TAG == 0 {
            return if tag != 0 && offset & (BLOCK - 1) == 0 {
                Ok((ptr::null_mut(), block))
            } else {
                Err(BadFree::NotAnObject)
            };
        }
        let end = (tag & !PAGE_TAG) as usize;
        let header = self
            .base
            .wrapping_add((end << BLOCK_SHIFT) - HEADER)
            .cast::<Page>();
        // SAFETY: a page's blocks are tagged with its end, where its live header is.
        let page = unsafe { &*header };
        let offset = ptr.addr().wrapping_sub(page.start.addr());
        if offset % page.size != 0 || offset / page.size >= page.bump {
            return Err(BadFree::NotAnObject);
        }
        // SAFETY: `ptr` starts an object of the page that has been handed out, two words long.
        if unsafe { ptr.cast::<usize>().add(1).read() } == ptr.addr() ^ COOKIE {
            return Err(BadFree::DoubleFree);
        }
        Ok((header, 0))
    }

    #[cold]
    fn refuse(&mut self, ptr: *mut u8, why: BadFree) {
        self.stats.bad_frees += 1;
        if let Some(hook) = self.hook {
            hook(ptr, why);
        }
    }

    fn free(&mut self, ptr: *mut u8) {
        match self.locate(ptr) {
            Ok((page, block)) => self.free_at(ptr, page, block),
            Err(why) => self.refuse(ptr, why),
        }
    }

    /// Frees `ptr`, found by `locate` in `page` (or the run at `block`).
    fn free_at(&mut self, ptr: *mut u8, page: *mut Page, block: usize) {
        self.stats.frees += 1;
        if page.is_null() {
            let n = *self.tag(block) as usize;
            *self.tag(block) = 0;
            self.stats.bytes_in_use -= n << BLOCK_SHIFT;
            self.release(block, n);
            return;
        }
        // SAFETY: `locate` found the page's live header.
        let page = unsafe { &mut *page };
        // SAFETY: `ptr` starts a handed-out object of the page, at least two words long, which
        // the caller gives up.
        unsafe {
            ptr.cast::<*mut u8>().write(page.free);
            ptr.cast::<usize>().add(1).write(ptr.addr() ^ COOKIE);
        }
        page.free = ptr;
        page.used -= 1;
        self.stats.bytes_in_use -= page.size.get();
        if !page.linked {
            self.link(page);
        } else if page.used == 0 && !(page.prev.is_null() && page.next.is_null()) {
            self.unlink(page);
            let (first, n) = (page.block, page.blocks);
            for block in first..first + n {
                *self.tag(block) = 0;
            }
            self.release(first, n);
            self.stats.pages_returned += 1;
        }
    }

    fn realloc(&mut self, ptr: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
        let (page, block) = match self.locate(ptr) {
            Ok(found) => found,
            Err(why) => {
                self.refuse(ptr, why);
                return ptr::null_mut();
            }
        };
        let usable = if page.is_null() {
            let n = *self.tag(block) as usize;
            let wanted = (new_size.max(1) - 1) / BLOCK + 1;
            if wanted <= n {
                self.release(block + wanted, n - wanted);
                *self.tag(block) = wanted as u32;
                self.stats.bytes_in_use -= (n - wanted) << BLOCK_SHIFT;
                return ptr;
            }
            if block + wanted <= self.blocks
                && (block + n..block + wanted).all(|next| !self.in_use(next))
            {
                self.mark(block + n, wanted - n, true);
                *self.tag(block) = wanted as u32;
                self.stats.bytes_in_use += (wanted - n) << BLOCK_SHIFT;
                return ptr;
            }
            n << BLOCK_SHIFT
        } else {
            // SAFETY: `locate` found the page's live header.
            let size = unsafe { (*page).size.get() };
            if new_size <= size {
                return ptr;
            }
            size
        };
        let moved = self.alloc(new_size, align);
        if !moved.is_null() {
            // SAFETY: both are ours and distinct; the old one holds the bytes the caller wrote,
            // the new one at least `new_size`.
            unsafe {
                ptr::copy_nonoverlapping(ptr, moved, old_size.min(usable).min(new_size));
            }
            self.free_at(ptr, page, block);
        }
        moved
    }
}

// SAFETY: every object handed out lies in claimed blocks of the arena, at least as large and as
// aligned as asked (or null), and is handed out again only after it was freed.
unsafe impl<const LOCK: bool> GlobalAlloc for Compact<LOCK> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|state| state.alloc(layout.size(), layout.align()))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        self.with(|state| state.free(ptr));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.with(|state| state.realloc(ptr, layout.size(), layout.align(), new_size))
    }
}

#[cfg(test)]
mod tests;
