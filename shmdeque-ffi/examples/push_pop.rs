//! The Rust counterpart of `shmdeque-ffi/bench/push_pop.c`: the same loop through the Rust API, to compare
//! the cost of the C API with (see the README, "From C and C++").
//!
//! ```sh
//! cargo run --release -p shmdeque-ffi --example push_pop -- [ITERATIONS] [into|vec|inplace]
//! ```
//!
//! * `into` (default): `try_push_back` + `try_pop_front_into` a reused buffer — what the C `copy` mode does.
//! * `vec`: `try_push_back` + `try_pop_front`, a new `Vec` per message (criterion's `in_process/raw_64B` copy out).
//! * `inplace`: `try_push_back_with` + `try_pop_front_with`, each copying 64 bytes.
//!
//! Prints one line: "rust MODE: N iterations, X ns per push+pop".

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use shmdeque::{Builder, CreateMode, RawDeque};

const SIZE: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Into,
    Vec,
    InPlace,
}

fn run(q: &RawDeque, n: u64, mode: Mode, msg: &mut [u8; SIZE], buf: &mut Vec<u8>) {
    for i in 0..n {
        msg[0] = i as u8;
        match mode {
            Mode::Into => {
                q.try_push_back(black_box(&msg[..])).expect("push");
                let len = q.try_pop_front_into(buf).expect("pop");
                assert!(len == SIZE && buf[0] == msg[0], "popped the wrong message");
            }
            Mode::Vec => {
                q.try_push_back(black_box(&msg[..])).expect("push");
                let m = q.try_pop_front().expect("pop");
                assert!(m.len() == SIZE && m[0] == msg[0], "popped the wrong message");
            }
            Mode::InPlace => {
                q.try_push_back_with(SIZE, |slot| slot.copy_from_slice(black_box(&msg[..]))).expect("push");
                q.try_pop_front_with(|m| buf[..SIZE].copy_from_slice(m)).expect("pop");
                black_box(&buf);
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().map_or(Some(10_000_000), |a| a.parse().ok()).filter(|&n| n > 0).unwrap_or(0);
    let mode = match args.get(1).map(String::as_str) {
        None | Some("into") => Some(Mode::Into),
        Some("vec") => Some(Mode::Vec),
        Some("inplace") => Some(Mode::InPlace),
        Some(_) => None,
    };
    let (Some(mode), true) = (mode, n > 0) else {
        eprintln!("usage: push_pop [ITERATIONS] [into|vec|inplace]");
        return ExitCode::from(2);
    };
    let name = format!("shmdeque-bench-rust-{}", std::process::id());
    let q = match Builder::new(&name).capacity(1024).slot_size(128).create_mode(CreateMode::CreateExclusive).open_raw()
    {
        Ok(q) => q,
        Err(e) => {
            eprintln!("push_pop: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The handle keeps the deque; nothing is left behind however the run ends.
    let _ = shmdeque::remove(&name);
    let mut msg = [b'm'; SIZE];
    let mut buf = vec![0u8; 128 - 4];
    run(&q, n / 10, mode, &mut msg, &mut buf);
    let start = Instant::now();
    run(&q, n, mode, &mut msg, &mut buf);
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    let mode = match mode {
        Mode::Into => "into",
        Mode::Vec => "vec",
        Mode::InPlace => "inplace",
    };
    println!("rust {mode}: {n} iterations, {ns:.1} ns per push+pop");
    ExitCode::SUCCESS
}
