//! `shmdeque remove`: removes a deque's name from /dev/shm.

use std::ffi::OsString;

use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque remove`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the deque.
    name: OsString,
}

/// Removes the name; processes that have the deque open keep using it until they let go.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
    shmdeque::remove(&name)?;
    Ok(())
}
