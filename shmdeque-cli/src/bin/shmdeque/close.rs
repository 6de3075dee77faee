//! `shmdeque close`: closes a deque so that consumers drain it and finish.

use std::ffi::OsString;

use shmdeque::{Builder, CreateMode};
use shmdeque_cli::tool::{self, Failure};

/// Options of `shmdeque close`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the deque.
    name: OsString,
    #[arg(long, value_name = "URL", help = tool::URL_HELP)]
    url: Option<String>,
    #[command(flatten)]
    trust: tool::Trust,
}

/// Closes the deque. If it is already empty and nobody else has it open, it disappears at once.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = tool::deque_name(&args.name)?;
    let url = tool::backend(&args.url);
    let q = args.trust.apply_for(url, Builder::new(&name).create_mode(CreateMode::Open))?.open_url(url)?;
    q.close()?;
    Ok(())
}
