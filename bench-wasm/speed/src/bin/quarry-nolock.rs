//! quarry-alloc without a lock: `Config::WASM`, one heap, `NoLock` (the promise of
//! `new_single_threaded` holds: a wasm32-wasip1 program has one thread).

use quarry_alloc::{Config, NoLock, Quarry, WasmGrow};

#[global_allocator]
static ALLOCATOR: Quarry<WasmGrow, NoLock, 1> =
    // SAFETY: this program has one thread, so no two calls into the allocator overlap.
    unsafe { Quarry::new_single_threaded(WasmGrow::new(), Config::WASM) };

fn main() {
    quarry_wasm_speed::main("quarry-nolock");
}
