//! `cargo xtask bench-wasm`: workloads 4 (wasm speed) and 5 (wasm size) of the benchmark protocol,
//! over the crates in `bench-wasm/`, with the report written to `target/wasm-bench.md`.
//!
//! - Speed: one wasm32-wasip1 program per allocator (`bench-wasm/speed/src/bin/`), each run as its
//!   own `wasmtime run` process, interleaved across allocators (the order rotating from run to
//!   run); the program times its actions itself and prints nanoseconds per action. Ratios are
//!   taken within one run. Then the speed targets, each in hundreds of pairs of the compact
//!   engine and one peer ([`pairs`]), precise enough to settle them.
//! - Size: one `no_std` wasm32-unknown-unknown module per allocator (`bench-wasm/size`, a feature
//!   each), shrunk with `wasm-opt -Oz`, bytes counted. Quarry's modules are built once more with
//!   their symbol names kept, to list the functions the bytes are in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::{install, Result};

mod pairs;

/// The benchmark crates, relative to the workspace root.
const BENCH_DIR: &str = "bench-wasm";
/// Where the report goes, relative to the workspace root.
const REPORT: &str = "target/wasm-bench.md";
/// Where the measured modules are kept, relative to the workspace root.
const OUT_DIR: &str = "target/wasm-bench";

const SPEED_TARGET: &str = "wasm32-wasip1";
const SIZE_TARGET: &str = "wasm32-unknown-unknown";

/// The speed programs, in table order: binary name, and what it installs as its allocator.
const SPEED_PROGRAMS: &[(&str, &str)] = &[
    (
        "quarry",
        "`Quarry<WasmGrow, SpinLock, 1>` with `Config::WASM` (`Quarry::new`: one heap behind the \
         default spin lock)",
    ),
    (
        "quarry-nolock",
        "`Quarry<WasmGrow, NoLock, 1>` with `Config::WASM` (`unsafe Quarry::new_single_threaded`)",
    ),
    (
        "quarry-default",
        "`Quarry<WasmGrow>` with `Config::WASM` (every default: four heaps, each behind a spin \
         lock)",
    ),
    (
        "talc",
        "`talc::wasm::WasmDynamicTalc` (`new_wasm_dynamic_allocator`, memory from `memory.grow`)",
    ),
    (
        "std",
        "no `#[global_allocator]`: std's default on wasm32-wasip1, wasi-libc's `malloc` (dlmalloc)",
    ),
    ("dlmalloc", "`dlmalloc::GlobalDlmalloc` (the Rust port)"),
    ("rlsf", "`rlsf::SmallGlobalTlsf`"),
    (
        "lol_alloc",
        "`lol_alloc::AssumeSingleThreaded<FreeListAllocator>`",
    ),
    (
        "quarry-compact",
        "`Compact<WasmGrow>` with `Config::WASM` (`Compact::new`: quarry-alloc's compact engine, \
         one arena behind the default spin lock)",
    ),
    (
        "quarry-tiny",
        "`Tiny<WasmGrow, SpinLock, 4194304>` (`Tiny::new`: quarry-alloc's tiny engine, granules \
         of 16 bytes in bitmaps, room for a 64 MiB arena, behind the default spin lock)",
    ),
    (
        "floor",
        "not an allocator: the least work per call (`bench-wasm/speed/src/bin/floor.rs`: a \
         last-in-first-out list per power of two, nothing checked or counted), so its ratios bound \
         what any allocator can reach on this workload",
    ),
];

/// One case of the workload: the `max` of the size distribution, and whether it reallocates.
struct Case {
    max: usize,
    realloc: bool,
}

/// Small objects, and objects up to 10000 B, with reallocations as the protocol has them; and
/// objects up to 10000 B without, which shows how much of a difference the reallocations make.
const CASES: [Case; 3] = [
    Case {
        max: 200,
        realloc: true,
    },
    Case {
        max: 10_000,
        realloc: true,
    },
    Case {
        max: 10_000,
        realloc: false,
    },
];

impl Case {
    fn title(&self) -> String {
        let without = if self.realloc {
            ""
        } else {
            ", without realloc"
        };
        format!("max {} B{without}", self.max)
    }
}

/// How many runs of how many actions, and how many processes of each program a run takes the
/// median of.
struct Plan {
    runs: u64,
    rounds: u64,
    actions: u64,
}

const FULL: Plan = Plan {
    runs: 9,
    rounds: 3,
    actions: 2_000_000,
};
const QUICK: Plan = Plan {
    runs: 1,
    rounds: 1,
    actions: 200_000,
};

/// The size modules, in table order: feature of `bench-wasm/size` (empty: none), and what it is.
const SIZE_MODULES: &[(&str, &str)] = &[
    ("", "empty module (no exports; the zero line)"),
    ("null", "the three exports, returning null"),
    (
        "lol_alloc",
        "lol_alloc `AssumeSingleThreaded<FreeListAllocator>`",
    ),
    ("rlsf", "rlsf `SmallGlobalTlsf`"),
    ("talc", "talc `WasmDynamicTalc`"),
    ("dlmalloc", "dlmalloc-rs `GlobalDlmalloc`"),
    (
        "quarry",
        "quarry default: `Quarry<WasmGrow>`, `Config::WASM` (spin lock, 4 heaps)",
    ),
    (
        "quarry-minimal",
        "quarry minimal: `Quarry<WasmGrow, NoLock, 1>`, `Config::WASM` (`new_single_threaded`)",
    ),
    (
        "quarry-compact",
        "quarry compact engine, default: `Compact<WasmGrow>`, `Config::WASM` (spin lock)",
    ),
    (
        "quarry-compact-minimal",
        "quarry compact engine, minimal: `Compact<WasmGrow, NoLock>`, `Config::WASM` \
         (`new_single_threaded`)",
    ),
    (
        "quarry-tiny",
        "quarry tiny engine, default: `Tiny<WasmGrow>` (spin lock)",
    ),
    (
        "quarry-tiny-minimal",
        "quarry tiny engine, minimal: `Tiny<WasmGrow, NoLock>` (`new_single_threaded`)",
    ),
];

/// Quarry's size targets, above the empty module: (feature, bytes).
const SIZE_TARGETS: [(&str, u64); 6] = [
    ("quarry", 4000),
    ("quarry-minimal", 2000),
    ("quarry-compact", 4000),
    ("quarry-compact-minimal", 2000),
    ("quarry-tiny", 4000),
    ("quarry-tiny-minimal", 2000),
];

/// How many of quarry's largest functions the report lists.
const TOP_FUNCTIONS: usize = 15;

pub fn bench_wasm(quick: bool) -> Result {
    println!("==> install missing tools");
    install::ensure_bench_tools()?;
    let root = workspace_root();
    std::fs::create_dir_all(root.join(OUT_DIR)).map_err(|err| format!("{OUT_DIR}: {err}"))?;

    println!("\n==> workload 5: wasm size");
    let sizes = measure_sizes()?;
    let functions = SIZE_TARGETS
        .iter()
        .map(|&(feature, _)| Ok((feature, largest_functions(feature)?)))
        .collect::<Result<Vec<_>>>()?;

    println!("\n==> workload 4: wasm speed");
    let plan = if quick { QUICK } else { FULL };
    let speed = run_speed(&plan)?;
    println!("\n==> workload 4: the speed targets, in pairs");
    let pairs = pairs::run(&root.join(OUT_DIR), plan.actions, quick)?;

    let report = render(&plan, quick, &speed, &pairs, &sizes, &functions)?;
    let path = root.join(REPORT);
    std::fs::write(&path, report).map_err(|err| format!("{}: {err}", path.display()))?;
    println!("\nreport written to {REPORT}");
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is inside the workspace")
        .to_path_buf()
}

/// The benchmark crates' own target directory (named, so that `CARGO_TARGET_DIR` cannot move it).
fn bench_target_dir() -> PathBuf {
    workspace_root().join(BENCH_DIR).join("target")
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

fn file_size(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|meta| meta.len())
        .map_err(|err| format!("{}: {err}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|err| format!("copying {} to {}: {err}", from.display(), to.display()))
}

// ---------------------------------------------------------------------------------------------
// Workload 5: size

/// One measured module.
struct SizeResult {
    feature: &'static str,
    what: &'static str,
    /// Bytes as the linker wrote them.
    raw: u64,
    /// Bytes after `wasm-opt -Oz`: the figure.
    optimized: u64,
}

/// Builds the size module of `feature` (empty: none) with `profile`; the path of a copy of it in
/// the output directory, with `suffix` in its name.
fn build_size_module(feature: &str, profile: &str, suffix: &str) -> Result<PathBuf> {
    let target_dir = bench_target_dir();
    let mut build = Cmd::cargo()
        .args(["build", "--quiet", "-p", "quarry-wasm-size"])
        .args(["--profile", profile, "--target", SIZE_TARGET])
        .args(["--target-dir", path_str(&target_dir)?]);
    if !feature.is_empty() {
        build = build.args(["--features", feature]);
    }
    build.dir(BENCH_DIR).run()?;
    let built = target_dir
        .join(SIZE_TARGET)
        .join(profile)
        .join("quarry_wasm_size.wasm");
    let name = if feature.is_empty() { "empty" } else { feature };
    let kept = workspace_root()
        .join(OUT_DIR)
        .join(format!("size-{name}{suffix}.wasm"));
    copy(&built, &kept)?;
    Ok(kept)
}

fn measure_sizes() -> Result<Vec<SizeResult>> {
    SIZE_MODULES
        .iter()
        .map(|&(feature, what)| {
            let module = build_size_module(feature, "wasm-size", "")?;
            let optimized = module.with_extension("oz.wasm");
            Cmd::new("wasm-opt")
                .args(["-Oz", path_str(&module)?, "-o", path_str(&optimized)?])
                .run()?;
            Ok(SizeResult {
                feature,
                what,
                raw: file_size(&module)?,
                optimized: file_size(&optimized)?,
            })
        })
        .collect()
}

/// One function of an optimized module.
struct Function {
    name: String,
    bytes: u64,
}

/// Quarry's module for `feature` built with names kept, optimized as the measured one (DWARF
/// stripped first: binaryen optimizes less where it must keep DWARF): its code section's size and
/// its functions, largest first.
struct Functions {
    code_bytes: u64,
    functions: Vec<Function>,
}

fn largest_functions(feature: &str) -> Result<Functions> {
    let module = build_size_module(feature, "wasm-size-names", "-names")?;
    let stripped = module.with_extension("nodwarf.wasm");
    let optimized = module.with_extension("oz.wasm");
    Cmd::new("wasm-opt")
        .args(["-g", "--strip-dwarf", path_str(&module)?])
        .args(["-o", path_str(&stripped)?])
        .run()?;
    Cmd::new("wasm-opt")
        .args([
            "-Oz",
            "-g",
            path_str(&stripped)?,
            "-o",
            path_str(&optimized)?,
        ])
        .run()?;
    let bytes =
        std::fs::read(&optimized).map_err(|err| format!("{}: {err}", optimized.display()))?;
    let module = wasm::parse(&bytes).map_err(|err| format!("{}: {err}", optimized.display()))?;
    let mut functions: Vec<Function> = module
        .bodies
        .iter()
        .enumerate()
        .map(|(i, &bytes)| {
            let index = module.imported_functions + i as u32;
            let name = module
                .names
                .get(&index)
                .map_or_else(|| format!("function #{index}"), |name| demangle(name));
            Function { name, bytes }
        })
        .collect();
    functions.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Ok(Functions {
        code_bytes: module.code_bytes,
        functions,
    })
}

/// Just enough of the WebAssembly binary format to size a module's functions: how many functions
/// are imported, the size of each function body, and the function names of the "name" section.
mod wasm {
    use std::collections::BTreeMap;

    pub struct Module {
        pub imported_functions: u32,
        /// The code section's size in bytes.
        pub code_bytes: u64,
        /// Each defined function's body size (its size field included), in order.
        pub bodies: Vec<u64>,
        /// Function index → name.
        pub names: BTreeMap<u32, String>,
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn byte(&mut self) -> Result<u8, String> {
            let byte = *self.bytes.get(self.at).ok_or("unexpected end of module")?;
            self.at += 1;
            Ok(byte)
        }

        fn leb(&mut self) -> Result<u64, String> {
            let mut value = 0u64;
            for shift in (0..64).step_by(7) {
                let byte = self.byte()?;
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return Ok(value);
                }
            }
            Err("LEB128 number too long".into())
        }

        fn u32(&mut self) -> Result<u32, String> {
            u32::try_from(self.leb()?).map_err(|_| "number out of range".into())
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .at
                .checked_add(n)
                .filter(|&end| end <= self.bytes.len());
            let slice = &self.bytes[self.at..end.ok_or("unexpected end of module")?];
            self.at += n;
            Ok(slice)
        }

        fn name(&mut self) -> Result<String, String> {
            let len = self.u32()? as usize;
            Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
        }

        fn limits(&mut self) -> Result<(), String> {
            let flags = self.byte()?;
            self.leb()?;
            if flags & 1 != 0 {
                self.leb()?;
            }
            Ok(())
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Module, String> {
        if bytes.get(..4) != Some(b"\0asm") {
            return Err("not a wasm module".into());
        }
        let mut r = Reader { bytes, at: 8 };
        let mut module = Module {
            imported_functions: 0,
            code_bytes: 0,
            bodies: Vec::new(),
            names: BTreeMap::new(),
        };
        while r.at < bytes.len() {
            let id = r.byte()?;
            let size = r.u32()? as usize;
            let mut section = Reader {
                bytes: r.take(size)?,
                at: 0,
            };
            match id {
                2 => module.imported_functions = imported_functions(&mut section)?,
                10 => {
                    module.code_bytes = size as u64;
                    for _ in 0..section.u32()? {
                        let start = section.at;
                        let len = section.u32()? as usize;
                        section.take(len)?;
                        module.bodies.push((section.at - start) as u64);
                    }
                }
                0 if section.name()? == "name" => function_names(&mut section, &mut module.names)?,
                _ => {}
            }
        }
        Ok(module)
    }

    fn imported_functions(r: &mut Reader) -> Result<u32, String> {
        let mut functions = 0;
        for _ in 0..r.u32()? {
            r.name()?;
            r.name()?;
            match r.byte()? {
                0 => {
                    r.u32()?;
                    functions += 1;
                }
                1 => {
                    r.byte()?;
                    r.limits()?;
                }
                2 => r.limits()?,
                3 => {
                    r.byte()?;
                    r.byte()?;
                }
                4 => {
                    r.byte()?;
                    r.u32()?;
                }
                kind => return Err(format!("unknown import kind {kind}")),
            }
        }
        Ok(functions)
    }

    /// The function names (subsection 1) of a "name" section, past the section's own name.
    fn function_names(r: &mut Reader, names: &mut BTreeMap<u32, String>) -> Result<(), String> {
        while r.at < r.bytes.len() {
            let id = r.byte()?;
            let size = r.u32()? as usize;
            let mut sub = Reader {
                bytes: r.take(size)?,
                at: 0,
            };
            if id == 1 {
                for _ in 0..sub.u32()? {
                    let index = sub.u32()?;
                    names.insert(index, sub.name()?);
                }
            }
        }
        Ok(())
    }
}

/// A readable form of a Rust symbol: the path of a legacy (`_ZN…E`) symbol without its hash, or
/// the identifiers of a v0 (`_R…`) symbol joined by `::`; anything else as it is.
fn demangle(symbol: &str) -> String {
    if let Some(rest) = symbol.strip_prefix("_ZN") {
        let mut parts = Vec::new();
        let mut s = rest;
        while let Some(digits) = s.find(|c: char| !c.is_ascii_digit()).filter(|&n| n > 0) {
            let len: usize = s[..digits].parse().unwrap_or(0);
            let Some(part) = s.get(digits..digits + len) else {
                break;
            };
            parts.push(part);
            s = &s[digits + len..];
        }
        if parts
            .last()
            .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
        {
            parts.pop();
        }
        if parts.is_empty() {
            return symbol.to_string();
        }
        let path = parts.join("::");
        const ESCAPES: [(&str, &str); 12] = [
            ("$LT$", "<"),
            ("$GT$", ">"),
            ("$u20$", " "),
            ("$C$", ","),
            ("$RF$", "&"),
            ("$BP$", "*"),
            ("$u7b$", "{"),
            ("$u7d$", "}"),
            ("$u27$", "'"),
            ("$u5b$", "["),
            ("$u5d$", "]"),
            ("..", "::"),
        ];
        return ESCAPES
            .iter()
            .fold(path, |path, (from, to)| path.replace(from, to));
    }
    if let Some(rest) = symbol.strip_prefix("_R") {
        // Identifiers are `<decimal length><bytes>`; crate disambiguators (`Cs…_`) are skipped.
        let mut parts = Vec::new();
        let mut s = rest;
        while !s.is_empty() {
            if let Some(after) = s.strip_prefix("Cs") {
                s = after.split_once('_').map_or("", |(_, tail)| tail);
                continue;
            }
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            if digits == 0 {
                s = &s[1..];
                continue;
            }
            let len: usize = s[..digits].parse().unwrap_or(0);
            let Some(part) = s.get(digits..digits + len) else {
                break;
            };
            parts.push(part);
            s = &s[digits + len..];
        }
        if !parts.is_empty() {
            return parts.join("::");
        }
    }
    symbol.to_string()
}

// ---------------------------------------------------------------------------------------------
// Workload 4: speed

/// One process's result.
struct Sample {
    ns_per_action: f64,
    peak_live: u64,
    failures: u64,
    memory_bytes: u64,
}

/// Every sample of one program in one case, indexed by run.
type Samples = Vec<Sample>;

struct SpeedResults {
    /// `[case index][program index]`.
    samples: Vec<Vec<Samples>>,
}

fn run_speed(plan: &Plan) -> Result<SpeedResults> {
    let target_dir = bench_target_dir();
    Cmd::cargo()
        .args(["build", "--release", "-p", "quarry-wasm-speed"])
        .args([
            "--target",
            SPEED_TARGET,
            "--target-dir",
            path_str(&target_dir)?,
        ])
        .dir(BENCH_DIR)
        .run()?;
    let programs: Vec<PathBuf> = SPEED_PROGRAMS
        .iter()
        .map(|(name, _)| {
            let built = target_dir
                .join(SPEED_TARGET)
                .join("release")
                .join(format!("{name}.wasm"));
            let kept = workspace_root()
                .join(OUT_DIR)
                .join(format!("speed-{name}.wasm"));
            copy(&built, &kept)?;
            Ok(kept)
        })
        .collect::<Result<_>>()?;

    let n = programs.len();
    let mut samples: Vec<Vec<Samples>> = CASES
        .iter()
        .map(|_| (0..n).map(|_| Vec::new()).collect())
        .collect();
    for run in 0..plan.runs {
        for (m, case) in CASES.iter().enumerate() {
            println!("run {} of {}, {}", run + 1, plan.runs, case.title());
            // Every program `rounds` times, the order rotating from round to round and run to run.
            let mut rounds: Vec<Samples> = (0..n).map(|_| Vec::new()).collect();
            for round in 0..plan.rounds {
                for k in 0..n {
                    let i = (k + (run * plan.rounds + round) as usize) % n;
                    let sample = run_program(&programs[i], case, plan.actions, run + 1)?;
                    println!(
                        "  {:<15} {:>8.1} ns/action",
                        SPEED_PROGRAMS[i].0, sample.ns_per_action
                    );
                    rounds[i].push(sample);
                }
            }
            for (i, taken) in rounds.into_iter().enumerate() {
                samples[m][i].push(median_sample(taken));
            }
        }
    }
    Ok(SpeedResults { samples })
}

/// One process of the speed program at `path`: `case` with `actions` actions from `seed`.
fn run_program(path: &Path, case: &Case, actions: u64, seed: u64) -> Result<Sample> {
    let output = Cmd::new("wasmtime")
        .args(["run", path_str(path)?])
        .args([
            case.max.to_string(),
            actions.to_string(),
            seed.to_string(),
            u8::from(case.realloc).to_string(),
        ])
        .read()?;
    parse_sample(&output).map_err(|err| format!("{}: {err} in {output:?}", path.display()))
}

/// The sample of median time among one program's processes in a run (the lower middle one of an
/// even number).
fn median_sample(mut taken: Samples) -> Sample {
    taken.sort_by(|a, b| a.ns_per_action.total_cmp(&b.ns_per_action));
    taken.swap_remove((taken.len() - 1) / 2)
}

/// Reads the program's `key=value` line.
fn parse_sample(output: &str) -> std::result::Result<Sample, String> {
    let fields: BTreeMap<&str, &str> = output
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let get = |key: &str| -> std::result::Result<f64, String> {
        fields
            .get(key)
            .ok_or_else(|| format!("no `{key}`"))?
            .parse()
            .map_err(|_| format!("`{key}` is not a number"))
    };
    Ok(Sample {
        ns_per_action: get("ns_per_action")?,
        peak_live: get("peak_live")? as u64,
        failures: get("failures")? as u64,
        memory_bytes: get("memory_bytes")? as u64,
    })
}

/// Median, min and max.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

fn program_index(name: &str) -> usize {
    SPEED_PROGRAMS
        .iter()
        .position(|&(program, _)| program == name)
        .expect("a program of the table")
}

/// Speed of program `i` relative to program `base`, run by run (the base's time ÷ this one's:
/// above 1 is faster).
fn ratios(samples: &[Samples], i: usize, base: usize) -> Vec<f64> {
    samples[i]
        .iter()
        .zip(&samples[base])
        .map(|(x, b)| b.ns_per_action / x.ns_per_action)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report

fn render(
    plan: &Plan,
    quick: bool,
    speed: &SpeedResults,
    pairs: &[pairs::Outcome],
    sizes: &[SizeResult],
    functions: &[(&str, Functions)],
) -> Result<String> {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let w = &mut out;
    let _ = writeln!(w, "# WebAssembly: speed and size (workloads 4 and 5)\n");
    let _ = writeln!(
        w,
        "Written by `cargo xtask bench-wasm{}` from the crates in `bench-wasm/`.\n",
        if quick { " --quick" } else { "" }
    );
    render_method(w, plan, quick)?;
    render_speed(w, plan, speed);
    pairs::render(w, pairs, plan.actions, quick);
    render_sizes(w, sizes, functions);
    Ok(out)
}

fn render_method(w: &mut String, plan: &Plan, quick: bool) -> Result {
    let date = Cmd::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .read()?;
    let rustc = Cmd::new("rustc").args(["--version"]).read()?;
    let wasmtime = Cmd::new("wasmtime").args(["--version"]).read()?;
    let wasm_opt = Cmd::new("wasm-opt").args(["--version"]).read()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let model = info
                .lines()
                .find_map(|line| line.strip_prefix("model name"))?
                .trim_start_matches([' ', '\t', ':'])
                .to_string();
            let count = info
                .lines()
                .filter(|line| line.starts_with("processor"))
                .count();
            Some(format!("{model} ({count} logical CPUs)"))
        })
        .unwrap_or_else(|| "unknown".into());
    let lock_path = workspace_root().join(BENCH_DIR).join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .map_err(|err| format!("{}: {err}", lock_path.display()))?;
    let crates: Vec<String> = ["quarry-alloc", "talc", "rlsf", "dlmalloc", "lol_alloc"]
        .iter()
        .map(|name| format!("{name} {}", locked_version(&lock, name)))
        .collect();

    let _ = writeln!(w, "## Method\n");
    let _ = writeln!(w, "- Date: {}", date.trim());
    let _ = writeln!(w, "- Machine: {cpu}");
    let _ = writeln!(
        w,
        "- Tools: {}, {}, wasm-opt {}",
        rustc.trim(),
        wasmtime.trim(),
        wasm_opt.trim().trim_start_matches("wasm-opt version ")
    );
    let _ = writeln!(
        w,
        "- Crates (`bench-wasm/Cargo.lock`): {}",
        crates.join(", ")
    );
    let _ = writeln!(
        w,
        "- Speed: `bench-wasm/speed`, target `{SPEED_TARGET}`, profile `release` (opt-level 3, \
         lto = true, codegen-units = 1, panic = abort); each program run as `wasmtime run \
         <program>.wasm <max> {} <seed> <realloc>`, each process one allocator and one case, \
         interleaved across allocators; {} run{}, seed = run number (the same for every \
         allocator in a run); in a run, every program runs {} time{} (the order rotating from \
         round to round and run to run) and its median time is the run's{}.",
        plan.actions,
        plan.runs,
        if plan.runs == 1 { "" } else { "s" },
        plan.rounds,
        if plan.rounds == 1 { "" } else { "s" },
        if quick {
            "; **quick mode: fewer actions and runs than the protocol, for a smoke test only**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "- Size: `bench-wasm/size`, a `no_std` cdylib for `{SIZE_TARGET}` exporting `alloc(size, \
         align)`, `dealloc(ptr, size, align)` and `realloc(ptr, size, align, new_size)` (extern \
         \"C\"), each one call into the allocator's `GlobalAlloc` (also installed as \
         `#[global_allocator]`); profile `wasm-size` (opt-level \"z\", lto = true, codegen-units \
         = 1, panic = abort, strip = \"debuginfo\"); the panic handler traps \
         (`unreachable`), so no formatting code comes in through panics; then `wasm-opt -Oz`, \
         bytes of the output file counted (custom sections `producers` and `target_features` \
         included, as the linker writes them for every module alike). Zero line: the same \
         crate with no exports at all.\n"
    );
    let _ = writeln!(w, "Allocators in the speed runs:\n");
    for (name, what) in SPEED_PROGRAMS {
        let _ = writeln!(w, "- **{name}**: {what}");
    }
    let _ = writeln!(
        w,
        "\nWorkload: workload 1 of the protocol on one thread, a fixed number of actions: each \
         draws `0..=6`; 6 reallocates a random live allocation to `rand(1..3*max)`; below 3, or \
         while fewer than 50 allocations are live, it allocates `rand(4..rand(16..max))` bytes \
         at alignment word << (trailing zeros of a random u16 / 2) (75% word, 19% 2×word, then \
         rarer up to 256×word); otherwise it frees a random live allocation (without realloc, \
         the draw is `0..=5`). First and last \
         byte of every allocation written; realloc checks that the first byte survived. The \
         whole loop is timed inside the program with `std::time::Instant`; the live list (a \
         `Vec` from the same allocator) is allocated before the clock starts; memory growth \
         (`memory.grow`) is part of the timed work, as in a real module.\n"
    );
    Ok(())
}

/// The version of `name` in a Cargo.lock (the first entry; `?` if absent).
fn locked_version(lock: &str, name: &str) -> String {
    let entry = format!("name = \"{name}\"\nversion = \"");
    lock.find(&entry)
        .and_then(|at| {
            let rest = &lock[at + entry.len()..];
            rest.split('"').next()
        })
        .unwrap_or("?")
        .to_string()
}

fn render_speed(w: &mut String, plan: &Plan, speed: &SpeedResults) {
    let talc = program_index("talc");
    let std = program_index("std");
    let _ = writeln!(w, "## Workload 4: speed on wasm32-wasip1 under wasmtime\n");
    let _ = writeln!(
        w,
        "Nanoseconds per action, median (min–max) over {} run{}; \"× talc\" and \"× std\" are \
         speeds relative to talc and to std's default allocator **in the same run** (their time ÷ \
         this one's: above 1.00 is faster), median (min–max) over runs. Peak live: the most \
         allocations live at once (the same for every allocator). Linear memory: the module's \
         memory at the end of the run (every user of `memory.grow` together, wasi-libc's \
         start-up allocations included), median.\n",
        plan.runs,
        if plan.runs == 1 { "" } else { "s" }
    );
    for (m, case) in CASES.iter().enumerate() {
        let samples = &speed.samples[m];
        let _ = writeln!(w, "### {}\n", case.title());
        let _ = writeln!(
            w,
            "| allocator | ns per action | × talc | × std | peak live | linear memory MiB |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|");
        let mut failures = 0;
        for (i, (name, _)) in SPEED_PROGRAMS.iter().enumerate() {
            let ns: Vec<f64> = samples[i].iter().map(|s| s.ns_per_action).collect();
            let memory: Vec<f64> = samples[i]
                .iter()
                .map(|s| s.memory_bytes as f64 / (1024.0 * 1024.0))
                .collect();
            let peak = samples[i].iter().map(|s| s.peak_live).max().unwrap_or(0);
            failures += samples[i].iter().map(|s| s.failures).sum::<u64>();
            let _ = writeln!(
                w,
                "| {name} | {} | {} | {} | {peak} | {:.1} |",
                cell(&ns, 1),
                cell(&ratios(samples, i, talc), 2),
                cell(&ratios(samples, i, std), 2),
                spread(&memory).0,
            );
        }
        let _ = writeln!(
            w,
            "\n{}\n",
            if failures == 0 {
                "No allocation or reallocation failed.".to_string()
            } else {
                format!("{failures} allocations or reallocations failed.")
            }
        );
    }
}

/// `median (min–max)` with `digits` decimals; just the value for a single run.
fn cell(values: &[f64], digits: usize) -> String {
    let (median, min, max) = spread(values);
    if values.len() == 1 {
        format!("{median:.digits$}")
    } else {
        format!("{median:.digits$} ({min:.digits$}–{max:.digits$})")
    }
}

fn render_sizes(w: &mut String, sizes: &[SizeResult], functions: &[(&str, Functions)]) {
    let empty = sizes
        .iter()
        .find(|s| s.feature.is_empty())
        .map_or(0, |s| s.optimized);
    let _ = writeln!(
        w,
        "## Workload 5: size of a wasm32-unknown-unknown module\n"
    );
    let _ = writeln!(
        w,
        "Bytes after `wasm-opt -Oz`; \"above empty\" subtracts the empty module ({empty} B), so \
         it counts the allocator and the three exports. Smaller is better.\n"
    );
    let _ = writeln!(
        w,
        "| module | bytes | above empty | before wasm-opt | target (above empty) |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|");
    for size in sizes {
        let target = SIZE_TARGETS
            .iter()
            .find(|(feature, _)| *feature == size.feature)
            .map_or(String::new(), |&(_, bytes)| {
                let above = size.optimized.saturating_sub(empty);
                format!(
                    "≤ {bytes}: {}",
                    if above <= bytes { "met" } else { "missed" }
                )
            });
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {target} |",
            size.what,
            size.optimized,
            size.optimized as i64 - empty as i64,
            size.raw
        );
    }
    for (feature, found) in functions {
        let measured = sizes
            .iter()
            .find(|s| s.feature == *feature)
            .map_or(0, |s| s.optimized);
        let _ = writeln!(
            w,
            "\n### Where quarry's bytes are: `{feature}`\n\nThe module built again with its \
             symbol names kept and optimized the same way (its code section: {} B in {} \
             functions; the measured module is {measured} B in all). The {TOP_FUNCTIONS} largest \
             functions after inlining (an exported function holds everything inlined into it):\n",
            found.code_bytes,
            found.functions.len()
        );
        let _ = writeln!(w, "| function | bytes | share of code |");
        let _ = writeln!(w, "|---|---|---|");
        for function in found.functions.iter().take(TOP_FUNCTIONS) {
            let _ = writeln!(
                w,
                "| `{}` | {} | {:.1}% |",
                function.name.replace('|', "\\|"),
                function.bytes,
                100.0 * function.bytes as f64 / found.code_bytes.max(1) as f64
            );
        }
        let rest: u64 = found
            .functions
            .iter()
            .skip(TOP_FUNCTIONS)
            .map(|f| f.bytes)
            .sum();
        let _ = writeln!(
            w,
            "| {} more functions | {rest} | {:.1}% |",
            found.functions.len().saturating_sub(TOP_FUNCTIONS),
            100.0 * rest as f64 / found.code_bytes.max(1) as f64
        );
    }
    let _ = writeln!(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_legacy_and_v0_symbols() {
        assert_eq!(
            demangle("_ZN12quarry_alloc4heap4Heap6blocks17ha6c0ed685eba84c0E"),
            "quarry_alloc::heap::Heap::blocks"
        );
        assert_eq!(
            demangle("_ZN12quarry_alloc6bitmap15Bitmap$LT$F$GT$5claim17h3084d3f77e23aa79E"),
            "quarry_alloc::bitmap::Bitmap<F>::claim"
        );
        assert_eq!(
            demangle("_RNvNtNtCsgXGp5Oqx2Ny_4core9panicking11panic_const23panic_const_div_by_zero"),
            "core::panicking::panic_const::panic_const_div_by_zero"
        );
        assert_eq!(demangle("realloc"), "realloc");
    }

    #[test]
    fn reads_a_sample_line() {
        let line = "allocator=talc max=200 actions=2000000 seed=1 ns_per_action=61.25 \
                    peak_live=1234 failures=0 memory_bytes=2097152\n";
        let sample = parse_sample(line).unwrap();
        assert_eq!(sample.ns_per_action, 61.25);
        assert_eq!((sample.peak_live, sample.failures), (1234, 0));
        assert_eq!(sample.memory_bytes, 2 << 20);
    }

    #[test]
    fn a_run_keeps_each_programs_median_process() {
        let at = |ns_per_action, memory_bytes| Sample {
            ns_per_action,
            peak_live: 50,
            failures: 0,
            memory_bytes,
        };
        let kept = median_sample(vec![at(90.0, 1), at(150.0, 2), at(70.0, 3)]);
        assert_eq!((kept.ns_per_action, kept.memory_bytes), (90.0, 1));
        assert_eq!(median_sample(vec![at(80.0, 1)]).ns_per_action, 80.0);
        // Of two, the faster.
        assert_eq!(
            median_sample(vec![at(99.0, 1), at(61.0, 2)]).memory_bytes,
            2
        );
    }

    #[test]
    fn sizes_functions_of_a_tiny_module() {
        // (module (func) (func nop)) with names "a" and "b".
        let module: &[u8] = &[
            0, b'a', b's', b'm', 1, 0, 0, 0, // header
            1, 4, 1, 0x60, 0, 0, // type section: () -> ()
            3, 3, 2, 0, 0, // function section
            10, 8, 2, 2, 0, 0x0b, 3, 0, 0x01, 0x0b, // code section
            0, 14, 4, b'n', b'a', b'm', b'e', 1, 7, 2, 0, 1, b'a', 1, 1, b'b', // names
        ];
        let parsed = wasm::parse(module).unwrap();
        assert_eq!(parsed.bodies, vec![3, 4]);
        assert_eq!(parsed.code_bytes, 8);
        assert_eq!(parsed.names.get(&1).map(String::as_str), Some("b"));
    }
}
