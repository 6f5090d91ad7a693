//! Names for memory: which arena a block run came from, or whether it came from the backend
//! directly (the seed's `mi_memid_t` and arena ids).

use core::ptr::NonNull;

/// The id of an arena: its index in the registry plus one. [`ArenaId::ANY`] (0) asks for any
/// arena that is not exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArenaId(pub(crate) u32);

impl ArenaId {
    /// No specific arena: any non-exclusive arena will do.
    pub const ANY: ArenaId = ArenaId(0);

    /// The id with number `id` (0 is [`ArenaId::ANY`]). It names an arena only if a registry handed
    /// it out; any other number is simply refused by the registry.
    pub const fn new(id: u32) -> ArenaId {
        ArenaId(id)
    }

    /// The id of the arena at `index` in the registry.
    pub(crate) const fn from_index(index: usize) -> ArenaId {
        ArenaId(index as u32 + 1)
    }

    /// The registry index this id names, or `None` for [`ArenaId::ANY`].
    pub const fn index(self) -> Option<usize> {
        match self.0 {
            0 => None,
            id => Some(id as usize - 1),
        }
    }

    /// The number behind the id (0 for [`ArenaId::ANY`]).
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether an arena with id `self` may serve a request for `requested`: exclusive arenas serve
    /// only requests that name them; the others serve those too and every request for `ANY`.
    #[inline]
    pub(crate) const fn suits(self, exclusive: bool, requested: ArenaId) -> bool {
        (!exclusive && requested.0 == 0) || self.0 == requested.0
    }
}

/// Where a piece of memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// A run of blocks in an arena.
    Arena {
        /// The arena.
        id: ArenaId,
        /// Index of the first block of the run.
        block: usize,
    },
    /// A region straight from the backend (no arena had room).
    Os,
}

/// Everything needed to give a piece of memory back, and what is known of its contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemId {
    /// Where it came from.
    pub kind: MemKind,
    /// It was committed when handed out.
    pub initially_committed: bool,
    /// It read as zero when handed out.
    pub initially_zero: bool,
    /// It can never be decommitted.
    pub pinned: bool,
}

/// A piece of memory handed out by the arena registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The first byte.
    pub ptr: NonNull<u8>,
    /// Its size in bytes: the size asked for, rounded up to whole blocks (or to the backend's pages
    /// for a direct allocation).
    pub size: usize,
    /// Where it came from and what it holds.
    pub memid: MemId,
}
