//! A picture of the heap: the state of every block of every arena, as data
//! ([`Arenas::block_states`]) and as an SVG image ([`Arenas::write_svg`]), one row of squares
//! per bitmap field.

use super::Arenas;
use crate::arena::Arena;
use crate::backend::OsBackend;
use core::fmt;

/// What one arena block is doing, as the picture shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockState {
    /// Handed out (to a page, a large object, or a caller of the registry).
    InUse,
    /// Free, with a purge scheduled: its physical memory goes back to the backend when the purge
    /// delay has passed.
    PurgeScheduled,
    /// Free and committed, holding old data.
    Dirty,
    /// Free and committed, reading as zero (never handed out, or purged since).
    Clean,
    /// Free and not committed: only address space.
    Uncommitted,
}

impl BlockState {
    /// Every state, in the order of the picture's legend.
    pub const ALL: [BlockState; 5] = [
        BlockState::InUse,
        BlockState::PurgeScheduled,
        BlockState::Dirty,
        BlockState::Clean,
        BlockState::Uncommitted,
    ];

    /// Words for the legend.
    pub fn label(self) -> &'static str {
        match self {
            BlockState::InUse => "in use",
            BlockState::PurgeScheduled => "free, purge scheduled",
            BlockState::Dirty => "free, committed, dirty",
            BlockState::Clean => "free, committed, zero",
            BlockState::Uncommitted => "free, not committed",
        }
    }

    /// The fill colour in the SVG.
    fn color(self) -> &'static str {
        match self {
            BlockState::InUse => "#2b6cb0",
            BlockState::PurgeScheduled => "#dd6b20",
            BlockState::Dirty => "#a0aec0",
            BlockState::Clean => "#e2e8f0",
            BlockState::Uncommitted => "#ffffff",
        }
    }

    fn of(arena: &Arena, block: usize) -> BlockState {
        if arena.in_use().is_set(block) {
            BlockState::InUse
        } else if arena.purge().is_some_and(|p| p.is_set(block)) {
            BlockState::PurgeScheduled
        } else if arena.committed().is_some_and(|c| !c.is_set(block)) {
            BlockState::Uncommitted
        } else if arena.dirty().is_set(block) {
            BlockState::Dirty
        } else {
            BlockState::Clean
        }
    }
}

/// Squares per row: one bitmap field.
const ROW: usize = usize::BITS as usize;
/// Pixels: a square's side, the gap after it, the margin, a text line.
const SQUARE: usize = 9;
const STEP: usize = SQUARE + 1;
const MARGIN: usize = 10;
const LINE: usize = 18;

impl<B: OsBackend, const MAX_ARENAS: usize, const META_BYTES: usize>
    Arenas<B, MAX_ARENAS, META_BYTES>
{
    /// Calls `f` with every block of every arena: the arena's id, the block's index and its state.
    /// The states are read without stopping other threads, so a picture taken while they allocate
    /// is a sketch.
    pub fn block_states(&self, mut f: impl FnMut(crate::ArenaId, usize, BlockState)) {
        for arena in self.arenas() {
            for block in 0..arena.block_count() {
                f(arena.id, block, BlockState::of(arena, block));
            }
        }
    }

    /// Writes an SVG image of every arena: a title line, then its blocks as squares, 64 to a row
    /// (32 on 32-bit targets), coloured by [`BlockState`], with a legend on top.
    pub fn write_svg(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let width = 2 * MARGIN + ROW * STEP;
        let rows = |arena: &Arena| arena.block_count().div_ceil(ROW);
        let height = MARGIN
            + BlockState::ALL.len() * LINE
            + self
                .arenas()
                .map(|a| LINE + rows(a) * STEP + MARGIN)
                .sum::<usize>()
            + MARGIN;
        writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             font-family=\"monospace\" font-size=\"12\">"
        )?;
        writeln!(
            out,
            "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
        )?;
        let mut y = MARGIN;
        for state in BlockState::ALL {
            square(out, MARGIN, y + 2, 1, state)?;
            writeln!(
                out,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                MARGIN + 2 * STEP,
                y + 11,
                state.label()
            )?;
            y += LINE;
        }
        for arena in self.arenas() {
            y += MARGIN;
            writeln!(
                out,
                "<text x=\"{MARGIN}\" y=\"{}\">arena {}: {} blocks of {} bytes{}</text>",
                y + 12,
                arena.id.get(),
                arena.block_count(),
                arena.block_size(),
                if arena.exclusive { ", exclusive" } else { "" }
            )?;
            y += LINE;
            // One rectangle per run of equal states in a row.
            for row in 0..rows(arena) {
                let first = row * ROW;
                let end = (first + ROW).min(arena.block_count());
                let mut start = first;
                while start < end {
                    let state = BlockState::of(arena, start);
                    let mut stop = start + 1;
                    while stop < end && BlockState::of(arena, stop) == state {
                        stop += 1;
                    }
                    square(
                        out,
                        MARGIN + (start - first) * STEP,
                        y + row * STEP,
                        stop - start,
                        state,
                    )?;
                    start = stop;
                }
            }
            y += rows(arena) * STEP;
        }
        writeln!(out, "</svg>")
    }
}

/// A run of `n` squares of `state` from `(x, y)`.
fn square(
    out: &mut dyn fmt::Write,
    x: usize,
    y: usize,
    n: usize,
    state: BlockState,
) -> fmt::Result {
    writeln!(
        out,
        "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{SQUARE}\" fill=\"{}\" stroke=\"#718096\" \
         stroke-width=\"0.5\"/>",
        n * STEP - 1,
        state.color()
    )
}
