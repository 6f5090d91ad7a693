//! The `peers` report: the method, ratio tables against the baseline (talc) measured in the same
//! run, the absolute figures behind them, and an SVG bar chart of the random-actions ratios.

use crate::efficiency::HeapResult;
use crate::latency::LatencyResult;
use crate::peers::{Peer, BASELINE};
use crate::random_actions::{self, CaseResult};
use crate::stats::Summary;
use std::fmt::Write as _;

/// How, where and when the figures were measured.
pub struct Method {
    pub date: String,
    pub cpu: String,
    pub logical_cpus: usize,
    pub kernel: String,
    pub clocksource: String,
    pub thp: String,
    pub libc: String,
    pub quick: bool,
}

impl Method {
    pub fn gather(quick: bool) -> Method {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let logical_cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let libc = std::process::Command::new("ldd")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        Method {
            date: utc_now(),
            cpu,
            logical_cpus,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
                .trim()
                .to_string(),
            thp: read("/sys/kernel/mm/transparent_hugepage/enabled")
                .trim()
                .to_string(),
            libc,
            quick,
        }
    }

    /// The build, as recorded by build.rs.
    pub fn build_line() -> String {
        format!(
            "profile `{}` (opt-level {}, lto = {}, codegen-units = {}, debug = {}){}, target `{}`, {}",
            env!("QB_PROFILE"),
            env!("QB_OPT_LEVEL"),
            env!("QB_LTO"),
            env!("QB_CODEGEN_UNITS"),
            env!("QB_DEBUG"),
            if env!("QB_RUSTFLAGS").is_empty() {
                String::new()
            } else {
                format!(", RUSTFLAGS `{}`", env!("QB_RUSTFLAGS"))
            },
            env!("QB_TARGET"),
            env!("QB_RUSTC"),
        )
    }
}

/// Everything one `peers` run measured; a workload not run is `None` (or empty).
pub struct Results<'a> {
    pub peers: &'a [Peer],
    pub random: Option<(random_actions::Params, Vec<CaseResult>)>,
    pub efficiency: Option<(usize, Vec<HeapResult>)>,
    pub latency: Option<LatencyResult>,
}

impl Results<'_> {
    fn baseline(&self) -> usize {
        self.peers
            .iter()
            .position(|p| p.name == BASELINE)
            .expect("the baseline peer is in the run")
    }
}

fn ratio_cell(s: &Summary, base: f64) -> String {
    format!(
        "{:.2} ({:.2}–{:.2})",
        s.median / base,
        s.min / base,
        s.max / base
    )
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn header(out: &mut String, first: &str, peers: &[Peer]) {
    write!(out, "| {first} |").unwrap();
    for p in peers {
        write!(out, " {} |", p.name).unwrap();
    }
    writeln!(out).unwrap();
    write!(out, "|---|").unwrap();
    for _ in peers {
        write!(out, "---|").unwrap();
    }
    writeln!(out).unwrap();
}

/// The markdown report; `svg_name` is the chart's file name beside it, if one was written.
pub fn markdown(method: &Method, res: &Results, svg_name: Option<&str>) -> String {
    let peers = res.peers;
    let b = res.baseline();
    let mut out = String::new();
    let o = &mut out;

    writeln!(o, "# quarry-bench peers: allocators compared on the host\n").unwrap();
    if method.quick {
        writeln!(
            o,
            "**Quick mode (`--quick`): a smoke test with fewer, shorter trials — not figures to quote.**\n"
        )
        .unwrap();
    }
    writeln!(
        o,
        "Every ratio is against **{BASELINE} measured in the same run** ({BASELINE} = 1.00); a \
         cell reads `median (min–max)`, where min and max are the peer's own extreme trials over \
         {BASELINE}'s median. Workloads follow `benchmarks.md` (1–3: talc's published method; \
         latency: rlsf's firmware stress shape).\n"
    )
    .unwrap();

    // ---- Method.
    writeln!(o, "## Method\n").unwrap();
    writeln!(o, "- Date: {}", method.date).unwrap();
    writeln!(
        o,
        "- Machine: {} ({} logical CPUs), Linux {}, clocksource `{}`, transparent huge pages `{}`, {}",
        method.cpu, method.logical_cpus, method.kernel, method.clocksource, method.thp, method.libc
    )
    .unwrap();
    writeln!(o, "- Build: {}", Method::build_line()).unwrap();
    writeln!(
        o,
        "- Command: `cargo run --profile bench-release -p quarry-bench -- peers{} --out …`",
        if method.quick { " --quick" } else { "" }
    )
    .unwrap();
    writeln!(o, "- Crates: {}", env!("QB_VERSIONS")).unwrap();
    writeln!(
        o,
        "- Every allocator is called through `&dyn GlobalAlloc` (the same indirect call for all), \
         behind the lock it would really use:"
    )
    .unwrap();
    for p in peers {
        writeln!(o, "  - **{}**: {}", p.name, p.note).unwrap();
    }
    writeln!(
        o,
        "- Fixed heaps: one region of 128 MiB (2 MiB-aligned) and one of 64 KiB (4 KiB-aligned) per \
         fixed-heap allocator, allocated once from the system allocator and pre-touched page by \
         page before any workload; each trial or round builds a fresh allocator over the region. \
         `system` and `mimalloc` take memory from the OS themselves, keep their process-wide state \
         from trial to trial, and have no heap-efficiency figure. The harness's own vectors use \
         the system allocator and are allocated before the timed loops."
    )
    .unwrap();
    writeln!(
        o,
        "- Random numbers: wyrand, one seeded stream per (workload, case, trial, thread), the same \
         for every allocator. Trials are interleaved across allocators, rotating the order.\n"
    )
    .unwrap();

    // ---- Summary.
    writeln!(o, "## Summary\n").unwrap();
    header(o, "workload", peers);
    if let Some((_, cases)) = &res.random {
        for c in cases {
            let base = Summary::of(c.per_peer[b].samples.clone()).median;
            write!(o, "| random actions, {} (× {BASELINE}) |", c.case.label()).unwrap();
            for p in &c.per_peer {
                write!(o, " {:.2} |", Summary::of(p.samples.clone()).median / base).unwrap();
            }
            writeln!(o).unwrap();
        }
    }
    if let Some(lat) = &res.latency {
        write!(o, "| latency p50 / p99, ns per free+alloc |").unwrap();
        for p in &lat.per_peer {
            write!(
                o,
                " {:.1} / {:.1} |",
                Summary::of(p.p50.clone()).median,
                Summary::of(p.p99.clone()).median
            )
            .unwrap();
        }
        writeln!(o).unwrap();
    }
    if let Some((_, heaps)) = &res.efficiency {
        for h in heaps {
            write!(o, "| heap efficiency, {} |", h.heap.label).unwrap();
            for p in &h.per_peer {
                match p {
                    Some(r) => write!(o, " {:.1}% |", 100.0 * mean(r)).unwrap(),
                    None => write!(o, " – |").unwrap(),
                }
            }
            writeln!(o).unwrap();
        }
    }
    writeln!(o).unwrap();

    // ---- 1. Random actions.
    if let Some((params, cases)) = &res.random {
        writeln!(o, "## 1. Random actions\n").unwrap();
        writeln!(
            o,
            "One heap per allocator; size `rand(4..rand(16..max))`, alignment word << (trailing \
             zeros of a random u16 / 2) (75% word, 19% 2×word, then rarer up to 256×word); each \
             action draws `0..=6` (`0..=5` without realloc): 6 reallocates a random live \
             allocation to `rand(1..3*max)`, below 3 — or while fewer than 300 are live — \
             allocates, otherwise frees a random live allocation. First and last byte of every \
             allocation written; realloc asserts the first byte survived. {} trials × ({} ms \
             warm-up + {} ms) per case; score = successful actions of all threads (2 threads share \
             one allocator). Higher is better.\n",
            params.trials,
            params.warmup.as_secs_f64() * 1e3,
            params.duration.as_secs_f64() * 1e3,
        )
        .unwrap();
        if let Some(name) = svg_name {
            writeln!(o, "![random actions, × {BASELINE}]({name})\n").unwrap();
        }
        writeln!(o, "Ratios against {BASELINE}:\n").unwrap();
        header(o, "case", peers);
        for c in cases {
            let base = Summary::of(c.per_peer[b].samples.clone()).median;
            write!(o, "| {} |", c.case.label()).unwrap();
            for p in &c.per_peer {
                write!(
                    o,
                    " {} |",
                    ratio_cell(&Summary::of(p.samples.clone()), base)
                )
                .unwrap();
            }
            writeln!(o).unwrap();
        }
        writeln!(
            o,
            "\nActions per {} ms, median (min–max), in thousands:\n",
            params.duration.as_secs_f64() * 1e3
        )
        .unwrap();
        header(o, "case", peers);
        let mut failures = Vec::new();
        for c in cases {
            write!(o, "| {} |", c.case.label()).unwrap();
            for (i, p) in c.per_peer.iter().enumerate() {
                let s = Summary::of(p.samples.clone());
                write!(
                    o,
                    " {:.0} ({:.0}–{:.0}) |",
                    s.median / 1e3,
                    s.min / 1e3,
                    s.max / 1e3
                )
                .unwrap();
                if p.failures > 0 {
                    failures.push(format!(
                        "{} in {}: {} failed allocations/reallocations",
                        peers[i].name,
                        c.case.label(),
                        p.failures
                    ));
                }
            }
            writeln!(o).unwrap();
        }
        if failures.is_empty() {
            writeln!(o, "\nNo allocation or reallocation failed.\n").unwrap();
        } else {
            writeln!(o, "\nFailures (not counted as actions):\n").unwrap();
            for f in failures {
                writeln!(o, "- {f}").unwrap();
            }
            writeln!(o).unwrap();
        }
    }

    // ---- 2. Efficiency.
    if let Some((rounds, heaps)) = &res.efficiency {
        writeln!(o, "## 2. Heap efficiency\n").unwrap();
        writeln!(
            o,
            "{rounds} rounds per heap size; each round a fresh allocator over the empty heap loops \
             50% allocate (`rand(4..rand(16..max_alloc))`, alignment as in workload 1), 10% free, \
             40% reallocate (to `rand(1..max_realloc)`) until the first failure, then records live \
             bytes (requested sizes of the allocations held) ÷ heap bytes. 128 MiB heap: \
             max_alloc 10 000 B, max_realloc 100 000 B; 64 KiB heap: heap/64 and heap/16. Round r \
             uses the same random stream for every allocator. Headline: the mean over rounds \
             (talc's statistic). Higher is better; allocators without a fixed heap are left out.\n"
        )
        .unwrap();
        writeln!(
            o,
            "| heap | allocator | mean | median (min–max) of rounds | mean × {BASELINE} |"
        )
        .unwrap();
        writeln!(o, "|---|---|---|---|---|").unwrap();
        for h in heaps {
            let base = h.per_peer[b].as_ref().map(|r| mean(r));
            for (i, p) in h.per_peer.iter().enumerate() {
                let Some(r) = p else { continue };
                let s = Summary::of(r.clone());
                writeln!(
                    o,
                    "| {} | {} | {:.1}% | {:.1}% ({:.1}–{:.1}%) | {} |",
                    h.heap.label,
                    peers[i].name,
                    100.0 * mean(r),
                    100.0 * s.median,
                    100.0 * s.min,
                    100.0 * s.max,
                    base.map_or("–".into(), |base| format!("{:.3}", mean(r) / base)),
                )
                .unwrap();
            }
        }
        writeln!(o).unwrap();
    }

    // ---- 3. Latency.
    if let Some(lat) = &res.latency {
        let overheads = Summary::of(lat.overheads.iter().map(|&x| x as f64).collect());
        writeln!(o, "## 3. Latency\n").unwrap();
        writeln!(
            o,
            "ns per free + allocate pair on a warm heap (the allocator's 128 MiB heap): 256 live \
             blocks of 1..=255 B at alignment 4, 8, 16 or 32; each step frees the next slot (round \
             robin) and allocates a fresh random layout in its place (rlsf's firmware stress \
             shape). **Each pair is timed on its own** between two `Instant::now()` reads, and the \
             timer's cost — the median of 10 000 back-to-back `Instant::now()` pairs, measured in \
             each trial: {:.0} ns (min {:.0}, max {:.0}) — is **subtracted**. Per trial: {} warm-up \
             pairs, then {} timed pairs; p50 and p99 of those. As a check on the subtraction, the \
             same number of pairs is then timed as one batch (no clock reads in between): \
             \"batch mean\" (the clock reads order the pipeline around each timed pair, so a pair cannot \
             overlap its neighbours as it does in the batch: p50 can sit a little above the batch \
             mean). {} trials; median (min–max) over trials. Ratios are times (lower is better).\n",
            overheads.median,
            overheads.min,
            overheads.max,
            lat.params.warmup,
            lat.params.pairs,
            lat.params.trials,
        )
        .unwrap();
        writeln!(
            o,
            "| allocator | p50 ns | p99 ns | batch mean ns | p50 × {BASELINE} | p99 × {BASELINE} |"
        )
        .unwrap();
        writeln!(o, "|---|---|---|---|---|---|").unwrap();
        let base50 = Summary::of(lat.per_peer[b].p50.clone()).median;
        let base99 = Summary::of(lat.per_peer[b].p99.clone()).median;
        for (i, p) in lat.per_peer.iter().enumerate() {
            let s50 = Summary::of(p.p50.clone());
            let s99 = Summary::of(p.p99.clone());
            let sb = Summary::of(p.batch_mean.clone());
            writeln!(
                o,
                "| {} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.2} | {:.2} |",
                peers[i].name,
                s50.median,
                s50.min,
                s50.max,
                s99.median,
                s99.min,
                s99.max,
                sb.median,
                sb.min,
                sb.max,
                s50.median / base50,
                s99.median / base99,
            )
            .unwrap();
        }
        writeln!(o).unwrap();
    }

    writeln!(o, "## Not in this run\n").unwrap();
    writeln!(
        o,
        "- Workloads 4–6 of `benchmarks.md` (wasm speed, wasm size, real programs) and the \
         callgrind instruction counts of workload 3 are not part of `quarry-bench peers`; so \
         neither are the wasm-only peers (talc's wasm sources, lol_alloc)."
    )
    .unwrap();
    out
}

// ------------------------------------------------------------------------------------------------
// SVG.

const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A grouped bar chart of the random-actions ratios: one group per case, one bar per allocator,
/// on a log₂ scale with the bars growing from 1.00 (up: more actions than the baseline, down:
/// fewer), the median ratio as the bar and a whisker for the min–max trials.
pub fn svg(peers: &[Peer], cases: &[CaseResult], quick: bool) -> String {
    let b = peers
        .iter()
        .position(|p| p.name == BASELINE)
        .expect("the baseline peer is in the run");
    // (median, min, max) ratios per case and peer.
    let ratios: Vec<Vec<(f64, f64, f64)>> = cases
        .iter()
        .map(|c| {
            let base = Summary::of(c.per_peer[b].samples.clone()).median;
            c.per_peer
                .iter()
                .map(|p| {
                    let s = Summary::of(p.samples.clone());
                    (s.median / base, s.min / base, s.max / base)
                })
                .collect()
        })
        .collect();
    let all = || ratios.iter().flatten();
    // Whole powers of two around every whisker, at least 1/2..2.
    let hi_exp = all()
        .map(|r| r.2.max(f64::MIN_POSITIVE).log2().ceil() as i32)
        .fold(1, i32::max);
    let lo_exp = all()
        .map(|r| r.1.max(f64::MIN_POSITIVE).log2().floor() as i32)
        .fold(-1, i32::min)
        .max(-10);

    let n = peers.len() as f64;
    let bar = 12.0;
    let group = (n * bar + 24.0).max(100.0);
    let (left, right, top_m) = (64.0, 16.0, 48.0);
    let plot_h = 360.0;
    let width = (left + group * cases.len() as f64 + right).max(720.0);
    let group = (width - left - right) / cases.len() as f64;
    let legend_cols = 3usize;
    let legend_rows = peers.len().div_ceil(legend_cols);
    let bottom = top_m + plot_h;
    let height = bottom + 68.0 + 20.0 * legend_rows as f64 + 8.0;
    let y = |v: f64| {
        let e = v
            .max(f64::MIN_POSITIVE)
            .log2()
            .clamp(lo_exp as f64, hi_exp as f64);
        top_m + plot_h * (hi_exp as f64 - e) / (hi_exp - lo_exp) as f64
    };

    let mut s = String::new();
    let o = &mut s;
    writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    writeln!(
        o,
        r#"<text x="{left:.0}" y="20" font-size="15" font-weight="bold">Random actions: actions done × {BASELINE}, same run{}</text>"#,
        if quick { " (QUICK MODE: smoke test)" } else { "" }
    )
    .unwrap();
    writeln!(
        o,
        r##"<text x="{left:.0}" y="38" fill="#444">bar: median of trials; whisker: min–max trials; log scale, bars grow from 1.00 (up = more actions than {BASELINE})</text>"##
    )
    .unwrap();
    // Grid at powers of two.
    for e in lo_exp..=hi_exp {
        let v = 2f64.powi(e);
        let label = if e >= 0 {
            format!("{v:.0}")
        } else {
            format!("1/{:.0}", 1.0 / v)
        };
        writeln!(
            o,
            r##"<line x1="{left:.0}" x2="{:.0}" y1="{:.1}" y2="{:.1}" stroke="{}"/><text x="{:.0}" y="{:.1}" text-anchor="end">{label}</text>"##,
            width - right,
            y(v),
            y(v),
            if e == 0 { "#000" } else { "#ddd" },
            left - 6.0,
            y(v) + 4.0
        )
        .unwrap();
    }
    writeln!(
        o,
        r#"<text transform="translate(16 {:.0}) rotate(-90)" text-anchor="middle">× {BASELINE}</text>"#,
        top_m + plot_h / 2.0
    )
    .unwrap();
    // Bars.
    for (ci, (case, rs)) in cases.iter().zip(&ratios).enumerate() {
        let gx = left + group * ci as f64 + (group - n * bar) / 2.0;
        for (pi, &(med, lo, hi)) in rs.iter().enumerate() {
            let x = gx + bar * pi as f64;
            let (y0, y1) = (y(1.0).min(y(med)), y(1.0).max(y(med)));
            writeln!(
                o,
                r#"<rect x="{x:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}, {}: {med:.2} ({lo:.2}–{hi:.2})</title></rect>"#,
                bar - 2.0,
                (y1 - y0).max(1.0),
                COLORS[pi % COLORS.len()],
                xml_escape(peers[pi].name),
                xml_escape(&case.case.label()),
            )
            .unwrap();
            let cx = x + (bar - 2.0) / 2.0;
            writeln!(
                o,
                r##"<line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                y(lo),
                y(hi)
            )
            .unwrap();
        }
        let label_x = left + group * (ci as f64 + 0.5);
        for (li, part) in case.case.label().split(", ").enumerate() {
            writeln!(
                o,
                r#"<text x="{label_x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                bottom + 16.0 + 14.0 * li as f64,
                xml_escape(part),
            )
            .unwrap();
        }
    }
    // Legend.
    let legend_y = bottom + 68.0;
    let col_w = (width - left - right) / legend_cols as f64;
    for (pi, p) in peers.iter().enumerate() {
        let lx = left + col_w * (pi % legend_cols) as f64;
        let ly = legend_y + 20.0 * (pi / legend_cols) as f64;
        writeln!(
            o,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 10.0,
            COLORS[pi % COLORS.len()],
            lx + 18.0,
            xml_escape(p.name)
        )
        .unwrap();
    }
    writeln!(o, "</svg>").unwrap();
    s
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_819), (2027, 1, 1));
    }
}
