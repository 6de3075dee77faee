//! The Redis backend against real `redis-server` processes (the Debian package; `.ci/run` installs it):
//! each test starts its own servers on free loopback ports in scratch directories, and they are killed
//! when the test ends however it ends. Producers and consumers are real processes where the point is
//! several processes (this test binary re-executed, see `child_entry`), and each reports what it did
//! through an append-only record file, so the parent can check every message exactly. No test asserts a
//! duration.
#![cfg(feature = "redis")]

use shmdeque_testkit as support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use shmdeque::{AnyDeque, Builder, CreateMode, Error, PopError, PushError, RedisDeque, TypedPopError};
use shmdeque_synth as synth;
use support::redis_server::{RedisCluster, RedisServer};
use support::{Kid, Log, Scratch, Watchdog};

const ENTRY: &str = "child_entry";
/// Environment of a child: the URL, the deque's name, a count, an id, and its record file.
const URL: &str = "SHMDEQUE_REDIS_URL";
const NAME: &str = "SHMDEQUE_REDIS_NAME";
const COUNT: &str = "SHMDEQUE_REDIS_COUNT";
const ID: &str = "SHMDEQUE_REDIS_ID";
const LOG: &str = "SHMDEQUE_REDIS_LOG";
/// Bound on any one test; reaching it fails the test instead of hanging the suite.
const WATCHDOG: Duration = Duration::from_secs(120);
/// Size of the synthetic messages.
const SIZE: usize = 48;

fn unique(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("t-{}-{test}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn open(url: &str, name: &str, capacity: u32) -> RedisDeque {
    Builder::new(name).capacity(capacity).slot_size(256).open_redis(url).expect("open the Redis deque")
}

/// A child process in `role` on the deque `name` at `url`; its stdout piped for [`Kid::await_line`].
fn child(role: &str, url: &str, name: &str, count: u64, id: u32, log: &Path) -> Kid {
    let mut cmd = Kid::role_command(ENTRY, role);
    cmd.env(URL, url).env(NAME, name).env(COUNT, count.to_string()).env(ID, id.to_string()).env(LOG, log);
    cmd.stdout(Stdio::piped());
    Kid::start(cmd, &format!("{role} {id}"))
}

fn ready(what: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "{what}").unwrap();
    out.flush().unwrap();
}

/// The child side of every cross-process test. Does nothing in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(support::ROLE) else { return };
    support::child_init();
    let var = |k: &str| std::env::var(k).unwrap();
    let (url, name, log) = (var(URL), var(NAME), Log::create(Path::new(&var(LOG))));
    let count: u64 = var(COUNT).parse().unwrap();
    let id: u32 = var(ID).parse().unwrap();
    let q = Builder::new(&name).create_mode(CreateMode::Open).open_redis(&url).unwrap();
    let code = match role.as_str() {
        // Pushes `count` synthetic messages in batches of 16, recording each acknowledged one ('P').
        "produce" => {
            let me = q.register_producer().unwrap();
            let mut seq = 0;
            while seq < count {
                let k = (count - seq).min(16);
                let batch: Vec<Vec<u8>> = (seq..seq + k).map(|s| synth::make(id, s, SIZE)).collect();
                q.push_back_many(&batch).unwrap();
                for s in seq..seq + k {
                    log.rec(b'P', u64::from(id), s);
                }
                seq += k;
            }
            me.leave(false).unwrap();
            0
        }
        // Pops until closed, recording each message ('C'): one at a time or in batches.
        "consume" | "consume_many" => {
            ready("consuming");
            loop {
                let mut out = Vec::new();
                let r = if role == "consume" {
                    q.pop_front().map(|m| out.push(m))
                } else {
                    q.pop_front_many(7, &mut out).map(drop)
                };
                match r {
                    Ok(()) => {
                        for m in out {
                            let s = synth::check(&m).unwrap();
                            log.rec(b'C', u64::from(s.producer), s.seq);
                        }
                    }
                    Err(PopError::Closed) => break 0,
                    Err(e) => panic!("consumer {id}: {e}"),
                }
            }
        }
        // Takes messages without acknowledging them, says so, and waits to be killed.
        "take_and_hang" => {
            let taken = q.take_front_many(count as usize).unwrap();
            log.rec(b'T', taken.messages().len() as u64, 0);
            ready("taken");
            thread::sleep(WATCHDOG);
            1
        }
        // Registers as a producer, says so, and waits to be killed.
        "produce_and_hang" => {
            let _me = q.register_producer().unwrap();
            ready("registered");
            thread::sleep(WATCHDOG);
            1
        }
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

/// Per (producer, seq), how many times a record of `kind` names it.
fn tally(paths: &[PathBuf], kind: u8) -> HashMap<(u64, u64), u32> {
    let mut seen = HashMap::new();
    for p in paths {
        for r in Log::read(p).into_iter().filter(|r| r.kind == kind) {
            *seen.entry((r.a, r.b)).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn both_ends_every_form_and_the_errors() {
    let _dog = Watchdog::new("both_ends_every_form_and_the_errors", WATCHDOG);
    let server = RedisServer::start("ends");
    let url = server.url("");
    let name = unique("ends");
    let q = open(&url, &name, 4);
    assert_eq!((q.capacity(), q.max_message_len()), (4, 252));

    q.push_back(b"b").unwrap();
    q.push_front(b"a").unwrap();
    q.push_back_many(&["c", "d"]).unwrap();
    assert!(q.try_push_back(b"e").unwrap_err().is_full());
    let e = q.push_front_timeout(b"e", Duration::from_millis(30)).unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(e.into_inner(), b"e");
    assert_eq!(
        (q.len().unwrap(), q.peek_front().unwrap(), q.peek_back().unwrap()),
        (4, Some(b"a".to_vec()), Some(b"d".to_vec()))
    );
    assert_eq!(q.pop_front().unwrap(), b"a");
    assert_eq!(q.pop_back().unwrap(), b"d");
    let mut buf = Vec::new();
    assert_eq!(q.try_pop_front_into(&mut buf).unwrap(), 1);
    assert_eq!(buf, b"b");
    assert_eq!(q.pop_back_with(|m| m.to_vec()).unwrap(), b"c");
    assert!(q.try_pop_front().unwrap_err().is_empty());
    assert!(q.pop_back_timeout(Duration::from_millis(30)).unwrap_err().is_timeout());
    assert!(q.pop_front_deadline(Instant::now()).unwrap_err().is_timeout());

    // Batches at both ends keep the order of the shared-memory deque.
    q.push_front_many(&["x", "y"]).unwrap(); // y x
    q.push_back_many(&["z"]).unwrap(); // y x z
    let mut out = Vec::new();
    assert_eq!(q.pop_back_many(2, &mut out).unwrap(), 2);
    assert_eq!(out, [b"z".to_vec(), b"x".to_vec()]);
    let mut seen = Vec::new();
    assert_eq!(q.try_pop_front_many_with(10, |m| seen.push(m.to_vec())).unwrap(), 1);
    assert_eq!(seen, [b"y".to_vec()]);
    // A try pushes what fits.
    assert_eq!(q.try_push_back_many(&["1", "2", "3", "4", "5", "6"]).unwrap(), 4);
    assert_eq!(q.clear().unwrap(), 4);
    let long = vec![0u8; 253];
    assert!(matches!(q.push_back(&long), Err(PushError::TooLarge { len: 253, max: 252, .. })));

    let s = q.stats().unwrap();
    assert_eq!((s.capacity, s.len, s.pending, s.closed), (4, 0, 0, false));
    assert_eq!((s.pushed, s.popped, s.high_water), (11, 11, 4));

    // Close: pushes fail, pops drain, then report Closed.
    q.push_back(b"last").unwrap();
    q.close().unwrap();
    assert!(q.is_closed().unwrap());
    assert!(q.push_back(b"more").unwrap_err().is_closed());
    assert_eq!(q.pop_front().unwrap(), b"last");
    assert!(q.pop_front().unwrap_err().is_closed());

    // Opening: modes, geometry, names, URLs.
    let b = Builder::new(&name);
    assert!(matches!(
        b.clone().create_mode(CreateMode::CreateExclusive).open_redis(&url),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(b.clone().capacity(5).open_redis(&url), Err(Error::GeometryMismatch { capacity: 4, .. })));
    let other = unique("missing");
    assert!(matches!(Builder::new(&other).create_mode(CreateMode::Open).open_redis(&url), Err(Error::NotFound { .. })));
    assert!(matches!(Builder::new("a{b}").open_redis(&url), Err(Error::InvalidName { .. })));
    assert!(matches!(b.open_redis("rediss://127.0.0.1:1/0"), Err(Error::InvalidUrl { .. })));
    assert!(matches!(b.open_url("ftp://x"), Err(Error::InvalidUrl { .. })));
    assert!(matches!(b.open_redis(&format!("{url}?heartbeat=soon")), Err(Error::InvalidUrl { .. })));
    // A server that is not there: a clear error, after the open timeout.
    let e = b.clone().open_timeout(Duration::from_millis(200)).open_redis("redis://127.0.0.1:1/0").unwrap_err();
    assert!(matches!(e, Error::Remote { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    // A key of another type under the deque's name is not a deque.
    let wrong = unique("wrong");
    server.cli_text(&["SET", &format!("shmdeque:{{{wrong}}}:meta"), "x"]);
    assert!(matches!(Builder::new(&wrong).open_redis(&url), Err(Error::NotADeque { .. })));

    assert!(shmdeque::list_redis(&url).unwrap().contains(&name));
    drop(q);
    shmdeque::remove_redis(&url, &name).unwrap();
    assert!(matches!(shmdeque::remove_redis(&url, &name), Err(Error::NotFound { .. })));
    assert!(!shmdeque::list_redis(&url).unwrap().contains(&name));
    assert_eq!(server.cli_text(&["KEYS", &format!("shmdeque:{{{name}}}:*")]), "");
}

#[test]
fn one_api_for_both_backends_typed_and_raw() {
    let _dog = Watchdog::new("one_api_for_both_backends_typed_and_raw", WATCHDOG);
    let server = RedisServer::start("any");
    let shm = support::Name::new("any");
    for url in ["shm:".to_owned(), server.url("")] {
        let name = if url == "shm:" { shm.as_str().to_owned() } else { unique("any") };
        let q: AnyDeque = Builder::new(&name).capacity(8).slot_size(64).open_url(&url).unwrap();
        q.push_back(b"1").unwrap();
        q.push_front_many(&["0"]).unwrap();
        let mut out = Vec::new();
        assert_eq!(q.pop_front_many_timeout(8, &mut out, Duration::from_secs(1)).unwrap(), 2, "{url}");
        assert_eq!(out, [b"0".to_vec(), b"1".to_vec()]);
        assert!(q.try_pop_back().unwrap_err().is_empty());
        drop(q);

        let t = Builder::new(&name).open_url_typed::<(u32, String)>(&url).unwrap();
        t.push_back_many(&[(1, "one".into()), (2, "two".into())]).unwrap();
        assert_eq!(t.pop_back().unwrap(), (2, "two".to_owned()));
        assert_eq!(t.pop_front().unwrap(), (1, "one".to_owned()));
        // A message that is not a (u32, String) comes back as bytes; in a batch, those after it stay.
        let raw = Builder::new(&name).open_url(&url).unwrap();
        raw.push_back_many(&[&[0xff][..], b"\x03\x01z"]).unwrap();
        let mut vals = Vec::new();
        match t.pop_front_many(8, &mut vals) {
            Err(TypedPopError::Decode { bytes, .. }) => assert_eq!(bytes, [0xff], "{url}"),
            other => panic!("{url}: {other:?}"),
        }
        assert_eq!(raw.len().unwrap(), 1, "{url}: the message after the bad one is still there");
        assert_eq!(t.pop_front().unwrap(), (3, "z".to_owned()));
        t.close().unwrap();
        assert!(t.pop_front().unwrap_err().is_closed());
    }
}

#[test]
fn capacity_holds_under_concurrent_producers_in_several_processes() {
    let _dog = Watchdog::new("capacity_holds_under_concurrent_producers", WATCHDOG);
    let server = RedisServer::start("cap");
    let url = server.url("");
    let name = unique("cap");
    let scratch = Scratch::new("cap");
    let q = open(&url, &name, 5);
    let logs: Vec<PathBuf> = (0..4).map(|i| scratch.file(&format!("p{i}"))).collect();
    let mut producers: Vec<Kid> =
        logs.iter().enumerate().map(|(i, l)| child("produce", &url, &name, 300, i as u32, l)).collect();
    // Consume slowly at first so that the producers keep finding it full.
    let mut got = Vec::new();
    let mut most = 0;
    while got.len() < 1200 {
        let s = q.stats().unwrap();
        most = most.max(s.len + s.pending);
        if got.len() < 50 {
            thread::sleep(Duration::from_millis(2));
        }
        q.pop_front_many_timeout(3, &mut got, Duration::from_secs(10)).unwrap();
    }
    for p in &mut producers {
        p.finish(WATCHDOG);
    }
    assert!(most <= 5, "the deque held {most} messages with capacity 5");
    let s = q.stats().unwrap();
    assert!(s.high_water <= 5, "high water {} over capacity 5", s.high_water);
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    for m in &got {
        let st = synth::check(m).unwrap();
        *seen.entry((u64::from(st.producer), st.seq)).or_insert(0) += 1;
    }
    assert_eq!(seen, tally(&logs, b'P'), "every acknowledged push arrives exactly once");
    assert!(q.try_pop_front().unwrap_err().is_empty());
}

#[test]
fn close_wakes_blocked_consumers_and_pushers() {
    let _dog = Watchdog::new("close_wakes_blocked_consumers_and_pushers", WATCHDOG);
    let server = RedisServer::start("close");
    let url = server.url("");
    let scratch = Scratch::new("close");
    // Consumers in other processes, blocked on an empty deque, finish when it is closed after a message.
    let name = unique("close");
    let q = open(&url, &name, 1);
    let log = scratch.file("c");
    let mut consumers: Vec<Kid> = (0..3).map(|i| child("consume", &url, &name, 0, i, &log)).collect();
    for c in &mut consumers {
        c.await_line("consuming", WATCHDOG);
    }
    thread::sleep(Duration::from_millis(300)); // into their BLMOVE
    q.push_back(&synth::make(7, 0, SIZE)).unwrap();
    q.close().unwrap();
    for c in &mut consumers {
        c.finish(WATCHDOG);
    }
    assert_eq!(tally(&[log], b'C').get(&(7, 0)), Some(&1), "the message pushed before the close arrived once");
    assert!(q.pop_front().unwrap_err().is_closed());

    // A push blocked on a full deque reports Closed.
    let full = unique("full");
    let f = open(&url, &full, 1);
    f.push_back(b"fill").unwrap();
    let blocked = thread::spawn({
        let (url, full) = (url.clone(), full.clone());
        move || open(&url, &full, 1).push_back(b"late").map_err(|e| e.is_closed())
    });
    thread::sleep(Duration::from_millis(300));
    f.close().unwrap();
    assert_eq!(blocked.join().unwrap(), Err(true));
    assert_eq!(f.pop_front().unwrap(), b"fill");
}

/// Runs a producer and a consumer thread through `disrupt`, then checks that every acknowledged push
/// arrived (duplicates allowed: a push whose reply is lost is sent again) and returns the duplicates.
fn stream_through(url: &str, count: u64, disrupt: impl FnOnce(&AtomicBool)) -> u64 {
    let name = unique("stream");
    let q = open(url, &name, 64);
    let done = AtomicBool::new(false);
    let (pushed, got) = thread::scope(|s| {
        let producer = s.spawn(|| {
            let p = open(url, &name, 64);
            let mut acked = Vec::new();
            let mut seq = 0;
            while seq < count {
                let batch: Vec<Vec<u8>> = (seq..seq + 10).map(|i| synth::make(1, i, SIZE)).collect();
                match p.push_back_many(&batch) {
                    Ok(_) => acked.extend(seq..seq + 10),
                    Err(PushError::Failed { value, error }) => panic!("push failed after {value}: {error}"),
                    Err(e) => panic!("{e}"),
                }
                seq += 10;
            }
            p.close().unwrap();
            acked
        });
        let consumer = s.spawn(|| {
            let mut got = Vec::new();
            loop {
                match q.pop_front_many(16, &mut got) {
                    Ok(_) => {}
                    Err(PopError::Closed) => break got,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        disrupt(&done);
        let pushed = producer.join().unwrap();
        done.store(true, Ordering::Relaxed);
        (pushed, consumer.join().unwrap())
    });
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for m in &got {
        *seen.entry(synth::check(m).unwrap().seq).or_insert(0) += 1;
    }
    let missing: Vec<u64> = pushed.iter().copied().filter(|s| !seen.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    seen.values().map(|&n| u64::from(n - 1)).sum()
}

/// A loopback proxy in front of a server that loses replies on purpose: when armed, it lets the next
/// request carrying two scripts in one write (a pop's pipelined acknowledgement and take) through to the
/// server, then drops the connection as the server's reply comes back, so the server has run both and the
/// client knows neither outcome.
struct LossyProxy {
    port: u16,
    armed: std::sync::Arc<AtomicBool>,
    dropped: std::sync::Arc<AtomicU64>,
}

impl LossyProxy {
    fn start(server_port: u16) -> LossyProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (armed, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (armed2, dropped2) = (armed.clone(), dropped.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)) else { continue };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let doomed = Arc::new(AtomicBool::new(false));
                let (doomed2, armed) = (doomed.clone(), armed2.clone());
                thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n @ 1..) = client.read(&mut buf) {
                        let scripts = buf[..n].windows(7).filter(|w| w == b"EVALSHA").count();
                        if scripts >= 2 && armed.swap(false, Ordering::SeqCst) {
                            doomed2.store(true, Ordering::SeqCst);
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(Shutdown::Both);
                });
                let dropped = dropped2.clone();
                thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n @ 1..) = s2.read(&mut buf) {
                        if doomed.load(Ordering::SeqCst) {
                            dropped.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if c2.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c2.shutdown(Shutdown::Both);
                    let _ = s2.shutdown(Shutdown::Both);
                });
            }
        });
        LossyProxy { port, armed, dropped }
    }
}

/// A pop whose pipelined acknowledgement and take ran on the server but whose reply was lost is sent again
/// whole: the acknowledgement's second run must not acknowledge the batch the first run's take put in the
/// pending list (those would be lost), and the take must hand that batch over. Pushes go straight to the
/// server, so every message must arrive exactly once.
#[test]
fn a_lost_reply_to_a_pipelined_acknowledgement_loses_nothing() {
    let _dog = Watchdog::new("a_lost_reply_to_a_pipelined_acknowledgement", WATCHDOG);
    let server = RedisServer::start("lossy");
    let proxy = LossyProxy::start(server.port);
    let name = unique("lossy");
    // Room for every message: the producer never waits for this consumer, even if it fails.
    let direct = open(&server.url(""), &name, 65_536);
    let through = open(&format!("redis://127.0.0.1:{}/0", proxy.port), &name, 65_536);
    const N: u64 = 30_000;
    let done = AtomicBool::new(false);
    let pops = AtomicU64::new(0);
    let got = thread::scope(|s| {
        s.spawn(|| {
            for first in (0..N).step_by(100) {
                let batch: Vec<Vec<u8>> = (first..first + 100).map(|i| synth::make(1, i, SIZE)).collect();
                direct.push_back_many(&batch).unwrap();
            }
            direct.close().unwrap();
        });
        s.spawn(|| {
            // Armed again only once the consumer has popped a few times since, so that the retry of the
            // pop that lost its reply gets through however slow the machine is.
            let mut armed_at = 0;
            while !done.load(Ordering::Relaxed) {
                let now = pops.load(Ordering::SeqCst);
                if !proxy.armed.load(Ordering::SeqCst) && now >= armed_at + 3 {
                    armed_at = now;
                    proxy.armed.store(true, Ordering::SeqCst);
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        let mut got = Vec::new();
        let end = loop {
            match through.pop_front_many(16, &mut got) {
                Ok(_) => {
                    pops.fetch_add(1, Ordering::SeqCst);
                }
                Err(PopError::Closed) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        done.store(true, Ordering::Relaxed);
        end.unwrap();
        got
    });
    let dropped = proxy.dropped.load(Ordering::SeqCst);
    assert!(dropped > 0, "no reply was lost: the test proved nothing");
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for m in &got {
        *seen.entry(synth::check(m).unwrap().seq).or_insert(0) += 1;
    }
    let missing: Vec<u64> = (0..N).filter(|s| !seen.contains_key(s)).collect();
    let twice: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect();
    assert!(
        missing.is_empty(),
        "{} messages lost after {dropped} lost replies, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(twice.is_empty(), "{} messages delivered twice, e.g. {:?}", twice.len(), &twice[..twice.len().min(5)]);
    eprintln!("{dropped} replies lost, every message delivered once");
}

#[test]
fn killed_connections_lose_nothing() {
    let _dog = Watchdog::new("killed_connections_lose_nothing", WATCHDOG);
    let server = RedisServer::start("kill");
    let url = server.url("");
    let kills = AtomicU64::new(0);
    let dups = stream_through(&url, 20_000, |_| {
        // Kill every client connection twenty times while the stream runs.
        for _ in 0..20 {
            thread::sleep(Duration::from_millis(15));
            let n: u64 = server.cli_text(&["CLIENT", "KILL", "TYPE", "normal"]).parse().unwrap_or(0);
            kills.fetch_add(n, Ordering::Relaxed);
        }
    });
    assert!(kills.load(Ordering::Relaxed) > 0, "no connection was killed: the test proved nothing");
    eprintln!("{} connections killed, {dups} duplicates", kills.load(Ordering::Relaxed));
}

/// Streams through a server started with `extra` that `stop` stops mid-stream and that is started again
/// after `down`; every acknowledged push must arrive (see [`stream_through`]).
fn restarted_mid_stream(test: &str, extra: &[&str], query: &str, down: Duration, stop: fn(&mut RedisServer)) {
    let mut server = RedisServer::start_with(test, extra);
    let url = server.url(query);
    let server_ref = &mut server;
    let dups = stream_through(&url, 20_000, |_| {
        thread::sleep(Duration::from_millis(100));
        stop(server_ref);
        thread::sleep(down);
        server_ref.restart();
    });
    eprintln!("{dups} duplicates after the restart");
}

/// A crash of the server (SIGKILL) with `appendfsync always`: the server writes and syncs before it
/// replies, so nothing acknowledged may be lost. (With the default `everysec`, a crash can lose writes that
/// were acknowledged: the server delays its write while a background fsync is slow. docs/GUARANTEES.md
/// says so; that case is not ours to test.)
#[test]
fn a_server_crash_with_appendfsync_always_loses_nothing_acknowledged() {
    let _dog = Watchdog::new("a_server_crash_with_appendfsync_always", WATCHDOG);
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    restarted_mid_stream("aof", &aof, "reconnect=30", Duration::from_millis(200), RedisServer::kill);
}

/// A clean restart (SIGTERM, as `SHUTDOWN` or a service manager does) with the default `appendfsync
/// everysec`: the server flushes and syncs its append-only file before it exits, so nothing acknowledged
/// may be lost either; and it stays down longer than the heartbeat, so that every registration has expired
/// when it comes back.
#[test]
fn a_clean_restart_with_appendfsync_everysec_loses_nothing_acknowledged() {
    let _dog = Watchdog::new("a_clean_restart_with_appendfsync_everysec", WATCHDOG);
    let aof = ["--appendonly", "yes", "--appendfsync", "everysec"];
    let query = "reconnect=30&heartbeat=1";
    restarted_mid_stream("aof-clean", &aof, query, Duration::from_millis(1500), RedisServer::shut_down);
}

/// `reconnect=` bounds opening too: an open started while the server is down waits for it as long as the
/// URL says (here longer than the builder's open timeout, 2 s by default, which used to be the bound), and
/// an open that gives up says after how long.
#[test]
fn opening_keeps_reconnecting_for_the_urls_reconnect_time() {
    let _dog = Watchdog::new("opening_keeps_reconnecting", WATCHDOG);
    let mut server = RedisServer::start("reopen");
    let name = unique("reopen");
    server.kill();
    let url = server.url("reconnect=60");
    let opener = {
        let name = name.clone();
        thread::spawn(move || Builder::new(&name).capacity(8).slot_size(64).open_redis(&url))
    };
    thread::sleep(Duration::from_secs(3));
    server.restart();
    let q = opener.join().unwrap().expect("the open waited for the server to come back");
    q.push_back(b"after").unwrap();
    assert_eq!(q.pop_front().unwrap(), b"after");

    server.kill();
    let e = Builder::new(&name).open_redis(&server.url("reconnect=0.3")).unwrap_err();
    assert!(matches!(e, Error::Remote { .. }) && e.to_string().contains("for 0.3 s"), "{e}");
}

/// A handle's interrupter stops a reconnection: a pop, a push and a query on a handle whose server is down
/// (with a reconnection time far beyond the watchdog's) return `Interrupted`, or fail saying so, once it is
/// used; after `reset` and the server's return the handle works again.
#[test]
fn an_interrupter_stops_a_reconnection() {
    let _dog = Watchdog::new("an_interrupter_stops_a_reconnection", WATCHDOG);
    let mut server = RedisServer::start_with("interrupt", &["--appendonly", "yes", "--appendfsync", "always"]);
    let name = unique("interrupt");
    let q = Builder::new(&name).capacity(8).slot_size(64).open_redis(&server.url("reconnect=600")).unwrap();
    q.push_back(b"kept").unwrap();
    server.kill();
    let stop = q.interrupter();
    let waker = thread::spawn({
        let stop = stop.clone();
        move || {
            thread::sleep(Duration::from_millis(300));
            stop.interrupt();
        }
    });
    assert!(matches!(q.pop_front(), Err(PopError::Interrupted)));
    waker.join().unwrap();
    assert!(matches!(q.push_back(b"x"), Err(PushError::Interrupted(m)) if m == b"x"));
    let e = q.len().unwrap_err();
    assert!(e.to_string().contains("interrupted while reconnecting"), "{e}");
    stop.reset();
    server.restart();
    assert_eq!(q.pop_front().unwrap(), b"kept");
}

#[test]
fn a_killed_consumers_messages_come_back_after_its_heartbeat() {
    let _dog = Watchdog::new("a_killed_consumers_messages_come_back", WATCHDOG);
    let server = RedisServer::start("requeue");
    let url = server.url("heartbeat=0.5");
    let name = unique("requeue");
    let scratch = Scratch::new("requeue");
    let q = Builder::new(&name).capacity(10).slot_size(256).open_redis(&url).unwrap();
    let msgs: Vec<Vec<u8>> = (0..10).map(|i| synth::make(9, i, SIZE)).collect();
    q.push_back_many(&msgs).unwrap();
    let log = scratch.file("t");
    let mut taker = child("take_and_hang", &url, &name, 4, 0, &log);
    taker.await_line("taken", WATCHDOG);
    assert_eq!(q.stats().unwrap().pending, 4);
    // Still full: the taken messages count against the capacity until they are acknowledged.
    assert!(q.try_push_back(b"x").unwrap_err().is_full());
    taker.kill();
    // The six left come first; after the heartbeat expires, a take puts the four back at the front, in
    // order, and they come next.
    let mut got = Vec::new();
    while got.len() < 10 {
        q.pop_front_many_timeout(10, &mut got, Duration::from_secs(10)).unwrap();
    }
    assert_eq!(got[..6], msgs[4..]);
    assert_eq!(got[6..], msgs[..4]);
    assert_eq!(q.stats().unwrap().requeued, 4);
}

#[test]
fn a_taken_batch_given_back_or_acknowledged() {
    let _dog = Watchdog::new("a_taken_batch_given_back_or_acknowledged", WATCHDOG);
    let server = RedisServer::start("take");
    let url = server.url("");
    let name = unique("take");
    let q = open(&url, &name, 8);
    q.push_back_many(&["a", "b", "c"]).unwrap();
    let taken = q.take_back_many(2).unwrap();
    assert_eq!(taken.messages(), [b"c".to_vec(), b"b".to_vec()]);
    drop(taken); // given back, at the back, in order
    assert_eq!(q.peek_back().unwrap(), Some(b"c".to_vec()));
    let taken = q.take_front_many(2).unwrap();
    assert_eq!(taken.ack().unwrap().unwrap(), [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(q.len().unwrap(), 1);
}

#[test]
fn producers_gone_is_reported_once_every_producer_died() {
    let _dog = Watchdog::new("producers_gone_is_reported", WATCHDOG);
    let server = RedisServer::start("gone");
    let url = server.url("heartbeat=0.6");
    let name = unique("gone");
    let scratch = Scratch::new("gone");
    let q = Builder::new(&name).open_redis(&url).unwrap();
    let mut p = child("produce_and_hang", &url, &name, 0, 0, &scratch.file("p"));
    p.await_line("registered", WATCHDOG);
    assert_eq!(q.stats().unwrap().producers, 1);
    // Alive: its heartbeat keeps it registered through several expiry periods.
    assert!(q.pop_front_timeout(Duration::from_secs(2)).unwrap_err().is_timeout());
    p.kill();
    match q.pop_front_timeout(Duration::from_secs(30)) {
        Err(PopError::ProducersGone) => {}
        other => panic!("{other:?}"),
    }
    assert!(q.stats().unwrap().producers_gone);
    // A new producer clears it; leaving last with close_if_last closes the deque.
    let me = q.register_producer().unwrap();
    assert!(q.try_pop_front().unwrap_err().is_empty());
    assert!(me.leave(true).unwrap());
    assert!(q.pop_front().unwrap_err().is_closed());
}

#[test]
fn four_producers_and_four_consumers_in_processes_exactly_once() {
    let _dog = Watchdog::new("four_by_four", WATCHDOG);
    let server = RedisServer::start("4x4");
    let url = server.url("");
    let name = unique("4x4");
    let scratch = Scratch::new("4x4");
    let q = open(&url, &name, 256);
    let plogs: Vec<PathBuf> = (0..4).map(|i| scratch.file(&format!("p{i}"))).collect();
    let clogs: Vec<PathBuf> = (0..4).map(|i| scratch.file(&format!("c{i}"))).collect();
    let mut consumers: Vec<Kid> = clogs
        .iter()
        .enumerate()
        .map(|(i, l)| child(if i % 2 == 0 { "consume" } else { "consume_many" }, &url, &name, 0, i as u32, l))
        .collect();
    let mut producers: Vec<Kid> =
        plogs.iter().enumerate().map(|(i, l)| child("produce", &url, &name, 5000, i as u32, l)).collect();
    for p in &mut producers {
        p.finish(WATCHDOG);
    }
    q.close().unwrap();
    for c in &mut consumers {
        c.finish(WATCHDOG);
    }
    let pushed = tally(&plogs, b'P');
    let got = tally(&clogs, b'C');
    assert_eq!(pushed.len(), 20_000);
    assert_eq!(got, pushed, "every message delivered exactly once");
    let s = q.stats().unwrap();
    assert_eq!((s.pushed, s.popped, s.len, s.pending, s.requeued), (20_000, 20_000, 0, 0, 0));
}

/// Whether `node` serves hash slot `slot`, by its own line (`myself`) of CLUSTER NODES: `ID HOST:PORT@BUS
/// FLAGS MASTER PING PONG EPOCH STATE SLOTS…`, each slot entry `N` or `A-B` (`[…]` entries are migrations).
fn serves(node: &RedisServer, slot: u16) -> bool {
    let nodes = node.cli_text(&["CLUSTER", "NODES"]);
    let Some(me) = nodes.lines().find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself"))) else {
        return false;
    };
    me.split(' ').skip(8).any(|range| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
    })
}

#[test]
fn a_three_master_cluster_spreads_deques_over_its_slots() {
    let _dog = Watchdog::new("a_three_master_cluster", WATCHDOG);
    let cluster = RedisCluster::start("cluster", 3);
    let url = cluster.url("");
    // Three deques per node, by the slot the server computes for each name: nine consecutive unique names
    // differ in two digits only, and CRC16 is linear, so about one set in six hashes wholly onto one node.
    let node_of = |name: &str| {
        let slot: u16 = cluster.nodes[0].cli_text(&["CLUSTER", "KEYSLOT", name]).parse().expect("a slot number");
        cluster.nodes.iter().position(|n| serves(n, slot)).expect("every slot is served")
    };
    let mut names: Vec<String> = Vec::new();
    let mut home: Vec<usize> = Vec::new();
    let mut per_node = [0; 3];
    for i in 0.. {
        let name = unique(&format!("c{i}"));
        let node = node_of(&name);
        if per_node[node] < 3 {
            per_node[node] += 1;
            names.push(name);
            home.push(node);
        }
        if names.len() == 9 {
            break;
        }
    }
    let deques: Vec<RedisDeque> = names.iter().map(|n| open(&url, n, 16)).collect();
    for (i, q) in deques.iter().enumerate() {
        q.push_back_many(&[format!("{i}-a"), format!("{i}-b")]).unwrap();
        q.push_front(format!("{i}-0").as_bytes()).unwrap();
    }
    // Blocking pops and a close on the cluster too.
    let q0 = &deques[0];
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let other = open(&url, &names[1], 16);
            let mut got = Vec::new();
            loop {
                match other.pop_back_timeout(Duration::from_secs(30)) {
                    Ok(m) => got.push(m),
                    Err(PopError::Closed) => break got,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        thread::sleep(Duration::from_millis(200));
        deques[1].close().unwrap();
        assert_eq!(waiter.join().unwrap(), [b"1-b".to_vec(), b"1-a".to_vec(), b"1-0".to_vec()]);
    });
    assert_eq!(q0.pop_front().unwrap(), b"0-0");
    for (i, q) in deques.iter().enumerate().skip(2) {
        let mut out = Vec::new();
        q.pop_front_many(10, &mut out).unwrap();
        assert_eq!(out, [format!("{i}-0"), format!("{i}-a"), format!("{i}-b")].map(String::into_bytes));
    }
    // Each deque's keys are on one node, the one that serves its name's slot, and so every node holds some.
    let mut nodes_used = 0;
    for (n, node) in cluster.nodes.iter().enumerate() {
        let keys = node.cli_text(&["KEYS", "shmdeque:{*"]);
        let tags: std::collections::HashSet<&str> =
            keys.lines().filter_map(|k| k.split_once('{')?.1.split_once('}').map(|(t, _)| t)).collect();
        nodes_used += usize::from(!tags.is_empty());
        for t in tags {
            let i = names.iter().position(|name| name == t).unwrap_or_else(|| panic!("keys of an unknown deque {t}"));
            assert_eq!(home[i], n, "deque {t} is not on the node that serves its slot");
            for other in cluster.nodes.iter().filter(|o| o.port != node.port) {
                assert_eq!(other.cli_text(&["KEYS", &format!("shmdeque:{{{t}}}:*")]), "", "deque {t} spans nodes");
            }
        }
    }
    assert_eq!(nodes_used, 3, "the nine deques are spread over all three nodes");
    for n in &names {
        shmdeque::remove_redis(&url, n).unwrap();
    }
}
