//! A work queue with several consumer processes: jobs go in at the back, urgent jobs at the front, and
//! three worker processes take them from the front until the queue is closed. Every job is done exactly
//! once; the program checks that from the workers' reports.
//!
//! Run: `cargo run --release --example work_queue`

use std::io::Read;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use shmdeque::{Builder, CreateMode, TypedPopError};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u32,
    urgent: bool,
}

const JOBS: u32 = 30_000;
const WORKERS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, name] = args.as_slice()
        && role == "worker"
    {
        return work(name);
    }

    let name = format!("example-jobs-{}", std::process::id());
    let q = Builder::new(&name).capacity(64).slot_size(32).create_mode(CreateMode::CreateExclusive).open()?;
    let workers = (0..WORKERS)
        .map(|_| Command::new(std::env::current_exe()?).args(["worker", &name]).stdout(Stdio::piped()).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    for id in 0..JOBS {
        let job = Job { id, urgent: id % 100 == 0 };
        if job.urgent { q.push_front(job) } else { q.push_back(job) }?;
    }
    q.close()?;
    let mut done = Vec::new();
    for (i, mut w) in workers.into_iter().enumerate() {
        let mut out = String::new();
        w.stdout.take().expect("piped").read_to_string(&mut out)?;
        w.wait()?;
        let ids: Vec<u32> = out.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
        println!("worker {i} did {} jobs", ids.len());
        done.extend(ids);
    }
    done.sort_unstable();
    assert_eq!(done, (0..JOBS).collect::<Vec<_>>(), "every job exactly once");
    println!("all {JOBS} jobs done exactly once");
    Ok(())
}

fn work(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Builder::new(name).create_mode(CreateMode::Open).open::<Job>()?;
    let mut ids = String::new();
    loop {
        match q.pop_front() {
            Ok(job) => ids.push_str(&format!("{}\n", job.id)),
            Err(TypedPopError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    print!("{ids}");
    Ok(())
}
