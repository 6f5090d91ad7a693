//! A break pointer over one region of memory: a firmware image's heap between its data and its
//! stack (named by linker symbols), a range the program gives, or, on unix, the process break.

use super::{bump, OsBackend, Region};
use crate::atomic::{AtomicPtr, AtomicUsize, Ordering};
use core::ptr::NonNull;

/// Memory handed out front to back from one region, never given back.
///
/// - [`Sbrk::linker`] (bare-metal targets): the region from the linker symbols
///   `__quarry_heap_start` to `__quarry_heap_end`, which the board's `memory.x` defines (see
///   `targets/` for each board's).
/// - [`Sbrk::from_range`]: a region the program names.
/// - [`Sbrk::process`] (feature `unix`): libc's `sbrk`, the process break.
///
/// Every constructor is `const`, so the backend goes straight into a `static Quarry`.
pub struct Sbrk {
    /// The region's first byte; null until it is known (`linker` looks the symbols up on first
    /// use), and always null for the process break. Every pointer handed out is derived from it.
    base: AtomicPtr<u8>,
    /// Bytes in the region; written before `base` is published (release), read after (acquire).
    len: AtomicUsize,
    /// Bytes handed out from `base` (and alignment padding); only grows, never past `len`.
    used: AtomicUsize,
    source: Source,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Range,
    #[cfg(target_os = "none")]
    Linker,
    #[cfg(all(unix, feature = "unix"))]
    Process,
}

#[cfg(target_os = "none")]
extern "C" {
    /// The first byte of the heap; defined by the board's linker script.
    static mut __quarry_heap_start: u8;
    /// One past the last byte of the heap; defined by the board's linker script.
    static __quarry_heap_end: u8;
}

impl Sbrk {
    /// The heap the linker script names: from `__quarry_heap_start` (inclusive) to
    /// `__quarry_heap_end` (exclusive). A `memory.x` usually puts it between the end of `.bss`
    /// and the bottom of the stack:
    ///
    /// ```text
    /// __quarry_heap_start = __sheap;                       /* cortex-m-rt: end of .bss/.uninit */
    /// __quarry_heap_end = ORIGIN(RAM) + LENGTH(RAM) - _stack_size;
    /// ```
    #[cfg(target_os = "none")]
    pub const fn linker() -> Sbrk {
        Sbrk {
            base: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
            source: Source::Linker,
        }
    }

    /// The region of `len` bytes at `start`. A null `start` gives a backend with no memory.
    ///
    /// # Safety
    /// `[start, start + len)` is memory the allocator may read and write, that nobody else uses
    /// for as long as the backend's regions are in use, and that does not wrap around the
    /// address space.
    pub const unsafe fn from_range(start: *mut u8, len: usize) -> Sbrk {
        Sbrk {
            base: AtomicPtr::new(start),
            len: AtomicUsize::new(if start.is_null() { 0 } else { len }),
            used: AtomicUsize::new(0),
            source: Source::Range,
        }
    }

    /// The process break, moved with libc's `sbrk`. Other code in the process (the C library's
    /// `malloc`) may move it too; every region is still one `sbrk` call's memory and nobody
    /// else's.
    #[cfg(all(unix, feature = "unix"))]
    pub const fn process() -> Sbrk {
        Sbrk {
            base: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
            source: Source::Process,
        }
    }

    /// Bytes not handed out yet (some of them may go to alignment padding); 0 for the process
    /// break, which has no fixed end.
    pub fn remaining(&self) -> usize {
        match self.region() {
            Some((_, len)) => len - self.used.load(Ordering::Relaxed),
            None => 0,
        }
    }

    /// The region's start and length, once known.
    fn region(&self) -> Option<(NonNull<u8>, usize)> {
        if let Some(base) = NonNull::new(self.base.load(Ordering::Acquire)) {
            return Some((base, self.len.load(Ordering::Relaxed)));
        }
        match self.source {
            #[cfg(target_os = "none")]
            Source::Linker => {
                let start = core::ptr::addr_of_mut!(__quarry_heap_start);
                let end = core::ptr::addr_of!(__quarry_heap_end).addr();
                let len = end.saturating_sub(start.addr());
                // Every thread that gets here stores the same two values.
                self.len.store(len, Ordering::Relaxed);
                self.base.store(start, Ordering::Release);
                Some((NonNull::new(start)?, len))
            }
            _ => None,
        }
    }

    /// `size` bytes from the process break, aligned to `align`.
    #[cfg(all(unix, feature = "unix"))]
    fn alloc_process(&self, size: usize, align: usize) -> Option<Region> {
        // Ask for enough to align inside whatever the break is when the call lands.
        let total = size.checked_add(align - 1)?;
        let increment = libc::intptr_t::try_from(total).ok()?;
        // SAFETY: `sbrk` with a positive increment only moves the break forward; the memory
        // between the old and the new break belongs to this call's caller.
        let old = unsafe { libc::sbrk(increment) };
        if old as isize == -1 {
            return None;
        }
        let old = old.cast::<u8>();
        let skip = super::align_up(old.addr(), align)? - old.addr();
        // SAFETY: `skip < align`, so `[old + skip, old + skip + size)` lies in the `total` bytes
        // just obtained; the pointer is derived from the one `sbrk` returned.
        let ptr = unsafe { NonNull::new_unchecked(old.add(skip)) };
        // Not known zero: a break lowered and raised again within one page keeps that page's old
        // bytes.
        Some(Region::pinned(ptr, size, false))
    }
}

// SAFETY: regions are disjoint pieces of the one region (`used` only moves forward, by
// compare-and-swap) or of separate `sbrk` calls, aligned as asked, always committed; the region is
// the caller's to hand out (`from_range`'s contract, the linker script, or the break). Memory is
// never given back.
unsafe impl OsBackend for Sbrk {
    fn page_size(&self) -> usize {
        64
    }

    fn alloc(&self, size: usize, align: usize, _commit: bool) -> Option<Region> {
        #[cfg(all(unix, feature = "unix"))]
        if self.source == Source::Process {
            return self.alloc_process(size, align);
        }
        let (base, len) = self.region()?;
        let start = bump(&self.used, base.addr().get(), len, size, align)?;
        // SAFETY: `bump` keeps `start + size <= len`, so the pointer stays inside the region (or
        // one past it), derived from its base.
        let ptr = unsafe { base.add(start) };
        // Not known zero: RAM holds whatever it held at reset.
        Some(Region::pinned(ptr, size, false))
    }

    fn grows_in_place(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_handed_out_front_to_back() {
        let mut memory = [0u64; 512];
        let start = memory.as_mut_ptr().cast::<u8>();
        // SAFETY: the array outlives the backend and nothing else touches it meanwhile.
        let sbrk = unsafe { Sbrk::from_range(start, 4096) };
        let a = sbrk.alloc(100, 1, false).unwrap();
        let b = sbrk.alloc(200, 256, false).unwrap();
        assert_eq!(a.ptr.as_ptr(), start);
        assert_eq!(b.ptr.addr().get() % 256, 0);
        assert!(b.ptr.addr().get() >= a.ptr.addr().get() + 100);
        assert!(a.pinned && a.committed && !a.zeroed);
        // SAFETY: both regions are ours and disjoint.
        unsafe {
            a.ptr.as_ptr().write_bytes(1, 100);
            b.ptr.as_ptr().write_bytes(2, 200);
        }
        assert!(sbrk.alloc(4096, 8, false).is_none(), "past the end");
        assert!(sbrk.alloc(usize::MAX, 8, false).is_none(), "overflow");
        let rest = sbrk.remaining();
        assert!(sbrk.alloc(rest, 1, false).is_some());
        assert_eq!(sbrk.remaining(), 0);
        assert!(sbrk.alloc(1, 1, false).is_none());
    }

    #[test]
    fn a_null_range_has_no_memory() {
        // SAFETY: a null start names no memory.
        let sbrk = unsafe { Sbrk::from_range(core::ptr::null_mut(), 4096) };
        assert_eq!(sbrk.remaining(), 0);
        assert!(sbrk.alloc(8, 8, false).is_none());
    }

    #[cfg(all(unix, feature = "unix", not(miri)))]
    #[test]
    fn the_process_break_gives_aligned_writable_memory() {
        let sbrk = Sbrk::process();
        let region = sbrk.alloc(10_000, 4096, false).unwrap();
        assert_eq!(region.ptr.addr().get() % 4096, 0);
        // SAFETY: the region is ours, committed and writable.
        unsafe {
            region.ptr.as_ptr().write_bytes(7, 10_000);
            assert_eq!(*region.ptr.as_ptr().add(9_999), 7);
        }
    }
}
