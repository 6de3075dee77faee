//! `shmdeque list`: every deque segment in /dev/shm, recognized by its magic number, or every deque on a
//! Redis server or cluster (`--url`).

use shmdeque::{Builder, CreateMode, Error, Probe};
use shmdeque_cli::tool::Failure;

/// Options of `shmdeque list`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// List the deques on this Redis server or cluster instead of /dev/shm.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print a JSON array: one object per deque with name, len, capacity, slot_size, closed and
    /// segment_bytes, or with name and error for a segment that cannot be read.
    #[arg(long)]
    json: bool,
}

/// Lists the deques without opening or locking them.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut rows = Vec::new();
    let url = args.url.as_deref().unwrap_or("shm:");
    let on_redis = !matches!(url, "shm:" | "shm://");
    if on_redis {
        for name in shmdeque::list_redis(url)? {
            let q = Builder::new(&name).create_mode(CreateMode::Open).open_redis(url);
            match q.and_then(|q| q.stats()) {
                Ok(s) => rows.push(Ok(Probe {
                    name: s.name,
                    capacity: s.capacity.into(),
                    slot_size: s.slot_size.into(),
                    len: s.len,
                    closed: s.closed,
                    segment_bytes: s.list_bytes,
                })),
                Err(Error::NotFound { .. }) => {}
                Err(e) => rows.push(Err((name, e.to_string()))),
            }
        }
    }
    for name in if on_redis { Vec::new() } else { shmdeque::list_segments()? } {
        match shmdeque::probe(&name) {
            Ok(Some(p)) => rows.push(Ok(p)),
            // Not a deque, or removed since the directory was read.
            Ok(None) | Err(Error::NotFound { .. }) => {}
            Err(e) => rows.push(Err((name, e.to_string()))),
        }
    }
    if args.json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| match r {
                Ok(p) => serde_json::json!({
                    "name": p.name,
                    "len": p.len,
                    "capacity": p.capacity,
                    "slot_size": p.slot_size,
                    "closed": p.closed,
                    "segment_bytes": p.segment_bytes,
                }),
                Err((name, error)) => serde_json::json!({ "name": name, "error": error }),
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no deques in {}", if on_redis { url } else { "/dev/shm" });
        return Ok(());
    }
    let width = rows.iter().map(|r| r.as_ref().map_or_else(|(n, _)| n.len(), |p| p.name.len())).max().unwrap_or(0);
    let width = width.max("NAME".len());
    println!("{:width$}  {:>8}  {:>8}  {:>9}  CLOSED", "NAME", "LEN", "CAPACITY", "SLOT_SIZE");
    for r in &rows {
        match r {
            Ok(p) => println!(
                "{:width$}  {:>8}  {:>8}  {:>9}  {}",
                p.name,
                p.len,
                p.capacity,
                p.slot_size,
                if p.closed { "yes" } else { "no" }
            ),
            Err((name, error)) => println!("{name:width$}  unreadable: {error}"),
        }
    }
    Ok(())
}
