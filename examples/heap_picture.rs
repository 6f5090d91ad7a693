//! A picture of the heap: `Quarry<Mmap>` runs a small workload, gives part of the freed memory
//! back to the OS, and writes an SVG of every arena's blocks (in use, purge scheduled, dirty,
//! zero, not committed), with the text arena map and the stats on stdout.
//!
//! Run with `cargo run --example heap_picture --features unix [out.svg]` (Linux and other unix
//! hosts; the picture goes to `target/heap.svg` unless a path is given). The README shows the
//! picture it draws.

use quarry_alloc::{Config, EagerCommit, Mmap, Quarry};
use std::alloc::{GlobalAlloc, Layout};
use std::time::Duration;

/// 4 KiB blocks in arenas of 1 MiB (256 blocks, four rows of the picture), committed only as
/// blocks are handed out, purged 50 ms after they are freed.
const CONFIG: Config = Config {
    arena_reserve: 1 << 20,
    eager_commit: EagerCommit::Never,
    purge_delay_ms: 50,
    arena_purge_mult: 1,
    ..Config::HOST
};

static HEAP: Quarry<Mmap, quarry_alloc::SpinLock, 1> = Quarry::new(Mmap::new(), CONFIG);

fn alloc(size: usize) -> (*mut u8, Layout) {
    let layout = Layout::from_size_align(size, 16).expect("a valid layout");
    // SAFETY: a valid, non-zero layout.
    let ptr = unsafe { HEAP.alloc(layout) };
    assert!(!ptr.is_null(), "out of memory");
    // SAFETY: the allocation is `size` bytes long: written whole, as a program would.
    unsafe { ptr.write_bytes(0x5A, size) };
    (ptr, layout)
}

fn free(list: Vec<(*mut u8, Layout)>) {
    for (ptr, layout) in list {
        // SAFETY: allocated by `alloc` with this layout, freed once.
        unsafe { HEAP.dealloc(ptr, layout) };
    }
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/heap.svg".into());

    // Small objects live in pages of their size class; objects above 32 KiB are block runs.
    let mut small: Vec<_> = (0..3000).map(|i| alloc(16 + (i % 40) * 24)).collect();
    let early: Vec<_> = (0..6).map(|i| alloc(40_000 + i * 9_000)).collect();
    let late: Vec<_> = (0..6).map(|i| alloc(36_000 + i * 7_000)).collect();
    let kept: Vec<_> = (0..4).map(|i| alloc(50_000 + i * 20_000)).collect();

    // Freed early: purged by the time the picture is drawn (their blocks read as zero again).
    free(early);
    std::thread::sleep(Duration::from_millis(150));
    HEAP.collect(false);
    // Freed late: scheduled, not purged yet.
    free(late);
    // Half of the small objects go; their pages stay while any object on them lives.
    let survivors = small.split_off(small.len() / 2);
    free(small);

    let mut svg = String::new();
    HEAP.write_svg(&mut svg).expect("an SVG in a String");
    std::fs::write(&out, svg).expect("the picture written");

    let mut map = String::new();
    HEAP.write_map(&mut map).expect("a map in a String");
    print!("{map}");
    println!("{}", HEAP.stats());
    println!("picture: {out}");

    free(survivors);
    free(kept);
}
