//! quarry-alloc's tiny engine installed as the real `#[global_allocator]` of this test program:
//! std's collections, strings and formatting, threads on the host, and the arena map, all
//! allocating through it.

mod one_lock;

use quarry_alloc::{SpinLock, Tiny};

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static GLOBAL: Tiny<quarry_alloc::StaticBuffer<{ 128 << 20 }>, SpinLock, { (128 << 20) / 16 }> =
    Tiny::new(quarry_alloc::StaticBuffer::new());

/// On wasm, the arena grows with `memory.grow`, as a wasm module's would, up to 64 MiB.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static GLOBAL: Tiny<quarry_alloc::WasmGrow, SpinLock, { (64 << 20) / 16 }> =
    Tiny::new(quarry_alloc::WasmGrow::new());

#[test]
fn collections_strings_formatting_and_the_map() {
    one_lock::collections_strings_formatting_and_the_map(
        || GLOBAL.stats(),
        |map| GLOBAL.write_map(map),
        "tiny arena: ",
        "taken: ",
    );
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn four_threads_share_the_one_lock() {
    one_lock::four_threads_share_the_one_lock(10_000);
    assert_eq!(GLOBAL.stats().errors(), 0);
}
