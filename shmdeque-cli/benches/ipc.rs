//! Cross-process benchmarks: throughput by message size, ping-pong round trips, and the CPU of a blocked
//! consumer, for every built-in transport of `shmdeque_cli::bench` and for `ipmpsc` (a shared-memory ring with a
//! process-shared mutex and condition variable), which implements the same `Transport` trait here.
//!
//! The other side of each run is this executable started again as a child (see `shmdeque_cli::bench`).
//! Throughput and round trips are timed with `iter_custom`: a sample of N iterations is N messages (or
//! N round trips) between two processes, the child's start-up excluded.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shmdeque_cli::bench::{self as harness, BUFFER_BYTES, Builtin, Channel, End, Receiver, SIZES, Sender, Transport};
use shmdeque_cli::with_builtin;

/// ipmpsc: one `SharedRingBuffer` of [`BUFFER_BYTES`] per direction, in a file in /dev/shm; messages are
/// sent as `serde_bytes` and received zero-copy.
struct Ipmpsc;

struct IpmpscTx(ipmpsc::Sender);
struct IpmpscRx(ipmpsc::Receiver);

impl Sender for IpmpscTx {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.send(&serde_bytes::Bytes::new(msg)).map_err(|e| format!("ipmpsc send: {e}"))
    }
}

impl Receiver for IpmpscRx {
    fn recv(&mut self, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        let mut ctx = self.0.zero_copy_context();
        let msg: &[u8] = ctx.recv().map_err(|e| format!("ipmpsc recv: {e}"))?;
        check(msg)
    }
}

impl Transport for Ipmpsc {
    type Tx = IpmpscTx;
    type Rx = IpmpscRx;

    fn id(&self) -> &'static str {
        "ipmpsc"
    }

    fn label(&self) -> &'static str {
        "ipmpsc"
    }

    fn channel(&self, _size: usize, tag: &str) -> Result<Channel, String> {
        // A file in /dev/shm, so a segment name guards it: removed with the channel or by a watchdog.
        let name = harness::unique_name("ipmpsc", tag);
        let path = name.path().to_string_lossy().into_owned();
        ipmpsc::SharedRingBuffer::create(&path, BUFFER_BYTES as u32).map_err(|e| format!("ipmpsc create: {e}"))?;
        Ok(Channel {
            tx: End::named(&path),
            rx: End::named(&path),
            buffers: format!("ring {}", harness::bytes(BUFFER_BYTES)),
            segments: vec![name],
        })
    }

    fn open_tx(&self, end: End, _size: usize) -> Result<IpmpscTx, String> {
        let buf = ipmpsc::SharedRingBuffer::open(&end.token).map_err(|e| format!("ipmpsc open: {e}"))?;
        Ok(IpmpscTx(ipmpsc::Sender::new(buf)))
    }

    fn open_rx(&self, end: End, _size: usize) -> Result<IpmpscRx, String> {
        let buf = ipmpsc::SharedRingBuffer::open(&end.token).map_err(|e| format!("ipmpsc open: {e}"))?;
        Ok(IpmpscRx(ipmpsc::Receiver::new(buf)))
    }
}

/// Every transport of the comparison: the built-ins, then ipmpsc. `$body` runs with `$t` bound to each.
macro_rules! for_each_transport {
    (|$t:ident| $body:expr) => {{
        for b in Builtin::ALL {
            with_builtin!(b, |$t| $body);
        }
        let $t = Ipmpsc;
        $body;
    }};
}

fn throughput_of<T: Transport>(c: &mut Criterion, t: &T, size: usize) {
    let mut g = c.benchmark_group(format!("throughput/{}", harness::bytes(size).replace(' ', "")));
    g.throughput(Throughput::Elements(1)).sample_size(10).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function(BenchmarkId::from_parameter(t.label()), |b| {
        b.iter_custom(|iters| harness::throughput(t, size, iters).map(|(d, _)| d).unwrap_or_else(|e| fail(&e)))
    });
    g.finish();
}

fn round_trip_of<T: Transport>(c: &mut Criterion, t: &T) {
    if t.batch() != 1 {
        return;
    }
    let mut g = c.benchmark_group("round_trip/64B");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    g.bench_function(BenchmarkId::from_parameter(t.label()), |b| {
        b.iter_custom(|iters| {
            let samples = harness::round_trips(t, 64, 1000, iters).unwrap_or_else(|e| fail(&e));
            samples.iter().sum()
        })
    });
    g.finish();
}

/// Percentiles that criterion's mean does not show: 20 000 round trips after as many of warm-up.
fn percentiles_of<T: Transport>(t: &T, out: &mut Vec<String>) {
    if t.batch() != 1 {
        return;
    }
    let s = harness::round_trips(t, 64, 20_000, 20_000).unwrap_or_else(|e| fail(&e));
    let q = |p| harness::quantile(&s, p).unwrap_or_default().as_secs_f64() * 1e6;
    out.push(format!("| {} | {:.2} µs | {:.2} µs | {:.2} µs |", t.label(), q(0.5), q(0.99), q(0.999)));
}

fn blocked_of<T: Transport>(t: &T, out: &mut Vec<String>) {
    if t.batch() != 1 || t.id().ends_with("inplace") {
        return;
    }
    let wait = Duration::from_secs(2);
    let cpu = harness::blocked_cpu(t, wait).unwrap_or_else(|e| fail(&e));
    out.push(format!("| {} | {:.3} ms | {:.4} % |", t.label(), cpu.as_secs_f64() * 1e3, cpu.as_secs_f64() / 0.02));
}

fn fail(e: &str) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1)
}

fn main() {
    if let Some(spec) = harness::child_spec()
        && spec.transport == Ipmpsc.id()
    {
        harness::serve_child(&Ipmpsc, &spec);
    }
    harness::maybe_serve_builtin();

    let mut c = Criterion::default().configure_from_args();
    for size in SIZES {
        for_each_transport!(|t| throughput_of(&mut c, &t, size));
    }
    for_each_transport!(|t| round_trip_of(&mut c, &t));
    c.final_summary();

    // Only when measuring (not under `cargo test --benches`, which passes no --bench flag).
    if std::env::args().any(|a| a == "--bench") {
        let mut rtt = vec!["| transport | p50 | p99 | p99.9 |".to_owned(), "|---|---:|---:|---:|".to_owned()];
        for_each_transport!(|t| percentiles_of(&t, &mut rtt));
        println!("\nPing-pong round trip of a 64-byte message:\n{}", rtt.join("\n"));
        let mut cpu = vec!["| transport | CPU | share |".to_owned(), "|---|---:|---:|".to_owned()];
        for_each_transport!(|t| blocked_of(&t, &mut cpu));
        println!("\nCPU of a consumer blocked on an empty channel for 2 s:\n{}", cpu.join("\n"));
    }
}
