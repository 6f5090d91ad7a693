//! quarry-alloc's tiny engine installed as the real `#[global_allocator]` of this test program:
//! std's collections, strings and formatting, threads on the host, and the arena map, all
//! allocating through it.

use quarry_alloc::{SpinLock, Tiny};
use std::collections::{BTreeMap, HashMap};

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static GLOBAL: Tiny<quarry_alloc::StaticBuffer<{ 128 << 20 }>, SpinLock, { (128 << 20) / 16 }> =
    Tiny::new(quarry_alloc::StaticBuffer::new());

/// On wasm, the arena grows with `memory.grow`, as a wasm module's would, up to 64 MiB.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static GLOBAL: Tiny<quarry_alloc::WasmGrow, SpinLock, { (64 << 20) / 16 }> =
    Tiny::new(quarry_alloc::WasmGrow::new());

#[test]
fn collections_strings_formatting_and_the_map() {
    let before = GLOBAL.stats();
    let mut v: Vec<u64> = (0..100_000).collect();
    v.retain(|x| x % 3 == 0);
    assert_eq!(v.iter().sum::<u64>(), 1_666_683_333);

    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..20_000 {
        *counts.entry(format!("word{}", i % 97)).or_default() += 1;
    }
    assert_eq!(counts.len(), 97);
    assert_eq!(counts["word0"], 207);

    let tree: BTreeMap<String, Vec<u8>> = (0..5_000)
        .map(|i| (format!("{i:05}"), vec![i as u8; i % 300]))
        .collect();
    assert_eq!(tree["04999"].len(), 4999 % 300);
    assert!(tree
        .values()
        .all(|v| v.iter().all(|&b| b == v.first().copied().unwrap_or(0))));

    // A run grown in place while it is last in the arena.
    let mut big = vec![7u8; 3 << 20];
    big.resize(5 << 20, 9);
    assert!(big[..3 << 20].iter().all(|&b| b == 7) && big[3 << 20..].iter().all(|&b| b == 9));
    drop(big);

    // Writing the map allocates (the string grows) while the map is being read.
    let mut map = String::new();
    GLOBAL.write_map(&mut map).unwrap();
    assert!(
        map.starts_with("tiny arena: ") && map.contains("taken: "),
        "{map}"
    );

    let after = GLOBAL.stats();
    assert!(after.allocations > before.allocations + 20_000);
    assert_eq!(after.errors(), 0);
    // The 5 MiB vector is back in the arena: what is in use is what the live maps hold.
    assert!(after.bytes_in_use < 4 << 20, "{after:?}");
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn four_threads_share_the_one_lock() {
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut kept: Vec<Box<[u8]>> = Vec::new();
                for i in 0..10_000usize {
                    let size = 1 + (i * 7919 + usize::from(t) * 104_729) % 3000;
                    kept.push(vec![t; size].into_boxed_slice());
                    if kept.len() > 100 {
                        let gone = kept.swap_remove(i % kept.len());
                        assert!(gone.iter().all(|&b| b == t), "a box was corrupted");
                    }
                }
                kept
            })
        })
        .collect();
    for (t, handle) in handles.into_iter().enumerate() {
        let kept = handle.join().expect("no thread panicked");
        assert!(kept.iter().all(|b| b.iter().all(|&x| usize::from(x) == t)));
    }
    assert_eq!(GLOBAL.stats().errors(), 0);
}
