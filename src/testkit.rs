//! What the unit tests of the engines behind one lock (`Compact`, `Tiny`) share: a shadow model
//! of random allocations, allocating until null, a backend shared with another user, and a hook
//! that records refused frees.

extern crate std;

use crate::backend::{OsBackend, Region};
use crate::error::{FreeError, FreeErrorKind};
use crate::{StaticBuffer, Stats};
use allocator_api2::alloc::Allocator;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::vec::Vec;

/// Random draws, and the largest size drawn as a share of the test's: few and small under Miri.
pub(crate) const STEPS: u32 = if cfg!(miri) { 150 } else { 40_000 };
const SIZE_SHARE: u64 = if cfg!(miri) { 20 } else { 1 };

/// Whether every byte of `bytes` is `value`: one comparison of the whole slice, which Miri does
/// natively, where a loop over the bytes would be interpreted byte by byte.
pub(crate) fn all_bytes_are(bytes: &[u8], value: u8) -> bool {
    bytes == std::vec![value; bytes.len()].as_slice()
}

/// A small xorshift generator, so that the sequences are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A live allocation of the shadow model: where, its layout, and the byte it is filled with.
struct Live {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

impl Live {
    fn check(&self) {
        // SAFETY: the allocation is live and `layout.size()` bytes long, all written with `fill`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) };
        assert!(all_bytes_are(bytes, self.fill), "contents changed");
        assert_eq!(self.ptr.addr() % self.layout.align(), 0);
    }

    fn fill(&self) {
        // SAFETY: the allocation is live and `layout.size()` bytes long.
        unsafe { self.ptr.write_bytes(self.fill, self.layout.size()) };
    }
}

/// Random allocations (alignments up to 4 KiB), frees and reallocs of sizes up to `max` against
/// a shadow list, every allocation's bytes checked before it goes; then everything freed, and the
/// statistics `stats` gives checked to balance.
pub(crate) fn shadow<A: GlobalAlloc>(a: &A, stats: impl Fn() -> Stats, max: u64, seed: u64) {
    let max = max / SIZE_SHARE;
    let mut rng = Rng(seed);
    let mut live: Vec<Live> = Vec::new();
    for step in 0..STEPS {
        let fill = step as u8;
        let draw = if live.len() > 300 { 5 } else { rng.below(10) };
        match draw {
            0..=4 => {
                let bound = [64, 1024, max][rng.below(3) as usize];
                let size = 1 + rng.below(bound) as usize;
                let layout = Layout::from_size_align(size, 1 << rng.below(13)).unwrap();
                // SAFETY: a valid, non-zero layout.
                let ptr = unsafe { a.alloc(layout) };
                assert!(!ptr.is_null(), "{layout:?}");
                let new = Live { ptr, layout, fill };
                new.fill();
                live.push(new);
            }
            5..=7 if !live.is_empty() => {
                let old = live.swap_remove(rng.below(live.len() as u64) as usize);
                old.check();
                // SAFETY: live, with this layout.
                unsafe { a.dealloc(old.ptr, old.layout) };
            }
            _ if !live.is_empty() => {
                let index = rng.below(live.len() as u64) as usize;
                let old = &live[index];
                old.check();
                let new_size = 1 + rng.below(max) as usize;
                // SAFETY: live, with this layout; the new size is valid at its alignment.
                let ptr = unsafe { a.realloc(old.ptr, old.layout, new_size) };
                assert!(!ptr.is_null());
                let kept = old.layout.size().min(new_size);
                // SAFETY: the new allocation holds at least `kept` bytes of the old contents.
                let bytes = unsafe { std::slice::from_raw_parts(ptr, kept) };
                assert!(all_bytes_are(bytes, old.fill));
                let layout = Layout::from_size_align(new_size, old.layout.align()).unwrap();
                live[index] = Live { ptr, layout, fill };
                live[index].fill();
            }
            _ => {}
        }
    }
    for old in live.drain(..) {
        old.check();
        // SAFETY: live, with this layout.
        unsafe { a.dealloc(old.ptr, old.layout) };
    }
    let stats = stats();
    assert_eq!(stats.bytes_in_use, 0);
    assert_eq!(stats.allocations, stats.frees);
    assert_eq!(stats.errors(), 0);
}

/// Allocations of `layout` until the allocator has no room.
pub(crate) fn until_null<A: GlobalAlloc>(a: &A, layout: Layout) -> Vec<*mut u8> {
    // SAFETY: a valid, non-zero layout.
    core::iter::from_fn(|| ptr::NonNull::new(unsafe { a.alloc(layout) }).map(|p| p.as_ptr()))
        .collect()
}

/// Refused frees, as [`record`] saw them, with the thread that made each: a test runs on a
/// thread of its own, so it sees its own.
static REFUSED: Mutex<Vec<(ThreadId, FreeErrorKind)>> = Mutex::new(Vec::new());

/// An error hook: notes each refused free's kind for [`recorded`].
pub(crate) fn record(error: &FreeError) {
    REFUSED
        .lock()
        .unwrap()
        .push((std::thread::current().id(), error.kind));
}

/// The kinds [`record`] saw on this thread, in order.
pub(crate) fn recorded() -> Vec<FreeErrorKind> {
    let me = std::thread::current().id();
    REFUSED
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, _)| *thread == me)
        .map(|&(_, kind)| kind)
        .collect()
}

/// A break pointer that someone else also uses: before every region it hands out, it takes
/// 4 KiB for another user. Smaller under Miri, where every byte is checked slowly.
pub(crate) struct Shared(
    pub(crate)  StaticBuffer<
        {
            if cfg!(miri) {
                128 << 10
            } else {
                1 << 20
            }
        },
    >,
);

// SAFETY: forwards to the static buffer; the bytes taken for the other user are never handed out.
unsafe impl OsBackend for Shared {
    fn page_size(&self) -> usize {
        self.0.page_size()
    }

    fn alloc(&self, size: usize, align: usize, commit: bool) -> Option<Region> {
        self.0.alloc(4096, 1, commit)?;
        self.0.alloc(size, align, commit)
    }

    fn grows_in_place(&self) -> bool {
        true
    }
}

/// Sizes and alignments past a 4 KiB block: a small object aligned to two blocks, to 64 KiB and to
/// 256 KiB, and a 40 KB one aligned to four blocks.
pub(crate) const LARGE_ALIGNMENTS: [(usize, usize); 4] = [
    (8, 8192),
    (100, 64 << 10),
    (40_000, 16 << 10),
    (5, 256 << 10),
];

/// Allocations of each `(size, align)` of `cases` from `a`, each checked for its alignment and
/// freed at once.
pub(crate) fn aligned<A: GlobalAlloc>(a: &A, cases: &[(usize, usize)]) {
    for &(size, align) in cases {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: valid layout; freed at once.
        unsafe {
            let ptr = a.alloc(layout);
            assert!(!ptr.is_null() && ptr.addr() % align == 0, "{layout:?}");
            a.dealloc(ptr, layout);
        }
    }
}

/// `allocator_api2::Allocator` over `a`: a vector of `n` numbers (a tenth of them under Miri,
/// where every byte is checked slowly) grows and keeps them; a 40 KB allocation grown to a 64 KiB
/// alignment moves there with its bytes; shrunk to size 0, it is given back.
pub(crate) fn as_an_allocator<A: Sync>(a: &'static A, n: u32)
where
    &'static A: Allocator,
{
    let n = if cfg!(miri) { n / 10 } else { n };
    let mut v = allocator_api2::vec::Vec::new_in(a);
    v.extend(0..n);
    assert!(v.iter().copied().eq(0..n));
    drop(v);
    let (at8, at64k) = (
        Layout::from_size_align(40_000, 8).unwrap(),
        Layout::from_size_align(50_000, 64 << 10).unwrap(),
    );
    let p = a.allocate(at8).unwrap().cast::<u8>();
    // SAFETY: `p` is live with the layouts given, in turn.
    unsafe {
        p.as_ptr().write_bytes(3, at8.size());
        let q = a.grow(p, at8, at64k).unwrap().cast::<u8>();
        assert_eq!(q.addr().get() % (64 << 10), 0);
        assert_eq!(*q.as_ptr().add(39_999), 3);
        let r = a
            .shrink(q, at64k, Layout::from_size_align(0, 8).unwrap())
            .unwrap();
        assert_eq!(r.len(), 0);
    }
}

/// Allocations of `layout` from `a` until it has no room, each filled with `0xA5`.
pub(crate) fn filled_until_null<A: GlobalAlloc>(a: &A, layout: Layout) -> Vec<*mut u8> {
    let held = until_null(a, layout);
    for &ptr in &held {
        // SAFETY: a live allocation of `layout.size()` bytes.
        unsafe { ptr.write_bytes(0xA5, layout.size()) };
    }
    held
}

/// Checks that each of `held` (from [`filled_until_null`]) still holds its `0xA5`s, and frees it.
pub(crate) fn checked_and_freed<A: GlobalAlloc>(a: &A, held: Vec<*mut u8>, layout: Layout) {
    for ptr in held {
        // SAFETY: a live allocation of `layout`, filled by `filled_until_null`; freed once.
        unsafe {
            assert!(std::slice::from_raw_parts(ptr, layout.size())
                .iter()
                .all(|&b| b == 0xA5));
            a.dealloc(ptr, layout);
        }
    }
}
