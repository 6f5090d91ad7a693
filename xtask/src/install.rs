//! Installs the toolchains, components and targets that `ci` and `run` need, if they are missing.
//!
//! Each requirement is one line in [`ensure_all`]; a new tool is one more line there (plus, for a
//! new kind of tool such as a cargo binary or an apt package, one more `ensure_*` helper).

use crate::cmd::Cmd;
use crate::Result;

const STABLE: &str = "stable";
const NIGHTLY: &str = "nightly";

/// The cross-compilation targets: `ci` checks the library for each of them.
pub const TARGETS: &[&str] = &[
    "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi",
    "thumbv6m-none-eabi",
    "riscv32imac-unknown-none-elf",
    "wasm32-unknown-unknown",
    "wasm32-wasip1",
];

/// The wasm runtime the wasm32-wasip1 programs and tests run in; newer releases need a newer rustc.
const WASMTIME: &str = "wasmtime-cli@48.0.8";

/// The fuzzing driver (libFuzzer through `cargo +nightly fuzz`).
const CARGO_FUZZ: &str = "cargo-fuzz@0.13.2";

/// Installs whatever is missing, printing what it installs.
pub fn ensure_all() -> Result {
    ensure_components(STABLE, &["rustfmt", "clippy"])?;
    ensure_targets(STABLE, TARGETS)?;
    ensure_toolchain(NIGHTLY)?;
    ensure_components(NIGHTLY, &["miri", "rust-src"])?;
    ensure_wasmtime()?;
    ensure_cargo_fuzz()?;
    ensure_apt(&[("qemu-system-arm", "qemu-system-arm")])?;
    Ok(())
}

/// Installs the benchmark tools too: `wasm-opt` (binaryen) and valgrind.
pub fn ensure_bench_tools() -> Result {
    ensure_all()?;
    ensure_apt(&[("wasm-opt", "binaryen"), ("valgrind", "valgrind")])
}

/// Whether `program` can be started (it answers `--version`).
fn on_path(program: &str) -> bool {
    Cmd::new(program).args(["--version"]).read().is_ok()
}

fn ensure_wasmtime() -> Result {
    if on_path("wasmtime") {
        println!("wasmtime: installed");
        return Ok(());
    }
    println!("wasmtime: installing {WASMTIME} (a long build, once)");
    Cmd::cargo().args(["install", "--locked", WASMTIME]).run()
}

fn ensure_cargo_fuzz() -> Result {
    if Cmd::cargo().args(["fuzz", "--version"]).read().is_ok() {
        println!("cargo-fuzz: installed");
        return Ok(());
    }
    println!("cargo-fuzz: installing {CARGO_FUZZ}");
    Cmd::cargo().args(["install", "--locked", CARGO_FUZZ]).run()
}

/// Installs the Debian packages whose programs are missing: `(program, package)` pairs.
fn ensure_apt(wanted: &[(&str, &str)]) -> Result {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        let programs: Vec<&str> = wanted.iter().map(|&(program, _)| program).collect();
        println!("{}: installed", programs.join(", "));
        return Ok(());
    }
    println!("installing Debian packages {}", missing.join(", "));
    let root = Cmd::new("id").args(["-u"]).read()?.trim() == "0";
    let apt = |args: &[&str]| {
        if root {
            Cmd::new("apt-get").args(args)
        } else {
            Cmd::new("sudo").args(["apt-get"]).args(args)
        }
    };
    apt(&["update", "-q"]).run_quiet()?;
    apt(&["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
}

/// Builds Miri's standard library for `target` (`None`: the host). Fast when it is already built.
pub fn miri_setup(target: Option<&str>) -> Result {
    let mut setup = Cmd::cargo().args(["+nightly", "miri", "setup"]);
    if let Some(target) = target {
        setup = setup.args(["--target", target]);
    }
    setup.run_quiet()
}

fn ensure_toolchain(toolchain: &str) -> Result {
    let installed = Cmd::rustup().args(["toolchain", "list"]).read()?;
    if installed.lines().any(|line| is_toolchain(line, toolchain)) {
        println!("{toolchain}: toolchain installed");
        return Ok(());
    }
    println!("{toolchain}: installing the toolchain");
    Cmd::rustup()
        .args(["toolchain", "install", toolchain, "--profile", "minimal"])
        .run()
}

fn ensure_components(toolchain: &str, components: &[&str]) -> Result {
    let list = ["component", "list", "--installed", "--toolchain", toolchain];
    let installed = Cmd::rustup().args(list).read()?;
    // Installed components are listed with the host triple (`clippy-x86_64-unknown-linux-gnu`),
    // except target-independent ones (`rust-src`).
    let missing = missing(components, |component| {
        let with_host = format!("{component}-");
        installed
            .lines()
            .any(|line| line == component || line.starts_with(&with_host))
    });
    if missing.is_empty() {
        println!(
            "{toolchain}: components {} installed",
            components.join(", ")
        );
        return Ok(());
    }
    println!("{toolchain}: installing components {}", missing.join(", "));
    Cmd::rustup()
        .args(["component", "add"])
        .args(&missing)
        .args(["--toolchain", toolchain])
        .run()
}

fn ensure_targets(toolchain: &str, targets: &[&str]) -> Result {
    let list = ["target", "list", "--installed", "--toolchain", toolchain];
    let installed = Cmd::rustup().args(list).read()?;
    let missing = missing(targets, |target| {
        installed.lines().any(|line| line == target)
    });
    if missing.is_empty() {
        println!("{toolchain}: targets {} installed", targets.join(", "));
        return Ok(());
    }
    println!("{toolchain}: installing targets {}", missing.join(", "));
    Cmd::rustup()
        .args(["target", "add"])
        .args(&missing)
        .args(["--toolchain", toolchain])
        .run()
}

fn missing<'a>(wanted: &[&'a str], is_installed: impl Fn(&str) -> bool) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|item| !is_installed(item))
        .collect()
}

/// Whether a line of `rustup toolchain list` is `toolchain` (`nightly-x86_64-unknown-linux-gnu
/// (default)` is `nightly`; a dated `nightly-2025-01-01-...` is not).
fn is_toolchain(line: &str, toolchain: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or("");
    match name.strip_prefix(toolchain) {
        Some("") => true,
        Some(rest) => rest.starts_with('-') && !rest[1..].starts_with(|c: char| c.is_ascii_digit()),
        None => false,
    }
}
