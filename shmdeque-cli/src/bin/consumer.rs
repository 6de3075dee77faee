//! `consumer`: drains a shared deque to standard output, optionally verifying synthetic messages.

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use shmdeque::{AnyDeque, Builder, CreateMode, Error, PopError};
use shmdeque_cli::synth::{self, Verifier};
use shmdeque_cli::tool::{self, Failure, Meter, Patience, Progress};

const PROGRAM: &str = "consumer";
/// At most this many messages are popped under one lock acquisition.
const BATCH: usize = 128;
/// When the deque is empty, the consumer first waits this long without flushing its output: messages that
/// follow each other closely do not cost a write each.
const MOMENT: Duration = Duration::from_millis(2);
/// Buffered output is flushed at least this often while messages trickle in.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Pops messages from a shared deque and writes each, followed by a newline, to standard output.
///
/// Exits 0 after --count messages, or when the deque is closed (its last producer left) and drained.
#[derive(Parser, Debug)]
#[command(name = "consumer", version, after_help = tool::EXIT_CODES_HELP)]
struct Args {
    /// Name of the deque: the segment /dev/shm/NAME, or the keys shmdeque:{NAME}:* on Redis.
    #[arg(long, value_name = "NAME")]
    name: OsString,
    #[arg(long, value_name = "URL", help = tool::URL_HELP)]
    url: Option<String>,
    #[command(flatten)]
    trust: tool::Trust,
    /// Pop from the back (newest first) instead of the front.
    #[arg(long)]
    back: bool,
    /// Exit after N messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Write the message bytes only, without a newline after each.
    #[arg(long)]
    raw: bool,
    /// Check every synthetic message's checksum and, popping from the front, that each producer's
    /// sequence numbers increase; exit 1 at the first bad message.
    #[arg(long)]
    verify: bool,
    /// With --verify: demand that each producer's sequence numbers start at 0 and go up by exactly one
    /// (true when this is the only consumer).
    #[arg(long, requires = "verify", conflicts_with = "back")]
    consecutive: bool,
    /// Exit with code 3 if no message arrives for this many seconds.
    #[arg(long, value_name = "SECS", value_parser = tool::parse_secs)]
    timeout: Option<Duration>,
    /// Seconds to wait for the deque to be created if it does not exist yet (then exit 2), and for a new
    /// producer to register once every registered producer died without closing the deque (then exit 1).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = tool::parse_secs)]
    wait: Duration,
}

pub fn main() -> ExitCode {
    let args: Args = tool::parse_args(PROGRAM);
    tool::finish(PROGRAM, run(args))
}

fn run(args: Args) -> Result<(), Failure> {
    tool::catch_interrupts()?;
    let name = tool::deque_name(&args.name)?;
    let q = open(&name, tool::backend(&args.url), args.wait, &args.trust)?;
    tool::interrupt_any_on_signal(&q);
    let mut consumer = Consumer {
        q: &q,
        args: &args,
        out: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        meter: Meter::new(),
        progress: Progress::new(args.count),
        verifier: Verifier::new(args.consecutive),
        checked: 0,
        last_flush: Instant::now(),
    };
    let outcome = consumer.run();
    consumer.progress.finish();
    eprintln!("{}", consumer.meter.summary(PROGRAM));
    outcome
}

/// Opens the deque, waiting up to `wait` for a producer to create it.
fn open(name: &str, url: &str, wait: Duration, trust: &tool::Trust) -> Result<AnyDeque, Failure> {
    let started = Instant::now();
    let builder = trust.apply_for(url, Builder::new(name).create_mode(CreateMode::Open))?;
    loop {
        match tool::open_url(&builder, url)? {
            Ok(q) => return Ok(q),
            Err(Error::NotFound { .. }) if started.elapsed() < wait => {
                if tool::interrupted() {
                    return Err(Failure::interrupted(format!("interrupted while waiting for deque '{name}'")));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(Error::NotFound { .. }) => {
                return Err(Failure::usage(format!(
                    "deque '{name}' does not exist after waiting {}; start a producer first or raise --wait",
                    tool::secs(wait)
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

struct Consumer<'a, W: Write> {
    q: &'a AnyDeque,
    args: &'a Args,
    out: W,
    meter: Meter,
    progress: Progress,
    verifier: Verifier,
    /// Messages checked so far when popping from the back (the verifier counts the others).
    checked: u64,
    last_flush: Instant,
}

/// Popped messages, copied out of the deque into one reused buffer (no allocation per message).
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, msg: &[u8]) {
        self.bytes.extend_from_slice(msg);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.bytes[start..end])
    }
}

/// What a pop brought.
enum Popped {
    Some,
    Closed,
}

impl<W: Write> Consumer<'_, W> {
    fn run(&mut self) -> Result<(), Failure> {
        let mut batch = Batch::default();
        let mut patience = Patience::new(self.args.timeout);
        loop {
            let left = self.args.count.map_or(u64::MAX, |n| n - self.meter.messages());
            if left == 0 {
                break;
            }
            let want = left.min(BATCH as u64) as usize;
            batch.clear();
            match self.pop_batch(want, &mut batch, &patience) {
                Ok(Popped::Some) => {}
                Ok(Popped::Closed) => break,
                Err(f) => {
                    self.flush()?;
                    return Err(f);
                }
            }
            patience.reset();
            // Every popped message is written, even after a bad one or a signal.
            if let Err(f) = self.write(&batch) {
                self.flush()?;
                return Err(f);
            }
            if tool::interrupted() {
                self.flush()?;
                return Err(self.interrupted());
            }
        }
        self.flush()
    }

    fn interrupted(&self) -> Failure {
        Failure::interrupted(format!(
            "interrupted after {} messages; every popped message was written",
            self.meter.messages()
        ))
    }

    /// Pops up to `want` messages into `batch`: at once if there are any; otherwise after a moment's wait,
    /// then after flushing the output, in slices that check for signals and `--timeout` in between.
    fn pop_batch(&mut self, want: usize, batch: &mut Batch, patience: &Patience) -> Result<Popped, Failure> {
        let mut r = self.pop(want, batch, None);
        if matches!(r, Err(PopError::Empty)) {
            // Messages trickling in faster than MOMENT would otherwise never be flushed.
            if self.last_flush.elapsed() >= FLUSH_EVERY {
                self.flush()?;
            }
            r = self.pop(want, batch, Some(MOMENT));
        }
        // Since when every producer has been dead (a pop says so at once, without waiting).
        let mut gone_since: Option<Instant> = None;
        while matches!(r, Err(PopError::Empty | PopError::Timeout | PopError::ProducersGone)) {
            self.flush()?;
            if tool::interrupted() {
                return Err(self.interrupted());
            }
            if matches!(r, Err(PopError::ProducersGone)) {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.args.wait {
                    return Err(Failure::runtime(format!(
                        "every producer of deque '{}' died without closing it, and none came back within {} \
                         (--wait); {} messages received",
                        self.q.name(),
                        tool::secs(self.args.wait),
                        self.meter.messages()
                    )));
                }
                // A supervisor may restart the producer: give it the grace period, a little at a time.
                std::thread::sleep(MOMENT.max(Duration::from_millis(50)));
            } else {
                gone_since = None;
            }
            let Some(slice) = patience.slice() else {
                return Err(Failure::timeout(format!(
                    "no message arrived in deque '{}' for {}",
                    self.q.name(),
                    tool::secs(self.args.timeout.unwrap_or_default())
                )));
            };
            r = self.pop(want, batch, Some(slice));
        }
        match r {
            Ok(_) => Ok(Popped::Some),
            Err(PopError::Closed) => Ok(Popped::Closed),
            // Ctrl-C or SIGTERM, while waiting for a message.
            Err(PopError::Interrupted) => Err(self.interrupted()),
            Err(e) => Err(e.into()),
        }
    }

    /// Pops up to `want` messages into `batch`: without waiting (`None`) or up to `wait`.
    fn pop(&self, want: usize, batch: &mut Batch, wait: Option<Duration>) -> Result<usize, PopError> {
        let read = |m: &[u8]| batch.push(m);
        match (self.args.back, wait) {
            (false, None) => self.q.try_pop_front_many_with(want, read),
            (false, Some(t)) => self.q.pop_front_many_with_timeout(want, t, read),
            (true, None) => self.q.try_pop_back_many_with(want, read),
            (true, Some(t)) => self.q.pop_back_many_with_timeout(want, t, read),
        }
    }

    /// Writes (and with --verify checks) a batch; returns the first verification failure, after writing all.
    fn write(&mut self, batch: &Batch) -> Result<(), Failure> {
        let mut bad = None;
        let mut bytes = 0;
        for msg in batch.iter() {
            if self.args.verify && bad.is_none() {
                bad = self.check(msg).err();
            }
            bytes += msg.len();
            let written = if self.args.raw {
                self.out.write_all(msg)
            } else {
                self.out.write_all(msg).and_then(|()| self.out.write_all(b"\n"))
            };
            written.map_err(|e| output_failure(e, batch.len()))?;
        }
        self.meter.add(batch.len() as u64, bytes as u64);
        self.progress.inc(batch.len() as u64);
        match bad {
            Some(reason) => Err(Failure::runtime(format!("verification failed: {reason}"))),
            None => Ok(()),
        }
    }

    fn check(&mut self, msg: &[u8]) -> Result<(), String> {
        if self.args.back {
            // Popping from the back reverses each producer's order: only the checksums can be checked.
            let index = self.checked;
            self.checked += 1;
            synth::check(msg).map(drop).map_err(|reason| format!("message #{index} is bad: {reason}"))
        } else {
            self.verifier.observe(msg).map(drop).map_err(|e| e.to_string())
        }
    }

    fn flush(&mut self) -> Result<(), Failure> {
        self.last_flush = Instant::now();
        self.out.flush().map_err(|e| output_failure(e, 0))
    }
}

fn output_failure(e: io::Error, in_hand: usize) -> Failure {
    let lost =
        if in_hand > 0 { format!("; up to {in_hand} popped messages could not be written") } else { String::new() };
    Failure::runtime(format!("cannot write to standard output: {e}{lost}"))
}
