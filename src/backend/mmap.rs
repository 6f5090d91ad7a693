//! Virtual memory from the OS on unix hosts: `mmap` to reserve, `mprotect` to commit, `madvise`
//! to give physical memory back, `munmap` to free (mimalloc's `os.c` and `prim/unix`, reduced to
//! what the arena layer asks for).

use super::{OsBackend, OutOfMemory, Purged, Region};
use crate::atomic::{AtomicU8, AtomicUsize, Ordering};
use core::ptr::{self, NonNull};

/// Anonymous private mappings: address space reserved without memory behind it, committed as the
/// arenas hand blocks out, and purged with `madvise(MADV_DONTNEED)` after the purge delay, which
/// gives the physical pages back to the OS (the resident set shrinks) and leaves them reading as
/// zero. Regions are freed with `munmap`.
///
/// - A region asked for without commit is mapped `PROT_NONE` with `MAP_NORESERVE`: it costs
///   address space only. [`commit`](OsBackend::commit) makes a range readable and writable.
/// - A purge of committed memory keeps it mapped and writable (a *reset*: no commit is needed
///   before reuse); a purge of memory not all committed *decommits* it (`PROT_NONE` again).
/// - Whether reserved arenas are committed up front is [`Config::eager_commit`]'s choice; with
///   `EagerCommit::IfOvercommit` it depends on `/proc/sys/vm/overcommit_memory` (Linux: modes 0
///   and 1 overcommit, mode 2 does not).
///
/// [`Config::eager_commit`]: crate::Config::eager_commit
pub struct Mmap {
    /// The OS page size, read on first use (0 before).
    page: AtomicUsize,
    /// Whether the OS overcommits: 0 not known yet, 1 no, 2 yes.
    overcommit: AtomicU8,
}

impl Mmap {
    /// The backend; it maps nothing until the first allocation.
    pub const fn new() -> Self {
        Mmap {
            page: AtomicUsize::new(0),
            overcommit: AtomicU8::new(0),
        }
    }

    fn page(&self) -> usize {
        match self.page.load(Ordering::Relaxed) {
            0 => {
                // SAFETY: `sysconf` reads a system setting and touches no memory of ours.
                let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
                let page = if page > 0 { page as usize } else { 4096 };
                self.page.store(page, Ordering::Relaxed);
                page
            }
            page => page,
        }
    }

    /// The whole pages inside `[ptr, ptr + size)`: their start and length (length 0 if none).
    fn inner_pages(&self, ptr: NonNull<u8>, size: usize) -> (*mut libc::c_void, usize) {
        let page = self.page();
        let start = ptr.addr().get();
        let first = start.next_multiple_of(page);
        let end = (start + size) & !(page - 1);
        let len = end.saturating_sub(first);
        (ptr.as_ptr().wrapping_add(first - start).cast(), len)
    }

    /// Reads `/proc/sys/vm/overcommit_memory` (Linux); `false` where it cannot be read.
    fn read_overcommit() -> bool {
        let path = c"/proc/sys/vm/overcommit_memory";
        // SAFETY: a valid NUL-terminated path; the descriptor is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`, which we own.
        let n = unsafe { libc::read(fd, ptr::from_mut(&mut byte).cast(), 1) };
        // SAFETY: `fd` is open and ours.
        unsafe { libc::close(fd) };
        n == 1 && (byte == b'0' || byte == b'1')
    }
}

impl Default for Mmap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every region is a fresh anonymous mapping of its own (disjoint, zero-filled, aligned as
// asked by trimming an over-sized mapping); `commit` and `purge` act on whole pages inside a
// region and report what they did; `free` unmaps exactly a region; nothing here allocates or
// panics.
unsafe impl OsBackend for Mmap {
    const COMMITS: bool = true;

    fn page_size(&self) -> usize {
        self.page()
    }

    fn alloc(&self, size: usize, align: usize, commit: bool) -> Option<Region> {
        let page = self.page();
        let size = size.checked_next_multiple_of(page)?;
        let align = align.max(page);
        // Over-map by the alignment, then unmap the unaligned head and the tail.
        let total = size.checked_add(align - page)?;
        let prot = if commit {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_NONE
        };
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choice.
        let base = unsafe { libc::mmap(ptr::null_mut(), total, prot, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base.cast::<u8>();
        let head = base.addr().next_multiple_of(align) - base.addr();
        let tail = total - head - size;
        // SAFETY: the head and the tail are whole pages of the mapping just made, used by nobody.
        unsafe {
            if head > 0 {
                libc::munmap(base.cast(), head);
            }
            if tail > 0 {
                libc::munmap(base.add(head + size).cast(), tail);
            }
        }
        Some(Region {
            ptr: NonNull::new(base.wrapping_add(head))?,
            size,
            committed: commit,
            zeroed: true,
            pinned: false,
        })
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, size: usize) -> Result<bool, OutOfMemory> {
        let page = self.page();
        let start = ptr.addr().get() & !(page - 1);
        let end = (ptr.addr().get() + size).next_multiple_of(page);
        let from = ptr.as_ptr().wrapping_sub(ptr.addr().get() - start);
        // SAFETY: the pages lie inside a live region of ours (caller).
        let done =
            unsafe { libc::mprotect(from.cast(), end - start, libc::PROT_READ | libc::PROT_WRITE) };
        // Whether the range reads as zero is not known here (part of it may have been in use):
        // the arena's dirty bits say that.
        if done == 0 {
            Ok(false)
        } else {
            Err(OutOfMemory)
        }
    }

    unsafe fn purge(&self, ptr: NonNull<u8>, size: usize, allow_reset: bool) -> Purged {
        let (start, len) = self.inner_pages(ptr, size);
        if len == 0 {
            return Purged {
                needs_recommit: false,
                zeroed: false,
            };
        }
        let whole = len == size;
        // SAFETY: whole pages inside a live region of ours that nobody uses (caller).
        let decommitted =
            !allow_reset && unsafe { libc::mprotect(start, len, libc::PROT_NONE) } == 0;
        // SAFETY: as above. On a private anonymous mapping the pages read as zero afterwards.
        let dropped = unsafe { libc::madvise(start, len, libc::MADV_DONTNEED) } == 0;
        Purged {
            needs_recommit: decommitted,
            zeroed: dropped && whole,
        }
    }

    fn can_purge(&self) -> bool {
        true
    }

    fn can_free(&self) -> bool {
        true
    }

    unsafe fn free(&self, region: Region) -> bool {
        // SAFETY: the region is one of ours, mapped by `alloc` with exactly this start and size
        // (caller), and nobody uses it any more.
        unsafe { libc::munmap(region.ptr.as_ptr().cast(), region.size) == 0 }
    }

    fn now_ms(&self) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: writes the time into `ts`, which we own.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
            return None;
        }
        Some(ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
    }

    fn has_virtual_reserve(&self) -> bool {
        true
    }

    fn has_overcommit(&self) -> bool {
        match self.overcommit.load(Ordering::Relaxed) {
            0 => {
                let yes = Self::read_overcommit();
                self.overcommit.store(1 + yes as u8, Ordering::Relaxed);
                yes
            }
            known => known == 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_aligned_zero_and_reserved_until_committed() {
        let mmap = Mmap::new();
        let page = mmap.page_size();
        let region = mmap.alloc(3 * page, 1 << 20, false).unwrap();
        assert_eq!(region.ptr.addr().get() % (1 << 20), 0);
        assert!(!region.committed && region.zeroed && !region.pinned);
        // SAFETY: inside the region, which nobody else uses.
        unsafe {
            assert_eq!(mmap.commit(region.ptr.add(page), page), Ok(false));
            let p = region.ptr.add(page);
            p.write(7);
            assert_eq!(p.read(), 7);
            assert!(mmap.free(region));
        }
    }

    #[test]
    fn a_reset_gives_zero_pages_and_a_decommit_needs_a_commit() {
        let mmap = Mmap::new();
        let page = mmap.page_size();
        let region = mmap.alloc(4 * page, page, true).unwrap();
        // SAFETY: the region is committed, ours, and `4 * page` bytes long.
        unsafe {
            region.ptr.as_ptr().write_bytes(0xEE, 4 * page);
            let reset = mmap.purge(region.ptr, 2 * page, true);
            assert_eq!(
                reset,
                Purged {
                    needs_recommit: false,
                    zeroed: true
                }
            );
            assert_eq!(region.ptr.read(), 0, "reset pages read as zero");
            assert_eq!(
                region.ptr.add(2 * page).read(),
                0xEE,
                "past the range: kept"
            );

            let second = region.ptr.add(2 * page);
            let decommit = mmap.purge(second, 2 * page, false);
            assert!(decommit.needs_recommit && decommit.zeroed);
            mmap.commit(second, 2 * page).unwrap();
            assert_eq!(second.read(), 0);

            // Less than a page: nothing happens.
            let partial = mmap.purge(region.ptr.add(1), page, true);
            assert!(!partial.needs_recommit && !partial.zeroed);
            assert!(mmap.free(region));
        }
    }

    #[test]
    fn the_clock_moves_forward() {
        let mmap = Mmap::new();
        let a = mmap.now_ms().unwrap();
        let b = mmap.now_ms().unwrap();
        assert!(b >= a);
    }
}
