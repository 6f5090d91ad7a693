//! Giving memory back (issue "giving memory back", point 3): a process allocates 256 MiB in mixed
//! sizes, touching every page, frees it all, and its resident set (`/proc/self/statm`) is read
//! right after the frees, after waiting past quarry's purge delay, and after each allocator's
//! explicit collection. One child process per allocator, so that each resident set is its own.
//!
//! `cargo run --profile bench-release -p quarry-bench -- rss [--out FILE.md]`

use crate::rng::Rng;
use core::alloc::{GlobalAlloc, Layout};
use quarry_alloc::{Config, Mmap, OsBackend, Quarry};
use std::fmt::Write as _;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const MIB: usize = 1 << 20;
/// Bytes allocated before everything is freed.
const TOTAL: usize = 256 * MIB;
/// Address space the fixed-heap allocators (talc, rlsf) get: reserved, not touched.
const REGION: usize = 1 << 30;

/// An allocator as this benchmark drives it: its allocation calls, and what it offers to give
/// memory back (nothing, for most).
trait Subject {
    fn heap(&self) -> &dyn GlobalAlloc;
    /// A program going on after the purge delay: what happens without an explicit call.
    fn after_delay(&self) {}
    /// The allocator's explicit way to give memory back, if it has one.
    fn collect(&self) -> Option<&'static str> {
        None
    }
}

/// The allocators compared, in table order: name, and how each is set up.
const SUBJECTS: &[(&str, &str)] = &[
    (
        "quarry",
        "`Quarry<Mmap>`, `Config::HOST` (purge 10 ms × 10 after a free); after the delay: \
         `collect(false)`, which purges only what is due, as the next free would; collect: \
         `collect(true)`",
    ),
    (
        "talc",
        "`talc::Talc` over a 1 GiB `mmap` region (untouched until used), behind a `spin::Mutex`",
    ),
    (
        "rlsf",
        "`rlsf::Tlsf` over a 1 GiB `mmap` region, behind a `spin::Mutex`",
    ),
    (
        "dlmalloc",
        "`dlmalloc::Dlmalloc::new()` (memory from `mmap`; it unmaps large chunks and trims the top \
         itself); collect: `trim(0)`",
    ),
    (
        "system",
        "`std::alloc::System` (glibc malloc); collect: `malloc_trim(0)`",
    ),
];

/// The figures of one child, in bytes.
struct Figures {
    before: usize,
    full: usize,
    freed: usize,
    delayed: usize,
    collected: Option<usize>,
}

pub fn command(args: &[String]) {
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = it.next().cloned(),
            _ => crate::usage(),
        }
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut rows = Vec::new();
    for &(name, _) in SUBJECTS {
        let output = Command::new(&exe)
            .args(["rss-one", name])
            .output()
            .expect("a child process");
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let numbers: Vec<usize> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let figures = Figures {
            before: numbers[0],
            full: numbers[1],
            freed: numbers[2],
            delayed: numbers[3],
            collected: numbers.get(4).copied(),
        };
        println!(
            "{name:10} resident: {} MiB before, {} MiB full, {} MiB after the frees, {} MiB after \
             the delay{}",
            figures.before / MIB,
            figures.full / MIB,
            figures.freed / MIB,
            figures.delayed / MIB,
            figures.collected.map_or(String::new(), |c| format!(
                ", {} MiB after collect",
                c / MIB
            ))
        );
        rows.push((name, figures));
    }
    let report = render(&rows);
    if let Some(path) = out {
        std::fs::write(&path, &report).expect("the report written");
        println!("report written to {path}");
    } else {
        print!("{report}");
    }
}

/// The share of what was allocated that the process gave back, as a percentage.
fn returned(f: &Figures, now: usize) -> String {
    let allocated = f.full.saturating_sub(f.before);
    let back = f.full.saturating_sub(now);
    format!("{:.0}%", 100.0 * back as f64 / allocated as f64)
}

fn render(rows: &[(&str, Figures)]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Resident memory (`/proc/self/statm`), MiB, of one process per allocator that allocates \
         {} MiB in mixed sizes (half of the objects 16 B–1 KiB, 40% 1–64 KiB, 10% 64 KiB–1 MiB, \
         seeded), writes every page, and frees everything in random order. \"Returned\" is the \
         part of what the allocations made resident that the process gave back.\n",
        TOTAL / MIB
    );
    let _ = writeln!(
        md,
        "| allocator | before | full | after the frees | after the delay (150 ms) | after collect \
         | returned at the delay | returned at collect |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (name, f) in rows {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            f.before / MIB,
            f.full / MIB,
            f.freed / MIB,
            f.delayed / MIB,
            f.collected.map_or("–".into(), |c| (c / MIB).to_string()),
            returned(f, f.delayed),
            f.collected.map_or("–".into(), |c| returned(f, c)),
        );
    }
    let _ = writeln!(md, "\nSet-ups:\n");
    for (name, note) in SUBJECTS {
        let _ = writeln!(md, "- **{name}**: {note}");
    }
    md
}

// ---------------------------------------------------------------------------------------------
// The child.

/// Runs the measurement for one allocator and prints its figures on one line.
pub fn one(args: &[String]) {
    let name = args
        .first()
        .map(String::as_str)
        .unwrap_or_else(|| crate::usage());
    let subject: Box<dyn Subject> = match name {
        "quarry" => Box::new(QuarrySubject(Quarry::new(Mmap::new(), Config::HOST))),
        "talc" => Box::new(TalcSubject::new()),
        "rlsf" => Box::new(RlsfSubject::new()),
        "dlmalloc" => Box::new(DlmallocSubject(Mutex::new(dlmalloc::Dlmalloc::new()))),
        "system" => Box::new(SystemSubject),
        _ => crate::usage(),
    };
    let mut rng = Rng::for_stream(&[0x755, TOTAL as u64]);
    // The list of allocations comes from the system allocator before the first reading.
    let mut live: Vec<(*mut u8, Layout)> = Vec::with_capacity(64 * 1024);
    let before = resident();
    let heap = subject.heap();
    let mut held = 0;
    while held < TOTAL {
        let size = match rng.range(0, 10) {
            0..=4 => rng.range(16, 1024),
            5..=8 => rng.range(1024, 64 * 1024),
            _ => rng.range(64 * 1024, MIB),
        };
        let layout = Layout::from_size_align(size, 8).expect("a valid layout");
        // SAFETY: a valid, non-zero layout.
        let p = unsafe { heap.alloc(layout) };
        assert!(!p.is_null(), "{name}: out of memory");
        for offset in (0..size).step_by(4096).chain([size - 1]) {
            // SAFETY: inside the allocation.
            unsafe { p.add(offset).write_volatile(1) };
        }
        live.push((p, layout));
        held += size;
    }
    let full = resident();
    for i in (1..live.len()).rev() {
        live.swap(i, rng.range(0, i + 1));
    }
    for (p, layout) in live.drain(..) {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { heap.dealloc(p, layout) };
    }
    let freed = resident();
    std::thread::sleep(Duration::from_millis(150));
    subject.after_delay();
    let delayed = resident();
    let collected = subject.collect().map(|_| resident());
    print!("{before} {full} {freed} {delayed}");
    if let Some(c) = collected {
        print!(" {c}");
    }
    println!();
}

/// Resident bytes of this process.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * Mmap::new().page_size()
}

struct QuarrySubject(Quarry<Mmap>);

impl Subject for QuarrySubject {
    fn heap(&self) -> &dyn GlobalAlloc {
        &self.0
    }
    fn after_delay(&self) {
        self.0.arenas().collect(false);
    }
    fn collect(&self) -> Option<&'static str> {
        self.0.collect(true);
        Some("collect(true)")
    }
}

/// A 1 GiB region from `mmap`, readable and writable, not touched: pages become resident as an
/// allocator writes them.
fn untouched_region() -> (*mut u8, usize) {
    let region = Mmap::new()
        .alloc(REGION, 4096, true)
        .expect("1 GiB of address space");
    (region.ptr.as_ptr(), region.size)
}

struct TalcSubject(talc::TalcLock<spin::Mutex<()>, talc::source::Manual>);

impl TalcSubject {
    fn new() -> Self {
        let talc = talc::TalcLock::new(talc::source::Manual);
        let (ptr, len) = untouched_region();
        // SAFETY: the region is fresh and this allocator's alone, for the life of the process.
        unsafe { talc.lock().claim(ptr, len) }.expect("talc claims the region");
        TalcSubject(talc)
    }
}

impl Subject for TalcSubject {
    fn heap(&self) -> &dyn GlobalAlloc {
        &self.0
    }
}

struct RlsfSubject(Box<dyn GlobalAlloc + Sync>);

impl RlsfSubject {
    fn new() -> Self {
        let (ptr, len) = untouched_region();
        // SAFETY: the region is fresh, page-aligned, and this allocator's alone.
        RlsfSubject(unsafe { crate::peers::rlsf(ptr, len) })
    }
}

impl Subject for RlsfSubject {
    fn heap(&self) -> &dyn GlobalAlloc {
        &*self.0
    }
}

struct DlmallocSubject(Mutex<dlmalloc::Dlmalloc>);

// SAFETY: forwards to dlmalloc under the mutex, which returns blocks of the requested layout or null.
unsafe impl GlobalAlloc for DlmallocSubject {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.lock().unwrap().malloc(layout.size(), layout.align()) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.0
                .lock()
                .unwrap()
                .free(ptr, layout.size(), layout.align())
        }
    }
}

impl Subject for DlmallocSubject {
    fn heap(&self) -> &dyn GlobalAlloc {
        self
    }
    fn collect(&self) -> Option<&'static str> {
        // SAFETY: trimming gives back only free memory at the top of dlmalloc's segments.
        unsafe { self.0.lock().unwrap().trim(0) };
        Some("trim(0)")
    }
}

struct SystemSubject;

impl Subject for SystemSubject {
    fn heap(&self) -> &dyn GlobalAlloc {
        &std::alloc::System
    }
    fn collect(&self) -> Option<&'static str> {
        extern "C" {
            /// glibc: gives free memory back to the OS.
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: a glibc call without pointers of ours.
        unsafe { malloc_trim(0) };
        Some("malloc_trim(0)")
    }
}
