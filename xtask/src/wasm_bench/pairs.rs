//! The speed targets of workload 4, measured in pairs: the compact engine and one peer run back
//! to back, in a random order, many times over, and the ratio of their times is averaged over
//! every pair.
//!
//! The table of the full run answers "how do the allocators compare" with the median of nine
//! runs. That statistic is too coarse to tell 1.10× from 1.13×: on this kind of machine one
//! pair's ratio spreads by 12–16% (the standard deviation of its logarithm), so nine runs of
//! three processes leave the median several percent either way of where it settles. Here
//! each target gets hundreds of pairs, and the report gives the geometric mean of their ratios
//! with its 95% interval.

use super::{run_program, Case};
use crate::Result;
use std::fmt::Write as _;
use std::path::Path;

/// The program the targets are about.
const PROGRAM: &str = "quarry-compact";

/// Seeds 1 to this in every round: those of the full run's runs.
const SEEDS: u64 = super::FULL.runs;

/// One of the wasm speed targets (`BENCHMARKS.md`, "Where quarry-alloc stands"): at least `bound`
/// times the speed of `peer` in `case`, measured over `rounds` rounds of seeds 1–9 (a pair per
/// seed and round).
struct Target {
    case: Case,
    peer: &'static str,
    bound: f64,
    rounds: u64,
}

/// At max 10000 B against talc the engine measures about 1.12–1.13×, so its interval must be
/// narrow to clear 1.10×: 60 rounds (540 pairs) put it within about ±1–1.3%. The others lie
/// further from their bounds and take fewer.
const TARGETS: [Target; 3] = [
    Target {
        case: Case {
            max: 10_000,
            realloc: true,
        },
        peer: "talc",
        bound: 1.1,
        rounds: 60,
    },
    Target {
        case: Case {
            max: 10_000,
            realloc: true,
        },
        peer: "std",
        bound: 1.6,
        rounds: 10,
    },
    Target {
        case: Case {
            max: 200,
            realloc: true,
        },
        peer: "talc",
        bound: 1.1,
        rounds: 20,
    },
];

/// Where the pairs of one target put the speed ratio.
struct Estimate {
    /// The geometric mean of the ratios.
    mean: f64,
    /// Its 95% interval (normal, on the logarithms).
    low: f64,
    high: f64,
    /// The standard deviation of one pair's logarithm.
    spread: f64,
}

/// What the pairs of one target gave.
pub(super) struct Outcome {
    /// The peer's time over the program's, one per pair: above 1 is faster.
    ratios: Vec<f64>,
}

impl Outcome {
    fn estimate(&self) -> Estimate {
        let logs: Vec<f64> = self.ratios.iter().map(|r| r.ln()).collect();
        let n = logs.len() as f64;
        let mean = logs.iter().sum::<f64>() / n;
        let var = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let half = 1.96 * (var / n).sqrt();
        Estimate {
            mean: mean.exp(),
            low: (mean - half).exp(),
            high: (mean + half).exp(),
            spread: var.sqrt(),
        }
    }
}

/// A small xorshift generator: the order of each pair, the same on every run of the benchmark.
struct Order(u64);

impl Order {
    fn program_first(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 & 1 == 1
    }
}

/// Runs every target's pairs over the programs in `dir` (`speed-<name>.wasm`), `actions` actions
/// per process; `quick` takes one round each.
pub(super) fn run(dir: &Path, actions: u64, quick: bool) -> Result<Vec<Outcome>> {
    let mut order = Order(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = Vec::new();
    for target in &TARGETS {
        let rounds = if quick { 1 } else { target.rounds };
        println!(
            "pairs: {PROGRAM} against {} at {}, {} pairs",
            target.peer,
            target.case.title(),
            rounds * SEEDS
        );
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            for seed in 1..=SEEDS {
                let time = |name: &str| -> Result<f64> {
                    let path = dir.join(format!("speed-{name}.wasm"));
                    Ok(run_program(&path, &target.case, actions, seed)?.ns_per_action)
                };
                let (program, peer) = if order.program_first() {
                    let program = time(PROGRAM)?;
                    (program, time(target.peer)?)
                } else {
                    let peer = time(target.peer)?;
                    (time(PROGRAM)?, peer)
                };
                ratios.push(peer / program);
            }
        }
        let outcome = Outcome { ratios };
        let Estimate {
            mean, low, high, ..
        } = outcome.estimate();
        println!("  {mean:.3}× ({low:.3}–{high:.3})");
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The report's section on the targets.
pub(super) fn render(w: &mut String, outcomes: &[Outcome], actions: u64, quick: bool) {
    let _ = writeln!(w, "### The targets, in pairs\n");
    let _ = writeln!(
        w,
        "`{PROGRAM}` against one peer at a time: for each seed 1–9, in every round, the two \
         programs run back to back ({actions} actions each) in a random order, and the pair \
         gives the peer's time over `{PROGRAM}`'s. The speed is the geometric mean of those \
         ratios over all pairs, with its 95% interval (normal, on the logarithms); the spread is \
         the standard deviation of one pair's logarithm, which is why a run of the table above \
         cannot settle a target a few percent away. A target is met when its whole interval \
         clears it.{}\n",
        if quick {
            " **Quick mode: one round of fewer actions, for a smoke test only; the verdicts do not \
             count.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "| case | against | target | pairs | × | 95% interval | spread | met |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
    for (target, outcome) in TARGETS.iter().zip(outcomes) {
        let Estimate {
            mean,
            low,
            high,
            spread,
        } = outcome.estimate();
        let met = if low >= target.bound {
            "yes"
        } else if mean >= target.bound {
            "not shown: the interval reaches below it"
        } else {
            "no"
        };
        let _ = writeln!(
            w,
            "| {} | {} | ≥ {:.1}× | {} | {mean:.3} | {low:.3}–{high:.3} | {:.0}% | {met} |",
            target.case.title(),
            target.peer,
            target.bound,
            outcome.ratios.len(),
            spread * 100.0,
        );
    }
    let _ = writeln!(w);
}

#[cfg(test)]
mod tests {
    use super::{Estimate, Outcome};

    #[test]
    fn the_estimate_is_the_geometric_mean_with_its_interval() {
        let Estimate {
            mean,
            low,
            high,
            spread,
        } = Outcome {
            ratios: vec![1.0, 4.0],
        }
        .estimate();
        assert!((mean - 2.0).abs() < 1e-12);
        // The logarithms are 0 and ln 4: standard deviation ln 4 / √2, standard error ln 4 / 2.
        let half = 1.96 * 4f64.ln() / 2.0;
        assert!((low - (2f64.ln() - half).exp()).abs() < 1e-12);
        assert!((high - (2f64.ln() + half).exp()).abs() < 1e-12);
        assert!((spread - 4f64.ln() / 2f64.sqrt()).abs() < 1e-12);
    }
}
