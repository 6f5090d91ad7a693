//! quarry-alloc's benchmarks. Every figure is measured in the same run as the figures it is compared
//! with; medians of several trials, with the spread.
//!
//! `cargo run --release -p quarry-bench -- claim [TRIALS]`: block-run claim and release in a warm
//! arena (the arena engine's own speed).

mod claim;
mod stats;

fn usage() -> ! {
    eprintln!("usage: quarry-bench claim [TRIALS]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials = match args.get(1) {
        Some(t) => t.parse().unwrap_or_else(|_| usage()),
        None => 11,
    };
    match args.first().map(String::as_str) {
        Some("claim") => {
            println!("Block-run claim + release through `Arenas::alloc` / `Arenas::free`,");
            println!("arena of 1024 blocks of 1 KiB, committed; ns per pair, median of {trials} trials (min–max).");
            println!("Same run, for scale: the bare bitmap's find-and-claim + release (the two atomic operations");
            println!("every claim costs), and the system allocator's alloc + dealloc of the same size and alignment.\n");
            println!("| case | registry ns | arena handle ns | bitmap ns | system ns | registry ÷ system |");
            println!("|---|---|---|---|---|---|");
            let show = |s: stats::Summary| format!("{:.1} ({:.1}–{:.1})", s.median, s.min, s.max);
            for row in claim::run(trials) {
                println!(
                    "| {} | {} | {} | {} | {} | {:.2} |",
                    row.case,
                    show(row.quarry),
                    show(row.handle),
                    show(row.bitmap),
                    show(row.system),
                    row.quarry.median / row.system.median,
                );
            }
        }
        _ => usage(),
    }
}
