//! `shmdeque info`: a deque's geometry, state and counters.

use shmdeque::{AnyDeque, RedisDeque};
use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    target: tool::Existing,
    /// Print one JSON object with the keys capacity, slot_size, len, closed, producers, pushed, popped,
    /// lock_recoveries, high_water, asleep_for_message, asleep_for_room, segment_bytes and mode (an octal
    /// string such as "0600"). On Redis the same keys, where lock_recoveries and asleep_* are 0,
    /// segment_bytes is the list's memory use and mode is null, plus backend ("redis"), url, pending,
    /// consumers, requeued, producers_lost and producers_gone.
    #[arg(long)]
    json: bool,
}

/// Prints the deque's statistics.
pub fn run(args: Args) -> Result<(), Failure> {
    let q = args.target.open()?;
    match &q {
        AnyDeque::Redis(r) => return redis_info(r, args.json),
        AnyDeque::Local(_) => {}
        _ => return Err(Failure::usage("this backend has no info")),
    }
    let AnyDeque::Local(q) = q else { unreachable!("matched above") };
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

fn redis_info(q: &RedisDeque, json: bool) -> Result<(), Failure> {
    let s = q.stats()?;
    if json {
        let json = serde_json::json!({
            "backend": "redis",
            "url": q.url(),
            "capacity": s.capacity,
            "slot_size": s.slot_size,
            "len": s.len,
            "closed": s.closed,
            "producers": s.producers,
            "pushed": s.pushed,
            "popped": s.popped,
            "lock_recoveries": 0,
            "high_water": s.high_water,
            "asleep_for_message": 0,
            "asleep_for_room": 0,
            "segment_bytes": s.list_bytes,
            "mode": null,
            "pending": s.pending,
            "consumers": s.consumers,
            "requeued": s.requeued,
            "producers_lost": s.producers_lost,
            "producers_gone": s.producers_gone,
        });
        println!("{json}");
    } else {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        println!("name             {}", s.name);
        println!("url              {}", q.url());
        println!("capacity         {}", s.capacity);
        println!("slot_size        {} (messages of up to {} bytes)", s.slot_size, q.max_message_len());
        println!("len              {} (+ {} being acknowledged)", s.len, s.pending);
        println!("closed           {}", yes_no(s.closed));
        println!(
            "producers        {} ({} lost{})",
            s.producers,
            s.producers_lost,
            if s.producers_gone { ", all gone" } else { "" }
        );
        println!("consumers        {}", s.consumers);
        println!("pushed           {}", s.pushed);
        println!("popped           {}", s.popped);
        println!("requeued         {}", s.requeued);
        println!("high_water       {}", s.high_water);
        println!("list_bytes       {}", s.list_bytes);
    }
    Ok(())
}
