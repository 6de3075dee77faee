//! The wait strategies across real processes: each one moves messages exactly once, wakes for a push, for
//! room and for a close, honours timeouts, interrupters and dead producers, and sleeps (or not) as it says.
//! Handles with different strategies share one deque.

use shmdeque_testkit as support;

use std::process::Stdio;
use std::thread;
use std::time::Duration;

use shmdeque::{Builder, CreateMode, PopError, PushError, RawDeque, WaitStrategy};
use shmdeque_synth as synth;
use support::{Kid, Name, Watchdog};

const ENTRY: &str = "child_entry";
const NAME: &str = "SHMDEQUE_STRATEGY_NAME";
const STRATEGY: &str = "SHMDEQUE_STRATEGY";
const COUNT: &str = "SHMDEQUE_STRATEGY_COUNT";
/// Upper bound on any single wait in these tests; reaching it fails the test instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(60);

const ALL: [WaitStrategy; 4] =
    [WaitStrategy::Adaptive, WaitStrategy::BusySpin, WaitStrategy::Yielding, WaitStrategy::Blocking];

fn strategy_name(s: WaitStrategy) -> &'static str {
    match s {
        WaitStrategy::BusySpin => "busy-spin",
        WaitStrategy::Yielding => "yielding",
        WaitStrategy::Blocking => "blocking",
        _ => "adaptive",
    }
}

fn strategy_named(s: &str) -> WaitStrategy {
    *ALL.iter().find(|&&x| strategy_name(x) == s).unwrap_or_else(|| panic!("unknown strategy {s}"))
}

fn open(name: &str, strategy: WaitStrategy) -> RawDeque {
    Builder::new(name)
        .capacity(16)
        .slot_size(64)
        .wait_strategy(strategy)
        .create_mode(CreateMode::OpenOrCreate)
        .open_raw()
        .expect("open")
}

/// A child running `role` on the deque `name` (for `echo`, `name-ping` and `name-pong`) with `strategy`.
fn start(role: &str, name: &str, strategy: WaitStrategy, count: u64) -> Kid {
    let mut cmd = Kid::role_command(ENTRY, role);
    cmd.env(NAME, name).env(STRATEGY, strategy_name(strategy)).env(COUNT, count.to_string());
    cmd.stdout(Stdio::piped());
    // Children never look again unwoken (with the test-hooks feature): a lost wake-up hangs them, and the
    // watchdog turns that into a failure.
    cmd.env("SHMDEQUE_TEST_NO_RECHECK", "1");
    Kid::start(cmd, role)
}

/// The child side of every test. Does nothing in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(support::ROLE) else { return };
    support::child_init();
    let name = std::env::var(NAME).unwrap();
    let strategy = strategy_named(&std::env::var(STRATEGY).unwrap());
    let count: u64 = std::env::var(COUNT).unwrap().parse().unwrap();
    let code = match role.as_str() {
        "echo" => {
            let ping = open(&format!("{name}-ping"), strategy);
            let pong = open(&format!("{name}-pong"), strategy);
            support::say("ready");
            let mut buf = Vec::new();
            for _ in 0..count {
                ping.pop_front_into(&mut buf).unwrap();
                pong.push_back(&buf).unwrap();
            }
            0
        }
        "block_pop" => {
            let q = open(&name, strategy);
            support::say("waiting");
            match q.pop_front() {
                Ok(m) if m == b"wake" => 0,
                Ok(_) => 3,
                Err(PopError::Closed) => 10,
                Err(_) => 2,
            }
        }
        "block_push" => {
            let q = open(&name, strategy);
            support::say("waiting");
            match q.push_back(b"late") {
                Ok(()) => 0,
                Err(PushError::Closed(_)) => 10,
                Err(_) => 2,
            }
        }
        "produce_then_hang" => {
            let q = open(&name, strategy);
            let _me = q.register_producer().unwrap();
            support::say("registered");
            thread::sleep(WATCHDOG);
            1
        }
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

/// Every pair of strategies (this side's, the echo's) moves 5,000 round trips and a stream of 5,000
/// messages, each checked, in order and exactly once.
#[test]
fn every_pair_of_strategies_moves_every_message_once() {
    let _dog = Watchdog::new("every_pair_of_strategies_moves_every_message_once", Duration::from_secs(240));
    const N: u64 = 5_000;
    for (i, &mine) in ALL.iter().enumerate() {
        let theirs = ALL[(i + 1) % ALL.len()];
        let name = Name::new("pair");
        let ping = Name::from_existing(format!("{}-ping", &*name));
        let pong = Name::from_existing(format!("{}-pong", &*name));
        let tx = open(&ping, mine);
        let rx = open(&pong, mine);
        let mut kid = start("echo", &name, theirs, 2 * N);
        kid.await_line("ready", WATCHDOG);
        let mut buf = [0u8; 48];
        for seq in 0..N {
            synth::fill(&mut buf, 7, seq);
            tx.push_back(&buf).unwrap();
            let back = rx.pop_front().unwrap();
            assert_eq!(synth::check(&back).unwrap().seq, seq, "{mine:?} with {theirs:?}: round trip {seq}");
        }
        // A stream: pushes run ahead of the echo, waits for room and for messages on both sides.
        thread::scope(|s| {
            s.spawn(|| {
                for seq in N..2 * N {
                    synth::fill(&mut buf, 7, seq);
                    tx.push_back(&buf).unwrap();
                }
            });
            for seq in N..2 * N {
                let back = rx.pop_front().unwrap();
                assert_eq!(synth::check(&back).unwrap().seq, seq, "{mine:?} with {theirs:?}: message {seq}");
            }
        });
        assert_eq!(kid.wait(WATCHDOG).code(), Some(0));
        assert!(rx.try_pop_front().unwrap_err().is_empty(), "nothing more than was sent");
        for q in [&tx, &rx] {
            let st = q.stats().unwrap();
            assert_eq!((st.pushed, st.popped), (2 * N, 2 * N), "{mine:?} with {theirs:?}: {st:?}");
            assert_eq!((st.asleep_for_message, st.asleep_for_room), (0, 0), "no sleeper left counted");
        }
    }
}

/// With every strategy, a blocked pop wakes for another process's push, a blocked push for room, and both
/// for a close.
#[test]
fn every_strategy_wakes_for_a_push_for_room_and_for_a_close() {
    for s in ALL {
        let name = Name::new("wake");
        let q = open(&name, s);
        let mut kid = start("block_pop", &name, s, 0);
        kid.await_line("waiting", WATCHDOG);
        thread::sleep(Duration::from_millis(50));
        q.push_back(b"wake").unwrap();
        assert_eq!(kid.wait(WATCHDOG).code(), Some(0), "{s:?}: a pop woken by a push");

        for _ in 0..q.capacity() {
            q.push_back(b"fill").unwrap();
        }
        let mut kid = start("block_push", &name, s, 0);
        kid.await_line("waiting", WATCHDOG);
        thread::sleep(Duration::from_millis(50));
        q.pop_front().unwrap();
        assert_eq!(kid.wait(WATCHDOG).code(), Some(0), "{s:?}: a push woken by room");

        let mut pusher = start("block_push", &name, s, 0);
        pusher.await_line("waiting", WATCHDOG);
        q.clear().unwrap();
        assert_eq!(pusher.wait(WATCHDOG).code(), Some(0), "{s:?}: a push woken by a clear");
        assert_eq!(q.pop_front().unwrap(), b"late"); // the deque is empty now
        let mut popper = start("block_pop", &name, s, 0);
        popper.await_line("waiting", WATCHDOG);
        thread::sleep(Duration::from_millis(50));
        q.close().unwrap();
        assert_eq!(popper.wait(WATCHDOG).code(), Some(10), "{s:?}: a pop woken by a close");
    }
}

/// With every strategy, timeouts and deadlines end waits, an interrupter stops them, and a pop whose
/// producers all died says so.
#[test]
fn every_strategy_honours_timeouts_interrupters_and_dead_producers() {
    for s in ALL {
        let name = Name::new("limits");
        let q = open(&name, s);
        assert!(q.pop_front_timeout(Duration::from_millis(20)).unwrap_err().is_timeout(), "{s:?}");
        for _ in 0..q.capacity() {
            q.push_back(b"x").unwrap();
        }
        let e = q.push_back_timeout(b"late", Duration::from_millis(20)).unwrap_err();
        assert!(e.is_timeout(), "{s:?}");
        assert_eq!(e.into_inner(), b"late");
        q.clear().unwrap();

        let stop = q.interrupter();
        thread::scope(|sc| {
            let popper = sc.spawn(|| q.pop_front());
            thread::sleep(Duration::from_millis(50));
            stop.interrupt();
            assert!(popper.join().unwrap().unwrap_err().is_interrupted(), "{s:?}");
        });
        stop.reset();

        let mut kid = start("produce_then_hang", &name, s, 0);
        kid.await_line("registered", WATCHDOG);
        kid.kill();
        // No timeout: a strategy that never looked for dead producers would hang here, and the watchdog
        // would fail the test.
        let _dog = Watchdog::new("a pop with dead producers", WATCHDOG);
        assert!(q.pop_front().unwrap_err().is_producers_gone(), "{s:?}");
    }
}

/// A blocking handle sleeps in the kernel at once; busy-spin and yielding handles never sleep while they
/// wait (the deque counts its sleepers).
#[test]
fn blocking_sleeps_and_spinning_strategies_never_do() {
    for s in ALL {
        let name = Name::new("sleeps");
        let q = open(&name, s);
        let mut kid = start("block_pop", &name, s, 0);
        kid.await_line("waiting", WATCHDOG);
        match s {
            WaitStrategy::BusySpin | WaitStrategy::Yielding => {
                // Far longer than any spin of a strategy that sleeps.
                thread::sleep(Duration::from_millis(300));
                assert_eq!(q.stats().unwrap().asleep_for_message, 0, "{s:?} slept");
            }
            _ => {
                let _dog = Watchdog::new("waiting for the child to sleep", WATCHDOG);
                while q.stats().unwrap().asleep_for_message == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
        q.push_back(b"wake").unwrap();
        assert_eq!(kid.wait(WATCHDOG).code(), Some(0), "{s:?}");
        assert_eq!(q.stats().unwrap().asleep_for_message, 0);
    }
}
