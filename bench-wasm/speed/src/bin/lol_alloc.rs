//! lol_alloc's free-list allocator, without a lock (the program has one thread).

use lol_alloc::{AssumeSingleThreaded, FreeListAllocator};

#[global_allocator]
static ALLOCATOR: AssumeSingleThreaded<FreeListAllocator> =
    // SAFETY: this program has one thread, so no two calls into the allocator overlap.
    unsafe { AssumeSingleThreaded::new(FreeListAllocator::new()) };

fn main() {
    quarry_wasm_speed::main("lol_alloc");
}
