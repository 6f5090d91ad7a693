//! What the global-allocator tests of the engines behind one lock (`Compact`, `Tiny`) share: the
//! same program, std's collections, strings, formatting, threads and the arena map allocating
//! through the engine under test.

use quarry_alloc::Stats;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Collections, strings and formatting, a vector of 5 MiB grown at the arena's end, and the map
/// written while it allocates: checks the engine's `stats` before and after and that the map
/// starts with `header` and has a line with `count`; returns the statistics before and after.
pub fn collections_strings_formatting_and_the_map(
    stats: impl Fn() -> Stats,
    write_map: impl Fn(&mut String) -> fmt::Result,
    header: &str,
    count: &str,
) -> (Stats, Stats) {
    let before = stats();
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

    // Grown in place while it is last in the arena.
    let mut big = vec![7u8; 3 << 20];
    big.resize(5 << 20, 9);
    assert!(big[..3 << 20].iter().all(|&b| b == 7) && big[3 << 20..].iter().all(|&b| b == 9));
    drop(big);

    // Writing the map allocates (the string grows) while the map is being read.
    let mut map = String::new();
    write_map(&mut map).unwrap();
    assert!(map.starts_with(header) && map.contains(count), "{map}");

    let after = stats();
    assert!(after.allocations > before.allocations + 20_000);
    assert_eq!(after.errors(), 0);
    // The 5 MiB vector is back in the arena: what is in use is what the live maps hold.
    assert!(after.bytes_in_use < 4 << 20, "{after:?}");
    (before, after)
}

/// Four threads, each allocating `per_thread` boxed slices of up to 3000 bytes through the one
/// lock, keeping about a hundred and checking each before it goes. Not on wasm32-wasip1, which
/// has no threads.
#[cfg(not(target_os = "wasi"))]
pub fn four_threads_share_the_one_lock(per_thread: usize) {
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut kept: Vec<Box<[u8]>> = Vec::new();
                for i in 0..per_thread {
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
}
