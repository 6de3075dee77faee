//! `shmdeque pop`: pops messages and prints one per line.

use std::io::Write;
use std::time::Duration;

use shmdeque::PopError;
use shmdeque_cli::tool::{self, Failure, Patience};

/// Options of `shmdeque pop`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    target: tool::Existing,
    /// Pop from the back instead of the front.
    #[arg(long)]
    back: bool,
    /// How many messages to pop; stops early, successfully, when the deque is closed and drained.
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: u64,
    /// Exit with code 3 if no message arrives for this many seconds [default: wait as long as it takes].
    #[arg(long, value_name = "SECS", value_parser = tool::parse_secs)]
    timeout: Option<Duration>,
}

/// Pops up to `--count` messages, writing each followed by a newline as soon as it is popped.
pub fn run(args: Args) -> Result<(), Failure> {
    tool::catch_interrupts()?;
    let name = args.target.name()?;
    let q = args.target.open()?;
    tool::interrupt_any_on_signal(&q);
    let mut out = std::io::stdout().lock();
    for i in 0..args.count {
        let patience = Patience::new(args.timeout);
        let msg = loop {
            if tool::interrupted() {
                return Err(Failure::interrupted(format!("interrupted after popping {i} messages")));
            }
            let Some(slice) = patience.slice() else {
                return Err(Failure::timeout(format!(
                    "no message arrived in deque '{name}' for {}; {i} of {} were popped",
                    tool::secs(args.timeout.unwrap_or_default()),
                    args.count
                )));
            };
            let r = if args.back { q.pop_back_timeout(slice) } else { q.pop_front_timeout(slice) };
            match r {
                Ok(msg) => break msg,
                Err(PopError::Timeout) => {}
                Err(PopError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        };
        out.write_all(&msg)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|e| Failure::runtime(format!("cannot write to standard output: {e}")))?;
    }
    Ok(())
}
