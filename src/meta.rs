//! The static metadata area: zeroed memory for arena descriptors and bitmaps, bump-allocated from a
//! byte array inside the allocator value, so that reserving an arena costs no extra call to the
//! backend. Follows the seed's `mi_arena_static_zalloc`; the registry falls back to the backend when
//! the area is full (`mi_arena_meta_zalloc`).

use crate::atomic::{AtomicUsize, Ordering};
use core::cell::UnsafeCell;
use core::ptr::NonNull;

/// Alignment of the start of the area and of every piece handed out.
pub(crate) const META_ALIGN: usize = 16;

#[repr(C, align(16))]
struct Bytes<const N: usize>([u8; N]);

/// `N` bytes of zeroed memory, handed out front to back and never taken back (until
/// [`reset`](MetaArea::reset)).
pub struct MetaArea<const N: usize> {
    /// The memory. Bytes `[top, N)` are zero and belong to nobody; bytes below `top` belong to the
    /// pieces handed out.
    bytes: UnsafeCell<Bytes<N>>,
    /// Bytes handed out so far, a multiple of `META_ALIGN`; only grows (but for `reset`), never past
    /// `N`.
    top: AtomicUsize,
}

// SAFETY: pieces are handed out disjointly by compare-and-swap on `top`; the area itself never reads or
// writes them after handing them out.
unsafe impl<const N: usize> Sync for MetaArea<N> {}

impl<const N: usize> MetaArea<N> {
    /// An empty area.
    pub const fn new() -> Self {
        MetaArea {
            bytes: UnsafeCell::new(Bytes([0; N])),
            top: AtomicUsize::new(0),
        }
    }

    /// A zeroed piece of `size` bytes aligned to 16, or `None` when the area is too full.
    pub fn alloc_zeroed(&self, size: usize) -> Option<NonNull<u8>> {
        let size = crate::backend::align_up(size.max(1), META_ALIGN)?;
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            let end = top.checked_add(size).filter(|&end| end <= N)?;
            match self
                .top
                .compare_exchange_weak(top, end, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    let base = self.bytes.get().cast::<u8>();
                    // SAFETY: `top < end <= N`: the piece lies inside the array, and the pointer is
                    // derived from the array's own. It is zero by the invariant on `top`.
                    return Some(unsafe { NonNull::new_unchecked(base.add(top)) });
                }
                Err(actual) => top = actual,
            }
        }
    }

    /// Bytes handed out.
    pub fn used(&self) -> usize {
        self.top.load(Ordering::Relaxed)
    }

    /// Whether `ptr` points into the area.
    pub fn contains(&self, ptr: NonNull<u8>) -> bool {
        let base = self.bytes.get().cast::<u8>().addr();
        (base..base + N).contains(&ptr.addr().get())
    }

    /// Takes every piece back and zeroes the area again.
    ///
    /// # Safety
    /// No piece handed out is used any more, and no other thread uses the area during the call.
    pub unsafe fn reset(&self) {
        let used = self.top.load(Ordering::Acquire);
        // SAFETY: the caller guarantees nobody uses the pieces; `used <= N`.
        unsafe { self.bytes.get().cast::<u8>().write_bytes(0, used) };
        self.top.store(0, Ordering::Release);
    }
}

impl<const N: usize> Default for MetaArea<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_zeroed_aligned_and_disjoint() {
        let area = MetaArea::<256>::new();
        let a = area.alloc_zeroed(10).unwrap();
        let b = area.alloc_zeroed(33).unwrap();
        assert_eq!(a.addr().get() % META_ALIGN, 0);
        assert_eq!(b.addr().get() - a.addr().get(), 16);
        assert_eq!(area.used(), 16 + 48);
        // SAFETY: `b` is a fresh 33-byte piece.
        assert!(unsafe { core::slice::from_raw_parts(b.as_ptr(), 33) }
            .iter()
            .all(|&x| x == 0));
        assert!(area.contains(b));
    }

    #[test]
    fn full_area_refuses_and_reset_rezeroes() {
        let area = MetaArea::<64>::new();
        let a = area.alloc_zeroed(64).unwrap();
        assert!(area.alloc_zeroed(1).is_none());
        assert!(area.alloc_zeroed(usize::MAX).is_none());
        // SAFETY: `a` is the 64-byte piece just handed out.
        unsafe { a.as_ptr().write_bytes(0xAB, 64) };
        // SAFETY: `a` is not used after this.
        unsafe { area.reset() };
        let b = area.alloc_zeroed(64).unwrap();
        // SAFETY: `b` is the 64-byte piece just handed out.
        assert!(unsafe { core::slice::from_raw_parts(b.as_ptr(), 64) }
            .iter()
            .all(|&x| x == 0));
    }
}
