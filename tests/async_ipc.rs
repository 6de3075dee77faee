//! The `_async` forms across real processes (feature `async`): many tasks waiting on one deque, cancellation
//! storms with exact accounting, sync and async users mixed, a process killed while its tasks wait, the
//! reactor's fallback without `futex_waitv`, and more words than one `futex_waitv` call takes.
//!
//! Every scenario runs under three executors: tokio's multi-thread and current-thread runtimes, and
//! `futures_executor::block_on`. Messages are `u64` values, little-endian, each pushed once, so that "each
//! delivered exactly once" is a check on the set of values received.

#![cfg(feature = "async")]

use shmdeque_testkit as support;

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use shmdeque::{Builder, CreateMode, RawDeque};
use support::{Kid, Log, Name, Rng, Scratch, Watchdog, wait_until};

const ENTRY: &str = "async_child";
const V_NAME: &str = "SHMDEQUE_ASYNC_NAME";
const V_NAME2: &str = "SHMDEQUE_ASYNC_NAME2";
const V_FROM: &str = "SHMDEQUE_ASYNC_FROM";
const V_COUNT: &str = "SHMDEQUE_ASYNC_COUNT";
const V_LOG: &str = "SHMDEQUE_ASYNC_LOG";
/// Upper bound on any one wait here; reaching it fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(120);
const SLOT: u32 = 16;

// Record kinds of the children's logs.
const VALUE: u8 = b'v';
const SUM: u8 = b's';

#[derive(Debug, Clone, Copy)]
enum Exec {
    TokioMulti,
    TokioCurrent,
    Futures,
}

const EXECUTORS: [Exec; 3] = [Exec::TokioMulti, Exec::TokioCurrent, Exec::Futures];

impl Exec {
    /// Runs `n` tasks made by `task` to completion on this executor (tokio: spawned tasks; futures: all
    /// joined in one `block_on`) and returns their outputs in order.
    fn run_all<F>(self, n: usize, task: impl Fn(usize) -> F) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Exec::TokioMulti | Exec::TokioCurrent => {
                let rt = match self {
                    Exec::TokioMulti => {
                        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
                    }
                    _ => tokio::runtime::Builder::new_current_thread().enable_all().build(),
                }
                .expect("runtime");
                rt.block_on(async {
                    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
                    let mut out = Vec::with_capacity(n);
                    for h in handles {
                        out.push(h.await.expect("task"));
                    }
                    out
                })
            }
            Exec::Futures => futures_executor::block_on(join_all((0..n).map(task))),
        }
    }

    fn is_tokio(self) -> bool {
        !matches!(self, Exec::Futures)
    }
}

fn open(name: &str) -> RawDeque {
    Builder::new(name).create_mode(CreateMode::Open).open_raw().expect("open")
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} not set"))
}

fn env_u64(var: &str) -> u64 {
    env(var).parse().expect("number")
}

fn value(m: &[u8]) -> u64 {
    u64::from_le_bytes(m.try_into().expect("an 8-byte message"))
}

fn signal_ready(what: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "{what}").unwrap();
    out.flush().unwrap();
}

/// A child in `role`, with the deque name and extra variables; stdout piped for [`Kid::await_line`].
fn start(role: &str, vars: &[(&str, String)]) -> Kid {
    let mut cmd = Kid::role_command(ENTRY, role);
    cmd.envs(vars.iter().map(|(k, v)| (k, v))).stdout(Stdio::piped());
    // Children never look again unwoken: a lost wake-up hangs them, and the watchdog fails the test.
    cmd.env("SHMDEQUE_TEST_NO_RECHECK", "1");
    Kid::start(cmd, role)
}

/// Waits until `q` counts at least `n` sleepers waiting for a message (one per handle with async waiters,
/// or per sleeping thread).
fn await_sleepers(q: &RawDeque, n: u32) {
    wait_until("sleepers counted", LIMIT, || q.stats().unwrap().asleep_for_message >= n);
}

/// No sleeper of either kind is counted any more.
fn assert_no_sleepers(q: &RawDeque) {
    let s = q.stats().unwrap();
    assert_eq!((s.asleep_for_message, s.asleep_for_room), (0, 0), "sleeper counts left behind: {s:?}");
}

// ---------------------------------------------------------------------------------------------------------
// The child side.

/// The child side of every test here. Does nothing in a normal test run.
#[test]
fn async_child() {
    let Ok(role) = std::env::var(support::ROLE) else { return };
    support::child_init();
    let name = env(V_NAME);
    match role.as_str() {
        // Sync pushes of FROM..FROM+COUNT, once a sleeper is counted (the consumer's tasks are waiting).
        "feed" => {
            let q = open(&name);
            await_sleepers(&q, 1);
            let from = env_u64(V_FROM);
            for v in from..from + env_u64(V_COUNT) {
                q.push_back(&v.to_le_bytes()).unwrap();
            }
        }
        // Async pushes of FROM..FROM+COUNT from tokio tasks, eight at a time, then nothing.
        "async_feed" => {
            let q = Arc::new(open(&name));
            let (from, count) = (env_u64(V_FROM), env_u64(V_COUNT));
            Exec::TokioCurrent.run_all(8, |t| {
                let q = q.clone();
                async move {
                    for v in (from..from + count).skip(t).step_by(8) {
                        q.push_back_async(&v.to_le_bytes()).await.unwrap();
                    }
                }
            });
        }
        // Sync pops until closed; the count and sum, then every value, go to the log.
        "drain" | "sync_consume" => {
            let q = open(&name);
            let log = Log::create(&PathBuf::from(env(V_LOG)));
            let (mut n, mut sum, mut seen) = (0u64, 0u64, Vec::new());
            loop {
                match q.pop_front() {
                    Ok(m) => {
                        n += 1;
                        sum += value(&m);
                        seen.push(value(&m));
                    }
                    Err(e) if e.is_closed() => break,
                    Err(e) => panic!("{e}"),
                }
            }
            log.rec(SUM, n, sum);
            if role == "sync_consume" {
                for v in seen {
                    log.rec(VALUE, v, 0);
                }
            }
        }
        // Tasks waiting for a message on NAME and for room on NAME2 (full), until killed.
        "async_waiters" => {
            let (q, full) = (Arc::new(open(&name)), Arc::new(open(&env(V_NAME2))));
            let n = env_u64(V_COUNT) as usize;
            Exec::TokioMulti.run_all(n + 1, |i| {
                let (q, full) = (q.clone(), full.clone());
                async move {
                    if i == n {
                        // Says so once both kinds of waiters count.
                        while q.stats().unwrap().asleep_for_message == 0 || full.stats().unwrap().asleep_for_room == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        signal_ready("waiting");
                        std::future::pending::<()>().await;
                    } else if i % 2 == 0 {
                        let _ = q.pop_front_async().await;
                        panic!("a message for a process that should have been killed");
                    } else {
                        let _ = full.push_back_async(b"never").await;
                        panic!("room for a process that should have been killed");
                    }
                }
            });
        }
        // COUNT async pops by 100 tasks on this process's reactor, forced to the fallback without
        // futex_waitv; each value 0..COUNT once, or exit 1.
        "fallback_consumer" => {
            let q = Arc::new(open(&name));
            let count = env_u64(V_COUNT);
            let got = Exec::TokioMulti.run_all(100, |t| {
                let q = q.clone();
                async move {
                    let mut got = Vec::new();
                    for _ in (0..count).skip(t).step_by(100) {
                        got.push(value(&q.pop_front_async().await.unwrap()));
                    }
                    got
                }
            });
            let mut all: Vec<u64> = got.into_iter().flatten().collect();
            all.sort_unstable();
            if all != (0..count).collect::<Vec<_>>() {
                std::process::exit(1);
            }
        }
        // Registers as a producer, pushes one message, says so, and hangs until killed.
        "produce_then_hang" => {
            let q = open(&name);
            let _me = q.register_producer().unwrap();
            q.push_back(&7u64.to_le_bytes()).unwrap();
            signal_ready("pushed");
            loop {
                thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// 10 000 tasks on one deque.

/// 10 000 tasks of this process wait to pop from one deque; another process pushes 10 000 messages. Each
/// task gets exactly one, every value arrives once, and no sleeper stays counted.
fn ten_thousand_waiters(exec: Exec) {
    const TASKS: u64 = 10_000;
    let name = Name::new("async-10k");
    let q = Arc::new(Builder::new(&*name).capacity(64).slot_size(SLOT).open_raw().unwrap());
    let mut feeder = start("feed", &[(V_NAME, name.to_string()), (V_FROM, "0".into()), (V_COUNT, TASKS.to_string())]);
    let got = exec.run_all(TASKS as usize, |_| {
        let q = q.clone();
        async move { value(&q.pop_front_async().await.unwrap()) }
    });
    feeder.finish(LIMIT);
    let mut got = got;
    got.sort_unstable();
    assert_eq!(got, (0..TASKS).collect::<Vec<_>>(), "each message delivered to exactly one task");
    let s = q.stats().unwrap();
    assert_eq!((s.pushed, s.popped, s.len), (TASKS, TASKS, 0));
    assert_no_sleepers(&q);
}

#[test]
fn ten_thousand_tasks_wait_on_one_deque_fed_by_another_process() {
    let _w = Watchdog::new("ten_thousand_tasks", LIMIT * 3);
    for exec in EXECUTORS {
        eprintln!("executor {exec:?}");
        ten_thousand_waiters(exec);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Cancellation storms.

/// A feeder process pushes 1..=M into deque A (4 slots); 32 tasks here pop from A and push what they got
/// into deque B (4 slots), every pop and every push under a random timeout of 1 µs to 1 ms that cancels it
/// (the runtime's timer on tokio, the `_deadline_async` forms on the other executor); a drain process pops B
/// until it is closed. A cancelled pop must have removed nothing and a cancelled push pushed nothing, so the
/// sums and counts match exactly all the way, and no sleeper stays counted on either deque.
fn cancellation_storm(exec: Exec, seed: u64) {
    const M: u64 = 4_000;
    const TASKS: usize = 32;
    let (a, b) = (Name::new("async-storm-a"), Name::new("async-storm-b"));
    let scratch = Scratch::new("async-storm");
    let qa = Arc::new(Builder::new(&*a).capacity(4).slot_size(SLOT).open_raw().unwrap());
    let qb = Arc::new(Builder::new(&*b).capacity(4).slot_size(SLOT).open_raw().unwrap());
    let mut feeder = start("feed", &[(V_NAME, a.to_string()), (V_FROM, "1".into()), (V_COUNT, M.to_string())]);
    let log = scratch.file("drain");
    let mut drain = start("drain", &[(V_NAME, b.to_string()), (V_LOG, log.display().to_string())]);
    let moved = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let results = exec.run_all(TASKS, |t| {
        let (qa, qb, moved) = (qa.clone(), qb.clone(), moved.clone());
        let mut rng = Rng::new(seed ^ (t as u64).wrapping_mul(0x9e37_79b9));
        async move {
            let (mut n, mut sum, mut cancelled) = (0u64, 0u64, 0u64);
            let mut timeout = || Duration::from_micros(1 + rng.below(1000));
            while moved.load(std::sync::atomic::Ordering::Relaxed) < M {
                let d = timeout();
                let popped = if exec.is_tokio() {
                    tokio::time::timeout(d, qa.pop_front_async()).await.ok()
                } else {
                    match qa.pop_front_deadline_async(Instant::now() + d).await {
                        Err(e) if e.is_timeout() => None,
                        r => Some(r),
                    }
                };
                let Some(popped) = popped else {
                    cancelled += 1;
                    continue;
                };
                let v = value(&popped.unwrap());
                let bytes = v.to_le_bytes();
                loop {
                    let d = timeout();
                    let pushed = if exec.is_tokio() {
                        tokio::time::timeout(d, qb.push_back_async(&bytes)).await.ok()
                    } else {
                        match qb.push_back_deadline_async(&bytes, Instant::now() + d).await {
                            Err(e) if e.is_timeout() => None,
                            r => Some(r),
                        }
                    };
                    match pushed {
                        Some(r) => {
                            r.unwrap();
                            break;
                        }
                        None => cancelled += 1,
                    }
                }
                n += 1;
                sum += v;
                moved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (n, sum, cancelled)
        }
    });
    feeder.finish(LIMIT);
    let (n, sum, cancelled) = results.iter().fold((0, 0, 0), |(a, b, c), &(x, y, z)| (a + x, b + y, c + z));
    eprintln!("moved {n} messages, {cancelled} operations cancelled");
    assert_eq!((n, sum), (M, M * (M + 1) / 2), "every message popped from A exactly once");
    assert!(cancelled > 0, "the storm cancelled nothing: it tested nothing");
    assert_no_sleepers(&qa);
    let s = qa.stats().unwrap();
    assert_eq!((s.pushed, s.popped, s.len), (M, M, 0));
    qb.close().unwrap();
    drain.finish(LIMIT);
    let recs = Log::read(&log);
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].a, recs[0].b), (M, M * (M + 1) / 2), "every message pushed into B exactly once");
    assert_no_sleepers(&qb);
}

#[test]
fn cancellation_storms_lose_nothing_and_leave_no_sleeper() {
    let _w = Watchdog::new("cancellation_storms", LIMIT * 3);
    let seed = Rng::from_env("SHMDEQUE_ASYNC_SEED").next_u64();
    for exec in EXECUTORS {
        eprintln!("executor {exec:?}");
        cancellation_storm(exec, seed);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Sync and async users on one deque.

/// Two producer processes, one sync and one async (tokio tasks), push 0..N and N..2N into one small deque;
/// a sync consumer process and 16 async tasks here pop until the deque is closed. Every value arrives once,
/// on one side or the other.
fn mixed(exec: Exec) {
    const N: u64 = 3_000;
    let name = Name::new("async-mixed");
    let scratch = Scratch::new("async-mixed");
    let q = Arc::new(Builder::new(&*name).capacity(8).slot_size(SLOT).open_raw().unwrap());
    let log = scratch.file("consumer");
    let mut consumer = start("sync_consume", &[(V_NAME, name.to_string()), (V_LOG, log.display().to_string())]);
    let mut sync_feed = start("feed", &[(V_NAME, name.to_string()), (V_FROM, "0".into()), (V_COUNT, N.to_string())]);
    let mut async_feed =
        start("async_feed", &[(V_NAME, name.to_string()), (V_FROM, N.to_string()), (V_COUNT, N.to_string())]);
    // Closes the deque once both producers are done, while the tasks below keep popping.
    let closer = {
        let q = q.clone();
        thread::spawn(move || {
            sync_feed.finish(LIMIT);
            async_feed.finish(LIMIT);
            q.close().unwrap();
        })
    };
    let got = exec.run_all(16, |_| {
        let q = q.clone();
        async move {
            let mut got = Vec::new();
            loop {
                match q.pop_front_async().await {
                    Ok(m) => got.push(value(&m)),
                    Err(e) if e.is_closed() => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    });
    closer.join().unwrap();
    consumer.finish(LIMIT);
    let mut all: Vec<u64> = got.into_iter().flatten().collect();
    let here = all.len();
    all.extend(Log::read(&log).iter().filter(|r| r.kind == VALUE).map(|r| r.a));
    eprintln!("{here} values popped by async tasks, {} by the sync process", all.len() - here);
    all.sort_unstable();
    assert_eq!(all, (0..2 * N).collect::<Vec<_>>(), "each value delivered exactly once");
    assert_no_sleepers(&q);
}

#[test]
fn sync_and_async_users_share_one_deque_across_processes() {
    let _w = Watchdog::new("mixed", LIMIT * 3);
    for exec in EXECUTORS {
        eprintln!("executor {exec:?}");
        mixed(exec);
    }
}

// ---------------------------------------------------------------------------------------------------------
// A process killed while its tasks wait.

/// A process whose tasks wait for a message on one deque and for room on another is SIGKILLed. Tasks of this
/// process waiting on the same deque go on and get every message pushed after the kill; the killed
/// process's sleeper counts are taken back, and the full deque kept its messages.
fn killed_while_waiting(exec: Exec) {
    let (a, b) = (Name::new("async-kill-a"), Name::new("async-kill-b"));
    let qa = Arc::new(Builder::new(&*a).capacity(16).slot_size(SLOT).open_raw().unwrap());
    let qb = Builder::new(&*b).capacity(2).slot_size(SLOT).open_raw().unwrap();
    qb.push_back_many(&[1u64.to_le_bytes(), 2u64.to_le_bytes()]).unwrap();
    let mut victim =
        start("async_waiters", &[(V_NAME, a.to_string()), (V_NAME2, b.to_string()), (V_COUNT, "200".into())]);
    victim.await_line("waiting", LIMIT);
    // This process's own waiters, on their executor in a thread of their own.
    const MINE: usize = 50;
    let runner = {
        let qa = qa.clone();
        thread::spawn(move || {
            exec.run_all(MINE, |_| {
                let qa = qa.clone();
                async move { value(&qa.pop_front_async().await.unwrap()) }
            })
        })
    };
    await_sleepers(&qa, 2);
    victim.kill();
    for v in 0..MINE as u64 {
        qa.push_back(&v.to_le_bytes()).unwrap();
    }
    let mut got = runner.join().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..MINE as u64).collect::<Vec<_>>(), "the survivors got every message");
    assert_no_sleepers(&qa);
    assert_no_sleepers(&qb);
    let s = qb.stats().unwrap();
    assert_eq!((s.len, s.pushed, s.popped), (2, 2, 0), "the full deque lost nothing");
}

#[test]
fn a_process_killed_while_its_tasks_wait_leaves_nothing_counted() {
    let _w = Watchdog::new("killed_while_waiting", LIMIT * 3);
    for exec in EXECUTORS {
        eprintln!("executor {exec:?}");
        killed_while_waiting(exec);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The reactor's limits.

/// With `futex_waitv` turned off (test hook), a process's reactor falls back to looking every millisecond,
/// and its tasks still get every message once.
#[test]
fn without_futex_waitv_the_fallback_delivers_everything() {
    let _w = Watchdog::new("fallback", LIMIT);
    const COUNT: u64 = 2_000;
    let name = Name::new("async-fallback");
    let q = Builder::new(&*name).capacity(8).slot_size(SLOT).open_raw().unwrap();
    let mut cmd = Kid::role_command(ENTRY, "fallback_consumer");
    cmd.env(V_NAME, name.to_string()).env(V_COUNT, COUNT.to_string()).env("SHMDEQUE_TEST_NO_WAITV", "1");
    cmd.env("SHMDEQUE_TEST_NO_RECHECK", "1");
    let mut kid = Kid::start(cmd, "fallback_consumer");
    await_sleepers(&q, 1);
    for v in 0..COUNT {
        q.push_back(&v.to_le_bytes()).unwrap();
    }
    kid.finish(LIMIT);
    assert_no_sleepers(&q);
}

/// 70 deques with a waiting task each need more words (a sequence word and an interrupt word per handle)
/// than one `futex_waitv` call takes; a message pushed to each still reaches its task.
#[test]
fn more_watched_words_than_futex_waitv_takes() {
    let _w = Watchdog::new("many_deques", LIMIT);
    const DEQUES: usize = 70;
    let names: Vec<Name> = (0..DEQUES).map(|_| Name::new("async-many")).collect();
    let qs: Vec<Arc<RawDeque>> =
        names.iter().map(|n| Arc::new(Builder::new(&**n).capacity(2).slot_size(SLOT).open_raw().unwrap())).collect();
    let runner = {
        let qs = qs.clone();
        thread::spawn(move || {
            Exec::Futures.run_all(DEQUES, |i| {
                let q = qs[i].clone();
                async move { value(&q.pop_front_async().await.unwrap()) }
            })
        })
    };
    for q in &qs {
        await_sleepers(q, 1);
    }
    for (i, q) in qs.iter().enumerate() {
        q.push_back(&(i as u64).to_le_bytes()).unwrap();
    }
    assert_eq!(runner.join().unwrap(), (0..DEQUES as u64).collect::<Vec<_>>());
    for q in &qs {
        assert_no_sleepers(q);
    }
}

// ---------------------------------------------------------------------------------------------------------
// In one process.

/// An interrupter ends this handle's pending async waits with `Interrupted`, handing a push's message back.
#[test]
fn an_interrupter_ends_pending_async_waits() {
    let _w = Watchdog::new("interrupt", LIMIT);
    let name = Name::new("async-interrupt");
    let q = Builder::new(&*name).capacity(1).slot_size(SLOT).open_raw().unwrap();
    let full = Builder::new(&*name).create_mode(CreateMode::Open).open_raw().unwrap();
    let stop = q.interrupter();
    let stop_full = full.interrupter();
    let other = Builder::new(&*name).create_mode(CreateMode::Open).open_raw().unwrap();
    futures_executor::block_on(async {
        let interrupt = async {
            wait_until("waiting", LIMIT, || q.stats().unwrap().asleep_for_message >= 1);
            stop.interrupt();
        };
        let (popped, ()) = futures_util::join!(q.pop_front_async(), interrupt);
        assert!(popped.unwrap_err().is_interrupted());
        assert!(q.pop_front_async().await.unwrap_err().is_interrupted(), "sticky until reset");
        stop.reset();
        other.push_back(b"x").unwrap();
        assert_eq!(q.pop_front_async().await.unwrap(), b"x");
    });
    // A push waiting for room, on its own thread's executor.
    other.push_back(b"full").unwrap();
    thread::scope(|s| {
        let pusher = s.spawn(|| futures_executor::block_on(full.push_back_async(b"late")));
        wait_until("waiting for room", LIMIT, || other.stats().unwrap().asleep_for_room >= 1);
        stop_full.interrupt();
        let e = pusher.join().unwrap().unwrap_err();
        assert!(e.is_interrupted());
        assert_eq!(e.into_inner(), b"late");
    });
    assert_no_sleepers(&other);
}

/// Every async form completes with the result of its sync form: both ends, batches, in place, into a
/// buffer, typed, and the deadline forms.
#[test]
fn every_async_form_does_what_its_sync_form_does() {
    let _w = Watchdog::new("forms", LIMIT);
    let name = Name::new("async-forms");
    let q = Builder::new(&*name).capacity(8).slot_size(SLOT).open_raw().unwrap();
    let far = Instant::now() + LIMIT;
    futures_executor::block_on(async {
        q.push_back_async(b"b").await.unwrap();
        q.push_front_async(b"a").await.unwrap();
        q.push_back_with_async(1, |s| s.copy_from_slice(b"c")).await.unwrap();
        q.push_front_with_deadline_async(1, far, |s| s.copy_from_slice(b"0")).await.unwrap();
        assert_eq!(q.push_back_many_async(&["d", "e"]).await.unwrap(), 2);
        assert_eq!(q.push_front_many_deadline_async(&["-"], far).await.unwrap(), 1);
        // - 0 a b c d e
        assert_eq!(q.pop_front_async().await.unwrap(), b"-");
        assert_eq!(q.pop_back_deadline_async(far).await.unwrap(), b"e");
        let mut buf = Vec::new();
        assert_eq!(q.pop_front_into_async(&mut buf).await.unwrap(), 1);
        assert_eq!(buf, b"0");
        assert_eq!(q.pop_back_into_deadline_async(&mut buf, far).await.unwrap(), 1);
        assert_eq!(buf, b"d");
        assert_eq!(q.pop_front_with_async(|m| m.to_vec()).await.unwrap(), b"a");
        assert_eq!(q.pop_back_with_deadline_async(far, |m| m.len()).await.unwrap(), 1);
        let mut out = Vec::new();
        assert_eq!(q.pop_front_many_async(8, &mut out).await.unwrap(), 1);
        assert_eq!(out, [b"b"]);
        q.push_back_many(&["x", "y", "z"]).unwrap();
        let mut seen = Vec::new();
        assert_eq!(q.pop_back_many_with_async(2, |m| seen.push(m.to_vec())).await.unwrap(), 2);
        assert_eq!(seen, [b"z", b"y"]);
        assert_eq!(q.pop_front_many_with_deadline_async(2, far, |m| seen.push(m.to_vec())).await.unwrap(), 1);
        let late = Instant::now();
        assert!(q.pop_front_deadline_async(late).await.unwrap_err().is_timeout());
        assert!(q.pop_back_many_deadline_async(4, &mut out, late).await.unwrap_err().is_timeout());
        // A batch longer than the deque waits for room in between, with a popper on the same executor.
        let many: Vec<[u8; 8]> = (0..20u64).map(|v| v.to_le_bytes()).collect();
        let popper = async {
            let mut got = Vec::new();
            while got.len() < 20 {
                q.pop_front_many_async(3, &mut got).await.unwrap();
            }
            got
        };
        let (pushed, got) = futures_util::join!(q.push_back_many_async(&many), popper);
        assert_eq!(pushed.unwrap(), 20);
        assert_eq!(got, many.iter().map(|m| m.to_vec()).collect::<Vec<_>>());
        // Too large: at once, nothing pushed.
        assert!(matches!(q.push_back_async(&[0; 64]).await, Err(shmdeque::PushError::TooLarge { .. })));
        q.close().unwrap();
        assert!(q.pop_front_async().await.unwrap_err().is_closed());
        assert!(q.push_back_async(b"no").await.unwrap_err().is_closed());
    });
    assert_no_sleepers(&q);

    let typed = Name::new("async-forms-typed");
    let t = Builder::new(&*typed).capacity(2).slot_size(64).open::<(u32, String)>().unwrap();
    futures_executor::block_on(async {
        t.push_back_async((1, "one".into())).await.unwrap();
        t.push_front_deadline_async((0, "zero".into()), far).await.unwrap();
        let third = (2, "two".to_owned());
        let (pushed, first) = futures_util::join!(t.push_back_async(third), t.pop_front_async());
        pushed.unwrap();
        assert_eq!(first.unwrap(), (0, "zero".to_owned()));
        assert_eq!(t.pop_back_async().await.unwrap(), (2, "two".to_owned()));
        let mut out = Vec::new();
        assert_eq!(t.pop_front_many_async(4, &mut out).await.unwrap(), 1);
        let values: Vec<(u32, String)> = (10..15).map(|i| (i, i.to_string())).collect();
        let popper = async {
            let mut got = Vec::new();
            while got.len() < 5 {
                t.pop_front_many_deadline_async(1, &mut got, far).await.unwrap();
            }
            got
        };
        let (pushed, got) = futures_util::join!(t.push_back_many_async(&values), popper);
        assert_eq!(pushed.unwrap(), 5);
        assert_eq!(got, values);
        assert_eq!(t.push_front_many_deadline_async(&values[..1], far).await.unwrap(), 1);
        assert_eq!(t.pop_back_deadline_async(far).await.unwrap(), values[0]);
        let e = t.push_back_deadline_async((9, "x".repeat(100)), far).await.unwrap_err();
        assert!(matches!(e, shmdeque::TypedPushError::TooLarge { .. }));
    });
    assert_no_sleepers(t.as_raw());
}

/// A dropped pending future removes nothing and leaves nothing counted; one polled to completion removed
/// exactly one message.
#[test]
fn a_dropped_pending_future_takes_nothing() {
    use std::task::{Context, Poll, Waker};
    let _w = Watchdog::new("dropped", LIMIT);
    let name = Name::new("async-dropped");
    let q = Builder::new(&*name).capacity(1).slot_size(SLOT).open_raw().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut pop = Box::pin(q.pop_front_async());
    assert!(pop.as_mut().poll(&mut cx).is_pending());
    assert_eq!(q.stats().unwrap().asleep_for_message, 1, "a pending pop counts as a sleeper");
    q.push_back(b"kept").unwrap();
    drop(pop);
    assert_no_sleepers(&q);
    assert_eq!(q.len(), 1, "the dropped pop took nothing");
    let mut push = Box::pin(q.push_back_async(b"never"));
    assert!(push.as_mut().poll(&mut cx).is_pending());
    assert_eq!(q.stats().unwrap().asleep_for_room, 1);
    drop(push);
    assert_no_sleepers(&q);
    let mut pop = Box::pin(q.pop_front_async());
    match pop.as_mut().poll(&mut cx) {
        Poll::Ready(r) => assert_eq!(r.unwrap(), b"kept"),
        Poll::Pending => panic!("a message was there"),
    }
    assert!(q.is_empty());
    assert_eq!(q.stats().unwrap().pushed, 1, "the dropped push pushed nothing");
}

/// When every registered producer died, an async pop takes what was pushed first, then says
/// `ProducersGone`: at once when it finds them gone before it waits, and within the reactor's recheck when
/// they die while it waits.
#[test]
fn an_async_pop_after_every_producer_died_says_so() {
    let _w = Watchdog::new("producers_gone", LIMIT);
    for exec in EXECUTORS {
        let name = Name::new("async-gone");
        let q = Arc::new(Builder::new(&*name).capacity(4).slot_size(SLOT).open_raw().unwrap());
        let mut kid = start("produce_then_hang", &[(V_NAME, name.to_string())]);
        kid.await_line("pushed", LIMIT);
        assert_eq!(value(&q.try_pop_front().unwrap()), 7);
        // Tasks waiting while the producer is alive; it dies while they wait.
        let killer = {
            let q = q.clone();
            thread::spawn(move || {
                await_sleepers(&q, 1);
                kid.kill();
            })
        };
        let got = exec.run_all(20, |_| {
            let q = q.clone();
            async move { q.pop_front_async().await.map_err(|e| e.is_producers_gone()) }
        });
        killer.join().unwrap();
        assert!(got.iter().all(|r| *r == Err(true)), "{exec:?}: {got:?}");
        // Found gone before waiting: at once.
        assert!(futures_executor::block_on(q.pop_back_async()).unwrap_err().is_producers_gone());
        assert_no_sleepers(&q);
    }
}

/// A pending future that is leaked (never dropped) does not outlive its handle's mapping in the reactor:
/// the handle can be dropped, the reactor goes on serving others, and the leaked count went back with the
/// handle's registration.
#[test]
fn a_leaked_pending_future_leaves_the_reactor_sound() {
    use std::task::{Context, Waker};
    let _w = Watchdog::new("leaked", LIMIT);
    let name = Name::new("async-leaked");
    let q = Builder::new(&*name).capacity(2).slot_size(SLOT).open_raw().unwrap();
    let doomed = Builder::new(&*name).create_mode(CreateMode::Open).open_raw().unwrap();
    let mut pop = Box::pin(doomed.pop_front_async());
    assert!(pop.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    assert_eq!(q.stats().unwrap().asleep_for_message, 1);
    std::mem::forget(pop);
    drop(doomed); // unmaps its segment while the reactor still has the leaked waiter's key
    assert_no_sleepers(&q);
    let other = Arc::new(Builder::new(&*name).create_mode(CreateMode::Open).open_raw().unwrap());
    let got = Exec::TokioMulti.run_all(2, |i| {
        let other = other.clone();
        async move {
            if i == 0 {
                value(&other.pop_front_async().await.unwrap())
            } else {
                await_sleepers(&other, 1);
                other.push_back(&5u64.to_le_bytes()).unwrap();
                0
            }
        }
    });
    assert_eq!(got, [5, 0]);
    assert_no_sleepers(&q);
}
