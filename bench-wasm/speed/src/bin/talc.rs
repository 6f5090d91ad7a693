//! talc's wasm allocator, as its documentation installs it.

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

fn main() {
    quarry_wasm_speed::main("talc");
}
