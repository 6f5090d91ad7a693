//! A backend for tests: fixed capacity, every call recorded, commit state tracked page by page,
//! decommitted memory poisoned, failures on demand, and a clock that moves only when told to.

extern crate std;

use super::{OsBackend, OutOfMemory, Purged, Region};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use std::alloc::Layout;
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

/// The byte the mock writes over memory that is not committed. A write into a decommitted page is
/// found later by [`Mock::verify_poison`].
pub const POISON: u8 = 0xD7;

/// How a [`Mock`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct MockOptions {
    /// Bytes of memory the mock manages in all.
    pub capacity: usize,
    /// Commit granule in bytes (a power of two).
    pub page_size: usize,
    /// Whether regions can be decommitted (`false`: regions are pinned, as on wasm or firmware).
    pub can_purge: bool,
    /// Whether regions can be given back.
    pub can_free: bool,
    /// Reported by [`OsBackend::has_virtual_reserve`].
    pub virtual_reserve: bool,
    /// Reported by [`OsBackend::has_overcommit`].
    pub overcommit: bool,
}

impl MockOptions {
    /// A mock of `capacity` bytes with 4 KiB pages that can purge and free, without virtual reserve.
    pub const fn new(capacity: usize) -> Self {
        MockOptions {
            capacity,
            page_size: 4096,
            can_purge: true,
            can_free: true,
            virtual_reserve: false,
            overcommit: false,
        }
    }
}

/// One call made to the mock, as recorded in [`Mock::calls`]. Offsets are from the start of the
/// mock's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// [`OsBackend::alloc`]; `offset` is `None` when it failed.
    Alloc {
        /// Size asked for.
        size: usize,
        /// Alignment asked for.
        align: usize,
        /// Whether commit was asked for.
        commit: bool,
        /// Where the region starts, or `None` for a failure.
        offset: Option<usize>,
    },
    /// [`OsBackend::commit`].
    Commit {
        /// Start of the range.
        offset: usize,
        /// Length of the range.
        size: usize,
        /// Whether it succeeded.
        ok: bool,
    },
    /// [`OsBackend::purge`].
    Purge {
        /// Start of the range.
        offset: usize,
        /// Length of the range.
        size: usize,
    },
    /// [`OsBackend::free`].
    Free {
        /// Start of the region.
        offset: usize,
        /// Length of the region.
        size: usize,
    },
}

struct State {
    /// Live regions as `(offset, size)`, sorted by offset, never overlapping.
    regions: Vec<(usize, usize)>,
    /// `committed[p]` ⇔ page `p` is committed. A page that is not committed holds `POISON` bytes
    /// unless something wrote into it illegally.
    committed: Vec<bool>,
    calls: Vec<Call>,
    /// Calls to `alloc` and `commit` still to fail.
    fail_next: usize,
    /// Every `fail_every`-th call to `alloc` and `commit` fails (0: none).
    fail_every: usize,
    /// Calls to `alloc` and `commit` since `fail_every` was last set.
    calls_counted: usize,
    /// Bytes the live regions may hold at most; `alloc` past it fails.
    budget: usize,
    /// Bugs in the caller's use of the backend (a bad range, a double free), as messages.
    misuse: Vec<&'static str>,
}

/// A backend over a heap buffer of fixed capacity, for tests.
///
/// Regions are found first-fit and reused after [`free`](OsBackend::free). Memory that is not
/// committed is filled with [`POISON`], and committing zeroes it, as `mmap` would.
pub struct Mock {
    /// The buffer, `options.capacity` bytes from the system allocator; every region pointer is
    /// derived from it.
    base: NonNull<u8>,
    layout: Layout,
    options: MockOptions,
    clock: AtomicU64,
    state: Mutex<State>,
}

// SAFETY: the buffer is only handed out in disjoint regions, and all bookkeeping is behind the mutex.
unsafe impl Send for Mock {}
// SAFETY: as above.
unsafe impl Sync for Mock {}

impl Mock {
    /// A mock of `capacity` bytes with the default [`MockOptions`].
    pub fn new(capacity: usize) -> Self {
        Self::with(MockOptions::new(capacity))
    }

    /// A mock with the given options.
    pub fn with(options: MockOptions) -> Self {
        assert!(options.page_size.is_power_of_two() && options.capacity > 0);
        let capacity = options.capacity.next_multiple_of(options.page_size);
        let layout = Layout::from_size_align(capacity, options.page_size).expect("mock layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let base = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        // SAFETY: `base` points to `capacity` freshly allocated bytes.
        unsafe { base.as_ptr().write_bytes(POISON, capacity) };
        let pages = capacity / options.page_size;
        Mock {
            base,
            layout,
            options: MockOptions {
                capacity,
                ..options
            },
            clock: AtomicU64::new(0),
            state: Mutex::new(State {
                regions: Vec::new(),
                committed: std::vec![false; pages],
                calls: Vec::new(),
                fail_next: 0,
                fail_every: 0,
                calls_counted: 0,
                budget: usize::MAX,
                misuse: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The offset of `ptr` from the start of the mock's memory.
    pub fn offset_of(&self, ptr: NonNull<u8>) -> usize {
        ptr.addr().get().wrapping_sub(self.base.addr().get())
    }

    /// Whether `[ptr, ptr + size)` lies inside the mock's memory.
    pub fn owns(&self, ptr: NonNull<u8>, size: usize) -> bool {
        let offset = self.offset_of(ptr);
        offset <= self.options.capacity && size <= self.options.capacity - offset
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// Makes the next `n` calls to `alloc` and `commit` fail.
    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    /// Makes every `k`-th call to `alloc` and `commit` fail, counted across both from this call on
    /// (`k` 1: every call; 0: none). Calls that [`fail_next`](Self::fail_next) fails count too.
    pub fn fail_every(&self, k: usize) {
        let mut state = self.state();
        state.fail_every = k;
        state.calls_counted = 0;
    }

    /// Makes `alloc` fail when the live regions would hold more than `bytes` (`usize::MAX`: no limit).
    pub fn set_budget(&self, bytes: usize) {
        self.state().budget = bytes;
    }

    /// Bytes held by live regions.
    pub fn bytes_held(&self) -> usize {
        self.state().regions.iter().map(|r| r.1).sum()
    }

    /// Number of live regions.
    pub fn live_regions(&self) -> usize {
        self.state().regions.len()
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// Whether every page touching `[ptr, ptr + size)` is committed.
    pub fn is_committed(&self, ptr: NonNull<u8>, size: usize) -> bool {
        let state = self.state();
        match self.pages(ptr, size) {
            Some(pages) => pages.into_iter().all(|p| state.committed[p]),
            None => false,
        }
    }

    /// Number of committed bytes.
    pub fn committed_bytes(&self) -> usize {
        self.state().committed.iter().filter(|c| **c).count() * self.options.page_size
    }

    /// Checks that every page that is not committed still holds only [`POISON`]; returns the offset
    /// of the first byte that does not (something wrote to memory it did not own).
    pub fn verify_poison(&self) -> Result<(), usize> {
        let state = self.state();
        let page = self.options.page_size;
        // Whole pages are compared with `memcmp` (slice equality), which stays fast in debug
        // builds; the byte is looked for only in a page that differs.
        let poisoned = std::vec![POISON; page];
        for (p, _) in state.committed.iter().enumerate().filter(|(_, c)| !**c) {
            // SAFETY: page `p` lies inside the buffer, and the mock is the only owner of uncommitted
            // pages, which nobody may access.
            let bytes = unsafe {
                core::slice::from_raw_parts(self.base.as_ptr().add(p * page).cast_const(), page)
            };
            if bytes != poisoned.as_slice() {
                let i = bytes.iter().position(|b| *b != POISON).unwrap_or(0);
                return Err(p * page + i);
            }
        }
        Ok(())
    }

    /// Misuses of the backend seen so far (ranges outside any region, double frees).
    pub fn misuse(&self) -> Vec<&'static str> {
        self.state().misuse.clone()
    }

    /// The page indices that `[ptr, ptr + size)` touches, if the range is inside the buffer.
    fn pages(&self, ptr: NonNull<u8>, size: usize) -> Option<core::ops::Range<usize>> {
        if !self.owns(ptr, size) {
            return None;
        }
        let offset = self.offset_of(ptr);
        let page = self.options.page_size;
        Some(offset / page..(offset + size).div_ceil(page))
    }

    /// Whether `[offset, offset + size)` lies inside one live region.
    fn in_region(state: &State, offset: usize, size: usize) -> bool {
        state
            .regions
            .iter()
            .any(|&(start, len)| offset >= start && offset + size <= start + len)
    }

    /// Marks pages committed (zeroing them) or decommitted (poisoning them).
    fn set_committed(&self, state: &mut State, pages: core::ops::Range<usize>, committed: bool) {
        let page = self.options.page_size;
        for p in pages {
            if state.committed[p] != committed {
                state.committed[p] = committed;
                let fill = if committed { 0 } else { POISON };
                // SAFETY: page `p` is inside the buffer; the caller of commit/purge guarantees nobody
                // uses the range meanwhile.
                unsafe { self.base.as_ptr().add(p * page).write_bytes(fill, page) };
            }
        }
    }

    /// Counts a call to `alloc` or `commit` and says whether it is to fail: consumes one of
    /// `fail_next`'s failures if any is pending, else fails every `fail_every`-th call.
    fn take_failure(state: &mut State) -> bool {
        state.calls_counted = state.calls_counted.wrapping_add(1);
        let periodic = state.fail_every > 0 && state.calls_counted % state.fail_every == 0;
        if state.fail_next > 0 {
            state.fail_next -= 1;
            true
        } else {
            periodic
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        // SAFETY: `base` was allocated with `layout` in `with` and is freed only here.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

// SAFETY: regions are disjoint (the `regions` list is checked first-fit), aligned as asked, inside the
// buffer that lives as long as the mock; commit makes pages committed; purge decommits and says so.
// Nothing here calls back into an allocator under test (the mock's own bookkeeping uses the system
// allocator of the test process, which is never the allocator under test).
unsafe impl OsBackend for Mock {
    const COMMITS: bool = true;

    fn page_size(&self) -> usize {
        self.options.page_size
    }

    fn alloc(&self, size: usize, align: usize, commit: bool) -> Option<Region> {
        let mut state = self.state();
        let page = self.options.page_size;
        let found = if Self::take_failure(&mut state) {
            None
        } else {
            self.find_gap(&state, size.max(1).next_multiple_of(page), align.max(page))
        };
        let found = found.filter(|&(_, len)| {
            state.regions.iter().map(|r| r.1).sum::<usize>() + len <= state.budget
        });
        state.calls.push(Call::Alloc {
            size,
            align,
            commit,
            offset: found.map(|f| f.0),
        });
        let (offset, len) = found?;
        let at = state.regions.partition_point(|r| r.0 < offset);
        state.regions.insert(at, (offset, len));
        if commit {
            self.set_committed(&mut state, offset / page..(offset + len) / page, true);
        }
        Some(Region {
            // SAFETY: `offset + len <= capacity`, so the pointer is inside the buffer.
            ptr: unsafe { self.base.add(offset) },
            size: len,
            committed: commit,
            zeroed: commit,
            pinned: !self.options.can_purge,
        })
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, size: usize) -> Result<bool, OutOfMemory> {
        let mut state = self.state();
        let offset = self.offset_of(ptr);
        if !Self::in_region(&state, offset, size) {
            state.misuse.push("commit outside a live region");
            return Err(OutOfMemory);
        }
        let ok = !Self::take_failure(&mut state);
        state.calls.push(Call::Commit { offset, size, ok });
        if !ok {
            return Err(OutOfMemory);
        }
        let pages = self.pages(ptr, size).ok_or(OutOfMemory)?;
        let all_new = pages.clone().all(|p| !state.committed[p]);
        self.set_committed(&mut state, pages, true);
        Ok(all_new)
    }

    unsafe fn purge(&self, ptr: NonNull<u8>, size: usize, _allow_reset: bool) -> Purged {
        let mut state = self.state();
        let offset = self.offset_of(ptr);
        state.calls.push(Call::Purge { offset, size });
        if !self.options.can_purge || !Self::in_region(&state, offset, size) {
            if self.options.can_purge {
                state.misuse.push("purge outside a live region");
            }
            return Purged {
                needs_recommit: false,
                zeroed: false,
            };
        }
        let page = self.options.page_size;
        // Only whole pages inside the range are decommitted; the range reads as zero afterwards
        // only if it is made of whole pages.
        let first = offset.div_ceil(page);
        let end = (offset + size) / page;
        if first >= end {
            return Purged {
                needs_recommit: false,
                zeroed: false,
            };
        }
        self.set_committed(&mut state, first..end, false);
        Purged {
            needs_recommit: true,
            zeroed: first * page == offset && end * page == offset + size,
        }
    }

    fn can_purge(&self) -> bool {
        self.options.can_purge
    }

    fn can_free(&self) -> bool {
        self.options.can_free
    }

    unsafe fn free(&self, region: Region) -> bool {
        if !self.options.can_free {
            return false;
        }
        let mut state = self.state();
        let offset = self.offset_of(region.ptr);
        state.calls.push(Call::Free {
            offset,
            size: region.size,
        });
        match state
            .regions
            .iter()
            .position(|&r| r == (offset, region.size))
        {
            Some(i) => {
                state.regions.remove(i);
                let page = self.options.page_size;
                self.set_committed(
                    &mut state,
                    offset / page..(offset + region.size) / page,
                    false,
                );
                true
            }
            None => {
                state.misuse.push("free of a region that is not live");
                false
            }
        }
    }

    fn now_ms(&self) -> Option<u64> {
        Some(self.clock.load(Ordering::SeqCst))
    }

    fn has_virtual_reserve(&self) -> bool {
        self.options.virtual_reserve
    }

    fn has_overcommit(&self) -> bool {
        self.options.overcommit
    }
}

impl Mock {
    /// First gap of `len` bytes whose address is a multiple of `align`, as `(offset, len)`.
    fn find_gap(&self, state: &State, len: usize, align: usize) -> Option<(usize, usize)> {
        let base = self.base.addr().get();
        let mut from = 0usize;
        let gaps = state
            .regions
            .iter()
            .map(|&(start, size)| (start, start + size))
            .chain(core::iter::once((
                self.options.capacity,
                self.options.capacity,
            )));
        for (next_start, next_end) in gaps {
            let aligned = base.checked_add(from)?.checked_next_multiple_of(align)? - base;
            if aligned
                .checked_add(len)
                .is_some_and(|end| end <= next_start)
            {
                return Some((aligned, len));
            }
            from = next_end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_tracks_commit_and_poisons() {
        let mock = Mock::new(64 * 1024);
        let r = mock.alloc(10_000, 8192, false).unwrap();
        assert_eq!(r.size, 12 * 1024, "rounded up to pages");
        assert_eq!(r.ptr.addr().get() % 8192, 0);
        assert!(!r.committed && !mock.is_committed(r.ptr, r.size));
        // SAFETY: inside the live region.
        assert_eq!(unsafe { mock.commit(r.ptr, 4096) }, Ok(true));
        assert!(mock.is_committed(r.ptr, 4096));
        // SAFETY: the first page is committed and ours.
        unsafe { r.ptr.as_ptr().write_bytes(7, 4096) };
        // SAFETY: inside the live region, unused.
        let purged = unsafe { mock.purge(r.ptr, 4096, true) };
        assert!(purged.needs_recommit);
        assert_eq!(mock.verify_poison(), Ok(()));
        // SAFETY: deliberately writes into a decommitted page of our own region, to see it found.
        unsafe { r.ptr.as_ptr().add(100).write(1) };
        assert_eq!(mock.verify_poison(), Err(mock.offset_of(r.ptr) + 100));
        // SAFETY: the region is live and nobody uses it.
        assert!(unsafe { mock.free(r) });
        // SAFETY: freed already: the mock refuses and remembers.
        assert!(!unsafe { mock.free(r) });
        assert_eq!(mock.misuse().len(), 1);
        let calls = mock.calls();
        assert!(matches!(
            calls[0],
            Call::Alloc {
                size: 10_000,
                align: 8192,
                commit: false,
                offset: Some(_)
            }
        ));
        assert!(matches!(
            calls[1],
            Call::Commit {
                size: 4096,
                ok: true,
                ..
            }
        ));
        assert!(matches!(calls[2], Call::Purge { size: 4096, .. }));
        assert_eq!(calls.len(), 5);
    }

    #[test]
    fn injected_failures_and_budget() {
        let mock = Mock::new(64 * 1024);
        mock.fail_next(2);
        assert!(mock.alloc(4096, 8, true).is_none());
        assert!(mock.alloc(4096, 8, true).is_none());
        let r = mock.alloc(4096, 8, false).unwrap();
        mock.fail_next(1);
        // SAFETY: inside the live region.
        assert!(unsafe { mock.commit(r.ptr, 4096) }.is_err());
        assert!(!mock.is_committed(r.ptr, 4096));
        mock.set_budget(8192);
        assert!(mock.alloc(4096, 8, true).is_some());
        assert!(mock.alloc(4096, 8, true).is_none(), "over budget");
        mock.set_budget(usize::MAX);
        assert!(mock.alloc(4096, 8, true).is_some());
        assert!(mock.alloc(1 << 20, 8, true).is_none(), "over capacity");
        assert_eq!(mock.bytes_held(), 3 * 4096);
        mock.advance_ms(5);
        assert_eq!(mock.now_ms(), Some(5));
    }

    #[test]
    fn every_kth_call_fails_across_alloc_and_commit() {
        let mock = Mock::new(256 * 1024);
        mock.fail_every(3);
        // Calls 1 and 2 succeed, call 3 (a commit) fails, 4 and 5 succeed, 6 (an alloc) fails.
        let a = mock.alloc(4096, 8, false).unwrap();
        let b = mock.alloc(8192, 8, false).unwrap();
        // SAFETY: inside a live region.
        assert!(unsafe { mock.commit(a.ptr, 4096) }.is_err());
        assert!(!mock.is_committed(a.ptr, 4096));
        // SAFETY: inside live regions.
        assert_eq!(unsafe { mock.commit(a.ptr, 4096) }, Ok(true));
        // SAFETY: as above.
        assert_eq!(unsafe { mock.commit(b.ptr, 8192) }, Ok(true));
        assert!(mock.alloc(4096, 8, true).is_none());
        assert_eq!(mock.live_regions(), 2, "a failed alloc holds nothing");
        // Setting it again restarts the count; `fail_next` failures count as calls.
        mock.fail_every(2);
        mock.fail_next(1);
        assert!(mock.alloc(4096, 8, true).is_none(), "fail_next");
        assert!(mock.alloc(4096, 8, true).is_none(), "the 2nd call");
        assert!(mock.alloc(4096, 8, true).is_some());
        assert!(mock.alloc(4096, 8, true).is_none(), "the 4th call");
        mock.fail_every(1);
        for _ in 0..5 {
            assert!(mock.alloc(4096, 8, true).is_none());
        }
        mock.fail_every(0);
        for _ in 0..5 {
            assert!(mock.alloc(4096, 8, true).is_some());
        }
        let failed = mock
            .calls()
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Call::Alloc { offset: None, .. } | Call::Commit { ok: false, .. }
                )
            })
            .count();
        assert_eq!(failed, 2 + 3 + 5);
        assert_eq!(mock.live_regions(), 2 + 1 + 5);
        assert_eq!(mock.verify_poison(), Ok(()));
        assert!(mock.misuse().is_empty());
    }
}
