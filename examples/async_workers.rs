//! Async workers: two worker processes, each running 100 tasks on a single-threaded tokio runtime, take
//! jobs from one deque with `pop_front_async`, spend a millisecond of simulated I/O on each (a timer, not a
//! thread), and report results through a second deque with `push_back_async`. The main process pushes the
//! jobs with the blocking API and collects the results: every job is done exactly once, and the 200 tasks
//! waiting for work use two threads and one reactor thread per process, no CPU while idle.
//!
//! Run: `cargo run --release --features async --example async_workers`

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmdeque::{Builder, CreateMode, SharedDeque, TypedPopError};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Done {
    id: u32,
    worker: u32,
}

const JOBS: u32 = 5_000;
const WORKERS: u32 = 2;
const TASKS_PER_WORKER: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, jobs, results, worker] = args.as_slice()
        && role == "worker"
    {
        return work(jobs, results, worker.parse()?);
    }

    let pid = std::process::id();
    let (jobs_name, results_name) = (format!("example-async-jobs-{pid}"), format!("example-async-done-{pid}"));
    let exclusive =
        |name: &str, cap| Builder::new(name).capacity(cap).slot_size(32).create_mode(CreateMode::CreateExclusive);
    let jobs: SharedDeque<Job> = exclusive(&jobs_name, 64).open()?;
    let results: SharedDeque<Done> = exclusive(&results_name, 256).open()?;
    let mut workers = (0..WORKERS)
        .map(|w| {
            Command::new(std::env::current_exe()?).args(["worker", &jobs_name, &results_name, &w.to_string()]).spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut done = Vec::with_capacity(JOBS as usize);
    let mut per_worker = [0u32; WORKERS as usize];
    let mut next = 0;
    // Push jobs while there is room, collect results while there are any: one thread, no deadlock.
    while done.len() < JOBS as usize {
        while next < JOBS && jobs.try_push_back(Job { id: next }).is_ok() {
            next += 1;
        }
        match results.pop_front_timeout(Duration::from_millis(1)) {
            Ok(d) => {
                per_worker[d.worker as usize] += 1;
                done.push(d.id);
            }
            Err(TypedPopError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
    }
    jobs.close()?;
    for w in &mut workers {
        w.wait()?;
    }
    done.sort_unstable();
    assert_eq!(done, (0..JOBS).collect::<Vec<_>>(), "every job exactly once");
    println!("all {JOBS} jobs done exactly once; per worker process: {per_worker:?}");
    results.close()?;
    drop((jobs, results));
    let _ = shmdeque::remove(&jobs_name);
    let _ = shmdeque::remove(&results_name);
    Ok(())
}

/// One worker process: 100 tasks on a current-thread runtime, taking jobs until the deque is closed.
fn work(jobs: &str, results: &str, worker: u32) -> Result<(), Box<dyn std::error::Error>> {
    let open = |name: &str| Builder::new(name).create_mode(CreateMode::Open);
    let jobs = std::sync::Arc::new(open(jobs).open::<Job>()?);
    let results = std::sync::Arc::new(open(results).open::<Done>()?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS_PER_WORKER)
            .map(|_| {
                let (jobs, results) = (jobs.clone(), results.clone());
                tokio::spawn(async move {
                    loop {
                        // Cancel-safe: a pop that times out took nothing, so nothing is lost here.
                        let job = match tokio::time::timeout(Duration::from_secs(10), jobs.pop_front_async()).await {
                            Ok(Ok(job)) => job,
                            Ok(Err(TypedPopError::Closed)) => return Ok(()),
                            Ok(Err(e)) => return Err(e.to_string()),
                            Err(_) => continue, // idle for 10 s: a real service would log here
                        };
                        tokio::time::sleep(Duration::from_millis(1)).await; // the job's I/O
                        results.push_back_async(Done { id: job.id, worker }).await.map_err(|e| e.to_string())?;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    })?;
    Ok(())
}
