//! The reference on the host, over a region: contents kept, alignment honoured, bad frees refused,
//! memory running out and coming back, block runs resized in place.

extern crate std;

use super::*;
use std::alloc::{alloc, dealloc};
use std::vec::Vec;

/// A region of `len` bytes aligned to a block, freed on drop.
struct Region(*mut u8, Layout);

impl Region {
    fn new(len: usize) -> Region {
        let layout = Layout::from_size_align(len, BLOCK).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        assert!(!ptr.is_null());
        Region(ptr, layout)
    }

    fn compact(&self) -> Compact<true> {
        // SAFETY: the region is valid, block-aligned, and used by this allocator only (each test
        // makes one allocator per region).
        unsafe { Compact::in_region(self.0, self.1.size()) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.0, self.1) }
    }
}

/// A small xorshift generator, so that the sequences are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A live allocation of the shadow model: where, its layout, and the byte it is filled with.
struct Live {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

fn check(live: &Live) {
    // SAFETY: the allocation is live and `layout.size()` bytes long, all written with `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(live.ptr, live.layout.size()) };
    assert!(
        bytes.iter().all(|&b| b == live.fill),
        "contents changed at {:p}",
        live.ptr
    );
    assert_eq!(live.ptr.addr() % live.layout.align(), 0);
}

fn fill(live: &Live) {
    // SAFETY: the allocation is live and `layout.size()` bytes long.
    unsafe { live.ptr.write_bytes(live.fill, live.layout.size()) };
}

#[test]
fn random_sequences_keep_every_allocation_intact() {
    let region = Region::new(64 << 20);
    let a = region.compact();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut live: Vec<Live> = Vec::new();
    for step in 0..60_000u32 {
        let fill_byte = step as u8;
        // Allocations and frees balance, around a few hundred live at once.
        let draw = if live.len() > 800 { 5 } else { rng.below(10) };
        match draw {
            0..=4 => {
                let max = [64, 1024, 40_000, 200_000][rng.below(4) as usize];
                let size = 1 + rng.below(max) as usize;
                let align = 1 << rng.below(13);
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a valid, non-zero layout.
                let ptr = unsafe { a.alloc(layout) };
                assert!(!ptr.is_null(), "{size} bytes at {align}");
                let new = Live {
                    ptr,
                    layout,
                    fill: fill_byte,
                };
                fill(&new);
                live.push(new);
            }
            5..=7 if !live.is_empty() => {
                let old = live.swap_remove(rng.below(live.len() as u64) as usize);
                check(&old);
                // SAFETY: live, with this layout.
                unsafe { a.dealloc(old.ptr, old.layout) };
            }
            _ if !live.is_empty() => {
                let index = rng.below(live.len() as u64) as usize;
                let old = &live[index];
                check(old);
                let new_size = 1 + rng.below(100_000) as usize;
                // SAFETY: live, with this layout; the new size is valid at its alignment.
                let ptr = unsafe { a.realloc(old.ptr, old.layout, new_size) };
                assert!(!ptr.is_null());
                let kept = old.layout.size().min(new_size);
                // SAFETY: the new allocation holds at least `kept` bytes of the old contents.
                let bytes = unsafe { std::slice::from_raw_parts(ptr, kept) };
                assert!(bytes.iter().all(|&b| b == old.fill));
                let layout = Layout::from_size_align(new_size, old.layout.align()).unwrap();
                live[index] = Live {
                    ptr,
                    layout,
                    fill: fill_byte,
                };
                fill(&live[index]);
            }
            _ => {}
        }
    }
    for old in live.drain(..) {
        check(&old);
        // SAFETY: live, with this layout.
        unsafe { a.dealloc(old.ptr, old.layout) };
    }
    let stats = a.stats();
    assert_eq!(stats.bytes_in_use, 0);
    assert_eq!(stats.allocs, stats.frees);
    assert_eq!(stats.bad_frees, 0);
    assert!(stats.pages_returned > 0 && stats.pages_returned <= stats.pages_made);
}

static REFUSED: std::sync::Mutex<Vec<BadFree>> = std::sync::Mutex::new(Vec::new());

fn record(_ptr: *mut u8, why: BadFree) {
    REFUSED.lock().unwrap().push(why);
}

#[test]
fn bad_frees_are_refused_counted_and_reported() {
    let region = Region::new(4 << 20);
    let a = region.compact();
    a.set_error_hook(Some(record));
    let small = Layout::from_size_align(24, 8).unwrap();
    let large = Layout::from_size_align(100_000, 8).unwrap();
    // SAFETY: valid, non-zero layouts.
    let (x, y, big) = unsafe { (a.alloc(small), a.alloc(small), a.alloc(large)) };
    let mut outside = 0u64;
    // SAFETY: every call below is a bad free the allocator must refuse without effect, or the
    // one valid free of `x`.
    unsafe {
        a.dealloc(ptr::addr_of_mut!(outside).cast(), small);
        a.dealloc(x.add(8), small);
        a.dealloc(big.add(BLOCK), large);
        a.dealloc(x, small);
        a.dealloc(x, small);
    }
    assert_eq!(
        *REFUSED.lock().unwrap(),
        [
            BadFree::NotOurs,
            BadFree::NotAnObject,
            BadFree::NotAnObject,
            BadFree::DoubleFree
        ]
    );
    assert_eq!(a.stats().bad_frees, 4);
    // The refused frees changed nothing: `y` and `big` are still live, `x`'s slot is reused once.
    // SAFETY: valid layout.
    let again = unsafe { a.alloc(small) };
    assert_eq!(again, x);
    // SAFETY: valid layout.
    let other = unsafe { a.alloc(small) };
    assert!(other != x && other != y);
    // SAFETY: live allocations with these layouts.
    unsafe {
        a.dealloc(big, large);
        a.dealloc(big, large);
    }
    assert_eq!(REFUSED.lock().unwrap().last(), Some(&BadFree::NotAnObject));
    assert_eq!(a.stats().bad_frees, 5);
}

#[test]
fn running_out_returns_null_and_freeing_makes_room_again() {
    let region = Region::new(1 << 20);
    let a = region.compact();
    let layout = Layout::from_size_align(200_000, 8).unwrap();
    let mut held = Vec::new();
    loop {
        // SAFETY: valid layout.
        let ptr = unsafe { a.alloc(layout) };
        if ptr.is_null() {
            break;
        }
        held.push(ptr);
    }
    assert_eq!(held.len(), 5);
    // SAFETY: a live allocation of this layout.
    unsafe { a.dealloc(held.pop().unwrap(), layout) };
    // SAFETY: valid layout.
    assert!(!unsafe { a.alloc(layout) }.is_null());
    // Alignments past the block size are refused, small objects included.
    for size in [64, 8192, 40_000] {
        let layout = Layout::from_size_align(size, 2 * BLOCK).unwrap();
        // SAFETY: valid layout.
        assert!(unsafe { a.alloc(layout) }.is_null());
    }
    // A size past anything the arena could hold fails cleanly.
    let huge = Layout::from_size_align(isize::MAX as usize - 4096, 8).unwrap();
    // SAFETY: valid layout.
    assert!(unsafe { a.alloc(huge) }.is_null());
}

#[test]
fn block_runs_shrink_and_grow_in_place() {
    let region = Region::new(4 << 20);
    let a = region.compact();
    let layout = Layout::from_size_align(10 * BLOCK, 8).unwrap();
    // SAFETY: valid layouts and live allocations throughout.
    unsafe {
        let run = a.alloc(layout);
        let shrunk = a.realloc(run, layout, 3 * BLOCK);
        assert_eq!(shrunk, run);
        let grown = a.realloc(
            run,
            Layout::from_size_align(3 * BLOCK, 8).unwrap(),
            12 * BLOCK,
        );
        assert_eq!(grown, run);
        assert_eq!(a.stats().bytes_in_use, 12 * BLOCK);
        // A run after it keeps it from growing: then it moves.
        let after = a.alloc(Layout::from_size_align(BLOCK, 8).unwrap());
        assert_eq!(after, run.add(12 * BLOCK));
        let moved = a.realloc(
            run,
            Layout::from_size_align(12 * BLOCK, 8).unwrap(),
            20 * BLOCK,
        );
        assert!(moved != run);
    }
}
