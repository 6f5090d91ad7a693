//! WebAssembly's linear memory: `memory.grow`, 64 KiB pages at a time.

use super::{align_up, OsBackend, Region};
use crate::atomic::{AtomicBool, Ordering};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

/// Bytes in a WebAssembly page.
const WASM_PAGE: usize = 64 * 1024;

/// Memory from `memory.grow` on memory 0, handed out front to back and never given back (linear
/// memory cannot shrink).
///
/// On wasm32-unknown-unknown it first hands out the memory between `__heap_base` (the end of the
/// module's data and stack) and the memory's size at start, which nothing else uses. On
/// wasm32-wasip1 that gap belongs to wasi-libc's `malloc`, which claims it on first use (the WASI
/// start-up code calls it for the environment and the preopened directories), so there the backend
/// starts at the end of memory.
///
/// Other code may grow the memory too (wasi-libc's `malloc` does): the backend only ever hands out
/// pages that its own `memory.grow` calls returned, plus the start-up gap above. When growing fails
/// (the module's maximum, or the engine's `-W max-memory-size`), the allocation fails and the
/// allocator goes on with what it has.
///
/// On wasm32-wasip1 it reads WASI's monotonic clock, for delayed purging.
pub struct WasmGrow {
    /// Held while `state` is read or written.
    busy: AtomicBool,
    state: UnsafeCell<State>,
}

/// The backend's own memory: `[next, end)` is grown (or the start-up gap) and not handed out yet.
struct State {
    /// The first byte not handed out; 0 before the first allocation.
    next: usize,
    /// The end of the memory the backend owns past `next`.
    end: usize,
}

// SAFETY: `state` is only touched while `busy` is held (taken with an acquire compare-and-swap,
// released with a release store).
unsafe impl Sync for WasmGrow {}

impl WasmGrow {
    /// The backend; it takes nothing until the first allocation.
    pub const fn new() -> Self {
        WasmGrow {
            busy: AtomicBool::new(false),
            state: UnsafeCell::new(State { next: 0, end: 0 }),
        }
    }

    /// Bytes of linear memory now (memory 0), all users together.
    pub fn memory_bytes() -> usize {
        wasm32::memory_size(0).saturating_mul(WASM_PAGE)
    }

    /// The memory the backend may use before it grows any: the start-up gap where nothing else
    /// uses it, else none.
    fn initial() -> (usize, usize) {
        #[cfg(not(target_os = "wasi"))]
        {
            extern "C" {
                /// The first byte past the module's data and stack, set by the linker.
                static __heap_base: u8;
            }
            let base = ptr::addr_of!(__heap_base).addr();
            (base, Self::memory_bytes().max(base))
        }
        #[cfg(target_os = "wasi")]
        {
            let end = Self::memory_bytes();
            (end, end)
        }
    }

    /// Claims `size` bytes aligned to `align`, growing memory if need be; the address.
    fn claim(state: &mut State, size: usize, align: usize) -> Option<usize> {
        if state.next == 0 {
            (state.next, state.end) = Self::initial();
        }
        loop {
            let start = align_up(state.next, align)?;
            let stop = start.checked_add(size)?;
            if stop <= state.end {
                state.next = stop;
                return Some(start);
            }
            let pages = (stop - state.end).div_ceil(WASM_PAGE);
            let old = wasm32::memory_grow(0, pages);
            if old == usize::MAX {
                return None;
            }
            let grown = old * WASM_PAGE;
            if grown != state.end {
                // Somebody else grew memory since: ours starts afresh at what was just grown
                // (the next round grows more if that is too little).
                state.next = grown;
            }
            state.end = grown + pages * WASM_PAGE;
        }
    }
}

impl Default for WasmGrow {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every region lies in memory that this backend's `memory.grow` calls returned (or the
// start-up gap nobody else uses), below `next`, which only moves forward: regions are disjoint,
// aligned as asked, committed, and zero (grown memory is zero, and the gap was never written).
unsafe impl OsBackend for WasmGrow {
    fn page_size(&self) -> usize {
        64
    }

    fn alloc(&self, size: usize, align: usize, _commit: bool) -> Option<Region> {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: `busy` is held, so nobody else touches the state.
        let claimed = Self::claim(unsafe { &mut *self.state.get() }, size, align);
        self.busy.store(false, Ordering::Release);
        let addr = claimed?;
        // Linear memory is not a Rust allocation: exposed provenance is how a pointer to it is
        // made.
        let ptr = NonNull::new(ptr::with_exposed_provenance_mut::<u8>(addr))?;
        Some(Region::pinned(ptr, size, true))
    }

    fn grows_in_place(&self) -> bool {
        true
    }

    fn now_ms(&self) -> Option<u64> {
        #[cfg(target_os = "wasi")]
        {
            // SAFETY: a WASI call with a valid clock id; it writes nothing of ours.
            let nanos = unsafe { wasi::clock_time_get(wasi::CLOCKID_MONOTONIC, 1_000_000) };
            nanos.ok().map(|ns| ns / 1_000_000)
        }
        #[cfg(not(target_os = "wasi"))]
        None
    }
}
