//! Project automation for quarry-alloc, run as `cargo xtask <command>`.
//!
//! Only `std`, no dependencies: it builds in seconds and works offline.

mod ci;
mod cmd;
mod firmware;
mod fuzz;
mod install;
mod lanes;
mod run;
mod wasm;
mod wasm_bench;

use std::process::ExitCode;

/// What every fallible function here returns; the error is a message for the user.
type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci           run the whole check matrix: fmt, clippy, host tests, bench build,
               cross-target checks, tests on wasm32-wasip1 (wasmtime), the
               firmware under qemu, loom and Miri; stops at the first failure
  ci --quick   the same without the (slow) loom and Miri steps
  miri         the Miri steps of `ci` alone: a lane per target, side by side
  run          run the demos: on the host, in wasm32-wasip1 under wasmtime,
               and as Cortex-M firmware under qemu
  bench-wasm   wasm speed and size benchmarks into target/wasm-bench.md [--quick]
  fuzz [SECS]  fuzz the shadow model of the allocator for SECS seconds (default 60)
  help         print this message

`ci`, `miri`, `run` and `fuzz` first install what is missing: rustup toolchains,
components and targets, wasmtime, cargo-fuzz, qemu-system-arm.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let result = match args.as_slice() {
        [] | ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        ["ci"] => ci::ci(false),
        ["ci", "--quick"] => ci::ci(true),
        ["miri"] => ci::miri_only(),
        ["run"] => run::run(),
        ["bench-wasm"] | ["bench-wasm", "--quick"] => wasm_bench::bench_wasm(args.len() == 2),
        ["fuzz"] => install::ensure_all().and_then(|()| fuzz::fuzz(fuzz::DEFAULT_SECONDS)),
        ["fuzz", seconds] => match seconds.parse() {
            Ok(seconds) => install::ensure_all().and_then(|()| fuzz::fuzz(seconds)),
            Err(_) => Err(format!("`{seconds}` is not a number of seconds")),
        },
        _ => {
            eprintln!(
                "error: unknown command or option `{}`\n\n{USAGE}",
                args.join(" ")
            );
            return ExitCode::from(2);
        }
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nerror: {message}");
            ExitCode::FAILURE
        }
    }
}
