//! Sets `cfg(small_code)` on the targets where code size counts as much as speed: WebAssembly
//! modules (downloaded, instantiated) and bare-metal firmware (flash). There only the fast paths
//! themselves (`alloc_fast`, `free_fast`, `locate` and what they stand on) are always inlined; the
//! rest of what is hot carries `#[inline]`, and the compiler's inliner, following the build's
//! opt-level, decides. Elsewhere all of it is `#[inline(always)]`.
//!
//! Sets `cfg(opt_size)` in builds for size (`opt-level = "s"` or `"z"`): there the compact engine
//! has no inlined fast paths, and every allocation, free and realloc goes through one copy of its
//! code.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(small_code)");
    println!("cargo::rustc-check-cfg=cfg(opt_size)");
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    if opt_level == "s" || opt_level == "z" {
        println!("cargo::rustc-cfg=opt_size");
    }
    let family = std::env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if family.split(',').any(|f| f == "wasm") || os == "none" {
        println!("cargo::rustc-cfg=small_code");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
