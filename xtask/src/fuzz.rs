//! `cargo xtask fuzz [SECONDS]`: the fuzz target of `fuzz/` (the shadow model of `Quarry` on the
//! mock backend, see `fuzz/fuzz_targets/shadow.rs`) for a number of seconds, with libFuzzer
//! through `cargo +nightly fuzz`.
//!
//! It runs without a sanitizer, for speed: the shadow model and the mock's poison catch what the
//! allocator gets wrong, and AddressSanitizer would cut the executions per second by six. Two
//! fuzzing processes, one per core, share the corpus in `fuzz/corpus/shadow` (`-jobs=2`); each
//! writes its log to `fuzz/fuzz-<n>.log`, and the executions of both are added up at the end.
//! Inputs are capped at 1024 bytes (about 300 operations). A crash leaves its input in
//! `fuzz/artifacts/shadow/`, and `cargo +nightly fuzz run shadow <that file>` replays it.

use crate::cmd::Cmd;
use crate::Result;

/// Seconds of fuzzing when none are given (what `cargo xtask ci` runs).
pub const DEFAULT_SECONDS: u64 = 60;

/// Fuzzing processes, one per core of the machine this project is measured on.
const JOBS: usize = 2;

/// Fuzzes for `seconds`, then prints the executions of all processes together.
pub fn fuzz(seconds: u64) -> Result {
    for n in 0..JOBS {
        let _ = std::fs::remove_file(log(n));
    }
    let run = Cmd::cargo()
        .args([
            "+nightly",
            "fuzz",
            "run",
            "--sanitizer",
            "none",
            "shadow",
            "--",
        ])
        .args([
            format!("-max_total_time={seconds}"),
            "-max_len=1024".to_string(),
            format!("-jobs={JOBS}"),
            format!("-workers={JOBS}"),
            "-print_final_stats=1".to_string(),
        ])
        .dir("fuzz")
        .run();
    let mut executions = 0u64;
    for n in 0..JOBS {
        let text = std::fs::read_to_string(log(n)).unwrap_or_default();
        executions += text
            .lines()
            .filter_map(|line| line.strip_prefix("stat::number_of_executed_units:"))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum::<u64>();
        if text.contains("==ERROR") || text.contains("panicked") {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            println!("{}", tail.join("\n"));
            return Err(format!(
                "the fuzz target failed in job {n} (its input is in fuzz/artifacts/shadow/)"
            ));
        }
    }
    run?;
    println!(
        "fuzz: {executions} executions in {seconds} s over {JOBS} processes ({} per second), no failure",
        executions / seconds.max(1)
    );
    Ok(())
}

/// The log of fuzzing process `n`, from the workspace root.
fn log(n: usize) -> String {
    format!("fuzz/fuzz-{n}.log")
}
