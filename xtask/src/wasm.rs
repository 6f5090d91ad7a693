//! wasm32-wasip1 under wasmtime: the word-frequency demo, and the integration tests run with
//! quarry-alloc as the wasm module's allocator.

use crate::cmd::Cmd;

const TARGET: &str = "wasm32-wasip1";

/// The cap on linear memory for the out-of-memory test: 64 MiB.
const MAX_MEMORY: usize = 64 << 20;

/// The word-frequency program over the project's own documentation, run by wasmtime (the runner
/// in `.cargo/config.toml`, which gives the program the workspace directory).
pub fn demo() -> Cmd {
    Cmd::cargo().args([
        "run",
        "--release",
        "--target",
        TARGET,
        "--example",
        "wordfreq",
        "--",
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
    ])
}

/// The integration tests on wasm (the global-allocator one included), each test program a wasm
/// module run by wasmtime.
pub fn integration_tests() -> Cmd {
    Cmd::cargo()
        .args(["test", "--target", TARGET])
        .args([
            "--test",
            "global",
            "--test",
            "compact_global",
            "--test",
            "tiny_global",
        ])
        .args(["--test", "registry", "--test", "shadow"])
}

/// Linear memory growth, and out of memory, under a wasmtime that caps memory at `MAX_MEMORY`
/// and tells the tests so (release: a million operations at steady state).
pub fn memory_tests() -> Cmd {
    let runner = format!(
        "wasmtime run -W max-memory-size={MAX_MEMORY} --env QUARRY_MAX_MEMORY={MAX_MEMORY}"
    );
    Cmd::cargo()
        .args(["test", "--release", "--target", TARGET])
        .args(["--test", "wasm_memory", "--test", "wasm_oom"])
        .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", &runner)
}
