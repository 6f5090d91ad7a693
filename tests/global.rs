//! quarry-alloc installed as the real `#[global_allocator]` of this test program: std's collections,
//! strings, formatting and threads all allocate through it.

use quarry_alloc::{Config, Quarry, StaticBuffer};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;

#[global_allocator]
static GLOBAL: Quarry<StaticBuffer<{ 256 << 20 }>> = Quarry::new(StaticBuffer::new(), Config::HOST);

#[test]
fn collections_strings_and_formatting() {
    let before = GLOBAL.stats();
    let mut v: Vec<u64> = (0..100_000).collect();
    v.retain(|x| x % 3 == 0);
    assert_eq!(v.len(), 33_334);
    assert_eq!(v.iter().sum::<u64>(), 1_666_683_333);

    let mut words = String::new();
    for i in 0..10_000 {
        words.push_str(&format!("word{} ", i % 97));
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in words.split_whitespace() {
        *counts.entry(w).or_default() += 1;
    }
    assert_eq!(counts.len(), 97);
    assert_eq!(counts["word0"], 104);

    let tree: BTreeMap<String, Vec<u8>> = (0..5_000)
        .map(|i| (format!("{i:05}"), vec![i as u8; i % 300]))
        .collect();
    assert_eq!(tree.len(), 5_000);
    assert_eq!(tree["04999"].len(), 4999 % 300);
    assert!(tree
        .values()
        .all(|v| v.iter().all(|&b| b == v.first().copied().unwrap_or(0))));

    let big = vec![7u8; 3 << 20];
    assert!(big.iter().all(|&b| b == 7));
    let after = GLOBAL.stats();
    assert!(after.allocations > before.allocations + 10_000);
    assert_eq!(after.errors(), 0);
}

#[test]
fn four_threads_pass_boxes_to_each_other() {
    const THREADS: usize = 4;
    const OPS: usize = 100_000;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| mpsc::sync_channel::<Box<[u8]>>(1024))
        .unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, inbox)| {
            let next = senders[(t + 1) % THREADS].clone();
            std::thread::spawn(move || {
                let mut kept: Vec<Box<[u8]>> = Vec::new();
                let mut seed = 0x9E37_79B9u32.wrapping_mul(t as u32 + 1);
                for i in 0..OPS {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let size = 1 + (seed as usize % 2000);
                    let boxed = vec![(i % 251) as u8; size].into_boxed_slice();
                    if i % 2 == 0 {
                        // A full inbox (its thread is busy): the box is freed here instead.
                        match next.try_send(boxed) {
                            Ok(()) | Err(mpsc::TrySendError::Full(_)) => {}
                            Err(mpsc::TrySendError::Disconnected(_)) => {}
                        }
                    } else {
                        kept.push(boxed);
                    }
                    if kept.len() > 64 {
                        kept.swap_remove(seed as usize % kept.len());
                    }
                    while let Ok(received) = inbox.try_recv() {
                        let first = received[0];
                        assert!(received.iter().all(|&b| b == first), "a box was corrupted");
                    }
                }
                drop(next);
                kept.len()
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        h.join().expect("no thread panicked");
    }
    let stats = GLOBAL.stats();
    assert_eq!(stats.errors(), 0);
    assert!(stats.allocations >= (THREADS * OPS) as u64);
    assert!(
        stats.reserved_bytes < 64 << 20,
        "a few MiB live need no more than that: {stats:?}"
    );
}
