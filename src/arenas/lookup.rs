//! Finding the arena that holds an address without visiting the arenas one by one: the arenas are
//! kept in address order, and a lookup is a binary search over that order (after a check of the
//! arena found last time, which is the answer almost always).
//!
//! The order is only a shortcut: the registry's table says which arenas exist. An arena is
//! published in the table before it joins the order, so for a moment another thread can hand out
//! memory of an arena the order does not hold yet. And the order is read without a lock while it
//! may be written, so a search can see it half changed. Neither can give a wrong answer, because
//! an arena found is checked to hold the address, and arenas do not overlap. Both can miss, and
//! `Arenas::find` then scans the table. Misses are rare, and a search never waits.

use crate::arena::Arena;
use crate::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// The arenas of a registry in address order.
pub(crate) struct AddressOrder<const MAX_ARENAS: usize> {
    /// `slots[k]` is the table slot of the arena with the k-th lowest start address, for
    /// `k < len`. Written only by the holder of `writing`; a reader may see it half written.
    slots: [AtomicU8; MAX_ARENAS],
    /// Number of arenas in the order.
    len: AtomicUsize,
    /// Held by the one thread that writes the order.
    writing: AtomicBool,
    /// The table slot of the arena found by the last lookup: only a hint.
    last: AtomicU8,
}

impl<const MAX_ARENAS: usize> AddressOrder<MAX_ARENAS> {
    pub const fn new() -> Self {
        assert!(
            MAX_ARENAS <= 255,
            "MAX_ARENAS must fit the address order's u8 slots"
        );
        AddressOrder {
            slots: [const { AtomicU8::new(0) }; MAX_ARENAS],
            len: AtomicUsize::new(0),
            writing: AtomicBool::new(false),
            last: AtomicU8::new(u8::MAX),
        }
    }

    /// Runs `write` with the right to change the order.
    fn write<R>(&self, write: impl FnOnce() -> R) -> R {
        while self
            .writing
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        let result = write();
        self.writing.store(false, Ordering::Release);
        result
    }

    /// Inserts the arena in table slot `slot`, whose start address is `start`; `start_of` gives
    /// the start address of the arenas already in the order.
    pub fn insert(&self, slot: usize, start: usize, start_of: impl Fn(usize) -> usize) {
        self.write(|| {
            let len = self.len.load(Ordering::Relaxed);
            let mut at = len;
            while at > 0 && start_of(self.slots[at - 1].load(Ordering::Relaxed) as usize) > start {
                let moved = self.slots[at - 1].load(Ordering::Relaxed);
                self.slots[at].store(moved, Ordering::Relaxed);
                at -= 1;
            }
            self.slots[at].store(slot as u8, Ordering::Relaxed);
            self.len.store(len + 1, Ordering::Release);
        })
    }

    /// Keeps only the arenas for which `keep` holds.
    pub fn retain(&self, keep: impl Fn(usize) -> bool) {
        self.write(|| {
            let len = self.len.load(Ordering::Relaxed);
            let mut kept = 0;
            for k in 0..len {
                let slot = self.slots[k].load(Ordering::Relaxed);
                if keep(slot as usize) {
                    self.slots[kept].store(slot, Ordering::Relaxed);
                    kept += 1;
                }
            }
            self.len.store(kept, Ordering::Release);
            self.last.store(u8::MAX, Ordering::Relaxed);
        })
    }

    /// The arena that holds `addr`, if the order has it (see the module's doc for when it may
    /// not). `arena(slot)` reads a table slot.
    #[inline]
    pub fn find<'a>(
        &self,
        addr: usize,
        arena: impl Fn(usize) -> Option<&'a Arena>,
    ) -> Option<&'a Arena> {
        let last = self.last.load(Ordering::Relaxed) as usize;
        if let Some(found) = arena(last).filter(|a| a.offset_of(addr).is_some()) {
            return Some(found);
        }
        let (slot, found) = self.binary_search(addr, &arena)?;
        self.last.store(slot as u8, Ordering::Relaxed);
        Some(found)
    }

    /// The last arena in the order that starts at or below `addr`, if it holds `addr`.
    fn binary_search<'a>(
        &self,
        addr: usize,
        arena: &impl Fn(usize) -> Option<&'a Arena>,
    ) -> Option<(usize, &'a Arena)> {
        let len = self.len.load(Ordering::Acquire).min(MAX_ARENAS);
        let (mut low, mut high) = (0, len);
        while low < high {
            let mid = (low + high) / 2;
            let slot = self.slots[mid].load(Ordering::Relaxed) as usize;
            match arena(slot) {
                Some(a) if a.start().addr().get() <= addr => low = mid + 1,
                Some(_) => high = mid,
                // An empty slot: the order was read half written.
                None => return None,
            }
        }
        let slot = self.slots[low.checked_sub(1)?].load(Ordering::Relaxed) as usize;
        let found = arena(slot)?;
        found.offset_of(addr).map(|_| (slot, found))
    }
}
