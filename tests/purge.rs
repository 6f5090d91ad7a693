//! Purging on the mock backend, whose clock moves only when told to and which poisons decommitted
//! memory: when a purge happens (delay, extension, `collect`), that it never touches a block in
//! use, and that it races allocations and frees safely.

use quarry_alloc::backend::{Call, Mock, MockOptions};
use quarry_alloc::{Allocation, ArenaId, Arenas, Config, EagerCommit, MemKind};
use std::sync::atomic::{AtomicBool, Ordering};

const KIB: usize = 1024;

/// 4 KiB blocks (the mock's page), 256 KiB arenas reserved uncommitted, purged `delay` ms after a
/// free (the multiplier is 1).
fn config(delay: i64) -> Config {
    Config {
        block_size: 4 * KIB,
        arena_reserve: 256 * KIB,
        purge_delay_ms: delay,
        arena_purge_mult: 1,
        eager_commit: EagerCommit::Never,
        limit_os_alloc: true,
        small_limit: 32 * KIB,
        page_target: 0,
    }
}

fn registry(delay: i64) -> Arenas<Mock> {
    let options = MockOptions {
        virtual_reserve: true,
        ..MockOptions::new(4 << 20)
    };
    Arenas::new(Mock::with(options), config(delay))
}

fn alloc(arenas: &Arenas<Mock>, size: usize) -> Allocation {
    arenas.alloc(size, 8, true, ArenaId::ANY).expect("memory")
}

fn free(arenas: &Arenas<Mock>, a: &Allocation) {
    // SAFETY: `a` came from `arenas` and is not used after this.
    unsafe { arenas.free(a) }.expect("a valid free");
}

/// Purge calls the mock saw, as (offset, size).
fn purges(mock: &Mock) -> Vec<(usize, usize)> {
    mock.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Purge { offset, size } => Some((offset, size)),
            _ => None,
        })
        .collect()
}

fn fill(a: &Allocation, byte: u8) {
    // SAFETY: the allocation is live and `a.size` bytes long.
    unsafe { a.ptr.as_ptr().write_bytes(byte, a.size) };
}

fn holds(a: &Allocation, byte: u8) -> bool {
    // SAFETY: as in `fill`.
    unsafe { std::slice::from_raw_parts(a.ptr.as_ptr(), a.size) }
        .iter()
        .all(|&b| b == byte)
}

#[test]
fn a_freed_run_is_purged_once_the_delay_has_passed() {
    let arenas = registry(100);
    let keep = alloc(&arenas, 4 * KIB);
    let a = alloc(&arenas, 8 * KIB);
    free(&arenas, &a);
    assert!(purges(arenas.backend()).is_empty(), "not before the delay");
    arenas.backend().advance_ms(99);
    assert!(!arenas.collect(false));
    assert!(purges(arenas.backend()).is_empty());
    arenas.backend().advance_ms(1);
    assert!(arenas.collect(false));
    let mock = arenas.backend();
    assert_eq!(purges(mock), [(mock.offset_of(a.ptr), 8 * KIB)]);
    assert!(!mock.is_committed(a.ptr, 8 * KIB), "decommitted");
    assert!(mock.is_committed(keep.ptr, 4 * KIB), "the live block stays");
    assert_eq!(arenas.stats().purged_bytes, 8 * KIB);
    assert!(!arenas.collect(true), "nothing left to purge");
    assert_eq!(mock.verify_poison(), Ok(()));
}

#[test]
fn releases_purge_what_is_due() {
    let arenas = registry(10);
    let a = alloc(&arenas, 4 * KIB);
    let later: Vec<Allocation> = (0..16).map(|_| alloc(&arenas, 4 * KIB)).collect();
    free(&arenas, &a);
    // Well past the delay, and past the tenth of it each of the frees below adds while the purge
    // is pending.
    arenas.backend().advance_ms(100);
    // No `collect`: one of the next releases (every 16th looks at the clock) purges what is due.
    for b in &later {
        free(&arenas, b);
    }
    // The arena's runs are due together: the first purge starts with `a` (and takes the runs
    // freed after it that are marked too).
    let mock = arenas.backend();
    let &(offset, size) = purges(mock).first().expect("a purge");
    assert_eq!(offset, mock.offset_of(a.ptr));
    assert!(size >= 4 * KIB);
}

#[test]
fn a_pending_purge_is_pushed_back_by_a_tenth_of_the_delay() {
    let arenas = registry(100);
    let a = alloc(&arenas, 4 * KIB);
    let b = alloc(&arenas, 4 * KIB);
    free(&arenas, &a); // due at 100
    arenas.backend().advance_ms(50);
    free(&arenas, &b); // pending: now due at 110
    arenas.backend().advance_ms(55); // 105
    assert!(!arenas.collect(false), "pushed back");
    arenas.backend().advance_ms(5); // 110
    assert!(arenas.collect(false));
    assert_eq!(purges(arenas.backend()).len(), 1, "both runs, one range");
    assert_eq!(arenas.stats().purged_bytes, 8 * KIB);
}

#[test]
fn collect_force_purges_everything_scheduled_at_once() {
    let arenas = registry(1_000_000);
    let runs: Vec<Allocation> = (0..6).map(|_| alloc(&arenas, 4 * KIB)).collect();
    for a in runs.iter().step_by(2) {
        free(&arenas, a);
    }
    assert!(!arenas.collect(false), "far from due");
    assert!(arenas.collect(true));
    let mock = arenas.backend();
    let purged: Vec<usize> = purges(mock).into_iter().map(|(offset, _)| offset).collect();
    let freed: Vec<usize> = runs
        .iter()
        .step_by(2)
        .map(|a| mock.offset_of(a.ptr))
        .collect();
    assert_eq!(purged, freed);
    for a in runs.iter().skip(1).step_by(2) {
        assert!(mock.is_committed(a.ptr, a.size));
    }
}

#[test]
fn a_delay_of_zero_purges_at_once_and_below_zero_never() {
    let now = registry(0);
    let a = alloc(&now, 12 * KIB);
    free(&now, &a);
    assert_eq!(purges(now.backend()).len(), 1);

    let never = registry(-1);
    let a = alloc(&never, 12 * KIB);
    free(&never, &a);
    assert!(!never.collect(true));
    assert!(purges(never.backend()).is_empty());
    assert_eq!(never.stats().purged_bytes, 0);
}

#[test]
fn purged_blocks_are_committed_and_zero_when_handed_out_again() {
    let arenas = registry(0);
    let a = alloc(&arenas, 16 * KIB);
    fill(&a, 0xAB);
    free(&arenas, &a);
    let b = alloc(&arenas, 16 * KIB);
    assert_eq!(b.ptr, a.ptr, "the same blocks again");
    assert!(b.memid.initially_committed && b.memid.initially_zero);
    assert!(arenas.backend().is_committed(b.ptr, b.size));
    assert!(holds(&b, 0), "the mock zeroes on commit");
}

#[test]
fn an_allocation_takes_a_scheduled_run_back_from_its_purge() {
    let arenas = registry(100);
    let a = alloc(&arenas, 8 * KIB);
    fill(&a, 1);
    free(&arenas, &a);
    let b = alloc(&arenas, 8 * KIB);
    assert_eq!(b.ptr, a.ptr);
    fill(&b, 2);
    arenas.backend().advance_ms(1000);
    assert!(!arenas.collect(true), "nothing is marked any more");
    assert!(holds(&b, 2));
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
}

#[test]
fn a_purge_never_touches_a_block_in_use() {
    // Runs of several sizes, every other one freed, in rounds; the live ones keep their fill
    // pattern through every purge, and nothing is ever written into decommitted memory.
    let arenas = registry(5);
    let mut live: Vec<(Allocation, u8)> = Vec::new();
    for round in 0..40u8 {
        for i in 0..8 {
            let a = alloc(&arenas, (1 + (i + round as usize) % 5) * 4 * KIB);
            fill(&a, round.wrapping_mul(8).wrapping_add(i as u8) | 1);
            live.push((a, round.wrapping_mul(8).wrapping_add(i as u8) | 1));
        }
        let mut k = 0;
        live.retain(|(a, _)| {
            k += 1;
            if k % 2 == 0 {
                free(&arenas, a);
                false
            } else {
                true
            }
        });
        arenas.backend().advance_ms(3);
        if round % 7 == 0 {
            arenas.collect(true);
        }
        for (a, byte) in &live {
            assert!(
                holds(a, *byte),
                "round {round}: a live run lost its contents"
            );
            assert!(arenas.backend().is_committed(a.ptr, a.size));
        }
    }
    assert!(arenas.stats().purged_bytes > 0);
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
    assert!(arenas.backend().misuse().is_empty());
}

#[test]
fn purges_race_allocations_and_frees() {
    // Two threads allocate, fill, check and free runs with purging at once (delay 0) while a third
    // forces collections; every run keeps its pattern while it lives.
    let arenas = registry(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                arenas.collect(true);
                arenas.backend().advance_ms(1);
            }
        });
        let workers: Vec<_> = (1..=2u8)
            .map(|t| {
                let arenas = &arenas;
                s.spawn(move || {
                    let mut live: Vec<(Allocation, u8)> = Vec::new();
                    for i in 0..400usize {
                        let size = (1 + i % 3) * 4 * KIB;
                        if let Some(a) = arenas.alloc(size, 8, true, ArenaId::ANY) {
                            assert!(matches!(a.memid.kind, MemKind::Arena { .. }));
                            let byte = t.wrapping_mul(31).wrapping_add(i as u8) | 1;
                            fill(&a, byte);
                            live.push((a, byte));
                        }
                        if live.len() > 6 {
                            let (a, byte) = live.remove(i % live.len());
                            assert!(holds(&a, byte), "thread {t}: a run changed under it");
                            free(arenas, &a);
                        }
                    }
                    for (a, byte) in live {
                        assert!(holds(&a, byte));
                        free(arenas, &a);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(arenas.stats().purged_bytes > 0);
    assert_eq!(arenas.stats().blocks_in_use, 0);
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
    assert!(arenas.backend().misuse().is_empty());
}

#[test]
fn a_burst_of_frees_puts_the_purge_off_only_so_far() {
    let arenas = registry(100);
    let runs: Vec<Allocation> = (0..30).map(|_| alloc(&arenas, 4 * KIB)).collect();
    for a in &runs {
        free(&arenas, a);
        arenas.backend().advance_ms(1);
    }
    // 30 frees, 1 ms apart, each pushing the purge back by a tenth of the delay: without a bound
    // it would be due at 100 + 29 * 10 = 390. Whenever a release reads the clock (every 16th),
    // the expiry is brought back to a whole delay from then, so it is due by 2.5 delays after
    // the last free (at 29).
    assert!(!arenas.collect(false));
    arenas.backend().advance_ms(128 - 30);
    assert!(
        !arenas.collect(false),
        "not before a whole delay after the last free"
    );
    arenas.backend().advance_ms(279 - 128);
    assert!(arenas.collect(false));
    assert_eq!(arenas.stats().purged_bytes, 30 * 4 * KIB);
}
