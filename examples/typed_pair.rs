//! Typed structs between two processes: this program starts a copy of itself as the consumer, pushes
//! 10,000 sensor readings, closes the deque, and the consumer drains it and prints a summary.
//!
//! Run: `cargo run --release --example typed_pair`

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmdeque::{Builder, CreateMode, TypedPopError};

#[derive(Debug, Serialize, Deserialize)]
struct Reading {
    sensor: u32,
    celsius: f64,
    label: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, name] = args.as_slice()
        && role == "consumer"
    {
        return consume(name);
    }

    let name = format!("example-typed-{}", std::process::id());
    let q = Builder::new(&name).capacity(256).slot_size(128).create_mode(CreateMode::CreateExclusive).open()?;
    let mut consumer = Command::new(std::env::current_exe()?).args(["consumer", &name]).spawn()?;
    for i in 0..10_000u32 {
        let r = Reading { sensor: i % 4, celsius: 20.0 + (i % 100) as f64 / 10.0, label: format!("r{i}") };
        q.push_back(r)?; // blocks while the deque is full
    }
    q.close()?; // the consumer drains what is left, then sees Closed
    let status = consumer.wait()?;
    drop(q); // last handle of a closed, drained deque: the segment is removed
    println!("consumer exited with {status}");
    Ok(())
}

fn consume(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Builder::new(name).create_mode(CreateMode::Open).open::<Reading>()?;
    let (mut n, mut sum, mut per_sensor) = (0u64, 0.0, [0u32; 4]);
    loop {
        match q.pop_front_timeout(Duration::from_secs(10)) {
            Ok(r) => {
                n += 1;
                sum += r.celsius;
                per_sensor[r.sensor as usize % 4] += 1;
            }
            Err(TypedPopError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("consumer: {n} readings, mean {:.2} °C, per sensor {per_sensor:?}", sum / n as f64);
    Ok(())
}
