//! The deque across PID namespaces, the way containers that share `/dev/shm` but not a PID namespace use it
//! (Kubernetes containers of one pod with a memory-backed `emptyDir`, `docker run --ipc=container:`): each
//! program runs as pid 1 of its own namespace, made with `unshare --pid --fork --mount-proc`, which needs
//! root (CI runs as root). Where namespaces cannot be made, each test says so and checks nothing.
//!
//! Real processes on real segments; unique names removed however a test ends; every child under a watchdog.

use std::process::{Command, Stdio};
use std::time::Duration;

use shmdeque::{Builder, CreateMode};
use shmdeque_testkit::{Kid, Name, Watchdog, wait_until};

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");
const SHMDEQUE: &str = env!("CARGO_BIN_EXE_shmdeque");
const LIMIT: Duration = Duration::from_secs(120);

/// `program` as pid 1 of a new PID namespace (with its own /proc), killed if `unshare` is.
fn in_namespace(program: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", program]);
    cmd
}

/// Whether this machine lets us make PID namespaces, and a program there is pid 1; says so when not.
fn namespaces(test: &str) -> bool {
    let out = in_namespace("sh").args(["-c", "echo $$"]).output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "1");
    if !ok {
        eprintln!("note: {test}: cannot make PID namespaces here (needs root and unshare); nothing checked");
    }
    ok
}

/// `shmdeque info NAME --json`, run as pid 1 of a namespace of its own.
fn info_from_another_namespace(name: &str) -> serde_json::Value {
    let out = in_namespace(SHMDEQUE).args(["info", name, "--json"]).output().expect("run shmdeque info");
    assert!(out.status.success(), "shmdeque info: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("info --json is JSON")
}

/// A producer and a consumer, each pid 1 in its own namespace, move a million verified messages: the lock
/// must tell two processes with the same pid (and the same thread id) apart.
#[test]
fn a_producer_and_a_consumer_each_pid_1_move_a_million_verified_messages() {
    if !namespaces("a million messages across namespaces") {
        return;
    }
    let _dog = Watchdog::new("a million messages across namespaces", Duration::from_secs(300));
    let name = Name::new("ns-million");
    let n = 1_000_000.to_string();
    let mut consumer = in_namespace(CONSUMER);
    consumer.args(["--name", &name, "--verify", "--count", &n, "--wait", "60"]);
    consumer.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut consumer = Kid::start(consumer, "consumer in a namespace");
    consumer.capture();
    let mut producer = in_namespace(PRODUCER);
    producer.args(["--name", &name, "--count", &n, "--size", "64", "--capacity", "4096", "--slot-size", "128"]);
    producer.stderr(Stdio::piped());
    let mut producer = Kid::start(producer, "producer in a namespace");
    producer.capture();
    let p = producer.output(LIMIT);
    assert!(p.status.success(), "producer: {}", String::from_utf8_lossy(&p.stderr));
    let c = consumer.output(LIMIT);
    let said = String::from_utf8_lossy(&c.stderr);
    assert!(c.status.success(), "consumer: {said}");
    assert!(said.contains("1000000 messages"), "{said}");
}

/// A live producer in one namespace is counted from another, both ways; with one producer inside and one
/// outside, the deque closes only when both have left.
#[test]
fn producers_are_counted_across_namespaces_and_the_last_one_closes() {
    if !namespaces("producers across namespaces") {
        return;
    }
    let _dog = Watchdog::new("producers across namespaces", LIMIT);
    let name = Name::new("ns-producers");
    let q = Builder::new(&*name).capacity(4).slot_size(64).create_mode(CreateMode::CreateExclusive).open_raw().unwrap();
    // Inside: a producer that blocks on the full deque until this test drains it.
    let mut inside = in_namespace(PRODUCER);
    inside.args(["--name", &name, "--count", "100", "--size", "32", "--id", "1"]).stderr(Stdio::piped());
    let mut inside = Kid::start(inside, "producer in a namespace");
    inside.capture();
    wait_until("the producer inside is registered", LIMIT, || q.stats().unwrap().producers == 1);
    assert_eq!(info_from_another_namespace(&name)["producers"], 1, "counted from a third namespace");
    // Outside: this process registers too, and is seen from inside.
    let outside = q.register_producer().unwrap();
    assert_eq!(q.stats().unwrap().producers, 2);
    assert_eq!(info_from_another_namespace(&name)["producers"], 2);
    // Drain: the producer inside finishes and leaves; as it is not the last, the deque stays open.
    for _ in 0..100 {
        q.pop_front_timeout(LIMIT).unwrap();
    }
    let out = inside.output(LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!q.is_closed(), "closed while a producer outside was alive");
    assert_eq!(q.stats().unwrap().producers, 1);
    // The last one to leave closes it.
    assert!(outside.leave(true).unwrap());
    assert!(q.is_closed());
    assert_eq!(info_from_another_namespace(&name)["producers"], 0);
}

/// A producer killed inside its namespace stops counting at once, seen from outside, and a handle it left
/// behind does not keep the closed, drained deque from being removed by the last live handle.
#[test]
fn a_producer_killed_in_its_namespace_stops_counting_at_once() {
    if !namespaces("a producer killed in its namespace") {
        return;
    }
    let _dog = Watchdog::new("a producer killed in its namespace", LIMIT);
    let name = Name::new("ns-killed");
    let q = Builder::new(&*name).capacity(2).slot_size(64).create_mode(CreateMode::CreateExclusive).open_raw().unwrap();
    let mut inside = in_namespace(PRODUCER);
    inside.args(["--name", &name, "--count", "100", "--size", "32", "--keep-open"]);
    let mut inside = Kid::start(inside, "producer in a namespace");
    wait_until("the producer inside is registered", LIMIT, || q.stats().unwrap().producers == 1);
    assert_eq!(q.stats().unwrap().attached, 2);
    inside.kill();
    // unshare's child dies with it (--kill-child); the kernel then releases its registrations.
    wait_until("the killed producer stops counting", LIMIT, || q.stats().unwrap().producers == 0);
    assert_eq!(q.stats().unwrap().attached, 1);
    q.close().unwrap();
    q.clear().unwrap();
    drop(q);
    assert!(!name.exists(), "the last live handle removes a closed, drained deque");
}

/// A creator paused half-way through initialization inside a namespace, alive, is never taken over from
/// outside; once it is killed, an open-or-create from outside takes the segment over.
#[cfg(feature = "test-hooks")]
#[test]
fn a_creator_initializing_in_a_namespace_is_not_taken_over_from_outside() {
    if !namespaces("a creator in a namespace") {
        return;
    }
    let _dog = Watchdog::new("a creator in a namespace", LIMIT);
    let name = Name::new("ns-creator");
    let scratch = shmdeque_testkit::Scratch::new("ns-creator");
    let paused = scratch.file("paused");
    let mut creator = in_namespace(PRODUCER);
    creator.args(["--name", &name, "--count", "1", "--size", "32", "--capacity", "8", "--slot-size", "64"]);
    creator.env("SHMDEQUE_TEST_PAUSE", "initializing").env("SHMDEQUE_TEST_PAUSE_FILE", &paused);
    let mut creator = Kid::start(creator, "creator in a namespace");
    wait_until("the creator pauses", LIMIT, || paused.exists());
    let open = || {
        Builder::new(&*name)
            .capacity(8)
            .slot_size(64)
            .create_mode(CreateMode::OpenOrCreate)
            .open_timeout(Duration::from_millis(300))
            .open_raw()
    };
    for _ in 0..3 {
        let e = open().unwrap_err();
        assert!(matches!(e, shmdeque::Error::NotReady { .. }), "{e:?}");
        let p = shmdeque::probe(&name).unwrap_err();
        assert!(matches!(p, shmdeque::Error::NotReady { .. }), "{p:?}");
    }
    creator.kill();
    wait_until("the dead creator's segment reads as abandoned", LIMIT, || {
        matches!(shmdeque::probe(&name), Err(shmdeque::Error::Abandoned { .. }))
    });
    let q = open().expect("taken over once its creator is dead");
    q.push_back(b"after the takeover").unwrap();
    assert_eq!(q.pop_front().unwrap(), b"after the takeover");
}
