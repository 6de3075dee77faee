//! Arbitrary bytes over a real segment's header and slots, then every kind of operation on it: only values and
//! typed errors may come back (see `testkit/src/hostile_input.rs`, shared with `tests/hostile.rs`).
//!
//! ```text
//! cargo +nightly fuzz run hostile_segment -- -max_total_time=300 -timeout=10
//! ```

#![no_main]

use shmdeque_testkit::hostile_input;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

/// The segment of the case in progress, removed by the panic hook when a case fails (libFuzzer then aborts
/// before any destructor runs).
static CURRENT: Mutex<String> = Mutex::new(String::new());

fuzz_target!(
    init: {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(name) = CURRENT.lock() {
                let _ = shmdeque::remove(&name);
            }
            previous(info);
        }));
    },
    |data: &[u8]| {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("shmdeque-fuzz-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        *CURRENT.lock().unwrap() = name.clone();
        hostile_input::run(&name, data);
    }
);
