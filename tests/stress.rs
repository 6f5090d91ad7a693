//! A stress test after mimalloc's `test/test-stress.c`: 8 threads, created anew in each of 50
//! iterations, allocate objects of mixed sizes (mostly small, some medium, a few of several hundred
//! KiB; some zeroed, some reallocated) and free most of them at random. At a third of their steps
//! they swap an object into a shared transfer array of atomic pointers and free what they take out,
//! so that about a quarter of the frees are done by a thread other than the one that allocated.
//! Some objects outlive their thread and are freed by the threads of the next iteration; half of
//! the transfer array survives from one iteration to the next, and the rest is freed at the end.
//!
//! The allocator is a `Quarry<Mock>` with small arenas (256 KiB) and a purge delay of 0, so that
//! arenas are many and every freed run is purged at once: the mock poisons what is purged and zeroes
//! what is committed again, so a purge of a block in use, or a write to a block that is free, shows.
//! Every 8-byte word of every object holds a cookie made from the object's address, its size, its
//! alignment and the thread that made it; the cookies are written when the object is handed out
//! (after checking that zeroed memory is zero), and checked when it is freed, reallocated or taken
//! out of the transfer array. The first word also tells the object's layout, so a transfer slot
//! needs to hold nothing but the pointer. Any mismatch fails the test as a corruption. At the end,
//! with everything freed and `collect(true)` done, no byte and no block is in use, no free was
//! refused, the mock saw no misuse and no write to memory that was not committed.
//!
//! `cargo test --release --test stress -- --nocapture` prints the figures. Under Miri everything is
//! scaled down (2 threads, 2 iterations, a few dozen objects each).

#![cfg(not(target_family = "wasm"))]

use quarry_alloc::backend::{Call, Mock, MockOptions};
use quarry_alloc::{Config, Quarry};
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Instant;

/// How much work the test does.
struct Scale {
    threads: usize,
    iterations: usize,
    /// Objects a thread allocates for its working set, times 1 to 8 (thread `t` does `t % 8 + 1`
    /// times as many, as in test-stress); half as many again are retained until the thread ends.
    allocs: usize,
    /// Slots of the transfer array: 8192 rather than test-stress's 1000, because on 2 cores the
    /// threads run mostly one after the other, and a thread that has filled most slots with its
    /// own objects would mostly take its own objects back out.
    transfers: usize,
    /// Whether 0.1% of the objects are huge (up to 500 KiB, larger than an arena).
    huge: bool,
    /// Bytes of the mock's memory.
    capacity: usize,
}

const SCALE: Scale = if cfg!(miri) {
    Scale {
        threads: 2,
        iterations: 2,
        allocs: 12,
        transfers: 16,
        huge: false,
        capacity: 8 << 20,
    }
} else {
    Scale {
        threads: 8,
        iterations: 50,
        allocs: 1000,
        transfers: 8192,
        huge: true,
        capacity: 512 << 20,
    }
};

/// The chance in 100, at each step, that a thread puts an object into the transfer array and frees
/// what it takes out, most likely another thread's: with the objects that outlive their thread,
/// about a quarter of all frees are done by a thread other than the one that allocated.
const EXCHANGE_PERCENT: u64 = 33;

/// Mixed into every cookie.
const SEED: u64 = 0x5EED_0B5E_55ED_C0DE;
/// Makes the cookies of consecutive words differ.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// Bits of the packed layout that hold the size in words.
const WORDS_BITS: u32 = 40;
const WORD: usize = size_of::<u64>();

type Heap = Quarry<Mock>;

/// The allocator under test: 256 KiB arenas (many of them), purged at once (many purges).
fn allocator() -> Heap {
    let config = Config {
        arena_reserve: 256 * 1024,
        purge_delay_ms: 0,
        arena_purge_mult: 1,
        ..Config::HOST
    };
    let options = MockOptions {
        virtual_reserve: true,
        ..MockOptions::new(SCALE.capacity)
    };
    Quarry::new(Mock::with(options), config)
}

/// What an object is, packed into one word: its size in words, its alignment and the thread that
/// made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Info {
    words: usize,
    align_log: u32,
    /// `iteration * threads + thread + 1`; 0 is the main thread.
    owner: u32,
}

impl Info {
    fn pack(self) -> u64 {
        self.words as u64 | u64::from(self.align_log) << WORDS_BITS | u64::from(self.owner) << 48
    }

    /// The info packed in `bits`, if it makes sense (no larger than the largest object, aligned to
    /// at least a word and at most a block).
    fn unpack(bits: u64) -> Option<Info> {
        let info = Info {
            words: usize::try_from(bits & ((1 << WORDS_BITS) - 1)).ok()?,
            align_log: ((bits >> WORDS_BITS) & 0xFF) as u32,
            owner: (bits >> 48) as u32,
        };
        let sane = (1..=MAX_WORDS).contains(&info.words) && (3..=12).contains(&info.align_log);
        sane.then_some(info)
    }

    fn layout(self) -> Layout {
        Layout::from_size_align(self.words * WORD, 1 << self.align_log).expect("a valid layout")
    }

    /// The cookie of word `i` of an object with this info at `addr`. Word 0's is
    /// `addr ^ info ^ SEED`, so the info can be read back from the address and the first word.
    fn cookie(self, addr: usize, i: usize) -> u64 {
        (addr as u64 ^ self.pack() ^ SEED) ^ (i as u64).wrapping_mul(GOLDEN)
    }
}

/// The largest object: 64 words (the largest retained base size) times 1000.
const MAX_WORDS: usize = 64 * 1000;

/// An object of the allocator under test. Its layout is in its first word (see [`Info::cookie`]).
struct Block(NonNull<u8>);

// SAFETY: a block is a plain allocation of a `Sync` allocator, held by one owner at a time (a
// thread's lists, a transfer slot, the survivors); whoever holds it may free it on any thread.
unsafe impl Send for Block {}

impl Block {
    fn addr(&self) -> usize {
        self.0.addr().get()
    }

    fn words(&self, count: usize) -> &[u64] {
        // SAFETY: the block is a live allocation of at least `count` words, aligned to at least 8
        // bytes (every layout here is), and nobody else touches it while its holder reads it.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u64>(), count) }
    }

    fn words_mut(&mut self, count: usize) -> &mut [u64] {
        // SAFETY: as in `words`; the holder is the only one using it.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr().cast::<u64>(), count) }
    }

    fn write_cookies(&mut self, info: Info) {
        let addr = self.addr();
        for (i, word) in self.words_mut(info.words).iter_mut().enumerate() {
            *word = info.cookie(addr, i);
        }
    }
}

/// Deterministic randomness: splitmix64, as test-stress's `pick`.
struct Rng(u64);

impl Rng {
    fn pick(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.pick() % n as u64) as usize
    }

    /// `true` with a chance of `percent` in 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.pick() % 100 < percent
    }
}

/// What a thread did.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    allocs: u64,
    zeroed: u64,
    reallocs: u64,
    frees: u64,
    /// Frees (and reallocations) of objects another thread made.
    cross_frees: u64,
    /// Objects taken out of the transfer array.
    received: u64,
    bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.allocs += o.allocs;
        self.zeroed += o.zeroed;
        self.reallocs += o.reallocs;
        self.frees += o.frees;
        self.cross_frees += o.cross_frees;
        self.received += o.received;
        self.bytes += o.bytes;
    }
}

/// One thread's (or the main thread's) view of the allocator.
struct Worker<'a> {
    heap: &'a Heap,
    me: u32,
    rng: Rng,
    counts: Counts,
}

impl Worker<'_> {
    /// Size in words, as test-stress's `alloc_items`: `base`, or 1% of the time 100 times that,
    /// and 0.1% of the time 1000 times that.
    fn size(&mut self, base: usize) -> usize {
        let mut words = base;
        if self.rng.chance(1) {
            words *= if SCALE.huge && self.rng.chance(10) {
                1000
            } else {
                100
            };
        }
        words
    }

    /// One in 32 objects gets an alignment from 16 bytes to 4 KiB; the others 8.
    fn align_log(&mut self) -> u32 {
        if self.rng.below(32) == 0 {
            4 + self.rng.below(9) as u32
        } else {
            3
        }
    }

    /// A new object of `1 << shift` words (scaled by [`size`](Self::size)), zeroed one time in
    /// eight, holding its cookies.
    fn alloc(&mut self, max_shift: usize) -> Block {
        let base = 1 << self.rng.below(max_shift);
        let info = Info {
            words: self.size(base),
            align_log: self.align_log(),
            owner: self.me,
        };
        let layout = info.layout();
        let zeroed = self.rng.below(8) == 0;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe {
            if zeroed {
                self.heap.alloc_zeroed(layout)
            } else {
                self.heap.alloc(layout)
            }
        };
        let Some(ptr) = NonNull::new(ptr) else {
            panic!("out of memory for {layout:?}: {}", self.heap.stats());
        };
        assert_eq!(
            ptr.addr().get() % layout.align(),
            0,
            "{layout:?} misaligned"
        );
        let mut block = Block(ptr);
        if zeroed {
            if let Some(i) = block.words(info.words).iter().position(|&w| w != 0) {
                panic!(
                    "alloc_zeroed({layout:?}) handed out {:#x} with word {i} = {:#x}",
                    block.addr(),
                    block.words(info.words)[i]
                );
            }
            self.counts.zeroed += 1;
        }
        block.write_cookies(info);
        self.counts.allocs += 1;
        self.counts.bytes += layout.size() as u64;
        block
    }

    /// Checks every cookie of `block` and returns its info; panics on any corruption, saying
    /// `when` it was found.
    fn check(&self, block: &Block, when: &str) -> Info {
        let addr = block.addr();
        let first = block.words(1)[0];
        let usable = self.heap.usable_size(block.0);
        let info = Info::unpack(first ^ addr as u64 ^ SEED)
            .filter(|info| usable.is_some_and(|u| u >= info.words * WORD));
        let Some(info) = info else {
            panic!(
                "memory corruption {when}: the first word of {addr:#x} is {first:#x}, which is \
                 no object's cookie (usable size {usable:?})"
            );
        };
        if let Some((i, &found)) = block
            .words(info.words)
            .iter()
            .enumerate()
            .find(|&(i, &w)| w != info.cookie(addr, i))
        {
            panic!(
                "memory corruption {when}: word {i} of {addr:#x} ({} bytes, align {}, made by \
                 thread {}) is {found:#x}, not {:#x}",
                info.words * WORD,
                1usize << info.align_log,
                info.owner,
                info.cookie(addr, i)
            );
        }
        info
    }

    fn free(&mut self, block: Block) {
        let info = self.check(&block, "at free");
        // SAFETY: the block is a live allocation of this allocator with this layout, and nobody
        // uses it after this.
        unsafe { self.heap.dealloc(block.0.as_ptr(), info.layout()) };
        self.counts.frees += 1;
        if info.owner != self.me {
            self.counts.cross_frees += 1;
        }
    }

    /// Reallocates `block` to another size: what it held is kept (up to the smaller size), then it
    /// gets the cookies of its new address and size.
    fn realloc(&mut self, block: Block) -> Block {
        let old = self.check(&block, "before realloc");
        let old_addr = block.addr();
        let base = 1 << self.rng.below(7);
        let new = Info {
            words: self.size(base),
            owner: self.me,
            ..old
        };
        // SAFETY: the block is live with the layout `old` says; the new size is non-zero and,
        // rounded up to the alignment, far below `isize::MAX`.
        let ptr = unsafe {
            self.heap
                .realloc(block.0.as_ptr(), old.layout(), new.words * WORD)
        };
        let Some(ptr) = NonNull::new(ptr) else {
            panic!("out of memory reallocating to {} words", new.words);
        };
        let mut moved = Block(ptr);
        assert_eq!(moved.addr() % (1 << old.align_log), 0, "realloc misaligned");
        let kept = old.words.min(new.words);
        if let Some((i, &found)) = moved
            .words(kept)
            .iter()
            .enumerate()
            .find(|&(i, &w)| w != old.cookie(old_addr, i))
        {
            panic!(
                "realloc of {old_addr:#x} ({} to {} bytes) to {:#x} lost word {i}: {found:#x}, \
                 not {:#x}",
                old.words * WORD,
                new.words * WORD,
                moved.addr(),
                old.cookie(old_addr, i)
            );
        }
        moved.write_cookies(new);
        self.counts.reallocs += 1;
        if old.owner != self.me {
            self.counts.cross_frees += 1;
        }
        moved
    }

    /// Puts `block` (or nothing) into transfer slot `slot` and takes out what was there, checked.
    fn exchange(
        &mut self,
        transfer: &[AtomicPtr<u8>],
        slot: usize,
        block: Option<Block>,
    ) -> Option<Block> {
        let put = block.map_or(ptr::null_mut(), |b| b.0.as_ptr());
        let taken = NonNull::new(transfer[slot].swap(put, Ordering::AcqRel)).map(Block)?;
        self.check(&taken, "when taken out of the transfer array");
        self.counts.received += 1;
        Some(taken)
    }
}

/// One thread of one iteration, after test-stress's `stress`: `inherited` are objects that
/// outlived their thread in the previous iteration, to be freed here; returns the objects that
/// outlive this thread, and what it did.
fn stress(
    heap: &Heap,
    transfer: &[AtomicPtr<u8>],
    iteration: usize,
    thread: usize,
    mut inherited: Vec<Block>,
) -> (Vec<Block>, Counts) {
    let mut w = Worker {
        heap,
        me: (iteration * SCALE.threads + thread + 1) as u32,
        rng: Rng(((thread as u64 + 1) * 43) ^ ((iteration as u64) << 32)),
        counts: Counts::default(),
    };
    let mut allocs = SCALE.allocs * (thread % 8 + 1);
    let mut retain = allocs / 2;
    let mut data: Vec<Option<Block>> = Vec::new();
    let mut retained: Vec<Block> = Vec::with_capacity(retain);
    let mut steps = 0usize;
    while allocs > 0 || retain > 0 {
        if retain == 0 || (w.rng.chance(50) && allocs > 0) {
            // 50% and more: an object of 1 to 16 words for the working set.
            allocs -= 1;
            let block = w.alloc(5);
            data.push(Some(block));
        } else {
            // Else: an object of 1 to 64 words kept until the thread ends (one in 16 longer).
            retain -= 1;
            let block = w.alloc(7);
            retained.push(block);
        }
        if w.rng.chance(66) && !data.is_empty() {
            // 66%: free an earlier object (if that slot still holds one).
            let i = w.rng.below(data.len());
            if let Some(block) = data[i].take() {
                w.free(block);
            }
        }
        if w.rng.chance(EXCHANGE_PERCENT) && !data.is_empty() {
            // An object of the working set (a new one if the slot picked is empty) goes into the
            // transfer array, and what comes out, most likely another thread's, is freed.
            let i = w.rng.below(data.len());
            let block = match data[i].take() {
                Some(block) => block,
                None => w.alloc(5),
            };
            let slot = w.rng.below(transfer.len());
            if let Some(taken) = w.exchange(transfer, slot, Some(block)) {
                w.free(taken);
            }
        }
        if w.rng.chance(4) && !data.is_empty() {
            // 4%: reallocate one.
            let i = w.rng.below(data.len());
            if let Some(block) = data[i].take() {
                data[i] = Some(w.realloc(block));
            }
        }
        if w.rng.chance(10) {
            // 10%: free one of the objects inherited from the previous iteration.
            if let Some(block) = inherited.pop() {
                w.free(block);
            }
        }
        steps += 1;
        if thread == 0 && steps % 2048 == 0 {
            // Empty pages back to their arenas, and a purge, while the other threads work.
            heap.collect(false);
        }
    }
    // One retained object in 16 outlives this thread (with the inherited ones not freed yet); the
    // rest is freed.
    let mut survivors = inherited;
    for (i, block) in retained.into_iter().enumerate() {
        if i % 16 == 0 {
            w.check(&block, "before it outlives its thread");
            survivors.push(block);
        } else {
            w.free(block);
        }
    }
    for block in data.into_iter().flatten() {
        w.free(block);
    }
    (survivors, w.counts)
}

/// The backend calls of kind purge since the last `clear_calls`.
fn purge_calls(mock: &Mock) -> usize {
    mock.calls()
        .iter()
        .filter(|c| matches!(c, Call::Purge { .. }))
        .count()
}

#[test]
fn threads_allocate_transfer_and_free_without_corruption() {
    let start = Instant::now();
    let heap = allocator();
    let mock = heap.arenas().backend();
    let transfer: Vec<AtomicPtr<u8>> = (0..SCALE.transfers)
        .map(|_| AtomicPtr::new(ptr::null_mut()))
        .collect();
    let mut main = Worker {
        heap: &heap,
        me: 0,
        rng: Rng(0x7FEB_352D),
        counts: Counts::default(),
    };
    let mut total = Counts::default();
    let mut survivors: Vec<Block> = Vec::new();
    let mut purges = 0;
    let mut peak_survivors = 0;
    for iteration in 0..SCALE.iterations {
        // The survivors of the previous iteration, dealt out to this iteration's threads.
        let mut shares: Vec<Vec<Block>> = (0..SCALE.threads).map(|_| Vec::new()).collect();
        for (i, block) in std::mem::take(&mut survivors).into_iter().enumerate() {
            shares[i % SCALE.threads].push(block);
        }
        std::thread::scope(|s| {
            let threads: Vec<_> = shares
                .into_iter()
                .enumerate()
                .map(|(t, share)| {
                    let (heap, transfer) = (&heap, &transfer[..]);
                    s.spawn(move || stress(heap, transfer, iteration, t, share))
                })
                .collect();
            for thread in threads {
                let (kept, counts) = thread.join().expect("a stress thread panicked");
                survivors.extend(kept);
                total += counts;
            }
        });
        peak_survivors = peak_survivors.max(survivors.len());
        // Half of the transfer array is freed, all of it after the last iteration.
        let last = iteration + 1 == SCALE.iterations;
        for slot in 0..transfer.len() {
            if last || main.rng.chance(50) {
                if let Some(block) = main.exchange(&transfer, slot, None) {
                    main.free(block);
                }
            }
        }
        let stats = heap.stats();
        assert_eq!(
            stats.errors(),
            0,
            "refused frees in iteration {iteration}: {stats}"
        );
        purges += purge_calls(mock);
        mock.clear_calls();
    }
    for block in survivors {
        main.free(block);
    }
    total += main.counts;
    heap.collect(true);
    purges += purge_calls(mock);

    let stats = heap.stats();
    let arenas = heap.arenas().stats();
    let elapsed = start.elapsed();
    println!(
        "stress: {} threads x {} iterations in {:.2} s: {} allocations ({} zeroed, {} MiB), {} \
         reallocations, {} frees, {} by another thread ({:.0}%), {} taken out of the transfer \
         array, up to {} objects outliving their thread; {} arenas ({} KiB), {} purges, {} MiB \
         purged",
        SCALE.threads,
        SCALE.iterations,
        elapsed.as_secs_f64(),
        total.allocs,
        total.zeroed,
        total.bytes >> 20,
        total.reallocs,
        total.frees,
        total.cross_frees,
        100.0 * total.cross_frees as f64 / total.frees.max(1) as f64,
        total.received,
        peak_survivors,
        stats.arenas,
        stats.reserved_bytes >> 10,
        purges,
        stats.purged_bytes >> 20,
    );

    assert_eq!(total.allocs, total.frees, "the test freed all it allocated");
    assert!(
        total.cross_frees * 8 >= total.frees,
        "too few frees by another thread: {total:?}"
    );
    assert_eq!(stats.errors(), 0, "refused frees: {stats}");
    assert_eq!(arenas.errors(), 0, "refused frees: {arenas:?}");
    assert_eq!(stats.allocations, stats.frees, "{stats}");
    if arenas.blocks_in_use != 0 {
        let mut map = String::new();
        heap.write_map(&mut map).expect("a map");
        panic!(
            "{} blocks still in use after freeing all and collect(true): {stats}\n{map}",
            arenas.blocks_in_use
        );
    }
    if !cfg!(miri) {
        // Reading every uncommitted byte is what Miri is slowest at.
        assert_eq!(
            mock.verify_poison(),
            Ok(()),
            "a write to memory not committed"
        );
        assert!(
            stats.purged_bytes > 0,
            "purge delay 0, yet nothing purged: {stats}"
        );
        assert!(stats.arenas > 1, "many small arenas expected: {stats}");
    }
    assert_eq!(mock.misuse(), Vec::<&str>::new(), "the backend was misused");
    // Last: a counter, where the checks above are of the memory itself.
    assert_eq!(stats.bytes_in_use, 0, "bytes still in use: {stats}");
}
