//! quarry-alloc's tiny engine as a wasm module would install it: granules over `memory.grow`,
//! behind the default spin lock, with room for a 64 MiB arena (1 MiB of bitmaps).

use quarry_alloc::{SpinLock, Tiny, WasmGrow};

#[global_allocator]
static ALLOCATOR: Tiny<WasmGrow, SpinLock, { (64 << 20) / 16 }> = Tiny::new(WasmGrow::new());

fn main() {
    quarry_wasm_speed::main("quarry-tiny");
}
