//! End-to-end tests of the `producer`, `consumer` and `shmdeque` binaries: real processes on real segments.
//!
//! Every test uses its own segment name (process id + test name) and removes it; every child process runs
//! under a watchdog that kills it if it has not finished in time, so a hang fails the test instead of
//! blocking the suite. No test asserts how long anything takes.

use shmdeque_testkit as support;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use shmdeque_cli::synth;
use support::{Kid, Name};

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");
const SHMDEQUE: &str = env!("CARGO_BIN_EXE_shmdeque");
/// How long any one process may run before the watchdog kills it and fails the test.
const WATCHDOG: Duration = Duration::from_secs(60);

/// What a finished process left.
#[derive(Debug)]
struct Out {
    /// Exit code; `None` if a signal ended the process.
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last line on stderr: the error line of a failed run.
    fn last_err_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

/// A running tool: its input fed and its output collected by threads. Dropping it kills the process (see
/// [`Kid`]), so a failing test leaves nothing running.
struct Proc(Kid);

fn start<S: AsRef<OsStr>>(program: &str, args: &[S], input: Option<Vec<u8>>) -> Proc {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let what = format!(
        "{} {}",
        Path::new(program).file_name().unwrap().to_string_lossy(),
        args.iter().map(|a| a.as_ref().to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let mut kid = Kid::start(cmd, &what);
    if let Some(bytes) = input {
        kid.feed(bytes);
    }
    kid.capture();
    Proc(kid)
}

impl Proc {
    fn pid(&self) -> u32 {
        self.0.pid
    }

    fn signal(&self, signal: i32) {
        self.0.send_signal(signal);
    }

    fn running(&mut self) -> bool {
        self.0.try_status().is_none()
    }

    /// Waits for the process under the watchdog, then collects its output.
    fn finish(mut self) -> Out {
        let out = self.0.output(WATCHDOG);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "`{}` panicked: {stderr}", self.0.label());
        Out { code: out.status.code(), signal: out.status.signal(), stdout: out.stdout, stderr }
    }
}

fn run<S: AsRef<OsStr>>(program: &str, args: &[S], input: Option<Vec<u8>>) -> Out {
    start(program, args, input).finish()
}

fn run_ok<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Out {
    let out = run(program, args, None);
    assert_eq!(out.code, Some(0), "{program} failed: {}", out.stderr);
    out
}

/// `shmdeque info --json NAME`, parsed.
fn info(name: &str) -> serde_json::Value {
    let out = run_ok(SHMDEQUE, &["info", "--json", name]);
    serde_json::from_slice(&out.stdout).expect("info --json prints JSON")
}

/// Polls `cond` until it holds, failing the test after the watchdog period. Every 20 ms, not every
/// millisecond: each check here runs `shmdeque info`.
fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    support::wait_until_every(what, WATCHDOG, Duration::from_millis(20), cond);
}

fn create(seg: &Name, capacity: u32, slot_size: u32) {
    run_ok(
        SHMDEQUE,
        &["create", seg.as_str(), "--capacity", &capacity.to_string(), "--slot-size", &slot_size.to_string()],
    );
}

#[test]
fn lines_round_trip_and_nothing_left() {
    let seg = Name::new("lines");
    let input: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    let consumer = start(CONSUMER, &["--name", seg.as_str(), "--timeout", "30"], None);
    let producer = start(PRODUCER, &["--name", seg.as_str(), "--timeout", "30"], Some(input.clone().into_bytes()));
    let p = producer.finish();
    let c = consumer.finish();
    assert_eq!(p.code, Some(0), "{}", p.stderr);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert!(c.text() == input, "consumer output differs from the input");
    assert!(p.stderr.starts_with("producer: 100000 messages, 488895 bytes in "), "{}", p.stderr);
    assert!(c.stderr.contains("messages/s") && c.stderr.contains("MB/s"), "{}", c.stderr);
    assert!(!seg.exists(), "the segment was left in /dev/shm");
}

#[test]
fn raw_twenty_megabytes_byte_identical() {
    let seg = Name::new("raw");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..20 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let consumer = start(CONSUMER, &["--name", seg.as_str(), "--raw", "--timeout", "30"], None);
    let producer = start(PRODUCER, &["--name", seg.as_str(), "--raw", "--timeout", "30"], Some(data.clone()));
    let p = producer.finish();
    let c = consumer.finish();
    assert_eq!(p.code, Some(0), "{}", p.stderr);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert!(c.stdout == data, "raw output differs: {} bytes in, {} out", data.len(), c.stdout.len());
    assert!(!seg.exists());
}

#[test]
fn two_producers_two_consumers_all_verified() {
    let seg = Name::new("mpmc");
    // Small, so that both producers are registered (and blocked) before any consumer starts: the first to
    // finish must not close the deque under the other.
    create(&seg, 16, 128);
    let producers: Vec<Proc> = [1, 2]
        .iter()
        .map(|id| {
            let id = id.to_string();
            start(PRODUCER, &["--name", seg.as_str(), "--count", "50000", "--size", "64", "--id", &id], None)
        })
        .collect();
    wait_until("both producers are registered", || info(seg.as_str())["producers"] == 2);
    let consumers: Vec<Proc> =
        (0..2).map(|_| start(CONSUMER, &["--name", seg.as_str(), "--verify", "--timeout", "30"], None)).collect();
    for p in producers {
        let p = p.finish();
        assert_eq!(p.code, Some(0), "{}", p.stderr);
    }
    let mut seen: HashMap<u32, Vec<u64>> = HashMap::new();
    for c in consumers {
        let c = c.finish();
        assert_eq!(c.code, Some(0), "{}", c.stderr);
        for line in c.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let stamp = synth::check(line).expect("a valid synthetic message");
            seen.entry(stamp.producer).or_default().push(stamp.seq);
        }
    }
    assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 100_000);
    for id in [1, 2] {
        let mut seqs = seen.remove(&id).expect("messages of both producers");
        seqs.sort_unstable();
        assert!(seqs.iter().copied().eq(0..50_000), "producer {id}: every message exactly once");
    }
    assert!(!seg.exists());
}

#[test]
fn front_and_back_give_lifo_and_fifo() {
    let cases: [(&[&str], &[&str], &str); 4] = [
        (&[], &[], "1\n2\n3\n"),
        (&[], &["--back"], "3\n2\n1\n"),
        (&["--front"], &[], "3\n2\n1\n"),
        (&["--front"], &["--back"], "1\n2\n3\n"),
    ];
    for (i, (push_flags, pop_flags, expected)) in cases.iter().enumerate() {
        let seg = Name::new(&format!("ends{i}"));
        let mut args = vec!["--name", seg.as_str()];
        args.extend_from_slice(push_flags);
        let p = run(PRODUCER, &args, Some(b"1\n2\n3\n".to_vec()));
        assert_eq!(p.code, Some(0), "{}", p.stderr);
        let mut args = vec!["--name", seg.as_str(), "--timeout", "30"];
        args.extend_from_slice(pop_flags);
        let c = run(CONSUMER, &args, None);
        assert_eq!(c.code, Some(0), "{}", c.stderr);
        assert_eq!(c.text(), *expected, "producer {push_flags:?}, consumer {pop_flags:?}");
        assert!(!seg.exists());
    }
}

#[test]
fn timeouts_exit_3() {
    let seg = Name::new("timeouts");
    create(&seg, 2, 64);
    let c = run(CONSUMER, &["--name", seg.as_str(), "--timeout", "0.3"], None);
    assert_eq!(c.code, Some(3), "{}", c.stderr);
    assert!(c.last_err_line().starts_with("consumer: no message arrived"), "{}", c.stderr);

    let pop = run(SHMDEQUE, &["pop", seg.as_str(), "--timeout", "0.2"], None);
    assert_eq!(pop.code, Some(3), "{}", pop.stderr);

    let p = run(PRODUCER, &["--name", seg.as_str(), "--timeout", "0.3"], Some(b"a\nb\nc\n".to_vec()));
    assert_eq!(p.code, Some(3), "{}", p.stderr);
    assert!(p.last_err_line().contains("stayed full"), "{}", p.stderr);
    let stats = info(seg.as_str());
    assert_eq!((stats["len"].as_u64(), stats["closed"].as_bool()), (Some(2), Some(false)));
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    let seg = Name::new("usage");
    let one_line = |out: &Out, program: &str, needle: &str| {
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "one line expected: {}", out.stderr);
        assert!(out.stderr.starts_with(&format!("{program}: ")), "{}", out.stderr);
        assert!(out.stderr.contains(needle), "{needle:?} not in {}", out.stderr);
    };
    one_line(&run(PRODUCER, &["--name", seg.as_str(), "--bogus"], None), "producer", "--bogus");
    one_line(&run(PRODUCER, &[] as &[&str], None), "producer", "--name");
    one_line(&run(PRODUCER, &["--name", seg.as_str(), "--count", "5"], None), "producer", "--size");
    one_line(&run(PRODUCER, &["--name", seg.as_str(), "--count", "5", "--size", "10"], None), "producer", "32");
    one_line(&run(CONSUMER, &["--name", "no/slash"], None), "consumer", "'/'");
    one_line(&run(CONSUMER, &["--name", seg.as_str(), "--timeout", "soon"], None), "consumer", "soon");
    one_line(&run(SHMDEQUE, &[] as &[&str], None), "shmdeque", "command");
    one_line(&run(SHMDEQUE, &["info", seg.as_str()], None), "shmdeque", "does not exist");
    let not_utf8 = OsStr::from_bytes(b"cli-\xff");
    one_line(&run(CONSUMER, &[OsStr::new("--name"), not_utf8], None), "consumer", "UTF-8");
    one_line(&run(SHMDEQUE, &[OsStr::new("info"), not_utf8], None), "shmdeque", "UTF-8");
    one_line(&run(CONSUMER, &["--name", seg.as_str(), "--wait", "0.2"], None), "consumer", "does not exist");
    assert!(!seg.exists(), "a refused command created the segment");

    create(&seg, 8, 64);
    let p = run(PRODUCER, &["--name", seg.as_str(), "--capacity", "16"], Some(b"x\n".to_vec()));
    assert_eq!(p.code, Some(2), "{}", p.stderr);
    assert!(p.stderr.contains("capacity 8") && p.stderr.contains("capacity 16"), "{}", p.stderr);
    one_line(&run(SHMDEQUE, &["create", seg.as_str()], None), "shmdeque", "already exists");

    // A closed deque that still holds a message: a new producer is refused.
    run_ok(SHMDEQUE, &["push", seg.as_str(), "left"]);
    run_ok(SHMDEQUE, &["close", seg.as_str()]);
    let p = run(PRODUCER, &["--name", seg.as_str()], Some(b"x\n".to_vec()));
    assert_eq!(p.code, Some(2), "{}", p.stderr);
    assert!(p.last_err_line().contains("is closed"), "{}", p.stderr);
    let push = run(SHMDEQUE, &["push", seg.as_str(), "late"], None);
    assert_eq!(push.code, Some(2), "{}", push.stderr);
}

#[test]
fn oversize_line_exits_2_after_pushing_earlier_lines() {
    let seg = Name::new("oversize");
    create(&seg, 8, 64); // messages of up to 60 bytes
    let mut input = b"first\nsecond\n".to_vec();
    input.extend_from_slice(&[b'x'; 100]);
    input.extend_from_slice(b"\nafter\n");
    let p = run(PRODUCER, &["--name", seg.as_str()], Some(input));
    assert_eq!(p.code, Some(2), "{}", p.stderr);
    let why = p.last_err_line();
    assert!(why.contains("line 3") && why.contains("100 bytes") && why.contains("60-byte"), "{why}");
    let stats = info(seg.as_str());
    assert_eq!((stats["len"].as_u64(), stats["closed"].as_bool()), (Some(2), Some(false)));
    let pop = run_ok(SHMDEQUE, &["pop", seg.as_str(), "--count", "2", "--timeout", "5"]);
    assert_eq!(pop.text(), "first\nsecond\n");
}

#[test]
fn verification_failure_exits_1() {
    let seg = Name::new("verify");
    create(&seg, 8, 128);
    let mut msg = synth::make(3, 0, 64);
    msg[40] ^= 1;
    run_ok(SHMDEQUE, &[OsStr::new("push"), OsStr::new(seg.as_str()), OsStr::from_bytes(&msg)]);
    let c = run(CONSUMER, &["--name", seg.as_str(), "--verify", "--count", "1"], None);
    assert_eq!(c.code, Some(1), "{}", c.stderr);
    assert!(c.last_err_line().contains("verification failed: message #0"), "{}", c.stderr);
    assert_eq!(c.stdout.len(), 65, "the bad message is still written");
}

#[test]
fn killed_producer_leaves_a_drainable_deque() {
    let seg = Name::new("sigkill");
    create(&seg, 64, 128);
    let consumer = start(CONSUMER, &["--name", seg.as_str(), "--verify", "--consecutive", "--timeout", "30"], None);
    let producer =
        start(PRODUCER, &["--name", seg.as_str(), "--count", "1000000000", "--size", "64", "--id", "7"], None);
    wait_until("messages flow", || info(seg.as_str())["pushed"].as_u64() > Some(5000));
    producer.signal(libc::SIGKILL);
    let p = producer.finish();
    assert_eq!(p.signal, Some(libc::SIGKILL));

    let stats = info(seg.as_str());
    assert_eq!(stats["producers"], 0, "{stats}");
    assert_eq!(stats["closed"], false, "{stats}");
    let pushed = stats["pushed"].as_u64().unwrap();
    run_ok(SHMDEQUE, &["close", seg.as_str()]);
    let c = consumer.finish();
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    let lines = c.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    // The consumer checked that sequence numbers run 0, 1, 2, ... without a gap, and it stopped only when
    // the closed deque was empty: it drained every message the producer pushed. (The `pushed` counter is
    // bumped just after a push is published, so a kill in between can only make it count one short.)
    assert!(lines >= pushed && lines > 0, "{lines} lines, {pushed} pushed");
    // The killed producer's handle does not count: the consumer, the last live handle of the closed and
    // drained deque, removed it as it left.
    assert!(!seg.exists(), "the last live handle removes the closed, drained deque");
}

#[test]
fn sigint_stops_producer_and_consumer_with_130() {
    let seg = Name::new("sigint");
    create(&seg, 4, 64);
    let mut producer = start(PRODUCER, &["--name", seg.as_str(), "--count", "1000", "--size", "32"], None);
    wait_until("the deque is full", || info(seg.as_str())["len"] == 4);
    assert!(producer.running());
    producer.signal(libc::SIGINT);
    let p = producer.finish();
    assert_eq!(p.code, Some(130), "{}", p.stderr);
    assert!(p.last_err_line().contains("interrupted"), "{}", p.stderr);
    let stats = info(seg.as_str());
    assert_eq!((stats["closed"].as_bool(), stats["len"].as_u64()), (Some(false), Some(4)), "{stats}");
    assert_eq!(stats["producers"], 0, "{stats}");

    let mut consumer = start(CONSUMER, &["--name", seg.as_str(), "--verify"], None);
    wait_until("the deque is drained", || info(seg.as_str())["len"] == 0);
    assert!(consumer.running());
    consumer.signal(libc::SIGTERM);
    let c = consumer.finish();
    assert_eq!(c.code, Some(130), "{}", c.stderr);
    assert_eq!(c.text().lines().count(), 4, "every popped message was written");
}

#[test]
fn sigint_stops_blocked_push_and_pop_verbs_with_130() {
    let seg = Name::new("sigint-verbs");
    let n = seg.as_str();
    create(&seg, 1, 64);
    run_ok(SHMDEQUE, &["push", n, "first"]);
    // Asleep waiting for room: the signal interrupts the wait itself.
    let push = start(SHMDEQUE, &["push", n, "second"], None);
    wait_until("the push is asleep", || info(n)["asleep_for_room"] == 1);
    push.signal(libc::SIGINT);
    let p = push.finish();
    assert_eq!(p.code, Some(130), "{}", p.stderr);
    assert!(p.last_err_line().contains("interrupted"), "{}", p.stderr);
    assert_eq!(run_ok(SHMDEQUE, &["pop", n]).text(), "first\n");
    // Asleep waiting for a message.
    let pop = start(SHMDEQUE, &["pop", n], None);
    wait_until("the pop is asleep", || info(n)["asleep_for_message"] == 1);
    pop.signal(libc::SIGTERM);
    let p = pop.finish();
    assert_eq!(p.code, Some(130), "{}", p.stderr);
    assert_eq!(info(n)["len"], 0);
}

#[test]
fn admin_commands_round_trip() {
    let seg = Name::new("admin");
    let n = seg.as_str();
    let created = run_ok(SHMDEQUE, &["create", n, "--capacity", "8", "--slot-size", "64", "--mode", "640"]);
    assert!(created.text().contains("8 messages of up to 60 bytes"), "{}", created.text());
    let stats = info(n);
    let mut keys: Vec<&str> = stats.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = [
        "capacity",
        "slot_size",
        "len",
        "closed",
        "producers",
        "pushed",
        "popped",
        "lock_recoveries",
        "high_water",
        "asleep_for_message",
        "asleep_for_room",
        "segment_bytes",
        "mode",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!((stats["capacity"].as_u64(), stats["slot_size"].as_u64()), (Some(8), Some(64)));
    assert_eq!(stats["mode"], "0640");
    assert!(run_ok(SHMDEQUE, &["info", n]).text().contains("lock_recoveries"));

    run_ok(SHMDEQUE, &["push", n, "a", "b", "c"]);
    run_ok(SHMDEQUE, &["push", n, "--front", "z"]);
    let list = run_ok(SHMDEQUE, &["list"]).text();
    assert!(list.lines().any(|l| l.starts_with(n) && l.contains(" 4 ")), "{list}");
    let list: serde_json::Value = serde_json::from_slice(&run_ok(SHMDEQUE, &["list", "--json"]).stdout).unwrap();
    let ours = list.as_array().unwrap().iter().find(|d| d["name"] == n).expect("listed");
    assert_eq!((ours["len"].as_u64(), ours["capacity"].as_u64()), (Some(4), Some(8)));

    assert_eq!(run_ok(SHMDEQUE, &["pop", n, "--count", "2"]).text(), "z\na\n");
    assert_eq!(run_ok(SHMDEQUE, &["pop", n, "--back"]).text(), "c\n");
    run_ok(SHMDEQUE, &["close", n]);
    assert_eq!(info(n)["closed"], true);
    // Draining the closed deque makes its last user remove it.
    assert_eq!(run_ok(SHMDEQUE, &["pop", n, "--count", "5"]).text(), "b\n");
    assert!(!seg.exists());
    let removed = run(SHMDEQUE, &["remove", n], None);
    assert_eq!(removed.code, Some(2), "{}", removed.stderr);

    create(&seg, 4, 64);
    run_ok(SHMDEQUE, &["remove", n]);
    assert!(!seg.exists());
}

#[test]
fn help_documents_exit_codes() {
    for program in [PRODUCER, CONSUMER, SHMDEQUE] {
        let help = run_ok(program, &["--help"]).text();
        for needle in ["Exit codes:", "130", "timeout"] {
            assert!(help.contains(needle), "{program} --help lacks {needle:?}");
        }
    }
    assert!(run_ok(SHMDEQUE, &["demo", "--help"]).text().contains("Exit codes:"));
}

#[test]
fn demo_runs_to_completion_and_cleans_up() {
    let demo = start(SHMDEQUE, &["demo", "--count", "20000"], None);
    let segment = support::segment_path(&format!("shmdeque-demo-{}", demo.pid()));
    let out = demo.finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = out.text();
    assert!(text.contains("shmdeque (shared memory)") && text.lines().any(|l| l.starts_with("pipe ")), "{text}");
    assert!(!segment.exists(), "the demo left its deque behind");
}
