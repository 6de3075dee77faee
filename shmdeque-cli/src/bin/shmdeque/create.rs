//! `shmdeque create`: creates a deque with a chosen geometry and mode.

use std::ffi::OsString;

use shmdeque::{AnyDeque, Builder, CreateMode};
use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque create`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the deque: the segment /dev/shm/NAME.
    name: OsString,
    #[arg(long, value_name = "URL", help = tool::URL_HELP)]
    url: Option<String>,
    /// Maximum number of messages.
    #[arg(long, value_name = "N", default_value_t = shmdeque::DEFAULT_CAPACITY,
          value_parser = clap::value_parser!(u32).range(1..))]
    capacity: u32,
    /// Bytes per slot, 4 of them for the message length.
    #[arg(long, value_name = "BYTES", default_value_t = shmdeque::DEFAULT_SLOT_SIZE)]
    slot_size: u32,
    /// Permission bits of the segment, in octal (e.g. 660 to share with the group); shared memory only.
    #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = parse_mode)]
    mode: u32,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("'{s}' is not an octal permission mode between 0 and 777")),
    }
}

/// Creates the deque and prints one line describing it.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
    let q = Builder::new(&name)
        .capacity(args.capacity)
        .slot_size(args.slot_size)
        .mode(args.mode)
        .create_mode(CreateMode::CreateExclusive)
        .open_url(tool::backend(&args.url))?;
    match &q {
        AnyDeque::Redis(r) => println!(
            "created deque '{name}' on {}: {} messages of up to {} bytes",
            r.url(),
            q.capacity(),
            q.max_message_len()
        ),
        AnyDeque::Local(l) => println!(
            "created deque '{name}': {} messages of up to {} bytes, {} bytes of shared memory, mode {:04o}",
            q.capacity(),
            q.max_message_len(),
            l.stats()?.segment_bytes,
            args.mode
        ),
        _ => {}
    }
    Ok(())
}
