//! `shmdeque info`: a deque's geometry, state and counters.

use std::ffi::OsString;

use shmdeque::{Builder, CreateMode};
use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the deque.
    name: OsString,
    #[command(flatten)]
    trust: tool::Trust,
    /// Print one JSON object with the keys capacity, slot_size, len, closed, producers, pushed, popped,
    /// lock_recoveries, high_water, asleep_for_message, asleep_for_room, segment_bytes and mode (an octal
    /// string such as "0600").
    #[arg(long)]
    json: bool,
}

/// Prints the deque's statistics.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
    let q = args.trust.apply(Builder::new(&name).create_mode(CreateMode::Open))?.open_raw()?;
    let s = q.stats()?;
    if args.json {
        let json = serde_json::json!({
            "capacity": s.capacity,
            "slot_size": s.slot_size,
            "len": s.len,
            "closed": s.closed,
            "producers": s.producers,
            "pushed": s.pushed,
            "popped": s.popped,
            "lock_recoveries": s.lock_recoveries,
            "high_water": s.high_water,
            "asleep_for_message": s.asleep_for_message,
            "asleep_for_room": s.asleep_for_room,
            "segment_bytes": s.segment_bytes,
            "mode": format!("{:04o}", s.mode),
        });
        println!("{json}");
    } else {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        println!("name             {}", s.name);
        println!("capacity         {}", s.capacity);
        println!("slot_size        {} (messages of up to {} bytes)", s.slot_size, q.max_message_len());
        println!("len              {}", s.len);
        println!("closed           {}", yes_no(s.closed));
        println!("producers        {}", s.producers);
        println!("pushed           {}", s.pushed);
        println!("popped           {}", s.popped);
        println!("lock_recoveries  {}", s.lock_recoveries);
        println!("high_water       {}", s.high_water);
        println!("asleep           {} waiting for a message, {} for room", s.asleep_for_message, s.asleep_for_room);
        println!("segment_bytes    {}", s.segment_bytes);
        println!("mode             {:04o}", s.mode);
    }
    Ok(())
}
