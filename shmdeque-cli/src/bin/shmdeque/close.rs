//! `shmdeque close`: closes a deque so that consumers drain it and finish.

use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque close`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    target: tool::Existing,
}

/// Closes the deque. If it is already empty and nobody else has it open, it disappears at once.
pub fn run(args: Args) -> Result<(), Failure> {
    let q = args.target.open()?;
    q.close()?;
    Ok(())
}
