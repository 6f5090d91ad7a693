//! quarry-alloc as this program's global allocator on the host: real work with std's collections on
//! four threads, then what the allocator did — its counters and the map of its arenas.
//!
//! Run with `cargo run --release --example global_host`.

use quarry_alloc::{Config, Quarry, StaticBuffer};
use std::collections::{BTreeMap, HashMap};

#[global_allocator]
static HEAP: Quarry<StaticBuffer<{ 64 << 20 }>> = Quarry::new(
    StaticBuffer::new(),
    Config::HOST.with_arena_reserve(16 << 20),
);

/// A deterministic stream of words, so that every run does the same work.
fn words(seed: u64, count: usize) -> Vec<String> {
    const SYLLABLES: [&str; 12] = [
        "qua", "rry", "sto", "ne", "blo", "ck", "are", "na", "pa", "ge", "he", "ap",
    ];
    let mut state = seed;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % 3) as usize;
            (0..len)
                .map(|i| SYLLABLES[((state >> (8 * i)) % 12) as usize])
                .collect()
        })
        .collect()
}

fn main() {
    let before = HEAP.stats();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for word in words(0x9E37_79B9 + t, 200_000) {
                    *counts.entry(word).or_default() += 1;
                }
                counts
            })
        })
        .collect();
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for handle in handles {
        for (word, n) in handle.join().expect("a worker panicked") {
            *total.entry(word).or_default() += n;
        }
    }
    let mut top: Vec<(&String, &usize)> = total.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("{} distinct words; the most frequent:", total.len());
    for (word, n) in top.iter().take(5) {
        println!("  {word:<10} {n}");
    }
    let stats = HEAP.stats();
    println!(
        "\n{} allocations and {} frees in this run; in all: {stats}",
        stats.allocations - before.allocations,
        stats.frees - before.frees,
    );
    let mut map = String::new();
    HEAP.write_map(&mut map).expect("writing to a String");
    // The map of a 16 MiB arena is 64 lines of 64 blocks: show its head.
    for line in map.lines().take(12) {
        println!("{line}");
    }
}
