//! The floor of workload 4: not an allocator to use, but the least an allocator can do per call,
//! to show what the workload costs with next to nothing in the allocator.
//!
//! Sizes round up to a power of two. Each power of two has one last-in-first-out free list; a
//! request pops it, or else cuts fresh memory from a run that `memory.grow` extends. A free pushes
//! onto the list, a realloc within the same power of two stays in place, and any other realloc
//! moves. Nothing is checked (a bad free corrupts the lists), nothing is counted, no memory is
//! ever given back or merged, and the program must have one thread. The ratios of the real
//! allocators to this one say how much of a run is theirs; the rest is the workload itself (its
//! random numbers, its writes to each allocation, the bytes a realloc copies).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest object: a free one holds the list link.
const MIN_SHIFT: u32 = 4;
/// One list per power of two up to 2^31.
const LISTS: usize = 32;
/// Fresh memory is asked of `memory.grow` in runs of at least this many 64 KiB pages (1 MiB).
const GROW_PAGES: usize = 16;
const WASM_PAGE: usize = 64 * 1024;

/// What the allocator holds.
struct Lists {
    /// `free[k]` heads the free objects of 2^k bytes (0: none); each free object's first word is
    /// the address of the next.
    free: [usize; LISTS],
    /// The fresh memory left: from address `next` up to `end` (both 0 at first). In 64 bits, so
    /// that no sum near the top of the 4 GiB address space wraps.
    next: u64,
    end: u64,
}

struct Floor(UnsafeCell<Lists>);

// SAFETY: the program that installs it has one thread (the harness makes none), so no two calls
// ever touch the lists at once.
unsafe impl Sync for Floor {}

/// The power of two that a request of `size` bytes at `align` takes.
#[inline(always)]
fn shift_of(size: usize, align: usize) -> u32 {
    let size = size.max(align).max(1 << MIN_SHIFT);
    usize::BITS - (size - 1).leading_zeros()
}

impl Lists {
    /// An object of 2^`shift` bytes, aligned to its size; null when memory cannot grow.
    #[inline(always)]
    fn take(&mut self, shift: u32) -> *mut u8 {
        let Some(head) = self.free.get_mut(shift as usize) else {
            return ptr::null_mut();
        };
        if *head != 0 {
            let object = *head as *mut usize;
            // SAFETY: a listed object is a free object of this list, which holds the next link in
            // its first word.
            *head = unsafe { object.read() };
            return object.cast();
        }
        self.fresh(1 << shift)
    }

    /// `size` bytes (a power of two) of fresh memory, aligned to `size`.
    #[inline(never)]
    fn fresh(&mut self, size: usize) -> *mut u8 {
        let bytes = size as u64;
        let mut start = self.next.next_multiple_of(bytes);
        if self.next == 0 || start + bytes > self.end {
            // Twice the size: room for the object at its alignment wherever the run starts.
            let pages = (size / (WASM_PAGE / 2)).max(GROW_PAGES);
            let first = core::arch::wasm32::memory_grow(0, pages);
            if first == usize::MAX {
                return ptr::null_mut();
            }
            start = (first as u64 * WASM_PAGE as u64).next_multiple_of(bytes);
            self.end = (first + pages) as u64 * WASM_PAGE as u64;
            if start + bytes > self.end {
                return ptr::null_mut();
            }
        }
        self.next = start + bytes;
        // Below `end`, which is within linear memory: the address fits a wasm32 `usize`. Linear
        // memory is not a Rust allocation, so a pointer into it takes exposed provenance.
        ptr::with_exposed_provenance_mut(start as usize)
    }

    /// Puts an object of 2^`shift` bytes back on its list.
    ///
    /// # Safety
    /// `object` came from `take(shift)` and is not used any more.
    #[inline(always)]
    unsafe fn give(&mut self, object: *mut u8, shift: u32) {
        let head = &mut self.free[shift as usize];
        // SAFETY: the object is at least one word, aligned, and the caller's no longer.
        unsafe { object.cast::<usize>().write(*head) };
        *head = object.addr();
    }
}

// SAFETY: `alloc` hands out memory that nothing else uses until it comes back (objects are on one
// list at a time, fresh memory is cut once), of at least the size asked for, aligned to the
// request's alignment (an object of 2^k bytes is aligned to 2^k, and 2^k is at least the
// alignment); `realloc` keeps the contents (in place, or copied before the old object goes back).
unsafe impl GlobalAlloc for Floor {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread (see `Sync`), and no call into the allocator holds this reference.
        let lists = unsafe { &mut *self.0.get() };
        lists.take(shift_of(layout.size(), layout.align()))
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let lists = unsafe { &mut *self.0.get() };
        // SAFETY: `GlobalAlloc`'s contract: `ptr` came from `alloc` with this layout, hence from
        // the list of its power of two, and the caller gives it up.
        unsafe { lists.give(ptr, shift_of(layout.size(), layout.align())) };
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = shift_of(layout.size(), layout.align());
        let new = shift_of(new_size, layout.align());
        if old == new {
            return ptr;
        }
        // SAFETY: as in `alloc`.
        let lists = unsafe { &mut *self.0.get() };
        let moved = lists.take(new);
        if !moved.is_null() {
            // SAFETY: both objects are ours and distinct; the old one holds `layout.size()` bytes
            // of the caller's, the new one at least `new_size`.
            unsafe {
                ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                lists.give(ptr, old);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Floor = Floor(UnsafeCell::new(Lists {
    free: [0; LISTS],
    next: 0,
    end: 0,
}));

fn main() {
    quarry_wasm_speed::main("floor");
}
