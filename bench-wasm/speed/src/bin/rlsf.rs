//! rlsf's global allocator with the options for small code (no lock on single-threaded wasm).

#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

fn main() {
    quarry_wasm_speed::main("rlsf");
}
