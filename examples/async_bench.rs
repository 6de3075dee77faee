//! Async against sync across two processes: the latency of waking a waiting consumer, round trips, and
//! one-consumer throughput, for the blocking API and the `_async` forms (on a current-thread tokio
//! runtime).
//!
//! Run: `cargo run --release --features async --example async_bench [-- RUNS]`
//!
//! * **wake**: the main process pushes a 64-byte message stamped with CLOCK_MONOTONIC every 2 ms; a
//!   consumer process waiting in `pop_front` (sync: it spins its budget, then sleeps in the kernel) or in
//!   `pop_front_async` (its reactor sleeps in `futex_waitv`) reports how long after the stamp it had the
//!   message. With 2 ms between messages the sync waiter is asleep every time: this is the latency of a
//!   sleeping waiter's wake-up, sync against async.
//! * **rtt**: ping-pong of a 64-byte message through two deques, back to back; both sides sync, or both
//!   async.
//! * **msg/s**: a producer process pushes 64-byte messages as fast as it can; one consumer pops them with
//!   `pop_front_into` / `pop_front_into_async` (one task), or in batches of up to 64 in place.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmdeque::{Builder, CreateMode, RawDeque};

const SIZE: usize = 64;
const WAKES: usize = 1_000;
const ROUND_TRIPS: usize = 20_000;
const MESSAGES: u64 = 1_000_000;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn open(name: &str) -> RawDeque {
    Builder::new(name).create_mode(CreateMode::Open).open_raw().expect("open")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// The child side: `ROLE NAME [NAME2]`.
fn child(role: &str, names: &[String]) {
    let q = open(&names[0]);
    match role {
        "wake-sync" | "wake-async" => {
            let mut lat = Vec::with_capacity(WAKES);
            let mut buf = Vec::new();
            let rt = rt();
            for _ in 0..WAKES {
                if role == "wake-sync" {
                    q.pop_front_into(&mut buf).unwrap();
                } else {
                    rt.block_on(q.pop_front_into_async(&mut buf)).unwrap();
                }
                let now = monotonic_ns();
                let stamp = u64::from_le_bytes(buf[..8].try_into().unwrap());
                lat.push(now.saturating_sub(stamp) as f64 / 1000.0);
            }
            lat.sort_by(f64::total_cmp);
            println!("{} {}", percentile(&lat, 0.5), percentile(&lat, 0.99));
        }
        "echo-sync" => {
            let back = open(&names[1]);
            let mut buf = Vec::new();
            for _ in 0..ROUND_TRIPS {
                q.pop_front_into(&mut buf).unwrap();
                back.push_back(&buf).unwrap();
            }
        }
        "echo-async" => {
            let back = open(&names[1]);
            let mut buf = Vec::new();
            rt().block_on(async {
                for _ in 0..ROUND_TRIPS {
                    q.pop_front_into_async(&mut buf).await.unwrap();
                    back.push_back_async(&buf).await.unwrap();
                }
            });
        }
        "produce" => {
            let msg = [7u8; SIZE];
            for _ in 0..MESSAGES {
                q.push_back(&msg).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, names: &[&str]) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap()).arg(role).args(names).stdout(Stdio::piped()).spawn().expect("spawn")
}

/// Wake-up latency of a waiting consumer, p50 and p99 in µs.
fn wake(name: &str, q: &RawDeque, mode: &str) -> (f64, f64) {
    let kid = spawn(&format!("wake-{mode}"), &[name]);
    let mut msg = [0u8; SIZE];
    for _ in 0..WAKES {
        std::thread::sleep(Duration::from_millis(2));
        msg[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
        q.push_back(&msg).unwrap();
    }
    let out = kid.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Round trips, p50 and p99 in µs.
fn rtt(names: (&str, &str), qs: (&RawDeque, &RawDeque), mode: &str) -> (f64, f64) {
    let mut kid = spawn(&format!("echo-{mode}"), &[names.0, names.1]);
    let msg = [1u8; SIZE];
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let rt = rt();
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        qs.0.push_back(&msg).unwrap();
        if mode == "sync" {
            qs.1.pop_front_into(&mut buf).unwrap();
        } else {
            rt.block_on(qs.1.pop_front_into_async(&mut buf)).unwrap();
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    kid.wait().unwrap();
    // The first quarter warms up.
    let mut times = times.split_off(ROUND_TRIPS / 4);
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// One consumer's throughput in messages per second.
fn throughput(name: &str, q: &RawDeque, mode: &str) -> f64 {
    let t = Instant::now();
    let mut kid = spawn("produce", &[name]);
    let mut buf = Vec::new();
    let mut got = 0;
    let rt = rt();
    match mode {
        "sync" => {
            while got < MESSAGES {
                q.pop_front_into(&mut buf).unwrap();
                got += 1;
            }
        }
        "async" => rt.block_on(async {
            while got < MESSAGES {
                q.pop_front_into_async(&mut buf).await.unwrap();
                got += 1;
            }
        }),
        "sync x64" => {
            while got < MESSAGES {
                got += q.pop_front_many_with(64, |m| buf.extend_from_slice(&m[..1])).unwrap() as u64;
                buf.clear();
            }
        }
        _ => rt.block_on(async {
            while got < MESSAGES {
                got += q.pop_front_many_with_async(64, |m| buf.extend_from_slice(&m[..1])).await.unwrap() as u64;
                buf.clear();
            }
        }),
    }
    let secs = t.elapsed().as_secs_f64();
    kid.wait().unwrap();
    MESSAGES as f64 / secs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 3 {
        return child(&args[1], &args[2..]);
    }
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let pid = std::process::id();
    let (a, b) = (format!("example-async-bench-a-{pid}"), format!("example-async-bench-b-{pid}"));
    let qa = Builder::new(&a).capacity(15420).slot_size(SIZE as u32 + 4).open_raw().expect("create");
    let qb = Builder::new(&b).capacity(16).slot_size(SIZE as u32 + 4).open_raw().expect("create");
    println!("{runs} runs, the modes taking turns run by run; 64-byte messages across two processes");
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |row: String, v: String| match rows.iter_mut().find(|(r, _)| *r == row) {
        Some((_, vs)) => vs.push(v),
        None => rows.push((row, vec![v])),
    };
    for _ in 0..runs {
        for mode in ["sync", "async"] {
            let (p50, p99) = wake(&a, &qa, mode);
            add(format!("wake-up of a waiting consumer, {mode}"), format!("p50 {p50:.1} µs, p99 {p99:.1} µs"));
        }
        for mode in ["sync", "async"] {
            let (p50, p99) = rtt((&a, &b), (&qa, &qb), mode);
            add(format!("round trip, {mode}"), format!("p50 {p50:.2} µs, p99 {p99:.2} µs"));
        }
        for mode in ["sync", "async", "sync x64", "async x64"] {
            let rate = throughput(&a, &qa, mode);
            add(format!("one consumer, {mode}"), format!("{:.2} M msg/s", rate / 1e6));
        }
    }
    for (row, vs) in rows {
        println!("{row}: {}", vs.join(" | "));
    }
    drop((qa, qb));
    let _ = shmdeque::remove(&a);
    let _ = shmdeque::remove(&b);
}
