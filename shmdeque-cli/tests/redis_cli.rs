//! The tools against a real `redis-server` (started per test on a free loopback port, killed at the end):
//! `--url` on every tool, and `shmdeque bridge` in both directions, SIGKILLed mid-stream and restarted.
//! Checks are on what came out, message by message; no test asserts a duration.

use shmdeque_testkit as support;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use shmdeque_cli::synth;
use support::redis_server::RedisServer;
use support::{Kid, Name, Watchdog};

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");
const SHMDEQUE: &str = env!("CARGO_BIN_EXE_shmdeque");
const LIMIT: Duration = Duration::from_secs(120);

fn start(program: &str, args: &[&str], input: Option<Vec<u8>>) -> Kid {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut kid = Kid::start(cmd, &format!("{program} {}", args.join(" ")));
    if let Some(bytes) = input {
        kid.feed(bytes);
    }
    kid.capture();
    kid
}

fn run(program: &str, args: &[&str]) -> Output {
    start(program, args, None).output(LIMIT)
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keys(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_tool_takes_a_redis_url() {
    let _dog = Watchdog::new("every_tool_takes_a_redis_url", LIMIT);
    let server = RedisServer::start("tools");
    let url = server.url("");
    let name = format!("tools-{}", std::process::id());
    let n = name.as_str();
    let u = url.as_str();
    ok(SHMDEQUE, &["create", n, "--url", u, "--capacity", "16", "--slot-size", "64"]);
    ok(SHMDEQUE, &["push", n, "--url", u, "b", "c"]);
    ok(SHMDEQUE, &["push", n, "--url", u, "--front", "a"]);
    assert_eq!(ok(SHMDEQUE, &["pop", n, "--url", u, "--count", "2"]), "a\nb\n");
    assert_eq!(ok(SHMDEQUE, &["pop", n, "--url", u, "--back"]), "c\n");
    let listed = ok(SHMDEQUE, &["list", "--url", u, "--json"]);
    assert!(listed.contains(&format!("\"name\":\"{name}\"")), "{listed}");

    // info --json: every key of a shared-memory deque's, and more.
    let local = Name::new("info");
    ok(SHMDEQUE, &["create", local.as_str()]);
    let shm_keys = keys(&ok(SHMDEQUE, &["info", local.as_str(), "--json"]));
    let redis_keys = keys(&ok(SHMDEQUE, &["info", n, "--url", u, "--json"]));
    for k in &shm_keys {
        assert!(redis_keys.contains(k), "info --json on Redis lacks {k}: {redis_keys:?}");
    }

    // Lines through Redis, producer and consumer in two processes; the producer's end closes the deque.
    let lines: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let mut consumer = start(CONSUMER, &["--name", "lines", "--url", u], None);
    let mut producer = start(PRODUCER, &["--name", "lines", "--url", u], Some(lines.clone().into_bytes()));
    producer.finish(LIMIT);
    let out = consumer.output(LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), lines);

    // Closed deque: pops drain then succeed; pushes are refused (exit 2); removal; unknown deque (exit 2).
    ok(SHMDEQUE, &["close", n, "--url", u]);
    assert_eq!(run(SHMDEQUE, &["push", n, "--url", u, "x"]).status.code(), Some(2));
    ok(SHMDEQUE, &["remove", n, "--url", u]);
    assert_eq!(run(SHMDEQUE, &["info", n, "--url", u]).status.code(), Some(2));
    ok(SHMDEQUE, &["remove", "lines", "--url", u]);
    let bad = run(SHMDEQUE, &["info", n, "--url", "redis://127.0.0.1:1/0?reconnect=0.2"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).lines().count() == 1, "one line: {:?}", bad.stderr);
    assert_eq!(run(SHMDEQUE, &["info", n, "--url", "rediss://127.0.0.1/0"]).status.code(), Some(2));
}

/// Counts each synthetic message in a consumer's output.
fn tally(stdout: &[u8]) -> HashMap<(u32, u64), u32> {
    let mut seen = HashMap::new();
    for line in stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let s = synth::check(line).unwrap_or_else(|e| panic!("bad message {:?}: {e}", String::from_utf8_lossy(line)));
        *seen.entry((s.producer, s.seq)).or_insert(0) += 1;
    }
    seen
}

/// Runs `bridge` with `args`, SIGKILLs it `kills` times while it is moving messages and starts it again,
/// then lets the last one finish. Returns how many kills found it running.
fn bridge_with_kills(args: &[&str], kills: usize) -> usize {
    let mut hit = 0;
    for i in 0..kills as u64 {
        let mut b = start(SHMDEQUE, args, None);
        thread::sleep(Duration::from_millis(40 + 40 * i));
        if b.try_status().is_none() {
            hit += 1;
        }
        b.kill();
    }
    let out = start(SHMDEQUE, args, None).output(LIMIT);
    assert!(out.status.success(), "the last bridge failed: {}", String::from_utf8_lossy(&out.stderr));
    hit
}

const COUNT: u64 = 150_000;
const BATCH: usize = 256;

#[test]
fn a_bridge_to_redis_killed_mid_stream_loses_nothing() {
    let _dog = Watchdog::new("a_bridge_to_redis_killed_mid_stream", LIMIT);
    let server = RedisServer::start("bridge-to");
    let url = server.url("");
    let local = Name::new("bridge-to");
    let count = COUNT.to_string();
    let mut producer =
        start(PRODUCER, &["--name", local.as_str(), "--count", &count, "--size", "64", "--id", "3"], None);
    let mut consumer = start(CONSUMER, &["--name", local.as_str(), "--url", &url, "--wait", "60"], None);
    let hit = bridge_with_kills(&["bridge", "--name", local.as_str(), "--url", &url, "--batch", "256"], 3);
    producer.finish(LIMIT);
    let out = consumer.output(LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = tally(&out.stdout);
    let missing = (0..COUNT).filter(|s| !seen.contains_key(&(3, *s))).count();
    assert_eq!(missing, 0, "messages lost");
    let dups: u32 = seen.values().map(|n| n - 1).sum();
    assert!(dups as usize <= hit * BATCH, "{dups} duplicates from {hit} kills of batches of {BATCH}");
    assert!(hit > 0, "no kill found the bridge running: the test proved nothing");
    // Drained and closed (the killed bridges' handles stay counted, so the segment itself stays).
    if local.exists() {
        let info: serde_json::Value = serde_json::from_str(&ok(SHMDEQUE, &["info", local.as_str(), "--json"])).unwrap();
        assert_eq!((info["len"].as_u64(), info["closed"].as_bool()), (Some(0), Some(true)));
    }
}

#[test]
fn a_bridge_from_redis_killed_mid_stream_loses_nothing() {
    let _dog = Watchdog::new("a_bridge_from_redis_killed_mid_stream", LIMIT);
    let server = RedisServer::start("bridge-from");
    let url = server.url("heartbeat=0.5");
    let local = Name::new("bridge-from");
    let remote = format!("from-{}", std::process::id());
    let count = COUNT.to_string();
    let mut producer = start(
        PRODUCER,
        &["--name", &remote, "--url", &url, "--count", &count, "--size", "64", "--id", "4", "--capacity", "4096"],
        None,
    );
    let mut consumer = start(CONSUMER, &["--name", local.as_str(), "--wait", "60"], None);
    let args = ["bridge", "--from-redis", "--name", local.as_str(), "--remote-name", &remote, "--url", &url];
    let hit = bridge_with_kills(&args, 3);
    producer.finish(LIMIT);
    let out = consumer.output(LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = tally(&out.stdout);
    let missing = (0..COUNT).filter(|s| !seen.contains_key(&(4, *s))).count();
    assert_eq!(missing, 0, "messages lost");
    let dups: u32 = seen.values().map(|n| n - 1).sum();
    assert!(dups as usize <= hit * BATCH, "{dups} duplicates from {hit} kills of batches of {BATCH}");
    assert!(hit > 0, "no kill found the bridge running: the test proved nothing");
    ok(SHMDEQUE, &["remove", &remote, "--url", &url]);
}
