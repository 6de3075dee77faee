//! One hostile-segment case, shared by the cargo-fuzz target in `fuzz/` and the stable proptest in
//! `tests/hostile.rs`, so that CI runs the very same logic without a nightly toolchain.
//!
//! [`run`] creates a real segment, then lets the input drive a sequence of steps: write arbitrary bytes over
//! the header and the slots (through the file, as any process with write access could), open more handles,
//! and run every kind of operation on every handle. The library must answer each step with a value or a typed
//! error: no panic, no access outside the segment (the fuzzer runs under AddressSanitizer), no endless loop
//! (every wait has a short timeout; the fuzzer's `-timeout` and the proptest's watchdog catch the rest).
//!
//! The header's lock word ([`LOCK`]) is never written. A lock word that names a live owner is
//! indistinguishable from a held lock, so garbage there can make `lock()` wait forever, which a hostile
//! process can do anyway by holding the lock; the recovery from a dead owner named there is tested on its own
//! in `tests/hostile.rs`.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use shmdeque::{Builder, CreateMode, Error, PopError, PushError, RawDeque, TypedPopError};

/// Where the lock word lies in a layout-version-5 header (`tests/hostile.rs` checks this and [`FIELDS`]
/// against a live segment).
pub const LOCK: Range<u64> = 128..132;

/// The header's fields in layout version 5: name, offset, size in bytes. Native-endian integers.
pub const FIELDS: &[(&str, u64, usize)] = &[
    ("magic", 0, 8),
    ("version", 8, 4),
    ("state", 12, 4),
    ("creator_pid", 16, 4),
    ("capacity", 24, 8),
    ("slot_size", 32, 8),
    ("segment_len", 40, 8),
    ("lock_holder", 136, 8),
    ("ring", 144, 8),
    ("pushed", 152, 8),
    ("popped", 160, 8),
    ("closed", 168, 4),
    ("last_pusher_cpu", 176, 4),
    ("last_popper_cpu", 180, 4),
    ("recoveries", 184, 8),
    ("high_water", 192, 8),
    ("not_empty.seq", 256, 4),
    ("not_empty.sleepers", 264, 4),
    ("not_full.seq", 384, 4),
    ("not_full.sleepers", 392, 4),
    ("registration[0].generation", 512, 4),
    ("registration[0].kind", 516, 4),
    ("registration[0].asleep_for_message", 520, 4),
    ("registration[0].asleep_for_room", 524, 4),
    ("registration[127].generation", 512 + 127 * 16, 4),
    ("registration[127].kind", 512 + 127 * 16 + 4, 4),
];

/// Where registration `i`'s fields begin.
pub const fn registration(i: u64) -> u64 {
    512 + i * 16
}

/// The offset and size of a field of [`FIELDS`].
pub fn field(name: &str) -> (u64, usize) {
    let &(_, off, size) = FIELDS.iter().find(|f| f.0 == name).unwrap_or_else(|| panic!("no field {name}"));
    (off, size)
}

/// Writes `value` (truncated to the field's size) into a header field through the file.
pub fn write_field(file: &File, name: &str, value: u64) {
    let (off, size) = field(name);
    file.write_all_at(&value.to_ne_bytes()[..size], off).expect("write header field");
}

/// Reads a header field through the file.
pub fn read_field(file: &File, name: &str) -> u64 {
    let (off, size) = field(name);
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b[..size], off).expect("read header field");
    u64::from_ne_bytes(b)
}

/// The segment file, opened read-write as a hostile process would.
pub fn open_file(name: &str) -> File {
    OpenOptions::new().read(true).write(true).open(crate::segment_path(name)).expect("open segment file")
}

/// Consumes the fuzzer's bytes; past the end it yields zeros, so every input is a valid program.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| v << 8 | self.byte() as u64)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Values that sit on the edges of what the library checks.
fn interesting(input: &mut Input, capacity: u32) -> u64 {
    let c = capacity as u64;
    match input.byte() % 12 {
        0 => 0,
        1 => 1,
        2 => c - 1,
        3 => c,
        4 => c + 1,
        5 => c << 32 | (c - 1),
        6 => u32::MAX as u64,
        7 => u64::MAX,
        8 => 1 << 32,
        9 => (input.byte() as u64) << 32 | input.byte() as u64,
        _ => input.u64(),
    }
}

/// Writes `bytes` at `off`, skipping whatever falls on the mutex.
fn scribble(file: &File, len: u64, off: u64, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        let at = off + i as u64;
        if at < len && !LOCK.contains(&at) {
            let _ = file.write_all_at(&[b], at);
        }
    }
}

const TICK: Duration = Duration::from_millis(1);

/// What a returned message may look like, whatever the segment holds.
fn check_msg(q: &RawDeque, m: &[u8]) {
    assert!(m.len() <= q.max_message_len(), "a {}-byte message from {}-byte slots", m.len(), q.slot_size());
}

/// Formats an error (its Display must not panic either) and checks that it is one a hostile segment may cause.
fn check_error(e: &Error) {
    let _ = e.to_string();
    assert!(
        matches!(
            e,
            Error::Corrupted { .. }
                | Error::NotADeque { .. }
                | Error::VersionMismatch { .. }
                | Error::GeometryMismatch { .. }
                | Error::NotReady { .. }
                | Error::Abandoned { .. }
                | Error::NotFound { .. }
                | Error::AlreadyExists { .. }
                | Error::TooManyProducers { .. }
                | Error::InvalidConfig(_)
        ),
        "unexpected error on a hostile segment: {e:?}"
    );
}

fn check_push<T>(r: Result<T, PushError<impl Sized>>) {
    match r {
        Ok(_) => {}
        Err(PushError::Failed { error, .. }) => check_error(&error),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn check_pop(q: &RawDeque, r: Result<Vec<u8>, PopError>) {
    match r {
        Ok(m) => check_msg(q, &m),
        Err(PopError::Failed(e)) => check_error(&e),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn check_count(r: Result<usize, PopError>, max: usize) {
    match r {
        Ok(n) => assert!(n <= max, "popped {n} of at most {max}"),
        Err(PopError::Failed(e)) => check_error(&e),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Runs one case on a fresh segment called `name`, which it creates and removes.
pub fn run(name: &str, data: &[u8]) {
    let mut input = Input(data);
    let capacity = 1 + (input.byte() % 8) as u32;
    let slot_size = 8 * (1 + (input.byte() % 8) as u32);
    let first = Builder::new(name)
        .capacity(capacity)
        .slot_size(slot_size)
        .create_mode(CreateMode::CreateExclusive)
        .open_raw()
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    let file = open_file(name);
    let len = file.metadata().expect("stat segment").len();
    let header = len - capacity as u64 * slot_size as u64;
    // Some genuine messages first, so that there are well-formed slots to corrupt.
    for i in 0..input.byte() as u32 % (capacity + 1) {
        let m = vec![i as u8; (i as usize * 3) % (slot_size as usize - 3)];
        first.try_push_back(&m).expect("push into a fresh deque");
    }
    let mut handles = vec![first];
    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        let flags = input.byte();
        let pick = input.byte() as usize % handles.len().max(1);
        match flags % 24 {
            // Overwrite bytes anywhere: header (weighted) or slots.
            0..=2 => {
                let off = if flags & 0x80 != 0 { input.u64() % len } else { input.u64() % header };
                let n = 1 + input.byte() as usize % 16;
                let bytes = input.take(n).to_vec();
                scribble(&file, len, off, &bytes);
            }
            // An edge value into one header field.
            3..=5 => {
                let (fname, _, _) = FIELDS[input.byte() as usize % FIELDS.len()];
                write_field(&file, fname, interesting(&mut input, capacity));
            }
            // A slot's length word.
            6 => {
                let slot = input.byte() as u64 % capacity as u64;
                let v = interesting(&mut input, slot_size) as u32;
                scribble(&file, len, header + slot * slot_size as u64, &v.to_le_bytes());
            }
            // Another handle, in one of the modes.
            7 => {
                let mode = [CreateMode::Open, CreateMode::OpenOrCreate, CreateMode::CreateExclusive]
                    [input.byte() as usize % 3];
                let mut b = Builder::new(name).create_mode(mode).open_timeout(TICK);
                if input.byte() & 1 == 1 {
                    b = b.capacity(capacity).slot_size(slot_size);
                }
                match b.open_raw() {
                    Ok(q) if handles.len() < 4 => handles.push(q),
                    Ok(_) => {}
                    Err(e) => check_error(&e),
                }
            }
            8 => {
                if let Some(q) = (handles.len() > 1).then(|| handles.swap_remove(pick)) {
                    drop(q);
                }
            }
            9 => match shmdeque::probe(name) {
                Ok(Some(p)) => assert!(p.len <= p.capacity),
                Ok(None) => {}
                Err(e) => check_error(&e),
            },
            10 => match Builder::new(name).create_mode(CreateMode::Open).open_timeout(TICK).open::<(u32, String)>() {
                Ok(t) => match t.try_pop_front() {
                    Ok(_) => {}
                    Err(TypedPopError::Failed(e)) => check_error(&e),
                    Err(e) => {
                        let _ = e.to_string();
                    }
                },
                Err(e) => check_error(&e),
            },
            op => {
                let Some(q) = handles.get(pick) else { continue };
                let n = input.byte() as usize % (q.max_message_len() + 3);
                let msg = vec![op; n];
                let k = 1 + input.byte() as usize % 4;
                match op {
                    11 => check_push(q.try_push_back(&msg)),
                    12 => check_push(q.try_push_front(&msg)),
                    13 => check_push(q.push_back_timeout(&msg, TICK)),
                    14 => check_push(q.try_push_front_many(&vec![&msg[..]; k])),
                    15 => check_push(q.try_push_back_many(&vec![&msg[..]; k])),
                    16 => check_pop(q, q.try_pop_front()),
                    17 => check_pop(q, q.try_pop_back()),
                    18 => check_pop(q, q.pop_back_timeout(TICK)),
                    19 => {
                        let mut out = Vec::new();
                        check_count(q.try_pop_front_many(k, &mut out), k);
                        out.iter().for_each(|m| check_msg(q, m));
                        let mut out = Vec::new();
                        check_count(q.pop_back_many_timeout(k, &mut out, TICK), k);
                        out.iter().for_each(|m| check_msg(q, m));
                    }
                    20 => {
                        for r in [q.peek_front(), q.peek_back()] {
                            match r {
                                Ok(m) => m.iter().for_each(|m| check_msg(q, m)),
                                Err(e) => check_error(&e),
                            }
                        }
                    }
                    21 => match q.lock() {
                        Ok(mut g) => {
                            assert!(g.len() <= q.capacity());
                            for m in g.iter() {
                                match m {
                                    Ok(m) => check_msg(q, m),
                                    Err(e) => check_error(&e),
                                }
                            }
                            match g.get(k) {
                                Ok(m) => m.iter().for_each(|m| check_msg(q, m)),
                                Err(e) => check_error(&e),
                            }
                            check_push(g.try_push_front(&msg));
                            check_pop(q, g.try_pop_back());
                            if flags & 0x40 != 0 {
                                match g.clear() {
                                    Ok(n) => assert!(n <= q.capacity()),
                                    Err(e) => check_error(&e),
                                }
                            }
                        }
                        Err(e) => check_error(&e),
                    },
                    22 => match q.stats() {
                        Ok(s) => assert!(s.len as usize <= q.capacity() && s.capacity as usize == q.capacity()),
                        Err(e) => check_error(&e),
                    },
                    _ => {
                        assert!(q.len() <= q.capacity());
                        let _ = (q.is_empty(), q.is_full(), q.is_closed());
                        match q.register_producer() {
                            Ok(p) => match p.leave(k == 1) {
                                Ok(_) => {}
                                Err(e) => check_error(&e),
                            },
                            Err(e) => check_error(&e),
                        }
                        if k == 4 {
                            match q.close() {
                                Ok(()) => {}
                                Err(e) => check_error(&e),
                            }
                        }
                    }
                }
            }
        }
    }
    drop(handles);
    let _ = shmdeque::remove(name);
}
