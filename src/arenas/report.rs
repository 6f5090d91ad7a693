//! Counters and the error hook of the arena registry.

use crate::atomic::{AtomicPtr, AtomicUsize, Ordering};
use crate::error::{ErrorHook, FreeError, FreeErrorKind};

/// A snapshot of the registry's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Arenas in the registry.
    pub arenas: usize,
    /// Bytes of memory in arenas.
    pub arena_bytes: usize,
    /// Bytes of arena memory committed.
    pub committed_bytes: usize,
    /// Bytes whose physical memory purges gave back to the backend, in all.
    pub purged_bytes: usize,
    /// Blocks handed out now, over all arenas.
    pub blocks_in_use: usize,
    /// Regions allocated from the backend directly because no arena had room, in all.
    pub os_allocs: usize,
    /// Such regions given back.
    pub os_frees: usize,
    /// Bytes of static metadata area in use.
    pub meta_bytes: usize,
    /// Refused frees of memory that is not ours.
    pub not_ours: usize,
    /// Refused double frees.
    pub double_frees: usize,
    /// Refused frees of runs past an arena's end.
    pub past_end: usize,
    /// Refused frees of pointers that do not start an allocation.
    pub misaligned: usize,
}

impl ArenaStats {
    /// All refused frees.
    pub fn errors(&self) -> usize {
        self.not_ours + self.double_frees + self.past_end + self.misaligned
    }
}

/// The registry's event counters and error hook. Only rare events are counted, so that the block
/// claim and release paths pay for no shared counter (blocks in use are read off the bitmaps).
pub(crate) struct Report {
    pub os_allocs: AtomicUsize,
    pub os_frees: AtomicUsize,
    /// Refused frees, indexed by `FreeErrorKind as usize`.
    errors: [AtomicUsize; 4],
    /// The error hook: null, or a pointer made from an `ErrorHook` by `set_hook`.
    hook: AtomicPtr<()>,
}

impl Report {
    pub const fn new() -> Self {
        Report {
            os_allocs: AtomicUsize::new(0),
            os_frees: AtomicUsize::new(0),
            errors: [
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            ],
            hook: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    pub fn count(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_hook(&self, hook: Option<ErrorHook>) {
        let raw = hook.map_or(core::ptr::null_mut(), |f| f as *mut ());
        self.hook.store(raw, Ordering::Release);
    }

    /// Counts a refused free and passes it to the hook.
    pub fn bad_free(&self, kind: FreeErrorKind, addr: usize, size: usize) {
        Self::count(&self.errors[kind as usize]);
        let raw = self.hook.load(Ordering::Acquire);
        if !raw.is_null() {
            // SAFETY: a non-null `hook` was made from an `ErrorHook` in `set_hook`; function pointers and
            // data pointers have the same size on every target this crate supports.
            let hook: ErrorHook = unsafe { core::mem::transmute::<*mut (), ErrorHook>(raw) };
            hook(&FreeError { kind, addr, size });
        }
    }

    /// Fills the event counters of `stats`.
    pub fn fill(&self, stats: &mut ArenaStats) {
        let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        stats.os_allocs = get(&self.os_allocs);
        stats.os_frees = get(&self.os_frees);
        stats.not_ours = get(&self.errors[FreeErrorKind::NotOurs as usize]);
        stats.double_frees = get(&self.errors[FreeErrorKind::DoubleFree as usize]);
        stats.past_end = get(&self.errors[FreeErrorKind::PastEnd as usize]);
        stats.misaligned = get(&self.errors[FreeErrorKind::Misaligned as usize]);
    }
}
