//! quarry-alloc as a single-threaded wasm module would install it: `Config::WASM`, one heap,
//! behind the default spin lock (built with `Quarry::new`, no `unsafe`).

use quarry_alloc::{Config, Quarry, SpinLock, WasmGrow};

#[global_allocator]
static ALLOCATOR: Quarry<WasmGrow, SpinLock, 1> = Quarry::new(WasmGrow::new(), Config::WASM);

fn main() {
    quarry_wasm_speed::main("quarry");
}
