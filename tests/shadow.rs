//! A shadow model: random sequences of alloc / alloc_zeroed / realloc / dealloc on the mock
//! backend, checked against a map of the live allocations. No two allocations overlap, every
//! alignment is honoured, contents survive realloc (each allocation carries a fill pattern, checked
//! when it is freed), zeroed memory is zero, and once everything is freed no block is in use.

use proptest::prelude::*;
use quarry_alloc::backend::Mock;
use quarry_alloc::{Config, Quarry};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_log: u32 },
    AllocZeroed { size: usize, align_log: u32 },
    Realloc { pick: usize, size: usize },
    Dealloc { pick: usize },
}

/// Sizes from tiny to several blocks, with most of them small. (Under Miri, which checks every
/// byte it touches, sizes stop at 48 KiB: still pages of every kind and large objects.)
fn size() -> impl Strategy<Value = usize> {
    let huge = if cfg!(miri) { 49_152 } else { 200_000 };
    prop_oneof![
        4 => 1usize..=128,
        3 => 129usize..=4096,
        2 => 4097usize..=40_000,
        1 => 40_001usize..=huge,
    ]
}

/// The largest alignment tried, as a power of two.
const MAX_ALIGN_LOG: u32 = if cfg!(miri) { 12 } else { 14 };

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Alignments up to 16 KiB: past the 4 KiB block size too.
        4 => (size(), 0u32..=MAX_ALIGN_LOG).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        1 => (size(), 0u32..=MAX_ALIGN_LOG)
            .prop_map(|(size, align_log)| Op::AllocZeroed { size, align_log }),
        2 => (any::<usize>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        3 => any::<usize>().prop_map(|pick| Op::Dealloc { pick }),
    ]
}

struct Live {
    /// The pointer itself (the map's key is its address), so that no pointer is ever rebuilt
    /// from an integer (Miri checks strict provenance).
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

struct Model {
    live: BTreeMap<usize, Live>,
    next_fill: u8,
}

impl Model {
    /// Checks that `[addr, addr + size)` overlaps no live allocation.
    fn assert_free(&self, addr: usize, size: usize) {
        if let Some((&start, live)) = self.live.range(..addr + size).next_back() {
            assert!(
                start + live.layout.size() <= addr,
                "{addr:#x}+{size} overlaps {start:#x}+{}",
                live.layout.size()
            );
        }
    }

    fn pick(&self, pick: usize) -> Option<usize> {
        let n = self.live.len();
        (n > 0).then(|| *self.live.keys().nth(pick % n).unwrap())
    }

    /// Fills a new allocation: all of it, or (every other time, like a program that uses only part
    /// of what it allocates) only its first and last byte.
    fn add(&mut self, ptr: *mut u8, layout: Layout) {
        let fill = self.next_fill;
        self.next_fill = self.next_fill.wrapping_add(1).max(1);
        let whole = fill % 2 == 0;
        // SAFETY: a fresh allocation of `layout.size()` bytes.
        unsafe {
            if whole {
                ptr.write_bytes(fill, layout.size());
            } else {
                ptr.write(fill);
                ptr.add(layout.size() - 1).write(fill);
            }
        }
        self.live.insert(ptr as usize, Live { ptr, layout, fill });
    }

    /// Checks the fill of the first `len` bytes of an allocation (or its first and last byte, for
    /// one filled only there).
    fn check(ptr: *const u8, len: usize, fill: u8) {
        // SAFETY: a live allocation of at least `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        let wrong = |&i: &usize| bytes[i] != fill;
        let bad = if fill % 2 == 0 {
            // One comparison of the whole slice, which Miri does natively; only if it fails, a
            // search for the first wrong byte (which Miri would interpret byte by byte).
            (bytes != vec![fill; len].as_slice()).then(|| (0..len).find(wrong).unwrap_or(0))
        } else {
            [0, len - 1].into_iter().find(wrong)
        };
        if let Some(i) = bad {
            panic!("byte {i} of {ptr:?} is {}, not {fill}", bytes[i]);
        }
    }
}

fn run(ops: &[Op]) {
    let config = Config::HOST.with_arena_reserve(4 << 20);
    let capacity = if cfg!(miri) { 2 << 20 } else { 16 << 20 };
    let quarry: Quarry<Mock> = Quarry::new(Mock::new(capacity), config);
    let mut model = Model {
        live: BTreeMap::new(),
        next_fill: 1,
    };
    for op in ops {
        match *op {
            Op::Alloc { size, align_log } | Op::AllocZeroed { size, align_log } => {
                let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                let zeroed = matches!(op, Op::AllocZeroed { .. });
                // SAFETY: the layout has a non-zero size.
                let ptr = unsafe {
                    if zeroed {
                        quarry.alloc_zeroed(layout)
                    } else {
                        quarry.alloc(layout)
                    }
                };
                if ptr.is_null() {
                    let mut map = String::new();
                    quarry.write_map(&mut map).unwrap();
                    let live: usize = model.live.values().map(|l| l.layout.size()).sum();
                    panic!(
                        "out of memory for {layout:?}: {live} live bytes, {:?}\n{map}",
                        quarry.stats()
                    );
                }
                assert_eq!(ptr as usize % layout.align(), 0, "{layout:?} misaligned");
                model.assert_free(ptr as usize, size);
                if zeroed {
                    Model::check(ptr, size, 0);
                }
                model.add(ptr, layout);
            }
            Op::Realloc { pick, size } => {
                let Some(addr) = model.pick(pick) else {
                    continue;
                };
                let old = model.live.remove(&addr).unwrap();
                Model::check(old.ptr, old.layout.size(), old.fill);
                // SAFETY: `old.ptr` is live with `old.layout`; `size` is non-zero.
                let ptr = unsafe { quarry.realloc(old.ptr, old.layout, size) };
                assert!(!ptr.is_null(), "out of memory growing to {size}");
                assert_eq!(ptr as usize % old.layout.align(), 0);
                model.assert_free(ptr as usize, size);
                if old.fill % 2 == 0 || size >= old.layout.size() {
                    Model::check(ptr, old.layout.size().min(size), old.fill);
                } else {
                    // Only the first byte of a partly filled allocation survives a shrink.
                    Model::check(ptr, 1, old.fill);
                }
                let layout = Layout::from_size_align(size, old.layout.align()).unwrap();
                model.add(ptr, layout);
            }
            Op::Dealloc { pick } => {
                let Some(addr) = model.pick(pick) else {
                    continue;
                };
                let live = model.live.remove(&addr).unwrap();
                Model::check(live.ptr, live.layout.size(), live.fill);
                // SAFETY: `live.ptr` is live with this layout.
                unsafe { quarry.dealloc(live.ptr, live.layout) };
            }
        }
    }
    for live in std::mem::take(&mut model.live).into_values() {
        Model::check(live.ptr, live.layout.size(), live.fill);
        // SAFETY: live with this layout.
        unsafe { quarry.dealloc(live.ptr, live.layout) };
    }
    let stats = quarry.stats();
    assert_eq!(stats.errors(), 0);
    assert_eq!(stats.bytes_in_use, 0);
    assert_eq!(stats.allocations, stats.frees);
    quarry.trim();
    assert_eq!(
        quarry.arenas().stats().blocks_in_use,
        0,
        "blocks still in use after freeing all"
    );
    if !cfg!(miri) {
        // Reading every uncommitted byte is what Miri is slowest at; natively it is cheap.
        assert_eq!(quarry.arenas().backend().verify_poison(), Ok(()));
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 128 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_sequences_keep_every_promise(
        ops in prop::collection::vec(op(), 1..if cfg!(miri) { 30 } else { 400 })
    ) {
        run(&ops);
    }
}

#[test]
fn a_page_boundary_does_not_thrash() {
    // One heap: the property is per heap (and under Miri the stack address that picks a thread's
    // heap changes from call to call).
    let quarry: Quarry<Mock, quarry_alloc::SpinLock, 1> =
        Quarry::new(Mock::new(8 << 20), Config::HOST);
    let layout = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: allocations are freed with their layout, once.
    unsafe {
        let first = quarry.alloc(layout);
        quarry.dealloc(first, layout);
        for _ in 0..1000 {
            let p = quarry.alloc(layout);
            assert_eq!(p, first, "the same object comes back from the kept page");
            quarry.dealloc(p, layout);
        }
    }
    let stats = quarry.stats();
    assert_eq!(stats.pages_made, 1);
    assert_eq!(stats.pages_returned, 0);
}
