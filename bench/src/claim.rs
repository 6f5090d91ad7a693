//! Claiming and releasing block runs in a warm arena of 1024 blocks, through the registry's public
//! `alloc` and `free`, with the system allocator's `alloc` + `dealloc` of the same size measured in
//! the same run for scale.

use crate::stats::{time_per_op, Summary};
use quarry_alloc::bitmap::Bitmap;
use quarry_alloc::{Allocation, ArenaId, Arenas, Config, StaticBuffer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::AtomicUsize;

const BLOCK: usize = 1024;
const BLOCKS: usize = 1024;

/// A registry with one committed arena of 1024 blocks of 1 KiB in a static buffer, and a static
/// metadata area large enough for that arena's descriptor, bitmaps and per-block tags (over 4 KiB
/// for 1024 blocks, more than the default 4 KiB area).
type Registry = Arenas<StaticBuffer<{ (BLOCKS + 1) * BLOCK }>, 64, 16384>;

fn registry() -> &'static Registry {
    let config = Config::EMBEDDED
        .with_block_size(BLOCK)
        .with_arena_reserve(0);
    let arenas: &'static Registry = Box::leak(Box::new(Arenas::new(StaticBuffer::new(), config)));
    arenas
        .reserve(BLOCKS * BLOCK, true, false)
        .expect("the arena");
    arenas
}

/// One row of the table.
pub struct Row {
    pub case: String,
    /// Through `Arenas::alloc` / `Arenas::free`: the registry finds the arena and checks the free.
    pub quarry: Summary,
    /// Through an `ArenaHandle` on the arena: the arena layer's own claim and checked release.
    pub handle: Summary,
    /// The same claim and release on the bare in-use bitmap: `Bitmap::try_find_claim` +
    /// `Bitmap::try_unclaim`, the two atomic operations every claim and release costs.
    pub bitmap: Summary,
    pub system: Summary,
}

/// Claim + release of an `n`-block run, in an arena where `occupied` of the blocks are held by
/// earlier allocations scattered over it.
fn measure(n: usize, occupied: f64, trials: usize, iterations: usize) -> Row {
    let arenas = registry();
    // Warm the arena: fill it with n-block runs, then free all but a scattered `occupied` share.
    let mut held: Vec<Allocation> = Vec::new();
    while let Some(a) = arenas.alloc(n * BLOCK, BLOCK, true, ArenaId::ANY) {
        held.push(a);
    }
    let keep_every = if occupied > 0.0 {
        (1.0 / occupied).round() as usize
    } else {
        usize::MAX
    };
    for (i, a) in held.iter().enumerate() {
        if keep_every == usize::MAX || i % keep_every != 0 {
            // SAFETY: the run is not used.
            unsafe { arenas.free(a) }.expect("valid free");
        }
    }
    let quarry = time_per_op(trials, iterations, || {
        let a = arenas
            .alloc(black_box(n * BLOCK), BLOCK, true, ArenaId::ANY)
            .expect("room in the arena");
        // SAFETY: the run was just handed out and is not used.
        unsafe { arenas.free(black_box(&a)) }.expect("valid free");
    });
    let handle = arenas.arena(ArenaId::new(1)).expect("the arena");
    let on_handle = time_per_op(trials, iterations, || {
        let a = handle
            .alloc(black_box(n * BLOCK), BLOCK, true)
            .expect("room in the arena");
        // SAFETY: the run was just handed out and is not used.
        unsafe { handle.free(black_box(&a)) }.expect("valid free");
    });
    let fields: Vec<AtomicUsize> = (0..BLOCKS / usize::BITS as usize)
        .map(|_| AtomicUsize::new(0))
        .collect();
    let map = Bitmap::new(&fields);
    for (i, _) in held.iter().enumerate() {
        if keep_every != usize::MAX && i % keep_every == 0 {
            map.claim(i * n, n);
        }
    }
    let bitmap = time_per_op(trials, iterations, || {
        let idx = map
            .try_find_claim(0, black_box(n))
            .expect("room in the bitmap");
        assert!(map.try_unclaim(black_box(idx), n));
    });
    let layout = Layout::from_size_align(n * BLOCK, BLOCK).unwrap();
    let system = time_per_op(trials, iterations, || {
        // SAFETY: the layout has a non-zero size; the pointer is freed with the same layout.
        unsafe {
            let p = System.alloc(black_box(layout));
            System.dealloc(black_box(p), layout);
        }
    });
    Row {
        case: format!(
            "{n}-block run, {}% of the arena held",
            (occupied * 100.0).round()
        ),
        quarry,
        handle: on_handle,
        bitmap,
        system,
    }
}

pub fn run(trials: usize) -> Vec<Row> {
    let iterations = 200_000;
    vec![
        measure(1, 0.0, trials, iterations),
        measure(1, 0.5, trials, iterations),
        measure(64, 0.0, trials, iterations),
        measure(64, 0.5, trials, iterations),
    ]
}
