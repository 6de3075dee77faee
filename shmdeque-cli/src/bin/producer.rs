//! `producer`: feeds a shared deque with the lines of standard input, its raw bytes, or synthetic messages.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shmdeque::{AnyDeque, Builder, CreateMode, PushError};
use shmdeque_cli::synth;
use shmdeque_cli::tool::{self, Failure, Meter, Patience, Progress};

const PROGRAM: &str = "producer";
/// Standard input is read in blocks of at least this many bytes.
const READ_BLOCK: usize = 64 << 10;
/// At most this many synthetic messages are generated and pushed together.
const SYNTH_BATCH: usize = 64;

/// Pushes messages into a shared deque, creating the deque if it does not exist.
///
/// By default every line of standard input (without its newline) is one message. When this is the last
/// producer to leave at the end of its input, the deque is closed so that consumers drain it and finish.
/// A producer that fails or is interrupted leaves without closing.
#[derive(Parser, Debug)]
#[command(name = "producer", version, after_help = tool::EXIT_CODES_HELP)]
struct Args {
    /// Name of the deque: the segment /dev/shm/NAME, or the keys shmdeque:{NAME}:* on Redis.
    #[arg(long, value_name = "NAME")]
    name: OsString,
    #[arg(long, value_name = "URL", help = tool::URL_HELP)]
    url: Option<String>,
    #[command(flatten)]
    trust: tool::Trust,
    /// Capacity in messages if the deque is created [default: 1024]; an existing deque must match it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
    /// Slot size in bytes if the deque is created, 4 of them for the length [default: 4096]; an existing deque
    /// must match it.
    #[arg(long, value_name = "BYTES")]
    slot_size: Option<u32>,
    /// Push at the front instead of the back.
    #[arg(long)]
    front: bool,
    /// Read standard input as a byte stream, pushed in chunks of up to one slot's payload.
    #[arg(long, conflicts_with = "count")]
    raw: bool,
    /// Send N synthetic, self-checking messages instead of reading standard input (needs --size).
    #[arg(long, value_name = "N", requires = "size")]
    count: Option<u64>,
    /// Size of each synthetic message in bytes (at least 32).
    #[arg(long, value_name = "BYTES", requires = "count")]
    size: Option<usize>,
    /// Producer id stamped into synthetic messages [default: the process id].
    #[arg(long, value_name = "ID", requires = "count")]
    id: Option<u32>,
    /// Do not close the deque when this is the last producer to leave.
    #[arg(long)]
    keep_open: bool,
    /// Exit with code 3 if the deque stays full this many seconds.
    #[arg(long, value_name = "SECS", value_parser = tool::parse_secs)]
    timeout: Option<Duration>,
}

pub fn main() -> ExitCode {
    let args: Args = tool::parse_args(PROGRAM);
    tool::finish(PROGRAM, run(args))
}

fn run(args: Args) -> Result<(), Failure> {
    tool::catch_interrupts()?;
    let name = tool::deque_name(&args.name)?;
    if let Some(size) = args.size
        && size < synth::MIN_SIZE
    {
        return Err(Failure::usage(format!(
            "--size {size} is too small: a synthetic message is at least {} bytes",
            synth::MIN_SIZE
        )));
    }
    let url = tool::backend(&args.url);
    let mut builder = args.trust.apply_for(url, Builder::new(&name).create_mode(CreateMode::OpenOrCreate))?;
    if let Some(capacity) = args.capacity {
        builder = builder.capacity(capacity);
    }
    if let Some(slot_size) = args.slot_size {
        builder = builder.slot_size(slot_size);
    }
    let q = tool::open_url(&builder, url)??;
    tool::interrupt_any_on_signal(&q);
    // Registered before the check, so that a consumer-side close after it is reported as such below.
    let registration = q.register_producer()?;
    if q.is_closed()? {
        return Err(Failure::usage(format!(
            "deque '{name}' is closed; consumers are draining it. Wait for it to disappear, \
             remove it (`shmdeque remove {name}`), or use another name"
        )));
    }

    let mut pusher = Pusher::new(&q, &args);
    let outcome = match (args.count, args.size) {
        (Some(count), Some(size)) => pusher.synthetic(count, size, args.id.unwrap_or_else(std::process::id)),
        _ if args.raw => pusher.raw(),
        _ => pusher.lines(),
    };
    pusher.progress.finish();
    eprintln!("{}", pusher.meter.summary(PROGRAM));
    outcome?;
    registration.leave(!args.keep_open)?;
    Ok(())
}

/// Pushes batches of messages in short waits, watching for signals and for `--timeout` between them.
struct Pusher<'q> {
    q: &'q AnyDeque,
    front: bool,
    timeout: Option<Duration>,
    meter: Meter,
    progress: Progress,
}

impl<'q> Pusher<'q> {
    fn new(q: &'q AnyDeque, args: &Args) -> Pusher<'q> {
        let mut meter = Meter::new();
        meter.start();
        Pusher { q, front: args.front, timeout: args.timeout, meter, progress: Progress::new(args.count) }
    }

    fn interrupted(&self) -> Failure {
        Failure::interrupted(format!(
            "interrupted after {} messages; deque '{}' was left open",
            self.meter.messages(),
            self.q.name()
        ))
    }

    /// Pushes every message of `msgs` in order (each already checked against the slot size).
    fn push(&mut self, msgs: &[&[u8]]) -> Result<(), Failure> {
        let mut done = 0;
        let mut patience = Patience::new(self.timeout);
        while done < msgs.len() {
            if tool::interrupted() {
                return Err(self.interrupted());
            }
            let Some(slice) = patience.slice() else {
                return Err(Failure::timeout(format!(
                    "deque '{}' stayed full for {}; is a consumer running?",
                    self.q.name(),
                    tool::secs(self.timeout.unwrap_or_default())
                )));
            };
            let rest = &msgs[done..];
            let r = if self.front {
                self.q.push_front_many_timeout(rest, slice)
            } else {
                self.q.push_back_many_timeout(rest, slice)
            };
            let (n, failure) = match r {
                Ok(n) | Err(PushError::Timeout(n)) => (n, None),
                Err(PushError::Closed(n)) => (
                    n,
                    Some(Failure::runtime(format!(
                        "deque '{}' was closed by another process; {} messages were not pushed",
                        self.q.name(),
                        rest.len() - n
                    ))),
                ),
                Err(PushError::Failed { value, error }) => (value, Some(error.into())),
                // Ctrl-C or SIGTERM, while waiting for room.
                Err(PushError::Interrupted(n)) => (n, Some(self.interrupted())),
                Err(e) => (0, Some(Failure::runtime(e.to_string()))),
            };
            if n > 0 {
                patience.reset();
                let bytes: usize = rest[..n].iter().map(|m| m.len()).sum();
                self.meter.add(n as u64, bytes as u64);
                self.progress.inc(n as u64);
                done += n;
            }
            if let Some(f) = failure {
                return Err(f);
            }
        }
        Ok(())
    }

    /// `--count N --size BYTES`: synthetic messages, generated a batch at a time.
    fn synthetic(&mut self, count: u64, size: usize, id: u32) -> Result<(), Failure> {
        let max = self.q.max_message_len();
        if size > max {
            return Err(Failure::usage(format!(
                "--size {size} is larger than the {max}-byte message limit of deque '{}' \
                 (slot size {}); use a smaller size or a deque with larger slots",
                self.q.name(),
                self.q.slot_size()
            )));
        }
        let per_batch = ((256 << 10) / size).clamp(1, SYNTH_BATCH);
        let mut buf = vec![0u8; per_batch * size];
        let mut seq = 0;
        while seq < count {
            let k = (count - seq).min(per_batch as u64) as usize;
            for (i, msg) in buf.chunks_exact_mut(size).take(k).enumerate() {
                synth::fill(msg, id, seq + i as u64);
            }
            let batch: Vec<&[u8]> = buf.chunks_exact(size).take(k).collect();
            self.push(&batch)?;
            seq += k as u64;
        }
        Ok(())
    }

    /// `--raw`: standard input as a byte stream, in chunks of up to one slot's payload.
    fn raw(&mut self) -> Result<(), Failure> {
        let max = self.q.max_message_len();
        let mut buf = vec![0u8; READ_BLOCK.max(max)];
        let mut stdin = io::stdin().lock();
        loop {
            let n = self.read_some(&mut stdin, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let batch: Vec<&[u8]> = buf[..n].chunks(max).collect();
            self.push(&batch)?;
        }
    }

    /// The default: each line of standard input, without its newline, is one message.
    fn lines(&mut self) -> Result<(), Failure> {
        let max = self.q.max_message_len();
        let mut buf = vec![0u8; READ_BLOCK.max(max + 1)];
        let mut filled = 0;
        let mut line_no = 0u64;
        let mut stdin = io::stdin().lock();
        loop {
            let n = self.read_some(&mut stdin, &mut buf[filled..])?;
            let eof = n == 0;
            filled += n;
            let mut batch: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            let mut too_long = None;
            while let Some(len) = buf[start..filled].iter().position(|&b| b == b'\n') {
                if len > max {
                    too_long = Some((line_no + batch.len() as u64 + 1, len as u64));
                    break;
                }
                batch.push(&buf[start..start + len]);
                start += len + 1;
            }
            let tail = filled - start;
            if too_long.is_none() && (tail > max || (eof && tail > 0)) {
                if tail > max {
                    too_long = Some((line_no + batch.len() as u64 + 1, tail as u64));
                } else {
                    batch.push(&buf[start..filled]);
                    start = filled;
                }
            }
            // Every line before an oversize one is pushed before the error is reported.
            self.push(&batch)?;
            line_no += batch.len() as u64;
            if let Some((bad_line, seen)) = too_long {
                let len = self.rest_of_line(&mut stdin, &buf[start..filled], seen)?;
                return Err(Failure::usage(format!(
                    "line {bad_line} is {len} bytes, longer than the {max}-byte message limit of deque '{}' \
                     (slot size {}); lines before it were pushed. Use a deque with larger slots or --raw",
                    self.q.name(),
                    self.q.slot_size()
                )));
            }
            if eof {
                return Ok(());
            }
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
    }

    /// The full length of an oversize line, of which `seen` bytes are known: reads on to its newline.
    fn rest_of_line(&self, stdin: &mut impl Read, buffered: &[u8], seen: u64) -> Result<u64, Failure> {
        if buffered.len() as u64 > seen {
            return Ok(seen); // its newline is already in the buffer
        }
        let mut len = seen;
        let mut block = vec![0u8; READ_BLOCK];
        loop {
            let n = self.read_some(stdin, &mut block)?;
            match block[..n].iter().position(|&b| b == b'\n') {
                Some(i) => return Ok(len + i as u64),
                None if n == 0 => return Ok(len),
                None => len += n as u64,
            }
        }
    }

    /// One `read` of standard input, retried after a signal unless it was SIGINT or SIGTERM.
    fn read_some(&self, r: &mut impl Read, buf: &mut [u8]) -> Result<usize, Failure> {
        loop {
            if tool::interrupted() {
                return Err(self.interrupted());
            }
            match r.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::runtime(format!("cannot read standard input: {e}"))),
            }
        }
    }
}
