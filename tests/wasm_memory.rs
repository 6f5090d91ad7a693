//! Linear memory on wasm32-wasip1, with quarry-alloc as the global allocator over `WasmGrow`: how
//! much memory grows at steady state and per request. (`wasm_oom.rs`: when it cannot grow.)
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
