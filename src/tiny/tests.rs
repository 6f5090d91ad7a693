//! The tiny engine over static buffers and the mock: contents kept and alignment honoured over
//! random sequences, bad frees refused, running out and coming back, runs resized in place, gaps
//! left by another user of the backend, the search going round the arena, and the map.

extern crate std;

use super::*;
use crate::backend::Mock;
use crate::testkit::{
    aligned, as_an_allocator, checked_and_freed, filled_until_null, record, recorded, shadow,
    until_null, Shared, LARGE_ALIGNMENTS,
};
use crate::{FreeErrorKind, StaticBuffer};
use std::string::String;
use std::vec::Vec;

/// A layout of `size` bytes aligned to 8.
fn at(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Under Miri the firmware-sized sequences below run alone: the same code, in less time.
#[test]
#[cfg_attr(miri, ignore)]
fn random_sequences_keep_every_allocation_intact_over_a_break() {
    const BYTES: usize = 16 << 20;
    static A: Tiny<StaticBuffer<BYTES>, SpinLock, { BYTES / GRANULE }> =
        Tiny::new(StaticBuffer::new());
    shadow(&A, || A.stats(), 30_000, 0x2545_f491_4f6c_dd1d);
    // The arena grew as the program asked, not to the buffer's size.
    let stats = A.stats();
    assert!(
        stats.reserved_bytes < 2 * stats.peak_bytes + BYTES / 64,
        "{stats:?}"
    );
}

#[test]
fn random_sequences_in_a_firmware_sized_heap() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>, SpinLock, { (1 << 20) / GRANULE }> =
        Tiny::new(StaticBuffer::new());
    shadow(&A, || A.stats(), 5_000, 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn over_a_backend_that_does_not_grow_in_place_the_arena_is_one_region() {
    // 16 Ki granules: 256 KiB, of which 4 KiB are the bitmaps.
    let a: Tiny<Mock, SpinLock, { 16 * 1024 }> = Tiny::new(Mock::new(1 << 20));
    let layout = at(16 << 10);
    let held = until_null(&a, layout);
    // The mock had room for more, but it is asked once, for the whole arena.
    assert_eq!(held.len(), 15);
    assert_eq!(a.stats().reserved_bytes, 256 << 10);
    assert_eq!(a.backend.calls().len(), 1);
    for ptr in held {
        // SAFETY: live, with this layout.
        unsafe { a.dealloc(ptr, layout) };
    }
    assert_eq!(a.stats().bytes_in_use, 0);
}

#[test]
fn bad_frees_are_refused_counted_and_reported() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>, SpinLock, { 64 * 1024 }> =
        Tiny::new(StaticBuffer::new());
    let a = &A;
    a.set_error_hook(Some(record));
    // SAFETY: valid, non-zero layouts.
    let (x, y, big) = unsafe { (a.alloc(at(24)), a.alloc(at(24)), a.alloc(at(1000))) };
    let base = x.wrapping_sub(16 * 1024);
    let mut outside = 0u64;
    // SAFETY: every call below is a bad free the allocator must refuse without effect, or the
    // one valid free of `x`.
    unsafe {
        a.dealloc(ptr::addr_of_mut!(outside).cast(), at(8));
        a.dealloc(x.add(8), at(8));
        a.dealloc(x.add(16), at(8));
        a.dealloc(big.add(512), at(8));
        a.dealloc(base, at(8));
        a.dealloc(x, at(24));
        a.dealloc(x, at(24));
    }
    use FreeErrorKind::*;
    // The arena's first granules are its bitmaps, held for good: not an allocation of ours.
    assert_eq!(
        recorded(),
        [NotOurs, Misaligned, Misaligned, Misaligned, NotOurs, DoubleFree]
    );
    let stats = a.stats();
    assert_eq!(
        (stats.not_ours, stats.misaligned, stats.double_frees),
        (2, 3, 1)
    );
    assert_eq!(stats.bytes_in_use, 32 + 1008);
    // The refused frees changed nothing: `y` and `big` are live, and `x`'s granules are reused.
    // SAFETY: valid layouts; live allocations, then one of them again (refused).
    unsafe {
        assert_eq!(a.alloc(at(24)), x);
        assert!(a.alloc(at(24)) > big);
        a.dealloc(big, at(1000));
        a.dealloc(big, at(1000));
        a.dealloc(y, at(24));
    }
    assert_eq!(recorded().last(), Some(&DoubleFree));
    assert_eq!(a.stats().errors(), 7);
}

#[test]
fn running_out_returns_null_and_freeing_makes_room_again() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>> = Tiny::new(StaticBuffer::new());
    let a = &A;
    let layout = at(200_000);
    let mut held = until_null(a, layout);
    // 1 MiB holds the bitmaps (64 KiB) and four runs of 12 500 granules.
    assert_eq!(held.len(), 4);
    // SAFETY: a live allocation of this layout.
    unsafe { a.dealloc(held.pop().unwrap(), layout) };
    // SAFETY: valid layout.
    let again = unsafe { a.alloc(layout) };
    assert!(!again.is_null());
    // A size past anything the arena could hold fails cleanly, and so does an alignment past it.
    let huge = at(isize::MAX as usize - 4096);
    // SAFETY: valid layouts.
    unsafe {
        assert!(a.alloc(huge).is_null());
        assert!(a
            .alloc(Layout::from_size_align(8, 1 << 30).unwrap())
            .is_null());
        assert!(a
            .realloc(again, layout, isize::MAX as usize - 4096)
            .is_null());
    }
    for ptr in held.into_iter().chain([again]) {
        // SAFETY: live allocations of this layout.
        unsafe { a.dealloc(ptr, layout) };
    }
    assert_eq!(a.stats().bytes_in_use, 0);
}

#[test]
fn alignments_past_the_granule_are_honoured() {
    static A: Tiny<StaticBuffer<{ 2 << 20 }>> = Tiny::new(StaticBuffer::new());
    aligned(&A, &[(8, 32), (24, 64)]);
    aligned(&A, &LARGE_ALIGNMENTS);
    assert_eq!(A.stats().bytes_in_use, 0);
}

#[test]
fn runs_shrink_and_grow_in_place() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>, SpinLock, { 64 * 1024 }> =
        Tiny::new(StaticBuffer::new());
    let a = &A;
    // SAFETY: valid layouts and live allocations throughout.
    unsafe {
        let run = a.alloc(at(1000));
        run.write_bytes(7, 1000);
        assert_eq!(a.realloc(run, at(1000), 100), run);
        assert_eq!(a.realloc(run, at(100), 2000), run);
        assert_eq!(a.stats().bytes_in_use, 2000);
        // A run after it keeps it from growing: then it moves, its contents with it.
        let after = a.alloc(at(300));
        assert_eq!(after, run.add(2000));
        let moved = a.realloc(run, at(2000), 3000);
        assert!(!moved.is_null() && moved != run);
        assert_eq!(*moved.add(99), 7);
        // Its old granules are free again: a run of their size goes there.
        let reused = a.alloc(at(2000));
        assert_eq!(reused, run);
        // The last run grows past the arena's end, in place.
        let arena = a.stats().reserved_bytes;
        assert_eq!(a.realloc(moved, at(3000), 300_000), moved);
        assert!(a.stats().reserved_bytes > arena);
        for (ptr, size) in [(moved, 300_000), (after, 300), (reused, 2000)] {
            a.dealloc(ptr, at(size));
        }
    }
    assert_eq!(a.stats().bytes_in_use, 0);
}

#[test]
fn the_search_goes_on_from_the_last_claim_and_wraps_round() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>, SpinLock, { 64 * 1024 }> =
        Tiny::new(StaticBuffer::new());
    let a = &A;
    // SAFETY: valid layouts and live allocations throughout.
    unsafe {
        // Three words of granules taken, so that the search passes whole words.
        let held: Vec<*mut u8> = (0..96).map(|_| a.alloc(at(16))).collect();
        assert!(held.windows(2).all(|w| w[1] == w[0].add(16)));
        a.dealloc(held[70], at(16));
        a.dealloc(held[71], at(16));
        a.dealloc(held[5], at(16));
        // From the arena's end round to its start: the first free granule.
        assert_eq!(a.alloc(at(16)), held[5]);
        // On from there: the first two free granules in a row.
        assert_eq!(a.alloc(at(32)), held[70]);
        // On from there to the end, round again, and nothing free: the arena grows.
        assert_eq!(a.alloc(at(16)), held[95].add(16));
        assert_eq!(a.stats().bytes_in_use, 97 * 16);
    }
}

#[test]
fn memory_another_user_took_between_growths_is_never_handed_out() {
    static A: Tiny<Shared, SpinLock, { 64 * 1024 }> = Tiny::new(Shared(StaticBuffer::new()));
    A.set_error_hook(Some(record));
    // Smaller under Miri, where every byte is checked slowly.
    let layout = at(if cfg!(miri) { 300 } else { 3000 });
    let held = filled_until_null(&A, layout);
    // The other user's 4 KiB before the second growth: held for good, never ours to free.
    let gap = held[0].wrapping_add(layout.size().next_multiple_of(GRANULE));
    // SAFETY: a bad free, which the allocator refuses without effect.
    unsafe { A.dealloc(gap, layout) };
    assert_eq!(recorded(), [FreeErrorKind::NotOurs]);
    let mut map = String::new();
    A.write_map(&mut map).unwrap();
    // The bitmaps and the gaps, taken; the runs, taken.
    assert!(map.contains('x'), "{map}");
    checked_and_freed(&A, held, layout);
    let stats = A.stats();
    assert_eq!((stats.bytes_in_use, stats.errors()), (0, 1));
}

#[test]
fn the_map_shows_taken_and_free_granules() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>, SpinLock, 4096> = Tiny::new(StaticBuffer::new());
    // SAFETY: valid layouts; freed below.
    let (p, r) = unsafe { (A.alloc(at(16)), A.alloc(at(1000))) };
    let mut map = String::new();
    A.write_map(&mut map).unwrap();
    // 64 granules of bitmaps, the 16-byte object, then 63 granules of the run: 128 in all.
    assert_eq!(
        map,
        "tiny arena: 128 granules of 16 bytes, at most 4096, 32 to a character\n  \
         xxxx\n  taken: 128 of 128 granules\n"
    );
    // SAFETY: live allocations of these layouts.
    unsafe {
        A.dealloc(r, at(1000));
        A.dealloc(p, at(16));
    }
    map.clear();
    A.write_map(&mut map).unwrap();
    assert!(map.contains("  xx..\n  taken: 64 of 128"), "{map}");
    // SAFETY: a valid layout; freed at once.
    unsafe {
        let q = A.alloc(at(40));
        map.clear();
        A.write_map(&mut map).unwrap();
        assert!(map.contains("  xx+.\n"), "{map}");
        A.dealloc(q, at(40));
    }
}

#[test]
fn as_an_allocator_collections_grow_in_place_and_alignment_changes_move() {
    static A: Tiny<StaticBuffer<{ 1 << 20 }>> = Tiny::new(StaticBuffer::new());
    as_an_allocator(&A, 20_000);
    let stats = A.stats();
    // The vector grew at the arena's end and never moved: one allocation for it, one for the
    // 40 KB block and one where it moved to its new alignment.
    assert_eq!((stats.allocations, stats.bytes_in_use), (3, 0));
}
