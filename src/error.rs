//! Bad frees: what is detected, how it is reported.

/// What was wrong with a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FreeErrorKind {
    /// The memory is not in any arena of this allocator (or names an arena that does not exist).
    NotOurs,
    /// The blocks are already free.
    DoubleFree,
    /// The run goes past the end of its arena.
    PastEnd,
    /// The pointer is inside an arena but not at the start of a block run it was given.
    Misaligned,
}

/// A free that was refused. The allocator's state is left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeError {
    /// What was wrong.
    pub kind: FreeErrorKind,
    /// The address that was freed.
    pub addr: usize,
    /// The size that was given with it.
    pub size: usize,
}

impl core::fmt::Display for FreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.kind {
            FreeErrorKind::NotOurs => "memory that this allocator did not hand out",
            FreeErrorKind::DoubleFree => "memory that is already free",
            FreeErrorKind::PastEnd => "a range that runs past the end of its arena",
            FreeErrorKind::Misaligned => "a pointer that is not the start of an allocation",
        };
        write!(
            f,
            "invalid free of {what}: {:#x}, {} bytes",
            self.addr, self.size
        )
    }
}

/// A function called on every refused free. It runs inside the allocator: it must not allocate.
pub type ErrorHook = fn(&FreeError);
