//! Linear memory on wasm32-wasip1, with quarry-alloc as the global allocator over `WasmGrow`: how
//! much memory grows at steady state and per request, and pages that other code grows in between.
//! (`wasm_oom.rs`: when it cannot grow.)
#![cfg(target_arch = "wasm32")]

use quarry_alloc::{Config, Quarry, SpinLock, WasmGrow};

#[global_allocator]
static GLOBAL: Quarry<WasmGrow, SpinLock, 1> = Quarry::new(WasmGrow::new(), Config::WASM);

/// Bytes in a WebAssembly page.
const PAGE: usize = 64 * 1024;

fn pages() -> usize {
    WasmGrow::memory_bytes() / PAGE
}

/// A small random generator (xorshift), so that every run does the same work.
struct Rng(u32);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 as usize % n
    }
}

/// `ops` operations on a ring of `slots` live vectors: each frees one and allocates another of a
/// random size up to `max` bytes, writing its ends.
fn churn(ring: &mut [Vec<u8>], rng: &mut Rng, ops: usize, max: usize) {
    for i in 0..ops {
        let slot = rng.below(ring.len());
        let limit = 1 + rng.below(max);
        let size = 1 + rng.below(limit);
        let mut v = vec![0u8; size];
        v[0] = i as u8;
        v[size - 1] = i as u8;
        ring[slot] = v;
    }
}

#[test]
fn steady_state_needs_no_new_memory() {
    let mut ring: Vec<Vec<u8>> = (0..500).map(|_| Vec::new()).collect();
    let mut rng = Rng(0x9E37_79B9);
    churn(&mut ring, &mut rng, 200_000, 10_000);
    let warm = pages();
    assert!(
        GLOBAL.stats().bytes_in_use > 500 * 1000,
        "the ring holds memory"
    );
    churn(&mut ring, &mut rng, 1_000_000, 10_000);
    assert_eq!(
        pages(),
        warm,
        "1M operations at steady state grew memory from {warm} pages"
    );
    assert_eq!(GLOBAL.stats().errors(), 0);
}

#[test]
fn a_k_page_allocation_grows_memory_by_at_most_k_plus_one_pages() {
    let mut kept = Vec::new();
    let mut grown = 0;
    for k in [1, 2, 3, 5, 8, 16, 33, 70] {
        let before = pages();
        let mut v: Vec<u8> = Vec::with_capacity(k * PAGE);
        v.resize(k * PAGE, 0xA5);
        grown = pages() - before;
        assert!(
            grown <= k + 1,
            "{k} pages asked for, memory grew by {grown} pages"
        );
        kept.push(v);
    }
    // 70 pages are more than any arena so far can hold: memory did grow for them.
    assert!(
        grown >= 70,
        "memory grew by {grown} pages for the last request"
    );
    assert!(kept.iter().all(|v| v[0] == 0xA5 && v[v.len() - 1] == 0xA5));
}

/// Allocates 256 KiB blocks, each filled with `fill`, until linear memory grows.
fn allocate_until_memory_grows(kept: &mut Vec<(u8, Vec<u8>)>, fill: u8) {
    let before = pages();
    while pages() == before {
        kept.push((fill, vec![fill; 256 << 10]));
    }
}

#[test]
fn memory_grown_by_someone_else_is_left_alone() {
    let mut ours = Vec::new();
    allocate_until_memory_grows(&mut ours, 1);
    let arenas = GLOBAL.arenas().arena_count();

    // Another user of linear memory grows it right after the allocator's last growth, and fills
    // its pages.
    let foreign_pages = 4;
    let page = core::arch::wasm32::memory_grow(0, foreign_pages);
    assert_ne!(page, usize::MAX, "memory can grow");
    let foreign = page * PAGE..(page + foreign_pages) * PAGE;
    let foreign_ptr = std::ptr::with_exposed_provenance_mut::<u8>(foreign.start);
    // SAFETY: the pages were just grown, are inside linear memory, and nobody else uses them.
    unsafe { foreign_ptr.write_bytes(0x5A, foreign.len()) };

    // The allocator's next growth starts past the foreign pages, in an arena of its own.
    allocate_until_memory_grows(&mut ours, 2);
    assert_eq!(GLOBAL.arenas().arena_count(), arenas + 1);
    for (_, v) in &ours {
        let (start, end) = (v.as_ptr().addr(), v.as_ptr().addr() + v.len());
        assert!(
            end <= foreign.start || start >= foreign.end,
            "an allocation at {start:#x} overlaps the foreign pages {foreign:#x?}"
        );
    }
    // SAFETY: as above; nothing of the allocator's lies in them.
    let kept = unsafe { std::slice::from_raw_parts(foreign_ptr, foreign.len()) };
    assert!(kept.iter().all(|&b| b == 0x5A), "the foreign pages changed");
    assert!(
        ours.iter().all(|(fill, v)| v.iter().all(|b| b == fill)),
        "an allocation changed"
    );
    assert_eq!(GLOBAL.stats().errors(), 0);
}

#[cfg(target_os = "wasi")]
#[test]
fn the_backend_reads_the_wasi_monotonic_clock() {
    use quarry_alloc::OsBackend;
    let backend = WasmGrow::new();
    let start = backend.now_ms().expect("wasm32-wasip1 has a clock");
    std::thread::sleep(std::time::Duration::from_millis(30));
    let later = backend.now_ms().expect("wasm32-wasip1 has a clock");
    assert!(
        (25..5_000).contains(&(later - start)),
        "{start} ms, then {later} ms"
    );
}
