//! `Quarry<Mmap>` gives memory back: after everything is freed, `collect(true)` (or the purge delay
//! passing) shrinks the process's resident set by what was freed. Linux only (`/proc/self/statm`).
#![cfg(all(target_os = "linux", feature = "unix"))]

use quarry_alloc::{Config, Mmap, OsBackend, Quarry};
use std::alloc::{GlobalAlloc, Layout};

const MIB: usize = 1 << 20;

/// The resident set is the whole process's: tests that measure it take turns.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Resident bytes of this process.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * Mmap::new().page_size()
}

/// Allocates `total` bytes in mixed sizes from `quarry`, every page written; returns them.
fn fill(quarry: &Quarry<Mmap>, total: usize, out: &mut Vec<(*mut u8, Layout)>) {
    let sizes = [24, 100, 700, 3000, 20_000, 70_000, 300_000];
    let mut held = 0;
    let mut i = 0;
    while held < total {
        let layout = Layout::from_size_align(sizes[i % sizes.len()], 8).unwrap();
        // SAFETY: a valid layout.
        let p = unsafe { quarry.alloc(layout) };
        assert!(!p.is_null());
        for offset in (0..layout.size()).step_by(4096) {
            // SAFETY: inside the allocation.
            unsafe { p.add(offset).write(1) };
        }
        out.push((p, layout));
        held += layout.size();
        i += 1;
    }
}

fn free_all(quarry: &Quarry<Mmap>, list: &mut Vec<(*mut u8, Layout)>) {
    for (p, layout) in list.drain(..) {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { quarry.dealloc(p, layout) };
    }
}

#[test]
fn collect_gives_freed_memory_back_to_the_os() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let quarry: Quarry<Mmap> = Quarry::new(Mmap::new(), Config::HOST);
    let mut list = Vec::with_capacity(100_000);
    let before = resident();
    fill(&quarry, 64 * MIB, &mut list);
    let full = resident();
    assert!(full - before >= 60 * MIB, "the memory is resident");
    free_all(&quarry, &mut list);
    quarry.collect(true);
    let after = resident();
    let freed = full - before;
    let returned = full.saturating_sub(after);
    assert!(
        returned * 10 >= freed * 9,
        "resident {} MiB -> {} MiB -> {} MiB: {} MiB of {} MiB returned",
        before / MIB,
        full / MIB,
        after / MIB,
        returned / MIB,
        freed / MIB
    );
    let stats = quarry.stats();
    assert!(stats.purged_bytes >= returned * 9 / 10);
    // The memory is still the allocator's: it is handed out (and committed) again.
    fill(&quarry, 8 * MIB, &mut list);
    free_all(&quarry, &mut list);
}

#[test]
fn freed_memory_goes_back_once_the_delay_has_passed() {
    let config = Config {
        purge_delay_ms: 5,
        arena_purge_mult: 2,
        ..Config::HOST
    };
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let quarry: Quarry<Mmap> = Quarry::new(Mmap::new(), config);
    let mut list = Vec::with_capacity(100_000);
    let before = resident();
    fill(&quarry, 32 * MIB, &mut list);
    let full = resident();
    free_all(&quarry, &mut list);
    quarry.trim();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Any release after the delay purges what is due; `collect(false)` does too.
    quarry.collect(false);
    let returned = full.saturating_sub(resident());
    assert!(
        returned * 10 >= (full - before) * 9,
        "{} MiB returned",
        returned / MIB
    );
}

#[test]
fn alloc_zeroed_after_a_purge_needs_no_memset_and_reads_zero() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let quarry: Quarry<Mmap> = Quarry::new(
        Mmap::new(),
        Config {
            purge_delay_ms: 0,
            ..Config::HOST
        },
    );
    let layout = Layout::from_size_align(256 * 1024, 4096).unwrap();
    // SAFETY: a valid layout; the block is written, freed (purged at once), and taken again.
    unsafe {
        let p = quarry.alloc(layout);
        p.write_bytes(0xCD, layout.size());
        quarry.dealloc(p, layout);
        let q = quarry.alloc_zeroed(layout);
        assert_eq!(q, p, "the same blocks again");
        assert!(std::slice::from_raw_parts(q, layout.size())
            .iter()
            .all(|&b| b == 0));
        quarry.dealloc(q, layout);
    }
    assert!(quarry.stats().purged_bytes >= layout.size());
}

#[test]
fn a_reset_purge_makes_blocks_zero_for_the_registry() {
    use quarry_alloc::{ArenaId, Arenas};
    // Purged at once; the memory stays committed (a reset) and reads as zero, so the run counts
    // as zero again without a commit.
    let arenas: Arenas<Mmap> = Arenas::new(
        Mmap::new(),
        Config {
            purge_delay_ms: 0,
            ..Config::HOST
        },
    );
    let a = arenas.alloc(64 * 1024, 4096, true, ArenaId::ANY).unwrap();
    // SAFETY: committed, ours, `a.size` bytes.
    unsafe { a.ptr.as_ptr().write_bytes(0x77, a.size) };
    // SAFETY: not used after this.
    unsafe { arenas.free(&a) }.unwrap();
    let b = arenas.alloc(64 * 1024, 4096, true, ArenaId::ANY).unwrap();
    assert_eq!(b.ptr, a.ptr);
    assert!(b.memid.initially_committed && b.memid.initially_zero);
    // SAFETY: ours, committed, `b.size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(b.ptr.as_ptr(), b.size) };
    assert!(bytes.iter().all(|&x| x == 0));
    assert_eq!(arenas.stats().purged_bytes, 64 * 1024);
}
