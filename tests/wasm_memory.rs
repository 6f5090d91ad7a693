//! Linear memory on wasm32-wasip1, with quarry-alloc as the global allocator over `WasmGrow`: how
//! much memory grows, and what happens when it cannot grow.
//!
//! `cargo xtask ci` runs this file under `wasmtime run -W max-memory-size=…`, passing the same cap
//! in `QUARRY_MAX_MEMORY`; the out-of-memory test needs the cap and says so when it is missing.
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
    for k in [1, 2, 3, 5, 8, 16, 33, 70] {
        let before = pages();
        let mut v: Vec<u8> = Vec::with_capacity(k * PAGE);
        v.resize(k * PAGE, 0xA5);
        let grown = pages() - before;
        assert!(
            grown <= k + 1,
            "{k} pages asked for, memory grew by {grown} pages"
        );
        kept.push(v);
    }
    assert!(kept.iter().all(|v| v[0] == 0xA5 && v[v.len() - 1] == 0xA5));
}

#[test]
fn out_of_memory_fails_the_request_and_the_program_goes_on() {
    let Some(cap) = std::env::var("QUARRY_MAX_MEMORY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!(
            "QUARRY_MAX_MEMORY is not set: run under `wasmtime run -W max-memory-size=N \
             --env QUARRY_MAX_MEMORY=N` (as `cargo xtask ci` does)"
        );
        return;
    };
    // One request past the cap fails, and says so instead of aborting.
    let mut huge: Vec<u8> = Vec::new();
    assert!(
        huge.try_reserve(cap).is_err(),
        "{cap} bytes past a cap of {cap}"
    );

    // Fill memory up to the cap, 1 MiB at a time, until growing fails.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk: Vec<u8> = Vec::new();
        if chunk.try_reserve_exact(1 << 20).is_err() {
            break;
        }
        chunk.resize(1 << 20, chunks.len() as u8);
        chunks.push(chunk);
        assert!(chunks.len() <= cap >> 20, "memory grew past the cap");
    }
    assert!(
        WasmGrow::memory_bytes() <= cap,
        "memory is within the cap of {cap}"
    );
    assert!(
        chunks.len() >= (cap >> 20) / 2,
        "most of the cap was usable"
    );

    // The allocator keeps working: small objects still come from its pages, and freed memory
    // serves again.
    let small: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
    assert_eq!(small.iter().map(|b| **b).sum::<u64>(), 999 * 1000 / 2);
    for (i, chunk) in chunks.iter().enumerate() {
        assert!(
            chunk.iter().all(|&b| b == i as u8),
            "chunk {i} was corrupted"
        );
    }
    chunks.truncate(chunks.len() / 2);
    let again: Vec<u8> = vec![1; 4 << 20];
    assert_eq!(again.len(), 4 << 20);
    assert_eq!(GLOBAL.stats().errors(), 0);
}
