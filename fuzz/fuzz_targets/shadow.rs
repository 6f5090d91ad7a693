//! Fuzzing `Quarry` against a shadow model.
//!
//! The input decodes to a sequence of operations on a `Quarry<Mock>` with small blocks and small
//! arenas: alloc, alloc_zeroed and realloc (sizes up to 32 KiB, half of them up to 1 KiB;
//! alignments up to 4096), dealloc,
//! the backend growing (its budget raised), the backend failing (its next calls fail), and the
//! clock moving on (a purge tick, sometimes forced). A map of the live allocations checks every
//! answer: no two allocations overlap, every alignment is honoured, zeroed memory is zero, and a
//! fill pattern written on allocation is intact when the allocation is moved or freed. At the end
//! everything is freed, and then every in-use bit must be clear and every arena must be allocatable
//! again as a whole.
//!
//! `cargo xtask fuzz [SECONDS]` runs it (`cargo +nightly fuzz run shadow`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use quarry_alloc::backend::{Mock, MockOptions};
use quarry_alloc::{ArenaId, Config, EagerCommit, Quarry};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

const KIB: usize = 1024;
/// The mock's memory in all: small, so that a run is cheap to set up.
const CAPACITY: usize = 512 * KIB;
/// What the backend may hand out at first; `Grow` raises it.
const FIRST_BUDGET: usize = 256 * KIB;

/// 1 KiB blocks (the mock's page), 64 KiB arenas, objects above 8 KiB as block runs, pages up to
/// 16 KiB, purged 3 ms after a free.
const CONFIG: Config = Config {
    block_size: KIB,
    arena_reserve: 64 * KIB,
    purge_delay_ms: 3,
    arena_purge_mult: 1,
    eager_commit: EagerCommit::Never,
    limit_os_alloc: false,
    small_limit: 8 * KIB,
    page_target: 16 * KIB,
};

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        size: u16,
        align_log: u8,
    },
    AllocZeroed {
        size: u16,
        align_log: u8,
    },
    Realloc {
        pick: u16,
        size: u16,
    },
    Dealloc {
        pick: u16,
    },
    /// The backend may hand out `kib * 16` KiB more.
    Grow {
        kib: u8,
    },
    /// The backend's next `n % 4` calls fail.
    Fail {
        n: u8,
    },
    /// The clock moves on by `ms % 8` ms, then a collection (forced or not).
    Tick {
        ms: u8,
        force: bool,
    },
}

struct Live {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

struct Model {
    quarry: Quarry<Mock, quarry_alloc::SpinLock, 1>,
    live: BTreeMap<usize, Live>,
    next_fill: u8,
    budget: usize,
}

impl Model {
    fn new() -> Model {
        let mock = Mock::with(MockOptions {
            page_size: KIB,
            virtual_reserve: true,
            ..MockOptions::new(CAPACITY)
        });
        mock.set_budget(FIRST_BUDGET);
        Model {
            quarry: Quarry::new(mock, CONFIG),
            live: BTreeMap::new(),
            next_fill: 1,
            budget: FIRST_BUDGET,
        }
    }

    fn backend(&self) -> &Mock {
        self.quarry.arenas().backend()
    }

    /// A size from an input: half of them up to 1 KiB, half up to 32 KiB (past a page object's
    /// largest class and into block runs).
    fn size(size: u16) -> usize {
        let size = if size & 0x8000 == 0 {
            size & 0x3ff
        } else {
            size & 0x7fff
        };
        (size as usize).max(1)
    }

    fn layout(size: u16, align_log: u8) -> Layout {
        Layout::from_size_align(Self::size(size), 1 << (align_log % 13)).expect("a valid layout")
    }

    /// Checks a new allocation against the live ones and records it, filled with a new pattern.
    fn add(&mut self, ptr: *mut u8, layout: Layout) {
        let addr = ptr.addr();
        assert_eq!(
            addr % layout.align(),
            0,
            "misaligned: {layout:?} at {addr:#x}"
        );
        if let Some((&start, live)) = self.live.range(..addr + layout.size()).next_back() {
            assert!(
                start + live.layout.size() <= addr,
                "{addr:#x}+{} overlaps {start:#x}+{}",
                layout.size(),
                live.layout.size()
            );
        }
        let fill = self.next_fill;
        self.next_fill = self.next_fill.wrapping_add(1).max(1);
        // SAFETY: a fresh allocation of `layout.size()` bytes.
        unsafe { ptr.write_bytes(fill, layout.size()) };
        self.live.insert(addr, Live { ptr, layout, fill });
    }

    /// The live allocation `pick` selects, taken out of the map after its pattern is checked.
    fn take(&mut self, pick: u16) -> Option<Live> {
        let n = self.live.len();
        let addr = *self.live.keys().nth(pick as usize % n.max(1))?;
        let live = self.live.remove(&addr)?;
        Self::check(&live, live.layout.size());
        Some(live)
    }

    /// The first `len` bytes of `live` still hold its pattern. (Compared with `memcmp` against a
    /// filled buffer: a byte loop here would be most of the fuzzer's time.)
    fn check(live: &Live, len: usize) {
        thread_local! {
            static EXPECTED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // SAFETY: `live` is a live allocation of at least `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(live.ptr, len) };
        let intact = EXPECTED.with_borrow_mut(|expected| {
            expected.clear();
            expected.resize(len, live.fill);
            bytes == expected.as_slice()
        });
        if !intact {
            let at = bytes.iter().position(|&b| b != live.fill).unwrap_or(0);
            panic!(
                "allocation {:#x}+{} lost its pattern {:#x} at byte {at}: {:#x}",
                live.ptr.addr(),
                live.layout.size(),
                live.fill,
                bytes[at]
            );
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Alloc { size, align_log } => {
                let layout = Self::layout(size, align_log);
                // SAFETY: a valid, non-zero layout.
                let ptr = unsafe { self.quarry.alloc(layout) };
                if !ptr.is_null() {
                    self.add(ptr, layout);
                }
            }
            Op::AllocZeroed { size, align_log } => {
                let layout = Self::layout(size, align_log);
                // SAFETY: a valid, non-zero layout.
                let ptr = unsafe { self.quarry.alloc_zeroed(layout) };
                if !ptr.is_null() {
                    Self::check(
                        &Live {
                            ptr,
                            layout,
                            fill: 0,
                        },
                        layout.size(),
                    );
                    self.add(ptr, layout);
                }
            }
            Op::Realloc { pick, size } => {
                let Some(live) = self.take(pick) else { return };
                let new_size = Self::size(size);
                // SAFETY: `live` is a live allocation of this layout; the new size is valid.
                let ptr = unsafe { self.quarry.realloc(live.ptr, live.layout, new_size) };
                if ptr.is_null() {
                    // Failed: the old allocation is still live and unchanged.
                    Self::check(&live, live.layout.size());
                    self.live.insert(live.ptr.addr(), live);
                } else {
                    let moved = Live {
                        ptr,
                        layout: Layout::from_size_align(new_size, live.layout.align())
                            .expect("a valid layout"),
                        fill: live.fill,
                    };
                    Self::check(&moved, live.layout.size().min(new_size));
                    self.add(ptr, moved.layout);
                }
            }
            Op::Dealloc { pick } => {
                if let Some(live) = self.take(pick) {
                    // SAFETY: a live allocation of this layout, freed once.
                    unsafe { self.quarry.dealloc(live.ptr, live.layout) };
                }
            }
            Op::Grow { kib } => {
                self.budget = (self.budget + kib as usize * 16 * KIB).min(CAPACITY);
                self.backend().set_budget(self.budget);
            }
            Op::Fail { n } => self.backend().fail_next(n as usize % 4),
            Op::Tick { ms, force } => {
                self.backend().advance_ms(ms as u64 % 8);
                self.quarry.collect(force);
            }
        }
    }

    /// Frees everything; then no block is in use, and every arena can be claimed whole again.
    /// (By reference: the allocator must not move once it has handed out memory.)
    fn finish(&mut self) {
        let addrs: Vec<usize> = self.live.keys().copied().collect();
        for addr in addrs {
            let live = self.live.remove(&addr).expect("a live allocation");
            Self::check(&live, live.layout.size());
            // SAFETY: a live allocation of this layout, freed once.
            unsafe { self.quarry.dealloc(live.ptr, live.layout) };
        }
        self.quarry.collect(true);
        let stats = self.quarry.stats();
        assert_eq!(stats.errors(), 0, "refused frees: {stats:?}");
        assert_eq!(stats.bytes_in_use, 0);
        let arenas = self.quarry.arenas();
        assert_eq!(arenas.stats().blocks_in_use, 0, "in-use bits left set");
        let backend = arenas.backend();
        backend.fail_next(0);
        backend.set_budget(CAPACITY);
        for index in 0..arenas.arena_count() {
            let id = ArenaId::new(index as u32 + 1);
            let (_, size) = arenas.area(id).expect("a published arena");
            let whole = arenas
                .alloc(size, CONFIG.block_size, true, id)
                .unwrap_or_else(|| panic!("arena {index} is not allocatable as a whole"));
            // SAFETY: the arena's whole memory, claimed just now; given back at once.
            unsafe { arenas.free(&whole) }.expect("a valid free");
        }
        assert_eq!(arenas.stats().blocks_in_use, 0);
        assert_eq!(
            backend.verify_poison(),
            Ok(()),
            "a write into decommitted memory"
        );
        assert!(backend.misuse().is_empty(), "{:?}", backend.misuse());
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut model = Model::new();
    for op in &ops {
        model.apply(op);
    }
    model.finish();
});
