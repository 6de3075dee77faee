//! `shmdeque push`: pushes messages given on the command line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use shmdeque::PushError;
use shmdeque_cli::tool::{self, Failure, Patience};

/// Options of `shmdeque push`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    target: tool::Existing,
    /// The messages, pushed in the order given; each argument is one message, its bytes as given.
    #[arg(value_name = "MESSAGE", required = true)]
    messages: Vec<OsString>,
    /// Push at the front (so the last message given ends up frontmost).
    #[arg(long)]
    front: bool,
    /// Exit with code 3 if the deque stays full this many seconds [default: wait as long as it takes].
    #[arg(long, value_name = "SECS", value_parser = tool::parse_secs)]
    timeout: Option<Duration>,
}

/// Pushes each message, waiting for room while the deque is full.
pub fn run(args: Args) -> Result<(), Failure> {
    tool::catch_interrupts()?;
    let name = args.target.name()?;
    let q = args.target.open()?;
    tool::interrupt_any_on_signal(&q);
    let max = q.max_message_len();
    for (i, m) in args.messages.iter().enumerate() {
        if m.len() > max {
            return Err(Failure::usage(format!(
                "message {} is {} bytes, longer than the {max}-byte message limit of deque '{name}'; \
                 nothing was pushed",
                i + 1,
                m.len()
            )));
        }
    }
    for (i, m) in args.messages.iter().enumerate() {
        let msg = m.as_bytes();
        let patience = Patience::new(args.timeout);
        loop {
            if tool::interrupted() {
                return Err(Failure::interrupted(format!("interrupted after pushing {i} messages")));
            }
            let Some(slice) = patience.slice() else {
                return Err(Failure::timeout(format!(
                    "deque '{name}' stayed full for {}; {i} of {} messages were pushed",
                    tool::secs(args.timeout.unwrap_or_default()),
                    args.messages.len()
                )));
            };
            let r = if args.front { q.push_front_timeout(msg, slice) } else { q.push_back_timeout(msg, slice) };
            match r {
                Ok(()) => break,
                Err(PushError::Timeout(_)) => {}
                Err(PushError::Closed(_)) => {
                    return Err(Failure::usage(format!(
                        "deque '{name}' is closed; {i} of {} messages were pushed",
                        args.messages.len()
                    )));
                }
                Err(PushError::Failed { error, .. }) => return Err(error.into()),
                // Ctrl-C or SIGTERM, while waiting for room.
                Err(PushError::Interrupted(_)) => {
                    return Err(Failure::interrupted(format!("interrupted after pushing {i} messages")));
                }
                Err(e) => return Err(Failure::runtime(e.to_string())),
            }
        }
    }
    Ok(())
}
