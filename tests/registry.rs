//! The arena registry on the mock backend: reservation policy, exclusive arenas, the fallback to the
//! backend, failures midway, bad frees, alignment, and the arena map.

use quarry_alloc::backend::{Call, Mock, MockOptions};
use quarry_alloc::{
    Allocation, ArenaId, Arenas, Config, EagerCommit, FreeError, FreeErrorKind, MemKind, OsBackend,
    ReserveError,
};
use std::ptr::NonNull;
use std::sync::Mutex;

const KIB: usize = 1024;

/// 4 KiB blocks, 64 KiB arena reservations (16 KiB without virtual reserve), no purging.
const CONFIG: Config = Config {
    block_size: 4 * KIB,
    arena_reserve: 64 * KIB,
    purge_delay_ms: -1,
    arena_purge_mult: 1,
    eager_commit: EagerCommit::Never,
    limit_os_alloc: false,
    small_limit: 32 * KIB,
    page_target: 0,
};

fn registry(capacity: usize) -> Arenas<Mock> {
    Arenas::new(Mock::new(capacity), CONFIG)
}

fn allocs(mock: &Mock) -> Vec<(usize, usize)> {
    mock.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Alloc {
                size,
                align,
                offset: Some(_),
                ..
            } => Some((size, align)),
            _ => None,
        })
        .collect()
}

fn map_of<B: OsBackend>(arenas: &Arenas<B>) -> String {
    let mut out = String::new();
    arenas.write_map(&mut out).unwrap();
    out
}

#[test]
fn reserves_a_quarter_without_virtual_reserve() {
    let arenas = registry(1 << 20);
    let a = arenas.alloc(100, 8, true, ArenaId::ANY).unwrap();
    assert!(matches!(a.memid.kind, MemKind::Arena { block: 0, .. }));
    assert_eq!(a.size, 4 * KIB, "one block");
    assert_eq!(allocs(arenas.backend()), [(16 * KIB, 4 * KIB)]);
    assert_eq!(arenas.stats().arena_bytes, 16 * KIB);
}

#[test]
fn reserves_the_full_size_with_virtual_reserve_and_doubles_every_eight_arenas() {
    let mock = Mock::with(MockOptions {
        virtual_reserve: true,
        ..MockOptions::new(8 << 20)
    });
    let arenas: Arenas<Mock> = Arenas::new(mock, CONFIG);
    arenas.alloc(1, 1, true, ArenaId::ANY).unwrap();
    assert_eq!(allocs(arenas.backend()), [(64 * KIB, 4 * KIB)]);
    // Seven more arenas, exclusive so that they serve nothing by themselves.
    for _ in 0..7 {
        arenas.reserve(4 * KIB, false, true).unwrap();
    }
    // Fill the first arena; the next allocation reserves arena 9, twice the size.
    while arenas.stats().blocks_in_use < 16 {
        arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    }
    arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    assert_eq!(allocs(arenas.backend()).last(), Some(&(128 * KIB, 4 * KIB)));
    assert_eq!(arenas.arena_count(), 9);
}

#[test]
fn exclusive_arenas_serve_only_requests_that_name_them() {
    let arenas = registry(1 << 20);
    let ex = arenas.reserve(16 * KIB, true, true).unwrap();
    assert_eq!(ex, arenas.area(ex).map(|_| ex).unwrap());
    let any = arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    let MemKind::Arena { id, .. } = any.memid.kind else {
        panic!("not from an arena")
    };
    assert_ne!(
        id, ex,
        "a request for any arena never lands in an exclusive one"
    );
    let named = arenas.alloc(4 * KIB, 8, true, ex).unwrap();
    assert!(matches!(named.memid.kind, MemKind::Arena { id, .. } if id == ex));
    // The exclusive arena full: a request naming it fails instead of going elsewhere.
    for _ in 0..3 {
        arenas.alloc(4 * KIB, 8, true, ex).unwrap();
    }
    let before = arenas.backend().calls().len();
    assert_eq!(arenas.alloc(4 * KIB, 8, true, ex), None);
    assert_eq!(
        arenas.backend().calls().len(),
        before,
        "no reservation, no fallback"
    );
    // A request naming a non-exclusive arena is served by it.
    let (start, size) = arenas.area(id).unwrap();
    let again = arenas.alloc(4 * KIB, 8, true, id).unwrap();
    let offset = again.ptr.as_ptr() as usize - start.as_ptr() as usize;
    assert!(offset < size);
    assert_eq!(arenas.alloc(4 * KIB, 8, true, ArenaId::new(99)), None);
}

#[test]
fn large_requests_fall_back_to_the_backend_unless_limited() {
    let arenas = registry(1 << 20);
    let big = arenas.alloc(100 * KIB, 8, true, ArenaId::ANY).unwrap();
    assert_eq!(
        big.memid.kind,
        MemKind::Os,
        "larger than any arena the policy reserves"
    );
    assert!(big.size >= 100 * KIB);
    assert_eq!(arenas.stats().os_allocs, 1);
    assert_eq!(arenas.arena_count(), 0);
    // SAFETY: `big` is not used any more.
    unsafe { arenas.free(&big) }.unwrap();
    assert_eq!(arenas.backend().live_regions(), 0, "the region went back");

    let limited: Arenas<Mock> = Arenas::new(Mock::new(1 << 20), CONFIG.with_limit_os_alloc(true));
    assert_eq!(limited.alloc(100 * KIB, 8, true, ArenaId::ANY), None);
    assert!(limited.alloc(4 * KIB, 8, true, ArenaId::ANY).is_some());

    let never_reserve: Arenas<Mock> = Arenas::new(Mock::new(1 << 20), CONFIG.with_arena_reserve(0));
    let a = never_reserve.alloc(10, 8, true, ArenaId::ANY).unwrap();
    assert_eq!(a.memid.kind, MemKind::Os);
}

#[test]
fn a_failing_backend_leaves_no_claimed_bits_and_recovers() {
    let arenas = registry(1 << 20);
    // An uncommitted arena: allocation must commit, and the commit fails.
    let id = arenas.reserve(64 * KIB, false, false).unwrap();
    arenas.backend().fail_next(1);
    assert_eq!(arenas.alloc(8 * KIB, 8, true, id), None);
    assert_eq!(
        arenas.stats().blocks_in_use,
        0,
        "the claimed run was given back"
    );
    let a = arenas.alloc(8 * KIB, 8, true, id).unwrap();
    assert!(a.memid.initially_committed && a.memid.initially_zero);
    assert!(arenas.backend().is_committed(a.ptr, a.size));

    // Every backend call fails: no reservation, no fallback, nothing claimed.
    let fresh = registry(1 << 20);
    fresh.backend().fail_next(usize::MAX);
    assert_eq!(fresh.alloc(4 * KIB, 8, true, ArenaId::ANY), None);
    assert_eq!(fresh.arena_count(), 0);
    fresh.backend().fail_next(0);
    assert!(fresh.alloc(4 * KIB, 8, true, ArenaId::ANY).is_some());

    // A budget: the arena fills, the backend refuses more, frees make room again.
    let tight = registry(1 << 20);
    tight.backend().set_budget(16 * KIB);
    let held: Vec<Allocation> = (0..4)
        .map(|_| tight.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap())
        .collect();
    assert_eq!(tight.alloc(4 * KIB, 8, true, ArenaId::ANY), None);
    assert_eq!(tight.stats().blocks_in_use, 4);
    // SAFETY: `held[2]` is not used any more.
    unsafe { tight.free(&held[2]) }.unwrap();
    assert_eq!(
        tight.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap().ptr,
        held[2].ptr
    );
}

static HOOK_CALLS: Mutex<Vec<FreeError>> = Mutex::new(Vec::new());

fn record(error: &FreeError) {
    HOOK_CALLS.lock().unwrap().push(*error);
}

#[test]
fn bad_frees_are_refused_counted_and_reported() {
    let arenas = registry(1 << 20);
    arenas.set_error_hook(Some(record));
    let a = arenas.alloc(8 * KIB, 8, true, ArenaId::ANY).unwrap();
    let b = arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    let map = map_of(&arenas);

    let mut foreign = [0u8; 64];
    let foreign = Allocation {
        ptr: NonNull::new(foreign.as_mut_ptr()).unwrap(),
        size: 64,
        ..a
    };
    let foreign_direct = Allocation {
        memid: quarry_alloc::MemId {
            kind: MemKind::Os,
            ..a.memid
        },
        ..foreign
    };
    let interior = Allocation {
        // SAFETY: one block into `a`, inside it.
        ptr: unsafe { a.ptr.add(4 * KIB) },
        ..a
    };
    let past_end = Allocation { size: 1 << 20, ..b };
    let no_such_arena = Allocation {
        memid: quarry_alloc::MemId {
            kind: MemKind::Arena {
                id: ArenaId::new(7),
                block: 0,
            },
            ..a.memid
        },
        ..a
    };
    let wrong_kind = Allocation {
        memid: quarry_alloc::MemId {
            kind: MemKind::Os,
            ..a.memid
        },
        ..a
    };
    // SAFETY: the registry refuses each of these frees without touching memory.
    let cases = unsafe {
        [
            (arenas.free(&foreign), FreeErrorKind::NotOurs),
            (arenas.free(&foreign_direct), FreeErrorKind::NotOurs),
            (arenas.free(&no_such_arena), FreeErrorKind::NotOurs),
            (arenas.free(&wrong_kind), FreeErrorKind::NotOurs),
            (arenas.free(&interior), FreeErrorKind::Misaligned),
            (arenas.free(&past_end), FreeErrorKind::PastEnd),
        ]
    };
    for (result, kind) in cases {
        assert_eq!(result.map_err(|e| e.kind), Err(kind));
    }
    assert_eq!(map_of(&arenas), map, "refused frees change nothing");

    // SAFETY: `b` is not used any more; the second free is refused.
    unsafe {
        arenas.free(&b).unwrap();
        assert_eq!(arenas.free(&b).unwrap_err().kind, FreeErrorKind::DoubleFree);
    }
    let stats = arenas.stats();
    assert_eq!(
        (
            stats.not_ours,
            stats.misaligned,
            stats.past_end,
            stats.double_frees
        ),
        (4, 1, 1, 1)
    );
    assert_eq!(stats.errors(), 7);
    let seen = HOOK_CALLS.lock().unwrap().clone();
    assert_eq!(seen.len(), 7, "the hook saw every refused free");
    assert_eq!(seen[0].addr, foreign.ptr.as_ptr() as usize);
    assert!(seen[6].to_string().contains("already free"));
    assert_eq!(
        arenas.backend().misuse(),
        ["free of a region that is not live"]
    );
    assert_eq!(stats.blocks_in_use, 2, "`a` is still in use");
}

#[test]
fn any_alignment_up_to_the_arena_size() {
    let mock = Mock::with(MockOptions {
        virtual_reserve: true,
        ..MockOptions::new(4 << 20)
    });
    let arenas: Arenas<Mock> = Arenas::new(mock, CONFIG);
    let mut align = 1;
    while align <= 64 * KIB {
        for size in [1, 4 * KIB, 12 * KIB] {
            let a = arenas.alloc(size, align, true, ArenaId::ANY).unwrap();
            assert_eq!(
                a.ptr.as_ptr() as usize % align,
                0,
                "size {size} align {align}"
            );
            // SAFETY: `a` is not used any more.
            unsafe { arenas.free(&a) }.unwrap();
        }
        align *= 2;
    }
    assert_eq!(arenas.stats().blocks_in_use, 0);
    assert_eq!(
        arenas.alloc(8, 3, true, ArenaId::ANY),
        None,
        "not a power of two"
    );
}

#[test]
fn sizes_and_alignments_that_overflow_give_none() {
    let arenas = registry(1 << 20);
    for (size, align) in [
        (usize::MAX, 8),
        (usize::MAX - 4 * KIB + 2, 8),
        (isize::MAX as usize, 8),
        (8, 1 << (usize::BITS - 1)),
        (usize::MAX / 2, 1 << 20),
        (0, 8),
    ] {
        assert_eq!(
            arenas.alloc(size, align, true, ArenaId::ANY),
            None,
            "{size} {align}"
        );
    }
    assert_eq!(arenas.stats().blocks_in_use, 0);
    assert_eq!(
        arenas.reserve(usize::MAX, false, false),
        Err(ReserveError::OutOfMemory)
    );
}

#[test]
fn zero_and_commit_state_are_reported() {
    let arenas = registry(1 << 20);
    let id = arenas.reserve(32 * KIB, false, false).unwrap();
    let lazy = arenas.alloc(4 * KIB, 8, false, id).unwrap();
    assert!(
        !lazy.memid.initially_committed,
        "commit not asked, not done"
    );
    assert!(!arenas.backend().is_committed(lazy.ptr, lazy.size));
    let a = arenas.alloc(4 * KIB, 8, true, id).unwrap();
    assert!(a.memid.initially_committed && a.memid.initially_zero);
    // SAFETY: `a` is committed and ours.
    unsafe { a.ptr.as_ptr().write_bytes(0x55, a.size) };
    // SAFETY: `a` is not used any more.
    unsafe { arenas.free(&a) }.unwrap();
    let b = arenas.alloc(4 * KIB, 8, true, id).unwrap();
    assert_eq!(b.ptr, a.ptr, "the same block comes back");
    assert!(b.memid.initially_committed);
    assert!(!b.memid.initially_zero, "it was handed out before: dirty");
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
}

#[test]
fn managed_memory_becomes_an_arena() {
    let arenas = registry(1 << 20);
    let mut buffer = vec![0u8; 40 * KIB];
    let start = NonNull::new(buffer.as_mut_ptr()).unwrap();
    // SAFETY: the buffer outlives the registry and nobody else uses it.
    let id = unsafe { arenas.manage(start, buffer.len(), true, true, true, true) }.unwrap();
    let (area, size) = arenas.area(id).unwrap();
    assert_eq!(
        area.as_ptr() as usize % (4 * KIB),
        0,
        "start rounded up to a block"
    );
    assert!((32 * KIB..=40 * KIB).contains(&size));
    let a = arenas.alloc(4 * KIB, 8, true, id).unwrap();
    assert!(arenas.contains(a.ptr));
    assert!(a.memid.initially_zero && a.memid.pinned);
    assert!(
        arenas.backend().calls().is_empty(),
        "no backend call at all"
    );
    let mut tiny = [0u8; 100];
    // SAFETY: too small to be used.
    let refused = unsafe {
        arenas.manage(
            NonNull::new(tiny.as_mut_ptr()).unwrap(),
            100,
            true,
            true,
            true,
            false,
        )
    };
    assert_eq!(refused, Err(ReserveError::TooSmall));
    // SAFETY: nothing is used any more.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.stats().blocks_in_use, 0);
    drop(buffer);
}

#[test]
fn destroy_all_gives_every_region_back() {
    let arenas = registry(1 << 20);
    for _ in 0..10 {
        arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    }
    assert_eq!(arenas.arena_count(), 3);
    assert!(arenas.stats().meta_bytes > 0);
    // SAFETY: nothing is used any more.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.arena_count(), 0);
    assert_eq!(arenas.stats().meta_bytes, 0);
    assert_eq!(arenas.backend().live_regions(), 0);
    assert!(arenas.backend().misuse().is_empty());
    assert!(
        arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).is_some(),
        "usable again"
    );
}

#[test]
fn a_full_table_refuses_and_returns_the_region() {
    let arenas: Arenas<Mock, 4> = Arenas::new(Mock::new(1 << 20), CONFIG);
    for _ in 0..4 {
        arenas.reserve(4 * KIB, false, false).unwrap();
    }
    assert_eq!(
        arenas.reserve(4 * KIB, false, false),
        Err(ReserveError::TableFull)
    );
    assert_eq!(arenas.backend().live_regions(), 4);
    assert_eq!(arenas.arena_count(), 4);
}

#[test]
fn metadata_falls_back_to_the_backend_when_the_static_area_is_full() {
    let arenas: Arenas<Mock, 64, 256> = Arenas::new(Mock::new(1 << 20), CONFIG);
    let first = arenas.reserve(16 * KIB, false, false).unwrap();
    let used = arenas.stats().meta_bytes;
    assert!(used > 0 && used <= 256);
    // Descriptors fill the static area (how many fit depends on the word size), then each
    // arena's metadata is a backend region of its own.
    let mut regions = arenas.backend().live_regions();
    let mut meta = used;
    for added in 1.. {
        assert!(added < 16, "the static area never filled up");
        arenas.reserve(16 * KIB, false, false).unwrap();
        let (now_regions, now_meta) = (arenas.backend().live_regions(), arenas.stats().meta_bytes);
        if now_meta == meta {
            assert_eq!(now_regions, regions + 2, "the arena and its metadata");
            break;
        }
        assert_eq!(
            now_regions,
            regions + 1,
            "the arena, its metadata in the static area"
        );
        (regions, meta) = (now_regions, now_meta);
    }
    assert!(arenas.area(first).is_some());
    // SAFETY: nothing is used.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.backend().live_regions(), 0);
}

#[test]
fn the_arena_map_shows_every_block() {
    let arenas = registry(1 << 20);
    let a = arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    let _b = arenas.alloc(8 * KIB, 8, true, ArenaId::ANY).unwrap();
    // SAFETY: `a` is not used any more.
    unsafe { arenas.free(&a) }.unwrap();
    let map = map_of(&arenas);
    let lines: Vec<&str> = map.lines().collect();
    assert_eq!(lines[0], "1 arena");
    assert!(
        lines[1].starts_with("arena 1: 4 blocks of 4096 bytes at 0x"),
        "{map}"
    );
    assert_eq!(lines[2], "  .xx.");
    assert_eq!(lines[3], "  in use: 2 of 4 blocks");
}

#[test]
fn a_moved_registry_refuses_to_work() {
    let arenas = registry(1 << 20);
    let a = arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    let moved = Box::new(arenas);
    assert_eq!(moved.alloc(4 * KIB, 8, true, ArenaId::ANY), None);
    assert_eq!(
        // SAFETY: refused without touching memory.
        unsafe { moved.free(&a) }.unwrap_err().kind,
        FreeErrorKind::NotOurs
    );
    assert_eq!(
        moved.reserve(4 * KIB, false, false),
        Err(ReserveError::Moved)
    );
}

// wasm32-wasip1 has no threads.
#[cfg(not(target_os = "wasi"))]
#[test]
fn many_threads_allocate_and_free_in_shared_arenas() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let arenas = registry(16 << 20);
    let owners: Vec<AtomicUsize> = (0..4096).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (arenas, owners) = (&arenas, &owners);
            s.spawn(move || {
                let mut held = Vec::new();
                for i in 0..2000usize {
                    if i % 3 != 2 {
                        let blocks = 1 + (i * 7 + t) % 5;
                        if let Some(a) = arenas.alloc(blocks * 4 * KIB, 8, true, ArenaId::ANY) {
                            let first = a.ptr.as_ptr() as usize / (4 * KIB);
                            for o in 0..blocks {
                                let slot = &owners[(first + o) % owners.len()];
                                assert_eq!(slot.fetch_add(1, Ordering::Relaxed), 0, "shared block");
                            }
                            held.push((a, first, blocks));
                        }
                    } else if let Some((a, first, blocks)) = held.pop() {
                        for o in 0..blocks {
                            owners[(first + o) % owners.len()].fetch_sub(1, Ordering::Relaxed);
                        }
                        // SAFETY: `a` is ours and not used any more.
                        unsafe { arenas.free(&a) }.unwrap();
                    }
                }
                for (a, first, blocks) in held {
                    for o in 0..blocks {
                        owners[(first + o) % owners.len()].fetch_sub(1, Ordering::Relaxed);
                    }
                    // SAFETY: as above.
                    unsafe { arenas.free(&a) }.unwrap();
                }
            });
        }
    });
    let stats = arenas.stats();
    assert_eq!(stats.blocks_in_use, 0);
    assert_eq!(stats.errors(), 0);
    assert_eq!(stats.os_allocs, stats.os_frees);
}

#[test]
fn a_handle_allocates_only_in_its_arena() {
    let arenas = registry(1 << 20);
    let id = arenas.reserve(16 * KIB, true, true).unwrap();
    let handle = arenas.arena(id).unwrap();
    assert_eq!(handle.id(), id);
    assert_eq!(handle.block_count(), 4);
    let held: Vec<Allocation> = (0..4)
        .map(|_| handle.alloc(4 * KIB, 8, true).unwrap())
        .collect();
    assert_eq!(handle.blocks_in_use(), 4);
    assert_eq!(
        handle.alloc(1, 1, true),
        None,
        "full: no other arena, no fallback"
    );
    assert_eq!(handle.alloc(0, 1, true), None);
    assert_eq!(handle.alloc(usize::MAX, 1, true), None);
    let other = arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    // SAFETY: none of these is used any more; the second free of `held[0]` is refused.
    unsafe {
        handle.free(&held[0]).unwrap();
        assert_eq!(
            handle.free(&held[0]).unwrap_err().kind,
            FreeErrorKind::DoubleFree
        );
        handle.free(&other).unwrap();
    }
    assert_eq!(handle.blocks_in_use(), 3);
    assert_eq!(arenas.stats().double_frees, 1);
    assert!(arenas.arena(ArenaId::ANY).is_none());
    assert!(arenas.arena(ArenaId::new(40)).is_none());
}
