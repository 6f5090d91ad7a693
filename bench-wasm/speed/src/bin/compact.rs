//! Not quarry-alloc: the size-first arena engine of `bench-wasm/compact`, a measuring reference,
//! behind its spin lock.

#[global_allocator]
static ALLOCATOR: quarry_wasm_compact::Compact<true> = quarry_wasm_compact::Compact::new();

fn main() {
    quarry_wasm_speed::main("compact");
}
