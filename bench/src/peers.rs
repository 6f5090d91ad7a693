//! The allocators that `quarry-bench peers` compares, each used through `core::alloc::GlobalAlloc`
//! behind the lock it would really use, and the fixed heaps they run on.
//!
//! Adding an allocator is one line in [`PEERS`]: a name, a note for the report, and a constructor.
//! A fixed-heap allocator's constructor takes the region as `(ptr, len)` and returns a fresh
//! allocator that owns all of it; the workloads call it again whenever they want an empty heap (every
//! trial, every efficiency round), over the same pre-touched region.

use core::alloc::{GlobalAlloc, Layout};
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

/// An allocator instance as the workloads use it.
pub type Shared = Box<dyn GlobalAlloc + Sync>;

/// Builds an allocator over the region `[ptr, ptr + len)`.
///
/// # Safety
///
/// The region must be valid for reads and writes, aligned to 4 KiB, and used by nothing else while
/// the returned allocator (or anything it handed out) lives.
pub type FixedCtor = unsafe fn(ptr: *mut u8, len: usize) -> Shared;

/// Where an allocator gets its memory.
#[derive(Clone, Copy)]
pub enum Source {
    /// From a fixed region handed to its constructor: runs every workload.
    Fixed(FixedCtor),
    /// From the operating system, by itself: no fixed heap, so no heap-efficiency figure.
    Own(fn() -> Shared),
}

/// One row of the table of allocators.
#[derive(Clone, Copy)]
pub struct Peer {
    pub name: &'static str,
    /// How it is built and locked, for the report's method section.
    pub note: &'static str,
    pub source: Source,
}

impl Peer {
    pub const fn fixed(name: &'static str, note: &'static str, ctor: FixedCtor) -> Peer {
        Peer {
            name,
            note,
            source: Source::Fixed(ctor),
        }
    }

    pub const fn own(name: &'static str, note: &'static str, ctor: fn() -> Shared) -> Peer {
        Peer {
            name,
            note,
            source: Source::Own(ctor),
        }
    }

    pub fn is_fixed(&self) -> bool {
        matches!(self.source, Source::Fixed(_))
    }

    /// A fresh instance. A fixed-heap allocator is built over `region` (required for it), which the
    /// instance borrows for as long as it lives; the others ignore the region.
    pub fn build<'r>(&self, region: Option<&'r mut Region>) -> Built<'r> {
        let alloc = match self.source {
            Source::Fixed(ctor) => {
                let region = region.unwrap_or_else(|| panic!("{} needs a fixed heap", self.name));
                // SAFETY: the region is valid, page-aligned and mutably borrowed by the instance
                // for its whole life, so nothing else uses it meanwhile.
                unsafe { ctor(region.ptr(), region.len()) }
            }
            Source::Own(ctor) => ctor(),
        };
        Built {
            alloc,
            _region: PhantomData,
        }
    }
}

/// The name of the peer every ratio is taken against.
pub const BASELINE: &str = "talc";

/// The allocators under test, in report order. One line each.
pub const PEERS: &[Peer] = &[
    Peer::fixed("quarry", "`quarry_alloc::Quarry<StaticBuffer<0>, SpinLock>` (4 heaps, each behind a spin lock), the region handed over with `Arenas::manage`; `Config::HOST` (4 KiB blocks), `Config::EMBEDDED` (256-byte blocks) for the 64 KiB heap", quarry),
    Peer::fixed("talc", "`talc::TalcLock<spin::Mutex<()>, Manual>` (talc 5's lock wrapper, the successor of `Talck`), `claim` over the region", talc),
    Peer::fixed("rlsf", "`rlsf::Tlsf<usize, usize, 64, 64>` (GlobalTlsf's parameters; GlobalTlsf itself only takes memory from the OS) behind a `spin::Mutex`, `insert_free_block_ptr` over the region", rlsf),
    Peer::fixed("linked_list_allocator", "`linked_list_allocator::LockedHeap` (its `spinning_top` spinlock), `init` over the region", linked_list),
    Peer::fixed("dlmalloc", "`dlmalloc::Dlmalloc` behind a `spin::Mutex`, with a `dlmalloc::Allocator` system that hands out the region once (extern segment, never released)", dlmalloc_fixed),
    Peer::fixed("buddy_system_allocator", "`buddy_system_allocator::LockedHeap<32>` (its `spin` mutex), `init` over the region", buddy),
    Peer::fixed("embedded-alloc TLSF", "`embedded_alloc::TlsfHeap` (rlsf inside; locked by `critical-section`, whose host implementation is one global `std::sync::Mutex`)", embedded_tlsf),
    Peer::fixed("embedded-alloc LLFF", "`embedded_alloc::LlffHeap` (linked_list_allocator inside; locked by `critical-section`, host implementation)", embedded_llff),
    Peer::own("system", "`std::alloc::System` (glibc malloc)", system),
    Peer::own("mimalloc", "`mimalloc::MiMalloc` (the C mimalloc, thread-local heaps)", mimalloc),
];

/// An allocator instance that may borrow a region.
pub struct Built<'r> {
    alloc: Shared,
    _region: PhantomData<&'r mut Region>,
}

impl Deref for Built<'_> {
    type Target = dyn GlobalAlloc + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.alloc
    }
}

/// A fixed heap: allocated once from the system, aligned (2 MiB when large enough, so that the
/// kernel can back it with huge pages as it would a static heap), and pre-touched page by page so
/// that no workload pays its first-touch faults.
pub struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Region {
    pub fn new(len: usize) -> Region {
        let align = if len >= 2 << 20 { 2 << 20 } else { 4096 };
        let layout = Layout::from_size_align(len, align).expect("a valid heap layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        let region = Region { ptr, layout };
        region.touch();
        region
    }

    /// Writes and reads back one byte of every page.
    pub fn touch(&self) {
        for offset in (0..self.len()).step_by(4096) {
            // SAFETY: `offset` is inside the region, which this value owns.
            unsafe {
                let p = self.ptr.as_ptr().add(offset);
                p.write_volatile(0xa5);
                p.read_volatile();
            }
        }
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// ---------------------------------------------------------------------------------------------
// Constructors.

unsafe fn quarry(ptr: *mut u8, len: usize) -> Shared {
    use quarry_alloc::{Config, Quarry, StaticBuffer};
    let config = if len <= 1 << 20 {
        Config::EMBEDDED
    } else {
        Config::HOST
    };
    let quarry: Box<Quarry<StaticBuffer<0>>> = Box::new(Quarry::new(
        StaticBuffer::new(),
        config.with_arena_reserve(0),
    ));
    let start = NonNull::new(ptr).expect("a region");
    // SAFETY: the caller gives the whole region to this allocator; it is committed and pre-touched.
    unsafe { quarry.arenas().manage(start, len, true, false, true, false) }
        .expect("the region becomes an arena");
    quarry
}

unsafe fn talc(ptr: *mut u8, len: usize) -> Shared {
    let talc: talc::TalcLock<spin::Mutex<()>, talc::source::Manual> =
        talc::TalcLock::new(talc::source::Manual);
    // SAFETY: the region is valid and this allocator's alone (the constructor's contract).
    unsafe { talc.lock().claim(ptr, len) }.expect("talc claims the heap");
    Box::new(talc)
}

/// rlsf with the parameters its own `GlobalTlsf` uses (`FLLEN = SLLEN = usize::BITS`).
type RlsfTlsf =
    rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize }, { usize::BITS as usize }>;

struct SpinTlsf(spin::Mutex<RlsfTlsf>);

// SAFETY: the `Tlsf` (not `Send` only because it holds raw pointers into its pool) is reached only
// through the mutex, and its pool is the region this allocator owns.
unsafe impl Sync for SpinTlsf {}

// SAFETY: forwards to `Tlsf`, which returns blocks of the requested layout or `None`.
unsafe impl GlobalAlloc for SpinTlsf {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` of this allocator with this alignment.
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(ptr), layout.align())
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; `new_size` is a valid size for
        // the alignment (the `GlobalAlloc::realloc` contract).
        unsafe {
            self.0
                .lock()
                .reallocate(
                    NonNull::new_unchecked(ptr),
                    Layout::from_size_align_unchecked(new_size, layout.align()),
                )
                .map_or(ptr::null_mut(), NonNull::as_ptr)
        }
    }
}

pub unsafe fn rlsf(ptr: *mut u8, len: usize) -> Shared {
    let tlsf = Box::new(SpinTlsf(spin::Mutex::new(RlsfTlsf::new())));
    let block = NonNull::slice_from_raw_parts(NonNull::new(ptr).expect("a non-null heap"), len);
    // SAFETY: the region is valid and this allocator's alone, for as long as it lives.
    unsafe { tlsf.0.lock().insert_free_block_ptr(block) }.expect("rlsf takes the heap");
    tlsf
}

unsafe fn linked_list(ptr: *mut u8, len: usize) -> Shared {
    let heap = Box::new(linked_list_allocator::LockedHeap::empty());
    // SAFETY: the region is valid and this allocator's alone.
    unsafe { heap.lock().init(ptr, len) };
    heap
}

/// dlmalloc's "system": the fixed region, handed out once as an extern segment (flag bit 0), which
/// dlmalloc never gives back; every later request for more memory fails.
struct FixedSystem {
    base: *mut u8,
    len: usize,
    handed_out: AtomicBool,
}

// SAFETY: the region pointer is only handed to the dlmalloc instance that owns this system.
unsafe impl Send for FixedSystem {}

// SAFETY: returns the region (valid, unused by anyone else) at most once, and null afterwards;
// never claims to release, remap or zero memory.
unsafe impl dlmalloc::Allocator for FixedSystem {
    fn alloc(&self, _size: usize) -> (*mut u8, usize, u32) {
        if self.handed_out.swap(true, Ordering::Relaxed) {
            (ptr::null_mut(), 0, 0)
        } else {
            (self.base, self.len, 1)
        }
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        false
    }

    fn page_size(&self) -> usize {
        4096
    }
}

struct SpinDlmalloc(spin::Mutex<dlmalloc::Dlmalloc<FixedSystem>>);

// SAFETY: forwards to `Dlmalloc`, whose `malloc`/`free`/`realloc` take the size and alignment the
// allocation was made with, as `GlobalAlloc` provides them.
unsafe impl GlobalAlloc for SpinDlmalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a non-zero size (the `GlobalAlloc::alloc` contract).
        unsafe { self.0.lock().malloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { self.0.lock().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe {
            self.0
                .lock()
                .realloc(ptr, layout.size(), layout.align(), new_size)
        }
    }
}

unsafe fn dlmalloc_fixed(ptr: *mut u8, len: usize) -> Shared {
    Box::new(SpinDlmalloc(spin::Mutex::new(
        dlmalloc::Dlmalloc::new_with_allocator(FixedSystem {
            base: ptr,
            len,
            handed_out: AtomicBool::new(false),
        }),
    )))
}

unsafe fn buddy(ptr: *mut u8, len: usize) -> Shared {
    let heap = Box::new(buddy_system_allocator::LockedHeap::<32>::new());
    // SAFETY: the region is valid and this allocator's alone.
    unsafe { heap.lock().init(ptr as usize, len) };
    heap
}

unsafe fn embedded_tlsf(ptr: *mut u8, len: usize) -> Shared {
    let heap = Box::new(embedded_alloc::TlsfHeap::empty());
    // SAFETY: the region is valid and this allocator's alone.
    unsafe { heap.init(ptr as usize, len) };
    heap
}

unsafe fn embedded_llff(ptr: *mut u8, len: usize) -> Shared {
    let heap = Box::new(embedded_alloc::LlffHeap::empty());
    // SAFETY: the region is valid and this allocator's alone.
    unsafe { heap.init(ptr as usize, len) };
    heap
}

fn system() -> Shared {
    Box::new(std::alloc::System)
}

fn mimalloc() -> Shared {
    Box::new(mimalloc::MiMalloc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every peer hands out usable, distinct memory, reallocates keeping the contents, and (on a
    /// fixed heap) runs out rather than overflowing the region.
    #[test]
    fn every_peer_allocates_reallocates_and_frees() {
        for peer in PEERS {
            let mut region = Region::new(1 << 20);
            let (lo, hi) = (region.ptr() as usize, region.ptr() as usize + region.len());
            let fixed = peer.is_fixed();
            let alloc = peer.build(Some(&mut region));
            let layout = Layout::from_size_align(100, 16).unwrap();
            let mut held = Vec::new();
            for i in 0..64u8 {
                // SAFETY: non-zero size.
                let p = unsafe { alloc.alloc(layout) };
                assert!(!p.is_null(), "{}", peer.name);
                assert_eq!(p as usize % 16, 0, "{}", peer.name);
                if fixed {
                    assert!((lo..hi).contains(&(p as usize)), "{}", peer.name);
                }
                // SAFETY: 100 bytes were just allocated.
                unsafe { p.write_bytes(i, 100) };
                held.push((p, i));
            }
            for (p, i) in &mut held {
                // SAFETY: `p` came from `alloc` with `layout`.
                let q = unsafe { alloc.realloc(*p, layout, 3000) };
                assert!(!q.is_null(), "{}", peer.name);
                // SAFETY: the first 100 bytes were kept by realloc.
                assert!(unsafe { core::slice::from_raw_parts(q, 100) }
                    .iter()
                    .all(|b| b == i));
                *p = q;
            }
            let big = Layout::from_size_align(3000, 16).unwrap();
            for (p, _) in held {
                // SAFETY: `p` came from `realloc` to 3000 bytes with alignment 16.
                unsafe { alloc.dealloc(p, big) };
            }
            if fixed {
                let huge = Layout::from_size_align(2 << 20, 8).unwrap();
                // SAFETY: non-zero size.
                assert!(unsafe { alloc.alloc(huge) }.is_null(), "{}", peer.name);
            }
        }
    }
}
