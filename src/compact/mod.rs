//! The compact engine: the object layer of [`Quarry`](crate::Quarry) over one arena, for the
//! builds where code size matters most (a wasm module, a small firmware image).
//!
//! [`Compact`] keeps what the main engine does for every allocation: the same size classes, pages
//! found from a pointer through a tag per block, a bit per object that tells a double free, empty
//! pages given back, large objects as block runs, realloc in place (and, for an allocation above
//! 1 KiB that grows out of its object, into the power of two that holds it, so that it can grow
//! again in place), every bad free refused, counted and reported, statistics and an arena map. A
//! page's header and bitmap are not in the page but in its *record* (128 bytes), kept with the
//! other pages' records in blocks of records held for good, so that the headers the fast paths
//! read share a few cache lines and memory pages. It drops the generality of the arena layer:
//!
//! - **one arena**, grown at its end over a backend that grows in place (`WasmGrow`, `Sbrk`,
//!   `StaticBuffer`); over any other backend the arena is the first region it gives;
//! - **a tag per block**, searched under the engine's lock, instead of compare-and-swap bitmaps;
//!   the tags are a table of `BLOCKS` words in the arena's first blocks, so the arena spans at
//!   most `BLOCKS` blocks, and the table costs 4 bytes for each (with the default 16384 and
//!   `Config::WASM`'s 4 KiB blocks: 64 MiB at most, 64 KiB of table; at most 32 GiB whatever the
//!   settings). On firmware, pick `BLOCKS` near the heap's size over the block size: a table
//!   larger than the heap leaves no room;
//! - **one heap behind one lock**: no registry, exclusive arenas, handles, purging, or remote
//!   frees. Threads that allocate at once wait for each other.
//!
//! Alignments up to the arena's size are honoured; larger ones get null.
//!
//! ```
//! use quarry_alloc::{Compact, Config, SpinLock, StaticBuffer};
//! // 256 KiB in blocks of 256 bytes (`Config::EMBEDDED`): 1024 blocks, a 4 KiB tag table.
//! static HEAP: Compact<StaticBuffer<{ 256 * 1024 }>, SpinLock, 1024> =
//!     Compact::new(StaticBuffer::new(), Config::EMBEDDED);
//!
//! let layout = core::alloc::Layout::from_size_align(100, 8).unwrap();
//! let p = unsafe { core::alloc::GlobalAlloc::alloc(&HEAP, layout) };
//! assert!(!p.is_null());
//! unsafe { core::alloc::GlobalAlloc::dealloc(&HEAP, p, layout) };
//! assert_eq!(HEAP.stats().bytes_in_use, 0);
//! ```

mod pages;
mod space;
#[cfg(test)]
mod tests;

use crate::backend::OsBackend;
use crate::error::ErrorHook;
use crate::front::{Locked, Refusals};
use crate::sync::{NoLock, RawLock, SpinLock, ThreadSafe};
use crate::{Config, Stats};
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ptr::{self, NonNull};
use pages::Pages;

/// Blocks the arena may span unless the type says otherwise: a tag table of 64 KiB.
pub const DEFAULT_BLOCKS: usize = 16 * 1024;

/// What the engine holds besides its backend; reached only under the lock.
struct State<const BLOCKS: usize> {
    pages: Pages<BLOCKS>,
    refusals: Refusals,
}

/// An allocator of the compact engine over backend `B`, behind lock `L`, with an arena of at most
/// `BLOCKS` blocks. See the [module docs](self).
pub struct Compact<B: OsBackend, L: RawLock = SpinLock, const BLOCKS: usize = DEFAULT_BLOCKS> {
    /// The engine's state behind its lock.
    locked: Locked<L, State<BLOCKS>>,
    backend: B,
}

// SAFETY: the state is reached only under its lock (the invariant on `Locked`), and `B: Sync` lets
// every thread use the backend.
unsafe impl<B: OsBackend + Sync, L: RawLock, const BLOCKS: usize> Sync for Compact<B, L, BLOCKS> {}

impl<B: OsBackend, L: RawLock, const BLOCKS: usize> Compact<B, L, BLOCKS> {
    const fn build(backend: B, config: Config) -> Self {
        Compact {
            locked: Locked::new(State {
                pages: Pages::new(&config),
                refusals: Refusals::NEW,
            }),
            backend,
        }
    }

    /// Runs `f` on the state under the lock.
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut State<BLOCKS>, &B) -> R) -> R {
        self.locked.with(|state| f(state, &self.backend))
    }

    /// What the allocator holds and has done.
    pub fn stats(&self) -> Stats {
        self.with(|state, _| {
            let space = &state.pages.space;
            let bytes = space.blocks() << space.shift();
            state.refusals.stats(&state.pages.counters, bytes)
        })
    }

    /// Sets the function called on every refused free (`None`: none). It runs inside the
    /// allocator, under its lock: it must not allocate.
    pub fn set_error_hook(&self, hook: Option<ErrorHook>) {
        self.with(|state, _| state.refusals.set_hook(hook));
    }

    /// Writes the arena map: a header, then the blocks 64 to a line (`p` in a page, `x` in a block
    /// run, a gap, the tag table or a block of page records, `.` free, block 0 first) and a count.
    /// The lock is taken for each line only, so `out` may allocate from this allocator.
    pub fn write_map(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let (blocks, shift) = self.with(|state, _| {
            let space = &state.pages.space;
            (space.blocks(), space.shift())
        });
        writeln!(
            out,
            "compact arena: {blocks} blocks of {} bytes, at most {BLOCKS}",
            1usize << shift
        )?;
        let mut held = 0;
        for line in (0..blocks).step_by(64) {
            let mut text = [b'.'; 64];
            let len = (blocks - line).min(64);
            self.with(|state, _| {
                for (c, (busy, page)) in text
                    .iter_mut()
                    .zip(state.pages.space.states(line..line + len))
                {
                    if busy {
                        held += 1;
                        *c = if page { b'p' } else { b'x' };
                    }
                }
            });
            out.write_str("  ")?;
            for &c in &text[..len] {
                out.write_char(char::from(c))?;
            }
            out.write_char('\n')?;
        }
        writeln!(out, "  held: {held} of {blocks} blocks")
    }
}

impl<B: OsBackend, L: ThreadSafe, const BLOCKS: usize> Compact<B, L, BLOCKS> {
    /// An allocator over `backend` with the settings `config` (`block_size`, `small_limit` and
    /// `page_target`; the arena and purge settings do not apply). Nothing is taken from the
    /// backend until the first allocation. Panics (at compile time, in a `static`) if `config` is
    /// invalid or `BLOCKS` blocks of its size do not fit in the address space.
    pub const fn new(backend: B, config: Config) -> Self {
        Self::build(backend, config)
    }
}

impl<B: OsBackend, const BLOCKS: usize> Compact<B, NoLock, BLOCKS> {
    /// An allocator without a lock, for a program that never allocates from two threads (or from
    /// an interrupt handler) at once.
    ///
    /// # Safety
    /// No two calls into the allocator ever overlap.
    pub const unsafe fn new_single_threaded(backend: B, config: Config) -> Self {
        Self::build(backend, config)
    }
}

// SAFETY: every pointer handed out starts claimed memory of the arena (an object of a page, or a
// block run) at least `layout.size()` bytes long and aligned to `layout.align()`, handed out
// again only after it is freed; `realloc` keeps the contents up to the smaller size; bad frees
// are refused and change nothing.
unsafe impl<B: OsBackend + Sync, L: RawLock, const BLOCKS: usize> GlobalAlloc
    for Compact<B, L, BLOCKS>
{
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size().max(1), layout.align());
        self.with(|state, backend| state.pages.alloc_any(backend, size, align))
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.with(|state, _| {
            // SAFETY: the caller gives the allocation up (`dealloc`'s contract).
            if let Err(kind) = unsafe { state.pages.free(ptr) } {
                state.refusals.refuse(kind, ptr, layout.size());
            }
        });
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { self.realloc_to(ptr, layout.size(), new_size, layout.align()) }
    }
}

impl<B: OsBackend, L: RawLock, const BLOCKS: usize> Compact<B, L, BLOCKS> {
    /// `realloc` of the allocation at `ptr`, holding `old_size` bytes the caller wrote, to
    /// `new_size` bytes aligned to `align`.
    ///
    /// # Safety
    /// `ptr` is a live allocation of this allocator of at least `old_size` bytes; `new_size` is
    /// not zero and forms a valid layout with `align`.
    unsafe fn realloc_to(
        &self,
        ptr: *mut u8,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> *mut u8 {
        self.with(|state, backend| match state.pages.locate(ptr) {
            // SAFETY: just located; `realloc`'s contract: `ptr` is live with `layout`.
            Ok(found) => unsafe {
                state
                    .pages
                    .realloc_at(backend, ptr, found, old_size, new_size, align)
            },
            Err(kind) => {
                state.refusals.refuse(kind, ptr, old_size);
                ptr::null_mut()
            }
        })
    }
}

crate::front::locked_allocator!(Compact);
