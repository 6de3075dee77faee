//! The plumbing shared by the shmdeque tools (`producer`, `consumer`, `shmdeque`): argument checks, exit
//! codes and progress output ([`tool`]), and the benchmark harness behind `shmdeque bench` and the `ipc`
//! criterion suite ([`bench`]). Not a library for applications: embed the `shmdeque` crate itself.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod bench;
pub mod tool;

/// The synthetic self-checking message format the tools send and verify.
pub use shmdeque_synth as synth;
