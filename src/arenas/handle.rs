//! A handle on one arena: a subsystem that has an arena of its own (usually exclusive) claims and
//! releases block runs there without the registry looking the arena up on every call.

use super::Arenas;
use crate::arena::Arena;
use crate::backend::OsBackend;
use crate::error::FreeError;
use crate::memid::{Allocation, ArenaId, MemKind};
use core::ptr::NonNull;

/// One arena of an [`Arenas`] registry, found once by [`Arenas::arena`].
///
/// It borrows the registry, which therefore cannot move while a handle exists.
pub struct ArenaHandle<'a, B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize> {
    registry: &'a Arenas<B, MAX_ARENAS, META_BYTES>,
    /// A published arena of `registry`: it stays in place as long as the registry is borrowed.
    arena: &'a Arena,
}

impl<B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize> Clone
    for ArenaHandle<'_, B, MAX_ARENAS, META_BYTES>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize> Copy
    for ArenaHandle<'_, B, MAX_ARENAS, META_BYTES>
{
}

impl<B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize>
    Arenas<B, MAX_ARENAS, META_BYTES>
{
    /// A handle on arena `id`, exclusive or not; `None` if there is no such arena.
    pub fn arena(&self, id: ArenaId) -> Option<ArenaHandle<'_, B, MAX_ARENAS, META_BYTES>> {
        let arena = self.published(id)?;
        Some(ArenaHandle {
            registry: self,
            arena,
        })
    }
}

impl<'a, B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize>
    ArenaHandle<'a, B, MAX_ARENAS, META_BYTES>
{
    /// The arena's id.
    pub fn id(&self) -> ArenaId {
        self.arena.id
    }

    /// The arena's memory: its first byte and its size in bytes.
    pub fn area(&self) -> (NonNull<u8>, usize) {
        (self.arena.start(), self.arena.size())
    }

    /// Blocks in the arena.
    pub fn block_count(&self) -> usize {
        self.arena.block_count()
    }

    /// Blocks handed out now.
    pub fn blocks_in_use(&self) -> usize {
        let padding = self.arena.in_use().bit_count() - self.arena.block_count();
        self.arena.in_use().count_set() - padding
    }

    /// Allocates at least `size` bytes aligned to `align` from this arena only: `None` when it has
    /// no room (no other arena, no new arena, no backend fallback), or on a size of 0, an alignment
    /// that is not a power of two, or a size past `isize::MAX`.
    #[inline]
    pub fn alloc(&self, size: usize, align: usize, commit: bool) -> Option<Allocation> {
        if size.wrapping_sub(1) >= isize::MAX as usize || !align.is_power_of_two() {
            return None;
        }
        let shift = self.registry.block_shift();
        self.arena.alloc(
            ((size - 1) >> shift) + 1,
            align,
            commit,
            self.registry.backend(),
        )
    }

    /// Gives an allocation back, like [`Arenas::free`] (which it is, with the arena already found
    /// when the allocation is from this arena).
    ///
    /// # Safety
    /// Nobody uses the memory after this call (if it was valid).
    #[inline]
    pub unsafe fn free(&self, allocation: &Allocation) -> Result<(), FreeError> {
        if let MemKind::Arena { id, block } = allocation.memid.kind {
            if id == self.arena.id
                && self
                    .registry
                    .release(self.arena, allocation.ptr, block, allocation.size)
            {
                return Ok(());
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.registry.free(allocation) }
    }
}
