//! `shmdeque remove`: removes a deque's name from /dev/shm, or its keys from Redis.

use std::ffi::OsString;

use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque remove`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the deque.
    name: OsString,
    #[arg(long, value_name = "URL", help = tool::URL_HELP)]
    url: Option<String>,
    /// Remove the file even if it is not a deque (another program's data in /dev/shm); shared memory only
    #[arg(long)]
    force: bool,
}

/// Removes the name and says what it removed; processes that have a shared-memory deque open keep using it
/// until they let go, and a file that is not a deque is refused (exit 2) unless --force. On Redis, the keys
/// and every message in them go at once.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
    let url = tool::backend(&args.url);
    if !tool::is_shm(url) {
        // Only the deque's own keys (shmdeque:{NAME}:*) are deleted: nothing foreign to refuse.
        shmdeque::remove_at(url, &name)?;
        println!("removed Redis deque '{name}'");
        return Ok(());
    }
    let what = match shmdeque::probe(&name) {
        Ok(Some(p)) => format!("deque '{name}' ({} of {} messages, {} bytes)", p.len, p.capacity, p.segment_bytes),
        Ok(None) if args.force => format!("'{name}' (not a deque)"),
        Ok(None) => format!("'{name}'"),
        Err(e) => format!("deque '{name}' ({e})"),
    };
    if args.force {
        shmdeque::remove_forced(&name)?;
    } else {
        shmdeque::remove(&name)?;
    }
    println!("removed {what}");
    Ok(())
}
