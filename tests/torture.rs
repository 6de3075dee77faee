//! The crash matrix and the load tests: real processes on real segments, SIGKILLed at the worst moments, with
//! every message accounted for exactly.
//!
//! # How the accounting stays exact when processes are killed
//! Every message is a [`synth`] message, checksummed and stamped with its producer and sequence number. Each
//! child appends what it does to its own record file, one `write` per record (see `support::Log`):
//!
//! * a producer records its intent before a push and `ok` after the push returned Ok, per message;
//! * a consumer records the start of each operation, then an intent for each message *while the library holds
//!   the lock and before the pop is published* (inside the `read` closure of `pop_*_with`, inside the typed
//!   decoder for batch pops, or between a peek and a pop under a lock guard), then a commit after the pop
//!   returned.
//!
//! So a consumer killed after a pop took effect but before it returned has the message in its intents: that
//! message was delivered to it. A message is then accounted for exactly once by: a commit, the final drain,
//! or an uncommitted intent of a killed consumer's last operation that nobody else received.
//!
//! Knobs: `SHMDEQUE_TORTURE_ITERS` (crash-matrix iterations, default 500), `SHMDEQUE_LOAD_MESSAGES`
//! (messages per load test, default 1,000,000), `SHMDEQUE_TORTURE_SEED` (repeat a run). The defaults take about
//! 35 s in a release build and a minute in a debug build on 2 cores; soak runs raise the first two.

use shmdeque_testkit as support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmdeque::{Builder, CreateMode, PopError, PushError, RawDeque, SharedDeque, TypedPopError};
use shmdeque_synth as synth;
use support::{Kid, Log, Name, Rec, Rng, Scratch, Watchdog, env_usize, wait_until};

const ENTRY: &str = "torture_child";
/// Size of every synthetic message; [`Wire`] decodes exactly this many bytes.
const SIZE: usize = 48;
const SLOT: u32 = 64;
/// How long any one wait may take before the test fails as hung.
const LIMIT: Duration = Duration::from_secs(60);
/// Timeout of the blocking operations of children that must notice their stop file.
const TICK: Duration = Duration::from_millis(20);

const V_NAME: &str = "SHMDEQUE_TEST_NAME";
const V_LOG: &str = "SHMDEQUE_TEST_LOG";
const V_STOP: &str = "SHMDEQUE_TEST_STOP";
const V_ID: &str = "SHMDEQUE_TEST_ID";
const V_MODE: &str = "SHMDEQUE_TEST_MODE";
const V_SEED: &str = "SHMDEQUE_TEST_SEED";
const V_COUNT: &str = "SHMDEQUE_TEST_COUNT";

// Record kinds.
const TID: u8 = b'T';
const PUSH_INTENT: u8 = b'i';
const PUSH_OK: u8 = b'k';
const POP_OP: u8 = b'O';
const POP_INTENT: u8 = b'I';
const POP_COMMIT: u8 = b'C';
const LOCKED: u8 = b'L';
/// Written by a consumer stopped inside its `read` closure: the pop it was in cannot have taken effect.
const UNPUBLISHED: u8 = b'U';
const BAD: u8 = b'X';

// ---------------------------------------------------------------------------------------------------------
// The child side.

static LOG: OnceLock<Log> = OnceLock::new();

fn log() -> &'static Log {
    LOG.get().expect("record file")
}

/// Checks a popped message completely (checksum, and every byte against what its producer made) and returns
/// its stamp; records it as bad otherwise.
fn stamp_of(bytes: &[u8]) -> Option<synth::Stamp> {
    match synth::check(bytes) {
        Ok(s) if bytes == synth::make(s.producer, s.seq, SIZE).as_slice() => Some(s),
        _ => {
            log().rec(BAD, bytes.len() as u64, 0);
            None
        }
    }
}

/// Records that the message is being popped: called while the lock is held, before the pop is published.
fn intent(bytes: &[u8]) {
    if let Some(s) = stamp_of(bytes) {
        log().rec(POP_INTENT, s.producer as u64, s.seq);
    }
}

fn commit(bytes: &[u8]) {
    if let Some(s) = stamp_of(bytes) {
        log().rec(POP_COMMIT, s.producer as u64, s.seq);
    }
}

/// The wire form of a synthetic message for typed pops: bincode writes a tuple of byte arrays as exactly the
/// bytes, so a typed pop decodes the raw bytes that a producer pushed.
#[derive(Serialize, Deserialize)]
struct Wire([u8; 32], [u8; 16]);

/// A synthetic message popped through the typed API. Decoding runs under the lock before the pop is published,
/// so it records the intent.
struct Logged(Vec<u8>);

impl<'de> Deserialize<'de> for Logged {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Logged, D::Error> {
        let Wire(a, b) = Wire::deserialize(d)?;
        let bytes = [&a[..], &b[..]].concat();
        intent(&bytes);
        Ok(Logged(bytes))
    }
}

impl Serialize for Logged {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut a = [0u8; 32];
        let mut b = [0u8; 16];
        a.copy_from_slice(&self.0[..32]);
        b.copy_from_slice(&self.0[32..SIZE]);
        Wire(a, b).serialize(s)
    }
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} not set"))
}

fn open_typed(name: &str) -> SharedDeque<Logged> {
    Builder::new(name).create_mode(CreateMode::Open).open::<Logged>().expect("open deque")
}

/// The child side of every test here. Does nothing in a normal test run.
#[test]
fn torture_child() {
    let Ok(role) = std::env::var(support::ROLE) else { return };
    support::child_init();
    let name = env(V_NAME);
    let mut rng = Rng::new(env(V_SEED).parse().expect("seed"));
    match role.as_str() {
        "producer" | "consumer" => {
            let _ = LOG.set(Log::create(&PathBuf::from(env(V_LOG))));
            log().rec(TID, support::gettid() as u64, 0);
            let typed = open_typed(&name);
            let stop = PathBuf::from(env(V_STOP));
            let mode = env(V_MODE);
            if role == "producer" {
                producer(typed.as_raw(), env(V_ID).parse().expect("id"), &mode, &stop, &mut rng);
            } else {
                consumer(&typed, &mode, &stop, &mut rng);
            }
        }
        "load-producer" => load_producer(&name, env(V_ID).parse().expect("id"), &mut rng),
        "load-consumer" => load_consumer(&name, &PathBuf::from(env(V_LOG)), &mut rng),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// Sleeps (holding whatever the caller holds) until the stop file appears: forever, for a victim.
fn hold_until(stop: &std::path::Path) {
    while !stop.exists() {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Pushes synthetic messages 0, 1, 2, ... of producer `id` as `mode` says, until the stop file appears.
///
/// * `busy`: a random mix of every push, single and batch, at both ends, with short timeouts;
/// * `fill`: blocking pushes that never time out (to be found blocked on a full deque);
/// * `batch`: large batch pushes, blocking;
/// * `guard`: takes the lock, pushes a few messages under it, records that it holds it and sleeps until
///   stopped;
/// * `inside`: stops half-way through writing a message into its slot (the lock held, nothing published).
fn producer(q: &RawDeque, id: u32, mode: &str, stop: &std::path::Path, rng: &mut Rng) {
    let cap = q.capacity() as u64;
    let mut seq = 0u64;
    let mut next = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                log().rec(PUSH_INTENT, id as u64, seq);
                seq += 1;
                synth::make(id, seq - 1, SIZE)
            })
            .collect()
    };
    let ok = |m: &[u8]| {
        let s = synth::check(m).expect("own message");
        log().rec(PUSH_OK, s.producer as u64, s.seq);
    };
    if mode == "inside" {
        // Stopped half-way through writing a message into its slot, with the lock held.
        let m = &next(1)[0];
        let back = rng.chance(2);
        loop {
            let fill = |slot: &mut [u8]| {
                slot[..SIZE / 2].copy_from_slice(&m[..SIZE / 2]);
                log().rec(LOCKED, 0, 0);
                hold_until(stop);
                slot.copy_from_slice(m);
            };
            let r = if back {
                q.push_back_with_timeout(SIZE, TICK, fill)
            } else {
                q.push_front_with_timeout(SIZE, TICK, fill)
            };
            match r {
                Ok(()) => return ok(m),
                Err(PushError::Timeout(())) => {}
                Err(e) => panic!("push: {e:?}"),
            }
        }
    }
    if mode == "guard" {
        let msgs = next(rng.below(4) as usize);
        let mut g = q.lock().expect("lock");
        for m in &msgs {
            let r = if rng.chance(2) { g.try_push_back(m) } else { g.try_push_front(m) };
            match r {
                Ok(()) => ok(m),
                Err(PushError::Full(_)) => break,
                Err(e) => panic!("push under the guard: {e:?}"),
            }
        }
        log().rec(LOCKED, 0, 0);
        hold_until(stop);
        return;
    }
    while !stop.exists() {
        let op = match mode {
            "busy" => rng.below(6),
            "fill" => 6 + rng.below(4),
            "batch" => 8 + rng.below(2),
            other => panic!("unknown producer mode {other}"),
        };
        let k = 1 + rng.below(if mode == "batch" { 3 * cap } else { cap + 1 }) as usize;
        // Single pushes: Ok means pushed, a timeout or Full means not.
        let single = |r: Result<(), PushError<&[u8]>>, m: &[u8]| match r {
            Ok(()) => ok(m),
            Err(PushError::Timeout(_) | PushError::Full(_)) => {}
            Err(e) => panic!("push: {e:?}"),
        };
        // Batches: the count (also in a Timeout or Full) says how many of the first messages went in.
        let batch = |r: Result<usize, PushError<usize>>, msgs: &[Vec<u8>]| {
            let n = match r {
                Ok(n) => n,
                Err(PushError::Timeout(n) | PushError::Full(n)) => n,
                Err(e) => panic!("batch push: {e:?}"),
            };
            msgs[..n].iter().for_each(|m| ok(m));
        };
        match op {
            0 => {
                let m = &next(1)[0];
                single(q.push_back_timeout(m, TICK), m);
            }
            1 => {
                let m = &next(1)[0];
                single(q.push_front_timeout(m, TICK), m);
            }
            2 => {
                let m = &next(1)[0];
                single(q.try_push_back(m), m);
            }
            3 => {
                let msgs = next(k);
                batch(q.push_back_many_timeout(&msgs, TICK), &msgs);
            }
            4 => {
                let msgs = next(k);
                batch(q.push_front_many_timeout(&msgs, TICK), &msgs);
            }
            5 => {
                let msgs = next(k);
                let mut g = q.lock().expect("lock");
                for m in &msgs {
                    match g.try_push_front(m) {
                        Ok(()) => ok(m),
                        Err(PushError::Full(_)) => break,
                        Err(e) => panic!("push under the guard: {e:?}"),
                    }
                }
            }
            6 => {
                let m = &next(1)[0];
                single(q.push_back(m), m);
            }
            7 => {
                let m = &next(1)[0];
                single(q.push_front(m), m);
            }
            8 => {
                let msgs = next(k);
                batch(q.push_back_many(&msgs), &msgs);
            }
            _ => {
                let msgs = next(k);
                batch(q.push_front_many(&msgs), &msgs);
            }
        }
    }
}

/// Pops as `mode` says until the stop file appears:
///
/// * `busy`: a random mix of every pop, single and batch, raw and typed, at both ends, with short timeouts;
/// * `block`: pops that never time out (to be found blocked on an empty deque);
/// * `batch`: large batch pops;
/// * `drain`: pops without waiting until the deque is empty, then exits;
/// * `guard`: takes the lock, pops a few messages under it, records that it holds it and sleeps until
///   stopped;
/// * `inside`: stops inside the `read` of a pop (the lock held, the message not yet removed).
fn consumer(t: &SharedDeque<Logged>, mode: &str, stop: &std::path::Path, rng: &mut Rng) {
    let q = t.as_raw();
    let cap = q.capacity() as u64;
    let under_guard = |n: usize, back: bool| {
        let mut g = q.lock().expect("lock");
        for _ in 0..n {
            let peek = if back { g.back() } else { g.front() };
            let Some(m) = peek.expect("peek") else { break };
            intent(m);
            let m = if back { g.try_pop_back() } else { g.try_pop_front() }.expect("pop what was just peeked");
            commit(&m);
        }
        g
    };
    if mode == "inside" {
        // Stopped inside `read`, with the lock held and the message not yet removed.
        log().rec(POP_OP, 0, 0);
        let back = rng.chance(2);
        loop {
            let read = |m: &[u8]| {
                intent(m);
                log().rec(UNPUBLISHED, 0, 0);
                log().rec(LOCKED, 0, 0);
                hold_until(stop);
                m.to_vec()
            };
            let r = if back { q.pop_back_with_timeout(TICK, read) } else { q.pop_front_with_timeout(TICK, read) };
            match r {
                Ok(m) => return commit(&m),
                Err(PopError::Timeout) => {}
                Err(e) => panic!("pop: {e:?}"),
            }
        }
    }
    if mode == "guard" {
        log().rec(POP_OP, 0, 0);
        let _g = under_guard(rng.below(4) as usize, rng.chance(2));
        log().rec(LOCKED, 0, 0);
        hold_until(stop);
        return;
    }
    while !stop.exists() {
        let op = match mode {
            "busy" => rng.below(8),
            "block" => 8 + rng.below(4),
            "batch" => 3 + rng.below(2),
            "drain" => 4,
            other => panic!("unknown consumer mode {other}"),
        };
        let k = 1 + rng.below(if mode == "batch" { 3 * cap } else { cap + 1 }) as usize;
        log().rec(POP_OP, op, 0);
        let single = |r: Result<Vec<u8>, TypedPopError>| match r {
            Ok(m) => commit(&m),
            Err(TypedPopError::Timeout | TypedPopError::Empty) => {}
            Err(e) => panic!("pop: {e:?}"),
        };
        let mut out = Vec::new();
        let many = |r: Result<usize, TypedPopError>, out: &[Logged]| match r {
            Ok(n) => {
                assert_eq!(n, out.len());
                out.iter().for_each(|m| commit(&m.0));
            }
            Err(TypedPopError::Timeout | TypedPopError::Empty) => assert!(out.is_empty()),
            Err(e) => panic!("batch pop: {e:?}"),
        };
        match op {
            0 => single(
                q.pop_front_with_timeout(TICK, |m| {
                    intent(m);
                    m.to_vec()
                })
                .map_err(Into::into),
            ),
            1 => single(
                q.pop_back_with_timeout(TICK, |m| {
                    intent(m);
                    m.to_vec()
                })
                .map_err(Into::into),
            ),
            2 => single(t.pop_front_timeout(TICK).map(|m| m.0)),
            3 => many(t.pop_front_many_timeout(k, &mut out, TICK), &out),
            4 => {
                // Draining must not wait: it ends at the first empty deque.
                let r = if mode == "drain" {
                    t.try_pop_back_many(k, &mut out)
                } else {
                    t.pop_back_many_timeout(k, &mut out, TICK)
                };
                let empty = matches!(r, Err(TypedPopError::Empty));
                many(r, &out);
                if mode == "drain" && empty {
                    return;
                }
            }
            5 => many(t.try_pop_front_many(k, &mut out), &out),
            6 => single(t.pop_back_timeout(TICK).map(|m| m.0)),
            7 => drop(under_guard(k, rng.chance(2))),
            8 => single(
                q.pop_front_with(|m| {
                    intent(m);
                    m.to_vec()
                })
                .map_err(Into::into),
            ),
            9 => single(t.pop_back().map(|m| m.0)),
            10 => many(t.pop_front_many(k, &mut out), &out),
            _ => many(t.pop_back_many(k, &mut out), &out),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The crash matrix.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
}

/// What the parent keeps about every child it ever started, for the final accounting.
struct Meta {
    log: PathBuf,
    stop: PathBuf,
    role: Role,
    killed: bool,
    label: String,
}

/// A running child of the matrix.
struct Runner {
    kid: Kid,
    meta: usize,
    /// For a child run as pid 1 of a PID namespace of its own: its pid as this process sees it (`kid` is the
    /// `unshare` that made the namespace).
    inner: Option<u32>,
}

struct Deq {
    name: Name,
    q: RawDeque,
}

struct Matrix {
    scratch: Scratch,
    deques: Vec<Deq>,
    meta: Vec<Meta>,
    next_id: u32,
    rng: Rng,
    /// Run every other child in a PID namespace of its own, so that killers and survivors are in different
    /// namespaces.
    namespaces: bool,
}

impl Matrix {
    fn spawn(&mut self, d: usize, role: Role, mode: &str) -> Runner {
        self.next_id += 1;
        let id = self.next_id;
        let label = format!("{role:?} {id} ({mode}) on deque {d}");
        let log = self.scratch.file(&format!("{id}.log"));
        let stop = self.scratch.file(&format!("{id}.stop"));
        let role_name = if role == Role::Producer { "producer" } else { "consumer" };
        let envs = [
            (V_NAME, self.deques[d].name.to_string()),
            (V_LOG, log.display().to_string()),
            (V_STOP, stop.display().to_string()),
            (V_ID, id.to_string()),
            (V_MODE, mode.to_owned()),
            (V_SEED, self.rng.next_u64().to_string()),
        ];
        let (kid, inner) = if self.namespaces && id.is_multiple_of(2) {
            let mut unshare = Command::new("unshare");
            unshare.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
            let mut cmd = Kid::role_command_under(unshare, ENTRY, role_name);
            cmd.envs(envs.iter().map(|(k, v)| (k, v)));
            let kid = Kid::start(cmd, role_name);
            let inner = inner_pid(kid.pid());
            (kid, Some(inner))
        } else {
            (Kid::spawn(ENTRY, role_name, &envs), None)
        };
        self.meta.push(Meta { log, stop, role, killed: false, label });
        Runner { kid, meta: self.meta.len() - 1, inner }
    }

    /// Whether thread `tid` (as this process sees it) of `r` sleeps in a futex system call.
    fn in_futex_wait(&self, r: &Runner, tid: u32) -> bool {
        match r.inner {
            Some(pid) => shmdeque_testkit::in_futex_wait(pid, tid),
            None => r.kid.in_futex_wait(tid),
        }
    }

    fn count(&self, r: &Runner, kind: u8) -> usize {
        Log::count(&self.meta[r.meta].log, kind)
    }

    /// Waits until `r` has recorded `n` more records of `kind` than `from`: the proof that it makes progress.
    fn progress(&self, r: &Runner, kind: u8, from: usize, n: usize) {
        let m = &self.meta[r.meta];
        wait_until(&format!("{} makes progress", m.label), LIMIT, || Log::count(&m.log, kind) >= from + n);
    }

    fn stop(&self, mut r: Runner) {
        std::fs::write(&self.meta[r.meta].stop, b"").expect("stop file");
        r.kid.finish(LIMIT);
    }

    fn kill(&mut self, mut r: Runner) {
        if let Some(s) = r.kid.try_status() {
            panic!("{} ended by itself before it was killed: {s}", self.meta[r.meta].label);
        }
        match r.inner {
            // Kill the child itself, pid 1 of its namespace; `unshare` then reaps it and exits, so once it is
            // reaped in turn the child is dead too.
            Some(pid) => {
                // SAFETY: kill(2) on the pid of a live grandchild, whose parent (`unshare`, our child, not yet
                // reaped) keeps it from being reaped and its pid reused.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                r.kid.wait(LIMIT);
            }
            None => {
                r.kid.kill();
            }
        }
        self.meta[r.meta].killed = true;
    }

    /// The id, as this process sees it, of the thread of `r` that works on the deque.
    fn tid(&self, r: &Runner) -> u32 {
        let log = &self.meta[r.meta].log;
        wait_until("child records its thread id", LIMIT, || Log::count(log, TID) > 0);
        let tid = Log::read(log)[0].a as u32;
        match r.inner {
            None => tid,
            // The child recorded the id its own namespace gives the thread: find the thread by it.
            Some(pid) => host_tid(pid, tid),
        }
    }

    /// Waits until all of `rs` sit in a futex wait, seen three times in a row: blocked, not passing through.
    fn blocked(&self, d: usize, rs: &[&Runner], full: bool) {
        let tids: Vec<u32> = rs.iter().map(|r| self.tid(r)).collect();
        let q = &self.deques[d].q;
        let mut streak = 0;
        wait_until("children block on the deque", LIMIT, || {
            let all = rs.iter().zip(&tids).all(|(r, &t)| self.in_futex_wait(r, t));
            let state = if full { q.is_full() } else { q.is_empty() };
            streak = if all && state { streak + 1 } else { 0 };
            if streak < 3 {
                thread::sleep(Duration::from_millis(2));
            }
            streak >= 3
        });
    }

    fn nap(&mut self, max_ms: u64) {
        thread::sleep(Duration::from_micros(self.rng.below(max_ms * 1000 + 1)));
    }

    fn random_role(&mut self) -> Role {
        if self.rng.chance(2) { Role::Producer } else { Role::Consumer }
    }

    /// Kills a process that holds the lock; the others, blocked behind it, must go on, and exactly one
    /// recovery is counted.
    ///
    /// The victim either holds a lock guard after whole pushes or pops, or is stopped inside the library's
    /// critical section: half-way through writing a message into its slot, or inside the `read` of a pop,
    /// before the ring word is published. Neither may leave a torn message or lose the message being popped.
    fn hold_lock(&mut self, d: usize) -> (u64, u64) {
        let role = self.random_role();
        let mode = if self.rng.chance(2) { "inside" } else { "guard" };
        let p = self.spawn(d, Role::Producer, "busy");
        let c = self.spawn(d, Role::Consumer, "busy");
        let v = self.spawn(d, role, mode);
        let log = self.meta[v.meta].log.clone();
        wait_until("victim holds the lock", LIMIT, || Log::count(&log, LOCKED) > 0);
        self.nap(10);
        let (pushed, popped) = (self.count(&p, PUSH_OK), self.count(&c, POP_COMMIT));
        self.kill(v);
        self.progress(&p, PUSH_OK, pushed, 3);
        self.progress(&c, POP_COMMIT, popped, 3);
        self.stop(p);
        self.stop(c);
        (1, 1)
    }

    /// Kills a process blocked on the lock itself (in the mutex's futex, behind a holder), then has the holder
    /// let go: the other process blocked behind it gets the lock, and a new process can too.
    fn blocked_on_lock(&mut self, d: usize) -> (u64, u64) {
        let role = self.random_role();
        let h = self.spawn(d, role, "guard");
        let log = self.meta[h.meta].log.clone();
        wait_until("holder holds the lock", LIMIT, || Log::count(&log, LOCKED) > 0);
        let v = self.spawn(d, role, "busy");
        let other = if role == Role::Producer { Role::Consumer } else { Role::Producer };
        let s = self.spawn(d, other, "busy");
        self.blocked_anyhow(&[&v, &s]);
        self.kill(v);
        self.stop(h);
        self.replace_and_check(d, role, s);
        (0, 0)
    }

    /// Waits until all of `rs` sit in a futex wait, seen three times in a row.
    fn blocked_anyhow(&self, rs: &[&Runner]) {
        let tids: Vec<u32> = rs.iter().map(|r| self.tid(r)).collect();
        let mut streak = 0;
        wait_until("children block on the lock", LIMIT, || {
            let all = rs.iter().zip(&tids).all(|(r, &t)| self.in_futex_wait(r, t));
            streak = if all { streak + 1 } else { 0 };
            if streak < 3 {
                thread::sleep(Duration::from_millis(2));
            }
            streak >= 3
        });
    }

    /// Kills one of two producers blocked on a full deque; the other must still be woken when room is made.
    fn blocked_full(&mut self, d: usize) -> (u64, u64) {
        let v = self.spawn(d, Role::Producer, "fill");
        let s = self.spawn(d, Role::Producer, "fill");
        self.blocked(d, &[&v, &s], true);
        self.kill(v);
        let before = self.count(&s, PUSH_OK);
        let c = self.spawn(d, Role::Consumer, "busy");
        self.progress(&s, PUSH_OK, before, 2);
        self.progress(&c, POP_COMMIT, 0, 3);
        self.stop(s);
        self.stop(c);
        (0, 0)
    }

    /// Kills one of two consumers blocked on an empty deque; the other must still be woken by a push.
    fn blocked_empty(&mut self, d: usize) -> (u64, u64) {
        let mut drain = self.spawn(d, Role::Consumer, "drain");
        drain.kid.finish(LIMIT);
        let v = self.spawn(d, Role::Consumer, "block");
        let s = self.spawn(d, Role::Consumer, "block");
        self.blocked(d, &[&v, &s], false);
        self.kill(v);
        let p = self.spawn(d, Role::Producer, "busy");
        self.progress(&s, POP_COMMIT, 0, 2);
        self.progress(&p, PUSH_OK, 0, 3);
        self.stop(s);
        self.stop(p);
        (0, 0)
    }

    /// Kills a process in the middle of batch pushes or pops, against a busy peer; a new process takes its place.
    fn mid_batch(&mut self, d: usize, role: Role) -> (u64, u64) {
        let peer_role = if role == Role::Producer { Role::Consumer } else { Role::Producer };
        let peer = self.spawn(d, peer_role, "busy");
        let v = self.spawn(d, role, "batch");
        let log = self.meta[v.meta].log.clone();
        let first = if role == Role::Producer { PUSH_INTENT } else { POP_OP };
        wait_until("victim starts its batches", LIMIT, || Log::count(&log, first) > 0);
        self.nap(8);
        self.kill(v);
        self.replace_and_check(d, role, peer)
    }

    /// Kills a random process of a busy deque at a random moment, possibly before it even opened the deque.
    fn busy(&mut self, d: usize) -> (u64, u64) {
        let role = self.random_role();
        let peer_role = if role == Role::Producer { Role::Consumer } else { Role::Producer };
        let peer = self.spawn(d, peer_role, "busy");
        let v = self.spawn(d, role, "busy");
        self.nap(15);
        self.kill(v);
        self.replace_and_check(d, role, peer)
    }

    fn replace_and_check(&mut self, d: usize, role: Role, peer: Runner) -> (u64, u64) {
        let new = self.spawn(d, role, "busy");
        let (peer_kind, new_kind) = if role == Role::Producer { (POP_COMMIT, PUSH_OK) } else { (PUSH_OK, POP_COMMIT) };
        let before = self.count(&peer, peer_kind);
        self.progress(&peer, peer_kind, before, 3);
        self.progress(&new, new_kind, 0, 3);
        self.stop(new);
        self.stop(peer);
        (0, 1)
    }
}

/// Per producer: what it meant to push and what it pushed for sure.
#[derive(Default)]
struct Pushes {
    intended: HashSet<u64>,
    ok: HashSet<u64>,
}

/// Checks the exactly-once invariant over every record of every child and the final contents of the deques.
fn account(meta: &[Meta], drained: &[(u32, u64)]) -> String {
    let mut pushes: HashMap<u32, Pushes> = HashMap::new();
    let mut received: HashMap<(u32, u64), Vec<String>> = HashMap::new();
    // Intents of killed consumers' last operations that were never committed.
    let mut in_flight: HashMap<(u32, u64), String> = HashMap::new();
    // Messages that a consumer was killed reading before its pop could take effect.
    let mut must_remain: Vec<((u32, u64), String)> = Vec::new();
    for m in meta {
        let recs = Log::read(&m.log);
        assert!(!recs.iter().any(|r| r.kind == BAD), "{} received a torn or foreign message", m.label);
        match m.role {
            Role::Producer => {
                for r in &recs {
                    let p = pushes.entry(r.a as u32).or_default();
                    match r.kind {
                        PUSH_INTENT => assert!(p.intended.insert(r.b), "{} reused a sequence number", m.label),
                        PUSH_OK => assert!(p.ok.insert(r.b) && p.intended.contains(&r.b), "{}: bad ok", m.label),
                        _ => {}
                    }
                }
            }
            Role::Consumer => {
                // Split into operations; within each, intents must be matched by commits.
                let ops: Vec<&[Rec]> = recs.split(|r| r.kind == POP_OP).collect();
                for (i, op) in ops.iter().enumerate() {
                    let mut open: Vec<(u32, u64)> = Vec::new();
                    for r in op.iter() {
                        let stamp = (r.a as u32, r.b);
                        match r.kind {
                            POP_INTENT => open.push(stamp),
                            POP_COMMIT => {
                                let at = open.iter().position(|&s| s == stamp);
                                let at = at.unwrap_or_else(|| panic!("{}: commit without intent {stamp:?}", m.label));
                                open.remove(at);
                                received.entry(stamp).or_default().push(m.label.clone());
                            }
                            _ => {}
                        }
                    }
                    if !open.is_empty() {
                        let last = i == ops.len() - 1;
                        assert!(m.killed && last, "{}: messages read but never popped: {open:?}", m.label);
                        if op.iter().any(|r| r.kind == UNPUBLISHED) {
                            must_remain.extend(open.iter().map(|&s| (s, m.label.clone())));
                        }
                        for s in open {
                            in_flight.insert(s, m.label.clone());
                        }
                    }
                }
            }
        }
    }
    for &s in drained {
        received.entry(s).or_default().push("the final drain".into());
    }
    for (s, who) in &received {
        assert_eq!(who.len(), 1, "message {s:?} delivered more than once: {who:?}");
        let p = pushes.get(&s.0);
        assert!(p.is_some_and(|p| p.intended.contains(&s.1)), "message {s:?} was never pushed");
    }
    for (s, who) in &must_remain {
        assert!(received.contains_key(s), "{who} was killed before its pop of {s:?} took effect, yet it is gone");
    }
    let mut delivered_to_killed = 0;
    let mut ok_total = 0;
    for (&id, p) in &pushes {
        for &seq in &p.ok {
            ok_total += 1;
            if received.contains_key(&(id, seq)) {
                continue;
            }
            assert!(in_flight.contains_key(&(id, seq)), "message {seq} of producer {id} was pushed and lost");
            delivered_to_killed += 1;
        }
    }
    format!(
        "{ok_total} pushes returned Ok; {} messages received; {delivered_to_killed} delivered to consumers killed \
         before their pop returned; {} left in the deques at the end",
        received.len(),
        drained.len()
    )
}

/// The pid of the only child of `unshare` (pid `parent`), as this process sees it.
fn inner_pid(parent: u32) -> u32 {
    let path = format!("/proc/{parent}/task/{parent}/children");
    let mut pid = 0;
    wait_until("unshare starts its child", LIMIT, || {
        pid = std::fs::read_to_string(&path).ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0);
        pid != 0
    });
    pid
}

/// The id, as this process sees it, of the thread of process `pid` whose id in its own PID namespace is
/// `ns_tid` (from the last field of the `NSpid` line of each thread's status).
fn host_tid(pid: u32, ns_tid: u32) -> u32 {
    let mut found = 0;
    wait_until("find the child's thread", LIMIT, || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        for t in tasks.flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let ns = status.lines().find(|l| l.starts_with("NSpid:")).and_then(|l| l.split_whitespace().last());
            if ns.and_then(|n| n.parse::<u32>().ok()) == Some(ns_tid) {
                found = t.file_name().to_string_lossy().parse().unwrap_or(0);
                return found != 0;
            }
        }
        false
    });
    found
}

#[test]
fn crash_matrix_kills_at_the_worst_moments_and_loses_nothing() {
    crash_matrix(env_usize("SHMDEQUE_TORTURE_ITERS", 500), false);
}

/// The same with every other process pid 1 of a PID namespace of its own, as in containers that share
/// `/dev/shm` but not a PID namespace: lock holders are killed in one namespace and recovered from another.
#[test]
fn crash_matrix_across_pid_namespaces() {
    let ok =
        Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "note: cannot make PID namespaces here (needs root and unshare): crash matrix across namespaces skipped"
        );
        return;
    }
    crash_matrix(env_usize("SHMDEQUE_TORTURE_NS_ITERS", 200), true);
}

fn crash_matrix(iterations: usize, namespaces: bool) {
    let mut rng = Rng::from_env("SHMDEQUE_TORTURE_SEED");
    let deques = [1u32, 3, 8]
        .iter()
        .map(|&cap| {
            let name = Name::new("matrix");
            let q = Builder::new(&*name)
                .capacity(cap)
                .slot_size(SLOT)
                .create_mode(CreateMode::CreateExclusive)
                .open_raw()
                .expect("create");
            Deq { name, q }
        })
        .collect();
    let seed = rng.next_u64();
    let mut m = Matrix {
        scratch: Scratch::new("matrix"),
        deques,
        meta: Vec::new(),
        next_id: 0,
        rng: Rng::new(seed),
        namespaces,
    };
    let mut kinds = [0usize; 7];
    let (mut min_recoveries, mut max_recoveries) = (0, 0);
    for it in 0..iterations {
        let _dog = Watchdog::new(&format!("crash matrix iteration {it}"), Duration::from_secs(120));
        let d = m.rng.below(m.deques.len() as u64) as usize;
        let before = m.deques[d].q.stats().expect("stats").lock_recoveries;
        let kind = m.rng.below(7) as usize;
        kinds[kind] += 1;
        let (lo, hi) = match kind {
            0 => m.hold_lock(d),
            1 => m.blocked_full(d),
            2 => m.blocked_empty(d),
            3 => m.mid_batch(d, Role::Producer),
            4 => m.mid_batch(d, Role::Consumer),
            5 => m.blocked_on_lock(d),
            _ => m.busy(d),
        };
        let delta = m.deques[d].q.stats().expect("stats").lock_recoveries - before;
        assert!((lo..=hi).contains(&delta), "iteration {it} (kind {kind}): {delta} lock recoveries, not {lo}..={hi}");
        min_recoveries += lo;
        max_recoveries += hi;
    }
    // Whatever is left in the deques is accounted as drained.
    let mut drained = Vec::new();
    let mut recoveries = 0;
    for d in &m.deques {
        recoveries += d.q.stats().unwrap().lock_recoveries;
        while let Ok(msg) = d.q.try_pop_front() {
            let s = synth::check(&msg).expect("a torn message was left in the deque");
            assert_eq!(msg, synth::make(s.producer, s.seq, SIZE));
            drained.push((s.producer, s.seq));
        }
    }
    let summary = account(&m.meta, &drained);
    let killed = m.meta.iter().filter(|x| x.killed).count();
    eprintln!(
        "crash matrix: {iterations} iterations (holding the lock or inside it {}, blocked on full {}, blocked on empty {}, \
         mid batch push {}, mid batch pop {}, blocked on the lock {}, busy {}); {} processes, {killed} \
         SIGKILLed; {recoveries} lock recoveries (expected {min_recoveries}..={max_recoveries}); {summary}",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        kinds[4],
        kinds[5],
        kinds[6],
        m.meta.len()
    );
    assert!((min_recoveries..=max_recoveries).contains(&recoveries));
    // The admin tool reports the same count.
    for d in &m.deques {
        let out = std::process::Command::new(support::tool("shmdeque"))
            .args(["info", &d.name, "--json"])
            .output()
            .expect("run shmdeque info");
        assert!(out.status.success(), "shmdeque info: {}", String::from_utf8_lossy(&out.stderr));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info --json is JSON");
        assert_eq!(info["lock_recoveries"], d.q.stats().unwrap().lock_recoveries);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Load.

/// Pushes messages 0..COUNT of producer `id` with every kind of blocking push, at both ends.
fn load_producer(name: &str, id: u32, rng: &mut Rng) {
    let q = Builder::new(name).create_mode(CreateMode::Open).open_raw().expect("open");
    let count: u64 = env(V_COUNT).parse().expect("count");
    let mut seq = 0;
    while seq < count {
        let k = (1 + rng.below(8)).min(count - seq);
        let msgs: Vec<Vec<u8>> = (seq..seq + k).map(|s| synth::make(id, s, SIZE)).collect();
        let fail = |e: &dyn std::fmt::Debug| panic!("push: {e:?}");
        let pushed = match rng.below(5) {
            0 => q.push_back(&msgs[0]).map_or_else(|e| fail(&e), |()| 1),
            1 => q.push_front(&msgs[0]).map_or_else(|e| fail(&e), |()| 1),
            2 => q.push_back_with(SIZE, |slot| synth::fill(slot, id, seq)).map_or_else(|e| fail(&e), |()| 1),
            3 => q.push_back_many(&msgs).unwrap_or_else(|e| fail(&e)),
            _ => q.push_front_many(&msgs).unwrap_or_else(|e| fail(&e)),
        };
        seq += pushed as u64;
    }
}

/// Pops with every kind of blocking pop at both ends until the deque is closed and drained; checks every
/// checksum and writes the stamps it received to its file.
fn load_consumer(name: &str, out: &std::path::Path, rng: &mut Rng) {
    let q = Builder::new(name).create_mode(CreateMode::Open).open_raw().expect("open");
    let mut got: Vec<u8> = Vec::new();
    let mut take = |m: &[u8]| {
        let s = synth::check(m).unwrap_or_else(|e| panic!("bad message: {e}"));
        assert_eq!(m.len(), SIZE);
        got.extend_from_slice(&(s.producer as u64).to_le_bytes());
        got.extend_from_slice(&s.seq.to_le_bytes());
    };
    loop {
        let k = 1 + rng.below(8) as usize;
        let mut out = Vec::new();
        let r = match rng.below(5) {
            0 => q.pop_front().map(|m| out.push(m)),
            1 => q.pop_back().map(|m| out.push(m)),
            2 => q.pop_front_many(k, &mut out).map(drop),
            3 => q.pop_back_many(k, &mut out).map(drop),
            _ => q.pop_front_many_with(k, &mut take).map(drop),
        };
        out.iter().for_each(|m| take(m));
        match r {
            Ok(()) => {}
            Err(PopError::Closed) => break,
            Err(e) => panic!("pop: {e:?}"),
        }
    }
    std::fs::write(out, got).expect("write received stamps");
}

/// 4 producers and 4 consumers on one deque, both ends, `total` messages: each received exactly once, intact.
fn load(capacity: u32) {
    let total = env_usize("SHMDEQUE_LOAD_MESSAGES", 1_000_000) as u64;
    let _dog = Watchdog::new(&format!("load test at capacity {capacity}"), Duration::from_secs(900));
    let name = Name::new(&format!("load{capacity}"));
    let scratch = Scratch::new("load");
    let q = Builder::new(&*name)
        .capacity(capacity)
        .slot_size(SLOT)
        .create_mode(CreateMode::CreateExclusive)
        .open_raw()
        .expect("create");
    let mut rng = Rng::from_env("SHMDEQUE_TORTURE_SEED");
    let per = total / 4;
    let files: Vec<PathBuf> = (0..4).map(|i| scratch.file(&format!("consumer{i}"))).collect();
    let mut consumers: Vec<Kid> = files
        .iter()
        .map(|f| {
            let envs =
                [(V_NAME, name.to_string()), (V_LOG, f.display().to_string()), (V_SEED, rng.next_u64().to_string())];
            Kid::spawn(ENTRY, "load-consumer", &envs)
        })
        .collect();
    let mut producers: Vec<Kid> = (0..4u32)
        .map(|id| {
            let envs = [
                (V_NAME, name.to_string()),
                (V_ID, id.to_string()),
                (V_COUNT, per.to_string()),
                (V_SEED, rng.next_u64().to_string()),
            ];
            Kid::spawn(ENTRY, "load-producer", &envs)
        })
        .collect();
    for p in &mut producers {
        p.finish(Duration::from_secs(900));
    }
    q.close().unwrap();
    for c in &mut consumers {
        c.finish(LIMIT);
    }
    let mut seen: Vec<Vec<bool>> = vec![vec![false; per as usize]; 4];
    let mut received = 0;
    for f in &files {
        for pair in std::fs::read(f).unwrap().chunks_exact(16) {
            let p = u64::from_le_bytes(pair[..8].try_into().unwrap()) as usize;
            let s = u64::from_le_bytes(pair[8..].try_into().unwrap()) as usize;
            assert!(p < 4 && s < per as usize, "message {s} of producer {p} was never sent");
            assert!(!std::mem::replace(&mut seen[p][s], true), "message {s} of producer {p} received twice");
            received += 1;
        }
    }
    assert_eq!(received, per * 4, "messages lost");
    let stats = q.stats().unwrap();
    assert_eq!((stats.pushed, stats.popped, stats.len), (per * 4, per * 4, 0));
    eprintln!("load at capacity {capacity}: {received} messages, each received exactly once; {stats:?}");
}

#[test]
fn load_four_producers_four_consumers_both_ends() {
    load(64);
}

#[test]
fn load_at_capacity_one() {
    load(1);
}

#[test]
fn load_at_capacity_two() {
    load(2);
}
