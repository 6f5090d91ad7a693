//! The compact engine over static buffers and the mock: contents kept and alignment honoured over
//! random sequences, bad frees refused, running out and coming back, block runs resized in place,
//! room left by a growing realloc, gaps left by another user of the backend, page records reused,
//! an object's number by a multiply, and the map.

extern crate std;

use super::*;
use crate::backend::Mock;
use crate::testkit::{
    aligned, as_an_allocator, checked_and_freed, filled_until_null, record, recorded, shadow,
    until_null, Shared, LARGE_ALIGNMENTS,
};
use crate::{FreeErrorKind, StaticBuffer};
use std::string::String;

/// The shadow model over `a`, which must give back emptied pages.
fn shadow_pages<B: OsBackend + Sync>(a: &Compact<B>, max: u64, seed: u64) {
    shadow(a, || a.stats(), max, seed);
    let stats = a.stats();
    assert!(stats.pages_returned > 0 && stats.pages_returned <= stats.pages_made);
}

/// Under Miri the sequences with the firmware settings below run alone: the same code, in less
/// time.
#[test]
#[cfg_attr(miri, ignore)]
fn random_sequences_keep_every_allocation_intact_over_a_break() {
    static A: Compact<StaticBuffer<{ 32 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    shadow_pages(&A, 100_000, 0x2545_f491_4f6c_dd1d);
    // The arena grew as the program asked, not to the buffer's size: twice the peak, and a page
    // for every class in use.
    let stats = A.stats();
    assert!(
        stats.reserved_bytes < 2 * stats.peak_bytes + (1 << 20),
        "{stats:?}"
    );
}

#[test]
fn random_sequences_with_firmware_settings() {
    static A: Compact<StaticBuffer<{ 4 << 20 }>> =
        Compact::new(StaticBuffer::new(), Config::EMBEDDED);
    shadow_pages(&A, 5_000, 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn over_a_backend_that_does_not_grow_in_place_the_arena_is_one_region() {
    let a: Compact<Mock> =
        Compact::new(Mock::new(8 << 20), Config::HOST.with_arena_reserve(2 << 20));
    let layout = Layout::from_size_align(64 << 10, 8).unwrap();
    let held = until_null(&a, layout);
    // 2 MiB of 64 KiB runs, after the tag table's 64 KiB: the mock had room for more, but it is
    // never asked twice.
    assert_eq!(held.len(), 31);
    assert_eq!(a.stats().reserved_bytes, 2 << 20);
    assert_eq!(a.backend.calls().len(), 1);
    for ptr in held {
        // SAFETY: live, with this layout.
        unsafe { a.dealloc(ptr, layout) };
    }
}

#[test]
fn bad_frees_are_refused_counted_and_reported() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    let a = &A;
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
        a.dealloc(big.add(4096), large);
        a.dealloc(x, small);
        a.dealloc(x, small);
    }
    use FreeErrorKind::*;
    assert_eq!(recorded(), [NotOurs, Misaligned, Misaligned, DoubleFree]);
    let stats = a.stats();
    assert_eq!(
        (stats.not_ours, stats.misaligned, stats.double_frees),
        (1, 2, 1)
    );
    // The refused frees changed nothing: `y` and `big` are still live, `x`'s slot is reused once.
    // SAFETY: valid layout.
    let again = unsafe { a.alloc(small) };
    assert_eq!(again, x);
    // SAFETY: valid layout.
    let other = unsafe { a.alloc(small) };
    assert!(other != x && other != y);
    // SAFETY: a live allocation, then the same one again (refused).
    unsafe {
        a.dealloc(big, large);
        a.dealloc(big, large);
    }
    assert_eq!(recorded().last(), Some(&DoubleFree));
    assert_eq!(a.stats().errors(), 5);
}

#[test]
fn double_frees_are_told_by_the_bitmap_not_by_the_objects_contents() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    let a = &A;
    a.set_error_hook(Some(record));
    let layout = Layout::from_size_align(32, 8).unwrap();
    // SAFETY: valid, non-zero layouts; every object is live when written and freed once, but
    // `x`, freed twice: the second free must be refused.
    unsafe {
        let held: std::vec::Vec<*mut u8> = (0..40).map(|_| a.alloc(layout)).collect();
        // What a live object holds (its own address, all ones, zeros) has no say in its free.
        for (i, &p) in held.iter().enumerate() {
            let word = match i % 3 {
                0 => p.addr(),
                1 => usize::MAX,
                _ => 0,
            };
            ptr::write_bytes(p, 0, 32);
            p.cast::<usize>().write(word);
            p.cast::<usize>().add(1).write(word);
        }
        for &p in &held[1..] {
            a.dealloc(p, layout);
        }
        let x = held[0];
        a.dealloc(x, layout);
        // A program that wrote to `x` after freeing it does not hide its second free.
        ptr::write_bytes(x, 0xA5, 32);
        a.dealloc(x, layout);
    }
    assert_eq!(recorded(), [FreeErrorKind::DoubleFree]);
    assert_eq!(a.stats().bytes_in_use, 0);
    // Objects come back lowest first, each once.
    // SAFETY: valid layout; both freed at once.
    unsafe {
        let (p, q) = (a.alloc(layout), a.alloc(layout));
        assert_eq!(q.addr() - p.addr(), 32);
        a.dealloc(p, layout);
        a.dealloc(q, layout);
    }
}

#[test]
fn running_out_returns_null_and_freeing_makes_room_again() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    let a = &A;
    let layout = Layout::from_size_align(200_000, 8).unwrap();
    let mut held = until_null(a, layout);
    // 1 MiB holds the tag table (64 KiB) and four runs of 49 blocks.
    assert_eq!(held.len(), 4);
    // SAFETY: a live allocation of this layout.
    unsafe { a.dealloc(held.pop().unwrap(), layout) };
    // SAFETY: valid layout.
    let again = unsafe { a.alloc(layout) };
    assert!(!again.is_null());
    // A size past anything the arena could hold fails cleanly, and so does an alignment past it.
    let huge = Layout::from_size_align(isize::MAX as usize - 4096, 8).unwrap();
    // SAFETY: valid layouts.
    unsafe {
        assert!(a.alloc(huge).is_null());
        let aligned = Layout::from_size_align(8, 1 << 30).unwrap();
        assert!(a.alloc(aligned).is_null());
    }
    for ptr in held.into_iter().chain([again]) {
        // SAFETY: live allocations of this layout.
        unsafe { a.dealloc(ptr, layout) };
    }
}

#[test]
fn alignments_past_the_block_size_are_honoured() {
    static A: Compact<StaticBuffer<{ 2 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    aligned(&A, &LARGE_ALIGNMENTS);
    assert_eq!(A.stats().bytes_in_use, 0);
}

#[test]
fn block_runs_shrink_and_grow_in_place() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    const BLOCK: usize = 4096;
    let a = &A;
    let at = |size| Layout::from_size_align(size, 8).unwrap();
    // SAFETY: valid layouts and live allocations throughout.
    unsafe {
        let run = a.alloc(at(10 * BLOCK));
        assert_eq!(a.realloc(run, at(10 * BLOCK), 3 * BLOCK), run);
        assert_eq!(a.realloc(run, at(3 * BLOCK), 12 * BLOCK), run);
        assert_eq!(a.stats().bytes_in_use, 12 * BLOCK);
        // A run after it keeps it from growing: then it moves.
        let after = a.alloc(at(9 * BLOCK));
        assert_eq!(after, run.add(12 * BLOCK));
        let moved = a.realloc(run, at(12 * BLOCK), 20 * BLOCK);
        assert!(!moved.is_null() && moved != run);
        // Its old blocks are free again: a run of their size goes there.
        let reused = a.alloc(at(12 * BLOCK));
        assert_eq!(reused, run);
        for (ptr, size) in [
            (moved, 20 * BLOCK),
            (after, 9 * BLOCK),
            (reused, 12 * BLOCK),
        ] {
            a.dealloc(ptr, at(size));
        }
    }
    assert_eq!(a.stats().bytes_in_use, 0);
}

/// A realloc that grows an allocation above 1 KiB out of its object moves it into the power of
/// two that holds the new size, so that it can grow again in place; below, into its class; and
/// when memory is short for the power of two, into the class of the new size.
#[cfg(not(opt_size))]
#[test]
fn a_growing_realloc_leaves_room_to_grow_again() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    let a = &A;
    let at = |size| Layout::from_size_align(size, 8).unwrap();
    let in_use = || a.stats().bytes_in_use;
    // SAFETY: valid layouts and live allocations throughout.
    unsafe {
        let small = a.alloc(at(100));
        small.write_bytes(7, 100);
        let small = a.realloc(small, at(100), 600);
        // The class of 600 bytes (640), not a power of two.
        assert_eq!(in_use(), 640);
        assert_eq!(*small.add(99), 7);

        let p = a.alloc(at(1500));
        p.write_bytes(9, 1500);
        let q = a.realloc(p, at(1500), 2500);
        assert_ne!(q, p);
        assert_eq!(in_use(), 640 + 4096);
        assert_eq!(a.realloc(q, at(2500), 4000), q, "grown in place");
        assert_eq!((*q, *q.add(1499)), (9, 9));

        // Fill the arena with runs of ten blocks, then free the first: ten blocks free between
        // two runs. A power of two's page (two objects of 32 KiB, 16 blocks) does not fit there;
        // the new size's class (18 KiB, a page of 9 blocks) does.
        let run = at(40 << 10);
        let mut runs = until_null(a, run);
        assert!(runs.len() > 2);
        a.dealloc(runs.remove(0), run);
        let before = in_use();
        let r = a.realloc(q, at(4000), 17_000);
        assert!(!r.is_null());
        assert_eq!(in_use(), before - 4096 + 18 * 1024);
        assert_eq!((*r, *r.add(1499)), (9, 9));
        for ptr in runs {
            a.dealloc(ptr, run);
        }
        a.dealloc(r, at(17_000));
        a.dealloc(small, at(600));
    }
    assert_eq!((in_use(), a.stats().errors()), (0, 0));
}

/// A `small_limit` of 0 makes every allocation a block run, however small.
#[test]
fn a_small_limit_of_zero_serves_every_size_as_a_block_run() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> =
        Compact::new(StaticBuffer::new(), Config::WASM.with_small_limit(0));
    let layout = Layout::from_size_align(8, 8).unwrap();
    // SAFETY: a valid layout, and the allocation is live until freed.
    unsafe {
        let p = A.alloc(layout);
        assert!(!p.is_null());
        assert_eq!(A.stats().bytes_in_use, Config::WASM.block_size);
        A.dealloc(p, layout);
    }
    assert_eq!((A.stats().bytes_in_use, A.stats().errors()), (0, 0));
}

#[test]
fn memory_another_user_took_between_growths_is_never_handed_out() {
    static A: Compact<Shared> = Compact::new(Shared(StaticBuffer::new()), Config::WASM);
    let layout = Layout::from_size_align(3000, 8).unwrap();
    let held = filled_until_null(&A, layout);
    let mut map = String::new();
    A.write_map(&mut map).unwrap();
    // Pages, and the gaps between the growths, each held for good.
    assert!(map.contains('p') && map.contains('x'), "{map}");
    checked_and_freed(&A, held, layout);
    let stats = A.stats();
    assert_eq!((stats.bytes_in_use, stats.errors()), (0, 0));
}

#[test]
fn an_objects_number_is_found_by_a_multiply_exactly() {
    use super::pages::{object_at, reciprocal};
    use crate::heap::class::{class_size, CLASSES};
    // Every class up to the largest, over the largest page it can have (32 objects, plus a block
    // of 1 MiB): each object's start gives its number, other offsets a number whose start is not
    // them. Objects past the first 256 (a page's most) and 200 offsets spread over the span;
    // under Miri, every eighth class.
    for class in (0..CLASSES).step_by(if cfg!(miri) { 8 } else { 1 }) {
        let size = class_size(class);
        let r = reciprocal(size);
        let span = 32 * size + (1 << 20);
        for k in (0..256).chain([span / size - 1]) {
            assert_eq!(object_at(k * size, r), k, "size {size}");
        }
        for offset in (0..span).step_by((span / 200) | 1) {
            let index = object_at(offset, r);
            assert_eq!(
                offset == index * size,
                offset % size == 0,
                "size {size}, {offset}"
            );
        }
    }
}

#[test]
fn page_records_are_kept_together_and_reused() {
    // Firmware settings: blocks of 256 bytes, two records each; 1024 blocks, a 16-block tag
    // table.
    static A: Compact<StaticBuffer<{ 256 << 10 }>, SpinLock, 1024> =
        Compact::new(StaticBuffer::new(), Config::EMBEDDED);
    let a = &A;
    // 15 classes (16 to 128 bytes), each with one object more than a page holds: 30 pages, on
    // 15 blocks of records.
    let layouts: std::vec::Vec<Layout> = (1..16)
        .map(|class| Layout::from_size_align(crate::heap::class::class_size(class), 8).unwrap())
        .collect();
    let held_blocks = || {
        let mut map = String::new();
        a.write_map(&mut map).unwrap();
        map.matches(['x', 'p']).count()
    };
    let mut first = 0;
    for round in 0..3 {
        let mut objects = std::vec::Vec::new();
        for &layout in &layouts {
            // A page holds four objects, rounded up to whole blocks.
            let per_page = (4 * layout.size()).div_ceil(256) * 256 / layout.size();
            for _ in 0..=per_page {
                // SAFETY: a valid layout; each object is freed once below.
                let p = unsafe { a.alloc(layout) };
                assert!(!p.is_null());
                objects.push((p, layout));
            }
        }
        let stats = a.stats();
        assert_eq!(stats.pages_made - stats.pages_returned, 30);
        if round == 0 {
            first = held_blocks();
        }
        // The second pages of the later rounds are made on the records given back: no block
        // more.
        assert_eq!(held_blocks(), first);
        for (p, layout) in objects {
            // SAFETY: live, with this layout.
            unsafe { a.dealloc(p, layout) };
        }
        // Each class gives one page back and keeps its only one.
        assert_eq!(a.stats().pages_returned, 15 * (round + 1));
    }
    let mut map = String::new();
    a.write_map(&mut map).unwrap();
    // The tag table, the 15 pages kept, and 15 blocks of records held for good.
    assert_eq!(held_blocks(), 16 + map.matches('p').count() + 15, "{map}");
    assert_eq!(a.stats().bytes_in_use, 0);
}

#[test]
fn a_pointer_to_an_object_never_handed_out_is_refused() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    let a = &A;
    a.set_error_hook(Some(record));
    // A page of one 4 KiB block holds 85 objects of 48 bytes, and 16 bytes after them.
    let layout = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: a valid layout; the one object is freed once, the pointers past it are refused.
    unsafe {
        let p = a.alloc(layout);
        // The page's next object (never handed out), and the place an 86th object would have.
        a.dealloc(p.add(48), layout);
        a.dealloc(p.add(85 * 48), layout);
        a.dealloc(p, layout);
    }
    use FreeErrorKind::*;
    assert_eq!(recorded(), [DoubleFree, Misaligned]);
    assert_eq!(a.stats().bytes_in_use, 0);
}

#[test]
fn the_map_shows_pages_runs_and_free_blocks() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    let small = Layout::from_size_align(16, 8).unwrap();
    let run = Layout::from_size_align(10 * 4096, 8).unwrap();
    // SAFETY: valid layouts; freed below.
    let (p, r) = unsafe { (A.alloc(small), A.alloc(run)) };
    let mut map = String::new();
    A.write_map(&mut map).unwrap();
    assert_eq!(
        map,
        "compact arena: 28 blocks of 4096 bytes, at most 16384\n  \
         xxxxxxxxxxxxxxxxxpxxxxxxxxxx\n  held: 28 of 28 blocks\n"
    );
    // SAFETY: live allocations of these layouts.
    unsafe {
        A.dealloc(r, run);
        A.dealloc(p, small);
    }
    map.clear();
    A.write_map(&mut map).unwrap();
    // The tag table's 16 blocks and the block of page records stay held, and so does the class's
    // only page.
    assert!(map.contains("  xxxxxxxxxxxxxxxxxp..........\n"), "{map}");
}

#[test]
fn as_an_allocator_collections_grow_in_place_and_alignment_changes_move() {
    static A: Compact<StaticBuffer<{ 1 << 20 }>> = Compact::new(StaticBuffer::new(), Config::WASM);
    as_an_allocator(&A, 20_000);
    assert_eq!(A.stats().bytes_in_use, 0);
}
