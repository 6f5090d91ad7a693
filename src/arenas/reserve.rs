//! Adding arenas: reserving memory from the backend, managing memory the user provides, and the
//! policy for reserving on demand (the seed's `mi_arena_reserve`, `mi_reserve_os_memory_ex`,
//! `mi_manage_os_memory_ex2` and `mi_arena_add`).

use super::Arenas;
use crate::arena::{Arena, ArenaInit};
use crate::atomic::Ordering;
use crate::backend::{align_up, OsBackend, Region};
use crate::config::EagerCommit;
use crate::memid::ArenaId;
use crate::meta::META_ALIGN;
use core::ptr::NonNull;

/// Why an arena could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveError {
    /// The backend has no memory (or the size overflows).
    OutOfMemory,
    /// The memory holds less than one block once aligned to the block size.
    TooSmall,
    /// The registry already holds `MAX_ARENAS` arenas.
    TableFull,
    /// No memory for the arena's descriptor and bitmaps.
    NoMetadata,
    /// The registry was moved after it first handed out memory.
    Moved,
}

impl core::fmt::Display for ReserveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ReserveError::OutOfMemory => "the backend has no memory for the arena",
            ReserveError::TooSmall => "the memory is smaller than one arena block",
            ReserveError::TableFull => "the arena registry is full",
            ReserveError::NoMetadata => "no memory for the arena's metadata",
            ReserveError::Moved => "the arena registry was moved after first use",
        })
    }
}

/// Arenas the registry does not reserve on demand, so that a few slots stay for explicit calls.
const KEEP_FREE_SLOTS: usize = 4;

impl<B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize>
    Arenas<B, MAX_ARENAS, META_BYTES>
{
    /// Reserves `size` bytes (rounded up to whole blocks) from the backend as a new arena, committed
    /// up front if `commit`, serving only requests that name it if `exclusive`.
    pub fn reserve(
        &self,
        size: usize,
        commit: bool,
        exclusive: bool,
    ) -> Result<ArenaId, ReserveError> {
        if !self.at_home() {
            return Err(ReserveError::Moved);
        }
        let size = align_up(size.max(1), self.block_size()).ok_or(ReserveError::OutOfMemory)?;
        let region = self
            .backend
            .alloc(size, self.block_size(), commit)
            .ok_or(ReserveError::OutOfMemory)?;
        let added = self.add(region, exclusive, true, 0);
        if added.is_err() {
            // SAFETY: the region came from this backend just now and was never handed out.
            unsafe { self.backend.free(region) };
        }
        added
    }

    /// Makes the memory `[start, start + size)` an arena. The start is rounded up and the end down to
    /// the block size. `committed`, `zero` and `pinned` say what is true of the memory; an
    /// `exclusive` arena serves only requests that name it.
    ///
    /// # Safety
    /// The memory is valid for reads and writes, belongs to nobody else, and stays so for as long as
    /// the registry exists (it is never given back).
    pub unsafe fn manage(
        &self,
        start: NonNull<u8>,
        size: usize,
        committed: bool,
        zero: bool,
        pinned: bool,
        exclusive: bool,
    ) -> Result<ArenaId, ReserveError> {
        if !self.at_home() {
            return Err(ReserveError::Moved);
        }
        let memory = Region {
            ptr: start,
            size,
            committed: committed || pinned,
            zeroed: zero,
            pinned,
        };
        self.add(memory, exclusive, false, 0)
    }

    /// Reserves an arena that can hold `bytes` aligned to `align`, following the seed's policy:
    /// `arena_reserve` bytes, a quarter of that without virtual reserve, doubled for every 8 arenas
    /// that exist (from 8 to 128), and none at all when that is still too small or the table is
    /// nearly full.
    ///
    /// A backend that grows in place (a break pointer) is asked for just what the request needs:
    /// see [`grow_on_demand`](Self::grow_on_demand).
    pub(super) fn reserve_on_demand(&self, bytes: usize, align: usize) -> Option<ArenaId> {
        let count = self.count.load(Ordering::Acquire);
        if count + KEEP_FREE_SLOTS > MAX_ARENAS || self.config.arena_reserve == 0 {
            return None;
        }
        let needed = bytes.checked_add(align.saturating_sub(self.block_size()))?;
        if self.grows_on_demand() {
            return self.grow_on_demand(needed, count);
        }
        let mut reserve = self.config.arena_reserve;
        if !self.backend.has_virtual_reserve() {
            reserve /= 4;
        }
        let reserve = self.scaled(reserve, count)?;
        if reserve < needed {
            return None;
        }
        let commit = match self.config.eager_commit {
            EagerCommit::Never => false,
            EagerCommit::Always => true,
            EagerCommit::IfOvercommit => self.backend.has_overcommit(),
        };
        self.reserve(reserve, commit, false).ok()
    }

    /// Whether arenas are grown on demand by just what a request needs (see
    /// [`grow_on_demand`](Self::grow_on_demand)): over a backend that grows in place and never
    /// frees, such as a break pointer.
    pub(super) fn grows_on_demand(&self) -> bool {
        self.backend.grows_in_place() && !self.backend.can_free()
    }

    /// `bytes` rounded up to whole blocks and doubled for every 8 arenas that exist (from 8 to
    /// 128): the seed's growth of arena sizes.
    fn scaled(&self, bytes: usize, count: usize) -> Option<usize> {
        let bytes = align_up(bytes.max(1), self.block_size())?;
        if (8..=128).contains(&count) {
            bytes.checked_mul(1 << (count / 8))
        } else {
            Some(bytes)
        }
    }

    /// Room for `needed` more bytes (whole blocks) over a backend that grows in place: the last
    /// arena grows over just that much new memory when the memory follows it and the arena has
    /// room; else a new arena starts over new memory, with room to grow to the reserve size (and
    /// its metadata in the static area or its own first blocks, never between it and its growth).
    /// So memory grows by what the program asks for, in a few arenas.
    fn grow_on_demand(&self, needed: usize, count: usize) -> Option<ArenaId> {
        while self
            .growing
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        let grown = self.grow_locked(needed, count);
        self.growing.store(false, Ordering::Release);
        grown
    }

    /// [`grow_on_demand`](Self::grow_on_demand) with `growing` held.
    fn grow_locked(&self, needed: usize, count: usize) -> Option<ArenaId> {
        let block_size = self.block_size();
        let shift = self.block_shift();
        let last = self.growable.load(Ordering::Relaxed).checked_sub(1);
        if let Some(arena) = last.and_then(|index| self.slot(index)) {
            if arena.capacity() - arena.block_count() >= needed >> shift {
                let region = self.backend.alloc(needed, block_size, true)?;
                if region.ptr.addr().get() == arena.end() {
                    // SAFETY: the region is committed, belongs to the registry now and starts right
                    // at the arena's end; a backend that grows in place hands out one break's memory,
                    // reachable from the arena's start; `growing` is held.
                    if unsafe { arena.grow(region.size >> shift, region.zeroed) } {
                        return Some(arena.id);
                    }
                }
                // Something else took the memory after the arena: it grows no more, and the new
                // memory becomes an arena of its own.
                self.growable.store(0, Ordering::Relaxed);
                return self.add(region, false, true, 0).ok();
            }
        }
        let capacity = self.scaled(self.config.arena_reserve, count)?.max(needed) >> shift;
        let meta_size = Arena::meta_size(capacity, true)?;
        let meta_blocks = meta_size.div_ceil(block_size);
        let region =
            self.backend
                .alloc(needed.checked_add(meta_blocks << shift)?, block_size, true)?;
        let id = self.add(region, false, true, capacity).ok()?;
        self.growable.store(id.index()? + 1, Ordering::Relaxed);
        Some(id)
    }

    /// Builds an arena over `memory` and publishes it. An `owned` region came from the backend and
    /// goes back to it when the arena is destroyed; memory the user manages does not. The arena can
    /// later grow to `capacity` blocks; its metadata then never comes from a backend region of its
    /// own (which would sit right where the arena is to grow), but from the static area or the
    /// memory's first blocks.
    fn add(
        &self,
        memory: Region,
        exclusive: bool,
        owned: bool,
        capacity: usize,
    ) -> Result<ArenaId, ReserveError> {
        let Region {
            ptr: start,
            size,
            committed,
            zeroed: zero,
            pinned,
        } = memory;
        // Over a backend without commit state every arena is pinned, and its memory usable: the
        // backend has nothing to commit it with (its `commit` does nothing).
        let pinned = pinned || !B::COMMITS;
        let committed = committed || pinned;
        let block_size = self.block_size();
        let addr = start.addr().get();
        let skip = align_up(addr, block_size).ok_or(ReserveError::TooSmall)? - addr;
        let mut blocks = size.saturating_sub(skip) >> self.block_shift();
        if blocks == 0 {
            return Err(ReserveError::TooSmall);
        }
        // SAFETY: `skip < size` (at least one block follows it), so the pointer stays inside the
        // memory, derived from its start.
        let mut start = unsafe { start.add(skip) };

        let capacity = capacity.max(blocks);
        let meta_size = Arena::meta_size(capacity, pinned).ok_or(ReserveError::NoMetadata)?;
        let meta = if capacity > blocks {
            self.meta
                .alloc_zeroed(meta_size)
                .map(|place| (place, None))
                .ok_or(ReserveError::NoMetadata)
        } else {
            self.alloc_meta(meta_size)
        };
        let (place, meta_region) = match meta {
            Ok(found) => found,
            // Neither the static area nor the backend has room: the arena's own first blocks hold
            // its metadata, if the memory is committed (so it can be written now).
            Err(_) if committed => {
                let meta_blocks = meta_size.div_ceil(block_size);
                if meta_blocks >= blocks {
                    return Err(ReserveError::NoMetadata);
                }
                let place = start;
                if !zero {
                    // SAFETY: the first `meta_blocks` blocks are committed memory given to the
                    // registry, and nobody else uses them.
                    unsafe { place.as_ptr().write_bytes(0, meta_size) };
                }
                blocks -= meta_blocks;
                // SAFETY: `meta_blocks < blocks`, so the new start is inside the memory.
                start = unsafe { start.add(meta_blocks << self.block_shift()) };
                (place, None)
            }
            Err(error) => return Err(error),
        };

        let index = self.count.fetch_add(1, Ordering::AcqRel);
        if index >= MAX_ARENAS {
            self.count.fetch_sub(1, Ordering::AcqRel);
            if let Some(meta_region) = meta_region {
                // SAFETY: the region came from this backend in `alloc_meta` and holds nothing.
                unsafe { self.backend.free(meta_region) };
            }
            return Err(ReserveError::TableFull);
        }
        let id = ArenaId::from_index(index);
        // SAFETY: `place` is zeroed, unused memory of `meta_size` bytes aligned to 16 (enough for a
        // descriptor), and the arena's memory is `blocks` whole blocks from an aligned `start`.
        let arena = unsafe {
            Arena::init(
                place,
                ArenaInit {
                    id,
                    start,
                    size: blocks << self.block_shift(),
                    capacity,
                    block_shift: self.block_shift(),
                    region: owned.then_some(memory),
                    committed,
                    zero,
                    pinned,
                    exclusive,
                    meta_region,
                },
            )
        };
        self.table[index].store(arena.as_ptr(), Ordering::Release);
        #[cfg(not(small_code))]
        self.order.insert(index, start.addr().get(), |slot| {
            self.slot(slot).map_or(0, |a| a.start().addr().get())
        });
        Ok(id)
    }

    /// Zeroed memory for a descriptor: from the static area, else from the backend.
    fn alloc_meta(&self, size: usize) -> Result<(NonNull<u8>, Option<Region>), ReserveError> {
        if let Some(place) = self.meta.alloc_zeroed(size) {
            return Ok((place, None));
        }
        let page = self.backend.page_size();
        let bytes = align_up(size, page).ok_or(ReserveError::NoMetadata)?;
        let region = self
            .backend
            .alloc(bytes, page.max(META_ALIGN), true)
            .ok_or(ReserveError::NoMetadata)?;
        if !region.zeroed {
            // SAFETY: the region is fresh, committed, and at least `size` bytes long.
            unsafe { region.ptr.as_ptr().write_bytes(0, size) };
        }
        Ok((region.ptr, Some(region)))
    }
}
