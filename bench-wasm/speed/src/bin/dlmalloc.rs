//! The Rust port of dlmalloc, as its global allocator.

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    quarry_wasm_speed::main("dlmalloc");
}
