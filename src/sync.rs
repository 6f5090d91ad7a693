//! The locks a heap can be kept behind: a spin lock (the default), a critical section (interrupt-
//! safe, for firmware), or none at all for programs with one thread and no interrupts that
//! allocate.

use crate::atomic::{AtomicBool, Ordering};

/// A lock without data, held around every heap operation.
///
/// # Safety
/// Implementors must guarantee that between a successful [`lock`](Self::lock) or
/// [`try_lock`](Self::try_lock) and the matching [`unlock`](Self::unlock) no other holder exists
/// (for [`NoLock`], the program's promise stands in for this).
pub unsafe trait RawLock: Sync {
    /// The lock, not held.
    const NEW: Self;
    /// No other thread or interrupt can hold the lock when a heap operation starts: taking it never
    /// waits. Then the allocator uses one heap only and never frees through another heap's remote
    /// list, and the code for both compiles away.
    const NEVER_BUSY: bool = false;
    /// Takes the lock, waiting for it.
    fn lock(&self);
    /// Takes the lock if it is free.
    fn try_lock(&self) -> bool;
    /// Gives the lock back.
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn unlock(&self);
}

/// Locks that make a heap safe to share between threads (and, for [`CriticalSectionLock`],
/// interrupt handlers): the ones `Quarry::new` accepts.
pub trait ThreadSafe: RawLock {}

/// The program has one thread and no interrupts: a WebAssembly module built without the `atomics`
/// feature (wasm32-wasip1, wasm32-unknown-unknown by default). There a [`SpinLock`] is never
/// contended, and its release builds leave the flag alone.
const ALONE: bool = cfg!(all(target_family = "wasm", not(target_feature = "atomics")));

/// A spin lock: test-and-test-and-set on one atomic flag. In a WebAssembly module without
/// threads (no `atomics` feature) it costs nothing in release builds: there is nobody to wait for.
pub struct SpinLock {
    /// Set while the lock is held (in a WebAssembly module without threads, only in debug builds).
    held: AtomicBool,
}

// SAFETY: the flag is taken with an acquire compare-and-swap and released with a release store, so
// there is one holder at a time. Where `ALONE` holds, the program has one thread and nothing that
// interrupts it, and heap operations do not nest (the error hook must not allocate), so there is
// one holder at a time without the flag.
unsafe impl RawLock for SpinLock {
    const NEW: Self = SpinLock {
        held: AtomicBool::new(false),
    };
    /// A WebAssembly module built without the `atomics` feature has one thread, and no interrupts.
    const NEVER_BUSY: bool = ALONE;

    #[inline]
    fn lock(&self) {
        while !self.try_lock() {
            while self.held.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        if ALONE {
            // Nothing else runs, so only a call from inside the allocator (an error hook that
            // allocates) could find the lock held: debug builds catch that, release builds skip
            // the flag.
            debug_assert!(
                !self.held.swap(true, Ordering::Relaxed),
                "the allocator was entered again from inside itself"
            );
            return true;
        }
        self.held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        if ALONE && !cfg!(debug_assertions) {
            return;
        }
        self.held.store(false, Ordering::Release);
    }
}

impl ThreadSafe for SpinLock {}

/// No lock: for a program with one thread and no interrupt handler that allocates. A `Quarry` with
/// it is built only by the `unsafe` `Quarry::new_single_threaded`.
pub struct NoLock;

// SAFETY: `Quarry::new_single_threaded`, the only way to use it, makes its caller promise that no
// two heap operations ever overlap.
unsafe impl RawLock for NoLock {
    const NEW: Self = NoLock;
    const NEVER_BUSY: bool = true;
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn lock(&self) {}
    #[inline(always)]
    fn try_lock(&self) -> bool {
        true
    }
    #[inline(always)]
    unsafe fn unlock(&self) {}
}

#[cfg(feature = "critical-section")]
pub use critical::CriticalSectionLock;

#[cfg(feature = "critical-section")]
mod critical {
    use super::{RawLock, ThreadSafe};
    use core::cell::UnsafeCell;

    /// A critical section (the `critical-section` crate): interrupts are off, and other cores are
    /// kept out, while the heap is used, so interrupt handlers can allocate too.
    pub struct CriticalSectionLock {
        /// How to leave the critical section; written and read only by its holder.
        restore: UnsafeCell<critical_section::RestoreState>,
    }

    // SAFETY: `restore` is only touched by the holder of the critical section, and there is one at a
    // time (the `critical-section` implementation's guarantee).
    unsafe impl Sync for CriticalSectionLock {}

    // SAFETY: `acquire` enters the critical section, which excludes every other context until
    // `release`; nested use is excluded because every heap operation leaves before it returns.
    unsafe impl RawLock for CriticalSectionLock {
        const NEW: Self = CriticalSectionLock {
            restore: UnsafeCell::new(critical_section::RestoreState::invalid()),
        };
        /// Entering the critical section excludes everyone else, so a heap operation never finds
        /// the lock held (operations do not nest).
        const NEVER_BUSY: bool = true;

        #[inline]
        fn lock(&self) {
            // SAFETY: released by `unlock`, which the heap operation calls before it returns.
            let restore = unsafe { critical_section::acquire() };
            // SAFETY: we hold the critical section, so nobody else touches `restore`.
            unsafe { *self.restore.get() = restore };
        }

        #[inline]
        fn try_lock(&self) -> bool {
            self.lock();
            true
        }

        #[inline]
        unsafe fn unlock(&self) {
            // SAFETY: the caller holds the critical section, entered by `lock` with this state.
            unsafe { critical_section::release(*self.restore.get()) };
        }
    }

    impl ThreadSafe for CriticalSectionLock {}
}
