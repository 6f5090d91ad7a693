//! The registry end to end inside the crate, so that Miri checks every pointer it derives: a static
//! buffer and the mock, reserve, manage, alloc with alignments, write the memory, free, destroy.

extern crate std;
use std::string::String;
use std::vec::Vec;

use super::Arenas;
use crate::backend::StaticBuffer;
use crate::{ArenaId, Config, FreeErrorKind};

const CONFIG: Config = Config::EMBEDDED
    .with_block_size(256)
    .with_arena_reserve(8 * 1024);

#[test]
fn static_buffer_registry_hands_out_usable_disjoint_memory() {
    let arenas: Arenas<StaticBuffer<{ 16 * 1024 }>, 8, 1024> =
        Arenas::new(StaticBuffer::new(), CONFIG);
    let mut held = Vec::new();
    for (i, (size, align)) in [(1, 1), (256, 8), (700, 512), (300, 1024), (2000, 16)]
        .into_iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        let Some(a) = arenas.alloc(size, align, true, ArenaId::ANY) else {
            break;
        };
        assert_eq!(a.ptr.addr().get() % align, 0);
        assert!(a.memid.initially_committed && a.memid.initially_zero && a.memid.pinned);
        // SAFETY: the allocation is ours and committed.
        unsafe { a.ptr.as_ptr().write_bytes(i as u8, a.size) };
        held.push((a, i as u8));
    }
    assert!(held.len() >= 6);
    for (a, fill) in &held {
        // SAFETY: still ours; nobody else wrote to it.
        let bytes = unsafe { core::slice::from_raw_parts(a.ptr.as_ptr(), a.size) };
        assert!(bytes.iter().all(|b| b == fill), "allocations overlap");
    }
    let mut map = String::new();
    arenas.write_map(&mut map).unwrap();
    assert!(map.contains("pinned") && map.contains('x'));
    for (a, _) in &held {
        // SAFETY: not used any more.
        unsafe { arenas.free(a) }.unwrap();
    }
    // SAFETY: freed already: refused.
    let again = unsafe { arenas.free(&held[0].0) };
    assert_eq!(again.unwrap_err().kind, FreeErrorKind::DoubleFree);
    assert_eq!(arenas.stats().blocks_in_use, 0);
    // A static buffer cannot take memory back: the arenas stay, emptied, and serve again.
    let count = arenas.arena_count();
    // SAFETY: nothing is used any more.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.arena_count(), count);
    let a = arenas.alloc(256, 8, true, ArenaId::ANY).unwrap();
    assert!(!a.memid.initially_zero, "memory handed out before is dirty");
}

#[cfg(feature = "mock")]
#[test]
fn mock_registry_commits_on_demand_and_gives_memory_back() {
    use crate::backend::Mock;
    let arenas: Arenas<Mock> = Arenas::new(Mock::new(64 * 1024), CONFIG);
    let id = arenas.reserve(4096, false, false).unwrap();
    let a = arenas.alloc(1000, 8, true, id).unwrap();
    assert!(arenas.backend().is_committed(a.ptr, a.size));
    // SAFETY: committed and ours.
    unsafe { a.ptr.as_ptr().write_bytes(0xEE, a.size) };
    // SAFETY: not used any more.
    unsafe { arenas.free(&a) }.unwrap();
    let mut buffer = std::vec![0u8; 2048];
    let start = core::ptr::NonNull::new(buffer.as_mut_ptr()).unwrap();
    // SAFETY: the buffer outlives the registry's use of it (destroyed below).
    let managed = unsafe { arenas.manage(start, 2048, true, true, true, true) }.unwrap();
    let m = arenas.alloc(512, 8, true, managed).unwrap();
    // SAFETY: ours.
    unsafe { m.ptr.as_ptr().write_bytes(1, m.size) };
    assert!(arenas.contains(m.ptr));
    // SAFETY: nothing is used any more.
    unsafe { arenas.destroy_all() };
    assert_eq!(arenas.backend().live_regions(), 0);
    assert_eq!(arenas.backend().verify_poison(), Ok(()));
    drop(buffer);
}
