//! quarry-alloc installed as the real `#[global_allocator]` of this test program: std's collections,
//! strings, formatting and threads (on wasm32-wasip1, which has none: workers taking turns) all
//! allocate through it.

use quarry_alloc::{Config, Quarry};
use std::collections::{BTreeMap, HashMap};
#[cfg(not(target_os = "wasi"))]
use std::sync::mpsc;

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static GLOBAL: Quarry<quarry_alloc::StaticBuffer<{ 256 << 20 }>> =
    Quarry::new(quarry_alloc::StaticBuffer::new(), Config::HOST);

/// On wasm, the heap grows with `memory.grow`, as a wasm module's would.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static GLOBAL: Quarry<quarry_alloc::WasmGrow> =
    Quarry::new(quarry_alloc::WasmGrow::new(), Config::WASM);

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

const WORKERS: usize = 4;
const OPS: usize = 100_000;

/// One of the workers that pass boxes around a ring: each step makes a box, sends every other one to
/// the next worker (or frees it when that worker's inbox is full), keeps up to 64 of the rest, and
/// checks every box it receives.
struct Worker {
    kept: Vec<Box<[u8]>>,
    seed: u32,
}

impl Worker {
    fn new(index: usize) -> Self {
        Worker {
            kept: Vec::new(),
            seed: 0x9E37_79B9u32.wrapping_mul(index as u32 + 1),
        }
    }

    fn step(
        &mut self,
        i: usize,
        send: impl FnOnce(Box<[u8]>),
        mut receive: impl FnMut() -> Option<Box<[u8]>>,
    ) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        let size = 1 + (self.seed as usize % 2000);
        let boxed = vec![(i % 251) as u8; size].into_boxed_slice();
        if i % 2 == 0 {
            send(boxed);
        } else {
            self.kept.push(boxed);
        }
        if self.kept.len() > 64 {
            self.kept.swap_remove(self.seed as usize % self.kept.len());
        }
        while let Some(received) = receive() {
            let first = received[0];
            assert!(received.iter().all(|&b| b == first), "a box was corrupted");
        }
    }
}

fn check_after_workers() {
    let stats = GLOBAL.stats();
    assert_eq!(stats.errors(), 0);
    assert!(stats.allocations >= (WORKERS * OPS) as u64);
    assert!(
        stats.reserved_bytes < 64 << 20,
        "a few MiB live need no more than that: {stats:?}"
    );
}

#[cfg(not(target_os = "wasi"))]
#[test]
fn four_threads_pass_boxes_to_each_other() {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..WORKERS)
        .map(|_| mpsc::sync_channel::<Box<[u8]>>(1024))
        .unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, inbox)| {
            let next = senders[(t + 1) % WORKERS].clone();
            std::thread::spawn(move || {
                let mut worker = Worker::new(t);
                for i in 0..OPS {
                    // A full inbox (its thread is busy): the box is freed here instead.
                    let send = |boxed| drop(next.try_send(boxed));
                    worker.step(i, send, || inbox.try_recv().ok());
                }
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        h.join().expect("no thread panicked");
    }
    check_after_workers();
}

/// wasm32-wasip1 has no threads: the same four workers take turns, one step each.
#[cfg(target_os = "wasi")]
#[test]
fn four_workers_pass_boxes_to_each_other_in_turns() {
    use std::collections::VecDeque;
    let mut inboxes: Vec<VecDeque<Box<[u8]>>> = (0..WORKERS).map(|_| VecDeque::new()).collect();
    let mut workers: Vec<Worker> = (0..WORKERS).map(Worker::new).collect();
    for i in 0..OPS {
        for (t, worker) in workers.iter_mut().enumerate() {
            let mut outgoing = None;
            worker.step(i, |boxed| outgoing = Some(boxed), || inboxes[t].pop_front());
            let next = &mut inboxes[(t + 1) % WORKERS];
            if let Some(boxed) = outgoing.filter(|_| next.len() < 1024) {
                next.push_back(boxed);
            }
        }
    }
    drop(workers);
    check_after_workers();
}
