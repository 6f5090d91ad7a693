//! Out of memory on wasm32-wasip1: with quarry-alloc over `WasmGrow` as the global allocator, a
//! request that linear memory cannot grow for fails (null, so `try_reserve` returns `Err`), and the
//! program goes on allocating.
//!
//! Run it under a capped engine that says its cap, as `cargo xtask ci` does:
//! `wasmtime run -W max-memory-size=N --env QUARRY_MAX_MEMORY=N`. Without the variable the test
//! says so and checks nothing.
#![cfg(target_arch = "wasm32")]

use quarry_alloc::{Config, Quarry, SpinLock, WasmGrow};

#[global_allocator]
static GLOBAL: Quarry<WasmGrow, SpinLock, 1> = Quarry::new(WasmGrow::new(), Config::WASM);

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
