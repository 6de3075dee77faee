//! `shmdeque demo`: the same synthetic messages moved between two processes twice, once through a shared
//! deque (the `producer` and `consumer` programs) and once through a pipe (the hidden `pipe-writer` and
//! `pipe-reader` commands), with identical work on both sides: the same bytes, generated the same way,
//! every message verified and written out by the receiving process.
//!
//! `producer` and `consumer` are started from this very executable under those names (it carries both
//! programs, see `main.rs`) rather than from the sibling files: `cargo run --bin shmdeque` does not build
//! the siblings, and ones left over from an older build could be stale.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmdeque::{Builder, CreateMode};
use shmdeque_cli::bench::{self as harness, Builtin};
use shmdeque_cli::synth::{self, Verifier};
use shmdeque_cli::tool::{self, Failure, Meter};
use shmdeque_cli::with_builtin;

/// Seconds either side of the deque run may stall before it gives up (a watchdog, not a time limit).
const STALL_SECS: &str = "10";
/// Timed round trips per transport, and untimed ones before them.
const ROUND_TRIPS: u64 = 20_000;
const ROUND_TRIP_WARMUP: u64 = 2_000;
/// How often the demo looks at its child processes.
const POLL: Duration = Duration::from_millis(1);
/// Messages the pipe reader counts between two looks at the clock, as the consumer does per batch.
const METER_BATCH: u64 = 128;

/// Options of `shmdeque demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many messages to move each way.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Size of each message in bytes (at least 32).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
}

/// Options of the hidden `shmdeque pipe-writer`.
#[derive(clap::Args, Debug)]
pub struct PipeWriterArgs {
    /// How many synthetic messages to write.
    #[arg(long)]
    count: u64,
    /// Size of each message in bytes.
    #[arg(long)]
    size: usize,
    /// Producer id stamped into the messages.
    #[arg(long, default_value_t = 1)]
    id: u32,
}

/// Options of the hidden `shmdeque pipe-reader`.
#[derive(clap::Args, Debug)]
pub struct PipeReaderArgs {
    /// Check every message as `consumer --verify` does.
    #[arg(long)]
    verify: bool,
    /// With --verify: demand gap-free sequences, as `consumer --consecutive` does.
    #[arg(long, requires = "verify")]
    consecutive: bool,
}

/// One measured run.
struct Run {
    elapsed: Duration,
}

/// Runs both transports and prints their throughputs side by side.
pub fn run(args: Args) -> Result<(), Failure> {
    tool::catch_interrupts()?;
    let max = shmdeque::DEFAULT_SLOT_SIZE as usize - shmdeque::SLOT_OVERHEAD;
    if args.size < synth::MIN_SIZE || args.size > max {
        return Err(Failure::usage(format!(
            "--size must be between {} and {max} bytes (the default deque's message limit)",
            synth::MIN_SIZE
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::runtime(format!("cannot find this program: {e}")))?;
    let name = format!("shmdeque-demo-{}", std::process::id());
    let (count, size) = (args.count.to_string(), args.size.to_string());

    println!(
        "Moving {} synthetic {}-byte messages from one process to another, every message verified.",
        tool::thousands(args.count),
        args.size
    );
    println!(
        "1. shmdeque: `producer --count {count} --size {size}` -> deque '{name}' -> `consumer --verify --consecutive`"
    );
    let shm = deque_run(&name, &exe, &count, &size, args.count);
    // Whatever happened, nothing may stay behind in /dev/shm.
    let left_behind = shmdeque::remove(&name).is_ok();
    let shm = shm?;
    if left_behind {
        return Err(Failure::runtime(format!(
            "deque '{name}' was still in /dev/shm after both processes finished (now removed)"
        )));
    }
    println!("2. pipe:     `shmdeque pipe-writer` -> pipe -> `shmdeque pipe-reader --verify --consecutive`");
    let pipe = pipe_run(&exe, &count, &size, args.count)?;

    let bytes = args.count * args.size as u64;
    let row = |label: &str, r: &Run| {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "{label:<26} {secs:>8.3} {:>14} {:>9.1}",
            tool::thousands((args.count as f64 / secs) as u64),
            bytes as f64 / secs / 1e6
        );
    };
    println!();
    println!("{:<26} {:>8} {:>14} {:>9}", "transport", "seconds", "messages/s", "MB/s");
    row("shmdeque (shared memory)", &shm);
    row("pipe", &pipe);
    println!();
    let ratio = pipe.elapsed.as_secs_f64() / shm.elapsed.as_secs_f64();
    if (0.97..=1.03).contains(&ratio) {
        println!("shmdeque and the pipe were equally fast on this run (within 3%).");
    } else if ratio > 1.0 {
        println!("shmdeque was {ratio:.2}x as fast as the pipe on this run.");
    } else {
        println!("The pipe was {:.2}x as fast as shmdeque on this run.", 1.0 / ratio);
    }
    println!("Times are wall-clock, from starting the two processes until both exited.");

    println!();
    println!(
        "3. round trips: this process sends a {}-byte message, a child sends it back, {} times \
         (after {} untimed)",
        args.size,
        tool::thousands(ROUND_TRIPS),
        tool::thousands(ROUND_TRIP_WARMUP)
    );
    println!("{:<26} {:>10} {:>10}", "transport", "p50 us", "p99 us");
    let mut p50s = Vec::new();
    for b in [Builtin::Shm, Builtin::Pipe] {
        let samples = with_builtin!(b, |t| harness::round_trips(&t, args.size, ROUND_TRIP_WARMUP, ROUND_TRIPS))
            .map_err(|e| Failure::runtime(format!("round trips through {}: {e}", b.label())))?;
        let q = |p| harness::quantile(&samples, p).unwrap_or_default().as_secs_f64() * 1e6;
        let label = if b == Builtin::Shm { "shmdeque (shared memory)" } else { "pipe" };
        println!("{label:<26} {:>10.2} {:>10.2}", q(0.5), q(0.99));
        p50s.push(q(0.5));
    }
    if let [shm, pipe] = p50s[..]
        && shm > 0.0
    {
        println!();
        println!(
            "A message went there and back {:.1}x as fast through shmdeque as through the pipe (p50).",
            pipe / shm
        );
    }
    println!(
        "Both sides wait as a program would by default: shmdeque spins briefly, then sleeps; the pipe sleeps \
         in read."
    );
    Ok(())
}

fn deque_run(name: &str, exe: &Path, count: &str, size: &str, n: u64) -> Result<Run, Failure> {
    // Created here, exclusively, so the run starts on a fresh, empty deque of the default geometry.
    drop(Builder::new(name).create_mode(CreateMode::CreateExclusive).open_raw()?);
    let started = Instant::now();
    let mut kids = Vec::new();
    let stall = ["--timeout", STALL_SECS];
    kids.push(spawn(
        "consumer",
        Command::new(exe)
            .arg0("consumer")
            .args(["--name", name, "--verify", "--consecutive"])
            .args(stall)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )?);
    let spawned = spawn(
        "producer",
        Command::new(exe)
            .arg0("producer")
            .args(["--name", name, "--count", count, "--size", size, "--id", "1"])
            .args(stall)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    match spawned {
        Ok(p) => kids.push(p),
        Err(f) => {
            wait_all(kids, true).ok();
            return Err(f);
        }
    }
    let done = wait_all(kids, false)?;
    let elapsed = started.elapsed();
    check_count(&done[0], n)?;
    Ok(Run { elapsed })
}

fn pipe_run(exe: &Path, count: &str, size: &str, n: u64) -> Result<Run, Failure> {
    let started = Instant::now();
    let mut writer = spawn(
        "pipe writer",
        Command::new(exe)
            .args(["pipe-writer", "--count", count, "--size", size, "--id", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    )?;
    let Some(pipe) = writer.child.stdout.take() else {
        return Err(Failure::runtime("the pipe writer has no output pipe"));
    };
    let reader = spawn(
        "pipe reader",
        Command::new(exe).args(["pipe-reader", "--verify", "--consecutive"]).stdin(pipe).stdout(Stdio::null()),
    );
    let reader = match reader {
        Ok(r) => r,
        Err(f) => {
            wait_all(vec![writer], true).ok();
            return Err(f);
        }
    };
    let done = wait_all(vec![reader, writer], false)?;
    let elapsed = started.elapsed();
    check_count(&done[0], n)?;
    Ok(Run { elapsed })
}

/// A child process of the demo, with a thread collecting its stderr.
struct Kid {
    what: &'static str,
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

/// How a child ended.
struct Done {
    what: &'static str,
    stderr: String,
}

fn spawn(what: &'static str, cmd: &mut Command) -> Result<Kid, Failure> {
    let mut child =
        cmd.stderr(Stdio::piped()).spawn().map_err(|e| Failure::runtime(format!("cannot start the {what}: {e}")))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    Ok(Kid { what, child, stderr })
}

/// Waits for every child. If one fails, or the demo is interrupted, or `kill` is set, the others are killed
/// so that nothing is left running; then the first failure is reported.
fn wait_all(mut kids: Vec<Kid>, mut kill: bool) -> Result<Vec<Done>, Failure> {
    let mut status: Vec<Option<ExitStatus>> = kids.iter().map(|_| None).collect();
    while status.iter().any(Option::is_none) {
        if tool::interrupted() {
            kill = true;
        }
        for (kid, st) in kids.iter_mut().zip(status.iter_mut()) {
            if st.is_none() {
                if kill {
                    let _ = kid.child.kill();
                }
                match kid.child.try_wait() {
                    Ok(Some(s)) => {
                        *st = Some(s);
                        kill |= !s.success();
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = kid.child.kill();
                        *st = kid.child.wait().ok();
                        kill = true;
                        eprintln!("shmdeque: lost track of the {}: {e}", kid.what);
                    }
                }
            }
        }
        if status.iter().any(Option::is_none) {
            std::thread::sleep(POLL);
        }
    }
    let done: Vec<Done> = kids
        .into_iter()
        .map(|k| Done { what: k.what, stderr: k.stderr.and_then(|h| h.join().ok()).unwrap_or_default() })
        .collect();
    if tool::interrupted() {
        return Err(Failure::interrupted("interrupted; the demo's processes were stopped"));
    }
    for (d, s) in done.iter().zip(&status) {
        let ok = s.is_some_and(|s| s.success());
        if !ok {
            let why = d.stderr.lines().rev().find(|l| !l.trim().is_empty() && tool::summary_messages(l).is_none());
            let why = why.map_or_else(|| format!("{s:?}"), str::to_owned);
            return Err(Failure::runtime(format!("the {} failed: {why}", d.what)));
        }
    }
    Ok(done)
}

/// Checks from the receiver's summary line that every message arrived.
fn check_count(receiver: &Done, expected: u64) -> Result<(), Failure> {
    let got = receiver.stderr.lines().find_map(tool::summary_messages);
    match got {
        Some(n) if n == expected => Ok(()),
        _ => Err(Failure::runtime(format!(
            "the {} received {} messages instead of {expected}",
            receiver.what,
            got.map_or("an unknown number of".to_owned(), |n| n.to_string())
        ))),
    }
}

/// `shmdeque pipe-writer`: what `producer --count --size` does, into standard output, one message a line.
pub fn pipe_writer(args: PipeWriterArgs) -> Result<(), Failure> {
    if args.size < synth::MIN_SIZE {
        return Err(Failure::usage(format!("--size must be at least {}", synth::MIN_SIZE)));
    }
    let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut msg = vec![b'\n'; args.size + 1];
    let mut meter = Meter::new();
    meter.start();
    for seq in 0..args.count {
        synth::fill(&mut msg[..args.size], args.id, seq);
        out.write_all(&msg).map_err(output_failure)?;
    }
    out.flush().map_err(output_failure)?;
    meter.add(args.count, args.count * args.size as u64);
    eprintln!("{}", meter.summary("pipe-writer"));
    Ok(())
}

/// `shmdeque pipe-reader`: what `consumer --verify` does, reading lines from standard input.
pub fn pipe_reader(args: PipeReaderArgs) -> Result<(), Failure> {
    let mut input = BufReader::with_capacity(64 << 10, io::stdin().lock());
    let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut verifier = Verifier::new(args.consecutive);
    let mut meter = Meter::new();
    let (mut pending, mut pending_bytes) = (0, 0);
    let mut line = Vec::new();
    let outcome = loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(Failure::runtime(format!("cannot read standard input: {e}"))),
        }
        let msg = line.strip_suffix(b"\n").unwrap_or(&line);
        let checked = if args.verify { verifier.observe(msg).map(drop) } else { Ok(()) };
        if let Err(e) = out.write_all(msg).and_then(|()| out.write_all(b"\n")) {
            break Err(output_failure(e));
        }
        pending += 1;
        pending_bytes += msg.len() as u64;
        if pending == METER_BATCH {
            meter.add(pending, pending_bytes);
            (pending, pending_bytes) = (0, 0);
        }
        if let Err(e) = checked {
            break Err(Failure::runtime(format!("verification failed: {e}")));
        }
    };
    meter.add(pending, pending_bytes);
    let flushed = out.flush().map_err(output_failure);
    eprintln!("{}", meter.summary("pipe-reader"));
    outcome.and(flushed)
}

fn output_failure(e: io::Error) -> Failure {
    Failure::runtime(format!("cannot write to standard output: {e}"))
}
