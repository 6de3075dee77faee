//! In-process cost of the deque's operations: one process, no contention, so the figures are the cost of the
//! lock, the ring arithmetic and the copies alone.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use shmdeque_testkit::Name;

/// A small typed message: what a trading or telemetry queue might carry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tick {
    id: u64,
    price: f64,
    qty: u32,
    buy: bool,
    symbol: [u8; 8],
}

/// A deque name unique to this process and purpose, removed when dropped.
fn named(what: &str) -> Name {
    Name::unique("shmdeque-bench-ops", what)
}

fn raw(c: &mut Criterion) {
    let name = named("raw");
    let q = shmdeque::Builder::new(name.as_str()).capacity(1024).slot_size(128).open_raw().expect("open");
    let msg = shmdeque_synth::make(1, 1, 64);
    let mut g = c.benchmark_group("in_process/raw_64B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_back+pop_front (copy out)", |b| {
        b.iter(|| {
            q.try_push_back(black_box(&msg)).expect("push");
            black_box(q.try_pop_front().expect("pop"));
        })
    });
    g.bench_function("push_back_with+pop_front_with (in place)", |b| {
        b.iter(|| {
            q.try_push_back_with(64, |s| s.copy_from_slice(black_box(&msg))).expect("push");
            black_box(q.try_pop_front_with(|m| m[63]).expect("pop"));
        })
    });
    g.finish();
}

fn typed(c: &mut Criterion) {
    let name = named("typed");
    let q = shmdeque::Builder::new(name.as_str()).capacity(1024).slot_size(128).open::<Tick>().expect("open");
    let tick = Tick { id: 42, price: 101.25, qty: 300, buy: true, symbol: *b"SHMDEQUE" };
    let mut g = c.benchmark_group("in_process/typed_struct");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_back+pop_front", |b| {
        b.iter(|| {
            q.try_push_back(black_box(tick.clone())).expect("push");
            black_box(q.try_pop_front().expect("pop"));
        })
    });
    g.finish();
}

fn batch(c: &mut Criterion) {
    let name = named("batch");
    let q = shmdeque::Builder::new(name.as_str()).capacity(1024).slot_size(128).open_raw().expect("open");
    let msgs: Vec<Vec<u8>> = (0..64).map(|i| shmdeque_synth::make(1, i, 64)).collect();
    let mut g = c.benchmark_group("in_process/batch_64x64B");
    g.throughput(Throughput::Elements(64));
    g.bench_function("push_back_many+pop_front_many_with", |b| {
        b.iter(|| {
            assert_eq!(q.try_push_back_many(black_box(&msgs)).expect("push"), 64);
            let mut sum = 0u64;
            let n = q.try_pop_front_many_with(64, |m| sum += m[0] as u64).expect("pop");
            black_box((n, sum));
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    raw(&mut c);
    typed(&mut c);
    batch(&mut c);
    c.final_summary();
}
