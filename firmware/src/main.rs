//! A Cortex-M program with quarry-alloc as its global allocator, for qemu.
//!
//! `main` builds and sorts a parts table, counts words in a `BTreeMap`, evaluates a boxed
//! expression tree and grows a large `Vec`, round after round, while the SysTick exception
//! allocates and frees on its own (and frees strings `main` hands it) every `SYSTICK_RELOAD` core
//! cycles. Every result is checked; at the end the SysTick is stopped, everything is dropped, and
//! the allocator must show as many frees as allocations and no refused free. The stats and the
//! arena map go to the host over semihosting, and so does the exit code: 0 when every check held,
//! 1 on a failed check (a panic) or a fault.
//!
//! With the feature `compact`, the allocator is quarry-alloc's compact engine instead of `Quarry`;
//! with `tiny`, its tiny engine.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Write as _;
use core::panic::PanicInfo;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio, hprintln};
use critical_section::Mutex;
use quarry_alloc::sync::CriticalSectionLock;
#[cfg(not(feature = "tiny"))]
use quarry_alloc::Config;
use quarry_alloc::{Sbrk, Stats};

/// The allocator: the heap between `.bss` and the stack that the board's `memory.x` names, one heap
/// behind a critical section, so that interrupt handlers may allocate too.
#[cfg(not(any(feature = "compact", feature = "tiny")))]
#[global_allocator]
static HEAP: quarry_alloc::Quarry<Sbrk, CriticalSectionLock, 1> =
    quarry_alloc::Quarry::new(Sbrk::linker(), Config::EMBEDDED);

/// The compact engine over the same heap: 256-byte blocks (`Config::EMBEDDED`), at most 1024 of
/// them (256 KiB, more than any of the boards' heaps), so a tag table of 4 KiB.
#[cfg(feature = "compact")]
#[global_allocator]
static HEAP: quarry_alloc::Compact<Sbrk, CriticalSectionLock, 1024> =
    quarry_alloc::Compact::new(Sbrk::linker(), Config::EMBEDDED);

/// The tiny engine over the same heap: granules of 16 bytes, at most 4096 of them (64 KiB, as
/// much as the boards' RAM), so 1 KiB of bitmaps.
#[cfg(feature = "tiny")]
#[global_allocator]
static HEAP: quarry_alloc::Tiny<Sbrk, CriticalSectionLock, 4096> =
    quarry_alloc::Tiny::new(Sbrk::linker());

/// The board this image is built for (from build.rs).
const BOARD: &str = env!("QUARRY_BOARD");

/// Core clock cycles between two SysTick exceptions.
const SYSTICK_RELOAD: u32 = 4_000;
/// `main` works at least this many rounds, and on until the SysTick has fired this often…
const MIN_ROUNDS: u32 = 20;
const MIN_TICKS: u32 = 300;
/// …but gives up (a failed check) after this many rounds: the SysTick does not fire.
const MAX_ROUNDS: u32 = 5_000;

/// Blocks the SysTick handler keeps alive at once; it frees the oldest beyond this.
const TICK_KEEP: usize = 12;

// ---------------------------------------------------------------------------------------------
// The SysTick handler's side
// ---------------------------------------------------------------------------------------------

/// What the SysTick handler keeps between exceptions, and what it has done.
struct TickState {
    /// Blocks allocated by earlier exceptions, oldest first, each filled from its first word.
    live: VecDeque<Box<[u32]>>,
    /// Strings `main` allocated and handed over for the handler to free.
    inbox: Vec<String>,
    /// Exceptions taken.
    ticks: u32,
    /// Allocations and frees the handler made (its own blocks and strings).
    allocs: u32,
    frees: u32,
    /// Strings of `main`'s that the handler freed.
    freed_for_main: u32,
    /// Blocks or strings that did not hold what was written into them.
    corrupt: u32,
}

static TICK: Mutex<RefCell<TickState>> = Mutex::new(RefCell::new(TickState::empty()));

impl TickState {
    const fn empty() -> TickState {
        TickState {
            live: VecDeque::new(),
            inbox: Vec::new(),
            ticks: 0,
            allocs: 0,
            frees: 0,
            freed_for_main: 0,
            corrupt: 0,
        }
    }

    /// One exception's work: check the blocks kept so far, allocate a new one, free the oldest,
    /// format and check a string, and free what `main` handed over.
    fn tick(&mut self) {
        self.ticks += 1;
        let n = self.ticks;

        self.corrupt += self
            .live
            .iter()
            .filter(|block| !holds_pattern(block))
            .count() as u32;

        let len = 1 + (n as usize * 7) % 48;
        let seed = n.wrapping_mul(0x9E37_79B9);
        let block: Box<[u32]> = (0..len as u32).map(|i| seed ^ i).collect();
        self.live.push_back(block);
        self.allocs += 1;
        if self.live.len() > TICK_KEEP {
            drop(self.live.pop_front());
            self.frees += 1;
        }

        let text = format!("tick {n}");
        self.allocs += 1;
        if text
            .strip_prefix("tick ")
            .and_then(|rest| rest.parse().ok())
            != Some(n)
        {
            self.corrupt += 1;
        }
        drop(text);
        self.frees += 1;

        for line in self.inbox.drain(..) {
            if !line.starts_with("round ") {
                self.corrupt += 1;
            }
            self.freed_for_main += 1;
        }
    }
}

/// Whether a block still holds `first ^ i` in word `i`.
fn holds_pattern(block: &[u32]) -> bool {
    block
        .iter()
        .enumerate()
        .all(|(i, &word)| word == block[0] ^ i as u32)
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| TICK.borrow_ref_mut(cs).tick());
}

/// How often the SysTick handler has run so far.
fn ticks() -> u32 {
    critical_section::with(|cs| TICK.borrow_ref(cs).ticks)
}

// ---------------------------------------------------------------------------------------------
// main's work
// ---------------------------------------------------------------------------------------------

/// A small xorshift generator: the same numbers on every run.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// One row of the parts table.
struct Part {
    id: u32,
    name: String,
    grams: u32,
}

const PARTS: u32 = 160;

/// Builds a table of parts with random weights, sorts it by weight (then name) and checks it.
/// Returns the three lightest and the three heaviest parts' lines, for the log.
fn parts_table(rng: &mut Rng) -> (Vec<String>, Vec<String>) {
    let mut table: Vec<Part> = Vec::new();
    for id in 0..PARTS {
        let kind = ["bolt", "nut", "washer", "bracket", "spring"][rng.below(5) as usize];
        table.push(Part {
            id,
            name: format!("{kind}-{id:03}"),
            grams: 1 + rng.below(500),
        });
    }
    table.sort_by(|a, b| a.grams.cmp(&b.grams).then_with(|| a.name.cmp(&b.name)));

    assert_eq!(table.len(), PARTS as usize);
    assert!(
        table
            .windows(2)
            .all(|w| (w[0].grams, &w[0].name) <= (w[1].grams, &w[1].name)),
        "the table is not sorted"
    );
    let mut seen = alloc::vec![false; PARTS as usize];
    for part in &table {
        assert!(!seen[part.id as usize], "part {} twice", part.id);
        seen[part.id as usize] = true;
        assert!(
            part.name.ends_with(&format!("-{:03}", part.id)),
            "part {} is named {}",
            part.id,
            part.name
        );
    }

    let line = |part: &Part| format!("{:>12} {:>4} g", part.name, part.grams);
    let lightest = table.iter().take(3).map(line).collect();
    let heaviest = table.iter().rev().take(3).map(line).collect();
    (lightest, heaviest)
}

const WORDS: [&str; 8] = [
    "arena", "block", "page", "heap", "free", "alloc", "quarry", "stack",
];
const TEXT_WORDS: usize = 400;

/// Writes a random text of `TEXT_WORDS` words, counts them in a `BTreeMap` and checks the counts
/// against a plain array count. Returns the map.
fn word_counts(rng: &mut Rng) -> BTreeMap<String, u32> {
    let mut text = String::new();
    let mut expected = [0u32; WORDS.len()];
    for _ in 0..TEXT_WORDS {
        let i = rng.below(WORDS.len() as u32) as usize;
        expected[i] += 1;
        text.push_str(WORDS[i]);
        text.push(' ');
    }

    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for word in text.split_whitespace() {
        *counts.entry(String::from(word)).or_insert(0) += 1;
    }

    assert_eq!(counts.values().sum::<u32>(), TEXT_WORDS as u32);
    for (word, &n) in WORDS.iter().zip(&expected) {
        assert_eq!(
            counts.get(*word).copied().unwrap_or(0),
            n,
            "count of {word}"
        );
    }
    assert!(
        counts.keys().zip(counts.keys().skip(1)).all(|(a, b)| a < b),
        "the map's keys are not in order"
    );
    counts
}

/// An arithmetic expression, one `Box` per node.
enum Expr {
    Num(i64),
    Add(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn eval(&self) -> i64 {
        match self {
            Expr::Num(n) => *n,
            Expr::Add(a, b) => a.eval() + b.eval(),
            Expr::Mul(a, b) => a.eval() * b.eval(),
        }
    }
}

/// `1 * 2 + 2 * 3 + … + n * (n + 1)` as a left-leaning tree of boxes; its value is
/// `n (n + 1) (n + 2) / 3`.
fn expression(n: i64) -> Box<Expr> {
    let mut sum = Box::new(Expr::Num(0));
    for k in 1..=n {
        let product = Box::new(Expr::Mul(
            Box::new(Expr::Num(k)),
            Box::new(Expr::Num(k + 1)),
        ));
        sum = Box::new(Expr::Add(sum, product));
    }
    sum
}

const BIG: u32 = 2_000;

/// Grows a `Vec<u32>` one push at a time to `BIG` elements (8 KB: large allocations, moved and
/// resized in place) and checks its sum.
fn big_vec(rng: &mut Rng) -> u32 {
    let mut v = Vec::new();
    let mut sum = 0u32;
    for _ in 0..BIG {
        let x = rng.below(1000);
        sum = sum.wrapping_add(x);
        v.push(x);
    }
    assert_eq!(v.len(), BIG as usize);
    assert_eq!(v.iter().fold(0u32, |a, &x| a.wrapping_add(x)), sum);
    sum
}

/// One round of `main`'s work; round 0 prints what it made.
fn round(round: u32, rng: &mut Rng) {
    let (lightest, heaviest) = parts_table(rng);
    let counts = word_counts(rng);
    let terms = 20 + i64::from(round % 40);
    let tree = expression(terms);
    let value = tree.eval();
    assert_eq!(
        value,
        terms * (terms + 1) * (terms + 2) / 3,
        "expression value"
    );
    let sum = big_vec(rng);

    if round == 0 {
        hprintln!("parts table ({PARTS} rows, sorted by weight):");
        for line in &lightest {
            hprintln!("  {line}");
        }
        hprintln!("           ...");
        for line in heaviest.iter().rev() {
            hprintln!("  {line}");
        }
        let counts: Vec<String> = counts.iter().map(|(w, n)| format!("{w} {n}")).collect();
        hprintln!("word counts ({TEXT_WORDS} words): {}", counts.join(", "));
        hprintln!("expression tree of {terms} products: {value}");
        hprintln!("vec of {BIG} u32: sum {sum}");
    }

    // A string for the SysTick handler to free.
    let note = format!("round {round}: {value} {sum}");
    critical_section::with(|cs| TICK.borrow_ref_mut(cs).inbox.push(note));
}

/// Starts the SysTick exception, every `SYSTICK_RELOAD` core cycles.
fn start_systick(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD - 1);
    syst.clear_current();
    syst.enable_counter();
    syst.enable_interrupt();
}

/// Stops the SysTick exception for good, including one that is already pending.
fn stop_systick(syst: &mut SYST) {
    critical_section::with(|_| {
        syst.disable_interrupt();
        syst.disable_counter();
        SCB::clear_pendst();
    });
}

/// The heap's first byte and its size, from the linker symbols the backend reads.
fn heap_bounds() -> (usize, usize) {
    extern "C" {
        static __quarry_heap_start: u8;
        static __quarry_heap_end: u8;
    }
    let start = core::ptr::addr_of!(__quarry_heap_start).addr();
    let end = core::ptr::addr_of!(__quarry_heap_end).addr();
    (start, end - start)
}

fn print_stats(stats: &Stats) {
    hprintln!(
        "stats: allocations {}, frees {}, in use {} B, peak {} B",
        stats.allocations,
        stats.frees,
        stats.bytes_in_use,
        stats.peak_bytes
    );
    hprintln!(
        "       arenas {}, reserved {} B, committed {} B, pages made {} / returned {}, refused frees {}",
        stats.arenas,
        stats.reserved_bytes,
        stats.committed_bytes,
        stats.pages_made,
        stats.pages_returned,
        stats.errors()
    );
}

#[entry]
fn main() -> ! {
    let Some(mut core) = cortex_m::Peripherals::take() else {
        panic!("the core peripherals are taken already");
    };
    let (heap_start, heap_size) = heap_bounds();
    hprintln!(
        "quarry-alloc firmware on {BOARD}: heap {heap_size} B at {heap_start:#010x}, SysTick every {SYSTICK_RELOAD} cycles"
    );

    start_systick(&mut core.SYST);
    let mut rng = Rng(0x2545_F491);
    let mut rounds = 0;
    while rounds < MIN_ROUNDS || ticks() < MIN_TICKS {
        assert!(
            rounds < MAX_ROUNDS,
            "the SysTick fired only {} times in {rounds} rounds",
            ticks()
        );
        round(rounds, &mut rng);
        rounds += 1;
    }
    stop_systick(&mut core.SYST);

    // The handler's state, taken out so that its blocks and its inbox are freed here.
    let state = critical_section::with(|cs| TICK.replace(cs, TickState::empty()));
    hprintln!(
        "main: {rounds} rounds; SysTick: {} exceptions, {} allocations, {} frees, {} of main's strings freed",
        state.ticks,
        state.allocs,
        state.frees,
        state.freed_for_main
    );
    assert_eq!(
        state.corrupt, 0,
        "the SysTick handler found corrupted memory"
    );
    assert!(state.ticks >= MIN_TICKS, "too few SysTick exceptions");
    assert!(
        state.allocs > state.ticks,
        "the handler allocated too little"
    );
    assert!(
        state.freed_for_main + state.inbox.len() as u32 == rounds,
        "main's strings went missing"
    );
    assert!(
        state.freed_for_main > 0,
        "the handler freed none of main's strings"
    );
    drop(state);

    let stats = HEAP.stats();
    print_stats(&stats);
    assert_eq!(
        stats.allocations, stats.frees,
        "allocations and frees differ"
    );
    assert_eq!(stats.bytes_in_use, 0, "bytes still in use");
    assert_eq!(stats.errors(), 0, "refused frees");
    // Main's work makes over 800 allocations a round, counted the same by every engine (a
    // vector that grows in place, as the tiny engine's often do, counts once).
    assert!(
        stats.allocations > u64::from(rounds) * 800,
        "fewer allocations than main's work makes"
    );

    // The map shows the pages the heap keeps for reuse even with nothing allocated (one per size
    // class it has used), until `trim` gives them back (`Quarry`; the compact engine keeps them,
    // and the tiny engine has none).
    hprintln!("arena map:");
    let Ok(mut out) = hio::hstdout() else {
        panic!("no semihosting stdout");
    };
    if HEAP.write_map(&mut out).is_err() {
        panic!("could not write the arena map");
    }
    #[cfg(not(any(feature = "compact", feature = "tiny")))]
    {
        HEAP.trim();
        let trimmed = HEAP.stats();
        hprintln!(
            "after trim: pages made {} / returned {}",
            trimmed.pages_made,
            trimmed.pages_returned
        );
        assert_eq!(
            trimmed.pages_made, trimmed.pages_returned,
            "trim left pages in use"
        );
    }

    hprintln!("all checks passed");
    exit(debug::EXIT_SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Failure paths
// ---------------------------------------------------------------------------------------------

/// Ends the program (qemu exits with 0 for success, 1 for failure).
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    // Only reached if the host lets the program go on after the exit call.
    loop {
        cortex_m::asm::wfi();
    }
}

/// A failed check: prints the message and exits with 1.
#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    // A fresh handle, so that a panic while `hprintln!` holds its own cannot recurse.
    if let Ok(mut err) = hio::hstderr() {
        let _ = writeln!(err, "FAILED on {BOARD}: {info}");
    }
    exit(debug::EXIT_FAILURE)
}

/// A fault (bad memory access, invalid instruction…): prints where, and exits with 1. (cortex-m-rt
/// declares the HardFault handler `unsafe fn`; its body does nothing unsafe.)
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    if let Ok(mut err) = hio::hstderr() {
        let _ = writeln!(err, "FAILED on {BOARD}: hard fault\n{frame:?}");
    }
    exit(debug::EXIT_FAILURE)
}
