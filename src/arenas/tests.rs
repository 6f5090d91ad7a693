//! The registry end to end inside the crate, so that Miri checks every pointer it derives: a static
//! buffer and the mock, reserve, manage, alloc with alignments, write the memory, free, destroy.

extern crate std;
use std::string::String;
use std::vec::Vec;

use super::Arenas;
use crate::backend::StaticBuffer;
use crate::testkit::all_bytes_are;
use crate::{ArenaId, Config, FreeErrorKind};

const CONFIG: Config = Config::EMBEDDED
    .with_block_size(256)
    .with_arena_reserve(8 * 1024);

#[test]
fn static_buffer_registry_hands_out_usable_disjoint_memory() {
    let arenas: Arenas<StaticBuffer<{ 16 * 1024 }>, 8, 1024> =
        Arenas::new(StaticBuffer::new(), CONFIG);
    let mut held = Vec::new();
    for (i, (size, align)) in [(1, 1), (256, 8), (700, 512), (300, 1024), (2000, 16)]
        .into_iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        let Some(a) = arenas.alloc(size, align, true, ArenaId::ANY) else {
            break;
        };
        assert_eq!(a.ptr.addr().get() % align, 0);
        assert!(a.memid.initially_committed && a.memid.initially_zero && a.memid.pinned);
        // SAFETY: the allocation is ours and committed.
        unsafe { a.ptr.as_ptr().write_bytes(i as u8, a.size) };
        held.push((a, i as u8));
    }
    assert!(held.len() >= 6);
    for (a, fill) in &held {
        // SAFETY: still ours; nobody else wrote to it.
        let bytes = unsafe { core::slice::from_raw_parts(a.ptr.as_ptr(), a.size) };
        assert!(all_bytes_are(bytes, *fill), "allocations overlap");
    }
    let mut map = String::new();
    arenas.write_map(&mut map).unwrap();
    assert!(map.contains("pinned") && map.contains('x'));
    for (a, _) in &held {
        // SAFETY: not used any more.
        unsafe { arenas.free(a) }.unwrap();
    }
    // SAFETY: freed already: refused.
    let again = unsafe { arenas.free(&held[0].0) };
    assert_eq!(again.unwrap_err().kind, FreeErrorKind::DoubleFree);
    assert_eq!(arenas.stats().blocks_in_use, 0);
    // A static buffer cannot take memory back: the arenas stay, emptied, and serve again.
    let count = arenas.arena_count();
    // SAFETY: nothing is used any more.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.arena_count(), count);
    let a = arenas.alloc(256, 8, true, ArenaId::ANY).unwrap();
    assert!(!a.memid.initially_zero, "memory handed out before is dirty");
}

#[cfg(feature = "mock")]
#[test]
fn mock_registry_commits_on_demand_and_gives_memory_back() {
    use crate::backend::Mock;
    let arenas: Arenas<Mock> = Arenas::new(Mock::new(64 * 1024), CONFIG);
    let id = arenas.reserve(4096, false, false).unwrap();
    let a = arenas.alloc(1000, 8, true, id).unwrap();
    assert!(arenas.backend().is_committed(a.ptr, a.size));
    // SAFETY: committed and ours.
    unsafe { a.ptr.as_ptr().write_bytes(0xEE, a.size) };
    // SAFETY: not used any more.
    unsafe { arenas.free(&a) }.unwrap();
    let mut buffer = std::vec![0u8; 2048];
    let start = core::ptr::NonNull::new(buffer.as_mut_ptr()).unwrap();
    // SAFETY: the buffer outlives the registry's use of it (destroyed below).
    let managed = unsafe { arenas.manage(start, 2048, true, true, true, true) }.unwrap();
    let m = arenas.alloc(512, 8, true, managed).unwrap();
    // SAFETY: ours.
    unsafe { m.ptr.as_ptr().write_bytes(1, m.size) };
    assert!(arenas.contains(m.ptr));
    // SAFETY: nothing is used any more.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.backend().live_regions(), 0);
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
    drop(buffer);
}

#[test]
fn mock_registry_purges_freed_runs_and_hands_them_out_zero() {
    use crate::backend::Mock;
    // 4 KiB blocks, the mock's page: a purge decommits whole blocks.
    let config = Config {
        purge_delay_ms: 5,
        arena_purge_mult: 2,
        ..CONFIG.with_block_size(4096).with_arena_reserve(64 * 1024)
    };
    let arenas: Arenas<Mock> = Arenas::new(Mock::new(64 * 1024), config);
    let keep = arenas.alloc(4096, 8, true, ArenaId::ANY).unwrap();
    let a = arenas.alloc(8192, 8, true, ArenaId::ANY).unwrap();
    // SAFETY: committed and ours.
    unsafe {
        keep.ptr.as_ptr().write_bytes(0x11, keep.size);
        a.ptr.as_ptr().write_bytes(0xEE, a.size);
    }
    // SAFETY: not used any more.
    unsafe { arenas.free(&a) }.unwrap();
    assert!(!arenas.collect(false), "not due yet");
    arenas.backend().advance_ms(10);
    assert!(arenas.collect(false));
    assert!(!arenas.backend().is_committed(a.ptr, a.size));
    let b = arenas.alloc(8192, 8, true, ArenaId::ANY).unwrap();
    assert_eq!(b.ptr, a.ptr);
    assert!(b.memid.initially_zero && arenas.backend().is_committed(b.ptr, b.size));
    // SAFETY: ours, committed again.
    let (bytes, kept) = unsafe {
        (
            core::slice::from_raw_parts(b.ptr.as_ptr(), b.size),
            core::slice::from_raw_parts(keep.ptr.as_ptr(), keep.size),
        )
    };
    assert!(all_bytes_are(bytes, 0));
    assert!(all_bytes_are(kept, 0x11), "the live run was not touched");
    assert_eq!(arenas.stats().purged_bytes, 8192);
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
}

/// A break-pointer backend over a buffer of `len` bytes that the test owns.
fn sbrk_over(buffer: &mut Vec<u64>) -> crate::Sbrk {
    let len = buffer.len() * 8;
    // SAFETY: the buffer outlives the registry in every test below and nothing else touches it.
    unsafe { crate::Sbrk::from_range(buffer.as_mut_ptr().cast(), len) }
}

#[test]
fn a_break_backend_grows_one_arena_by_what_is_asked() {
    let mut buffer = std::vec![0u64; 64 * 1024 / 8];
    let arenas: Arenas<crate::Sbrk, 8, 1024> = Arenas::new(sbrk_over(&mut buffer), CONFIG);
    let mut held = Vec::new();
    for i in 0..20 {
        let a = arenas.alloc(256, 8, true, ArenaId::ANY).unwrap();
        assert!(
            !a.memid.initially_zero,
            "RAM under a break is not known zero"
        );
        // SAFETY: the allocation is ours and committed.
        unsafe { a.ptr.as_ptr().write_bytes(i as u8, a.size) };
        held.push((a, i as u8));
        assert_eq!(
            arenas.arena_count(),
            1,
            "the arena grows instead of adding arenas"
        );
        // The break moved by the blocks handed out so far, plus the metadata's blocks.
        let used = 64 * 1024 - arenas.backend().remaining();
        let meta_blocks = used / 256 - (i + 1);
        assert!(meta_blocks <= 2, "break at {used} after {} blocks", i + 1);
    }
    for (a, fill) in &held {
        // SAFETY: still ours.
        let bytes = unsafe { core::slice::from_raw_parts(a.ptr.as_ptr(), a.size) };
        assert!(all_bytes_are(bytes, *fill), "allocations overlap");
    }
    for (a, _) in &held {
        // SAFETY: not used any more.
        unsafe { arenas.free(a) }.unwrap();
    }
    // Freed blocks serve again: the break stays where it is.
    let before = arenas.backend().remaining();
    let again = arenas.alloc(256 * 20, 8, true, ArenaId::ANY).unwrap();
    assert_eq!(arenas.backend().remaining(), before);
    // SAFETY: not used any more.
    unsafe { arenas.free(&again) }.unwrap();
    assert_eq!(arenas.stats().blocks_in_use, 0);
}

#[test]
fn a_full_arena_is_followed_by_a_new_one_and_foreign_memory_is_skipped() {
    let mut buffer = std::vec![0u64; 64 * 1024 / 8];
    let arenas: Arenas<crate::Sbrk, 8, 1024> = Arenas::new(sbrk_over(&mut buffer), CONFIG);
    // CONFIG's arenas grow to 8 KiB (32 blocks), and a little more when their first memory
    // holds more than that.
    let mut held = std::vec![arenas.alloc(8 * 1024, 8, true, ArenaId::ANY).unwrap()];
    assert_eq!(arenas.arena_count(), 1);
    while arenas.arena_count() == 1 {
        held.push(arenas.alloc(256, 8, true, ArenaId::ANY).unwrap());
        assert!(held.len() < 8, "the first arena grows past its capacity");
    }
    // Somebody else moves the break: the second arena cannot grow over that memory.
    let foreign = crate::OsBackend::alloc(arenas.backend(), 1000, 8, false).unwrap();
    // SAFETY: the foreign region is the test's.
    unsafe { foreign.ptr.as_ptr().write_bytes(0xEE, 1000) };
    for _ in 0..40 {
        held.push(arenas.alloc(256, 8, true, ArenaId::ANY).unwrap());
    }
    let foreign_range = foreign.ptr.addr().get()..foreign.ptr.addr().get() + 1000;
    for a in &held {
        let range = a.ptr.addr().get()..a.ptr.addr().get() + a.size;
        assert!(
            range.end <= foreign_range.start || range.start >= foreign_range.end,
            "an allocation overlaps memory the registry never got"
        );
        // SAFETY: ours.
        unsafe { a.ptr.as_ptr().write_bytes(1, a.size) };
    }
    // SAFETY: the foreign region is the test's, untouched by the registry.
    let kept = unsafe { core::slice::from_raw_parts(foreign.ptr.as_ptr(), 1000) };
    assert!(all_bytes_are(kept, 0xEE));
    for a in &held {
        // SAFETY: not used any more.
        unsafe { arenas.free(a) }.unwrap();
    }
    assert_eq!(arenas.stats().blocks_in_use, 0);
}

#[test]
fn a_grown_arena_runs_out_cleanly_at_the_end_of_the_break() {
    let mut buffer = std::vec![0u64; 16 * 1024 / 8];
    let arenas: Arenas<crate::Sbrk, 8, 1024> = Arenas::new(sbrk_over(&mut buffer), CONFIG);
    let mut held = Vec::new();
    while let Some(a) = arenas.alloc(512, 8, true, ArenaId::ANY) {
        held.push(a);
    }
    // 16 KiB of break, less metadata and the odd block: nearly all of it handed out.
    assert!(held.len() * 512 >= 14 * 1024, "{} runs", held.len());
    for a in &held {
        // SAFETY: not used any more.
        unsafe { arenas.free(a) }.unwrap();
    }
    assert!(arenas.alloc(512, 8, true, ArenaId::ANY).is_some());
}

#[test]
fn threads_racing_for_grown_memory_all_get_some() {
    // Every growth adds just what one request needs, so other threads often claim it first: each
    // request must still succeed while the buffer has room.
    let mut buffer = std::vec![0u64; 16 << 20 >> 3];
    let arenas: Arenas<crate::Sbrk, 8, 1024> =
        Arenas::new(sbrk_over(&mut buffer), CONFIG.with_arena_reserve(1 << 20));
    let per_thread = if cfg!(miri) { 20 } else { 2000 };
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let (arenas, start) = (&arenas, &start);
            s.spawn(move || {
                let mut held = Vec::new();
                start.wait();
                for i in 0..per_thread {
                    let a = arenas
                        .alloc(256 * (1 + i % 8), 8, true, ArenaId::ANY)
                        .expect("the buffer has room for every request");
                    // SAFETY: the allocation is ours and committed.
                    unsafe { a.ptr.as_ptr().write_bytes(t, a.size) };
                    held.push(a);
                }
                for a in &held {
                    // SAFETY: still ours.
                    let bytes = unsafe { core::slice::from_raw_parts(a.ptr.as_ptr(), a.size) };
                    assert!(all_bytes_are(bytes, t), "allocations overlap");
                }
                for a in &held {
                    // SAFETY: not used any more.
                    unsafe { arenas.free(a) }.unwrap();
                }
            });
        }
    });
    assert_eq!(arenas.stats().blocks_in_use, 0);
}

/// An arena joins the address order only after it is published in the table, so another thread can
/// get memory of it first, and free it: the lookup must not call that memory foreign.
#[cfg(not(small_code))]
#[test]
fn memory_of_an_arena_not_yet_in_the_address_order_is_found() {
    let arenas: Arenas<StaticBuffer<{ 64 * 1024 }>, 8, 1024> =
        Arenas::new(StaticBuffer::new(), CONFIG);
    let ids: Vec<ArenaId> = (0..3)
        .map(|_| arenas.reserve(8 * 1024, false, false).unwrap())
        .collect();
    let held: Vec<_> = ids
        .iter()
        .map(|&id| arenas.alloc(1000, 8, true, id).unwrap())
        .collect();
    // As the order looks to a thread while the last arena is published but not yet inserted, and
    // with no hint from an earlier lookup.
    arenas.order.retain(|slot| slot + 1 < ids.len());
    for (a, id) in held.iter().zip(&ids) {
        let found = arenas.find(a.ptr.addr().get()).map(|arena| arena.id);
        assert_eq!(found, Some(*id));
        assert!(arenas.contains(a.ptr));
    }
    arenas.order.retain(|_| false);
    for a in &held {
        // SAFETY: not used any more.
        unsafe { arenas.free(a) }.unwrap();
    }
    assert_eq!(arenas.stats().blocks_in_use, 0);
    // Addresses outside every arena stay foreign.
    let outside = held[0].ptr.addr().get().wrapping_sub(1 << 20);
    assert!(arenas.find(outside).is_none());
}
