//! Arbitrary bytes over a real segment's header and slots, then every kind of operation on it: only values and
//! typed errors may come back (see `testkit/src/hostile_input.rs`, shared with `tests/hostile.rs`).
//!
//! ```text
//! cargo +nightly fuzz run hostile_segment -- -max_total_time=300 -timeout=10
//! ```

#![no_main]

use shmdeque_testkit::{Name, clean_up_all, hostile_input};

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libFuzzer aborts after a failing case before any destructor runs: the panic hook removes the case's
        // segment (every registered one) instead.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            clean_up_all();
            previous(info);
        }));
    },
    |data: &[u8]| {
        let name = Name::unique("shmdeque-fuzz", "case");
        hostile_input::run(&name, data);
    }
);
