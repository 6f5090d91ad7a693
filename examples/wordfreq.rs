//! Word frequencies of the files named on the command line (or of standard input), with
//! quarry-alloc as the program's global allocator; then what the allocator did.
//!
//! Its home is wasm32-wasip1, where the heap grows with `memory.grow` (`WasmGrow`):
//!
//! ```sh
//! cargo run --release --target wasm32-wasip1 --example wordfreq -- README.md ARCHITECTURE.md
//! ```
//!
//! (`.cargo/config.toml` runs it with `wasmtime run --dir .`). On the host the same program runs
//! over a static buffer.

use quarry_alloc::{Config, Quarry, SpinLock};
use std::collections::HashMap;
use std::io::Read;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static HEAP: Quarry<quarry_alloc::WasmGrow, SpinLock, 1> =
    Quarry::new(quarry_alloc::WasmGrow::new(), Config::WASM);

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static HEAP: Quarry<quarry_alloc::StaticBuffer<{ 32 << 20 }>, SpinLock, 1> =
    Quarry::new(quarry_alloc::StaticBuffer::new(), Config::WASM);

/// Bytes of memory the program has: linear memory on wasm, the allocator's arenas elsewhere.
fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return quarry_alloc::WasmGrow::memory_bytes();
    #[cfg(not(target_arch = "wasm32"))]
    return HEAP.stats().reserved_bytes;
}

fn read_input() -> std::io::Result<String> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    let mut text = String::new();
    for path in &paths {
        let file = std::fs::read_to_string(path)
            .map_err(|err| std::io::Error::new(err.kind(), format!("{path}: {err}")))?;
        text.push_str(&file);
        text.push('\n');
    }
    Ok(text)
}

fn main() {
    let memory_at_start = memory_bytes();
    let text = match read_input() {
        Ok(text) => text,
        Err(err) => {
            eprintln!("wordfreq: {err}");
            std::process::exit(1);
        }
    };

    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut total = 0usize;
    for word in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .map(|w| w.trim_matches(|c| c == '\'' || c == '-'))
        .filter(|w| w.chars().any(char::is_alphabetic))
    {
        *counts.entry(word.to_lowercase()).or_default() += 1;
        total += 1;
    }
    let mut top: Vec<(&str, usize)> = counts.iter().map(|(w, &n)| (w.as_str(), n)).collect();
    top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));

    println!(
        "{total} words, {} distinct, in {} bytes of text; the most frequent:",
        counts.len(),
        text.len()
    );
    for (rank, (word, n)) in top.iter().take(12).enumerate() {
        println!("  {:>2}. {word:<16} {n:>6}", rank + 1);
    }
    let longest = counts.keys().max_by_key(|w| (w.chars().count(), *w));
    if let Some(word) = longest {
        println!("  longest: {word}");
    }

    let stats = HEAP.stats();
    println!("\nquarry-alloc: {stats}");
    println!(
        "memory: {} KiB at start, {} KiB now",
        memory_at_start / 1024,
        memory_bytes() / 1024
    );
    let mut map = String::new();
    HEAP.write_map(&mut map).expect("writing to a String");
    for line in map.lines().take(12) {
        println!("{line}");
    }
    assert_eq!(stats.errors(), 0, "no free was refused");
}
