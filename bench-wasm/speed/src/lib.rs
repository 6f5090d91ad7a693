//! Workload 4, wasm speed: workload 1 ("random actions", after talc's published method) as a
//! wasm32-wasip1 program, timed inside the program.
//!
//! A fixed number of actions, each drawn from `0..=6` by a seeded wyrand: 6 reallocates a random
//! live allocation to `rand(1..3*max)`; below 3, or while fewer than [`MIN_LIVE`] allocations are
//! live, it allocates `rand(4..rand(16..max))` bytes at a mostly-word alignment; otherwise it frees
//! a random live allocation. Every allocation has its first and last byte written, and a realloc
//! checks that the first byte survived. The whole loop is timed with `std::time::Instant` (WASI's
//! monotonic clock), and the program prints nanoseconds per action.
//!
//! Each program in `src/bin/` installs one allocator as the `#[global_allocator]` and calls
//! [`main`]; the harness's own vector comes from the same allocator, allocated before the clock
//! starts.

use std::alloc::{GlobalAlloc, Layout};
use std::time::Instant;

/// The workload's random numbers: the same wyrand as the host benchmarks.
#[path = "../../../bench/src/rng.rs"]
pub mod rng;

use rng::Rng;

/// One action of workload 1, the same code as the host benchmarks'.
#[path = "../../../bench/src/action.rs"]
pub mod action;

use action::{Actions, Done};

/// Below this many live allocations the workload always allocates.
pub const MIN_LIVE: usize = 50;
/// Actions per run unless the command line says otherwise.
pub const DEFAULT_ACTIONS: u64 = 2_000_000;

/// The program's global allocator, whichever it is, through the `GlobalAlloc` interface.
struct Global;

// SAFETY: every call forwards to the global allocator, which keeps `GlobalAlloc`'s promises.
unsafe impl GlobalAlloc for Global {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { std::alloc::alloc(layout) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { std::alloc::dealloc(ptr, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { std::alloc::realloc(ptr, layout, new_size) }
    }
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Nanoseconds for all actions.
    pub nanos: u128,
    /// Most allocations live at once.
    pub peak_live: usize,
    /// Allocations and reallocations that returned null.
    pub failures: u64,
}

/// Runs `actions` actions with sizes up to `max` through the global allocator (the one the
/// program installed), with reallocations or without, then frees what is left (untimed).
pub fn actions(max: usize, realloc: bool, actions: u64, seed: u64) -> Outcome {
    let mut rng = Rng::for_stream(&[4, max as u64, seed]);
    let mut work = Actions::new(max, realloc, MIN_LIVE, 1 << 16);
    let mut out = Outcome::default();
    let start = Instant::now();
    for _ in 0..actions {
        // SAFETY: every live allocation came from the global allocator.
        if unsafe { work.act(&Global, &mut rng) } == Done::Failed {
            out.failures += 1;
        }
        out.peak_live = out.peak_live.max(work.live.len());
    }
    out.nanos = start.elapsed().as_nanos();
    // SAFETY: as above.
    unsafe { work.free_all(&Global) };
    out
}

/// Bytes of linear memory now: every user of `memory.grow` together (wasi-libc's `malloc`, which
/// the WASI start-up code uses, included).
pub fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// The program: `<name> <max> [actions] [seed] [realloc]` (`realloc` 1, the default, or 0: the
/// workload without its reallocations); prints one line of `key=value` pairs, which
/// `cargo xtask bench-wasm` reads.
pub fn main(allocator: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |arg| {
            arg.parse()
                .unwrap_or_else(|_| panic!("not a number: {arg}"))
        })
    };
    let max = number(0, 200) as usize;
    assert!(max > 16, "max must be above 16 bytes");
    let count = number(1, DEFAULT_ACTIONS);
    let seed = number(2, 1);
    let realloc = match number(3, 1) {
        0 => false,
        1 => true,
        other => panic!("realloc must be 0 or 1, not {other}"),
    };
    let out = actions(max, realloc, count, seed);
    println!(
        "allocator={allocator} max={max} realloc={} actions={count} seed={seed} ns_per_action={:.2} \
         peak_live={} failures={} memory_bytes={}",
        u8::from(realloc),
        out.nanos as f64 / count as f64,
        out.peak_live,
        out.failures,
        memory_bytes()
    );
}

/// The same harness, checked on the host through the system allocator.
#[cfg(test)]
mod tests {
    #[test]
    fn a_short_run_keeps_enough_live_and_never_fails() {
        for realloc in [true, false] {
            let out = super::actions(200, realloc, 100_000, 7);
            assert!(out.peak_live >= super::MIN_LIVE);
            assert_eq!(out.failures, 0);
        }
    }
}
