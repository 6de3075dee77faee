//! Library behaviour across real processes: each test re-executes this test binary as child processes
//! (see `child_entry`), all on a real segment with a unique name that a guard removes.

use shmdeque_testkit as support;

use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shmdeque::{Builder, CreateMode, Error, PopError, PushError, RawDeque, TypedPopError, TypedPushError};
use shmdeque_synth as synth;
use support::{Kid, Name};

const ENTRY: &str = "child_entry";
const NAME: &str = "SHMDEQUE_CORE_NAME";
const ARG: &str = "SHMDEQUE_CORE_ARG";
/// Upper bound on any single wait in these tests; reaching it fails the test instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A child process running one role on the deque `name`, its stdout piped for [`Kid::await_line`].
fn start(role: &str, name: &str, arg: impl ToString) -> Kid {
    let mut cmd = Kid::role_command(ENTRY, role);
    cmd.env(NAME, name).env(ARG, arg.to_string()).stdout(Stdio::piped());
    // Children never look again unwoken (with the test-hooks feature): a lost wake-up hangs them, and the
    // watchdog turns that into a failure.
    cmd.env("SHMDEQUE_TEST_NO_RECHECK", "1");
    Kid::start(cmd, role)
}

fn open_raw(name: &str) -> RawDeque {
    Builder::new(name).create_mode(CreateMode::Open).open_raw().expect("open")
}

/// The child side of every cross-process test. Does nothing in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(support::ROLE) else { return };
    support::child_init();
    let name = std::env::var(NAME).unwrap();
    let arg: u64 = std::env::var(ARG).unwrap().parse().unwrap_or(0);
    let code = match role.as_str() {
        "produce" => {
            let q = open_raw(&name);
            let mut buf = [0u8; 64];
            for seq in 0..arg {
                synth::fill(&mut buf, 1, seq);
                q.push_back(&buf).unwrap();
            }
            0
        }
        "produce_front" => {
            let q = open_raw(&name);
            for seq in 0..arg {
                q.push_front(&synth::make(2, seq, 40)).unwrap();
            }
            0
        }
        "produce_then_hang" => {
            let q = open_raw(&name);
            let _me = q.register_producer().unwrap();
            for seq in 0..arg {
                q.push_back(&seq.to_le_bytes()).unwrap();
            }
            support::say("pushed");
            thread::sleep(WATCHDOG);
            1
        }
        "hold_lock" => {
            let q = open_raw(&name);
            let _guard = q.lock().unwrap();
            support::say("locked");
            thread::sleep(WATCHDOG);
            1
        }
        "die_mid_push" => {
            let q = open_raw(&name);
            let _ = q.push_back_with(1000, |slot| {
                slot[..500].fill(b'x');
                support::say("writing");
                thread::sleep(WATCHDOG);
            });
            1
        }
        "block_pop" => {
            let q = open_raw(&name);
            support::say("waiting");
            // No timeout: a wake-up that never comes must hang this child (the parent's wait then fails),
            // not end in a look after the timeout that finds the message anyway.
            match q.pop_front() {
                Ok(m) if m == b"wake" => 0,
                Ok(_) => 3,
                Err(PopError::Closed) => 10,
                Err(_) => 2,
            }
        }
        "block_push" => {
            let q = open_raw(&name);
            support::say("waiting");
            match q.push_back(b"late") {
                Ok(()) => 0,
                Err(PushError::Closed(_)) => 10,
                Err(_) => 2,
            }
        }
        "race_open" => {
            let q = Builder::new(&name).capacity(16).slot_size(64).open_raw().unwrap();
            q.push_back(&arg.to_le_bytes()).unwrap();
            0
        }
        "typed_produce" => {
            let q = Builder::new(&name).create_mode(CreateMode::Open).open::<Job>().unwrap();
            for id in 0..arg {
                q.push_back(Job::new(id)).unwrap();
            }
            q.close().unwrap();
            0
        }
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u64,
    name: String,
    weights: Vec<f32>,
}

impl Job {
    fn new(id: u64) -> Job {
        Job { id, name: format!("job-{id}"), weights: vec![id as f32; (id % 5) as usize] }
    }
}

#[test]
fn a_million_messages_between_two_processes_arrive_in_order() {
    let name = Name::new("million");
    let q = Builder::new(&*name).capacity(1024).slot_size(128).open_raw().unwrap();
    let n = 1_000_000;
    let mut kid = start("produce", &name, n);
    let mut verifier = synth::Verifier::new(true);
    let mut batch = Vec::new();
    while verifier.count() < n {
        batch.clear();
        q.pop_front_many_timeout(256, &mut batch, WATCHDOG).expect("pop within the watchdog");
        for m in &batch {
            assert_eq!(m.len(), 64);
            verifier.observe(m).unwrap();
        }
    }
    assert_eq!(kid.wait(WATCHDOG).code(), Some(0));
    let stats = q.stats().unwrap();
    assert_eq!((stats.pushed, stats.popped, stats.len), (n, n, 0));
    assert!(stats.high_water >= 1 && stats.high_water <= 1024);
}

#[test]
fn pushing_at_the_front_and_popping_at_the_back_is_fifo_across_processes() {
    let name = Name::new("ends");
    let q = Builder::new(&*name).capacity(8).slot_size(64).open_raw().unwrap();
    let n = 20_000;
    let mut kid = start("produce_front", &name, n);
    let mut verifier = synth::Verifier::new(true);
    while verifier.count() < n {
        let m = q.pop_back_timeout(WATCHDOG).unwrap();
        assert_eq!(verifier.observe(&m).unwrap().producer, 2);
    }
    assert_eq!(kid.wait(WATCHDOG).code(), Some(0));
}

#[test]
fn both_ends_in_one_process_behave_like_vecdeque() {
    let name = Name::new("lifo");
    let q = Builder::new(&*name).capacity(4).slot_size(16).open::<u32>().unwrap();
    for i in 0..4 {
        q.push_back(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.try_push_front(9).unwrap_err().into_inner(), 9);
    assert_eq!((q.peek_front().unwrap(), q.peek_back().unwrap()), (Some(0), Some(3)));
    assert_eq!(q.pop_back().unwrap(), 3); // LIFO at the back
    assert_eq!(q.pop_back().unwrap(), 2);
    q.push_front(7).unwrap();
    let g = q.lock().unwrap();
    assert_eq!(g.iter().collect::<Result<Vec<_>, _>>().unwrap(), [7, 0, 1]);
    drop(g);
    assert_eq!(q.clear().unwrap(), 3);
    assert!(q.try_pop_front().unwrap_err().is_empty());
}

/// Every single-message operation, at both ends, copying and in place, against `VecDeque`: thousands of
/// random steps on a deque of five slots, so that the ring wraps at both ends, fills and empties often, and
/// messages of every length up to the slot's payload go through. After each step the deque, read through
/// its lock guard, must equal the model.
#[test]
fn random_operations_at_both_ends_match_vecdeque() {
    let name = Name::new("model");
    let q = Builder::new(&*name).capacity(5).slot_size(12).open_raw().unwrap();
    let max = q.max_message_len();
    let mut model = std::collections::VecDeque::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64: deterministic, so a failure can be replayed.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut buf = b"left over".to_vec();
    for step in 0..20_000u32 {
        let r = next();
        let msg: Vec<u8> = (0..(r >> 8) as usize % (max + 1)).map(|i| (step as usize + i) as u8).collect();
        let full = model.len() == q.capacity();
        match r % 10 {
            0 | 1 => match q.try_push_back(&msg) {
                Ok(()) => model.push_back(msg.clone()),
                Err(e) => assert!(full && e.is_full(), "step {step}: {e}"),
            },
            2 => match q.try_push_front_with(msg.len(), |s| s.copy_from_slice(&msg)) {
                Ok(()) => model.push_front(msg.clone()),
                Err(e) => assert!(full && e.is_full(), "step {step}: {e}"),
            },
            3 => match q.try_push_front(&msg) {
                Ok(()) => model.push_front(msg.clone()),
                Err(e) => assert!(full && e.is_full(), "step {step}: {e}"),
            },
            4 => match q.try_push_back_with(msg.len(), |s| s.copy_from_slice(&msg)) {
                Ok(()) => model.push_back(msg.clone()),
                Err(e) => assert!(full && e.is_full(), "step {step}: {e}"),
            },
            5 => popped(step, q.try_pop_front(), model.pop_front()),
            6 => popped(step, q.try_pop_back_with(<[u8]>::to_vec), model.pop_back()),
            7 => popped(step, q.try_pop_front_into(&mut buf).map(|n| buf[..n].to_vec()), model.pop_front()),
            8 => popped(step, q.try_pop_back_into(&mut buf).map(|n| buf[..n].to_vec()), model.pop_back()),
            _ => popped(step, q.try_pop_back(), model.pop_back()),
        }
        let g = q.lock().unwrap();
        let now: Vec<&[u8]> = g.iter().collect::<Result<_, _>>().unwrap();
        assert!(now.iter().copied().eq(model.iter().map(Vec::as_slice)), "step {step}: {now:?} != {model:?}");
    }
}

/// A pop's result against the model's: the same message, or `Empty` exactly when the model is empty.
fn popped(step: u32, got: Result<Vec<u8>, PopError>, want: Option<Vec<u8>>) {
    match (got, want) {
        (Ok(got), Some(want)) => assert_eq!(got, want, "step {step}"),
        (Err(e), None) => assert!(e.is_empty(), "step {step}: {e}"),
        (got, want) => panic!("step {step}: popped {got:?}, model has {want:?}"),
    }
}

#[test]
fn timeouts_on_full_and_empty_hand_the_message_back() {
    let name = Name::new("timeouts");
    let q = Builder::new(&*name).capacity(2).slot_size(32).open_raw().unwrap();
    assert!(matches!(q.pop_front_timeout(Duration::from_millis(30)), Err(PopError::Timeout)));
    assert!(matches!(q.try_pop_back(), Err(PopError::Empty)));
    q.push_back(b"a").unwrap();
    q.push_back(b"b").unwrap();
    match q.push_back_timeout(b"c", Duration::from_millis(30)) {
        Err(PushError::Timeout(m)) => assert_eq!(m, b"c"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(q.try_push_front(b"c").unwrap_err().is_full());
    assert_eq!(q.len(), 2);
}

/// The `_deadline` and `_into` forms of the grid: a deadline already past still makes its one attempt and
/// then reports a timeout, a later one waits for another thread's push, a duration too long for the clock
/// means "as long as it takes", and a pop into the caller's buffer leaves it alone on every error.
#[test]
fn deadline_and_into_forms_of_the_grid() {
    let name = Name::new("grid");
    let q = Builder::new(&*name).capacity(2).slot_size(16).open_raw().unwrap();
    let past = Instant::now();
    let mut buf = b"keep".to_vec();
    assert!(q.pop_front_deadline(past).unwrap_err().is_timeout());
    assert!(q.pop_back_into_deadline(&mut buf, past).unwrap_err().is_timeout());
    assert!(q.try_pop_front_into(&mut buf).unwrap_err().is_empty());
    assert!(q.pop_front_many_with_deadline(4, past, |_| panic!("nothing to read")).unwrap_err().is_timeout());
    assert_eq!(buf, b"keep");

    q.push_back_deadline(b"a", past).unwrap();
    q.push_front_with_deadline(1, past, |slot| slot[0] = b'z').unwrap();
    match q.push_back_many_deadline(&["x"], past) {
        Err(PushError::Timeout(0)) => {}
        other => panic!("expected a timeout with nothing pushed, got {other:?}"),
    }
    assert_eq!(q.pop_front_into_timeout(&mut buf, Duration::MAX).unwrap(), 1);
    assert_eq!(buf, b"z");
    assert_eq!(q.pop_back_with_deadline(past, <[u8]>::to_vec).unwrap(), b"a");

    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(20));
            q.push_back_many_timeout(&["late", "later"], WATCHDOG).unwrap();
        });
        let mut out = Vec::new();
        let n = q.pop_front_many_deadline(2, &mut out, Instant::now() + WATCHDOG).unwrap();
        assert!(n >= 1 && out[0] == b"late", "{out:?}");
    });

    let typed = Name::new("grid-typed");
    let t = Builder::new(&*typed).capacity(2).slot_size(16).open::<u32>().unwrap();
    t.push_back_deadline(7, past).unwrap();
    match t.push_front_many_deadline(&[5, 6], past) {
        Err(TypedPushError::Timeout(1)) => {}
        other => panic!("expected a timeout after one value, got {other:?}"),
    }
    assert_eq!(t.pop_back_deadline(Instant::now() + WATCHDOG).unwrap(), 7);
    assert_eq!(t.pop_front_deadline(past).unwrap(), 5);
    assert!(t.pop_front_deadline(past).unwrap_err().is_timeout());
}

/// Once every registered producer is dead without having left, and the deque is empty, a blocking pop
/// says `ProducersGone` instead of waiting for good (a `try_` pop still says `Empty`); a producer that
/// registers resumes the stream; without registered producers, pops wait as before.
#[test]
fn a_pop_after_every_registered_producer_died_says_so() {
    let name = Name::new("gone");
    let q = Builder::new(&*name).capacity(8).slot_size(32).open_raw().unwrap();
    assert!(q.pop_front_timeout(Duration::from_millis(20)).unwrap_err().is_timeout(), "nobody registered");
    let mut kid = start("produce_then_hang", &name, 3);
    kid.await_line("pushed", WATCHDOG);
    kid.kill();
    for seq in 0..3u64 {
        assert_eq!(q.pop_front_timeout(WATCHDOG).unwrap(), seq.to_le_bytes(), "what was pushed comes first");
    }
    assert!(q.try_pop_front().unwrap_err().is_empty());
    assert!(q.pop_front().unwrap_err().is_producers_gone());
    assert!(q.pop_back_many_timeout(4, &mut Vec::new(), WATCHDOG).unwrap_err().is_producers_gone());
    let typed = Builder::new(&*name).create_mode(CreateMode::Open).open::<u64>().unwrap();
    assert!(typed.pop_front().unwrap_err().is_producers_gone());
    // A new producer: the stream goes on.
    let me = q.register_producer().unwrap();
    assert!(q.pop_front_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
    q.push_back(b"again").unwrap();
    assert_eq!(q.pop_front().unwrap(), b"again");
    drop(me); // left without closing, but alive to the end: not a death
    assert!(q.pop_front_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
}

/// An interrupter makes this handle's blocked push and pop return `Interrupted` at once, handing the message
/// back, and touches nothing else: a handle of another process blocked on the same deque keeps waiting and
/// still gets its message.
#[test]
fn an_interrupter_stops_this_handles_waits_only() {
    let name = Name::new("interrupt");
    let q = Builder::new(&*name).capacity(1).slot_size(32).open_raw().unwrap();
    let mut other = start("block_pop", &name, 0);
    other.await_line("waiting", WATCHDOG);
    let stop = q.interrupter();
    thread::scope(|s| {
        let popper = s.spawn(|| q.pop_front());
        thread::sleep(Duration::from_millis(50));
        stop.interrupt();
        assert!(popper.join().unwrap().unwrap_err().is_interrupted());
    });
    assert!(stop.is_interrupted());
    assert!(q.pop_front_timeout(WATCHDOG).unwrap_err().is_interrupted(), "sticky until reset");
    assert!(q.try_pop_front().unwrap_err().is_empty(), "operations that need not wait go on");
    stop.reset();
    q.push_back(b"wake").unwrap();
    assert_eq!(other.wait(WATCHDOG).code(), Some(0), "the other process got its message");
    q.push_back(b"full").unwrap();
    thread::scope(|s| {
        let pusher = s.spawn(|| q.push_back(b"late").map_err(|e| (e.is_interrupted(), e.into_inner())));
        thread::sleep(Duration::from_millis(50));
        stop.interrupt();
        assert_eq!(pusher.join().unwrap(), Err((true, &b"late"[..])));
    });
}

#[test]
fn a_blocked_pop_wakes_for_a_push_from_another_process() {
    let name = Name::new("wake");
    let q = Builder::new(&*name).capacity(4).slot_size(32).open_raw().unwrap();
    let mut kid = start("block_pop", &name, 0);
    kid.await_line("waiting", WATCHDOG);
    // Give the child time to go past its spin into the futex sleep; correctness does not depend on it.
    thread::sleep(Duration::from_millis(50));
    q.push_back(b"wake").unwrap();
    assert_eq!(kid.wait(WATCHDOG).code(), Some(0));
}

#[test]
fn a_blocked_push_wakes_when_room_is_made() {
    let name = Name::new("wakepush");
    let q = Builder::new(&*name).capacity(1).slot_size(32).open_raw().unwrap();
    q.push_back(b"first").unwrap();
    let mut kid = start("block_push", &name, 0);
    kid.await_line("waiting", WATCHDOG);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(q.pop_front().unwrap(), b"first");
    assert_eq!(kid.wait(WATCHDOG).code(), Some(0));
    assert_eq!(q.pop_front_timeout(WATCHDOG).unwrap(), b"late");
}

#[test]
fn close_wakes_blocked_processes_and_drains() {
    let name = Name::new("close");
    let q = Builder::new(&*name).capacity(1).slot_size(32).open_raw().unwrap();
    let mut popper = start("block_pop", &name, 0);
    popper.await_line("waiting", WATCHDOG);
    thread::sleep(Duration::from_millis(50));
    q.close().unwrap();
    assert_eq!(popper.wait(WATCHDOG).code(), Some(10), "a blocked pop on an empty deque reports Closed");

    let name2 = Name::new("close2");
    let q2 = Builder::new(&*name2).capacity(1).slot_size(32).open_raw().unwrap();
    q2.push_back(b"kept").unwrap();
    let mut pusher = start("block_push", &name2, 0);
    pusher.await_line("waiting", WATCHDOG);
    thread::sleep(Duration::from_millis(50));
    q2.close().unwrap();
    assert_eq!(pusher.wait(WATCHDOG).code(), Some(10), "a blocked push on a full deque reports Closed");
    assert!(q2.try_push_back(b"x").unwrap_err().is_closed());
    assert_eq!(q2.pop_front().unwrap(), b"kept", "pops drain what is left");
    assert!(q2.pop_front().unwrap_err().is_closed());
    drop((q, q2));
}

#[test]
fn the_last_handle_of_a_closed_drained_deque_removes_it() {
    let name = Name::new("lifetime");
    let a = Builder::new(&*name).capacity(4).slot_size(32).open_raw().unwrap();
    let b = open_raw(&name);
    a.push_back(b"m").unwrap();
    a.close().unwrap();
    drop(a);
    assert!(name.exists(), "another handle is still attached");
    drop(b);
    assert!(name.exists(), "closed but not drained: kept");
    let c = open_raw(&name);
    assert_eq!(c.pop_front().unwrap(), b"m");
    drop(c);
    assert!(!name.exists(), "closed, drained and detached: removed");

    let open = Name::new("lifetime-open");
    drop(Builder::new(&*open).open_raw().unwrap());
    assert!(open.exists(), "a deque that is not closed persists");
}

#[test]
fn a_holder_killed_inside_the_lock_is_recovered() {
    let name = Name::new("killheld");
    let q = Builder::new(&*name).capacity(8).slot_size(64).open_raw().unwrap();
    q.push_back(b"before").unwrap();
    let mut kid = start("hold_lock", &name, 0);
    kid.await_line("locked", WATCHDOG);
    assert!(matches!(q.push_back_timeout(b"x", Duration::from_millis(20)), Err(PushError::Timeout(_))));
    kid.kill();
    q.push_back_timeout(b"after", WATCHDOG).expect("the lock is recovered");
    assert_eq!(q.pop_front().unwrap(), b"before");
    assert_eq!(q.pop_front().unwrap(), b"after");
    assert_eq!(q.stats().unwrap().lock_recoveries, 1);
}

#[test]
fn a_push_killed_halfway_through_its_payload_leaves_no_torn_message() {
    let name = Name::new("killwrite");
    let q = Builder::new(&*name).capacity(4).slot_size(2048).open_raw().unwrap();
    q.push_back(b"whole").unwrap();
    let mut kid = start("die_mid_push", &name, 0);
    kid.await_line("writing", WATCHDOG);
    kid.kill();
    let g = q.lock().unwrap();
    assert_eq!(g.iter().collect::<Result<Vec<_>, _>>().unwrap(), [&b"whole"[..]]);
    drop(g);
    let s = q.stats().unwrap();
    assert_eq!((s.len, s.lock_recoveries), (1, 1));
}

#[test]
fn waiters_killed_while_blocked_do_not_swallow_wake_ups() {
    let name = Name::new("killwaiters");
    let q = Builder::new(&*name).capacity(4).slot_size(32).open_raw().unwrap();
    let mut doomed: Vec<Kid> = (0..3).map(|_| start("block_pop", &name, 0)).collect();
    for k in &mut doomed {
        k.await_line("waiting", WATCHDOG);
    }
    thread::sleep(Duration::from_millis(100));
    for k in &mut doomed {
        k.kill();
    }
    let mut survivor = start("block_pop", &name, 0);
    survivor.await_line("waiting", WATCHDOG);
    thread::sleep(Duration::from_millis(50));
    q.push_back(b"wake").unwrap();
    assert_eq!(survivor.wait(WATCHDOG).code(), Some(0), "the live waiter got the message");
    assert!(q.is_empty());
}

#[test]
fn processes_racing_to_open_or_create_share_one_deque() {
    let name = Name::new("race");
    let kids: Vec<Kid> = (0..8).map(|i| start("race_open", &name, i)).collect();
    for mut k in kids {
        assert_eq!(k.wait(WATCHDOG).code(), Some(0));
    }
    let q = open_raw(&name);
    let mut seen: Vec<u64> = (0..8).map(|_| u64::from_le_bytes(q.pop_front().unwrap().try_into().unwrap())).collect();
    seen.sort();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
}

#[test]
fn typed_values_cross_processes_and_bad_bytes_come_back() {
    let name = Name::new("typed");
    let q = Builder::new(&*name).capacity(16).slot_size(256).open::<Job>().unwrap();
    let mut kid = start("typed_produce", &name, 500);
    let mut got = Vec::new();
    loop {
        match q.pop_front_many_timeout(32, &mut got, WATCHDOG) {
            Ok(_) => {}
            Err(TypedPopError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(kid.wait(WATCHDOG).code(), Some(0));
    assert_eq!(got, (0..500).map(Job::new).collect::<Vec<_>>());

    // A message that is not a Job is removed once and handed back as bytes.
    let other = Name::new("typed-bad");
    let t = Builder::new(&*other).capacity(4).slot_size(64).open::<Job>().unwrap();
    t.as_raw().push_back(&[0xff, 0xff, 0xff]).unwrap();
    match t.pop_front() {
        Err(TypedPopError::Decode { bytes, .. }) => assert_eq!(bytes, [0xff, 0xff, 0xff]),
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(t.is_empty());

    // A value whose encoding exceeds the slot comes back with its encoded size, whether or not the
    // encoding fits the encoder's first buffer; the next small value goes through as usual.
    let strings = Name::new("typed-big");
    let s = Builder::new(&*strings).capacity(4).slot_size(32).open::<String>().unwrap();
    for (text, encoded) in [("x".repeat(40), 41), ("y".repeat(1000), 1003)] {
        match s.try_push_back(text.clone()) {
            Err(TypedPushError::TooLarge { value, len, max: 28 }) => assert_eq!((value, len), (text, encoded)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    s.try_push_back("small".to_owned()).unwrap();
    assert_eq!(s.try_pop_front().unwrap(), "small");
}

#[test]
fn many_threads_at_both_ends_deliver_every_message_once() {
    let name = Name::new("threads");
    let q = Builder::new(&*name).capacity(3).slot_size(32).open::<u64>().unwrap();
    let per = 20_000u64;
    let mut seen = thread::scope(|s| {
        for t in 0..2u64 {
            let q = &q;
            s.spawn(move || {
                for i in 0..per {
                    let v = t * per + i;
                    if i % 2 == 0 { q.push_back(v) } else { q.push_front(v) }.unwrap();
                }
            });
        }
        let poppers: Vec<_> = (0..2)
            .map(|t| {
                let q = &q;
                s.spawn(move || {
                    (0..per)
                        .map(|_| if t == 0 { q.pop_front_timeout(WATCHDOG) } else { q.pop_back_timeout(WATCHDOG) })
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap()
                })
            })
            .collect();
        poppers.into_iter().flat_map(|p| p.join().unwrap()).collect::<Vec<_>>()
    });
    seen.sort();
    assert_eq!(seen, (0..2 * per).collect::<Vec<_>>());
}

#[test]
fn misuse_gets_typed_errors() {
    let name = Name::new("misuse");
    let q = Builder::new(&*name).capacity(2).slot_size(16).open_raw().unwrap();
    // Too large: refused, deque unchanged.
    let big = [1u8; 13];
    match q.try_push_back(&big) {
        Err(PushError::TooLarge { len: 13, max: 12, value }) => assert_eq!(value, &big[..]),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(q.len(), 0);
    // Taking the lock twice on one thread is an error, not a deadlock.
    let g = q.lock().unwrap();
    assert!(matches!(q.try_push_back(b"x"), Err(PushError::Failed { error: Error::AlreadyLocked { .. }, .. })));
    // ... and the refused attempt did not release the guard's lock: another thread still cannot get in.
    thread::scope(|s| {
        let other = s.spawn(|| q.push_back_timeout(b"y", Duration::from_millis(50)).map_err(|e| e.is_timeout()));
        assert_eq!(other.join().unwrap(), Err(true));
    });
    drop(g);
    // Creation modes and geometry.
    assert!(matches!(
        Builder::new(&*name).create_mode(CreateMode::CreateExclusive).open_raw(),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(Builder::new(&*name).capacity(3).open_raw(), Err(Error::GeometryMismatch { .. })));
    assert!(Builder::new(&*name).slot_size(16).open_raw().is_ok());
    let missing = Name::new("missing");
    assert!(matches!(Builder::new(&*missing).create_mode(CreateMode::Open).open_raw(), Err(Error::NotFound { .. })));
    for bad in ["", "a/b", ".."] {
        assert!(matches!(Builder::new(bad).open_raw(), Err(Error::InvalidName { .. })), "{bad:?}");
    }
    assert!(matches!(Builder::new("x".repeat(300)).open_raw(), Err(Error::InvalidName { .. })));
    assert!(matches!(Builder::new(&*missing).capacity(0).open_raw(), Err(Error::InvalidConfig(_))));
    assert!(matches!(Builder::new(&*missing).slot_size(4).open_raw(), Err(Error::InvalidConfig(_))));
    assert!(!missing.exists());
}

#[test]
fn a_corrupted_header_gives_typed_errors() {
    use std::os::unix::fs::FileExt;
    let name = Name::new("corrupt");
    let q = Builder::new(&*name).capacity(4).slot_size(32).open_raw().unwrap();
    q.push_back(b"hello").unwrap();
    drop(q);
    let file = std::fs::OpenOptions::new().read(true).write(true).open(name.path()).unwrap();
    // Layout version (offset 8).
    file.write_all_at(&99u32.to_ne_bytes(), 8).unwrap();
    assert!(matches!(open_err(&name), Error::VersionMismatch { found: 99, .. }));
    file.write_all_at(&shmdeque::LAYOUT_VERSION.to_ne_bytes(), 8).unwrap();
    // Capacity (offset 24) no longer matches the file size.
    file.write_all_at(&5u64.to_ne_bytes(), 24).unwrap();
    assert!(matches!(open_err(&name), Error::Corrupted { .. }));
    file.write_all_at(&4u64.to_ne_bytes(), 24).unwrap();
    // The first slot's length claims more than a slot holds: the pop reports corruption.
    let q = open_raw(&name);
    let slots = std::fs::metadata(name.path()).unwrap().len() - 4 * 32;
    file.write_all_at(&1000u32.to_le_bytes(), slots).unwrap();
    assert!(matches!(q.try_pop_front(), Err(PopError::Failed(Error::Corrupted { .. }))));
    // Wrong magic.
    drop(q);
    file.write_all_at(b"NOTADEQU", 0).unwrap();
    assert!(matches!(open_err(&name), Error::NotADeque { .. }));
}

/// The error opening `name` gives; fails the test if it opens.
fn open_err(name: &str) -> Error {
    match Builder::new(name).create_mode(CreateMode::Open).open_raw() {
        Ok(q) => panic!("expected an error, opened {q:?}"),
        Err(e) => e,
    }
}
