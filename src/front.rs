//! What the front ends, `Quarry`, `Compact` and `Tiny`, share: for `allocator_api2::Allocator`,
//! zero-sized allocations, and `grow` and `shrink` through the front end's own resize; for the two
//! engines behind one lock, the lock around their state, their refused frees and statistics.

use crate::error::{ErrorHook, FreeError, FreeErrorKind};
use crate::heap::HeapCounters;
use crate::sync::RawLock;
use crate::Stats;
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

/// A zero-sized allocation: a dangling pointer aligned as asked, never passed to an engine.
pub(crate) fn empty(layout: Layout) -> NonNull<[u8]> {
    // SAFETY: a layout's alignment is a non-zero power of two, so it is a valid non-null address;
    // `without_provenance_mut` is the strict-provenance way to name it.
    let dangling = unsafe { NonNull::new_unchecked(ptr::without_provenance_mut(layout.align())) };
    NonNull::slice_from_raw_parts(dangling, 0)
}

/// The front ends' own resize: in place when the allocation allows, else moved (see
/// `Quarry::reallocate_in`).
pub(crate) trait Reallocate {
    /// # Safety
    /// `ptr` is a live allocation of at least `old_size` bytes that nobody else uses meanwhile.
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>>;
}

/// `grow` and `shrink` for `allocator` (which is `&front`): to and from size 0 through the
/// `Allocator` methods, the rest through the front end's own resize.
///
/// # Safety
/// `ptr` is live with `old` (or dangling when `old.size()` is 0).
pub(crate) unsafe fn resize<A: Allocator, F: Reallocate>(
    allocator: &A,
    front: &F,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    if old.size() == 0 {
        return allocator.allocate(new);
    }
    if new.size() == 0 {
        // SAFETY: forwarded from the caller.
        unsafe { allocator.deallocate(ptr, old) };
        return Ok(empty(new));
    }
    // SAFETY: forwarded from the caller.
    let moved =
        unsafe { front.reallocate(ptr, old.size(), new.size(), new.align()) }.ok_or(AllocError)?;
    Ok(NonNull::slice_from_raw_parts(moved, new.size()))
}

/// The refused frees of a front end that keeps them under its own lock (`Compact`, `Tiny`), and
/// the hook that hears of each.
pub(crate) struct Refusals {
    /// Refused frees, by `FreeErrorKind` as an index.
    counts: [usize; 4],
    hook: Option<ErrorHook>,
}

impl Refusals {
    /// None yet, and no hook.
    pub(crate) const NEW: Refusals = Refusals {
        counts: [0; 4],
        hook: None,
    };

    /// Counts a refused free of `size` bytes at `ptr` and passes it to the hook.
    #[cold]
    #[inline(never)]
    pub(crate) fn refuse(&mut self, kind: FreeErrorKind, ptr: *mut u8, size: usize) {
        self.counts[kind as usize] += 1;
        if let Some(hook) = self.hook {
            hook(&FreeError {
                kind,
                addr: ptr.addr(),
                size,
            });
        }
    }

    /// Sets the hook (`None`: none).
    pub(crate) fn set_hook(&mut self, hook: Option<ErrorHook>) {
        self.hook = hook;
    }

    /// The statistics `counters` and an arena of `arena_bytes` (all of them committed) make, with
    /// these refusals.
    pub(crate) fn stats(&self, counters: &HeapCounters, arena_bytes: usize) -> Stats {
        Stats {
            bytes_in_use: counters.bytes_in_use,
            peak_bytes: counters.peak_bytes,
            reserved_bytes: arena_bytes,
            committed_bytes: arena_bytes,
            purged_bytes: 0,
            arenas: usize::from(arena_bytes != 0),
            allocations: counters.allocs,
            frees: counters.frees,
            pages_made: counters.pages_made,
            pages_returned: counters.pages_returned,
            not_ours: self.counts[FreeErrorKind::NotOurs as usize],
            double_frees: self.counts[FreeErrorKind::DoubleFree as usize],
            misaligned: self.counts[FreeErrorKind::PastEnd as usize]
                + self.counts[FreeErrorKind::Misaligned as usize],
        }
    }
}

/// `allocator_api2::Allocator` for `&$engine<B, L, N>`, `Reallocate` and `Debug` for an engine
/// behind one lock (`Compact`, `Tiny`): allocation and free through its `GlobalAlloc`, resizing
/// through its `realloc_to(ptr, old_size, new_size, align)`.
macro_rules! locked_allocator {
    ($engine:ident) => {
        // SAFETY: as for the engine's `GlobalAlloc`; zero-sized requests get a dangling pointer
        // and are never freed into the engine, and every allocation stays valid until
        // deallocated, even if the reference is copied.
        unsafe impl<B: OsBackend + Sync, L: RawLock, const N: usize> Allocator
            for &$engine<B, L, N>
        {
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                if layout.size() == 0 {
                    return Ok($crate::front::empty(layout));
                }
                // SAFETY: a non-zero layout.
                let ptr = NonNull::new(unsafe { self.alloc(layout) }).ok_or(AllocError)?;
                Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
            }

            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                if layout.size() != 0 {
                    // SAFETY: the caller gives up the allocation (`deallocate`'s contract).
                    unsafe { self.dealloc(ptr.as_ptr(), layout) };
                }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: `grow`'s contract: `ptr` is live with `old`, `new.size() >= old.size()`.
                unsafe { $crate::front::resize(self, *self, ptr, old, new) }
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: `shrink`'s contract: `ptr` is live with `old`, `new.size() <= old.size()`.
                unsafe { $crate::front::resize(self, *self, ptr, old, new) }
            }
        }

        impl<B: OsBackend, L: RawLock, const N: usize> $crate::front::Reallocate
            for $engine<B, L, N>
        {
            unsafe fn reallocate(
                &self,
                ptr: NonNull<u8>,
                old_size: usize,
                new_size: usize,
                align: usize,
            ) -> Option<NonNull<u8>> {
                // SAFETY: forwarded from the caller; `new_size` and `align` come from a valid
                // layout.
                NonNull::new(unsafe { self.realloc_to(ptr.as_ptr(), old_size, new_size, align) })
            }
        }

        impl<B: OsBackend, L: RawLock, const N: usize> core::fmt::Debug for $engine<B, L, N> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($engine))
                    .field("stats", &self.stats())
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use locked_allocator;

/// The state of an engine that keeps all of it behind one lock (`Compact`, `Tiny`). Not `Sync` by
/// itself: the engine that holds it says when it may be shared.
pub(crate) struct Locked<L, S> {
    /// Held around every use of `state`.
    lock: L,
    /// Used only while `lock` is held (or, with `NoLock`, by the one caller at a time that the
    /// engine's `new_single_threaded` contract allows).
    state: UnsafeCell<S>,
}

impl<L: RawLock, S> Locked<L, S> {
    /// `state` behind a lock of its own.
    pub(crate) const fn new(state: S) -> Self {
        Locked {
            lock: L::NEW,
            state: UnsafeCell::new(state),
        }
    }

    /// Runs `f` on the state under the lock. `f` must not call back into the engine (it would
    /// wait for the lock it holds, or break the one-caller contract of `NoLock`).
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.lock.lock();
        // SAFETY: the lock is held, so this is the only reference to the state until `f`
        // returns (the invariant on `state`), and `f` does not call back into the engine.
        let result = f(unsafe { &mut *self.state.get() });
        // SAFETY: taken above.
        unsafe { self.lock.unlock() };
        result
    }
}
