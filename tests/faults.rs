//! Fault injection on the mock backend: a backend that fails every k-th call (k = 1 to 8), and one
//! whose capacity is capped at every step from nothing to more than a workload needs.
//!
//! Proves, for `Quarry<Mock>` (through `GlobalAlloc` and through `allocator_api2::Allocator` on
//! `&Quarry`) and for `Arenas<Mock>`, that every request the backend makes fail gives null,
//! `Err(AllocError)` or `None`, never a panic; that a failed call leaves the blocks in use (and the
//! bytes in use) as they were, and a failed realloc leaves the old allocation live with its
//! contents; that no free is ever refused; and that once the backend recovers the same requests
//! succeed, every allocation keeps its contents, and after everything is freed and trimmed no block
//! is in use, nothing was written into decommitted memory and the backend saw no misuse.

mod common;

use allocator_api2::alloc::{AllocError, Allocator};
use common::{fill, holds};
use quarry_alloc::backend::{Call, Mock, MockOptions};
use quarry_alloc::{Allocation, ArenaId, Arenas, Config, EagerCommit, MemKind, Quarry};
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;

const KIB: usize = 1024;

/// 4 KiB blocks (the mock's page), 256 KiB arena reservations (64 KiB over a mock without virtual
/// reserve), blocks committed only as they are handed out, and freed blocks purged after 1 ms of
/// the mock's clock, which never moves: the workloads purge with `collect(true)` now and then, so
/// that handing blocks out again commits them again, and every kind of request makes backend
/// calls that can fail.
const CONFIG: Config = Config {
    block_size: 4 * KIB,
    arena_reserve: 256 * KIB,
    purge_delay_ms: 1,
    arena_purge_mult: 1,
    eager_commit: EagerCommit::Never,
    limit_os_alloc: false,
    small_limit: 32 * KIB,
    page_target: 64 * KIB,
};

/// The requests as (size, alignment): small objects, page-sized objects and medium objects from
/// pages, large objects (block runs, one larger than an arena reserved on demand), and aligned
/// requests up to 4096.
const REQUESTS: [(usize, usize); 17] = [
    (8, 8),
    (24, 8),
    (100, 16),
    (1000, 8),
    (3000, 8),
    (4096, 8),
    (12 * KIB, 8),
    (30 * KIB, 8),
    (40 * KIB, 8),
    (100 * KIB, 8),
    (200 * KIB, 8),
    (64, 64),
    (200, 256),
    (1, 4096),
    (4096, 4096),
    (5000, 4096),
    (40 * KIB, 4096),
];

/// The mocks the sweeps run over: without virtual reserve (arenas of a quarter of the reserve),
/// and with it (arenas of the full reserve).
fn mocks(capacity: usize) -> [MockOptions; 2] {
    [
        MockOptions::new(capacity),
        MockOptions {
            virtual_reserve: true,
            ..MockOptions::new(capacity)
        },
    ]
}

/// How a request is made.
#[derive(Clone, Copy, Debug)]
enum Api {
    Alloc,
    AllocZeroed,
    Allocate,
    AllocateZeroed,
}

const APIS: [Api; 4] = [
    Api::Alloc,
    Api::AllocZeroed,
    Api::Allocate,
    Api::AllocateZeroed,
];

/// A live allocation and the byte it is filled with.
struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    fill: u8,
}

/// What a failed call must leave as it was: blocks in use, bytes in use, allocations made.
fn footprint(quarry: &Quarry<Mock>) -> (usize, usize, u64) {
    let stats = quarry.stats();
    (
        quarry.arenas().stats().blocks_in_use,
        stats.bytes_in_use,
        stats.allocations,
    )
}

/// Tallies of a run under faults.
#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    failed: usize,
}

/// Makes request `(size, align)` through `api`; on failure checks that the call changed nothing.
fn request(quarry: &Quarry<Mock>, api: Api, size: usize, align: usize) -> Option<NonNull<u8>> {
    let layout = Layout::from_size_align(size, align).unwrap();
    let before = footprint(quarry);
    let got = match api {
        // SAFETY: the layout has a non-zero size.
        Api::Alloc => NonNull::new(unsafe { quarry.alloc(layout) }),
        // SAFETY: as above.
        Api::AllocZeroed => NonNull::new(unsafe { quarry.alloc_zeroed(layout) }),
        Api::Allocate | Api::AllocateZeroed => {
            let result = if matches!(api, Api::Allocate) {
                quarry.allocate(layout)
            } else {
                quarry.allocate_zeroed(layout)
            };
            match result {
                Ok(slice) => {
                    assert!(
                        slice.len() >= size,
                        "{api:?} {layout:?}: {} bytes",
                        slice.len()
                    );
                    Some(slice.cast::<u8>())
                }
                Err(AllocError) => None,
            }
        }
    };
    match got {
        Some(ptr) => {
            assert_eq!(ptr.as_ptr() as usize % align, 0, "{api:?} {layout:?}");
            if matches!(api, Api::AllocZeroed | Api::AllocateZeroed) {
                assert!(holds(ptr, size, 0), "{api:?} {layout:?}: not zero");
            }
        }
        None => assert_eq!(
            footprint(quarry),
            before,
            "a failed {api:?} of {layout:?} changed the blocks or bytes in use"
        ),
    }
    got
}

/// Resizes `live` to `new_size` through `GlobalAlloc::realloc` (`global`) or
/// `Allocator::grow`/`shrink`; on failure checks that nothing changed and the old allocation is
/// intact. Returns whether it succeeded.
fn resize(quarry: &Quarry<Mock>, live: &mut Live, new_size: usize, global: bool) -> bool {
    let before = footprint(quarry);
    let new_layout = Layout::from_size_align(new_size, live.layout.align()).unwrap();
    // SAFETY: `live.ptr` is live with `live.layout`; `new_size` is non-zero and rounded up to
    // the alignment stays far below `isize::MAX`.
    let got = unsafe { common::resize(quarry, live.ptr, live.layout, new_size, global) };
    match got {
        Some(ptr) => {
            assert_eq!(ptr.as_ptr() as usize % new_layout.align(), 0);
            let kept = live.layout.size().min(new_size);
            assert!(holds(ptr, kept, live.fill), "realloc lost the contents");
            fill(ptr, new_size, live.fill);
            live.ptr = ptr;
            live.layout = new_layout;
            true
        }
        None => {
            assert_eq!(
                footprint(quarry),
                before,
                "a failed resize of {:?} to {new_size} changed the blocks or bytes in use",
                live.layout
            );
            assert!(
                holds(live.ptr, live.layout.size(), live.fill),
                "a failed resize damaged the old allocation"
            );
            false
        }
    }
}

/// Frees `live` after checking its contents; alternates between the two interfaces.
fn release(quarry: &Quarry<Mock>, live: Live, global: bool) {
    assert!(
        holds(live.ptr, live.layout.size(), live.fill),
        "a live allocation of {:?} lost its contents",
        live.layout
    );
    if global {
        // SAFETY: `live.ptr` is live with `live.layout` and not used after this.
        unsafe { quarry.dealloc(live.ptr.as_ptr(), live.layout) };
    } else {
        // SAFETY: as above.
        unsafe { quarry.deallocate(live.ptr, live.layout) };
    }
}

/// The workload under faults: `rounds` passes over the requests, through every interface in turn,
/// each success filled and kept; every third step resizes a live allocation to the next request's
/// size, every fifth frees one, and every seventh purges what is free. Returns the allocations
/// still live.
fn workload(quarry: &Quarry<Mock>, rounds: usize, tally: &mut Tally) -> Vec<Live> {
    let mut live: Vec<Live> = Vec::new();
    let mut step = 0usize;
    for _ in 0..rounds {
        for (i, &(size, align)) in REQUESTS.iter().enumerate() {
            step += 1;
            let byte = (step as u8).wrapping_mul(37) | 1;
            let api = APIS[step % APIS.len()];
            match request(quarry, api, size, align) {
                Some(ptr) => {
                    tally.ok += 1;
                    fill(ptr, size, byte);
                    live.push(Live {
                        ptr,
                        layout: Layout::from_size_align(size, align).unwrap(),
                        fill: byte,
                    });
                }
                None => tally.failed += 1,
            }
            if step % 3 == 0 && !live.is_empty() {
                let pick = step % live.len();
                let new_size = REQUESTS[(i + 1) % REQUESTS.len()].0;
                if resize(quarry, &mut live[pick], new_size, step % 2 == 0) {
                    tally.ok += 1;
                } else {
                    tally.failed += 1;
                }
            }
            if step % 5 == 0 && !live.is_empty() {
                let gone = live.swap_remove(step % live.len());
                release(quarry, gone, step % 2 == 1);
            }
            if step % 7 == 0 {
                quarry.collect(true);
            }
        }
    }
    live
}

/// After the backend recovered: the same requests succeed through every interface (`every_api`),
/// or each through one, with their contents kept; so do resizes; then everything (the survivors of
/// the faults too) is freed, and the allocator and the backend are checked clean.
fn recover_and_check(quarry: &Quarry<Mock>, mut live: Vec<Live>, every_api: bool, what: &str) {
    for (i, &(size, align)) in REQUESTS.iter().enumerate() {
        for (j, &api) in APIS.iter().enumerate() {
            if !every_api && j != i % APIS.len() {
                continue;
            }
            let ptr = request(quarry, api, size, align)
                .unwrap_or_else(|| panic!("{what}: {api:?} of ({size}, {align}) after recovery"));
            let byte = (i * APIS.len() + j) as u8 | 0x80;
            fill(ptr, size, byte);
            live.push(Live {
                ptr,
                layout: Layout::from_size_align(size, align).unwrap(),
                fill: byte,
            });
        }
    }
    // Resizes succeed again too: every allocation to the next request's size and back.
    for (i, entry) in live.iter_mut().enumerate() {
        let old = entry.layout.size();
        let new_size = REQUESTS[i % REQUESTS.len()].0;
        assert!(
            resize(quarry, entry, new_size, i % 2 == 0),
            "{what}: resize"
        );
        assert!(
            resize(quarry, entry, old, i % 2 == 1),
            "{what}: resize back"
        );
    }
    // No two live allocations overlap.
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|l| (l.ptr.as_ptr() as usize, l.layout.size()))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{what}: overlap");
    }
    for (i, entry) in live.into_iter().enumerate() {
        release(quarry, entry, i % 2 == 0);
    }
    quarry.collect(true);
    let stats = quarry.stats();
    assert_eq!(stats.errors(), 0, "{what}: refused frees: {stats:?}");
    assert_eq!(stats.bytes_in_use, 0, "{what}");
    assert_eq!(stats.allocations, stats.frees, "{what}");
    assert_eq!(quarry.arenas().stats().blocks_in_use, 0, "{what}");
    let mock = quarry.arenas().backend();
    assert_eq!(mock.verify_poison(), Ok(()), "{what}");
    assert!(mock.misuse().is_empty(), "{what}: {:?}", mock.misuse());
}

/// Calls to the backend that it failed.
fn failed_calls(mock: &Mock) -> usize {
    mock.calls()
        .iter()
        .filter(|c| {
            matches!(
                c,
                Call::Alloc { offset: None, .. } | Call::Commit { ok: false, .. }
            )
        })
        .count()
}

/// The sweep over k = 1..=8 on both mocks, with `config`.
fn fail_every_sweep(config: Config) {
    let mut failed = 0;
    for options in mocks(16 << 20) {
        for k in 1..=8 {
            let what = format!("k = {k}, virtual reserve {}", options.virtual_reserve);
            let quarry: Quarry<Mock> = Quarry::new(Mock::with(options), config);
            quarry.arenas().backend().fail_every(k);
            let mut tally = Tally::default();
            let live = workload(&quarry, 3, &mut tally);
            let mock = quarry.arenas().backend();
            assert!(failed_calls(mock) > 0, "{what}: no fault was injected");
            // A failed reservation or commit is retried (another arena, a smaller page), so a
            // request may succeed despite the faults; with k = 1 none can.
            failed += tally.failed;
            if k == 1 {
                assert_eq!(tally.ok, 0, "{what}: nothing can succeed");
                assert_eq!(quarry.arenas().arena_count(), 0);
            }
            assert_eq!(quarry.stats().errors(), 0, "{what}");
            mock.fail_every(0);
            recover_and_check(&quarry, live, true, &what);
        }
    }
    assert!(failed > 16, "requests failed only {failed} times");
}

#[test]
fn quarry_survives_a_backend_that_fails_every_kth_call() {
    fail_every_sweep(CONFIG);
}

#[test]
fn quarry_survives_a_backend_that_fails_every_kth_call_purging_at_once() {
    // The same sweep with freed blocks purged at once (delay 0): every free that empties a page
    // retires it and decommits it on the spot. See `retiring_a_page_keeps_bytes_in_use_exact`.
    fail_every_sweep(Config {
        purge_delay_ms: 0,
        ..CONFIG
    });
}

#[test]
fn quarry_survives_every_capacity_step() {
    // Every 4 KiB from nothing to 1 MiB: the workload needs about 700 KiB, so the sweep goes from
    // every request failing to none.
    let mut first_full_success = None;
    for budget in (0..=1024 * KIB).step_by(4 * KIB) {
        let what = format!("budget {budget}");
        let quarry: Quarry<Mock> = Quarry::new(Mock::new(4 << 20), CONFIG);
        let mock = quarry.arenas().backend();
        mock.set_budget(budget);
        let mut tally = Tally::default();
        let live = workload(&quarry, 1, &mut tally);
        assert!(mock.bytes_held() <= budget, "{what}: over budget");
        if budget == 0 {
            assert_eq!(tally.ok, 0, "{what}");
        }
        if tally.failed == 0 && first_full_success.is_none() {
            first_full_success = Some(budget);
        }
        assert_eq!(quarry.stats().errors(), 0, "{what}");
        mock.set_budget(usize::MAX);
        recover_and_check(&quarry, live, false, &what);
    }
    assert!(
        first_full_success.is_some(),
        "the largest budget should be enough for the whole workload"
    );
}

/// `Arenas::alloc` requests as (size, alignment, commit): single blocks, runs, aligned runs, an
/// uncommitted run, and a run larger than any arena reserved on demand (from the backend directly).
const RUNS: [(usize, usize, bool); 8] = [
    (100, 8, true),
    (4 * KIB, 8, true),
    (12 * KIB, 8, true),
    (8 * KIB, 16 * KIB, true),
    (20 * KIB, 8, false),
    (64 * KIB, 64 * KIB, true),
    (40 * KIB, 4 * KIB, true),
    (300 * KIB, 8, true),
];

/// One `Arenas::alloc`; on failure checks that no block stayed claimed.
fn claim(arenas: &Arenas<Mock>, size: usize, align: usize, commit: bool) -> Option<Allocation> {
    let before = arenas.stats().blocks_in_use;
    let got = arenas.alloc(size, align, commit, ArenaId::ANY);
    match got {
        Some(a) => {
            assert!(a.size >= size);
            assert_eq!(a.ptr.as_ptr() as usize % align, 0);
        }
        None => assert_eq!(
            arenas.stats().blocks_in_use,
            before,
            "a failed alloc of ({size}, {align}, {commit}) left blocks claimed"
        ),
    }
    got
}

fn free_run(arenas: &Arenas<Mock>, a: &Allocation, byte: u8) {
    assert!(holds(a.ptr, a.size, byte), "a run lost its contents");
    // SAFETY: `a` came from `arenas` and is not used after this.
    unsafe { arenas.free(a) }.expect("a valid free");
}

/// The registry's workload under faults: the runs in turn, `rounds` times, every third freed
/// (uncommitted runs are freed at once, since committing them could fail too). Returns the runs
/// still live.
fn run_workload(arenas: &Arenas<Mock>, rounds: usize, tally: &mut Tally) -> Vec<(Allocation, u8)> {
    let mut live = Vec::new();
    let mut step = 0usize;
    for _ in 0..rounds {
        for &(size, align, commit) in &RUNS {
            step += 1;
            match claim(arenas, size, align, commit) {
                Some(a) if !a.memid.initially_committed => {
                    tally.ok += 1;
                    // SAFETY: never touched, not used after this.
                    unsafe { arenas.free(&a) }.expect("a valid free");
                }
                Some(a) => {
                    tally.ok += 1;
                    let byte = (step as u8).wrapping_mul(41) | 1;
                    fill(a.ptr, a.size, byte);
                    live.push((a, byte));
                }
                None => tally.failed += 1,
            }
            if step % 3 == 0 && !live.is_empty() {
                let (a, byte) = live.swap_remove(step % live.len());
                free_run(arenas, &a, byte);
            }
        }
    }
    live
}

fn recover_runs(arenas: &Arenas<Mock>, mut live: Vec<(Allocation, u8)>, what: &str) {
    for (i, &(size, align, commit)) in RUNS.iter().enumerate() {
        let a = claim(arenas, size, align, commit)
            .unwrap_or_else(|| panic!("{what}: ({size}, {align}, {commit}) after recovery"));
        if !a.memid.initially_committed {
            // An uncommitted run is not touched.
            // SAFETY: never used.
            unsafe { arenas.free(&a) }.expect("a valid free");
            continue;
        }
        let byte = i as u8 | 0x80;
        fill(a.ptr, a.size, byte);
        live.push((a, byte));
    }
    for (a, byte) in &live {
        free_run(arenas, a, *byte);
    }
    arenas.collect(true);
    let stats = arenas.stats();
    assert_eq!(stats.errors(), 0, "{what}: {stats:?}");
    assert_eq!(stats.blocks_in_use, 0, "{what}");
    assert_eq!(stats.os_allocs, stats.os_frees, "{what}");
    let mock = arenas.backend();
    assert_eq!(mock.verify_poison(), Ok(()), "{what}");
    assert!(mock.misuse().is_empty(), "{what}: {:?}", mock.misuse());
}

#[test]
fn arenas_survive_a_backend_that_fails_every_kth_call() {
    for options in mocks(16 << 20) {
        for k in 1..=8 {
            let what = format!("k = {k}, virtual reserve {}", options.virtual_reserve);
            let arenas: Arenas<Mock> = Arenas::new(Mock::with(options), CONFIG);
            arenas.backend().fail_every(k);
            let mut tally = Tally::default();
            let live = run_workload(&arenas, 4, &mut tally);
            assert!(failed_calls(arenas.backend()) > 0, "{what}: no fault");
            if k == 1 {
                assert_eq!(tally.ok, 0, "{what}");
            }
            assert_eq!(arenas.stats().errors(), 0, "{what}");
            arenas.backend().fail_every(0);
            recover_runs(&arenas, live, &what);
        }
    }
}

#[test]
fn arenas_survive_every_capacity_step() {
    for budget in (0..=768 * KIB).step_by(4 * KIB) {
        let what = format!("budget {budget}");
        let arenas: Arenas<Mock> = Arenas::new(Mock::new(2 << 20), CONFIG);
        arenas.backend().set_budget(budget);
        let mut tally = Tally::default();
        let live = run_workload(&arenas, 2, &mut tally);
        assert!(arenas.backend().bytes_held() <= budget, "{what}");
        if budget == 0 {
            assert_eq!(tally.ok, 0, "{what}");
        }
        arenas.backend().set_budget(usize::MAX);
        recover_runs(&arenas, live, &what);
    }
}

#[test]
fn a_failed_commit_of_a_purged_run_leaves_it_free_and_purged() {
    // A run freed (and so purged at once) must be committed again to be handed out; when that
    // commit fails, the run stays free and the next try commits and hands out zeroed memory.
    let config = Config {
        purge_delay_ms: 0,
        ..CONFIG
    };
    let arenas: Arenas<Mock> = Arenas::new(Mock::new(1 << 20), config);
    let keep = arenas.alloc(4 * KIB, 8, true, ArenaId::ANY).unwrap();
    let a = arenas.alloc(16 * KIB, 8, true, ArenaId::ANY).unwrap();
    fill(a.ptr, a.size, 0xEE);
    // SAFETY: `a` is not used after this.
    unsafe { arenas.free(&a) }.unwrap();
    assert!(
        !arenas.backend().is_committed(a.ptr, a.size),
        "purged at once"
    );
    let MemKind::Arena { id, .. } = a.memid.kind else {
        panic!("not an arena run")
    };
    arenas.backend().fail_every(1);
    assert_eq!(arenas.alloc(16 * KIB, 8, true, id), None);
    assert_eq!(arenas.stats().blocks_in_use, 1);
    arenas.backend().fail_every(0);
    let b = arenas.alloc(16 * KIB, 8, true, id).unwrap();
    assert_eq!(b.ptr, a.ptr, "the same blocks");
    assert!(b.memid.initially_zero);
    assert!(holds(b.ptr, b.size, 0));
    // SAFETY: neither is used after this.
    unsafe {
        arenas.free(&b).unwrap();
        arenas.free(&keep).unwrap();
    }
    assert_eq!(arenas.stats().blocks_in_use, 0);
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
}

#[test]
fn retiring_a_page_keeps_bytes_in_use_exact() {
    // Purging at once: the free that empties a page (not the only one of its class) retires it,
    // and its blocks, header included, are decommitted (the mock poisons them with 0xD7) before
    // the free is counted.
    let config = Config {
        purge_delay_ms: 0,
        ..CONFIG
    };
    let quarry: Quarry<Mock, quarry_alloc::SpinLock, 1> = Quarry::new(Mock::new(4 << 20), config);
    let layout = Layout::from_size_align(12 * KIB, 8).unwrap();
    let mut objects = Vec::new();
    while quarry.stats().pages_made < 2 {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { quarry.alloc(layout) };
        assert!(!ptr.is_null());
        objects.push(ptr);
    }
    // The first page is full and off its class list, the second holds one object. Free every
    // object: the first page goes back on the list, then empties, and is retired.
    for ptr in objects {
        // SAFETY: live with `layout`, freed once.
        unsafe { quarry.dealloc(ptr, layout) };
    }
    let stats = quarry.stats();
    assert_eq!(stats.pages_returned, 1);
    assert_eq!(stats.errors(), 0);
    assert_eq!(
        stats.bytes_in_use, 0,
        "the usable size of the last free was read from the retired page's purged header"
    );
}
