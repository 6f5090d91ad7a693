//! The arena registry: up to `MAX_ARENAS` arenas, found by id, reserved on demand, with a fallback to
//! the backend when none has room.
//!
//! Follows the seed's `_mi_arena_alloc_aligned`, `mi_arena_reserve`, `_mi_arena_free`,
//! `mi_manage_os_memory_ex`, `mi_reserve_os_memory_ex`, `_mi_arena_contains`, `mi_arena_area`,
//! `_mi_arena_unsafe_destroy_all` and `mi_debug_show_arenas`. Arena ids are registry index + 1;
//! id 0 ([`ArenaId::ANY`]) asks for any arena that is not exclusive.

mod handle;
#[cfg(not(small_code))]
mod lookup;
mod picture;
mod report;
mod reserve;
#[cfg(test)]
mod tests;

pub use handle::ArenaHandle;
pub use picture::BlockState;
pub use report::ArenaStats;
pub use reserve::ReserveError;

use crate::arena::{Arena, Purging};
use crate::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use crate::backend::{align_up, OsBackend, Region};
use crate::config::Config;
use crate::error::{ErrorHook, FreeError, FreeErrorKind};
use crate::memid::{Allocation, ArenaId, MemId, MemKind};
use crate::meta::MetaArea;
use core::fmt;
use core::ptr::NonNull;
#[cfg(not(small_code))]
use lookup::AddressOrder;
use report::Report;

/// Releases per look at the clock for purges that are due (see [`Arenas::release`]).
const PURGE_PACE: usize = 16;

/// The arena registry over a backend `B`: at most `MAX_ARENAS` arenas, with `META_BYTES` bytes of
/// static metadata area for their descriptors and bitmaps.
///
/// Const-constructible, so it can be a `static`. It keeps its arenas' descriptors inside itself, so
/// once it has handed out memory it must stay at one address: a registry that finds itself moved
/// refuses to allocate and reports every free as [`FreeErrorKind::NotOurs`].
pub struct Arenas<B: OsBackend, const MAX_ARENAS: usize = 64, const META_BYTES: usize = 4096> {
    backend: B,
    config: Config,
    /// Slot `i` holds the arena with id `i + 1` once it is published, or null. A published pointer
    /// never changes and its descriptor never moves, until `destroy_all`.
    table: [AtomicPtr<Arena>; MAX_ARENAS],
    /// Slots taken so far. It may exceed `MAX_ARENAS` for a moment while an addition fails; readers
    /// look at `min(count, MAX_ARENAS)` slots and skip the null ones.
    count: AtomicUsize,
    /// The published arenas in address order, for finding the arena of an address.
    #[cfg(not(small_code))]
    order: AddressOrder<MAX_ARENAS>,
    /// Where descriptors and bitmaps come from first.
    meta: MetaArea<META_BYTES>,
    /// The address of `self` when it first handed out memory (0 before): every pointer in `table`
    /// may point into `self.meta`, so the registry works only there.
    home: AtomicUsize,
    /// For a backend that grows in place: slot + 1 of the arena that new memory may extend (the
    /// last one reserved on demand), or 0. Read and written only while `growing` is held.
    growable: AtomicUsize,
    /// Held while an arena is reserved or grown on demand over a backend that grows in place.
    growing: AtomicBool,
    /// Held by the one thread that purges at a time.
    purging: AtomicBool,
    /// Releases so far (a tally kept with plain loads and stores: only a pace for purging).
    releases: AtomicUsize,
    report: Report,
}

impl<B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize>
    Arenas<B, MAX_ARENAS, META_BYTES>
{
    /// An empty registry over `backend`. Panics (at compile time in a `static`) if `config` is
    /// invalid.
    pub const fn new(backend: B, config: Config) -> Self {
        config.validate();
        Arenas {
            backend,
            config,
            table: [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_ARENAS],
            count: AtomicUsize::new(0),
            #[cfg(not(small_code))]
            order: AddressOrder::new(),
            meta: MetaArea::new(),
            home: AtomicUsize::new(0),
            growable: AtomicUsize::new(0),
            growing: AtomicBool::new(false),
            purging: AtomicBool::new(false),
            releases: AtomicUsize::new(0),
            report: Report::new(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The block size in bytes.
    #[inline]
    pub fn block_size(&self) -> usize {
        self.config.block_size
    }

    #[inline]
    fn block_shift(&self) -> u32 {
        self.config.block_size.trailing_zeros()
    }

    /// Whether the registry is at the address where it first handed out memory (recording it now if
    /// it has not handed out any yet).
    #[inline]
    fn at_home(&self) -> bool {
        let here = (self as *const Self).addr();
        match self.home.load(Ordering::Relaxed) {
            home if home == here => true,
            0 => match self
                .home
                .compare_exchange(0, here, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => true,
                Err(home) => home == here,
            },
            _ => false,
        }
    }

    /// Number of table slots that may hold an arena.
    #[inline]
    fn slots(&self) -> usize {
        self.count.load(Ordering::Acquire).min(MAX_ARENAS)
    }

    /// The arena in slot `index`, if one is published there.
    #[inline]
    fn slot(&self, index: usize) -> Option<&Arena> {
        let ptr = self.table.get(index)?.load(Ordering::Acquire);
        // SAFETY: a non-null slot points to an initialised descriptor that is never moved or freed
        // while it is published (invariant on `table`), and the registry is at home, where the
        // descriptors are (callers check `at_home` before handing the reference on).
        unsafe { ptr.as_ref() }
    }

    /// The published arenas.
    fn arenas(&self) -> impl Iterator<Item = &Arena> + '_ {
        let ok = self.at_home();
        (0..if ok { self.slots() } else { 0 }).filter_map(move |i| self.slot(i))
    }

    /// Number of arenas in the registry.
    pub fn arena_count(&self) -> usize {
        self.arenas().count()
    }

    /// Allocates at least `size` bytes aligned to `align` (a power of two), committed if `commit` is
    /// asked, from the arena `arena` or, for [`ArenaId::ANY`], from any arena that is not exclusive.
    ///
    /// When no arena has room, a new arena is reserved (unless a specific arena was asked for), and
    /// when that is not possible the memory comes from the backend directly (unless
    /// [`Config::limit_os_alloc`] is set or a specific arena was asked for). Returns `None` when the
    /// size is 0, the alignment is not a power of two, the sizes overflow, or there is no memory; no
    /// block stays claimed then.
    pub fn alloc(
        &self,
        size: usize,
        align: usize,
        commit: bool,
        arena: ArenaId,
    ) -> Option<Allocation> {
        let (blocks, bytes) = self.blocks_for(size, align)?;
        if let Some(found) = self.claim(blocks, align, commit, arena) {
            return Some(found);
        }
        self.alloc_elsewhere(size, bytes, align, commit, arena)
    }

    /// Allocates like [`alloc`](Self::alloc), committed, but always in an arena, never straight
    /// from the backend: when neither an arena nor the reservation policy has room for a request
    /// of any arena, an arena of just the size needed is reserved. The layer above relies on this
    /// to find every allocation's arena (and its block tags) from an address.
    #[inline(never)]
    pub(crate) fn alloc_in_arena(
        &self,
        size: usize,
        align: usize,
        arena: ArenaId,
    ) -> Option<Allocation> {
        let (blocks, bytes) = self.blocks_for(size, align)?;
        if let Some(found) = self.claim(blocks, align, true, arena) {
            return Some(found);
        }
        if arena != ArenaId::ANY {
            return None;
        }
        self.alloc_in_new_arena(bytes, blocks, align)
    }

    /// Claims the run in the arena `arena` or, for [`ArenaId::ANY`], in the first arena that is
    /// not exclusive and has room. One copy for every caller: it is on the slow paths only (new
    /// pages, large objects), and a copy in each made up a tenth of a wasm module.
    #[inline(never)]
    fn claim(
        &self,
        blocks: usize,
        align: usize,
        commit: bool,
        arena: ArenaId,
    ) -> Option<Allocation> {
        let slots = self.slots();
        let (first, end) = match arena.index() {
            Some(index) => (index, slots.min(index.saturating_add(1))),
            None => (0, slots),
        };
        (first..end).find_map(|index| {
            let found = self.slot(index)?;
            if !found.id.suits(found.exclusive, arena) {
                return None;
            }
            found.alloc(blocks, align, commit, &self.backend)
        })
    }

    #[cold]
    #[inline(never)]
    fn alloc_in_new_arena(&self, bytes: usize, blocks: usize, align: usize) -> Option<Allocation> {
        if let Some(found) = self.reserve_and_claim(bytes, blocks, align, true) {
            return Some(found);
        }
        if self.grows_on_demand() {
            // The arenas grew by just what the request needs, or the backend has no more.
            return None;
        }
        let size = bytes.checked_add(align.saturating_sub(self.block_size()))?;
        let id = self.reserve(size, false, false).ok()?;
        self.claim(blocks, align, true, id)
    }

    /// Reserves (or grows) an arena on demand and claims the run there. Other threads may claim
    /// the new memory first (a grown arena has just what this request needs): then every arena is
    /// tried again, and the registry grows again, a few times, as each round some thread got
    /// memory.
    #[cold]
    #[inline(never)]
    fn reserve_and_claim(
        &self,
        bytes: usize,
        blocks: usize,
        align: usize,
        commit: bool,
    ) -> Option<Allocation> {
        const ROUNDS: usize = 8;
        for _ in 0..ROUNDS {
            self.reserve_on_demand(bytes, align)?;
            if let Some(found) = self.claim(blocks, align, commit, ArenaId::ANY) {
                return Some(found);
            }
        }
        None
    }

    /// The blocks and bytes of a request, if it is one the registry can serve at all: a size of 1
    /// to `isize::MAX` bytes (no object can be larger, and it keeps the block arithmetic from
    /// overflowing), a power-of-two alignment, and the registry at home. Shifts, not division: the
    /// compiler cannot know that the block size is a power of two.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn blocks_for(&self, size: usize, align: usize) -> Option<(usize, usize)> {
        if size.wrapping_sub(1) >= isize::MAX as usize
            || !align.is_power_of_two()
            || !self.at_home()
        {
            return None;
        }
        let blocks = ((size - 1) >> self.block_shift()) + 1;
        Some((blocks, blocks << self.block_shift()))
    }

    /// When no arena has room: a new arena, or the backend directly.
    #[cold]
    #[inline(never)]
    fn alloc_elsewhere(
        &self,
        size: usize,
        bytes: usize,
        align: usize,
        commit: bool,
        arena: ArenaId,
    ) -> Option<Allocation> {
        if arena != ArenaId::ANY {
            return None;
        }
        let blocks = bytes >> self.block_shift();
        if let Some(found) = self.reserve_and_claim(bytes, blocks, align, commit) {
            return Some(found);
        }
        if self.config.limit_os_alloc {
            return None;
        }
        self.alloc_direct(size, align, commit)
    }

    /// Allocates straight from the backend.
    fn alloc_direct(&self, size: usize, align: usize, commit: bool) -> Option<Allocation> {
        let page = self.backend.page_size();
        let size = align_up(size, page)?;
        let region = self.backend.alloc(size, align.max(page), commit)?;
        Report::count(&self.report.os_allocs);
        Some(Allocation {
            ptr: region.ptr,
            size: region.size,
            memid: MemId {
                kind: MemKind::Os,
                initially_committed: region.committed,
                initially_zero: region.zeroed,
                pinned: region.pinned,
            },
        })
    }

    /// Gives an allocation back. A bad free (memory that is not ours, a double free, a run past an
    /// arena's end, a pointer that does not start the allocation) changes nothing: it is counted,
    /// passed to the error hook and returned.
    ///
    /// # Safety
    /// Nobody uses the memory after this call (if it was valid).
    pub unsafe fn free(&self, allocation: &Allocation) -> Result<(), FreeError> {
        // The common case, a valid free of arena blocks, takes only the checks that prove it valid.
        if let MemKind::Arena { id, block } = allocation.memid.kind {
            if let Some(arena) = self.published(id) {
                if self.release(arena, allocation.ptr, block, allocation.size) {
                    return Ok(());
                }
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.free_slow(allocation) }
    }

    /// What a release needs to schedule purges: the backend and the configured delay.
    #[inline(always)]
    pub(crate) fn purging(&self) -> Purging<'_, B> {
        Purging {
            backend: &self.backend,
            delay_ms: self.config.purge_delay(),
            clock: None,
        }
    }

    /// Gives back the run of `size` bytes at `ptr`, block `block` of `arena` (see
    /// [`Arena::release`]), scheduling its purge. Every [`PURGE_PACE`]th release also purges
    /// what is due, first (so that a purge that is due is not put off by this run's schedule):
    /// reading the clock costs about as much as the rest of a release.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn release(
        &self,
        arena: &Arena,
        ptr: NonNull<u8>,
        block: usize,
        size: usize,
    ) -> bool {
        let mut purging = self.purging();
        if purging.enabled() && purging.delay_ms > 0 {
            let n = self.releases.load(Ordering::Relaxed);
            self.releases.store(n.wrapping_add(1), Ordering::Relaxed);
            if n % PURGE_PACE == 0 && self.arenas().any(Arena::purge_pending) {
                purging = purging.read_clock();
                self.purge_arenas(false, false, purging);
            }
        }
        arena.release(ptr, block, size, purging)
    }

    /// Purges the freed blocks that are due, or, if `force`d, every freed block scheduled for a
    /// purge, in every arena: their physical memory goes back to the backend. Returns whether
    /// anything was purged. Nothing happens over a backend without commit state, when purging is
    /// off (`purge_delay_ms` below 0), or while another thread purges.
    pub fn collect(&self, force: bool) -> bool {
        self.purge_arenas(force, true, self.purging())
    }

    /// Purges due blocks (all scheduled ones if `force`d), in every arena if `all`, else in the
    /// first arena that has any. One thread at a time: a thread that finds another purging leaves
    /// it to that one.
    #[inline(never)]
    fn purge_arenas(&self, force: bool, all: bool, purging: Purging<'_, B>) -> bool {
        // The guard and the clock only when some arena has a purge scheduled.
        if !purging.enabled()
            || !(force || self.arenas().any(Arena::purge_pending))
            || self
                .purging
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let now = purging.now();
        let mut any = false;
        for arena in self.arenas() {
            if arena.try_purge(now, force, purging) {
                any = true;
                if !all {
                    break;
                }
            }
        }
        self.purging.store(false, Ordering::Release);
        any
    }

    /// Counts a bad free found by the layer above and passes it to the error hook.
    #[cold]
    pub(crate) fn report_bad_free(&self, kind: FreeErrorKind, addr: usize, size: usize) {
        self.report.bad_free(kind, addr, size);
    }

    /// The arena with id `id`, if the registry is at home and the arena is published.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn published(&self, id: ArenaId) -> Option<&Arena> {
        // `ANY` (0) wraps around to an index past the table.
        let index = (id.get() as usize).wrapping_sub(1);
        if index >= MAX_ARENAS || !self.at_home() {
            return None;
        }
        self.slot(index)
    }

    /// A direct allocation, or a bad free: says which kind of bad free it is. Never gives arena
    /// blocks back (a valid arena free took the fast path).
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn free_slow(&self, allocation: &Allocation) -> Result<(), FreeError> {
        let result = match allocation.memid.kind {
            MemKind::Arena { id, block } => Err(self.classify(id, block, allocation)),
            // SAFETY: forwarded from the caller.
            MemKind::Os => unsafe { self.free_direct(allocation) },
        };
        result.map_err(|kind| {
            let (addr, size) = (allocation.ptr.addr().get(), allocation.size);
            self.report.bad_free(kind, addr, size);
            FreeError { kind, addr, size }
        })
    }

    /// What is wrong with a free of arena blocks that [`Arena::release`] refused.
    fn classify(&self, id: ArenaId, block: usize, allocation: &Allocation) -> FreeErrorKind {
        let Some(arena) = self.published(id) else {
            return FreeErrorKind::NotOurs;
        };
        match arena.offset_of(allocation.ptr.addr().get()) {
            None => FreeErrorKind::NotOurs,
            Some(offset) if offset != block << self.block_shift() => FreeErrorKind::Misaligned,
            Some(offset) if allocation.size == 0 || allocation.size > arena.size() - offset => {
                FreeErrorKind::PastEnd
            }
            Some(_) => FreeErrorKind::DoubleFree,
        }
    }

    /// # Safety
    /// As for [`free`](Self::free).
    unsafe fn free_direct(&self, allocation: &Allocation) -> Result<(), FreeErrorKind> {
        if !self.at_home() || self.contains(allocation.ptr) {
            return Err(FreeErrorKind::NotOurs);
        }
        let region = Region {
            ptr: allocation.ptr,
            size: allocation.size,
            committed: allocation.memid.initially_committed,
            zeroed: false,
            pinned: allocation.memid.pinned,
        };
        // SAFETY: the memory id says the backend handed out exactly this region (checked as far as
        // the registry can: it is not arena memory), and the caller gives up its use.
        let freed = unsafe { self.backend.free(region) };
        if self.backend.can_free() && !freed {
            // A backend that can free refused: the region is not one of its own.
            return Err(FreeErrorKind::NotOurs);
        }
        Report::count(&self.report.os_frees);
        Ok(())
    }

    /// Whether `ptr` points into one of the arenas.
    pub fn contains(&self, ptr: NonNull<u8>) -> bool {
        self.find(ptr.addr().get()).is_some()
    }

    /// The arena that holds address `addr`: a check of the arena found last time, else a binary
    /// search over the arenas in address order, else a scan of the table (at once in small builds).
    #[inline]
    pub(crate) fn find(&self, addr: usize) -> Option<&Arena> {
        if !self.at_home() {
            return None;
        }
        #[cfg(not(small_code))]
        if let Some(found) = self.order.find(addr, |slot| self.slot(slot)) {
            return Some(found);
        }
        self.scan(addr)
    }

    /// The arena that holds address `addr`, from the table, which holds every published arena,
    /// the ones the address order does not hold yet included (see `lookup`). Small builds (wasm,
    /// firmware) have an arena or two, grown in place: there this scan is as quick as the search,
    /// and a few hundred bytes smaller with the order it needs.
    #[cfg_attr(not(small_code), inline(never))]
    #[cfg_attr(small_code, inline)]
    fn scan(&self, addr: usize) -> Option<&Arena> {
        (0..self.slots()).find_map(|index| self.slot(index).filter(|a| a.offset_of(addr).is_some()))
    }

    /// The memory of arena `id`: its first byte and its size in bytes.
    pub fn area(&self, id: ArenaId) -> Option<(NonNull<u8>, usize)> {
        let index = id.index().filter(|&i| i < self.slots() && self.at_home())?;
        self.slot(index).map(|a| (a.start(), a.size()))
    }

    /// Sets the function called on every refused free (`None`: no call). It runs inside the
    /// allocator and must not allocate.
    pub fn set_error_hook(&self, hook: Option<ErrorHook>) {
        self.report.set_hook(hook);
    }

    /// The counters, and what the arenas hold now.
    pub fn stats(&self) -> ArenaStats {
        let mut stats = ArenaStats::default();
        self.report.fill(&mut stats);
        for arena in self.arenas() {
            let padding = arena.in_use().bit_count() - arena.block_count();
            stats.arenas += 1;
            stats.arena_bytes += arena.size();
            stats.blocks_in_use += arena.in_use().count_set() - padding;
            stats.committed_bytes += arena.committed_blocks() * arena.block_size();
            stats.purged_bytes += arena.purged_blocks() * arena.block_size();
        }
        stats.meta_bytes = self.meta.used();
        stats
    }

    /// Writes the arena map: for every arena a header, its in-use bitmap one field per line (`x` in
    /// use, `.` free, block 0 first) and a count.
    pub fn write_map(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let arenas = self.arena_count();
        writeln!(out, "{arenas} arena{}", if arenas == 1 { "" } else { "s" })?;
        self.arenas().try_for_each(|arena| arena.write_map(out))
    }

    /// Gives every arena's memory back to the backend where it can take it, and empties the others:
    /// every allocation made from the registry becomes invalid.
    ///
    /// # Safety
    /// No memory handed out by the registry is used any more, and no other thread uses the registry
    /// during the call.
    pub unsafe fn destroy_all(&self) {
        if !self.at_home() {
            return;
        }
        let mut kept = 0;
        for (index, slot) in self.table.iter().enumerate().take(self.slots()) {
            let Some(arena) = self.slot(index) else {
                continue;
            };
            let (region, meta_region) = (arena.region, arena.meta_region);
            match region {
                Some(region) if self.backend.can_free() => {
                    slot.store(core::ptr::null_mut(), Ordering::Release);
                    // SAFETY: the arena's region came from this backend and nobody uses it (caller);
                    // the descriptor is unpublished and not read after this point.
                    unsafe {
                        self.backend.free(region);
                        if let Some(meta_region) = meta_region {
                            self.backend.free(meta_region);
                        }
                    }
                }
                _ => {
                    kept += 1;
                    // SAFETY: nobody uses the arena's blocks or the registry now (caller).
                    unsafe { arena.clear() };
                }
            }
        }
        #[cfg(not(small_code))]
        self.order.retain(|slot| self.slot(slot).is_some());
        if kept == 0 {
            self.growable.store(0, Ordering::Relaxed);
            self.count.store(0, Ordering::Release);
            // SAFETY: no descriptor is published any more, so no piece of the area is in use.
            unsafe { self.meta.reset() };
        }
    }
}
