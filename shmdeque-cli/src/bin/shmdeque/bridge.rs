//! `shmdeque bridge`: moves messages between a shared-memory deque and a Redis deque, in batches, so that
//! local processes keep their sub-microsecond pushes and pops while the bridge ships to other hosts.
//!
//! Nothing is lost when the bridge is killed at any instant: a message leaves its source only after the
//! destination has it. From shared memory, the bridge copies a batch from the front under the lock,
//! pushes it to Redis (one script call, one round trip), then removes it from the front. From Redis, it
//! takes a batch into its pending list, pushes it into shared memory, then acknowledges it; a killed
//! bridge's batch goes back to the Redis deque when its heartbeat expires. Either way a batch in flight
//! when the bridge dies is delivered again by the next bridge: at least once, with duplicates bounded by
//! one batch per kill. The bridge must be the only consumer of its source.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use shmdeque::{Builder, CreateMode, Error, PopError, PushError, RawDeque, RedisDeque};
use shmdeque_cli::tool::{self, Failure, Meter, SLICE};

/// Options of `shmdeque bridge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the shared-memory deque.
    #[arg(long, value_name = "NAME")]
    name: OsString,
    #[command(flatten)]
    trust: tool::Trust,
    /// The Redis server or cluster: redis://HOST[:PORT][/DB], redis+unix:///SOCKET or
    /// redis+cluster://HOST:PORT[,HOST:PORT...], with optional heartbeat=, reconnect=, timeout= settings.
    #[arg(long, value_name = "URL")]
    url: String,
    /// Move from Redis to shared memory instead of the other way.
    #[arg(long)]
    from_redis: bool,
    /// Name of the Redis deque [default: the same as --name].
    #[arg(long, value_name = "NAME")]
    remote_name: Option<OsString>,
    /// Messages per batch: the most that one kill can duplicate.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Seconds to wait for the source deque to appear; then exit 2.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = tool::parse_secs)]
    wait: Duration,
}

/// Runs the bridge until its source is closed and drained, then closes the destination.
pub fn run(args: Args) -> Result<(), Failure> {
    tool::catch_interrupts()?;
    let name = tool::deque_name(&args.name)?;
    let remote_name = match &args.remote_name {
        Some(n) => tool::deque_name(n)?,
        None => name.clone(),
    };
    let mut meter = Meter::new();
    meter.start();
    let outcome = if args.from_redis {
        from_redis(&args, &name, &remote_name, &mut meter)
    } else {
        to_redis(&args, &name, &remote_name, &mut meter)
    };
    eprintln!("{}", meter.summary("bridge"));
    outcome
}

/// Calls `open` until it stops saying NotFound, for up to `wait`.
fn wait_for<T>(what: &str, wait: Duration, mut open: impl FnMut() -> Result<T, Error>) -> Result<T, Failure> {
    let started = Instant::now();
    loop {
        match open() {
            Err(Error::NotFound { .. }) if started.elapsed() < wait => {
                if tool::interrupted() {
                    return Err(Failure::interrupted(format!("interrupted while waiting for {what}")));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(Error::NotFound { .. }) => {
                return Err(Failure::usage(format!(
                    "{what} does not exist after waiting {}; create it or raise --wait",
                    tool::secs(wait)
                )));
            }
            r => return r.map_err(Failure::from),
        }
    }
}

fn interrupted(meter: &Meter) -> Failure {
    Failure::interrupted(format!(
        "interrupted after {} messages; messages not yet delivered stayed in the source",
        meter.messages()
    ))
}

fn check_fits(src_max: usize, dst_max: usize, dst: &str) -> Result<(), Failure> {
    if dst_max < src_max {
        return Err(Failure::usage(format!(
            "{dst} takes messages of up to {dst_max} bytes, fewer than the {src_max} of the source; \
             create it with a larger slot size"
        )));
    }
    Ok(())
}

/// Opens the destination, creating it with the source's geometry if it does not exist.
fn open_dest<T>(open: impl Fn(Option<(u32, u32)>) -> Result<T, Error>, geometry: (u32, u32)) -> Result<T, Failure> {
    match open(None) {
        Err(Error::NotFound { .. }) => Ok(open(Some(geometry))?),
        r => Ok(r?),
    }
}

fn builder(base: Builder, geometry: Option<(u32, u32)>) -> Builder {
    match geometry {
        Some((capacity, slot_size)) => base.capacity(capacity).slot_size(slot_size),
        None => base.create_mode(CreateMode::Open),
    }
}

/// Shared memory → Redis.
fn to_redis(args: &Args, name: &str, remote_name: &str, meter: &mut Meter) -> Result<(), Failure> {
    let local_builder = args.trust.apply(Builder::new(name).create_mode(CreateMode::Open))?;
    let local: RawDeque = wait_for(&format!("deque '{name}'"), args.wait, || local_builder.open_raw())?;
    tool::interrupt_on_signal(&local);
    let geometry = (local.capacity() as u32, local.slot_size() as u32);
    let remote: RedisDeque = open_dest(|g| builder(Builder::new(remote_name), g).open_redis(&args.url), geometry)?;
    check_fits(local.max_message_len(), remote.max_message_len(), &format!("Redis deque '{remote_name}'"))?;
    let me = remote.register_producer()?;
    let mut idle = Duration::ZERO;
    loop {
        if tool::interrupted() {
            return Err(interrupted(meter));
        }
        // Copy a batch from the front, leaving it in place.
        let (batch, closed) = {
            let g = local.lock()?;
            let n = g.len().min(args.batch as usize);
            let mut batch = Vec::with_capacity(n);
            for i in 0..n {
                batch.push(g.get(i)?.map(<[u8]>::to_vec).unwrap_or_default());
            }
            (batch, g.is_closed())
        };
        if batch.is_empty() {
            if closed {
                break;
            }
            // Nothing to pop without removing it: look at the length, which costs no lock, ever less often.
            idle = (idle * 2).clamp(Duration::from_micros(50), Duration::from_millis(5));
            std::thread::sleep(idle);
            continue;
        }
        idle = Duration::ZERO;
        push_all(&remote, &batch, meter)?;
        // Only now leave the source: a kill before this line sends the batch again.
        let mut g = local.lock()?;
        for msg in &batch {
            if g.front()? != Some(msg.as_slice()) {
                break; // someone else popped it: it was delivered twice, not lost
            }
            g.try_pop_front().map_err(Failure::from)?;
        }
        drop(g);
        let bytes: usize = batch.iter().map(Vec::len).sum();
        meter.add(batch.len() as u64, bytes as u64);
    }
    remote.close()?;
    me.leave(false)?;
    Ok(())
}

/// Pushes every message of `batch` to Redis in order, in slices that watch for signals.
fn push_all(remote: &RedisDeque, batch: &[Vec<u8>], meter: &Meter) -> Result<(), Failure> {
    let mut done = 0;
    while done < batch.len() {
        if tool::interrupted() {
            return Err(interrupted(meter));
        }
        match remote.push_back_many_timeout(&batch[done..], SLICE) {
            Ok(n) | Err(PushError::Timeout(n)) => done += n,
            Err(PushError::Closed(_)) => {
                return Err(Failure::runtime(format!(
                    "the Redis deque '{}' was closed by another process; the rest stays in the local deque",
                    remote.name()
                )));
            }
            Err(PushError::Failed { error, .. }) => return Err(error.into()),
            Err(e) => return Err(Failure::runtime(e.to_string())),
        }
    }
    Ok(())
}

/// Redis → shared memory.
fn from_redis(args: &Args, name: &str, remote_name: &str, meter: &mut Meter) -> Result<(), Failure> {
    let remote: RedisDeque = wait_for(&format!("Redis deque '{remote_name}'"), args.wait, || {
        Builder::new(remote_name).create_mode(CreateMode::Open).open_redis(&args.url)
    })?;
    let geometry = (remote.capacity() as u32, remote.slot_size() as u32);
    let local_builder = args.trust.apply(Builder::new(name))?;
    let local: RawDeque = open_dest(|g| builder(local_builder.clone(), g).open_raw(), geometry)?;
    tool::interrupt_on_signal(&local);
    check_fits(remote.max_message_len(), local.max_message_len(), &format!("deque '{name}'"))?;
    let me = local.register_producer()?;
    let mut warned = false;
    loop {
        if tool::interrupted() {
            return Err(interrupted(meter));
        }
        let mut taken = match remote.take_front_many_timeout(args.batch as usize, SLICE) {
            Ok(t) => t,
            Err(PopError::Timeout) => continue,
            Err(PopError::Closed) => break,
            Err(PopError::ProducersGone) => {
                if !warned {
                    eprintln!("bridge: the producers of Redis deque '{remote_name}' are gone; waiting for new ones");
                    warned = true;
                }
                std::thread::sleep(SLICE);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        warned = false;
        let total = taken.messages().len();
        let mut done = 0;
        let mut renewed = Instant::now();
        while done < total {
            if tool::interrupted() {
                return Err(interrupted(meter)); // the taken batch goes back to Redis
            }
            match local.push_back_many_timeout(&taken.messages()[done..], SLICE) {
                Ok(n) | Err(PushError::Timeout(n)) => done += n,
                Err(PushError::Closed(_)) => {
                    return Err(Failure::runtime(format!(
                        "deque '{name}' was closed by another process; the rest stays in Redis"
                    )));
                }
                Err(PushError::Failed { error, .. }) => return Err(error.into()),
                // Ctrl-C or SIGTERM while the local deque was full: the taken batch goes back to Redis.
                Err(PushError::Interrupted(_)) => return Err(interrupted(meter)),
                Err(e) => return Err(Failure::runtime(e.to_string())),
            }
            // A full local deque can hold the batch here for long: keep it ours meanwhile.
            if done < total && renewed.elapsed() >= SLICE * 10 {
                taken.keep_alive()?;
                renewed = Instant::now();
            }
        }
        let bytes = taken.messages().iter().map(Vec::len).sum::<usize>() as u64;
        taken.ack()?;
        meter.add(total as u64, bytes);
    }
    local.close()?;
    me.leave(false)?;
    Ok(())
}
