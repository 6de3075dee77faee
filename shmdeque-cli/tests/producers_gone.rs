//! A producer's death ends the stream, visibly, as a writer's death gives a pipe's reader end-of-file:
//! `producer`s killed with SIGKILL at random instants, in the same PID namespace as the `consumer` or in
//! others, and the consumer then exits 1 saying so, after its grace period, with every message that was
//! pushed received and verified; a producer restarted within the grace period resumes the stream.
//!
//! Real processes on real segments; unique names removed however a test ends; every child under a watchdog.

use std::process::{Command, Stdio};
use std::time::Duration;

use shmdeque_testkit::{Kid, Name, Rng, Watchdog, wait_until};

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");
const SHMDEQUE: &str = env!("CARGO_BIN_EXE_shmdeque");
const LIMIT: Duration = Duration::from_secs(120);

fn info(name: &str) -> serde_json::Value {
    let out = Command::new(SHMDEQUE).args(["info", name, "--json"]).output().expect("run shmdeque info");
    assert!(out.status.success(), "shmdeque info: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("info --json is JSON")
}

/// Whether PID namespaces can be made here (root and unshare).
fn namespaces() -> bool {
    Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).status().is_ok_and(|s| s.success())
}

/// `producer` pushing an endless stream of synthetic messages stamped `id`, in a PID namespace of its own
/// when `own_namespace`.
fn producer(name: &str, id: u32, own_namespace: bool) -> Kid {
    let mut cmd = if own_namespace {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--kill-child", PRODUCER]);
        c
    } else {
        Command::new(PRODUCER)
    };
    cmd.args(["--name", name, "--count", "1000000000", "--size", "48", "--id", &id.to_string()]);
    cmd.args(["--capacity", "256", "--slot-size", "64"]).stderr(Stdio::null());
    Kid::start(cmd, &format!("producer {id}"))
}

/// A consumer that verifies every producer's sequence from 0 without a gap, with a grace period of `wait`.
fn consumer(name: &str, wait: &str) -> Kid {
    let mut cmd = Command::new(CONSUMER);
    cmd.args(["--name", name, "--verify", "--consecutive", "--wait", wait]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut kid = Kid::start(cmd, "consumer");
    kid.capture();
    kid
}

/// One producer and then several, killed at random instants, in the same and in other namespaces: the
/// consumer ends with exit 1 and one line saying that all producers died, having received (and verified)
/// every message they pushed.
#[test]
fn killed_producers_end_the_stream_with_nothing_pushed_lost() {
    let _dog = Watchdog::new("killed producers end the stream", Duration::from_secs(300));
    let mut rng = Rng::from_env("SHMDEQUE_GONE_SEED");
    let with_namespaces = namespaces();
    if !with_namespaces {
        eprintln!("note: cannot make PID namespaces here: producers run in this namespace only");
    }
    for (round, count) in [1usize, 3].into_iter().enumerate() {
        let name = Name::new(&format!("gone-{round}"));
        let mut producers: Vec<Kid> =
            (0..count).map(|i| producer(&name, i as u32 + 1, with_namespaces && i % 2 == 1)).collect();
        let mut c = consumer(&name, "1");
        wait_until("messages flow", LIMIT, || name.exists() && info(&name)["popped"].as_u64() > Some(2000));
        for p in &mut producers {
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
            p.kill();
        }
        let out = c.output(LIMIT);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        let line = said.lines().find(|l| l.contains("died without closing")).unwrap_or_else(|| panic!("{said}"));
        assert!(line.contains("none came back") && line.contains("messages received"), "{line}");
        // Every message a producer pushed was received (and verified: no gap, no duplicate in any sequence).
        let received: u64 = line.split_whitespace().rev().nth(2).and_then(|n| n.parse().ok()).expect("count");
        let stats = info(&name);
        assert_eq!(stats["len"], 0, "{stats}");
        assert_eq!(stats["producers"], 0, "{stats}");
        assert!(received >= stats["pushed"].as_u64().unwrap(), "{received} received, {stats}");
    }
}

/// A producer restarted within the consumer's grace period (as a supervisor would) resumes the stream,
/// and the consumer then ends normally when that producer closes the deque.
#[test]
fn a_producer_restarted_within_the_grace_period_resumes_the_stream() {
    let _dog = Watchdog::new("a restarted producer resumes", LIMIT);
    let name = Name::new("gone-resume");
    let mut first = producer(&name, 1, false);
    let mut cmd = Command::new(CONSUMER);
    cmd.args(["--name", &name, "--verify", "--wait", "30"]).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut c = Kid::start(cmd, "consumer");
    c.capture();
    wait_until("messages flow", LIMIT, || name.exists() && info(&name)["popped"].as_u64() > Some(1000));
    first.kill();
    wait_until("the first producer is gone", LIMIT, || info(&name)["producers"] == 0 && info(&name)["len"] == 0);
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = Command::new(PRODUCER);
    second.args(["--name", &name, "--count", "1000", "--size", "48", "--id", "2"]);
    Kid::start(second, "second producer").finish(LIMIT);
    let out = c.output(LIMIT);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("died"), "{said}");
}
