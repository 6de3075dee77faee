//! `shmdeque`: creates, inspects and administers shared deques, and runs the demo and the benchmark.

mod bench;
mod bench_redis;
mod bridge;
mod close;
mod create;
mod demo;
mod info;
mod list;
mod pop;
mod push;
mod remove;

// The producer and consumer programs, compiled in here as well: `cargo run --bin shmdeque` builds only this
// binary, so the demo runs this executable under the names `producer` and `consumer` (see `main`) and gets
// exactly the code of the sibling binaries, from the same build.
#[path = "../consumer.rs"]
mod consumer;
#[path = "../producer.rs"]
mod producer;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmdeque_cli::tool::{self, EXIT_CODES_HELP, Failure};

const PROGRAM: &str = "shmdeque";

/// Administers bounded message deques shared between processes through POSIX shared memory.
///
/// Start with `shmdeque demo`: a producer and a consumer process move a million messages through a deque,
/// then through a pipe, and the two throughputs are compared.
#[derive(Parser, Debug)]
#[command(name = "shmdeque", version, after_help = EXIT_CODES_HELP, subcommand_required = true, arg_required_else_help = false)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a deque (fails if the name is taken).
    #[command(after_help = EXIT_CODES_HELP)]
    Create(create::Args),
    /// Show a deque's geometry, state and counters.
    #[command(after_help = EXIT_CODES_HELP)]
    Info(info::Args),
    /// List every deque segment in /dev/shm.
    #[command(after_help = EXIT_CODES_HELP)]
    List(list::Args),
    /// Push messages given on the command line.
    #[command(after_help = EXIT_CODES_HELP)]
    Push(push::Args),
    /// Pop messages and print one per line.
    #[command(after_help = EXIT_CODES_HELP)]
    Pop(pop::Args),
    /// Close a deque: pushes fail from now on, consumers drain it and finish.
    #[command(after_help = EXIT_CODES_HELP)]
    Close(close::Args),
    /// Remove a deque's name; processes using it keep working on it.
    #[command(after_help = EXIT_CODES_HELP)]
    Remove(remove::Args),
    /// Move messages between a shared-memory deque and a Redis deque, in batches, until the source is
    /// closed and drained; then close the destination.
    #[command(after_help = EXIT_CODES_HELP)]
    Bridge(bridge::Args),
    /// Move synthetic messages between two processes through a deque, then through a pipe, and compare.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(demo::Args),
    /// Benchmark shmdeque against other ways of moving messages between processes.
    #[command(after_help = EXIT_CODES_HELP)]
    Bench(bench::BenchArgs),
    /// Benchmark the Redis backend and the bridge against redis-benchmark on the same server.
    #[command(after_help = EXIT_CODES_HELP)]
    BenchRedis(bench_redis::Args),
    /// The writing side of the demo's pipe run.
    #[command(hide = true)]
    PipeWriter(demo::PipeWriterArgs),
    /// The reading side of the demo's pipe run.
    #[command(hide = true)]
    PipeReader(demo::PipeReaderArgs),
}

fn main() -> ExitCode {
    bench::maybe_run_child();
    // Started as `producer` or `consumer` (argv[0]), this executable is that program, busybox style.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    match Path::new(&argv0).file_name().and_then(|n| n.to_str()) {
        Some("producer") => return producer::main(),
        Some("consumer") => return consumer::main(),
        _ => {}
    }
    let cli: Cli = tool::parse_args(PROGRAM);
    let outcome = match cli.command {
        Command::Create(args) => create::run(args),
        Command::Info(args) => info::run(args),
        Command::List(args) => list::run(args),
        Command::Push(args) => push::run(args),
        Command::Pop(args) => pop::run(args),
        Command::Close(args) => close::run(args),
        Command::Remove(args) => remove::run(args),
        Command::Bridge(args) => bridge::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args).map_err(Failure::runtime),
        Command::BenchRedis(args) => bench_redis::run(args),
        Command::PipeWriter(args) => demo::pipe_writer(args),
        Command::PipeReader(args) => demo::pipe_reader(args),
    };
    tool::finish(PROGRAM, outcome)
}
