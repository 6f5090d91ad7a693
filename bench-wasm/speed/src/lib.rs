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

use std::alloc::Layout;
use std::time::Instant;

/// The workload's random numbers: the same wyrand as the host benchmarks.
#[path = "../../../bench/src/rng.rs"]
pub mod rng;

use rng::Rng;

/// Below this many live allocations the workload always allocates.
pub const MIN_LIVE: usize = 50;
/// Reallocations go to `rand(1..REALLOC_MULTIPLE * max)`.
const REALLOC_MULTIPLE: usize = 3;
/// Actions per run unless the command line says otherwise.
pub const DEFAULT_ACTIONS: u64 = 2_000_000;

/// A size in `4..rand(16..max)`: biased towards small sizes, as talc's method draws them.
fn gen_size(rng: &mut Rng, max: usize) -> usize {
    let cap = rng.range(16, max);
    rng.range(4, cap)
}

/// The word alignment, doubled per two trailing zeros of a random `u16`: 75% word, 19% 2×word,
/// 4.7% 4×word, and so on up to 256×word.
fn gen_align(rng: &mut Rng) -> usize {
    core::mem::align_of::<usize>() << (rng.next_u16().trailing_zeros() / 2)
}

struct Live {
    ptr: *mut u8,
    layout: Layout,
    tag: u8,
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
/// program installed), then frees what is left (untimed).
pub fn actions(max: usize, actions: u64, seed: u64) -> Outcome {
    let mut rng = Rng::for_stream(&[4, max as u64, seed]);
    let mut live: Vec<Live> = Vec::with_capacity(1 << 16);
    let mut out = Outcome::default();
    let mut tag = 0u8;
    let start = Instant::now();
    for _ in 0..actions {
        let draw = rng.range(0, 7);
        if draw == 6 {
            if live.is_empty() {
                continue;
            }
            let index = rng.range(0, live.len());
            let new_size = rng.range(1, REALLOC_MULTIPLE * max);
            let entry = &mut live[index];
            // SAFETY: `entry.ptr` is live, from the global allocator, with `entry.layout`; the new
            // size is non-zero and far below isize::MAX.
            let p = unsafe { std::alloc::realloc(entry.ptr, entry.layout, new_size) };
            if p.is_null() {
                out.failures += 1;
                continue;
            }
            // SAFETY: `p` points to `new_size` bytes that now hold the old contents' prefix.
            unsafe {
                assert_eq!(p.read(), entry.tag, "realloc lost the first byte");
                p.add(new_size - 1).write_volatile(entry.tag);
            }
            entry.ptr = p;
            // SAFETY: the alignment is the old (valid) one, the size was accepted by realloc.
            entry.layout =
                unsafe { Layout::from_size_align_unchecked(new_size, entry.layout.align()) };
        } else if draw < 3 || live.len() < MIN_LIVE {
            let size = gen_size(&mut rng, max);
            let align = gen_align(&mut rng);
            // SAFETY: `align` is a power of two ≤ 1024 and `size` is small.
            let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
            // SAFETY: non-zero size.
            let p = unsafe { std::alloc::alloc(layout) };
            if p.is_null() {
                out.failures += 1;
                continue;
            }
            tag = tag.wrapping_add(1);
            // SAFETY: `p` points to `size` (≥ 4) writable bytes.
            unsafe {
                p.write_volatile(tag);
                p.add(size - 1).write_volatile(tag);
            }
            live.push(Live {
                ptr: p,
                layout,
                tag,
            });
            out.peak_live = out.peak_live.max(live.len());
        } else {
            let index = rng.range(0, live.len());
            let entry = live.swap_remove(index);
            // SAFETY: live, from the global allocator, with this layout; not used again.
            unsafe { std::alloc::dealloc(entry.ptr, entry.layout) };
        }
    }
    out.nanos = start.elapsed().as_nanos();
    for entry in live {
        // SAFETY: as above.
        unsafe { std::alloc::dealloc(entry.ptr, entry.layout) };
    }
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

/// The program: `<name> <max> [actions] [seed]`; prints one line of `key=value` pairs, which
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
    let out = actions(max, count, seed);
    println!(
        "allocator={allocator} max={max} actions={count} seed={seed} ns_per_action={:.2} \
         peak_live={} failures={} memory_bytes={}",
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
        let out = super::actions(200, 100_000, 7);
        assert!(out.peak_live >= super::MIN_LIVE);
        assert_eq!(out.failures, 0);
    }
}
