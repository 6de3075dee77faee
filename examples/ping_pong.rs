//! Round trips and one-way throughput between two processes, written against the public API only: the
//! program behind the README's latency figures, and a template for measuring the deque in your own harness.
//!
//! This process creates two deques, `ping` and `pong`, and starts a copy of itself that echoes every
//! message it pops from `ping` back onto `pong`. Each run times `--count` round trips (after `--warmup`
//! untimed ones) of a `--size`-byte message, then streams `--stream` messages one way, one per call, and
//! times them until the echo process says it has them all. Every run uses new deques and a new echo process,
//! so one run's state (the adaptive spin's, the scheduler's) does not carry into the next.
//!
//! ```text
//! cargo run --release --example ping_pong -- [--size 64] [--runs 5] [--warmup 10000] [--count 100000]
//!     [--stream 2000000] [--strategy adaptive|busy-spin|yielding|blocking] [--form copy|in-place]
//!     [--transport deque|pipe]
//! ```
//!
//! `--form copy` pops into a reused buffer (`pop_front_into`) and pushes the slice (`push_back`);
//! `--form in-place` reads and writes the slots themselves (`pop_front_with`, `push_back_with`).
//! `--transport pipe` runs the same loops over two pipes (`read_exact` / `write_all` of the same bytes) as
//! a baseline. Every message carries its sequence number, and both sides check it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmdeque::{Builder, CreateMode, RawDeque, WaitStrategy};

/// What one run does, shared by both processes through the command line.
#[derive(Clone, Copy)]
struct Plan {
    size: usize,
    warmup: u64,
    count: u64,
    stream: u64,
    strategy: WaitStrategy,
    in_place: bool,
    pipe: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ping_pong: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (plan, runs) = parse(&args)?;
    if args.first().map(String::as_str) == Some("echo") {
        let name =
            args.get(1).ok_or("echo: the deques' name is missing (this mode is started by the program itself)")?;
        return echo(name, &plan);
    }
    println!(
        "{} B, {} {}, {} warm-up + {} timed round trips, {} streamed one per call, {runs} runs",
        plan.size,
        if plan.pipe { "pipe" } else { "deque" },
        if plan.pipe {
            String::new()
        } else {
            format!("{}, {:?}", if plan.in_place { "in place" } else { "copying" }, plan.strategy)
        },
        plan.warmup,
        plan.count,
        plan.stream,
    );
    println!("run  p50 us   p99 us   p99.9 us  max us    stream M msg/s  line ns");
    for run in 1..=runs {
        let line = line_round_trip();
        let (mut rtt, rate) = one_run(&plan, run)?;
        rtt.sort_unstable();
        let q = |p: f64| rtt[((rtt.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
        let (p50, p99, p999, max) = (q(0.5), q(0.99), q(0.999), q(1.0));
        println!("{run:<4} {p50:<8.2} {p99:<8.2} {p999:<9.2} {max:<9.1} {:<15.2} {line:.0}", rate / 1e6);
    }
    Ok(())
}

/// How close the two CPUs are right now, as the median round trip of a cache line between two threads that
/// spin on it, in nanoseconds: every cross-process figure follows it. (On a virtual machine it can change
/// within seconds.)
fn line_round_trip() -> f64 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const TRIPS: u32 = 20_000;
    let word = AtomicU32::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..TRIPS {
                while word.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                word.store(2 * i + 2, Ordering::Release);
            }
        });
        let mut times = Vec::with_capacity(TRIPS as usize);
        for i in 0..TRIPS {
            let start = Instant::now();
            word.store(2 * i + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
            times.push(start.elapsed());
        }
        times.sort_unstable();
        times[times.len() / 2].as_nanos() as f64
    })
}

fn parse(args: &[String]) -> Result<(Plan, u32), String> {
    let mut plan = Plan {
        size: 64,
        warmup: 10_000,
        count: 100_000,
        stream: 2_000_000,
        strategy: WaitStrategy::Adaptive,
        in_place: false,
        pipe: false,
    };
    let mut runs = 5;
    // The echo process gets `echo NAME` first, then the same options.
    let skip = if args.first().map(String::as_str) == Some("echo") { 2 } else { 0 };
    let mut it = args.iter().skip(skip);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--size" => plan.size = number()? as usize,
            "--warmup" => plan.warmup = number()?,
            "--count" => plan.count = number()?,
            "--stream" => plan.stream = number()?,
            "--runs" => runs = number()? as u32,
            "--strategy" => {
                plan.strategy = match value.as_str() {
                    "adaptive" => WaitStrategy::Adaptive,
                    "busy-spin" => WaitStrategy::BusySpin,
                    "yielding" => WaitStrategy::Yielding,
                    "blocking" => WaitStrategy::Blocking,
                    _ => return Err(format!("--strategy: adaptive, busy-spin, yielding or blocking, not {value}")),
                }
            }
            "--form" => {
                plan.in_place = match value.as_str() {
                    "copy" => false,
                    "in-place" => true,
                    _ => return Err(format!("--form: copy or in-place, not {value}")),
                }
            }
            "--transport" => {
                plan.pipe = match value.as_str() {
                    "deque" => false,
                    "pipe" => true,
                    _ => return Err(format!("--transport: deque or pipe, not {value}")),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if plan.size < 8 || plan.count == 0 || runs == 0 {
        return Err("--size must be at least 8 (the sequence number), --count and --runs at least 1".into());
    }
    Ok((plan, runs))
}

/// The message numbered `seq`: its number, then bytes derived from it.
fn fill(seq: u64, msg: &mut [u8]) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in msg[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
}

fn check(seq: u64, msg: &[u8], size: usize) -> Result<(), String> {
    let got = msg.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    if msg.len() != size || got != Some(seq) {
        return Err(format!("expected message {seq} of {size} bytes, got {} bytes numbered {got:?}", msg.len()));
    }
    Ok(())
}

fn args_of(plan: &Plan) -> Vec<String> {
    let strategy = match plan.strategy {
        WaitStrategy::BusySpin => "busy-spin",
        WaitStrategy::Yielding => "yielding",
        WaitStrategy::Blocking => "blocking",
        _ => "adaptive",
    };
    [
        ("--size", plan.size.to_string()),
        ("--warmup", plan.warmup.to_string()),
        ("--count", plan.count.to_string()),
        ("--stream", plan.stream.to_string()),
        ("--strategy", strategy.to_string()),
        ("--form", if plan.in_place { "in-place" } else { "copy" }.to_string()),
        ("--transport", if plan.pipe { "pipe" } else { "deque" }.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// The two ends of one side: the deques, or the pipes.
#[expect(clippy::large_enum_variant, reason = "one per process, never moved in a loop")]
enum Ends {
    Deque { tx: RawDeque, rx: RawDeque, in_place: bool, buf: Vec<u8> },
    Pipe { tx: Box<dyn Write>, rx: Box<dyn Read>, buf: Vec<u8> },
}

impl Ends {
    fn send(&mut self, seq: u64, size: usize) -> Result<(), String> {
        match self {
            Ends::Deque { tx, in_place: true, .. } => {
                tx.push_back_with(size, |slot| fill(seq, slot)).map_err(|e| e.to_string())
            }
            Ends::Deque { tx, buf, .. } => {
                buf.resize(size, 0);
                fill(seq, buf);
                tx.push_back(buf).map_err(|e| e.to_string())
            }
            Ends::Pipe { tx, buf, .. } => {
                buf.resize(size, 0);
                fill(seq, buf);
                tx.write_all(buf).map_err(|e| format!("pipe: {e}"))
            }
        }
    }

    fn recv(&mut self, seq: u64, size: usize) -> Result<(), String> {
        match self {
            Ends::Deque { rx, in_place: true, .. } => {
                rx.pop_front_with(|m| check(seq, m, size)).map_err(|e| e.to_string())?
            }
            Ends::Deque { rx, buf, .. } => {
                rx.pop_front_into(buf).map_err(|e| e.to_string())?;
                check(seq, buf, size)
            }
            Ends::Pipe { rx, buf, .. } => {
                buf.resize(size, 0);
                rx.read_exact(buf).map_err(|e| format!("pipe: {e}"))?;
                check(seq, buf, size)
            }
        }
    }
}

/// Bytes per slot for `size`-byte messages (4 of each slot hold the length), and slots per deque.
const SLOTS: u32 = 1024;

fn slot_size(size: usize) -> u32 {
    (size as u32 + 4).next_multiple_of(8)
}

fn open(name: &str, plan: &Plan, mode: CreateMode) -> Result<RawDeque, String> {
    Builder::new(name)
        .capacity(SLOTS)
        .slot_size(slot_size(plan.size))
        .create_mode(mode)
        .wait_strategy(plan.strategy)
        .open_raw()
        .map_err(|e| e.to_string())
}

/// One run: new ends, a new echo process, the round trips, then the stream. Returns the round-trip times
/// and the stream's rate in messages per second.
fn one_run(plan: &Plan, run: u32) -> Result<(Vec<Duration>, f64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let name = format!("ping-pong-{}-{run}", std::process::id());
    let mut cmd = Command::new(exe);
    cmd.arg("echo").arg(&name).args(args_of(plan));
    let (mut ends, child, names) = if plan.pipe {
        let (ping_rx, ping_tx) = std::io::pipe().map_err(|e| e.to_string())?;
        let (pong_rx, pong_tx) = std::io::pipe().map_err(|e| e.to_string())?;
        let child = cmd.stdin(Stdio::from(ping_rx)).stdout(Stdio::from(pong_tx)).spawn();
        let rx = Box::new(std::io::BufReader::with_capacity(1 << 16, pong_rx));
        (Ends::Pipe { tx: Box::new(ping_tx), rx, buf: Vec::new() }, child, vec![])
    } else {
        let names = vec![format!("{name}-ping"), format!("{name}-pong")];
        let tx = open(&names[0], plan, CreateMode::CreateExclusive)?;
        let rx = open(&names[1], plan, CreateMode::CreateExclusive)?;
        let child = cmd.spawn();
        (Ends::Deque { tx, rx, in_place: plan.in_place, buf: Vec::new() }, child, names)
    };
    let result = child.map_err(|e| format!("starting the echo process: {e}")).and_then(|child| {
        let mut child = Reaped(child);
        let out = measure(&mut ends, plan);
        // The echo process exits when its ends close; drop ours first.
        drop(ends);
        let status = child.0.wait().map_err(|e| e.to_string())?;
        match out {
            Ok(out) if status.success() => Ok(out),
            Ok(_) => Err(format!("the echo process failed: {status}")),
            Err(e) => Err(e),
        }
    });
    for n in &names {
        let _ = shmdeque::remove(n);
    }
    result
}

/// Kills the echo process if the measurement fails before it waits for it.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn measure(ends: &mut Ends, plan: &Plan) -> Result<(Vec<Duration>, f64), String> {
    let mut rtt = Vec::with_capacity(plan.count as usize);
    for seq in 0..plan.warmup + plan.count {
        let start = Instant::now();
        ends.send(seq, plan.size)?;
        ends.recv(seq, plan.size)?;
        if seq >= plan.warmup {
            rtt.push(start.elapsed());
        }
    }
    let start = Instant::now();
    for seq in 0..plan.stream {
        ends.send(seq, plan.size)?;
    }
    ends.recv(plan.stream, plan.size)?;
    let rate = plan.stream as f64 / start.elapsed().as_secs_f64();
    if let Ends::Deque { tx, .. } = ends {
        tx.close().map_err(|e| e.to_string())?;
    }
    Ok((rtt, rate))
}

/// The echo process: sends back every round-trip message, takes the stream, then says it has it all.
fn echo(name: &str, plan: &Plan) -> Result<(), String> {
    let mut ends = if plan.pipe {
        let rx = std::fs::File::open("/dev/stdin").map_err(|e| e.to_string())?;
        let tx = std::fs::OpenOptions::new().write(true).open("/dev/stdout").map_err(|e| e.to_string())?;
        Ends::Pipe { tx: Box::new(tx), rx: Box::new(std::io::BufReader::with_capacity(1 << 16, rx)), buf: Vec::new() }
    } else {
        let rx = open(&format!("{name}-ping"), plan, CreateMode::Open)?;
        let tx = open(&format!("{name}-pong"), plan, CreateMode::Open)?;
        Ends::Deque { tx, rx, in_place: plan.in_place, buf: Vec::new() }
    };
    for seq in 0..plan.warmup + plan.count {
        ends.recv(seq, plan.size)?;
        ends.send(seq, plan.size)?;
    }
    for seq in 0..plan.stream {
        ends.recv(seq, plan.size)?;
    }
    ends.send(plan.stream, plan.size)
}
