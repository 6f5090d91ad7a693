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

type TwoHeaps = Quarry<Mock, SpinLock, 2>;

fn quarry() -> TwoHeaps {
    Quarry::new(Mock::new(4 << 20), Config::HOST.with_arena_reserve(1 << 20))
}

fn owner(quarry: &TwoHeaps, ptr: NonNull<u8>) -> usize {
    match Heap::locate(&quarry.arenas, ptr) {
        Ok(Located::Small(page)) => page.owner as usize,
        _ => panic!("not a page object"),
    }
}

#[test]
fn frees_into_a_busy_heap_wait_on_the_page_and_come_back() {
    let quarry = quarry();
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
    let quarry = quarry();
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
