//! A heap of its own for a subsystem: an exclusive arena and a heap that draws only on it, usable
//! as an `allocator_api2::Allocator` (`Vec::new_in(&heap)`), so that the subsystem's memory neither
//! mixes with the rest of the program's nor runs out because of it.

use super::{Choice, Quarry, Slot, ARENA_HEAP};
use crate::arenas::ReserveError;
use crate::backend::OsBackend;
use crate::heap::{Allocated, Heap};
use crate::memid::ArenaId;
use crate::sync::RawLock;
use core::ptr::NonNull;

/// A heap bound to one exclusive arena of a [`Quarry`], made by [`Quarry::arena_heap`].
///
/// ```
/// use quarry_alloc::{Config, Quarry, StaticBuffer};
///
/// static HEAP: Quarry<StaticBuffer<{ 1 << 20 }>> = Quarry::new(StaticBuffer::new(), Config::WASM);
///
/// let audio = HEAP.arena_heap(64 * 1024).expect("room for the arena");
/// let mut frames = allocator_api2::vec::Vec::new_in(&audio);
/// frames.extend_from_slice(&[0i16; 1024]);
/// assert!(HEAP.arenas().area(audio.arena()).is_some());
/// ```
pub struct ArenaHeap<'q, B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize> {
    quarry: &'q Quarry<B, L, H, M, N>,
    arena: ArenaId,
    /// The heap; its pages are owned by `ARENA_HEAP` and live in `arena` only.
    slot: Slot<L>,
}

// SAFETY: the heap is only reached through the slot's lock; everything else is shared read-only or
// atomic, as in `Quarry`.
unsafe impl<B: OsBackend + Sync, L: RawLock, const H: usize, const M: usize, const N: usize> Sync
    for ArenaHeap<'_, B, L, H, M, N>
{
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize>
    Quarry<B, L, H, M, N>
{
    /// Reserves an exclusive arena of `size` bytes (rounded up to whole blocks) and returns a heap
    /// that allocates from it alone. What it hands out is freed through it (or through a copy of
    /// `&ArenaHeap`); the program's other allocations never land in its arena.
    pub fn arena_heap(&self, size: usize) -> Result<ArenaHeap<'_, B, L, H, M, N>, ReserveError> {
        let arena = self.arenas.reserve(size, true, true)?;
        Ok(ArenaHeap {
            quarry: self,
            arena,
            slot: Slot::new(Heap::in_arena(ARENA_HEAP, arena, self.arenas.config())),
        })
    }
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize>
    ArenaHeap<'_, B, L, H, M, N>
{
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn choice(&self) -> Choice<'_, L> {
        Choice::Own {
            slot: &self.slot,
            arena: self.arena,
        }
    }

    /// The arena this heap draws on.
    pub fn arena(&self) -> ArenaId {
        self.arena
    }

    /// Bytes handed out by this heap now.
    pub fn bytes_in_use(&self) -> usize {
        self.slot.guard().counters.bytes_in_use
    }

    /// Gives this heap's empty pages back to its arena.
    pub fn trim(&self) {
        let mut heap = self.slot.guard();
        let delayed = heap.delayed;
        heap.trim(self.quarry.arenas(), delayed);
    }

    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn allocate(&self, size: usize, align: usize) -> Option<Allocated> {
        self.quarry.allocate_in(self.choice(), size, align)
    }

    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub(crate) fn allocate_zeroed(&self, size: usize, align: usize) -> Option<Allocated> {
        self.quarry.allocate_zeroed_in(self.choice(), size, align)
    }

    /// # Safety
    /// If `ptr` is a live allocation of this heap, nobody uses it any more.
    #[inline(always)]
    pub(crate) unsafe fn deallocate(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.quarry.deallocate_in(self.choice(), ptr, size) }
    }
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize>
    crate::front::Reallocate for ArenaHeap<'_, B, L, H, M, N>
{
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.quarry
                .reallocate_in(self.choice(), ptr, old_size, new_size, align)
        }
    }
}

impl<B: OsBackend, L: RawLock, const H: usize, const M: usize, const N: usize> Drop
    for ArenaHeap<'_, B, L, H, M, N>
{
    /// Nothing it handed out can still be alive (every allocation through `&ArenaHeap` borrows
    /// it), so its pages go back to its arena. The arena stays reserved and exclusive, now empty.
    fn drop(&mut self) {
        self.trim();
    }
}
