//! A backend over a byte array that lives inside the backend value, for targets with no memory source
//! at all (and for tests that must not touch the system allocator).

use super::{bump, OsBackend, Region};
use crate::atomic::{AtomicUsize, Ordering};
use core::cell::UnsafeCell;
use core::ptr::NonNull;

/// `N` bytes inside the value, handed out front to back.
///
/// Put it in a `static` (usually inside a `Quarry` or `Arenas` static): its regions point into the
/// value itself, so it must stay at one address while they are in use. Memory is never given back;
/// the buffer starts zeroed, so a `static` of it costs no flash, only `.bss`.
pub struct StaticBuffer<const N: usize> {
    /// The memory. Bytes `[used, N)` belong to nobody; bytes below `used` belong to the regions
    /// handed out (and the padding before them).
    memory: UnsafeCell<[u8; N]>,
    /// Bytes handed out so far; only grows, never past `N`.
    used: AtomicUsize,
}

// SAFETY: the buffer's bytes are shared out through `used`, which is only advanced with
// compare-and-swap, so two threads never receive overlapping bytes; the backend itself never reads or
// writes `memory`.
unsafe impl<const N: usize> Sync for StaticBuffer<N> {}

impl<const N: usize> StaticBuffer<N> {
    /// An untouched buffer of `N` zero bytes.
    pub const fn new() -> Self {
        StaticBuffer {
            memory: UnsafeCell::new([0; N]),
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes not handed out yet (some of them may go to alignment padding).
    pub fn remaining(&self) -> usize {
        N - self.used.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for StaticBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: regions are disjoint sub-slices of `memory` (see the invariant on `used`), aligned as asked,
// zero because the buffer starts zeroed and no byte is handed out twice, and always committed; they
// stay valid as long as the value stays where it is, which the type's docs require.
unsafe impl<const N: usize> OsBackend for StaticBuffer<N> {
    fn page_size(&self) -> usize {
        64
    }

    fn alloc(&self, size: usize, align: usize, _commit: bool) -> Option<Region> {
        let base = self.memory.get().cast::<u8>();
        let start = bump(&self.used, base.addr(), N, size, align)?;
        // SAFETY: `bump` keeps `start + size <= N`, so the pointer stays inside (or one past)
        // `memory`; it is derived from the buffer's own pointer, keeping its provenance.
        let ptr = unsafe { NonNull::new_unchecked(base.add(start)) };
        Some(Region::pinned(ptr, size, true))
    }

    fn grows_in_place(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_aligned_disjoint_and_bounded() {
        let buffer = StaticBuffer::<4096>::new();
        let a = buffer.alloc(100, 8, false).unwrap();
        let b = buffer.alloc(100, 256, false).unwrap();
        assert!(a.committed && a.zeroed && a.pinned);
        assert_eq!(b.ptr.addr().get() % 256, 0);
        assert!(b.ptr.addr().get() >= a.ptr.addr().get() + 100);
        // SAFETY: both regions are ours, committed, and disjoint.
        unsafe {
            a.ptr.as_ptr().write_bytes(1, 100);
            b.ptr.as_ptr().write_bytes(2, 100);
            assert_eq!(*a.ptr.as_ptr().add(99), 1);
        }
        assert!(buffer.alloc(4096, 8, false).is_none(), "past the end");
        assert!(buffer.alloc(usize::MAX, 8, false).is_none(), "overflow");
        assert!(
            buffer.alloc(8, 1 << (usize::BITS - 1), false).is_none(),
            "huge alignment"
        );
        let rest = buffer.remaining();
        assert!(buffer.alloc(rest, 1, false).is_some());
        assert_eq!(buffer.remaining(), 0);
        // SAFETY: a region is never freed by this backend.
        assert!(!unsafe { buffer.free(a) });
    }
}
