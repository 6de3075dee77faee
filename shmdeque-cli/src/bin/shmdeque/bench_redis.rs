//! `shmdeque bench-redis --url URL`: the Redis backend against the server's own ceiling, in one run.
//!
//! Rows, each a producer and a consumer moving the same synthetic messages (every one checked on arrival):
//! one message per call, batches of 256 per call, and the bridge (a local producer → shared memory →
//! `shmdeque bridge` → Redis → a consumer). Then `redis-benchmark -t lpush,rpop` against the same server,
//! one command per request and pipelined 64 deep (`-P 64`): what the server does with no scripts, no
//! pending lists and nothing checked, the ceiling. The rows take turns, run after run, and each figure is
//! the median of the runs with their range.

use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use shmdeque::{Builder, PopError, RedisDeque};
use shmdeque_cli::synth;
use shmdeque_cli::tool::Failure;
use shmdeque_testkit::{Kid, Name};

/// Options of `shmdeque bench-redis`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Redis server to measure against: redis://HOST:PORT/DB. Its deques named shmdeque-bench-* are
    /// created and removed; redis-benchmark adds and deletes its own keys.
    #[arg(long, value_name = "URL")]
    url: String,
    /// Messages per run.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    count: u64,
    /// Message size in bytes (at least 32).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    /// Measured runs per row (the median is reported), after one warm-up round.
    #[arg(long, value_name = "N", default_value_t = 3)]
    runs: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Row {
    OnePerCall,
    Batched,
    Bridge,
    LpushP1,
    RpopP1,
    LpushP64,
    RpopP64,
}

impl Row {
    fn label(self) -> &'static str {
        match self {
            Row::OnePerCall => "shmdeque on Redis, one message per call (push + pop)",
            Row::Batched => "shmdeque on Redis, 256 per call (push_back_many + pop_front_many)",
            Row::Bridge => "local producer → bridge → Redis → consumer (batches of 256)",
            Row::LpushP1 => "redis-benchmark LPUSH, 50 clients",
            Row::RpopP1 => "redis-benchmark RPOP, 50 clients",
            Row::LpushP64 => "redis-benchmark LPUSH -P 64, 50 clients",
            Row::RpopP64 => "redis-benchmark RPOP -P 64, 50 clients",
        }
    }
}

const ROWS: [Row; 7] =
    [Row::OnePerCall, Row::Batched, Row::Bridge, Row::LpushP1, Row::RpopP1, Row::LpushP64, Row::RpopP64];

/// Runs every row `runs` times in turn and prints the table.
pub fn run(args: Args) -> Result<(), Failure> {
    if args.size < synth::MIN_SIZE {
        return Err(Failure::usage(format!("--size must be at least {}", synth::MIN_SIZE)));
    }
    let (host, port) = host_port(&args.url)?;
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); ROWS.len()];
    for round in 0..=args.runs {
        for (i, row) in ROWS.iter().enumerate() {
            let rate = measure(*row, &args, &host, &port)?;
            eprintln!("round {round}{}: {}: {rate:.0} msg/s", if round == 0 { " (warm-up)" } else { "" }, row.label());
            if round > 0 {
                results[i].push(rate);
            }
        }
    }
    println!("| what | msg/s (median) | range | vs LPUSH -P 64 |");
    println!("|---|---:|---:|---:|");
    let median = |v: &Vec<f64>| {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let ceiling = median(&results[ROWS.iter().position(|r| *r == Row::LpushP64).unwrap_or(0)]);
    for (i, row) in ROWS.iter().enumerate() {
        let v = &results[i];
        let (lo, hi) = (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max));
        let m = median(v);
        println!("| {} | {} | {}–{} | {:.0} % |", row.label(), human(m), human(lo), human(hi), 100.0 * m / ceiling);
    }
    println!(
        "\n{} messages of {} bytes per run; shmdeque rows count messages pushed and popped (each message once), \
         redis-benchmark rows count requests; {} measured runs, rows taking turns.",
        args.count, args.size, args.runs
    );
    Ok(())
}

fn human(r: f64) -> String {
    if r >= 1e6 { format!("{:.2} M", r / 1e6) } else { format!("{:.1} k", r / 1e3) }
}

fn host_port(url: &str) -> Result<(String, String), Failure> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| Failure::usage("bench-redis needs a redis://HOST:PORT/DB URL of one server"))?;
    let hostport = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    Ok((host.to_owned(), port.to_owned()))
}

fn measure(row: Row, args: &Args, host: &str, port: &str) -> Result<f64, Failure> {
    match row {
        Row::OnePerCall => through_redis(args, 1),
        Row::Batched => through_redis(args, 256),
        Row::Bridge => through_bridge(args),
        Row::LpushP1 => redis_benchmark(args, host, port, "lpush", 1),
        Row::RpopP1 => redis_benchmark(args, host, port, "rpop", 1),
        Row::LpushP64 => redis_benchmark(args, host, port, "lpush", 64),
        Row::RpopP64 => redis_benchmark(args, host, port, "rpop", 64),
    }
}

fn open(args: &Args, name: &str) -> Result<RedisDeque, Failure> {
    Ok(Builder::new(name).capacity(16_384).slot_size(args.size as u32 + 4).open_redis(&args.url)?)
}

/// Pops `count` messages, checking each; returns when the last arrived.
fn consume(q: &RedisDeque, count: u64, batch: usize) -> Result<Instant, Failure> {
    let mut got = 0;
    while got < count {
        let r = if batch == 1 {
            q.pop_front_with(|m| synth::check(m).map(drop)).map(|r| (1, r))
        } else {
            let mut bad = Ok(());
            q.pop_front_many_with(batch, |m| {
                if bad.is_ok() {
                    bad = synth::check(m).map(drop);
                }
            })
            .map(|n| (n as u64, bad))
        };
        match r {
            Ok((n, Ok(()))) => got += n,
            Ok((_, Err(e))) => return Err(Failure::runtime(format!("a message arrived damaged: {e}"))),
            Err(PopError::Closed) => return Err(Failure::runtime(format!("closed after {got} of {count}"))),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Instant::now())
}

/// A producer thread and a consumer thread, each with its own connection.
fn through_redis(args: &Args, batch: usize) -> Result<f64, Failure> {
    let name = format!("shmdeque-bench-{}-{batch}", std::process::id());
    let (p, c) = (open(args, &name)?, open(args, &name)?);
    let count = args.count;
    let started = Instant::now();
    let end = thread::scope(|s| {
        let consumer = s.spawn(|| consume(&c, count, batch));
        let mut msgs: Vec<Vec<u8>> = Vec::with_capacity(batch);
        let mut seq = 0;
        while seq < count {
            let k = (count - seq).min(batch as u64);
            msgs.clear();
            msgs.extend((seq..seq + k).map(|i| synth::make(1, i, args.size)));
            let r = if batch == 1 {
                p.push_back(&msgs[0]).map(drop).map_err(|e| e.to_string())
            } else {
                p.push_back_many(&msgs).map(drop).map_err(|e| e.to_string())
            };
            r.map_err(Failure::runtime)?;
            seq += k;
        }
        consumer.join().map_err(|_| Failure::runtime("the consumer thread panicked"))?
    })?;
    drop((p, c));
    shmdeque::remove_redis(&args.url, &name)?;
    Ok(count as f64 / end.duration_since(started).as_secs_f64())
}

/// Local producer (this process) → shared memory → `shmdeque bridge` (a child) → Redis → consumer thread.
fn through_bridge(args: &Args) -> Result<f64, Failure> {
    let local = Name::unique("shmdeque-bench", "bridge");
    let remote = format!("shmdeque-bench-{}-bridge", std::process::id());
    let q = Builder::new(local.as_str()).capacity(16_384).slot_size(args.size as u32 + 4).open_raw()?;
    let c = open(args, &remote)?;
    let exe = std::env::current_exe().map_err(|e| Failure::runtime(format!("cannot find this program: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args(["bridge", "--name", local.as_str(), "--remote-name", &remote, "--url", &args.url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut bridge =
        Kid::try_start(cmd, "bridge").map_err(|e| Failure::runtime(format!("cannot start the bridge: {e}")))?;
    let count = args.count;
    let started = Instant::now();
    let end = thread::scope(|s| {
        let consumer = s.spawn(|| consume(&c, count, 256));
        let mut seq = 0;
        while seq < count {
            let k = (count - seq).min(64);
            let msgs: Vec<Vec<u8>> = (seq..seq + k).map(|i| synth::make(2, i, args.size)).collect();
            q.push_back_many(&msgs).map_err(|e| Failure::runtime(e.to_string()))?;
            seq += k;
        }
        q.close()?;
        consumer.join().map_err(|_| Failure::runtime("the consumer thread panicked"))?
    })?;
    let _ = bridge.wait_unbounded();
    drop((q, c));
    shmdeque::remove_redis(&args.url, &remote)?;
    Ok(count as f64 / end.duration_since(started).as_secs_f64())
}

/// `redis-benchmark -t TEST -P PIPELINE -n COUNT -q --csv`: requests per second.
fn redis_benchmark(args: &Args, host: &str, port: &str, test: &str, pipeline: u32) -> Result<f64, Failure> {
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-t", test, "-n", &args.count.to_string(), "-d", &args.size.to_string()])
        .args(["-P", &pipeline.to_string(), "--csv"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::runtime(format!("cannot run redis-benchmark (Debian package redis-tools): {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",...  then "LPUSH","123456.78",...
    text.lines()
        .filter(|l| l.to_ascii_uppercase().starts_with(&format!("\"{}", test.to_ascii_uppercase())))
        .find_map(|l| l.split(',').nth(1)?.trim_matches('"').parse::<f64>().ok())
        .ok_or_else(|| Failure::runtime(format!("redis-benchmark said nothing usable: {text}")))
}
