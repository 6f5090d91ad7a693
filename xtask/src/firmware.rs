//! The firmware in `firmware/`: quarry-alloc as the global allocator of a Cortex-M program, built
//! for each board and run under qemu.
//!
//! `cargo run --target …` starts qemu through the target's runner in `.cargo/config.toml`, which
//! also puts a timeout on it. The firmware checks its own results and reports them through
//! semihosting as qemu's exit code, which `cargo run` passes on: 0 when every check held, 1 when a
//! check failed or the program faulted, 124 when the timeout killed qemu.

use crate::cmd::Cmd;
use crate::Result;

/// One firmware run: a board, the target the firmware is built for, and the qemu machine that
/// models the board.
pub struct Firmware {
    /// The board's folder in `targets/` (its `memory.x`); `firmware/build.rs` maps the target to it.
    pub board: &'static str,
    pub target: &'static str,
    /// `qemu-system-arm -machine …` (set in the target's runner).
    pub machine: &'static str,
    /// The header of its demo in `cargo xtask run`.
    pub demo: &'static str,
    /// Cargo features of the firmware crate (`compact`, `tiny`: that engine instead of `Quarry`).
    pub features: &'static str,
}

/// The firmware runs, one per board.
pub const RUNS: &[Firmware] = &[
    Firmware {
        board: "lm3s6965evb",
        target: "thumbv7m-none-eabi",
        machine: "lm3s6965evb",
        demo: "firmware: quarry-alloc on a Cortex-M3 with 64 KiB of RAM (thumbv7m-none-eabi, \
               qemu lm3s6965evb), allocating in main and in the SysTick handler",
        features: "",
    },
    Firmware {
        board: "mps2-an385",
        target: "thumbv6m-none-eabi",
        machine: "mps2-an385",
        demo: "firmware: quarry-alloc on ARMv6-M, without compare-and-swap (thumbv6m-none-eabi, \
               qemu mps2-an385), allocating in main and in the SysTick handler",
        features: "",
    },
    Firmware {
        board: "mps2-an386",
        target: "thumbv7em-none-eabihf",
        machine: "mps2-an386",
        demo: "firmware: quarry-alloc on a Cortex-M4F (thumbv7em-none-eabihf, qemu mps2-an386), \
               allocating in main and in the SysTick handler",
        features: "",
    },
    Firmware {
        board: "lm3s6965evb",
        target: "thumbv7m-none-eabi",
        machine: "lm3s6965evb",
        demo: "firmware: the same program on the Cortex-M3 with quarry-alloc's compact engine \
               (`Compact<Sbrk, CriticalSectionLock, 1024>`, feature `compact`)",
        features: "compact",
    },
    Firmware {
        board: "lm3s6965evb",
        target: "thumbv7m-none-eabi",
        machine: "lm3s6965evb",
        demo: "firmware: the same program on the Cortex-M3 with quarry-alloc's tiny engine \
               (`Tiny<Sbrk, CriticalSectionLock, 4096>`, feature `tiny`)",
        features: "tiny",
    },
];

/// How a failed command's error ends (see `Cmd::run`) when the runner's timeout (coreutils'
/// `timeout`) killed qemu.
const TIMED_OUT: &str = "(exit status: 124)";
/// How it ends when the firmware reported a failure through semihosting.
const FAILED: &str = "(exit status: 1)";

impl Firmware {
    /// The step's name in `cargo xtask ci`.
    pub fn name(&self) -> String {
        let engine = if self.features.is_empty() {
            String::new()
        } else {
            format!(", features {}", self.features)
        };
        format!("firmware {} (qemu {}{engine})", self.target, self.machine)
    }

    /// `--features …` when the run has any.
    fn feature_args(&self) -> Vec<&'static str> {
        if self.features.is_empty() {
            Vec::new()
        } else {
            vec!["--features", self.features]
        }
    }

    /// Builds the firmware and runs it under qemu, with the output on the terminal.
    pub fn cmd(&self) -> Cmd {
        Cmd::cargo()
            .args(["run", "--release", "--target", self.target])
            .args(self.feature_args())
            .dir("firmware")
    }

    /// Builds the firmware, runs it under qemu and fails unless it exits with 0.
    pub fn run(&self) -> Result {
        Cmd::cargo()
            .args(["build", "--release", "--target", self.target])
            .args(self.feature_args())
            .dir("firmware")
            .run()
            .map_err(|err| format!("building the firmware for {} failed: {err}", self.board))?;
        self.cmd().run().map_err(|err| self.explain(&err))
    }

    /// What a failed run means, from its exit status.
    fn explain(&self, err: &str) -> String {
        let on = format!("the firmware on {} (qemu {})", self.board, self.machine);
        if err.ends_with(TIMED_OUT) {
            format!(
                "{on} did not finish: the runner's timeout (.cargo/config.toml) stopped qemu; {err}"
            )
        } else if err.ends_with(FAILED) {
            format!("{on} failed a check or faulted (its message is above); {err}")
        } else {
            format!("{on} did not exit with 0; {err}")
        }
    }
}
