//! Workload 5, wasm size: a `no_std` module for wasm32-unknown-unknown that exports `alloc`,
//! `dealloc` and `realloc`, each one call into an allocator's `GlobalAlloc`. The allocator is
//! picked by a feature, exactly one per build:
//!
//! - `quarry`, `quarry-minimal`, `quarry-compact`, `quarry-compact-minimal`, `talc`, `rlsf`,
//!   `dlmalloc`, `lol_alloc`: that allocator, installed as the `#[global_allocator]` too (talc
//!   needs one: it links `alloc`); the `quarry-compact` ones are quarry-alloc's compact engine;
//! - `null`: the same exports, returning null and freeing nothing;
//! - none: no exports at all, the empty module (the zero line, as in the protocol's anchors).
//!
//! The exports take the layout as size and alignment, as a host that manages the module's memory
//! would pass them.

#![no_std]

#[cfg(any(
    feature = "quarry",
    feature = "quarry-minimal",
    feature = "quarry-compact",
    feature = "quarry-compact-minimal",
    feature = "quarry-tiny",
    feature = "quarry-tiny-minimal",
    feature = "talc",
    feature = "rlsf",
    feature = "dlmalloc",
    feature = "lol_alloc",
    feature = "null"
))]
mod exports;

#[cfg(feature = "null")]
use core::alloc::{GlobalAlloc, Layout};

#[cfg(any(feature = "quarry", feature = "quarry-minimal"))]
use quarry_alloc::{Config, Quarry, WasmGrow};

#[cfg(feature = "quarry")]
#[global_allocator]
/// What a user writes: `Config::WASM`, the default lock (`SpinLock`) and heap count (4).
pub(crate) static ALLOCATOR: Quarry<WasmGrow> = Quarry::new(WasmGrow::new(), Config::WASM);

#[cfg(feature = "quarry-minimal")]
#[global_allocator]
/// Single-threaded: one heap, no lock.
pub(crate) static ALLOCATOR: Quarry<WasmGrow, quarry_alloc::NoLock, 1> =
    // SAFETY: a wasm32-unknown-unknown module without threads never calls in twice at once.
    unsafe { Quarry::new_single_threaded(WasmGrow::new(), Config::WASM) };

#[cfg(feature = "talc")]
#[global_allocator]
/// talc's own wasm allocator: memory from `memory.grow`, extending its heap.
pub(crate) static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(feature = "rlsf")]
#[global_allocator]
/// rlsf's global allocator with the options for small code.
pub(crate) static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

#[cfg(feature = "dlmalloc")]
#[global_allocator]
/// The Rust port of dlmalloc, as its global allocator.
pub(crate) static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[cfg(feature = "lol_alloc")]
#[global_allocator]
/// lol_alloc's free-list allocator, without a lock (the module is single-threaded).
pub(crate) static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    // SAFETY: a wasm32-unknown-unknown module without threads never calls in twice at once.
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(feature = "quarry-compact")]
#[global_allocator]
/// quarry-alloc's compact engine behind its spin lock.
pub(crate) static ALLOCATOR: quarry_alloc::Compact<quarry_alloc::WasmGrow> =
    quarry_alloc::Compact::new(quarry_alloc::WasmGrow::new(), quarry_alloc::Config::WASM);

#[cfg(feature = "quarry-compact-minimal")]
#[global_allocator]
/// quarry-alloc's compact engine without a lock.
pub(crate) static ALLOCATOR: quarry_alloc::Compact<quarry_alloc::WasmGrow, quarry_alloc::NoLock> =
    // SAFETY: a wasm32-unknown-unknown module without threads never calls in twice at once.
    unsafe {
        quarry_alloc::Compact::new_single_threaded(
            quarry_alloc::WasmGrow::new(),
            quarry_alloc::Config::WASM,
        )
    };

#[cfg(feature = "quarry-tiny")]
#[global_allocator]
/// quarry-alloc's tiny engine behind its spin lock.
pub(crate) static ALLOCATOR: quarry_alloc::Tiny<quarry_alloc::WasmGrow> =
    quarry_alloc::Tiny::new(quarry_alloc::WasmGrow::new());

#[cfg(feature = "quarry-tiny-minimal")]
#[global_allocator]
/// quarry-alloc's tiny engine without a lock.
pub(crate) static ALLOCATOR: quarry_alloc::Tiny<quarry_alloc::WasmGrow, quarry_alloc::NoLock> =
    // SAFETY: a wasm32-unknown-unknown module without threads never calls in twice at once.
    unsafe { quarry_alloc::Tiny::new_single_threaded(quarry_alloc::WasmGrow::new()) };

#[cfg(feature = "null")]
/// No allocator behind the exports.
pub(crate) static ALLOCATOR: Null = Null;

/// An allocator that has nothing to give.
#[cfg(feature = "null")]
struct Null;

#[cfg(feature = "null")]
// SAFETY: it never hands out memory, so it never breaks a promise about memory.
unsafe impl GlobalAlloc for Null {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, _ptr: *mut u8, _layout: Layout, _new_size: usize) -> *mut u8 {
        core::ptr::null_mut()
    }
}

/// A panic traps: nothing is printed (and no formatting code is pulled in by this module itself).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
