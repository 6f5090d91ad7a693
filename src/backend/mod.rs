//! Where memory comes from: the [`OsBackend`] trait and its implementations.
//!
//! This is the layer the seed reaches through `_mi_os_*` (`os.c` in mimalloc): obtain an aligned
//! region, commit it, purge it, give it back, read a clock. Each memory source of a target implements
//! the trait once; everything above it is the same on every target.
//!
//! | backend | memory source | purge | free | clock |
//! |---|---|---|---|---|
//! | [`StaticBuffer`] | a byte array inside the value (a `static`) | no | no | no |
//! | [`Sbrk`] | a break pointer over a region: linker symbols, a given range, or the process break (feature `unix`) | no | no | no |
//! | `WasmGrow` (wasm32) | `memory.grow`, 64 KiB at a time | no | no | WASI's monotonic clock on wasm32-wasip1 |
//! | `Mmap` (unix, feature `unix`) | `mmap`: reserved, committed with `mprotect` as blocks are handed out | `madvise(MADV_DONTNEED)`, after a delay | `munmap` | `CLOCK_MONOTONIC` |
//! | [`Mock`] (feature `mock`) | a heap buffer of fixed capacity, for tests | decommit, poisoned | yes | manual |
//!
//! The break-pointer backends ([`Sbrk`], `WasmGrow`, [`StaticBuffer`]) hand out each region right
//! after the one before, and say so through [`OsBackend::grows_in_place`]: the registry then grows
//! its last arena over the new memory instead of adding arenas, so that memory grows by what the
//! program asks for and no more.

mod sbrk;
mod static_buffer;
pub use sbrk::Sbrk;
pub use static_buffer::StaticBuffer;

#[cfg(target_arch = "wasm32")]
mod wasm_grow;
#[cfg(target_arch = "wasm32")]
pub use wasm_grow::WasmGrow;

#[cfg(all(unix, feature = "unix"))]
mod mmap;
#[cfg(all(unix, feature = "unix"))]
pub use mmap::Mmap;

#[cfg(feature = "mock")]
mod mock;
#[cfg(feature = "mock")]
pub use mock::{Call, Mock, MockOptions};

use core::ptr::NonNull;

/// A region of memory obtained from a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The first byte; its address is a multiple of the alignment asked for.
    pub ptr: NonNull<u8>,
    /// Size in bytes; at least the size asked for.
    pub size: usize,
    /// The whole region is committed: it can be read and written without a [`OsBackend::commit`].
    pub committed: bool,
    /// Every committed byte of the region reads as zero.
    pub zeroed: bool,
    /// The region can never be decommitted or reset: it stays committed until freed (large OS pages,
    /// or memory a backend cannot give back). Arenas over pinned memory keep no commit or purge state.
    pub pinned: bool,
}

impl Region {
    /// A region that is committed and can never be decommitted (memory a break-pointer or static
    /// backend hands out), zero if `zeroed`.
    pub const fn pinned(ptr: NonNull<u8>, size: usize, zeroed: bool) -> Region {
        Region {
            ptr,
            size,
            committed: true,
            zeroed,
            pinned: true,
        }
    }
}

/// What [`OsBackend::purge`] did to a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Purged {
    /// The range was decommitted: it must be committed again before it is touched.
    pub needs_recommit: bool,
    /// The range reads as zero once it is committed again (or now, if it was only reset).
    pub zeroed: bool,
}

/// The error a backend returns when it cannot provide or commit memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// A source of memory for the arenas: the operating system, a linker-defined heap, a static buffer,
/// `memory.grow`, or a mock.
///
/// A backend **never allocates** from any heap: it is what heaps are made of, and a global allocator
/// calls it from inside `GlobalAlloc::alloc`.
///
/// # Safety
///
/// Implementors must guarantee:
/// - [`alloc`](Self::alloc) returns `None` or a region of at least `size` bytes whose start address is
///   a multiple of `align`, that belongs to nobody else, and that stays valid until it is passed to
///   [`free`](Self::free) or the backend is dropped; a backend whose regions live inside the backend
///   value itself (like [`StaticBuffer`]) may rely on not being moved while its regions are in use.
/// - the region's `committed`, `zeroed` and `pinned` flags are true of it when it is returned.
/// - [`commit`](Self::commit) makes a range readable and writable, or fails and leaves it as it was.
/// - [`purge`](Self::purge) reports truthfully what it did: after `needs_recommit: false` the range is
///   still readable and writable.
/// - no method allocates memory from a heap, panics, or calls back into the allocator.
///
/// Callers must guarantee (stated again on each `unsafe` method):
/// - every range passed to [`commit`](Self::commit), [`purge`](Self::purge) or [`free`](Self::free)
///   lies inside one region this backend returned and has not freed;
/// - nobody reads or writes a range while it is being purged, or after a purge that reported
///   `needs_recommit` until it is committed again.
pub unsafe trait OsBackend {
    /// Whether memory from this backend can ever need a commit: it may hand out memory that is not
    /// committed yet, or give physical memory back with [`purge`](Self::purge). `false` (the
    /// default) for backends whose memory is always usable, like a static buffer, a break pointer
    /// or `memory.grow`: their arenas keep no commit or purge state (every arena is pinned), and
    /// the code for that state compiles away. A backend that sets it `false` hands out only
    /// committed, pinned regions, and its [`commit`](Self::commit) does nothing.
    const COMMITS: bool = false;

    /// The granule of commit and purge, in bytes: a power of two. Regions start on a page boundary.
    fn page_size(&self) -> usize;

    /// Obtains a region of at least `size` bytes whose start is a multiple of `align` (a power of
    /// two), committed if `commit` is true (a backend may commit anyway, and says so in the region).
    fn alloc(&self, size: usize, align: usize, commit: bool) -> Option<Region>;

    /// Commits `[ptr, ptr + size)`, returning whether the range now reads as zero.
    ///
    /// The default is for backends whose memory is always committed.
    ///
    /// # Safety
    /// The range lies inside a live region of this backend.
    unsafe fn commit(&self, ptr: NonNull<u8>, size: usize) -> Result<bool, OutOfMemory> {
        let _ = (ptr, size);
        Ok(false)
    }

    /// Gives the physical memory of `[ptr, ptr + size)` back if the backend can: decommit, or (when
    /// `allow_reset` is true and the backend prefers it) reset the contents while keeping the range
    /// committed.
    ///
    /// The default does nothing: the range stays committed and keeps its contents.
    ///
    /// # Safety
    /// The range lies inside a live region of this backend, and nobody uses it during the call.
    unsafe fn purge(&self, ptr: NonNull<u8>, size: usize, allow_reset: bool) -> Purged {
        let _ = (ptr, size, allow_reset);
        Purged {
            needs_recommit: false,
            zeroed: false,
        }
    }

    /// Whether [`purge`](Self::purge) does anything; arenas of a backend that cannot purge skip all
    /// purge bookkeeping.
    fn can_purge(&self) -> bool {
        false
    }

    /// Whether [`free`](Self::free) gives memory back.
    fn can_free(&self) -> bool {
        false
    }

    /// Gives a whole region back. Returns `false` if the backend cannot free (the default), in which
    /// case the region stays valid and unused, or if it can tell that `region` is not one of its
    /// live regions (then nothing changes).
    ///
    /// # Safety
    /// `region` was returned by [`alloc`](Self::alloc) of this backend, is not freed yet, and nobody
    /// uses it any more.
    unsafe fn free(&self, region: Region) -> bool {
        let _ = region;
        false
    }

    /// Milliseconds on a monotonic clock, for delayed purging; `None` when the target has no clock.
    fn now_ms(&self) -> Option<u64> {
        None
    }

    /// Whether address space can be reserved without memory behind it (mmap). Without it the arenas
    /// reserve a quarter as much at a time.
    fn has_virtual_reserve(&self) -> bool {
        false
    }

    /// Whether the system overcommits, so that committing eagerly costs nothing until touched.
    fn has_overcommit(&self) -> bool {
        false
    }

    /// Whether the backend hands out memory from a break pointer, each region starting where the
    /// previous one ended unless something else took memory in between (`sbrk`, `memory.grow`, a
    /// static buffer). Asking such a backend for a little at a time costs nothing, so the registry
    /// asks for just what a request needs and grows the last arena over it.
    fn grows_in_place(&self) -> bool {
        false
    }
}

/// Claims `size` bytes aligned to `align` from a break kept as bytes used past `base` in a region
/// of `len` bytes; returns the offset of the claimed bytes from `base`. Lock-free: the break only
/// moves forward, by compare-and-swap.
pub(crate) fn bump(
    used: &crate::atomic::AtomicUsize,
    base: usize,
    len: usize,
    size: usize,
    align: usize,
) -> Option<usize> {
    use crate::atomic::Ordering;
    let mut current = used.load(Ordering::Relaxed);
    loop {
        let start = align_up(base.checked_add(current)?, align)? - base;
        let end = start.checked_add(size)?;
        if end > len {
            return None;
        }
        match used.compare_exchange_weak(current, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Some(start),
            Err(actual) => current = actual,
        }
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on overflow.
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
pub(crate) const fn align_up(value: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}
