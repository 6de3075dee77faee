//! `shmdeque bench`: shmdeque against a pipe and a Unix socket, producer and consumer in two processes.
//!
//! Prints a markdown report: throughput by transport and message size (median of several runs after a
//! warm-up), ping-pong round-trip percentiles, the CPU a blocked consumer burns, and the 64-byte case again
//! with a third process spinning on a core. With `--out DIR` also writes `bench.csv` and `throughput.svg`.
//! The transports and the measurement bodies live in the library (`shmdeque_cli::bench`), shared with
//! `cargo bench`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shmdeque_cli::bench::{self as harness, BUFFER_BYTES, Builtin, SIZES, Spinner};
use shmdeque_cli::with_builtin;

/// Options of `shmdeque bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Run a short version (well under 30 s): fewer messages, one run per figure, round trips at 64 B only.
    #[arg(long)]
    pub quick: bool,
    /// Also write `bench.csv` and `throughput.svg` (throughput by message size) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Returns at once unless this process was spawned as a benchmark child; then runs the child role and exits.
pub fn maybe_run_child() {
    harness::maybe_serve_builtin();
}

/// How much to measure.
struct Plan {
    quick: bool,
    /// Measured runs per figure (the median is reported), after one warm-up run.
    runs: usize,
    /// Round trips per ping-pong run, after as many again of warm-up.
    round_trips: u64,
    /// Message sizes of the round-trip measurement.
    rtt_sizes: &'static [usize],
    /// How long the consumer stays blocked.
    block: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan { quick, runs: 1, round_trips: 5_000, rtt_sizes: &[64], block: Duration::from_millis(500) }
        } else {
            Plan { quick, runs: 5, round_trips: 20_000, rtt_sizes: &SIZES, block: Duration::from_secs(2) }
        }
    }

    /// Messages per throughput run: about 256 MiB (16 MiB quick), between 4 Ki and 1 Mi messages.
    fn count(&self, size: usize) -> u64 {
        let bytes: usize = if self.quick { 16 << 20 } else { 256 << 20 };
        (bytes / size).clamp(4096, if self.quick { 1 << 16 } else { 1 << 20 }) as u64
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
struct Row {
    section: &'static str,
    label: &'static str,
    size: usize,
    count: u64,
    runs: usize,
    msgs_per_s: Option<f64>,
    ratio: Option<f64>,
    p50: Option<Duration>,
    p99: Option<Duration>,
    buffers: String,
}

impl Row {
    fn mb_per_s(&self) -> Option<f64> {
        self.msgs_per_s.map(|r| r * self.size as f64 / 1e6)
    }
}

/// Runs the benchmark and prints the markdown table.
///
/// # Errors
/// A one-line message when a transport fails or the output cannot be written.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let plan = Plan::new(args.quick);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let started = Instant::now();
    let load_before = load_average();
    let mut probes = Probes::default();
    let mut rows = Vec::new();

    for &size in &SIZES {
        let rtt = plan.rtt_sizes.contains(&size);
        rows.extend(measure("throughput", &Builtin::ALL, size, &plan, rtt, Some(&mut probes))?);
    }
    let blocked = blocked_cpu(&plan)?;
    progress("spinner started: 64 B with a third process spinning");
    {
        let _spinner = Spinner::start()?;
        let which = [Builtin::Pipe, Builtin::Socket, Builtin::Shm, Builtin::ShmInPlace, Builtin::ShmBatch];
        // No probes here: the spinner would make each take up to its two-second limit.
        rows.extend(measure("contended", &which, 64, &plan, true, None)?);
    }
    set_ratios(&mut rows);

    let report = markdown(&rows, &blocked, &plan, load_before, &probes, started.elapsed());
    print!("{report}");
    if let Some(dir) = &args.out {
        write_file(&dir.join("bench.csv"), &csv(&rows))?;
        write_file(&dir.join("bench.md"), &report)?;
        chart(&dir.join("throughput.svg"), &rows)?;
    }
    Ok(())
}

fn progress(what: &str) {
    eprintln!("bench: {what}");
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Throughput (and, for one-message-per-call transports when `rtt`, round trips) of each transport in
/// `which` at `size`, one row each. The transports take turns run by run rather than one after another, so
/// that a drift in the machine's speed (virtual machines can drift for minutes at a time) falls on all of
/// them alike and the ratios within a section stay comparable.
fn measure(
    section: &'static str,
    which: &[Builtin],
    size: usize,
    plan: &Plan,
    rtt: bool,
    mut probes: Option<&mut Probes>,
) -> Result<Vec<Row>, String> {
    let count = plan.count(size);
    let what = |b: Builtin| format!("{section} {} {}", b.label(), harness::bytes(size));
    // Warm-up: page faults on fresh buffers, CPU frequency, the child's first run of the code.
    for &b in which {
        progress(&format!("{} (warm-up)", what(b)));
        with_builtin!(b, |t| harness::throughput(&t, size, (count / 4).max(1024)))?;
    }
    let mut rates = vec![Vec::with_capacity(plan.runs); which.len()];
    let mut buffers = vec![String::new(); which.len()];
    for run in 1..=plan.runs {
        if let Some(p) = probes.as_deref_mut() {
            p.take(size);
        }
        for (i, &b) in which.iter().enumerate() {
            progress(&format!("{} (run {run} of {})", what(b), plan.runs));
            let (elapsed, used) = with_builtin!(b, |t| harness::throughput(&t, size, count))?;
            rates[i].push(count as f64 / elapsed.as_secs_f64());
            buffers[i] = used;
        }
    }
    let mut p50s = vec![Vec::new(); which.len()];
    let mut p99s = vec![Vec::new(); which.len()];
    if rtt {
        let runs = plan.runs.clamp(1, 3);
        for run in 1..=runs {
            for (i, &b) in which.iter().enumerate().filter(|(_, b)| b.batch() == 1) {
                progress(&format!("{} (round trips, run {run} of {runs})", what(b)));
                let samples = with_builtin!(b, |t| harness::round_trips(&t, size, plan.round_trips, plan.round_trips))?;
                p50s[i].push(harness::quantile(&samples, 0.5).unwrap_or_default().as_secs_f64());
                p99s[i].push(harness::quantile(&samples, 0.99).unwrap_or_default().as_secs_f64());
            }
        }
    }
    let median_of = |v: &Vec<f64>| (!v.is_empty()).then(|| Duration::from_secs_f64(harness::median(v)));
    Ok(which
        .iter()
        .enumerate()
        .map(|(i, &b)| Row {
            section,
            label: b.label(),
            size,
            count,
            runs: plan.runs,
            msgs_per_s: Some(harness::median(&rates[i])),
            ratio: None,
            p50: median_of(&p50s[i]),
            p99: median_of(&p99s[i]),
            buffers: std::mem::take(&mut buffers[i]),
        })
        .collect())
}

/// Each row's message rate over the one-message-per-call pipe's in the same section and size.
fn set_ratios(rows: &mut [Row]) {
    let pipe = Builtin::Pipe.label();
    let base: Vec<(&'static str, usize, Option<f64>)> =
        rows.iter().filter(|r| r.label == pipe).map(|r| (r.section, r.size, r.msgs_per_s)).collect();
    for r in rows.iter_mut() {
        let b = base.iter().find(|(s, z, _)| *s == r.section && *z == r.size).and_then(|(_, _, v)| *v);
        r.ratio = match (r.msgs_per_s, b) {
            (Some(v), Some(b)) if b > 0.0 => Some(v / b),
            _ => None,
        };
    }
}

/// CPU burnt by a consumer blocked on an empty channel, per transport.
fn blocked_cpu(plan: &Plan) -> Result<Vec<(&'static str, Duration)>, String> {
    let which: &[Builtin] = if plan.quick { &[Builtin::Shm] } else { &[Builtin::Shm, Builtin::Pipe, Builtin::Socket] };
    which
        .iter()
        .map(|&b| {
            progress(&format!("blocked consumer {}", b.label()));
            with_builtin!(b, |t| harness::blocked_cpu(&t, plan.block)).map(|cpu| (b.label(), cpu))
        })
        .collect()
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_us(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| {
        let us = d.as_secs_f64() * 1e6;
        if us < 10.0 { format!("{us:.2} µs") } else { format!("{us:.1} µs") }
    })
}

fn table(out: &mut String, rows: &[&Row]) {
    let _ = writeln!(out, "| transport | size | msg/s | MB/s | vs pipe | RTT p50 | RTT p99 |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            harness::bytes(r.size),
            r.msgs_per_s.map_or("–".into(), fmt_rate),
            r.mb_per_s().map_or("–".into(), |v| format!("{v:.0}")),
            r.ratio.map_or("–".into(), |v| format!("{v:.2}x")),
            fmt_us(r.p50),
            fmt_us(r.p99),
        );
    }
}

/// Machine facts for the report header.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or("unknown".into(), |s| s.trim().to_owned());
    format!("{cores} cores, {cpu}, Linux {kernel}")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// [`harness::line_round_trip`] before each round of throughput runs, by message size: how close the two
/// CPUs were while each part of the table was measured.
#[derive(Default)]
struct Probes(Vec<(usize, Vec<Duration>, usize)>);

impl Probes {
    fn take(&mut self, size: usize) {
        let probe = harness::line_round_trip();
        if self.0.last().is_none_or(|(s, ..)| *s != size) {
            self.0.push((size, Vec::new(), 0));
        }
        if let Some((_, seen, busy)) = self.0.last_mut() {
            match probe {
                Some(d) => seen.push(d),
                None => *busy += 1,
            }
        }
    }

    /// One line per size: the lowest and highest round trip seen, and how many probes found the CPUs busy.
    fn describe(&self) -> String {
        let ns = |d: &Duration| format!("{:.0}", d.as_secs_f64() * 1e9);
        self.0
            .iter()
            .map(|(size, seen, busy)| {
                let range = match (seen.iter().min(), seen.iter().max()) {
                    (Some(lo), Some(hi)) if lo == hi => format!("{} ns", ns(lo)),
                    (Some(lo), Some(hi)) => format!("{}-{} ns", ns(lo), ns(hi)),
                    _ => "not measured".into(),
                };
                let busy = if *busy > 0 { format!(" ({busy} busy)") } else { String::new() };
                format!("{} {range}{busy}", harness::bytes(*size))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn markdown(
    rows: &[Row],
    blocked: &[(&str, Duration)],
    plan: &Plan,
    load: String,
    probes: &Probes,
    took: Duration,
) -> String {
    let mut out = String::new();
    let mode = if plan.quick { "`shmdeque bench --quick`" } else { "`shmdeque bench`" };
    let _ = writeln!(out, "## shmdeque benchmark\n");
    let _ = writeln!(
        out,
        "{mode} on {}; load average {} before, {} after; {:.0} s.\n",
        machine(),
        load,
        load_average(),
        took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "How close the two CPUs were, as a cache line's round trip between two threads of this process, \
         before each round of runs (on a virtual machine it can change from one second to the next, \
         presumably with where the host runs the virtual CPUs; every cross-process figure moves with it): \
         {}.\n",
        probes.describe()
    );
    let _ = writeln!(
        out,
        "Producer and consumer in two processes. msg/s: median of {} run(s) after a warm-up run, the \
         transports of one size taking turns run by run; every message is compared byte for byte with the \
         one sent. MB/s counts payload bytes (10^6). vs pipe: \
         message rate over the pipe's with one message per call, same size. RTT: ping-pong of one message, \
         {} round trips per run after as many of warm-up, median of up to 3 runs' percentiles.\n",
        plan.runs, plan.round_trips
    );
    let main: Vec<&Row> = rows.iter().filter(|r| r.section == "throughput").collect();
    table(&mut out, &main);
    let _ = writeln!(out, "\nBuffers (about {} each):", harness::bytes(BUFFER_BYTES));
    let mut seen = Vec::new();
    for r in &main {
        let line = format!("{} at {}: {}", r.label, harness::bytes(r.size), r.buffers);
        let key = (r.label, r.buffers.clone());
        if r.label.starts_with("shmdeque") && r.label != "shmdeque" {
            continue;
        }
        if r.label.starts_with("shmdeque") || !seen.contains(&key) {
            let _ = writeln!(out, "- {line}");
            seen.push(key);
        }
    }
    let _ = writeln!(
        out,
        "\nVariants: `pipe`/`unix socket`: one `write` and one `read` per message (the size is known to both \
         sides, so no framing); `x64`: 64 messages, each with a 4-byte length, copied into one buffer and \
         sent with one `write` (as `BufWriter` does), read with reads of {} or one batch if larger, frames \
         parsed out of the buffer (as `BufReader` does). `shmdeque`: `push_back` / `pop_front` (copies the message into a new `Vec`); \
         `in-place`: `push_back_with` / `pop_front_with`; `x64`: `push_back_many` / `pop_front_many_with` of 64 \
         messages per lock acquisition.\n",
        harness::bytes(harness::READ_BUFFER_BYTES)
    );
    let _ = writeln!(out, "### Consumer blocked on an empty channel for {:.1} s\n", plan.block.as_secs_f64());
    let _ = writeln!(out, "| transport | CPU time | share of the wait |");
    let _ = writeln!(out, "|---|---:|---:|");
    for (label, cpu) in blocked {
        let share = cpu.as_secs_f64() / plan.block.as_secs_f64() * 100.0;
        let _ = writeln!(out, "| {label} | {:.2} ms | {share:.3} % |", cpu.as_secs_f64() * 1e3);
    }
    let _ = writeln!(out, "\n### 64 B with a third process spinning on one of the cores\n");
    let contended: Vec<&Row> = rows.iter().filter(|r| r.section == "contended").collect();
    table(&mut out, &contended);
    out
}

fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "section,transport,size_bytes,messages,runs,msg_per_s,mb_per_s,ratio_to_pipe,rtt_p50_us,rtt_p99_us,buffers\n",
    );
    let num = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    let us = |d: Option<Duration>| num(d.map(|d| d.as_secs_f64() * 1e6), 3);
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},\"{}\"",
            r.section,
            r.label,
            r.size,
            r.count,
            r.runs,
            num(r.msgs_per_s, 0),
            num(r.mb_per_s(), 1),
            num(r.ratio, 3),
            us(r.p50),
            us(r.p99),
            r.buffers
        );
    }
    out
}

/// Throughput (MB/s) by message size, one line per transport, log-log.
fn chart(path: &Path, rows: &[Row]) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let main: Vec<&Row> = rows.iter().filter(|r| r.section == "throughput" && r.mb_per_s().is_some()).collect();
    let ys: Vec<f64> = main.iter().filter_map(|r| r.mb_per_s()).collect();
    let ymin = ys.iter().copied().fold(f64::INFINITY, f64::min).max(0.01) / 2.0;
    let ymax = ys.iter().copied().fold(0.0, f64::max).max(ymin * 4.0) * 2.0;
    let (xmin, xmax) = (SIZES[0] as f64 / 1.5, SIZES[SIZES.len() - 1] as f64 * 1.5);

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput between two processes by message size", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (xmin..xmax).log_scale().with_key_points(SIZES.iter().map(|&s| s as f64).collect()),
            (ymin..ymax).log_scale(),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc("MB/s (payload)")
        .x_label_formatter(&|v| harness::bytes(v.round() as usize))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, b) in Builtin::ALL.into_iter().enumerate() {
        let points: Vec<(f64, f64)> = main
            .iter()
            .filter(|r| r.label == b.label())
            .filter_map(|r| r.mb_per_s().map(|y| (r.size as f64, y)))
            .collect();
        // Fixed, distinguishable colours: the baselines in blue and green shades, shmdeque in warm ones.
        const COLORS: [RGBColor; 7] = [
            RGBColor(31, 119, 180),
            RGBColor(120, 170, 220),
            RGBColor(44, 160, 44),
            RGBColor(140, 205, 120),
            RGBColor(214, 39, 40),
            RGBColor(148, 52, 180),
            RGBColor(255, 127, 14),
        ];
        let color = COLORS[i % COLORS.len()].to_rgba();
        let style = ShapeStyle::from(&color).stroke_width(if b.label().starts_with("shmdeque") { 3 } else { 2 });
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(|e| err(&e))?
            .label(b.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
