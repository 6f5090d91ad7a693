//! `cargo xtask ci`: the whole check matrix, one step after another, stopping at the first failure.

use std::time::{Duration, Instant};

use crate::cmd::Cmd;
use crate::lanes::{self, Job};
use crate::{firmware, fuzz, install, wasm, Result};

/// Where Miri runs the library's unit tests: the host (`None`) and a 32-bit target.
const MIRI_TARGETS: &[Option<&str>] = &[None, Some("i686-unknown-linux-gnu")];
const MIRIFLAGS: &str = "-Zmiri-strict-provenance -Zmiri-symbolic-alignment-check";

/// The unit tests with threads, run under many seeds.
const CONCURRENT_TESTS: &[&str] = &[
    "global::tests::threads_free_each_others_objects",
    "bitmap::tests::threads_never_share_a_bit",
    "arenas::tests::threads_racing_for_grown_memory_all_get_some",
];

/// One step of the matrix: its name in the log and the summary, and what it does.
struct Step {
    name: String,
    action: Box<dyn Fn() -> Result>,
}

impl Step {
    fn new(name: impl Into<String>, action: impl Fn() -> Result + 'static) -> Self {
        Step {
            name: name.into(),
            action: Box::new(action),
        }
    }

    fn cmd(name: impl Into<String>, cmd: Cmd) -> Self {
        Step::new(name, move || cmd.run())
    }
}

/// `cargo miri test` of quarry-alloc's `tests` (space-separated cargo arguments) on `target` (`None`:
/// the host), with the project's Miri flags and `extra` ones, in a target directory of Miri's own
/// for each target, so that runs for the two targets never wait for each other's lock.
fn miri(tests: &str, target: Option<&str>, extra: &str) -> Cmd {
    let mut cmd = cargo(&format!("+nightly miri test -p quarry-alloc {tests}"));
    let mut dir = "target/miri".to_string();
    if let Some(target) = target {
        cmd = cmd.args(["--target", target]);
        dir = format!("target/miri-{target}");
    }
    cmd.env("MIRIFLAGS", format!("{MIRIFLAGS} {extra}").trim_end())
        .env("CARGO_TARGET_DIR", &dir)
}

/// `cargo` with space-separated arguments (none of them contains a space).
fn cargo(args: &str) -> Cmd {
    Cmd::cargo().args(args.split_whitespace())
}

fn steps(quick: bool) -> Vec<Step> {
    let mut steps = vec![
        Step::new("install missing tools", install::ensure_all),
        Step::cmd("fmt", cargo("fmt --all -- --check")),
        Step::cmd(
            "clippy (workspace, all targets)",
            cargo("clippy --workspace --all-targets -- -D warnings"),
        ),
        Step::cmd(
            "clippy (no default features)",
            cargo("clippy -p quarry-alloc --no-default-features -- -D warnings"),
        ),
        Step::cmd(
            "clippy (features unix and mock, all targets)",
            cargo("clippy -p quarry-alloc --features unix,mock --all-targets -- -D warnings"),
        ),
        // The small builds' own code (`cfg(small_code)`) compiles only for their targets.
        Step::cmd(
            "clippy (small builds: wasm32-wasip1, thumbv7m-none-eabi)",
            cargo(
                "clippy -p quarry-alloc --target wasm32-wasip1 --target thumbv7m-none-eabi \
                 --features critical-section -- -D warnings",
            ),
        ),
        Step::cmd(
            "clippy (the tests on wasm32-wasip1)",
            cargo("clippy -p quarry-alloc --target wasm32-wasip1 --tests -- -D warnings"),
        ),
        Step::cmd("test (host)", cargo("test --workspace")),
        Step::cmd(
            "test (host, feature unix: Mmap and the process break)",
            cargo("test -p quarry-alloc --features unix --lib backend"),
        ),
        Step::cmd(
            "test (host, feature unix: Mmap gives memory back)",
            cargo("test -p quarry-alloc --features unix --test mmap"),
        ),
        Step::cmd(
            "stress (release): 8 threads x 50 iterations, after mimalloc's test-stress",
            cargo("test --release -p quarry-alloc --test stress -- --nocapture"),
        ),
        Step::cmd(
            "build bench (release)",
            cargo("build --release -p quarry-bench"),
        ),
    ];

    // The library builds for every target it is made for.
    for target in install::TARGETS {
        steps.push(Step::cmd(
            format!("build {target}"),
            cargo(&format!("build -p quarry-alloc --target {target}")),
        ));
    }
    // The interrupt-safe lock, on the firmware targets with and without compare-and-swap.
    for target in ["thumbv7m-none-eabi", "thumbv6m-none-eabi"] {
        steps.push(Step::cmd(
            format!("check {target} (critical-section)"),
            cargo(&format!(
                "check -p quarry-alloc --features critical-section --target {target}"
            )),
        ));
    }
    // The integration tests as wasm modules under wasmtime, then linear memory growth and out
    // of memory under a capped wasmtime.
    steps.push(Step::cmd(
        "test wasm32-wasip1 (wasmtime)",
        wasm::integration_tests(),
    ));
    steps.push(Step::cmd(
        "test wasm32-wasip1 memory growth and out of memory (wasmtime, 64 MiB cap)",
        wasm::memory_tests(),
    ));
    // The wasm speed benchmark's harness, with and without realloc, on the host.
    steps.push(Step::cmd(
        "test bench-wasm harness (host)",
        Cmd::cargo()
            .dir("bench-wasm")
            .args(["test", "--lib", "-p", "quarry-wasm-speed"]),
    ));
    // The crates outside the workspace (built for their own targets): fmt and clippy of their own.
    for (dir, clippy_args) in [
        ("bench-wasm", "--target wasm32-wasip1 -p quarry-wasm-speed"),
        (
            "firmware",
            "--target thumbv7m-none-eabi --target thumbv6m-none-eabi",
        ),
        ("fuzz", "--bins"),
    ] {
        steps.push(Step::cmd(
            format!("fmt ({dir})"),
            Cmd::cargo()
                .dir(dir)
                .args(["fmt", "--all", "--", "--check"]),
        ));
        steps.push(Step::cmd(
            format!("clippy ({dir}: {clippy_args})"),
            Cmd::cargo()
                .dir(dir)
                .args(["clippy", "--release"])
                .args(clippy_args.split_whitespace())
                .args(["--", "-D", "warnings"]),
        ));
    }
    // The firmware, built for each board and run under qemu.
    for run in firmware::RUNS {
        steps.push(Step::new(run.name(), || run.run()));
    }

    if quick {
        return steps;
    }

    // The fuzz target, for a minute (`cargo xtask fuzz SECONDS` runs it longer).
    steps.push(Step::new(
        format!("fuzz ({} s, shadow model)", fuzz::DEFAULT_SECONDS),
        || fuzz::fuzz(fuzz::DEFAULT_SECONDS),
    ));

    // loom and Miri build with their own target directories, so that their flags do not
    // invalidate the main build.
    steps.push(Step::cmd(
        "loom (bitmap)",
        cargo("test --release -p quarry-alloc --lib bitmap::loom")
            .env("RUSTFLAGS", "--cfg loom")
            .env("LOOM_MAX_PREEMPTIONS", "3")
            .env("CARGO_TARGET_DIR", "target/loom"),
    ));
    steps.push(Step::new("miri setup", miri_setup));
    steps.push(Step::new(
        "miri: a lane per target, side by side (host; i686-unknown-linux-gnu)",
        || lanes::run(&miri_lanes()),
    ));
    steps
}

/// `cargo xtask miri`: the Miri steps alone, after installing what is missing.
pub fn miri_only() -> Result {
    install::ensure_all()?;
    miri_setup()?;
    lanes::run(&miri_lanes())
}

fn miri_setup() -> Result {
    MIRI_TARGETS
        .iter()
        .try_for_each(|target| install::miri_setup(*target))
}

/// The Miri runs, a lane per target, each lane in its own target directory. Both lanes run the
/// unit tests, then the shadow-model property test and the stress test (with fewer and shorter
/// cases under Miri: see tests/shadow.rs and tests/stress.rs). Then the host's lane runs the tests
/// with threads under 16 schedules each (Miri's scheduler and weak-memory choices are seeded), and
/// the 32-bit lane the unit tests once more under the Tree Borrows aliasing model, which does not
/// depend on the target: each lane ends with one of the two longest runs.
fn miri_lanes() -> Vec<Vec<Job>> {
    MIRI_TARGETS
        .iter()
        .map(|&target| {
            let on = target.unwrap_or("host");
            let job = |what: &str, cmd: Cmd| Job {
                name: format!("miri ({what}{on})"),
                cmd,
            };
            vec![
                job("", miri("--lib", target, "")),
                job(
                    "shadow model, stress; ",
                    miri("--test shadow --test stress", target, ""),
                ),
                match target {
                    None => job(
                        "threads, 16 seeds; ",
                        miri("--lib", target, "-Zmiri-many-seeds=0..16")
                            .args(["--", "--exact"])
                            .args(CONCURRENT_TESTS),
                    ),
                    Some(_) => job(
                        "tree borrows; ",
                        miri("--lib", target, "-Zmiri-tree-borrows"),
                    ),
                },
            ]
        })
        .collect()
}

pub fn ci(quick: bool) -> Result {
    let steps = steps(quick);
    if quick {
        println!("--quick: skipping the loom and Miri steps");
    }

    let mut times = Vec::new();
    let mut failure = None;
    for step in &steps {
        println!("\n==> {}", step.name);
        let start = Instant::now();
        let result = (step.action)();
        let time = start.elapsed();
        times.push(time);
        match result {
            Ok(()) => println!("<== {}: passed in {}", step.name, format_time(time)),
            Err(err) => {
                println!("<== {}: FAILED after {}", step.name, format_time(time));
                failure = Some((&step.name, err));
                break;
            }
        }
    }

    print_summary(&steps, &times, failure.is_some());
    match failure {
        None => Ok(()),
        Some((name, err)) => Err(format!("ci failed at step `{name}`: {err}")),
    }
}

/// Prints every step with its time and result. `times` has one entry per step that ran; if `failed`,
/// the last of them failed and the steps after it did not run.
fn print_summary(steps: &[Step], times: &[Duration], failed: bool) {
    let width = steps.iter().map(|step| step.name.len()).max().unwrap_or(0);
    println!("\n==> summary");
    println!("{:width$}  {:>8}  result", "step", "time");
    for (i, step) in steps.iter().enumerate() {
        let (time, result) = match times.get(i) {
            Some(&time) if failed && i == times.len() - 1 => (format_time(time), "FAILED"),
            Some(&time) => (format_time(time), "passed"),
            None => ("-".to_string(), "not run"),
        };
        println!("{:width$}  {time:>8}  {result}", step.name);
    }
    let total: Duration = times.iter().sum();
    println!("{:width$}  {:>8}", "total", format_time(total));

    let failed_count = usize::from(failed);
    let passed = times.len() - failed_count;
    let not_run = steps.len() - times.len();
    if not_run == 0 {
        println!("\n{passed} passed, {failed_count} failed");
    } else {
        println!("\n{passed} passed, {failed_count} failed, {not_run} not run");
    }
}

pub(crate) fn format_time(time: Duration) -> String {
    let secs = time.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {:02}s", time.as_secs() / 60, time.as_secs() % 60)
    }
}
