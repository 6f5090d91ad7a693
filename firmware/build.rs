//! Puts the board's `memory.x` (from `targets/<board>/`) on the linker's search path, where
//! cortex-m-rt's `link.x` includes it, and tells the program which board it is built for.

use std::env;
use std::path::PathBuf;

/// The board each target triple runs on (under qemu's machine of the same name).
const BOARDS: &[(&str, &str)] = &[
    ("thumbv7m-none-eabi", "lm3s6965evb"),
    ("thumbv6m-none-eabi", "mps2-an385"),
    ("thumbv7em-none-eabihf", "mps2-an386"),
];

fn main() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let Some(&(_, board)) = BOARDS.iter().find(|(triple, _)| *triple == target) else {
        let known: Vec<String> = BOARDS
            .iter()
            .map(|(triple, board)| format!("{triple} ({board})"))
            .collect();
        panic!(
            "no board for target `{target}`; build with --target and one of: {}",
            known.join(", ")
        );
    };

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let board_dir = manifest_dir.join("../targets").join(board);
    let memory_x = board_dir.join("memory.x");
    assert!(
        memory_x.is_file(),
        "{} is missing: every board needs its memory layout",
        memory_x.display()
    );

    println!("cargo:rustc-link-search={}", board_dir.display());
    println!("cargo:rerun-if-changed={}", memory_x.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=QUARRY_BOARD={board}");
}
