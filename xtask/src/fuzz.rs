//! `cargo xtask fuzz [SECONDS]`: the fuzz target of `fuzz/` (the shadow model of `Quarry` on the
//! mock backend, see `fuzz/fuzz_targets/shadow.rs`) for a number of seconds, with libFuzzer
//! through `cargo +nightly fuzz`.
//!
//! It runs without a sanitizer, for speed: the shadow model and the mock's poison catch what the
//! allocator gets wrong, and a sanitizer would cut the executions per second by six. Two fuzzing
//! processes share the corpus (`-fork=2`), one per core. Inputs are capped at 1024 bytes (about
//! 300 operations). A crash leaves its input in `fuzz/artifacts/shadow/`, and
//! `cargo +nightly fuzz run shadow <that file>` replays it.

use crate::cmd::Cmd;
use crate::Result;

/// Seconds of fuzzing when none are given (what `cargo xtask ci` runs).
pub const DEFAULT_SECONDS: u64 = 60;

/// The command that fuzzes for `seconds`.
pub fn cmd(seconds: u64) -> Cmd {
    Cmd::cargo()
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
            "-fork=2".to_string(),
            "-print_final_stats=1".to_string(),
        ])
        .dir("fuzz")
}

pub fn fuzz(seconds: u64) -> Result {
    crate::install::ensure_all()?;
    cmd(seconds).run()
}
