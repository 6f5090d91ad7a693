//! The remote-free path: an object whose heap is busy goes onto its page's remote list and back to
//! the heap when the heap next needs memory (or is trimmed). Also under Miri, with threads.

extern crate std;
use std::vec::Vec;

use super::Quarry;
use crate::backend::Mock;
use crate::heap::{Heap, Located};
use crate::sync::SpinLock;
use crate::Config;
use core::ptr::NonNull;

/// Two heaps: which one a thread takes depends on its stack address (under Miri, on the call), so
/// the tests that hold a heap on purpose use a single one.
type TwoHeaps = Quarry<Mock, SpinLock, 2>;
type OneHeap = Quarry<Mock, SpinLock, 1>;

const CONFIG: Config = Config::HOST.with_arena_reserve(1 << 20);

fn quarry() -> TwoHeaps {
    Quarry::new(Mock::new(4 << 20), CONFIG)
}

fn one_heap() -> OneHeap {
    Quarry::new(Mock::new(4 << 20), CONFIG)
}

fn owner(quarry: &OneHeap, ptr: NonNull<u8>) -> usize {
    match Heap::locate(&quarry.arenas, ptr) {
        // SAFETY: the caller's `ptr` is a live object, so its page lives.
        Ok(Located::Small { page, .. }) => unsafe { page.as_ref() }.owner as usize,
        _ => panic!("not a page object"),
    }
}

#[test]
fn frees_into_a_busy_heap_wait_on_the_page_and_come_back() {
    let quarry = one_heap();
    let objects: Vec<NonNull<u8>> = (0..10)
        .map(|_| quarry.allocate(48, 8).expect("memory").ptr)
        .collect();
    let heap = owner(&quarry, objects[0]);
    {
        let _busy = quarry.try_heap(heap).expect("nobody holds it");
        for &object in &objects {
            // SAFETY: each object is live and given up here, once.
            unsafe { quarry.deallocate(object, 48) };
        }
        // A second free of an object on the remote list is refused without the heap too.
        // SAFETY: refused, memory untouched.
        unsafe { quarry.deallocate(objects[3], 48) };
    }
    let stats = quarry.stats();
    assert_eq!(stats.double_frees, 1);
    assert_eq!(stats.frees, 0, "not taken back yet");
    quarry.trim();
    let stats = quarry.stats();
    assert_eq!(stats.frees, 10);
    assert_eq!(stats.bytes_in_use, 0);
    assert_eq!(quarry.arenas().stats().blocks_in_use, 0);
}

#[test]
fn the_owner_takes_remote_frees_back_before_making_a_page() {
    let quarry = one_heap();
    // Fill the first page of the class, so that the next allocation needs another page.
    let mut objects = Vec::new();
    loop {
        let object = quarry.allocate(1024, 8).expect("memory").ptr;
        objects.push(object);
        if quarry.stats().pages_made == 2 {
            break;
        }
    }
    let last = objects.pop().expect("one object on the second page");
    let heap = owner(&quarry, objects[0]);
    {
        let _busy = quarry.try_heap(heap).expect("nobody holds it");
        for &object in &objects {
            // SAFETY: live, given up once.
            unsafe { quarry.deallocate(object, 1024) };
        }
    }
    // SAFETY: live, given up once.
    unsafe { quarry.deallocate(last, 1024) };
    let again: Vec<NonNull<u8>> = (0..objects.len())
        .map(|_| quarry.allocate(1024, 8).expect("memory").ptr)
        .collect();
    assert_eq!(
        quarry.stats().pages_made,
        2,
        "the remote frees were used, no page was made"
    );
    for object in again {
        // SAFETY: live, given up once.
        unsafe { quarry.deallocate(object, 1024) };
    }
    assert_eq!(quarry.stats().errors(), 0);
}

#[test]
fn threads_free_each_others_objects() {
    let quarry = quarry();
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    std::thread::scope(|s| {
        let (to_b, from_a) = std::sync::mpsc::channel::<usize>();
        let quarry = &quarry;
        s.spawn(move || {
            for i in 0..rounds {
                let a = quarry.allocate(16 + i % 200, 8).expect("memory");
                // SAFETY: the object is ours, at least 16 bytes.
                unsafe { a.ptr.as_ptr().write_bytes(0xAB, 16) };
                to_b.send(a.ptr.as_ptr() as usize).expect("b is alive");
            }
        });
        s.spawn(move || {
            let mut got = 0;
            while let Ok(addr) = from_a.recv() {
                // The address came over a channel: find the pointer again with the arena's
                // provenance, as a program would from its own bookkeeping.
                let ptr = quarry
                    .arenas()
                    .find(addr)
                    .map(|arena| {
                        arena
                            .block_ptr(0)
                            .as_ptr()
                            .wrapping_add(addr - arena.start().addr().get())
                    })
                    .and_then(NonNull::new)
                    .expect("an arena address");
                // SAFETY: thread A gave the object up by sending it.
                unsafe {
                    assert_eq!(ptr.as_ptr().read(), 0xAB);
                    quarry.deallocate(ptr, 16);
                }
                got += 1;
            }
            assert_eq!(got, rounds);
        });
    });
    quarry.trim();
    let stats = quarry.stats();
    assert_eq!(stats.errors(), 0);
    assert_eq!(stats.frees, rounds as u64);
    assert_eq!(stats.bytes_in_use, 0);
}

#[test]
fn an_arena_heap_keeps_to_its_arena() {
    use allocator_api2::vec::Vec as ApiVec;
    let quarry = quarry();
    let heap = quarry.arena_heap(64 * 1024).expect("room for the arena");
    let (start, size) = quarry.arenas().area(heap.arena()).expect("the arena");
    let inside = |p: *const u8| {
        let offset = (p as usize).wrapping_sub(start.as_ptr() as usize);
        offset < size
    };
    let mut v: ApiVec<u64, _> = ApiVec::new_in(&heap);
    v.extend(0..1000u64);
    assert!(
        inside(v.as_ptr().cast()),
        "the heap's memory is in its arena"
    );
    let big: ApiVec<u8, _> = ApiVec::with_capacity_in(40 * 1024, &heap);
    assert!(inside(big.as_ptr()), "large objects too");
    let shared = quarry.allocate(64, 8).expect("memory").ptr;
    assert!(
        !inside(shared.as_ptr()),
        "shared allocations never land in an exclusive arena"
    );
    // Freeing the heap's memory through the shared heaps is refused; nothing changes.
    // SAFETY: refused without touching memory.
    unsafe { quarry.deallocate(NonNull::new(v.as_mut_ptr().cast()).unwrap(), 8000) };
    assert_eq!(quarry.stats().not_ours, 1);
    // The arena is the limit: no spill into other arenas.
    let mut too_big: ApiVec<u8, _> = ApiVec::new_in(&heap);
    assert!(too_big.try_reserve(128 * 1024).is_err());
    drop(too_big);
    assert_eq!(v.iter().sum::<u64>(), 499_500);
    drop(v);
    drop(big);
    assert_eq!(heap.bytes_in_use(), 0);
    let id = heap.arena();
    drop(heap);
    assert_eq!(
        quarry.arenas().arena(id).map(|a| a.blocks_in_use()),
        Some(0)
    );
    // SAFETY: live, given up once.
    unsafe { quarry.deallocate(shared, 64) };
}

#[test]
fn bad_frees_through_global_alloc_are_refused_whichever_path_sees_them() {
    use core::alloc::{GlobalAlloc, Layout};
    let quarry = one_heap();
    let layout = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: a valid layout; every pointer below is freed at most once unless said otherwise.
    unsafe {
        let objects: Vec<*mut u8> = (0..4).map(|_| quarry.alloc(layout)).collect();
        assert!(objects.iter().all(|p| !p.is_null()));
        // The common free, then the same object again: refused, counted once.
        quarry.dealloc(objects[1], layout);
        quarry.dealloc(objects[1], layout);
        // An interior pointer: refused.
        quarry.dealloc(objects[2].add(8), layout);
        let stats = quarry.stats();
        assert_eq!((stats.double_frees, stats.misaligned), (1, 1));
        assert_eq!(stats.frees, 1);
        // The heap is intact: the freed object comes back, the others are still live.
        let again = quarry.alloc(layout);
        assert_eq!(again, objects[1]);
        for p in [objects[0], objects[2], objects[3], again] {
            quarry.dealloc(p, layout);
        }
    }
    let stats = quarry.stats();
    assert_eq!(
        (stats.allocations, stats.frees, stats.bytes_in_use),
        (5, 5, 0)
    );
}

#[test]
fn alignments_past_the_block_size_are_honoured_for_small_sizes_too() {
    // 4 KiB blocks: a page starts on a block boundary only, so an object aligned to more than a
    // block must not come from a page even when its size would fit one.
    let quarry = one_heap();
    for align in [8192, 16384, 65536] {
        for size in [1, 100, 4096, 8192, 20_000] {
            let a = quarry.allocate(size, align).expect("memory");
            assert_eq!(a.ptr.addr().get() % align, 0, "size {size} align {align}");
            // SAFETY: ours, `size` bytes.
            unsafe { a.ptr.as_ptr().write_bytes(0x3C, size) };
            // SAFETY: ours, not used after this.
            unsafe { quarry.deallocate(a.ptr, size) };
        }
    }
    assert_eq!(quarry.stats().errors(), 0);
}

/// A `small_limit` of 0 makes every allocation a block run, however small.
#[test]
fn a_small_limit_of_zero_serves_every_size_as_a_block_run() {
    let quarry: OneHeap = Quarry::new(Mock::new(4 << 20), CONFIG.with_small_limit(0));
    let object = quarry.allocate(8, 8).unwrap().ptr;
    assert!(matches!(
        Heap::locate(&quarry.arenas, object),
        Ok(Located::Large { blocks: 1, .. })
    ));
    assert_eq!(quarry.stats().bytes_in_use, CONFIG.block_size);
    // SAFETY: allocated above, not used any more.
    unsafe { quarry.deallocate_in(super::Choice::Shared, object, 8) };
    assert_eq!(
        (quarry.stats().bytes_in_use, quarry.stats().errors()),
        (0, 0)
    );
}
