//! No `#[global_allocator]`: std's default on wasm32-wasip1, wasi-libc's `malloc` (dlmalloc).

fn main() {
    quarry_wasm_speed::main("std");
}
