//! `cargo xtask run`: the demos, one after another.

use crate::cmd::Cmd;
use crate::{firmware, install, wasm, Result};

/// The demos: a header for the log, and the command that runs the demo.
fn demos() -> Vec<(&'static str, Cmd)> {
    let mut demos = vec![
        (
            "host: quarry-alloc as the global allocator of a 4-thread program",
            Cmd::cargo().args(["run", "--release", "--example", "global_host"]),
        ),
        (
            "host: the arena engine on its own (block runs, exclusive arena, a refused free)",
            Cmd::cargo().args(["run", "--release", "--example", "arena_map"]),
        ),
        (
            "host: memory given back to the OS (Quarry<Mmap>, a purge after the delay), and a \
             picture of the heap",
            Cmd::cargo().args([
                "run",
                "--release",
                "--features",
                "unix",
                "--example",
                "heap_picture",
                "--",
                "target/heap.svg",
            ]),
        ),
        (
            "wasm32-wasip1 under wasmtime: word frequencies of this project's documents, \
             the heap growing with memory.grow",
            wasm::demo(),
        ),
    ];
    // The firmware under qemu, one entry per board.
    demos.extend(firmware::RUNS.iter().map(|run| (run.demo, run.cmd())));
    demos
}

pub fn run() -> Result {
    println!("==> install missing tools");
    install::ensure_all()?;
    for (name, demo) in demos() {
        println!("\n==> {name}");
        demo.run()
            .map_err(|err| format!("demo `{name}` failed: {err}"))?;
    }
    Ok(())
}
