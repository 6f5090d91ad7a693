//! `quarry-bench footprint [ACTIONS]`: where memory goes in workload 4 (the wasm speed workload,
//! run here on the host), at the moment the program's live bytes peak.
//!
//! Each allocator runs the same seeded actions as `bench-wasm/speed` over a fresh, pre-touched
//! 128 MiB region. A wrapper counts the bytes the program asked for and the highest address any
//! allocation reached (the span: how much of the region the allocator has touched, what
//! `memory.grow` would have had to provide). quarry runs as on wasm: `Config::WASM`, one heap,
//! over a break pointer (`Sbrk` over the region), which grows in place as `WasmGrow` does; its own
//! statistics then split its span into the bytes handed out (size-class rounding), the blocks
//! held by pages and large objects, and the arena. Over the whole run the wrapper also counts the
//! reallocations that moved and the bytes they had to copy.

use crate::action::Actions;
use crate::peers::{Region, PEERS};
use crate::rng::Rng;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use quarry_alloc::{Config, Quarry, Sbrk, SpinLock};

/// Below this many live allocations the workload always allocates (as in `bench-wasm/speed`).
const MIN_LIVE: usize = 50;
/// The region each allocator gets.
const REGION: usize = 128 << 20;
/// The allocators measured besides quarry, built as `quarry-bench peers` builds them.
const OTHERS: [&str; 3] = ["talc", "rlsf", "dlmalloc"];

/// What the wrapper has seen.
#[derive(Clone, Copy, Default)]
struct Seen {
    /// Bytes the program holds now, as it asked for them.
    requested: usize,
    /// Highest end of an allocation so far, from the region's start.
    span: usize,
    /// Reallocations that moved the allocation.
    moves: u64,
    /// Bytes those moves copied (the smaller of the old and the new size).
    copied: usize,
}

/// An allocator with a count of what goes through it.
struct Counting<'a> {
    inner: &'a dyn GlobalAlloc,
    base: usize,
    seen: Cell<Seen>,
}

impl Counting<'_> {
    fn took(&self, ptr: *mut u8, size: usize) {
        if !ptr.is_null() {
            let mut seen = self.seen.get();
            seen.requested += size;
            seen.span = seen.span.max(ptr.addr() + size - self.base);
            self.seen.set(seen);
        }
    }

    fn gave(&self, size: usize) {
        let mut seen = self.seen.get();
        seen.requested -= size;
        self.seen.set(seen);
    }
}

// SAFETY: every call forwards to the wrapped allocator, which keeps `GlobalAlloc`'s promises; the
// counting touches no allocation.
unsafe impl GlobalAlloc for Counting<'_> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        let ptr = unsafe { self.inner.alloc(layout) };
        self.took(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.dealloc(ptr, layout) };
        self.gave(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        let moved = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            if moved != ptr {
                let mut seen = self.seen.get();
                seen.moves += 1;
                seen.copied += layout.size().min(new_size);
                self.seen.set(seen);
            }
            self.gave(layout.size());
            self.took(moved, new_size);
        }
        moved
    }
}

/// quarry's own view at one moment.
#[derive(Clone, Copy, Default)]
struct Inside {
    /// Bytes handed out (the size classes' sizes).
    usable: usize,
    /// Bytes of the blocks that pages and large objects hold.
    blocks: usize,
    /// Bytes of all arenas.
    arenas: usize,
    /// Pages that exist.
    pages: u64,
}

/// One allocator's figures.
struct Figures {
    name: &'static str,
    /// At the peak of requested bytes.
    peak: Seen,
    inside: Option<Inside>,
    /// At the end of the run: the span, and the whole run's moves by realloc.
    end: Seen,
    peak_live: usize,
}

type Quarried = Quarry<Sbrk, SpinLock, 1>;

fn inside(quarry: &Quarried) -> Inside {
    let stats = quarry.stats();
    let arenas = quarry.arenas().stats();
    Inside {
        usable: stats.bytes_in_use,
        blocks: arenas.blocks_in_use * Config::WASM.block_size,
        arenas: arenas.arena_bytes,
        pages: stats.pages_made - stats.pages_returned,
    }
}

/// Runs the workload on `alloc` (built over the region at `base`), calling `look` at every new
/// peak.
fn run(
    name: &'static str,
    alloc: &dyn GlobalAlloc,
    base: usize,
    max: usize,
    actions: u64,
    look: &dyn Fn() -> Option<Inside>,
) -> Figures {
    let counting = Counting {
        inner: alloc,
        base,
        seen: Cell::new(Seen::default()),
    };
    let mut rng = Rng::for_stream(&[4, max as u64, 1]);
    let mut work = Actions::new(max, true, MIN_LIVE, 1 << 16);
    let mut figures = Figures {
        name,
        peak: Seen::default(),
        inside: None,
        end: Seen::default(),
        peak_live: 0,
    };
    for _ in 0..actions {
        // SAFETY: every live allocation came from `counting`.
        unsafe { work.act(&counting, &mut rng) };
        let seen = counting.seen.get();
        if seen.requested > figures.peak.requested {
            figures.peak = seen;
            figures.inside = look();
            figures.peak_live = work.live.len();
        }
    }
    figures.end = counting.seen.get();
    // SAFETY: as above.
    unsafe { work.free_all(&counting) };
    figures
}

fn measure(max: usize, actions: u64) -> Vec<Figures> {
    let mut region = Region::new(REGION);
    let base = region.ptr().addr();
    let mut all = Vec::new();
    {
        // SAFETY: the region is valid, pre-touched, and this allocator's alone while it runs.
        let backend = unsafe { Sbrk::from_range(region.ptr(), region.len()) };
        let quarry: Box<Quarried> = Box::new(Quarry::new(backend, Config::WASM));
        let figures = run(
            "quarry (`Config::WASM`, `Sbrk`)",
            &*quarry,
            base,
            max,
            actions,
            &|| Some(inside(&quarry)),
        );
        all.push(figures);
    }
    for name in OTHERS {
        let peer = PEERS
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no allocator named {name}"));
        let built = peer.build(Some(&mut region));
        let figures = run(name, &*built, base, max, actions, &|| None);
        all.push(figures);
    }
    all
}

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

pub fn command(args: &[String]) {
    let actions: u64 = match args.first() {
        Some(n) => n.parse().unwrap_or_else(|_| crate::usage()),
        None => 2_000_000,
    };
    println!(
        "Workload 4 on the host ({actions} actions, seed 1, as `bench-wasm/speed` draws them), each \
         allocator over a fresh 128 MiB region. At the peak of the bytes the program holds: the span \
         (how far into the region allocations reach) and, for quarry, its own split of it. MiB. \
         Over the whole run: the reallocations that moved, and the MiB they copied."
    );
    for max in [200, 10000] {
        let all = measure(max, actions);
        println!("\n### max {max} B\n");
        println!(
            "| allocator | live at peak | requested | handed out | blocks held | arenas | span at peak | span at end | pages | moved by realloc | copied |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for f in &all {
            let (usable, blocks, arenas, pages) = match f.inside {
                Some(i) => (
                    mib(i.usable),
                    mib(i.blocks),
                    mib(i.arenas),
                    i.pages.to_string(),
                ),
                None => Default::default(),
            };
            println!(
                "| {} | {} | {} | {usable} | {blocks} | {arenas} | {} | {} | {pages} | {} | {} |",
                f.name,
                f.peak_live,
                mib(f.peak.requested),
                mib(f.peak.span),
                mib(f.end.span),
                f.end.moves,
                mib(f.end.copied),
            );
        }
    }
}
