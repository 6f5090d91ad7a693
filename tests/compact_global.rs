//! quarry-alloc's compact engine installed as the real `#[global_allocator]` of this test program:
//! std's collections, strings and formatting, threads on the host, and the arena map, all
//! allocating through it.

mod one_lock;

use quarry_alloc::{Compact, Config};

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static GLOBAL: Compact<quarry_alloc::StaticBuffer<{ 128 << 20 }>> =
    Compact::new(quarry_alloc::StaticBuffer::new(), Config::HOST);

/// On wasm, the arena grows with `memory.grow`, as a wasm module's would.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static GLOBAL: Compact<quarry_alloc::WasmGrow> =
    Compact::new(quarry_alloc::WasmGrow::new(), Config::WASM);

#[test]
fn collections_strings_formatting_and_the_map() {
    let (before, after) = one_lock::collections_strings_formatting_and_the_map(
        || GLOBAL.stats(),
        |map| GLOBAL.write_map(map),
        "compact arena: ",
        "held: ",
    );
    assert!(after.pages_made > before.pages_made, "{after:?}");
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn four_threads_share_the_one_lock() {
    one_lock::four_threads_share_the_one_lock(50_000);
    assert_eq!(GLOBAL.stats().errors(), 0);
}
