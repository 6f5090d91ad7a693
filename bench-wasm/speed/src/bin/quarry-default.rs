//! quarry-alloc with every default: `Config::WASM`, four heaps, each behind a spin lock.

use quarry_alloc::{Config, Quarry, WasmGrow};

#[global_allocator]
static ALLOCATOR: Quarry<WasmGrow> = Quarry::new(WasmGrow::new(), Config::WASM);

fn main() {
    quarry_wasm_speed::main("quarry-default");
}
