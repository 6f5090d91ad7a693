//! quarry-alloc's benchmarks. Every figure is measured in the same run as the figures it is compared
//! with; medians of several trials, with the spread.
//!
//! `cargo run --release -p quarry-bench -- claim [TRIALS]`: block-run claim and release in a warm
//! arena (the arena engine's own speed).
//!
//! `cargo run --profile bench-release -p quarry-bench -- rss [--out FILE.md]`: memory given back to
//! the OS after 256 MiB are allocated and freed, against talc, rlsf, dlmalloc and glibc.
//!
//! `cargo run --profile bench-release -p quarry-bench -- purge-cost [TRIALS] [--out FILE.md]`: the
//! random-actions speed of `Quarry<Mmap>` with purging on, against off.
//!
//! `cargo run --profile bench-release -p quarry-bench -- footprint [ACTIONS]`: where memory goes in
//! workload 4 (the wasm speed workload) at its peak, for quarry as on wasm and for its peers.
//!
//! `cargo run --profile bench-release -p quarry-bench -- peers [--quick] [--only W,…]
//! [--peers A,…] [--out FILE.md]`: workloads 1–3 of `benchmarks.md` (random actions, heap
//! efficiency, latency) on every allocator of `peers::PEERS`, as ratios against talc measured in
//! the same run; the report goes to stdout and to FILE.md, with the random-actions chart beside it
//! as FILE-random-actions.svg.

mod action;
mod claim;
mod count;
mod efficiency;
mod footprint;
mod latency;
mod peers;
mod purge_cost;
mod random_actions;
mod report;
mod rng;
mod rss;
mod stats;

use peers::{Peer, Region, BASELINE, PEERS};
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: quarry-bench claim [TRIALS]
       quarry-bench peers [--quick] [--only WORKLOAD,...] [--peers NAME,...] [--out FILE.md]
       quarry-bench count ALLOCATOR MAX realloc|plain ROUNDS
       quarry-bench rss [--out FILE.md]
       quarry-bench purge-cost [TRIALS] [--out FILE.md]
       quarry-bench footprint [ACTIONS]

  peers runs workloads 1-3 of benchmarks.md against the allocators of bench/src/peers.rs:
    --only      random-actions, efficiency, latency (default: all three)
    --peers     a subset of the allocators ({BASELINE} is always included, as the baseline)
    --quick     fewer and shorter trials: a smoke test, not figures to quote
    --out       write the markdown report there, and the chart as <stem>-random-actions.svg beside it
  rss allocates 256 MiB, frees it, and reads the resident set (one process per allocator)
  purge-cost runs workload 1 on Quarry<Mmap> with purging on and off
  footprint runs workload 4 on the host and splits the memory at its peak; see footprint.rs
  count runs ROUNDS × 100 random actions (workload 1, one thread, no clock) for callgrind; see count.rs
  allocators: {}",
        PEERS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("claim") => claim_command(&args[1..]),
        Some("peers") => peers_command(&args[1..]),
        Some("count") => count_command(&args[1..]),
        Some("rss") => rss::command(&args[1..]),
        Some("footprint") => footprint::command(&args[1..]),
        Some("purge-cost") => purge_cost::command(&args[1..]),
        Some("rss-one") => rss::one(&args[1..]),
        _ => usage(),
    }
}

fn count_command(args: &[String]) {
    let [peer, max, realloc, rounds] = args else {
        usage()
    };
    let max = max.parse().unwrap_or_else(|_| usage());
    let realloc = realloc == "realloc";
    let rounds = rounds.parse().unwrap_or_else(|_| usage());
    let done = count::run(peer, max, realloc, rounds);
    println!("{done} actions");
}

fn claim_command(args: &[String]) {
    let trials = match args.first() {
        Some(t) => t.parse().unwrap_or_else(|_| usage()),
        None => 11,
    };
    println!("Block-run claim + release through `Arenas::alloc` / `Arenas::free`,");
    println!("arena of 1024 blocks of 1 KiB, committed; ns per pair, median of {trials} trials (min–max).");
    println!("Same run, for scale: the bare bitmap's find-and-claim + release (the two atomic operations");
    println!("every claim costs), and the system allocator's alloc + dealloc of the same size and alignment.\n");
    println!(
        "| case | registry ns | arena handle ns | bitmap ns | system ns | registry ÷ system |"
    );
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

#[derive(Default)]
struct PeersArgs {
    quick: bool,
    random: bool,
    efficiency: bool,
    latency: bool,
    peers: Option<Vec<String>>,
    out: Option<PathBuf>,
}

fn parse_peers_args(args: &[String]) -> PeersArgs {
    let mut a = PeersArgs {
        random: true,
        efficiency: true,
        latency: true,
        ..PeersArgs::default()
    };
    let list = |v: Option<&String>| -> Vec<String> {
        v.unwrap_or_else(|| usage())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--only" => {
                let only = list(it.next());
                a.random = false;
                a.efficiency = false;
                a.latency = false;
                for w in only {
                    match w.as_str() {
                        "random-actions" | "random" | "1" => a.random = true,
                        "efficiency" | "heap-efficiency" | "2" => a.efficiency = true,
                        "latency" | "3" => a.latency = true,
                        _ => usage(),
                    }
                }
            }
            "--peers" => a.peers = Some(list(it.next())),
            "--out" => a.out = Some(PathBuf::from(it.next().unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }
    a
}

fn peers_command(args: &[String]) {
    let args = parse_peers_args(args);
    let peers: Vec<Peer> = match &args.peers {
        None => PEERS.to_vec(),
        Some(names) => {
            for n in names {
                if !PEERS.iter().any(|p| p.name == n) {
                    eprintln!("unknown allocator {n:?}");
                    usage();
                }
            }
            PEERS
                .iter()
                .filter(|p| p.name == BASELINE || names.iter().any(|n| n == p.name))
                .copied()
                .collect()
        }
    };
    let method = report::Method::gather(args.quick);
    eprintln!("build: {}", report::Method::build_line());
    if env!("QB_PROFILE") != "bench-release" {
        eprintln!(
            "note: built with profile `{}`; the reported figures use `--profile bench-release`",
            env!("QB_PROFILE")
        );
    }

    // One pre-touched region per fixed-heap allocator and heap size, allocated once for the run.
    let regions = |len: usize| -> Vec<Option<Region>> {
        peers
            .iter()
            .map(|p| p.is_fixed().then(|| Region::new(len)))
            .collect()
    };
    let mut large = if args.random || args.efficiency || args.latency {
        regions(efficiency::LARGE.len)
    } else {
        Vec::new()
    };

    let random = args.random.then(|| {
        let params = if args.quick {
            random_actions::Params::QUICK
        } else {
            random_actions::Params::FULL
        };
        (params, random_actions::run(&peers, &mut large, params))
    });
    let latency = args.latency.then(|| {
        let params = if args.quick {
            latency::Params::QUICK
        } else {
            latency::Params::FULL
        };
        latency::run(&peers, &mut large, params)
    });
    let efficiency = args.efficiency.then(|| {
        let rounds = if args.quick { 20 } else { 300 };
        let mut small = regions(efficiency::SMALL.len);
        let heaps = vec![
            efficiency::run_heap(&peers, &mut large, efficiency::LARGE, rounds),
            efficiency::run_heap(&peers, &mut small, efficiency::SMALL, rounds),
        ];
        (rounds, heaps)
    });

    let results = report::Results {
        peers: &peers,
        random,
        efficiency,
        latency,
    };
    let svg_path = match (&args.out, &results.random) {
        (Some(out), Some(_)) => {
            let stem = out
                .file_stem()
                .map_or("peers".into(), |s| s.to_string_lossy().into_owned());
            Some(out.with_file_name(format!("{stem}-random-actions.svg")))
        }
        _ => None,
    };
    let svg_name = svg_path
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let md = report::markdown(&method, &results, svg_name.as_deref());
    print!("{md}");
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).expect("the report's directory");
        }
        std::fs::write(out, &md).expect("writing the report");
        eprintln!("wrote {}", out.display());
        if let (Some(path), Some((_, cases))) = (&svg_path, &results.random) {
            std::fs::write(path, report::svg(&peers, cases, args.quick))
                .expect("writing the chart");
            eprintln!("wrote {}", path.display());
        }
    }
}
