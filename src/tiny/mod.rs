//! The tiny engine: the arena layer alone, for the builds where every byte of code counts (a wasm
//! module of a few kilobytes, a firmware image with little flash).
//!
//! [`Tiny`] cuts its arena into granules of 16 bytes and hands out every allocation as a run of
//! them, claimed in two bitmaps, the way the arena layer claims blocks. It has no object layer:
//! no size classes, pages or free lists, so its code is a fraction of [`Compact`](crate::Compact)'s
//! (see BENCHMARKS.md, wasm size), and an allocation wastes at most 15 bytes to rounding. What it
//! keeps:
//!
//! - **every bad free refused**, counted and reported: a pointer outside the arena, inside an
//!   allocation, or to a free granule (a second free) changes nothing;
//! - **realloc in place**: a run shrinks where it is, and grows into the free granules after it,
//!   or past the arena's end over a backend that grows in place;
//! - **statistics and an arena map**, and any power-of-two alignment up to the arena's size;
//! - the backends and locks of the other engines: one arena, grown at its end over a backend that
//!   grows in place (`WasmGrow`, `Sbrk`, `StaticBuffer`), or `GRANULES` granules taken at once
//!   from any other.
//!
//! What it costs: an allocation searches the bitmaps next-fit, from where the last one ended and
//! round the arena once before it grows it, passing up to 32 granules a step; a free finds its
//! run's end the same way. That is quick while the heap is small or holds runs of like sizes, and
//! slows as holes of many sizes build up (a request that fits nowhere passes the whole arena); pick
//! [`Compact`](crate::Compact) when allocation speed matters more than a few kilobytes of code.
//!
//! The bitmaps take the arena's first granules: `GRANULES / 4` bytes for an arena of at most
//! `GRANULES * 16` bytes (with the default, 64 KiB for 4 MiB). On firmware, pick `GRANULES` as the
//! heap's size over 16.
//!
//! ```
//! use quarry_alloc::{SpinLock, StaticBuffer, Tiny};
//! // 64 KiB in 4096 granules, 1 KiB of them bitmaps.
//! static HEAP: Tiny<StaticBuffer<{ 64 * 1024 }>, SpinLock, 4096> = Tiny::new(StaticBuffer::new());
//!
//! let layout = core::alloc::Layout::from_size_align(100, 8).unwrap();
//! let p = unsafe { core::alloc::GlobalAlloc::alloc(&HEAP, layout) };
//! assert!(!p.is_null());
//! unsafe { core::alloc::GlobalAlloc::dealloc(&HEAP, p, layout) };
//! assert_eq!(HEAP.stats().bytes_in_use, 0);
//! ```

mod granules;
#[cfg(test)]
mod tests;

use crate::backend::OsBackend;
use crate::error::ErrorHook;
use crate::front::{Locked, Refusals};
use crate::heap::HeapCounters;
use crate::sync::{NoLock, RawLock, SpinLock, ThreadSafe};
use crate::Stats;
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ptr::{self, NonNull};
use granules::{Granules, GRANULE};

/// Granules the arena may span unless the type says otherwise: 4 MiB, with 64 KiB of bitmaps.
pub const DEFAULT_GRANULES: usize = 256 * 1024;

/// What the engine holds besides its backend; reached only under the lock.
struct State<const GRANULES: usize> {
    space: Granules<GRANULES>,
    counters: HeapCounters,
    refusals: Refusals,
}

impl<const GRANULES: usize> State<GRANULES> {
    /// Counts `granules` more handed out (fewer when negative, in two's complement) and returns
    /// `ptr`.
    #[cfg_attr(opt_size, inline(never))]
    fn counted(&mut self, ptr: *mut u8, granules: usize) -> *mut u8 {
        let c = &mut self.counters;
        c.bytes_in_use = c.bytes_in_use.wrapping_add(granules.wrapping_mul(GRANULE));
        c.peak_bytes = c.peak_bytes.max(c.bytes_in_use);
        ptr
    }

    /// A new run of `n` granules aligned to `align`, counted, or null.
    #[inline(never)]
    fn take<B: OsBackend>(&mut self, backend: &B, n: usize, align: usize) -> *mut u8 {
        match self.space.claim(backend, n, align) {
            Some(first) => {
                self.counters.allocs += 1;
                let ptr = self.space.at(first);
                self.counted(ptr, n)
            }
            None => ptr::null_mut(),
        }
    }

    /// Frees the run `[first, first + n)` handed out, counted.
    #[inline(never)]
    fn give(&mut self, first: usize, n: usize) {
        self.space.release(first, n);
        self.counters.frees += 1;
        self.counted(ptr::null_mut(), n.wrapping_neg());
    }
}

/// Granules that hold `size` bytes (at most `isize::MAX`), at least one.
#[inline(always)]
fn granules_for(size: usize) -> usize {
    size.div_ceil(GRANULE).max(1)
}

/// An allocator of the tiny engine over backend `B`, behind lock `L`, with an arena of at most
/// `GRANULES` granules of 16 bytes. See the [module docs](self).
pub struct Tiny<B: OsBackend, L: RawLock = SpinLock, const GRANULES: usize = DEFAULT_GRANULES> {
    /// The engine's state behind its lock.
    locked: Locked<L, State<GRANULES>>,
    backend: B,
}

// SAFETY: the state is reached only under its lock (the invariant on `Locked`), and `B: Sync` lets
// every thread use the backend.
unsafe impl<B: OsBackend + Sync, L: RawLock, const GRANULES: usize> Sync for Tiny<B, L, GRANULES> {}

impl<B: OsBackend, L: RawLock, const GRANULES: usize> Tiny<B, L, GRANULES> {
    const fn build(backend: B) -> Self {
        Tiny {
            locked: Locked::new(State {
                space: Granules::new(),
                counters: HeapCounters::ZERO,
                refusals: Refusals::NEW,
            }),
            backend,
        }
    }

    /// Runs `f` on the state under the lock.
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut State<GRANULES>, &B) -> R) -> R {
        self.locked.with(|state| f(state, &self.backend))
    }

    /// What the allocator holds and has done. Usable sizes are whole granules; there are no
    /// pages, so `pages_made` and `pages_returned` stay 0.
    pub fn stats(&self) -> Stats {
        self.with(|state, _| {
            let bytes = state.space.granules() * GRANULE;
            state.refusals.stats(&state.counters, bytes)
        })
    }

    /// Sets the function called on every refused free (`None`: none). It runs inside the
    /// allocator, under its lock: it must not allocate.
    pub fn set_error_hook(&self, hook: Option<ErrorHook>) {
        self.with(|state, _| state.refusals.set_hook(hook));
    }

    /// Writes the arena map: a header, then one character for each 32 granules (512 bytes), 64 to
    /// a line (`x` all taken, `+` some, `.` none; taken means handed out, or held for good as the
    /// bitmaps and gaps are) and a count. The lock is taken for each line only, so `out` may
    /// allocate from this allocator.
    pub fn write_map(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let granules = self.with(|state, _| state.space.granules());
        writeln!(
            out,
            "tiny arena: {granules} granules of {GRANULE} bytes, at most {GRANULES}, 32 to a character"
        )?;
        let words = granules.div_ceil(32);
        let mut taken = 0;
        for line in (0..words).step_by(64) {
            let mut text = [b'.'; 64];
            let len = (words - line).min(64);
            self.with(|state, _| {
                for (i, c) in text[..len].iter_mut().enumerate() {
                    let n = state.space.taken_in_word(line + i);
                    taken += n as usize;
                    if n == 32 {
                        *c = b'x';
                    } else if n != 0 {
                        *c = b'+';
                    }
                }
            });
            out.write_str("  ")?;
            for &c in &text[..len] {
                out.write_char(char::from(c))?;
            }
            out.write_char('\n')?;
        }
        writeln!(out, "  taken: {taken} of {granules} granules")
    }

    /// Resizes the allocation at `ptr` (made with `align`, `old_size` bytes of it written) to
    /// `new_size` bytes: in place when its run can, else moved. Null, the allocation left as it
    /// was, when there is no room or `ptr` is not a live allocation (which is refused).
    ///
    /// # Safety
    /// If `ptr` is a live allocation, nobody else uses it meanwhile, and it is given up when the
    /// result is not null and not `ptr`.
    unsafe fn realloc_to(
        &self,
        ptr: *mut u8,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> *mut u8 {
        self.with(|state, backend| {
            let (first, n) = match state.space.locate(ptr.addr()) {
                Ok(run) => run,
                Err(kind) => {
                    state.refusals.refuse(kind, ptr, old_size);
                    return ptr::null_mut();
                }
            };
            let wanted = granules_for(new_size);
            if ptr.addr() & (align - 1) == 0 && state.space.resize(backend, first, n, wanted) {
                return state.counted(ptr, wanted.wrapping_sub(n));
            }
            let moved = state.take(backend, wanted, align);
            if !moved.is_null() {
                // SAFETY: both runs are ours and distinct; the old one holds the bytes the caller
                // wrote (at most its `n` granules), the new one at least `new_size`.
                unsafe {
                    ptr::copy_nonoverlapping(ptr, moved, old_size.min(new_size).min(n * GRANULE));
                }
                state.give(first, n);
            }
            moved
        })
    }
}

impl<B: OsBackend, L: ThreadSafe, const GRANULES: usize> Tiny<B, L, GRANULES> {
    /// An allocator over `backend`. Nothing is taken from the backend until the first allocation.
    /// Panics (at compile time, in a `static`) if `GRANULES` granules do not fit in the address
    /// space or leave no room past the bitmaps.
    pub const fn new(backend: B) -> Self {
        Self::build(backend)
    }
}

impl<B: OsBackend, const GRANULES: usize> Tiny<B, NoLock, GRANULES> {
    /// An allocator without a lock, for a program that never allocates from two threads (or from
    /// an interrupt) at once.
    ///
    /// # Safety
    /// No two calls into the allocator may overlap.
    pub const unsafe fn new_single_threaded(backend: B) -> Self {
        Self::build(backend)
    }
}

// SAFETY: every pointer handed out starts a run of the arena's granules, claimed in the bitmaps,
// at least `layout.size()` bytes long and aligned to `layout.align()`, and handed out again only
// after it is freed; `realloc` keeps the contents up to the smaller size; bad frees are refused
// and change nothing.
unsafe impl<B: OsBackend + Sync, L: RawLock, const GRANULES: usize> GlobalAlloc
    for Tiny<B, L, GRANULES>
{
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let n = granules_for(layout.size());
        self.with(|state, backend| state.take(backend, n, layout.align()))
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.with(|state, _| match state.space.locate(ptr.addr()) {
            Ok((first, n)) => state.give(first, n),
            Err(kind) => state.refusals.refuse(kind, ptr, layout.size()),
        });
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { self.realloc_to(ptr, layout.size(), new_size, layout.align()) }
    }
}

crate::front::locked_allocator!(Tiny);
