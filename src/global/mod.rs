//! `Quarry`: the allocator people install, as `GlobalAlloc` and as `allocator_api2::Allocator`.
//!
//! It owns the arena registry and `HEAPS` heaps, each behind its own lock. A thread allocates from
//! the heap it can lock, trying first the one its stack address points to (threads' stacks lie far
//! apart, so threads spread over the heaps without thread-local storage, which `no_std` lacks). A
//! free goes to the heap that owns the object's page: locked if it is free, else onto the page's
//! remote list without waiting. Bad frees become counted errors (and error-hook calls) instead of
//! corrupted state, and [`Quarry::stats`] and [`Quarry::write_map`] tell what the heap is doing.

mod api;
mod arena_heap;
mod stats;
#[cfg(all(test, feature = "mock"))]
mod tests;

pub use arena_heap::ArenaHeap;
pub use stats::Stats;

use crate::arenas::Arenas;
use crate::atomic::{AtomicPtr, Ordering};
use crate::backend::OsBackend;
use crate::config::Config;
use crate::error::{ErrorHook, FreeErrorKind};
use crate::heap::page::Page;
use crate::heap::{Allocated, Heap, HeapCounters, Located};
use crate::memid::ArenaId;
use crate::sync::{NoLock, RawLock, SpinLock, ThreadSafe};
use core::cell::UnsafeCell;
use core::fmt;
use core::ptr::{self, NonNull};

/// A complete allocator over a backend `B`, with `HEAPS` heaps, each behind a lock `L`.
///
/// ```
/// use quarry_alloc::{Config, Quarry, StaticBuffer};
///
/// static HEAP: Quarry<StaticBuffer<{ 256 * 1024 }>> =
///     Quarry::new(StaticBuffer::new(), Config::EMBEDDED);
///
/// let mut v = allocator_api2::vec::Vec::new_in(&HEAP);
/// v.extend_from_slice(b"quarry");
/// assert_eq!(HEAP.stats().allocations - HEAP.stats().frees, 1);
/// ```
///
/// As the program's allocator: `#[global_allocator] static A: Quarry<…> = Quarry::new(…);`. A
/// single-threaded program (or firmware, with `CriticalSectionLock`) wants `HEAPS = 1`.
pub struct Quarry<
    B: OsBackend,
    L: RawLock = SpinLock,
    const HEAPS: usize = 4,
    const MAX_ARENAS: usize = 64,
    const META_BYTES: usize = 4096,
> {
    arenas: Arenas<B, MAX_ARENAS, META_BYTES>,
    slots: [Slot<L>; HEAPS],
}

/// One heap with its lock, on cache lines of its own (so that two threads on two heaps never write
/// the same line).
#[repr(C, align(128))]
pub(crate) struct Slot<L> {
    lock: L,
    /// Pages of this heap whose remote list became non-empty, pushed by any thread.
    delayed: AtomicPtr<Page>,
    /// Used only by the holder of `lock`.
    heap: UnsafeCell<Heap>,
}

// SAFETY: each heap is only reached through `Quarry::lock_heap`/`try_heap`, which hold its lock (for
// `NoLock`, the promise of `new_single_threaded`); the registry, the delayed stacks and the pages'
// remote lists are atomics.
unsafe impl<B: OsBackend + Sync, L: RawLock, const H: usize, const M: usize, const N: usize> Sync
    for Quarry<B, L, H, M, N>
{
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize>
    Quarry<B, L, H, M, N>
{
    const fn build(backend: B, config: Config) -> Self {
        assert!(H >= 1 && H <= 254, "HEAPS must be between 1 and 254");
        let mut slots = [const { Slot::new(Heap::new(0, &Config::HOST)) }; H];
        let mut i = 0;
        while i < H {
            slots[i].heap = UnsafeCell::new(Heap::new(i as u8, &config));
            i += 1;
        }
        Quarry {
            arenas: Arenas::new(backend, config),
            slots,
        }
    }
}

impl<B: OsBackend, L: ThreadSafe, const H: usize, const M: usize, const N: usize>
    Quarry<B, L, H, M, N>
{
    /// An allocator over `backend` with the settings `config`; nothing is reserved until the first
    /// allocation. Panics (at compile time, in a `static`) if `config` is invalid.
    pub const fn new(backend: B, config: Config) -> Self {
        Self::build(backend, config)
    }
}

impl<B: OsBackend, const H: usize, const M: usize, const N: usize> Quarry<B, NoLock, H, M, N> {
    /// An allocator without locks, for a program that never allocates from two threads (or from
    /// an interrupt handler) at once.
    ///
    /// # Safety
    /// No two calls into the allocator ever overlap.
    pub const unsafe fn new_single_threaded(backend: B, config: Config) -> Self {
        Self::build(backend, config)
    }
}

/// The heap a thread tries first: a hash of which 64 KiB of address space its stack is in
/// (Fibonacci hashing: the top bits of a multiplication by the golden ratio). Heap 0 behind a lock
/// that is never busy: nobody competes for it, so one heap holds every page.
#[inline(always)]
fn home_heap<const H: usize, L: RawLock>() -> usize {
    if H == 1 || L::NEVER_BUSY {
        return 0;
    }
    let probe = 0u8;
    let sp = core::hint::black_box(ptr::from_ref(&probe)).addr();
    const GOLDEN: usize = 0x9E37_79B9_7F4A_7C15_u64 as usize;
    ((sp >> 16).wrapping_mul(GOLDEN) >> (usize::BITS - 8)) % H
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize>
    Quarry<B, L, H, M, N>
{
    /// Heap `index`, if its lock can be taken at once.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn try_heap(&self, index: usize) -> Option<HeapGuard<'_, L>> {
        self.slots[index].try_guard()
    }

    /// Heap `index`, waiting for its lock.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn lock_heap(&self, index: usize) -> HeapGuard<'_, L> {
        self.slots[index].guard()
    }

    /// The first heap this thread can lock, starting from its home heap (waiting for that one if
    /// every heap is busy).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn any_heap(&self) -> HeapGuard<'_, L> {
        let home = home_heap::<H, L>();
        if let Some(guard) = self.try_heap(home) {
            return guard;
        }
        self.any_heap_slow(home)
    }

    #[inline(never)]
    fn any_heap_slow(&self, home: usize) -> HeapGuard<'_, L> {
        (1..H)
            .find_map(|step| self.try_heap((home + step) % H))
            .unwrap_or_else(|| self.lock_heap(home))
    }

    /// The arena registry below the heaps.
    pub fn arenas(&self) -> &Arenas<B, M, N> {
        &self.arenas
    }

    /// A locked heap to allocate from.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn heap_for<'s>(&'s self, choice: Choice<'s, L>) -> HeapGuard<'s, L> {
        match choice {
            Choice::Shared => self.any_heap(),
            Choice::Own { slot, .. } => slot.guard(),
        }
    }

    /// The slot of the heap that owns `page` (in `arena`), if the caller may free into it: a
    /// shared heap's page for the shared heaps, the own heap's page for an arena heap.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn owner_slot<'s>(
        &'s self,
        choice: Choice<'s, L>,
        page: &Page,
        arena: &crate::arena::Arena,
    ) -> Result<&'s Slot<L>, FreeErrorKind> {
        match choice {
            Choice::Shared => self.slots.get(page.owner as usize),
            Choice::Own { slot, arena: own } => {
                (page.owner == ARENA_HEAP && arena.id == own).then_some(slot)
            }
        }
        .ok_or(FreeErrorKind::NotOurs)
    }

    /// Allocates `size` bytes aligned to `align` (a power of two), or `None`.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn allocate_in(
        &self,
        choice: Choice<'_, L>,
        size: usize,
        align: usize,
    ) -> Option<Allocated> {
        let mut heap = self.heap_for(choice);
        // Behind a lock that is never busy, no object is ever freed onto a remote list.
        let delayed = (!L::NEVER_BUSY).then_some(heap.delayed);
        heap.alloc(&self.arenas, size, align, delayed)
    }

    /// Allocates `size` zeroed bytes aligned to `align`; the memset is skipped on memory known to
    /// be zero.
    #[inline]
    pub(crate) fn allocate_zeroed_in(
        &self,
        choice: Choice<'_, L>,
        size: usize,
        align: usize,
    ) -> Option<Allocated> {
        let allocated = self.allocate_in(choice, size, align)?;
        if !allocated.zero {
            // SAFETY: the allocation is ours and at least `size` bytes long.
            unsafe { allocated.ptr.as_ptr().write_bytes(0, size) };
        }
        Some(allocated)
    }

    /// Frees `ptr`; a bad free is reported and changes nothing.
    ///
    /// # Safety
    /// If `ptr` is a live allocation of this allocator, nobody uses it any more.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) unsafe fn deallocate_in(
        &self,
        choice: Choice<'_, L>,
        ptr: NonNull<u8>,
        size: usize,
    ) {
        // SAFETY: forwarded from the caller.
        if let Err(kind) = unsafe { self.free_in(choice, ptr) } {
            self.refuse(kind, ptr, size);
        }
    }

    /// # Safety
    /// As for [`deallocate_in`](Self::deallocate_in).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    unsafe fn free_in(
        &self,
        choice: Choice<'_, L>,
        ptr: NonNull<u8>,
    ) -> Result<usize, FreeErrorKind> {
        let located = Heap::locate(&self.arenas, ptr)?;
        // SAFETY: forwarded from the caller; `located` is where `ptr` lives.
        unsafe { self.free_located(choice, located, ptr) }
    }

    /// Frees `ptr`, found at `located` by [`Heap::locate`].
    ///
    /// # Safety
    /// As for [`deallocate_in`](Self::deallocate_in); `located` is what `Heap::locate` said of
    /// `ptr`.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    unsafe fn free_located(
        &self,
        choice: Choice<'_, L>,
        located: Located<'_>,
        ptr: NonNull<u8>,
    ) -> Result<usize, FreeErrorKind> {
        match located {
            Located::Small { page: raw, arena } => {
                // SAFETY: the page is live: it holds `ptr`, whose free is not applied yet. Once
                // it is, the page may be given back, and `page` is not used.
                let page = unsafe { raw.as_ref() };
                let slot = self.owner_slot(choice, page, arena)?;
                if let Some(mut heap) = slot.try_guard() {
                    // SAFETY: the page belongs to the heap held; forwarded from the caller.
                    return unsafe { heap.free_small(&self.arenas, raw, ptr) };
                }
                let usable = page.size as usize;
                // SAFETY: the page is live (above); forwarded from the caller.
                let first = unsafe { page.free_remote(ptr) }?;
                if first {
                    // The owner takes remote frees back only from pages on its delayed stack, so
                    // until this push the page keeps the object and lives.
                    push_delayed(&slot.delayed, page);
                }
                Ok(usable)
            }
            Located::Large {
                arena,
                block,
                blocks,
            } => {
                if !choice.accepts(arena) {
                    return Err(FreeErrorKind::NotOurs);
                }
                let mut heap = self.heap_for(choice);
                // SAFETY: forwarded from the caller.
                unsafe { heap.free_large(&self.arenas, arena, block, blocks, ptr) }
            }
        }
    }

    /// Resizes; `None` when there is no memory (the old allocation stays) or `ptr` is bad (reported).
    ///
    /// # Safety
    /// `ptr` is a live allocation of this allocator of at least `old_size` bytes that nobody else
    /// uses during the call.
    #[inline]
    pub(crate) unsafe fn reallocate_in(
        &self,
        choice: Choice<'_, L>,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        let located = match Heap::locate(&self.arenas, ptr) {
            Ok(located) => located,
            Err(kind) => {
                self.refuse(kind, ptr, old_size);
                return None;
            }
        };
        let checked = match located {
            Located::Small { page, arena } => {
                // SAFETY: the page holds `ptr`, live by the caller's promise, so it lives.
                let page = unsafe { page.as_ref() };
                self.owner_slot(choice, page, arena)
                    .and_then(|_| page.check_live(ptr))
                    .map(|()| {
                        let size = page.size as usize;
                        (new_size <= size && size % align == 0, size)
                    })
            }
            Located::Large {
                arena,
                block,
                blocks,
            } if choice.accepts(arena) => {
                let in_place = ptr.addr().get() % align == 0
                    && self.heap_for(choice).resize_large(
                        &self.arenas,
                        arena,
                        block,
                        blocks,
                        new_size,
                    );
                Ok((in_place, blocks << arena.block_shift()))
            }
            Located::Large { .. } => Err(FreeErrorKind::NotOurs),
        };
        let usable = match checked {
            Ok((true, _)) => return Some(ptr),
            Ok((false, usable)) => usable,
            Err(kind) => {
                self.refuse(kind, ptr, old_size);
                return None;
            }
        };
        let moved = self.allocate_in(choice, new_size, align)?;
        // SAFETY: both allocations are ours and distinct; the old one holds at least
        // `min(old_size, usable)` bytes the caller wrote, the new one at least `new_size`.
        unsafe {
            ptr::copy_nonoverlapping(
                ptr.as_ptr(),
                moved.ptr.as_ptr(),
                old_size.min(usable).min(new_size),
            )
        };
        // The page or run found above still holds the old allocation: free it there without
        // looking it up again.
        // SAFETY: the old allocation is valid (checked above) and the caller gives it up;
        // `located` is where it lives.
        if let Err(kind) = unsafe { self.free_located(choice, located, ptr) } {
            self.refuse(kind, ptr, old_size);
        }
        Some(moved.ptr)
    }

    /// Allocates from the shared heaps.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn allocate(&self, size: usize, align: usize) -> Option<Allocated> {
        self.allocate_in(Choice::Shared, size, align)
    }

    /// `GlobalAlloc::alloc`: the common case on the spot (see [`Heap::alloc_fast`]), everything
    /// else out of line, so that the common case needs no stack frame.
    #[inline(always)]
    pub(crate) fn allocate_ptr(&self, size: usize, align: usize) -> *mut u8 {
        if let Some(ptr) = self.alloc_fast(size, align) {
            return ptr.as_ptr();
        }
        self.allocate_ptr_slow(size, align)
    }

    /// An object from the first page of its class in the home heap, if that heap is free and the
    /// page has one.
    #[inline(always)]
    fn alloc_fast(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let slot = self.slots.get(home_heap::<H, L>())?;
        if !slot.lock.try_lock() {
            return None;
        }
        // SAFETY: the lock is held from here to the unlock below, so this is the only reference
        // to the heap meanwhile.
        let ptr = unsafe { &mut *slot.heap.get() }.alloc_fast(size, align);
        // SAFETY: taken above.
        unsafe { slot.lock.unlock() };
        ptr
    }

    #[inline(never)]
    fn allocate_ptr_slow(&self, size: usize, align: usize) -> *mut u8 {
        self.allocate(size, align)
            .map_or(ptr::null_mut(), |a| a.ptr.as_ptr())
    }

    /// Allocates zeroed memory from the shared heaps.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn allocate_zeroed(&self, size: usize, align: usize) -> Option<Allocated> {
        self.allocate_zeroed_in(Choice::Shared, size, align)
    }

    /// Frees into the shared heaps.
    ///
    /// # Safety
    /// As for [`deallocate_in`](Self::deallocate_in).
    #[inline(always)]
    pub(crate) unsafe fn deallocate(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: forwarded from the caller.
        if unsafe { self.free_fast(ptr) } {
            return;
        }
        // SAFETY: forwarded from the caller; the fast path changed nothing.
        unsafe { self.deallocate_slow(ptr, size) }
    }

    /// The common free on the spot (see [`Heap::free_fast`]): an object of a shared heap's page,
    /// that heap free. `false`, having changed nothing, in every other case.
    ///
    /// # Safety
    /// As for [`deallocate_in`](Self::deallocate_in).
    #[inline(always)]
    unsafe fn free_fast(&self, ptr: NonNull<u8>) -> bool {
        let Ok(Located::Small { page, .. }) = Heap::locate(&self.arenas, ptr) else {
            return false;
        };
        // SAFETY: the page holds `ptr`, whose free is not applied yet; the fast path never gives a
        // page back (it frees only into a page that keeps other objects).
        let page = unsafe { page.as_ref() };
        // An arena heap's page (owner `ARENA_HEAP`) has no slot here: the slow path refuses it.
        let Some(slot) = self.slots.get(page.owner as usize) else {
            return false;
        };
        if !slot.lock.try_lock() {
            return false;
        }
        // SAFETY: the lock is held from here to the unlock below, so this is the only reference
        // to the heap, which owns `page`; forwarded from the caller.
        let done = unsafe { (*slot.heap.get()).free_fast(page, ptr) };
        // SAFETY: taken above.
        unsafe { slot.lock.unlock() };
        done
    }

    /// # Safety
    /// As for [`deallocate_in`](Self::deallocate_in).
    #[inline(never)]
    unsafe fn deallocate_slow(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.deallocate_in(Choice::Shared, ptr, size) }
    }

    #[cold]
    fn refuse(&self, kind: FreeErrorKind, ptr: NonNull<u8>, size: usize) {
        self.arenas.report_bad_free(kind, ptr.addr().get(), size);
    }

    /// Gives every empty page back to its arena, including the one page per size class that is
    /// otherwise kept so that allocating and freeing around a page boundary does not thrash.
    pub fn trim(&self) {
        for index in 0..H {
            let mut heap = self.lock_heap(index);
            let delayed = heap.delayed;
            heap.trim(&self.arenas, delayed);
        }
    }

    /// Gives memory back: every empty page to its arena (as [`trim`](Self::trim) does), then the
    /// physical memory of freed blocks to the backend, those whose purge delay has passed or, if
    /// `force`d, all of them. Does the second part only over a backend that can purge (such as
    /// `Mmap`) and with purging on (`Config::purge_delay_ms` 0 or more).
    pub fn collect(&self, force: bool) {
        self.trim();
        self.arenas.collect(force);
    }

    /// Bytes usable at `ptr`, if it is a live allocation of this allocator.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        Heap::usable_size(&self.arenas, ptr)
    }

    /// Sets the function called on every refused free (`None`: none). It runs inside the allocator
    /// and must not allocate.
    pub fn set_error_hook(&self, hook: Option<ErrorHook>) {
        self.arenas.set_error_hook(hook);
    }

    /// What the allocator holds and has done, summed over the heaps. Objects freed by another
    /// thread while their heap was busy count as freed once their heap takes them back.
    pub fn stats(&self) -> Stats {
        let mut total = HeapCounters::default();
        for index in 0..H {
            let c = self.lock_heap(index).counters;
            total.allocs += c.allocs;
            total.frees += c.frees;
            total.bytes_in_use = total.bytes_in_use.wrapping_add(c.bytes_in_use);
            total.peak_bytes += c.peak_bytes;
            total.pages_made += c.pages_made;
            total.pages_returned += c.pages_returned;
        }
        Stats::new(&total, &self.arenas.stats())
    }

    /// Writes an SVG picture of every arena's blocks (see [`Arenas::write_svg`]).
    pub fn write_svg(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.arenas.write_svg(out)
    }

    /// Writes the arena map (see [`Arenas::write_map`]).
    pub fn write_map(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.arenas.write_map(out)
    }
}

impl<L: RawLock> Slot<L> {
    const fn new(heap: Heap) -> Self {
        Slot {
            lock: L::NEW,
            delayed: AtomicPtr::new(ptr::null_mut()),
            heap: UnsafeCell::new(heap),
        }
    }

    /// The heap, if its lock can be taken at once (always, for a lock that is never busy).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn try_guard(&self) -> Option<HeapGuard<'_, L>> {
        if L::NEVER_BUSY {
            return Some(self.guard());
        }
        self.lock.try_lock().then(|| HeapGuard {
            lock: &self.lock,
            delayed: &self.delayed,
            // SAFETY: the lock is held from here until the guard is dropped, so this is the only
            // reference to the heap meanwhile.
            heap: unsafe { &mut *self.heap.get() },
        })
    }

    /// The heap, waiting for its lock.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn guard(&self) -> HeapGuard<'_, L> {
        self.lock.lock();
        HeapGuard {
            lock: &self.lock,
            delayed: &self.delayed,
            // SAFETY: as in `try_guard`.
            heap: unsafe { &mut *self.heap.get() },
        }
    }
}

/// The owner id of the pages of an arena heap: never a shared heap's index (`HEAPS <= 254`).
pub(crate) const ARENA_HEAP: u8 = u8::MAX;

/// Which heaps an operation uses: the shared ones, or an arena heap's own.
pub(crate) enum Choice<'a, L> {
    Shared,
    Own { slot: &'a Slot<L>, arena: ArenaId },
}

impl<L> Clone for Choice<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Choice<'_, L> {}

impl<L> Choice<'_, L> {
    /// Whether a large object in `arena` may be freed or resized through this choice: the shared
    /// heaps take those of arenas that are not exclusive, an arena heap those of its arena.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn accepts(&self, arena: &crate::arena::Arena) -> bool {
        match *self {
            Choice::Shared => !arena.exclusive,
            Choice::Own { arena: own, .. } => arena.id == own,
        }
    }
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize>
    crate::front::Reallocate for Quarry<B, L, H, M, N>
{
    /// Resizes in the shared heaps.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        unsafe { self.reallocate_in(Choice::Shared, ptr, old_size, new_size, align) }
    }
}

/// Puts `page` on a heap's delayed stack.
fn push_delayed(delayed: &AtomicPtr<Page>, page: &Page) {
    let page_ptr = ptr::from_ref(page).cast_mut();
    let mut head = delayed.load(Ordering::Relaxed);
    loop {
        page.delayed_next.store(head, Ordering::Relaxed);
        match delayed.compare_exchange_weak(head, page_ptr, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => head = actual,
        }
    }
}

/// A heap of a [`Quarry`] while its lock is held.
struct HeapGuard<'a, L: RawLock> {
    lock: &'a L,
    delayed: &'a AtomicPtr<Page>,
    heap: &'a mut Heap,
}

impl<L: RawLock> core::ops::Deref for HeapGuard<'_, L> {
    type Target = Heap;
    #[inline(always)]
    fn deref(&self) -> &Heap {
        self.heap
    }
}

impl<L: RawLock> core::ops::DerefMut for HeapGuard<'_, L> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Heap {
        self.heap
    }
}

impl<L: RawLock> Drop for HeapGuard<'_, L> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the guard was made by `try_heap` or `lock_heap`, which took the lock.
        unsafe { self.lock.unlock() };
    }
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize> fmt::Debug
    for Quarry<B, L, H, M, N>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quarry")
            .field("stats", &self.stats())
            .finish()
    }
}
