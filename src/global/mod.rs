//! `Quarry`: the allocator people install, as `GlobalAlloc` and as `allocator_api2::Allocator`.
//!
//! It owns the arena registry and the heap, keeps the heap behind a lock, turns bad frees into
//! counted errors (and error-hook calls) instead of corrupted state, and tells what the heap is
//! doing through [`Quarry::stats`] and [`Quarry::write_map`].

mod api;
mod stats;

pub use stats::Stats;

use crate::arenas::Arenas;
use crate::backend::OsBackend;
use crate::config::Config;
use crate::error::{ErrorHook, FreeErrorKind};
use crate::heap::{Allocated, Heap};
use crate::sync::{RawLock, SpinLock, ThreadSafe};
use core::cell::UnsafeCell;
use core::fmt;
use core::ptr::NonNull;

/// A complete allocator over a backend `B`, its heap behind a lock `L`.
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
/// As the program's allocator: `#[global_allocator] static A: Quarry<…> = Quarry::new(…);`.
pub struct Quarry<
    B: OsBackend,
    L: RawLock = SpinLock,
    const MAX_ARENAS: usize = 64,
    const META_BYTES: usize = 4096,
> {
    arenas: Arenas<B, MAX_ARENAS, META_BYTES>,
    lock: L,
    /// Used only by the holder of `lock`.
    heap: UnsafeCell<Heap>,
}

// SAFETY: the heap is only reached through `Quarry::heap`, which holds the lock (for `NoLock`, the
// promise of `new_single_threaded`); the registry is thread-safe on its own.
unsafe impl<B: OsBackend + Sync, L: RawLock, const M: usize, const N: usize> Sync
    for Quarry<B, L, M, N>
{
}

impl<B: OsBackend, L: ThreadSafe, const M: usize, const N: usize> Quarry<B, L, M, N> {
    /// An allocator over `backend` with the settings `config`; nothing is reserved until the first
    /// allocation. Panics (at compile time, in a `static`) if `config` is invalid.
    pub const fn new(backend: B, config: Config) -> Self {
        Quarry {
            arenas: Arenas::new(backend, config),
            lock: L::NEW,
            heap: UnsafeCell::new(Heap::new()),
        }
    }
}

impl<B: OsBackend, const M: usize, const N: usize> Quarry<B, crate::sync::NoLock, M, N> {
    /// An allocator without a lock, for a program that never allocates from two threads (or from
    /// an interrupt handler) at once.
    ///
    /// # Safety
    /// No two calls into the allocator ever overlap.
    pub const unsafe fn new_single_threaded(backend: B, config: Config) -> Self {
        Quarry {
            arenas: Arenas::new(backend, config),
            lock: crate::sync::NoLock,
            heap: UnsafeCell::new(Heap::new()),
        }
    }
}

impl<B: OsBackend, L: RawLock, const M: usize, const N: usize> Quarry<B, L, M, N> {
    /// The heap, locked until the guard is dropped.
    #[inline(always)]
    fn heap(&self) -> HeapGuard<'_, L> {
        self.lock.lock();
        HeapGuard {
            lock: &self.lock,
            // SAFETY: the lock is held from here until the guard is dropped, so this is the only
            // reference to the heap meanwhile.
            heap: unsafe { &mut *self.heap.get() },
        }
    }

    /// The arena registry below the heap.
    pub fn arenas(&self) -> &Arenas<B, M, N> {
        &self.arenas
    }

    /// Allocates `size` bytes aligned to `align` (a power of two), or `None`.
    #[inline(always)]
    pub(crate) fn allocate(&self, size: usize, align: usize) -> Option<Allocated> {
        self.heap().alloc(&self.arenas, size, align)
    }

    /// Allocates `size` zeroed bytes aligned to `align`; the memset is skipped on memory known to
    /// be zero.
    #[inline]
    pub(crate) fn allocate_zeroed(&self, size: usize, align: usize) -> Option<Allocated> {
        let allocated = self.allocate(size, align)?;
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
    #[inline(always)]
    pub(crate) unsafe fn deallocate(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: forwarded from the caller.
        let result = unsafe { self.heap().free(&self.arenas, ptr) };
        if let Err(kind) = result {
            self.refuse(kind, ptr, size);
        }
    }

    /// Resizes; `None` when there is no memory (the old allocation stays) or `ptr` is bad (reported).
    ///
    /// # Safety
    /// `ptr` is a live allocation of this allocator of at least `old_size` bytes that nobody else
    /// uses during the call.
    #[inline]
    pub(crate) unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        let result = unsafe {
            self.heap()
                .realloc(&self.arenas, ptr, old_size, new_size, align)
        };
        result.unwrap_or_else(|kind| {
            self.refuse(kind, ptr, old_size);
            None
        })
    }

    #[cold]
    fn refuse(&self, kind: FreeErrorKind, ptr: NonNull<u8>, size: usize) {
        self.arenas.report_bad_free(kind, ptr.addr().get(), size);
    }

    /// Gives every empty page back to its arena, including the one page per size class that is
    /// otherwise kept so that allocating and freeing around a page boundary does not thrash.
    pub fn trim(&self) {
        self.heap().trim(&self.arenas);
    }

    /// Bytes usable at `ptr`, if it is a live allocation of this allocator.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        let _heap = self.heap();
        Heap::usable_size(&self.arenas, ptr)
    }

    /// Sets the function called on every refused free (`None`: none). It runs inside the allocator
    /// and must not allocate.
    pub fn set_error_hook(&self, hook: Option<ErrorHook>) {
        self.arenas.set_error_hook(hook);
    }

    /// What the allocator holds and has done.
    pub fn stats(&self) -> Stats {
        let heap = self.heap().counters;
        Stats::new(&heap, &self.arenas.stats())
    }

    /// Writes the arena map (see [`Arenas::write_map`]).
    pub fn write_map(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.arenas.write_map(out)
    }
}

/// The heap of a [`Quarry`] while its lock is held.
struct HeapGuard<'a, L: RawLock> {
    lock: &'a L,
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
        // SAFETY: the guard was made by `Quarry::heap`, which took the lock.
        unsafe { self.lock.unlock() };
    }
}

impl<B: OsBackend, L: RawLock, const M: usize, const N: usize> fmt::Debug for Quarry<B, L, M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quarry")
            .field("stats", &self.stats())
            .finish()
    }
}
