//! What purging costs the hot path (issue "giving memory back", point 4): workload 1 (random
//! actions, one thread) on `Quarry<Mmap>` with `Config::HOST`, purging on (10 ms × 10 after a
//! free, as the preset has it) against purging off (`purge_delay_ms = -1`), trials interleaved.
//!
//! `cargo run --profile bench-release -p quarry-bench -- purge-cost [TRIALS] [--out FILE.md]`

use crate::random_actions::{actions, Case, Limit};
use crate::rng::Rng;
use quarry_alloc::{Config, Mmap, Quarry};
use std::fmt::Write as _;
use std::time::Duration;

const CASES: &[(usize, bool)] = &[(200, true), (30_000, true), (30_000, false)];

pub fn command(args: &[String]) {
    let mut trials = 9;
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = it.next().cloned(),
            n => trials = n.parse().unwrap_or_else(|_| crate::usage()),
        }
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Workload 1 (random actions, one thread, 2 ms warm-up and 200 ms per trial) on \
         `Quarry<Mmap>` with `Config::HOST`, purging on (10 ms × 10) against off \
         (`purge_delay_ms = -1`), a fresh allocator per trial, {trials} trials interleaved. \
         Actions per trial, median (min–max); \"on ÷ off\" is the median of the per-trial \
         ratios.\n"
    );
    let _ = writeln!(
        md,
        "| case | purging on | purging off | on ÷ off | purged per trial |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for &(max, realloc) in CASES {
        let case = Case {
            max,
            realloc,
            threads: 1,
        };
        let (mut on, mut off, mut purged) = (Vec::new(), Vec::new(), Vec::new());
        for trial in 0..trials {
            // Alternate which goes first, so that a drift of the machine falls on both alike.
            let order = if trial % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for purge in order {
                let (score, bytes) = run(case, trial, purge);
                if purge {
                    on.push(score);
                    purged.push(bytes);
                } else {
                    off.push(score);
                }
            }
        }
        let ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
        let label = format!(
            "max {max} B, {}",
            if realloc {
                "with realloc"
            } else {
                "no realloc"
            }
        );
        println!(
            "{label:28} on ÷ off {:.3} (min {:.3})",
            median(&ratios),
            ratios.iter().cloned().fold(f64::MAX, f64::min)
        );
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {:.3} | {} MiB |",
            spread(&on),
            spread(&off),
            median(&ratios),
            median(&purged) as usize >> 20
        );
    }
    if let Some(path) = out {
        std::fs::write(&path, &md).expect("the report written");
        println!("report written to {path}");
    } else {
        print!("{md}");
    }
}

/// One trial: actions done in 200 ms, and bytes purged meanwhile.
fn run(case: Case, trial: usize, purge: bool) -> (f64, f64) {
    let config = if purge {
        Config::HOST
    } else {
        Config {
            purge_delay_ms: -1,
            ..Config::HOST
        }
    };
    let quarry: Box<Quarry<Mmap>> = Box::new(Quarry::new(Mmap::new(), config));
    let mut warm = Rng::for_stream(&[7, case.max as u64, trial as u64, 0]);
    actions(
        &*quarry,
        case,
        &mut warm,
        Limit::Time(Duration::from_millis(2)),
        None,
    );
    let mut rng = Rng::for_stream(&[7, case.max as u64, trial as u64, 1]);
    let done = actions(
        &*quarry,
        case,
        &mut rng,
        Limit::Time(Duration::from_millis(200)),
        None,
    );
    (done.score as f64, quarry.stats().purged_bytes as f64)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    format!(
        "{:.2}M ({:.2}–{:.2})",
        median(v) / 1e6,
        min / 1e6,
        max / 1e6
    )
}
