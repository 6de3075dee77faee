//! `shmdeque remove`: removes a deque's name from /dev/shm.

use std::ffi::OsString;

use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque remove`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the deque.
    name: OsString,
    /// Remove the file even if it is not a deque (another program's data in /dev/shm)
    #[arg(long)]
    force: bool,
}

/// Removes the name and says what it removed; processes that have the deque open keep using it until they
/// let go. A file that is not a deque is refused (exit 2) unless --force.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
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
