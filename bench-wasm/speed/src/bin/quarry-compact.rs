//! quarry-alloc's compact engine as a single-threaded wasm module would install it: `Config::WASM`
//! over `memory.grow`, behind the default spin lock (built with `Compact::new`, no `unsafe`).

use quarry_alloc::{Compact, Config, WasmGrow};

#[global_allocator]
static ALLOCATOR: Compact<WasmGrow> = Compact::new(WasmGrow::new(), Config::WASM);

fn main() {
    quarry_wasm_speed::main("quarry-compact");
}
