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
}

/// Removes the name; processes that have a shared-memory deque open keep using it until they let go. On
/// Redis, the keys and every message in them go at once.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
    shmdeque::remove_at(tool::backend(&args.url), &name)?;
    Ok(())
}
