//! Hostile input to `Quarry`, on the mock backend and on a `StaticBuffer` (a backend without
//! virtual memory): the largest layouts there are and resizes to sizes near `isize::MAX`; alignments
//! from the block size past the arena size; zero-sized requests through `allocator_api2`; resizes
//! across size classes and between page objects and block runs; zeroed allocation over purged
//! memory; and frees (and resizes) of pointers the allocator never handed out, of interior pointers
//! and of pointers already freed, also while the owner heap is busy.
//!
//! Proves that none of it panics; that what cannot be served gives null or `Err(AllocError)`; that
//! every alignment up to the arena size is honoured; that zero-sized requests never reach the heap;
//! that contents survive every resize; and that every bad free is refused, counted in `stats()` by
//! its kind and passed to the error hook, leaving the state as it was: live allocations keep their
//! contents, new ones do not overlap them, and once everything valid is freed no block is in use.

#![cfg(not(target_family = "wasm"))]

mod common;

use allocator_api2::alloc::{AllocError, Allocator};
use common::{fill, holds};
use quarry_alloc::backend::{Mock, OutOfMemory, Purged};
use quarry_alloc::{
    ArenaId, Config, FreeError, FreeErrorKind, OsBackend, Quarry, Region, SpinLock, StaticBuffer,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// For the mock: 4 KiB blocks, arenas of 1 MiB (a quarter of the 4 MiB reserve: the mock has no
/// virtual reserve), purged 100 ms after a free by the mock's clock, which moves only when told to
/// (so nothing is purged unless a test asks for it).
const MOCK_CONFIG: Config = Config::HOST.with_arena_reserve(4 * MIB);

/// The largest arena the mock's registry reserves on its own.
const MOCK_ARENA: usize = MIB;

/// The largest arena the `StaticBuffer` registries grow (`Config::WASM`).
const STATIC_ARENA: usize = 4 * MIB;

fn mock_quarry() -> Quarry<Mock> {
    Quarry::new(Mock::new(32 * MIB), MOCK_CONFIG)
}

// --- the error hook: one counter set per test, so that tests running at once do not mix ---------

const SLOTS: usize = 16;
/// `HOOK[slot][kind]`: calls of `record::<slot>` for each `FreeErrorKind`, by `kind_index`.
static HOOK: [[AtomicUsize; 4]; SLOTS] = [const { [const { AtomicUsize::new(0) }; 4] }; SLOTS];

fn kind_index(kind: FreeErrorKind) -> usize {
    match kind {
        FreeErrorKind::NotOurs => 0,
        FreeErrorKind::DoubleFree => 1,
        FreeErrorKind::PastEnd => 2,
        FreeErrorKind::Misaligned => 3,
    }
}

/// An error hook that only counts (it must not allocate).
fn record<const SLOT: usize>(error: &FreeError) {
    HOOK[SLOT][kind_index(error.kind)].fetch_add(1, Ordering::SeqCst);
}

/// The hook's counts of slot `slot`: (not ours, double frees, misaligned or past the end).
fn hooked(slot: usize) -> (usize, usize, usize) {
    let get = |k: usize| HOOK[slot][k].load(Ordering::SeqCst);
    (get(0), get(1), get(2) + get(3))
}

/// The refused frees in `stats()`, in the hook's order.
fn refused<B: OsBackend + Sync, const H: usize>(
    quarry: &Quarry<B, SpinLock, H>,
) -> (usize, usize, usize) {
    let s = quarry.stats();
    (s.not_ours, s.double_frees, s.misaligned)
}

// --- helpers -------------------------------------------------------------------------------------

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// A live allocation with its layout and fill byte.
#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    fill: u8,
}

impl Live {
    fn intact(&self) -> bool {
        holds(self.ptr, self.layout.size(), self.fill)
    }

    fn span(&self) -> (usize, usize) {
        (self.ptr.as_ptr() as usize, self.layout.size())
    }
}

/// Allocates `layout` through `GlobalAlloc`, fills it with `byte`.
fn new_live<B: OsBackend + Sync, const H: usize>(
    quarry: &Quarry<B, SpinLock, H>,
    layout: Layout,
    byte: u8,
) -> Live {
    // SAFETY: every layout used here has a non-zero size.
    let ptr = NonNull::new(unsafe { quarry.alloc(layout) }).expect("memory");
    assert_eq!(ptr.as_ptr() as usize % layout.align(), 0);
    fill(ptr, layout.size(), byte);
    Live {
        ptr,
        layout,
        fill: byte,
    }
}

fn free_live<B: OsBackend + Sync, const H: usize>(quarry: &Quarry<B, SpinLock, H>, live: Live) {
    assert!(live.intact(), "{:?} lost its contents", live.layout);
    // SAFETY: live with this layout, freed once.
    unsafe { quarry.dealloc(live.ptr.as_ptr(), live.layout) };
}

/// Asserts that no two of `spans` (address, size) overlap.
fn assert_disjoint(mut spans: Vec<(usize, usize)>) {
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(
            pair[0].0 + pair[0].1 <= pair[1].0,
            "{:#x}+{} overlaps {:#x}",
            pair[0].0,
            pair[0].1,
            pair[1].0
        );
    }
}

/// After a test has freed everything valid: trims, and checks that nothing is in use and that
/// exactly `errors` frees were refused.
fn assert_clean<B: OsBackend + Sync, const H: usize>(
    quarry: &Quarry<B, SpinLock, H>,
    errors: usize,
) {
    quarry.trim();
    let stats = quarry.stats();
    assert_eq!(stats.errors(), errors, "{stats:?}");
    assert_eq!(stats.allocations, stats.frees, "{stats:?}");
    assert_eq!(stats.bytes_in_use, 0, "{stats:?}");
    assert_eq!(quarry.arenas().stats().blocks_in_use, 0);
}

fn assert_mock_clean(quarry: &Quarry<Mock>) {
    let mock = quarry.arenas().backend();
    assert_eq!(mock.verify_poison(), Ok(()));
    assert!(mock.misuse().is_empty(), "{:?}", mock.misuse());
}

// --- sizes at and past isize::MAX ----------------------------------------------------------------

/// The largest layouts `Layout` accepts (size rounded up to the alignment at most `isize::MAX`),
/// and a few more past anything a heap can hold.
fn huge_layouts() -> Vec<Layout> {
    let max = isize::MAX as usize;
    for align in [1usize, 8, 4096, MIB] {
        // One byte more than the largest size is refused by `Layout` itself.
        assert!(Layout::from_size_align(max + 1 - align, align).is_ok());
        assert!(Layout::from_size_align(max + 2 - align, align).is_err());
    }
    assert!(Layout::from_size_align(max + 1, 1).is_err());
    assert!(Layout::from_size_align(8, 1 << 63).is_err());
    vec![
        layout(max, 1),
        layout(max - 7, 8),
        layout(max + 1 - 4096, 4096),
        layout(max + 1 - MIB, MIB),
        layout(1 << 62, 1 << 62),
        layout(max / 2 + 1, 16),
        layout(1 << 40, 8),
        layout(usize::MAX >> 4, 4096),
    ]
}

fn huge_requests_give_null<B: OsBackend + Sync>(quarry: &Quarry<B>) {
    let blocks = quarry.arenas().stats().blocks_in_use;
    for l in huge_layouts() {
        // SAFETY: the layouts have non-zero sizes.
        unsafe {
            assert!(quarry.alloc(l).is_null(), "{l:?}");
            assert!(quarry.alloc_zeroed(l).is_null(), "{l:?}");
        }
        assert_eq!(quarry.allocate(l), Err(AllocError), "{l:?}");
        assert_eq!(quarry.allocate_zeroed(l), Err(AllocError), "{l:?}");
        assert_eq!(quarry.arenas().stats().blocks_in_use, blocks, "{l:?}");
    }
    // The registry below takes any `usize`: sizes past `isize::MAX` and alignments that are not
    // powers of two or overflow give `None`.
    let arenas = quarry.arenas();
    for (size, align) in [
        (isize::MAX as usize + 1, 8),
        (usize::MAX, 1),
        (usize::MAX - 4095, 4096),
        (usize::MAX / 2, 1 << 62),
        (8, 1 << 63),
        (8, 3),
        (8, 0),
        (0, 8),
    ] {
        assert_eq!(
            arenas.alloc(size, align, true, ArenaId::ANY),
            None,
            "{size} {align}"
        );
        assert_eq!(arenas.stats().blocks_in_use, blocks);
    }
}

/// Resizes of live allocations (a small object, a page object, a large one) to sizes near
/// `isize::MAX`: null or `Err`, and the old allocation stays live with its contents.
fn huge_resizes_give_null<B: OsBackend + Sync>(quarry: &Quarry<B>) {
    let live = [
        new_live(quarry, layout(24, 8), 0x11),
        new_live(quarry, layout(3000, 64), 0x22),
        new_live(quarry, layout(100 * KIB, 4096), 0x33),
    ];
    let blocks = quarry.arenas().stats().blocks_in_use;
    let max = isize::MAX as usize;
    for l in live {
        let a = l.layout.align();
        // Every new size rounded up to the alignment is at most `isize::MAX`, as `realloc` asks.
        for new_size in [max + 1 - a, max / 2, 1 << 40, max + 1 - 2 * a] {
            // SAFETY: live with `l.layout`; the new size is valid for the alignment.
            let p = unsafe { quarry.realloc(l.ptr.as_ptr(), l.layout, new_size) };
            assert!(p.is_null(), "{:?} to {new_size}", l.layout);
            let new = layout(new_size, a);
            // SAFETY: live with `l.layout`; `new` is no smaller.
            unsafe {
                assert_eq!(quarry.grow(l.ptr, l.layout, new), Err(AllocError));
                assert_eq!(quarry.grow_zeroed(l.ptr, l.layout, new), Err(AllocError));
            }
            assert!(l.intact(), "a failed resize damaged {:?}", l.layout);
            assert_eq!(quarry.arenas().stats().blocks_in_use, blocks);
        }
    }
    assert_eq!(quarry.stats().errors(), 0);
    // Still usable: a normal resize and the frees.
    for l in live {
        // SAFETY: live with `l.layout`.
        let p = unsafe { quarry.realloc(l.ptr.as_ptr(), l.layout, l.layout.size() + 1) };
        let grown = Live {
            ptr: NonNull::new(p).expect("memory"),
            layout: layout(l.layout.size() + 1, l.layout.align()),
            fill: l.fill,
        };
        assert!(holds(grown.ptr, l.layout.size(), l.fill));
        fill(grown.ptr, grown.layout.size(), l.fill);
        free_live(quarry, grown);
    }
}

#[test]
fn sizes_near_isize_max_give_null_on_the_mock() {
    let quarry = mock_quarry();
    huge_requests_give_null(&quarry);
    huge_resizes_give_null(&quarry);
    assert_clean(&quarry, 0);
    assert_mock_clean(&quarry);
}

static HUGE: Quarry<StaticBuffer<{ 4 * MIB }>> = Quarry::new(StaticBuffer::new(), Config::WASM);

#[test]
fn sizes_near_isize_max_give_null_on_a_static_buffer() {
    huge_requests_give_null(&HUGE);
    huge_resizes_give_null(&HUGE);
    assert_clean(&HUGE, 0);
}

// --- alignments ---------------------------------------------------------------------------------

/// Every alignment from the block size up: honoured up to `honoured` (the arena size, or more),
/// null or honoured above. Each allocation is written whole, resized (keeping its alignment and
/// contents) and freed.
fn alignments<B: OsBackend + Sync>(quarry: &Quarry<B>, honoured: usize) {
    let mut align = 4096;
    let mut served = 0;
    while align <= 1 << 62 {
        for size in [1, 100, 5000, 40 * KIB] {
            let l = layout(size, align);
            let byte = align.trailing_zeros() as u8;
            // Through `GlobalAlloc` and through `Allocator`, one after the other.
            // SAFETY: non-zero size.
            let global = NonNull::new(unsafe { quarry.alloc(l) });
            let api = quarry.allocate(l).ok().map(NonNull::cast::<u8>);
            for got in [global, api] {
                let Some(ptr) = got else {
                    assert!(align > honoured, "{l:?} not honoured");
                    continue;
                };
                served += 1;
                assert_eq!(ptr.as_ptr() as usize % align, 0, "{l:?}");
                fill(ptr, size, byte);
                // Grown (in place or moved), the alignment and the contents stay.
                // SAFETY: live with `l`.
                let grown = unsafe { quarry.realloc(ptr.as_ptr(), l, size + 4096) };
                let grown = NonNull::new(grown).expect("grow");
                assert_eq!(grown.as_ptr() as usize % align, 0, "{l:?} grown");
                assert!(holds(grown, size, byte));
                // SAFETY: live with its new layout.
                unsafe { quarry.dealloc(grown.as_ptr(), layout(size + 4096, align)) };
            }
        }
        align *= 2;
    }
    assert!(served > 0);
    assert_eq!(quarry.stats().errors(), 0);
    // Zero-sized requests of any alignment: a dangling pointer at the alignment itself.
    for shift in [0, 12, 20, 30, 62] {
        let l = layout(0, 1 << shift);
        let empty = quarry.allocate(l).unwrap();
        assert_eq!(
            (empty.cast::<u8>().as_ptr() as usize, empty.len()),
            (l.align(), 0)
        );
    }
}

#[test]
fn alignments_up_to_the_arena_size_are_honoured_on_the_mock() {
    let quarry = mock_quarry();
    // Past the arena size too, on a backend that has room: the registry reserves a larger arena.
    alignments(&quarry, 4 * MOCK_ARENA);
    assert_clean(&quarry, 0);
    assert_mock_clean(&quarry);
}

static ALIGNED: Quarry<StaticBuffer<{ 24 * MIB }>> = Quarry::new(StaticBuffer::new(), Config::WASM);

#[test]
fn alignments_up_to_the_arena_size_are_honoured_on_a_static_buffer() {
    alignments(&ALIGNED, STATIC_ARENA);
    assert_clean(&ALIGNED, 0);
}

// --- zero-sized requests ------------------------------------------------------------------------

/// Zero-sized `allocate`, `allocate_zeroed`, `grow`, `shrink` and `deallocate` make no allocation,
/// no backend call and no error; growing from and shrinking to size 0 are an allocation and a free.
fn zero_sized<B: OsBackend + Sync>(quarry: &Quarry<B>) {
    let before = quarry.stats();
    let blocks = quarry.arenas().stats().blocks_in_use;
    for align in [1, 8, 64, 4096, MIB, 1 << 30] {
        let zero = layout(0, align);
        let a = quarry.allocate(zero).unwrap();
        let z = quarry.allocate_zeroed(zero).unwrap();
        for p in [a, z] {
            assert_eq!(p.len(), 0);
            assert_eq!(p.cast::<u8>().as_ptr() as usize % align, 0);
        }
        // SAFETY: zero-sized allocations of this allocator with `zero`.
        unsafe {
            let g = quarry.grow(a.cast(), zero, zero).unwrap();
            let s = quarry.shrink(z.cast(), zero, zero).unwrap();
            let gz = quarry.grow_zeroed(g.cast(), zero, zero).unwrap();
            assert_eq!((g.len(), s.len(), gz.len()), (0, 0, 0));
            quarry.deallocate(gz.cast(), zero);
            quarry.deallocate(s.cast(), zero);
        }
    }
    assert_eq!(
        quarry.stats(),
        before,
        "zero-sized requests touched the heap"
    );
    assert_eq!(quarry.arenas().stats().blocks_in_use, blocks);

    // From size 0 to 100 and back: an allocation (zeroed by `grow_zeroed`) and a free.
    let zero = layout(0, 16);
    let full = layout(100, 16);
    let empty = quarry.allocate(zero).unwrap();
    // SAFETY: `empty` is a zero-sized allocation with `zero`; `full` is larger.
    let grown = unsafe { quarry.grow_zeroed(empty.cast(), zero, full) }.unwrap();
    assert!(grown.len() >= 100);
    assert!(holds(grown.cast(), 100, 0));
    fill(grown.cast(), 100, 0x5A);
    assert_eq!(quarry.stats().allocations, before.allocations + 1);
    // SAFETY: live with `full`; `zero` is smaller.
    let shrunk = unsafe { quarry.shrink(grown.cast(), full, zero) }.unwrap();
    assert_eq!(shrunk.len(), 0);
    assert_eq!(
        shrunk.cast::<u8>().as_ptr() as usize,
        16,
        "dangling, not the old pointer"
    );
    // SAFETY: a zero-sized allocation.
    unsafe { quarry.deallocate(shrunk.cast(), zero) };
    let after = quarry.stats();
    assert_eq!(after.frees, before.frees + 1);
    assert_eq!(after.errors(), 0);
}

#[test]
fn zero_sized_requests_never_reach_the_heap_on_the_mock() {
    let quarry = mock_quarry();
    zero_sized(&quarry);
    let calls = quarry.arenas().backend().calls();
    // Only the one real allocation (of 100 bytes) asked the backend for anything.
    assert!(calls.len() <= 2, "{calls:?}");
    assert_clean(&quarry, 0);
    assert_mock_clean(&quarry);

    let fresh = mock_quarry();
    let l = layout(0, 8);
    let p = (&fresh).allocate(l).unwrap();
    // SAFETY: a zero-sized allocation.
    unsafe { (&fresh).deallocate(p.cast(), l) };
    assert!(fresh.arenas().backend().calls().is_empty());
    assert_eq!(fresh.arenas().arena_count(), 0);
}

static ZERO: Quarry<StaticBuffer<{ MIB }>> = Quarry::new(StaticBuffer::new(), Config::WASM);

#[test]
fn zero_sized_requests_never_reach_the_heap_on_a_static_buffer() {
    let l = layout(0, 4096);
    let p = (&ZERO).allocate(l).unwrap();
    // SAFETY: a zero-sized allocation.
    unsafe { (&ZERO).deallocate(p.cast(), l) };
    assert_eq!(
        ZERO.arenas().backend().remaining(),
        MIB,
        "the buffer is untouched"
    );
    zero_sized(&ZERO);
    assert_clean(&ZERO, 0);
}

// --- resizes across classes ---------------------------------------------------------------------

/// The sizes one allocation goes through: up through the size classes, pages and block runs, then
/// down again (large objects shrink in place).
const CHAIN: [usize; 17] = [
    8,
    24,
    100,
    1000,
    4096,
    12 * KIB,
    30 * KIB,
    33 * KIB,
    40 * KIB,
    200 * KIB,
    64 * KIB,
    20 * KIB,
    5000,
    100,
    1,
    3000,
    8,
];

/// Walks one allocation through `CHAIN` for each alignment, by `GlobalAlloc::realloc` and by
/// `Allocator::grow`/`shrink`, with another allocation made after each step (so that growing in
/// place is not always possible); the contents are checked at every step.
fn resize_chains<B: OsBackend + Sync>(quarry: &Quarry<B>) {
    let mut others = Vec::new();
    for (n, align) in [8usize, 64, 4096].into_iter().enumerate() {
        for global in [true, false] {
            let mut cur = new_live(quarry, layout(CHAIN[0], align), 1);
            for (i, &size) in CHAIN.iter().enumerate().skip(1) {
                let new = layout(size, align);
                // SAFETY: live with `cur.layout`; `size` is non-zero and small.
                let ptr = unsafe { common::resize(quarry, cur.ptr, cur.layout, size, global) };
                let ptr = ptr.unwrap_or_else(|| panic!("{:?} to {size}", cur.layout));
                assert_eq!(ptr.as_ptr() as usize % align, 0);
                let kept = cur.layout.size().min(size);
                assert!(
                    holds(ptr, kept, cur.fill),
                    "{:?} to {size} (global {global}) lost its contents",
                    cur.layout
                );
                let byte = (i as u8).wrapping_mul(29).wrapping_add(n as u8) | 1;
                fill(ptr, size, byte);
                cur = Live {
                    ptr,
                    layout: new,
                    fill: byte,
                };
                others.push(new_live(quarry, layout(size.min(50 * KIB), 8), byte ^ 0xFF));
                let mut spans: Vec<_> = others.iter().map(Live::span).collect();
                spans.push(cur.span());
                assert_disjoint(spans);
            }
            free_live(quarry, cur);
        }
    }
    for other in others {
        free_live(quarry, other);
    }
}

#[test]
fn resizes_keep_contents_across_classes_and_block_runs_on_the_mock() {
    let quarry = mock_quarry();
    resize_chains(&quarry);
    assert_clean(&quarry, 0);
    assert_mock_clean(&quarry);
}

static RESIZED: Quarry<StaticBuffer<{ 8 * MIB }>> = Quarry::new(StaticBuffer::new(), Config::WASM);

#[test]
fn resizes_keep_contents_across_classes_and_block_runs_on_a_static_buffer() {
    resize_chains(&RESIZED);
    assert_clean(&RESIZED, 0);
}

// --- zeroed memory after a purge ------------------------------------------------------------------

/// Sizes for the zeroed tests: page objects of classes that get one page each (a few objects), and
/// large objects.
const ZEROED: [usize; 6] = [48, 1000, 2000, 3000, 40 * KIB, 100 * KIB];

/// Allocates each size (a few of the small ones), fills everything with 0xFF, frees it all.
fn dirty_and_free<B: OsBackend + Sync>(quarry: &Quarry<B>) {
    let mut live = Vec::new();
    for &size in &ZEROED {
        let count = if size < 4096 { 3 } else { 1 };
        for _ in 0..count {
            live.push(new_live(quarry, layout(size, 8), 0xFF));
        }
    }
    for l in live {
        free_live(quarry, l);
    }
}

/// `alloc_zeroed`, `allocate_zeroed` and `grow_zeroed` of the same sizes: all zero.
fn all_zero_again<B: OsBackend + Sync>(quarry: &Quarry<B>) {
    for &size in &ZEROED {
        let l = layout(size, 8);
        // SAFETY: non-zero size.
        let a = NonNull::new(unsafe { quarry.alloc_zeroed(l) }).unwrap();
        let b = quarry.allocate_zeroed(l).unwrap().cast::<u8>();
        let half = layout(size / 2, 8);
        let c = quarry.allocate(half).unwrap().cast::<u8>();
        fill(c, half.size(), 0xEE);
        // SAFETY: live with `half`; `l` is larger.
        let c = unsafe { quarry.grow_zeroed(c, half, l) }
            .unwrap()
            .cast::<u8>();
        assert!(holds(a, size, 0), "alloc_zeroed({size}) is not zero");
        assert!(holds(b, size, 0), "allocate_zeroed({size}) is not zero");
        assert!(holds(c, half.size(), 0xEE));
        // SAFETY: live with `l`, at least `size` bytes.
        assert!(holds(unsafe { c.add(half.size()) }, size - half.size(), 0));
        // SAFETY: each is live with `l`, freed once.
        unsafe {
            quarry.dealloc(a.as_ptr(), l);
            quarry.deallocate(b, l);
            quarry.deallocate(c, l);
        }
    }
}

#[test]
fn alloc_zeroed_after_a_purge_is_zero() {
    // Freed blocks are purged at once: the mock decommits them (poisons them), and hands them back
    // zeroed when they are committed again.
    let config = Config {
        purge_delay_ms: 0,
        ..MOCK_CONFIG
    };
    let quarry: Quarry<Mock> = Quarry::new(Mock::new(32 * MIB), config);
    dirty_and_free(&quarry);
    // The page of every class is kept when it empties: `trim` gives those back too (and purges).
    quarry.trim();
    let purged = quarry.stats().purged_bytes;
    assert!(purged >= 150 * KIB, "purged {purged}");
    assert_eq!(quarry.arenas().stats().blocks_in_use, 0);
    all_zero_again(&quarry);
    // Once more, with the memory dirty but not purged: the memset path.
    let kept: Quarry<Mock> = Quarry::new(Mock::new(32 * MIB), MOCK_CONFIG);
    dirty_and_free(&kept);
    all_zero_again(&kept);
    for q in [&quarry, &kept] {
        assert_clean(q, 0);
        assert_mock_clean(q);
    }
}

static ZEROED_STATIC: Quarry<StaticBuffer<{ 2 * MIB }>> =
    Quarry::new(StaticBuffer::new(), Config::WASM);

#[test]
fn alloc_zeroed_of_reused_memory_is_zero_on_a_static_buffer() {
    dirty_and_free(&ZEROED_STATIC);
    ZEROED_STATIC.trim();
    all_zero_again(&ZEROED_STATIC);
    assert_clean(&ZEROED_STATIC, 0);
}

// --- bad frees ----------------------------------------------------------------------------------

/// One bad pointer, with the layout it is freed with and the kind of refusal expected.
#[derive(Clone, Copy, Debug)]
struct Bad {
    what: &'static str,
    ptr: *mut u8,
    layout: Layout,
    kind: FreeErrorKind,
}

/// Checks that freeing (by `how`) each bad pointer is refused: the kind is counted in `stats()`
/// and seen by the hook of `slot`, no block changes hands, and the live allocations keep their
/// contents. `how`: 0 `dealloc`, 1 `deallocate`, 2 `realloc` smaller, 3 `realloc` larger, 4 `grow`,
/// 5 `shrink`.
fn refuse_all<B: OsBackend + Sync>(
    quarry: &Quarry<B>,
    slot: usize,
    bad: &[Bad],
    live: &[Live],
    how: usize,
) {
    let expected = |stats: (usize, usize, usize), kind: FreeErrorKind| {
        let (n, d, m) = stats;
        match kind {
            FreeErrorKind::NotOurs => (n + 1, d, m),
            FreeErrorKind::DoubleFree => (n, d + 1, m),
            FreeErrorKind::Misaligned | FreeErrorKind::PastEnd => (n, d, m + 1),
        }
    };
    for b in bad {
        let before = refused(quarry);
        let hooks = hooked(slot);
        let blocks = quarry.arenas().stats().blocks_in_use;
        let allocations = quarry.stats().allocations;
        let ptr = NonNull::new(b.ptr).unwrap();
        // SAFETY: every pointer here is refused without being written (the allocator only reads
        // the memory of its own arenas to find out).
        unsafe {
            match how {
                0 => quarry.dealloc(b.ptr, b.layout),
                1 => quarry.deallocate(ptr, b.layout),
                2 | 3 => {
                    let new_size = if how == 2 { 1 } else { b.layout.size() + 5000 };
                    let p = quarry.realloc(b.ptr, b.layout, new_size);
                    assert!(p.is_null(), "{}: realloc to {new_size} gave {p:?}", b.what);
                }
                4 => {
                    let new = layout(b.layout.size() + 5000, b.layout.align());
                    assert_eq!(
                        quarry.grow(ptr, b.layout, new),
                        Err(AllocError),
                        "{}",
                        b.what
                    );
                }
                _ => {
                    let new = layout(1, b.layout.align());
                    assert_eq!(
                        quarry.shrink(ptr, b.layout, new),
                        Err(AllocError),
                        "{}",
                        b.what
                    );
                }
            }
        }
        let what = format!("{} (how {how})", b.what);
        assert_eq!(refused(quarry), expected(before, b.kind), "{what}: stats");
        assert_eq!(hooked(slot), expected(hooks, b.kind), "{what}: hook");
        assert_eq!(quarry.arenas().stats().blocks_in_use, blocks, "{what}");
        assert_eq!(quarry.stats().allocations, allocations, "{what}");
        for l in live {
            assert!(l.intact(), "{what}: {:?} lost its contents", l.layout);
        }
    }
}

/// The whole bad-free battery on `quarry`, its hook counting in `slot`; `own` is a pointer into the
/// backend's memory outside every arena, if the test has one.
fn bad_frees<B: OsBackend + Sync>(
    quarry: &Quarry<B>,
    slot: usize,
    hook: quarry_alloc::ErrorHook,
    own: Option<*mut u8>,
) {
    quarry.set_error_hook(Some(hook));
    let live = [
        new_live(quarry, layout(64, 8), 0xA1),
        new_live(quarry, layout(8, 8), 0xA2),
        new_live(quarry, layout(4096, 8), 0xA3),
        new_live(quarry, layout(40 * KIB, 8), 0xA4),
        new_live(quarry, layout(100 * KIB, 4096), 0xA5),
        // The only object of its class: the next object of its page was never handed out.
        new_live(quarry, layout(1792, 8), 0xA6),
    ];
    let [small, tiny, page_object, large, larger, lonely] = live;
    let mut stack = [0u64; 8];
    let boxed = Box::into_raw(Box::new([0u8; 64])).cast::<u8>();
    let at = |l: Live, offset: usize| l.ptr.as_ptr().wrapping_add(offset);
    let mut bad = vec![
        Bad {
            what: "a stack variable",
            ptr: stack.as_mut_ptr().cast(),
            layout: layout(64, 8),
            kind: FreeErrorKind::NotOurs,
        },
        Bad {
            what: "a Box of the system allocator",
            ptr: boxed,
            layout: layout(64, 1),
            kind: FreeErrorKind::NotOurs,
        },
        Bad {
            what: "ptr + 8 into a small object",
            ptr: at(small, 8),
            layout: layout(56, 8),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "ptr + 1 into a small object",
            ptr: at(small, 1),
            layout: layout(63, 1),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "ptr + 8 into the smallest object",
            ptr: at(tiny, 8),
            layout: layout(8, 8),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "ptr + 8 into a page-sized object",
            ptr: at(page_object, 8),
            layout: layout(4088, 8),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "ptr + 8 into a large object",
            ptr: at(large, 8),
            layout: layout(40 * KIB - 8, 8),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "ptr + 1 into a large object",
            ptr: at(large, 1),
            layout: layout(40 * KIB - 1, 1),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "the second block of a large object",
            ptr: at(larger, 4096),
            layout: layout(96 * KIB, 4096),
            kind: FreeErrorKind::Misaligned,
        },
        Bad {
            what: "a small object's last byte",
            ptr: at(lonely, 1791),
            layout: layout(1, 1),
            kind: FreeErrorKind::Misaligned,
        },
    ];
    if let Some(ptr) = own {
        bad.push(Bad {
            what: "backend memory outside every arena",
            ptr,
            layout: layout(4096, 8),
            kind: FreeErrorKind::NotOurs,
        });
    }
    // Already freed: a small object (its page keeps others), a large object, and an object whose
    // page was retired since (the only object of its class, freed, then `trim`).
    let gone_small = new_live(quarry, layout(64, 8), 0xB1);
    let gone_large = new_live(quarry, layout(60 * KIB, 8), 0xB2);
    let gone_page = new_live(quarry, layout(3584, 8), 0xB3);
    for g in [gone_small, gone_large, gone_page] {
        free_live(quarry, g);
    }
    quarry.trim();
    for (what, g) in [
        ("a small object freed already", gone_small),
        ("a large object freed already", gone_large),
        ("an object of a retired page", gone_page),
    ] {
        bad.push(Bad {
            what,
            ptr: g.ptr.as_ptr(),
            layout: g.layout,
            kind: FreeErrorKind::DoubleFree,
        });
    }

    let errors_before = quarry.stats().errors();
    for how in 0..6 {
        refuse_all(quarry, slot, &bad, &live, how);
    }
    let errors = quarry.stats().errors();
    assert_eq!(errors - errors_before, 6 * bad.len());
    // SAFETY: the box was never given to anyone else.
    drop(unsafe { Box::from_raw(boxed.cast::<[u8; 64]>()) });
    assert_eq!(stack, [0; 8], "the stack variable was written");

    // The state is whole: new allocations succeed and overlap nothing live, and the valid frees
    // all go through.
    let fresh: Vec<Live> = [8usize, 64, 1792, 3584, 4096, 40 * KIB, 60 * KIB, 100 * KIB]
        .iter()
        .enumerate()
        .map(|(i, &size)| new_live(quarry, layout(size, 8), 0xC0 | i as u8))
        .collect();
    assert_disjoint(live.iter().chain(&fresh).map(Live::span).collect());
    for l in live.into_iter().chain(fresh) {
        free_live(quarry, l);
    }
    assert_clean(quarry, errors);
    let (n, d, m) = refused(quarry);
    assert_eq!(hooked(slot), (n, d, m), "the hook saw every refused free");
    quarry.set_error_hook(None);
}

#[test]
fn bad_frees_are_refused_counted_and_reported_on_the_mock() {
    let quarry = &mock_quarry();
    // A region of the mock that belongs to no arena.
    let region = quarry
        .arenas()
        .backend()
        .alloc(4096, 4096, true)
        .expect("room");
    bad_frees(quarry, 0, record::<0>, Some(region.ptr.as_ptr()));
    // SAFETY: the region came from the mock just above and nobody uses it.
    assert!(unsafe { quarry.arenas().backend().free(region) });
    assert_mock_clean(quarry);
}

static BAD: Quarry<StaticBuffer<{ 4 * MIB }>> = Quarry::new(StaticBuffer::new(), Config::WASM);

#[test]
fn bad_frees_are_refused_counted_and_reported_on_a_static_buffer() {
    bad_frees(&BAD, 1, record::<1>, None);
}

#[test]
fn a_realloc_of_a_bad_pointer_frees_nothing_and_allocates_nothing() {
    // The same as the battery's realloc rounds, counted from the backend's side: a refused
    // realloc makes no backend call and holds no new block.
    let quarry = &mock_quarry();
    quarry.set_error_hook(Some(record::<2>));
    let live = new_live(quarry, layout(200, 8), 0x42);
    let mock = quarry.arenas().backend();
    mock.clear_calls();
    let interior = live.ptr.as_ptr().wrapping_add(8);
    for new_size in [1, 100, 192, 5000, 64 * KIB] {
        // SAFETY: refused: the pointer is inside a live object.
        let p = unsafe { quarry.realloc(interior, layout(192, 8), new_size) };
        assert!(p.is_null());
    }
    assert!(mock.calls().is_empty(), "{:?}", mock.calls());
    assert_eq!(quarry.stats().misaligned, 5);
    assert_eq!(hooked(2), (0, 0, 5));
    free_live(quarry, live);
    assert_clean(quarry, 5);
}

// --- bad frees while the owner heap is busy (the remote-free path) ---------------------------------

/// A mock behind a gate: once armed, the next `alloc` or `commit` waits until the gate opens, so a
/// test can hold a thread inside the allocator (with its heap locked) for as long as it needs.
struct Gated {
    mock: Mock,
    armed: AtomicBool,
    inside: AtomicBool,
    open: AtomicBool,
}

impl Gated {
    fn new() -> Self {
        Gated {
            mock: Mock::new(8 * MIB),
            armed: AtomicBool::new(false),
            inside: AtomicBool::new(false),
            open: AtomicBool::new(false),
        }
    }

    fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.inside.store(true, Ordering::SeqCst);
            while !self.open.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
    }
}

// SAFETY: every method forwards to the mock, which keeps the contract; waiting at the gate neither
// allocates nor panics nor calls the allocator.
unsafe impl OsBackend for Gated {
    const COMMITS: bool = true;

    fn page_size(&self) -> usize {
        self.mock.page_size()
    }

    fn alloc(&self, size: usize, align: usize, commit: bool) -> Option<Region> {
        self.pass();
        self.mock.alloc(size, align, commit)
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, size: usize) -> Result<bool, OutOfMemory> {
        self.pass();
        // SAFETY: forwarded from the caller.
        unsafe { self.mock.commit(ptr, size) }
    }

    unsafe fn purge(&self, ptr: NonNull<u8>, size: usize, allow_reset: bool) -> Purged {
        // SAFETY: forwarded from the caller.
        unsafe { self.mock.purge(ptr, size, allow_reset) }
    }

    fn can_purge(&self) -> bool {
        self.mock.can_purge()
    }

    fn can_free(&self) -> bool {
        self.mock.can_free()
    }

    unsafe fn free(&self, region: Region) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { self.mock.free(region) }
    }

    fn now_ms(&self) -> Option<u64> {
        self.mock.now_ms()
    }

    fn has_virtual_reserve(&self) -> bool {
        self.mock.has_virtual_reserve()
    }

    fn has_overcommit(&self) -> bool {
        self.mock.has_overcommit()
    }
}

/// One heap, so that a thread inside the allocator holds the heap every page belongs to.
type OneHeap = Quarry<Gated, SpinLock, 1>;

/// Runs `body` while another thread is inside the allocator, waiting at the gate with the heap
/// locked (it allocates an object of a class that has no page yet, whose new page needs a commit).
/// `body` must not wait for the heap (`stats`, `trim` and frees of large objects do): a watchdog
/// opens the gate after 10 s, and the test fails.
fn while_the_heap_is_busy(quarry: &OneHeap, body: impl FnOnce()) {
    let gate = quarry.arenas().backend();
    gate.inside.store(false, Ordering::SeqCst);
    gate.open.store(false, Ordering::SeqCst);
    gate.armed.store(true, Ordering::SeqCst);
    let timed_out = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = std::time::Instant::now();
            while !gate.open.load(Ordering::SeqCst) {
                if start.elapsed() > std::time::Duration::from_secs(10) {
                    timed_out.store(true, Ordering::SeqCst);
                    gate.open.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let blocked = s.spawn(|| {
            let l = layout(2500, 8);
            // SAFETY: non-zero size.
            let p = unsafe { quarry.alloc(l) };
            assert!(!p.is_null());
            // SAFETY: live with `l`.
            unsafe { quarry.dealloc(p, l) };
        });
        while !gate.inside.load(Ordering::SeqCst) {
            assert!(
                !blocked.is_finished(),
                "the allocation never reached the backend"
            );
            std::thread::yield_now();
        }
        // A failed check must not leave the other thread waiting for ever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        gate.open.store(true, Ordering::SeqCst);
        blocked.join().unwrap();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    assert!(
        !timed_out.load(Ordering::SeqCst),
        "the body waited for the busy heap"
    );
}

#[test]
fn bad_frees_while_the_owner_heap_is_busy_are_refused() {
    let quarry: OneHeap = Quarry::new(Gated::new(), MOCK_CONFIG);
    quarry.set_error_hook(Some(record::<3>));
    let a = new_live(&quarry, layout(64, 8), 0x71);
    let b = new_live(&quarry, layout(64, 8), 0x72);
    let c = new_live(&quarry, layout(64, 8), 0x73);
    let mut stack = [0u8; 64];
    while_the_heap_is_busy(&quarry, || {
        // SAFETY: each bad free is refused without writing; `b` is freed once, validly (onto its
        // page's remote list), then again.
        unsafe {
            quarry.dealloc(a.ptr.as_ptr().wrapping_add(8), layout(56, 8));
            quarry.dealloc(a.ptr.as_ptr().wrapping_add(1), layout(63, 1));
            quarry.dealloc(stack.as_mut_ptr(), layout(64, 1));
            free_live(&quarry, b);
            quarry.dealloc(b.ptr.as_ptr(), b.layout);
            assert!(quarry
                .realloc(a.ptr.as_ptr().wrapping_add(8), layout(56, 8), 8)
                .is_null());
            assert!(quarry.realloc(b.ptr.as_ptr(), b.layout, 8).is_null());
        }
        // (`stats()` would wait for the heap: the hook tells.)
        assert_eq!(hooked(3), (1, 2, 3));
        assert!(a.intact() && c.intact());
    });
    assert_eq!(stack, [0; 64]);
    assert_eq!(refused(&quarry), (1, 2, 3));
    quarry.trim();
    assert_eq!(quarry.stats().frees, 2, "b and the blocked thread's object");
    let d = new_live(&quarry, layout(64, 8), 0x74);
    assert_disjoint(vec![a.span(), c.span(), d.span()]);
    for l in [a, c, d] {
        free_live(&quarry, l);
    }
    assert_clean(&quarry, 6);
    let mock = &quarry.arenas().backend().mock;
    assert_eq!(mock.verify_poison(), Ok(()));
    assert!(mock.misuse().is_empty());
}

// --- bugs --------------------------------------------------------------------------------------

#[test]
fn realloc_of_an_object_never_handed_out_is_refused() {
    let quarry = mock_quarry();
    quarry.set_error_hook(Some(record::<4>));
    // The only object of its class: its page has handed out one object, the next was never.
    let only = new_live(&quarry, layout(1792, 8), 0x61);
    let never = only.ptr.as_ptr().wrapping_add(1792);
    let l = layout(1792, 8);
    // `dealloc` refuses it, as it should:
    // SAFETY: refused without writing.
    unsafe { quarry.dealloc(never, l) };
    assert_eq!(quarry.stats().misaligned, 1);
    // `realloc` to a size its class holds must refuse it too.
    // SAFETY: as above, if the allocator refuses it.
    let p = unsafe { quarry.realloc(never, l, 100) };
    assert!(
        p.is_null(),
        "realloc handed out {p:?}, a slot its page will hand out again"
    );
    assert_eq!(quarry.stats().misaligned, 2);
    free_live(&quarry, only);
    assert_clean(&quarry, 2);
}

#[test]
fn a_remote_free_of_an_object_never_handed_out_is_refused() {
    let quarry: OneHeap = Quarry::new(Gated::new(), MOCK_CONFIG);
    quarry.set_error_hook(Some(record::<5>));
    let only = new_live(&quarry, layout(1792, 8), 0x51);
    let never = only.ptr.as_ptr().wrapping_add(1792);
    while_the_heap_is_busy(&quarry, || {
        // SAFETY: refused without writing, if the allocator refuses it.
        unsafe { quarry.dealloc(never, layout(1792, 8)) };
    });
    assert_eq!(quarry.stats().misaligned, 1, "the free was accepted");
    // What follows when it is accepted: the page counts `only` as free once the heap takes the
    // remote list back, `trim` retires the page under it, and its valid free is refused.
    quarry.trim();
    assert_eq!(quarry.usable_size(only.ptr), Some(1792));
    free_live(&quarry, only);
    assert_clean(&quarry, 1);
}
