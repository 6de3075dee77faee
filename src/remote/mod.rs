//! The same deque on Redis lists, for producers and consumers on several hosts (cargo feature `redis`).
//!
//! [`RedisDeque`] has the operation grid of [`RawDeque`](crate::RawDeque) — both ends, one message or many,
//! in the four forms `try_x` / `x` / `x_timeout` / `x_deadline` — on a Redis list, with the deque's
//! semantics kept by Lua scripts that the server runs atomically (`script.rs`): the capacity is never
//! exceeded, a closed deque refuses pushes and is drained before pops report `Closed`.
//! [`AnyDeque`](crate::AnyDeque) and [`AnySharedDeque`](crate::AnySharedDeque) choose the backend by URL.
//!
//! The user-facing story (reliable pops, waiting, what is not here) is on [`RedisDeque`].

mod any;
mod grid;
mod link;
mod script;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Cmd, ConnectionLike, RedisResult, Value};

use crate::err::{Error, PopError, PushError};
use crate::grid::wait_forms;
use crate::ring::End;
use crate::wait::{Interrupter, Wait};
use crate::{Builder, Config, CreateMode};
use grid::byte_grid;

pub use any::{AnyDeque, AnyProducer, AnySharedDeque, remove_at};
use link::{Budget, Endpoint, Halt, Link};
pub use script::REDIS_LAYOUT_VERSION;

/// The longest a blocked pop or push waits in one server command before it checks again whether the deque
/// was closed: what bounds how late a waiter notices a close.
pub const REDIS_WAIT_SLICE: Duration = Duration::from_millis(100);
/// Extra time given to an operation on a handle being dropped to reach the server, and no more: a handle
/// of an unreachable server must not hang its owner's exit.
const DROP_BUDGET: Duration = Duration::from_millis(500);
/// The set, outside any deque's slot, of the names of the deques created on a server: what `list` reads.
const DEQUES_KEY: &str = "shmdeque:deques";

pub(crate) fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// 64 bits that differ between processes and calls: consumer and producer ids, backoff jitter.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS once per process, then per instance; the counter and the clock
    // make each call differ.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// `HOST:PID:RANDOM`: who registered, readable in `redis-cli`, and unique.
fn new_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host.trim().chars().filter(|c| c.is_ascii_graphic() && *c != '{' && *c != '}').collect();
    format!("{host}:{}:{:016x}", std::process::id(), random_u64())
}

/// Checks a deque name for Redis: the rules of [`check_name`](crate::check_name), and no braces, which
/// would break the hash tag.
fn check_redis_name(name: &str) -> Result<(), Error> {
    crate::check_name(name)?;
    if name.contains(['{', '}']) {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "a deque on Redis cannot have '{' or '}' in its name",
        });
    }
    Ok(())
}

/// Runs `script` with the deque's meta key and the arguments `args` adds, by its hash, loading it first if
/// the server does not have it (first use, a restarted server, a new cluster node).
fn eval(c: &mut dyn ConnectionLike, script: &redis::Script, meta: &str, args: impl Fn(&mut Cmd)) -> RedisResult<Value> {
    run(c, script, &evalsha(script, meta, args))
}

/// Runs `cmd`, an `EVALSHA` of `script`, loading the script first if the server does not have it.
fn run(c: &mut dyn ConnectionLike, script: &redis::Script, cmd: &Cmd) -> RedisResult<Value> {
    match cmd.query(c) {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load(c)?;
            cmd.query(c)
        }
        r => r,
    }
}

/// `EVALSHA` of `script` with the deque's meta key and the arguments `args` adds.
fn evalsha(script: &redis::Script, meta: &str, args: impl Fn(&mut Cmd)) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(1).arg(meta);
    args(&mut cmd);
    cmd
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    }
}

/// What a take found.
enum Took {
    Msgs(Vec<Vec<u8>>),
    Empty,
    Closed,
    Gone,
    Missing,
}

/// The per-handle state behind its lock: the connection, and what the server knows of this consumer.
struct Session {
    link: Link,
    /// The end last recorded for this consumer on the server (`None`: never took anything).
    end_recorded: Option<End>,
    /// The number of this consumer's last acknowledgement (see [`script::ACK`]).
    acks: u64,
    /// Messages taken ahead, in the round trip of the previous pop's acknowledgement, from that end: they
    /// are in this consumer's pending list, not yet handed to anyone.
    ahead: Option<(End, Vec<Vec<u8>>)>,
}

/// A bounded deque of byte messages in Redis, shared by processes on any host that reaches the server.
///
/// Built by [`Builder::open_redis`](crate::Builder::open_redis) (or through [`AnyDeque`] by URL). Its
/// operations are those of [`RawDeque`](crate::RawDeque), in the same four forms, minus the lock guard
/// and in-place pushes (see below); queries that go to the server (`len`,
/// `is_closed`, `peek_front`, …) return a `Result`. One handle is one connection: share it between threads
/// (operations on one handle take turns) or open one per thread for parallel round trips.
///
/// Keys live until [`remove_redis`] deletes them; the last handle leaving does not remove anything.
///
/// # Reliable pops
/// This is the "reliable queue" pattern of Redis: a pop first moves messages into this handle's own
/// pending list (`LPOP`+`RPUSH` in a script, or `BLMOVE` while waiting), then deletes that list once the
/// messages are in the process (the acknowledgement), and only then returns them. A connection that drops
/// in between loses nothing: after reconnecting, the next take finds the pending list filled and returns its
/// messages. A consumer that dies in between leaves them pending; when its heartbeat expires (every
/// operation renews it), the next consumer to take puts them back at the end they came from. An
/// acknowledgement that finds its own registration expired (the process stalled longer than the heartbeat)
/// gives the messages back instead of returning them. So a message is returned once when nothing fails, and
/// no failure of a consumer, a connection or (with `appendonly yes`) a server restart loses one; a push
/// whose reply is lost is sent again, which can store it twice. `docs/GUARANTEES.md` has the whole story.
///
/// A pop that got as many messages as it asked for takes the next batch in the same round trip as its
/// acknowledgement (not on a Cluster): one round trip per batch while the deque has a backlog. That batch
/// waits in this handle's pending list, counted against the capacity and out of other consumers' reach,
/// until this handle's next pop returns it (or its drop gives it back, or its heartbeat expires).
///
/// # Waiting
/// Blocked pops wait in `BLMOVE` for at most [`REDIS_WAIT_SLICE`] at a time and check between two waits whether the
/// deque was closed or its producers are gone: they notice within a slice, at a cost of about ten
/// commands a second per waiting consumer. Blocked pushes wait the same way on a doorbell list, into which
/// an acknowledgement that frees room in a full deque pushes a token.
///
/// # What is not here
/// No lock guard ([`RawDeque::lock`](crate::RawDeque::lock)): several operations cannot be made atomic
/// together from outside the server. No in-place pushes (`push_back_with`): a message has to be whole
/// before it is sent. The `_with` pops hand the closure a received copy, not a slot.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let q = shmdeque::Builder::new("jobs").capacity(1000).open_redis("redis://127.0.0.1:6379/0")?;
/// q.push_back(b"job 1")?;
/// assert_eq!(q.pop_front_timeout(Duration::from_secs(1))?, b"job 1");
/// q.close()?;
/// assert!(q.pop_front().unwrap_err().is_closed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisDeque {
    name: String,
    meta: String,
    list: String,
    pending: String,
    capacity: u32,
    slot_size: u32,
    /// This handle's consumer id: names its pending list.
    id: String,
    ep: Arc<Endpoint>,
    /// Cuts this handle's waits and reconnections short (see [`RedisDeque::interrupter`]).
    interrupt: Interrupter,
    session: Mutex<Session>,
}

impl std::fmt::Debug for RedisDeque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDeque")
            .field("name", &self.name)
            .field("url", &self.ep.shown)
            .field("capacity", &self.capacity)
            .field("slot_size", &self.slot_size)
            .finish()
    }
}

/// A Redis deque's state and counters, from [`RedisDeque::stats`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RedisStats {
    /// The deque's name.
    pub name: String,
    /// Maximum number of messages (in the list and pending together).
    pub capacity: u32,
    /// Bytes per message plus [`SLOT_OVERHEAD`](crate::SLOT_OVERHEAD), as for a shared-memory deque.
    pub slot_size: u32,
    /// Messages in the list now.
    pub len: u64,
    /// Messages taken by consumers and not yet acknowledged.
    pub pending: u64,
    /// Whether the deque is closed.
    pub closed: bool,
    /// Producers whose heartbeat is current.
    pub producers: u64,
    /// Consumers whose heartbeat is current (each handle that popped within the heartbeat time).
    pub consumers: u64,
    /// Messages ever pushed.
    pub pushed: u64,
    /// Messages ever acknowledged or cleared.
    pub popped: u64,
    /// The largest number of messages the deque has held.
    pub high_water: u64,
    /// Messages given back to the deque from the pending list of a consumer that was gone.
    pub requeued: u64,
    /// Producers whose heartbeat expired without their leaving.
    pub producers_lost: u64,
    /// Whether the last registered producers all expired: pops of the empty deque report
    /// [`PopError::ProducersGone`].
    pub producers_gone: bool,
    /// Bytes the server uses for the list (`MEMORY USAGE`).
    pub list_bytes: u64,
}

impl Builder {
    /// Opens (or creates, as the [creation mode](CreateMode) says) the deque on the Redis server or cluster
    /// that `url` names:
    ///
    /// * `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` — one server (or a primary with replicas);
    /// * `redis+unix:///PATH/TO/SOCKET` — one server on a Unix socket;
    /// * `redis+cluster://HOST:PORT[,HOST:PORT…]` — a Redis Cluster, from any of its nodes.
    ///
    /// The query string may set `heartbeat=SECS` (default 10: how long a consumer or producer stays
    /// registered without a sign of life), `reconnect=SECS` (default 10: how long an operation keeps
    /// reconnecting after its connection drops before it fails) and `timeout=SECS` (default 5: how long a
    /// command may take to answer). The capacity and slot size work as for shared memory. Opening keeps
    /// reconnecting for the `reconnect` time too; the builder's [`open_timeout`](Self::open_timeout) (a
    /// segment still being created) does not apply.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::InvalidName`] (also for a name with `{` or `}`),
    /// [`Error::InvalidConfig`], [`Error::NotFound`], [`Error::AlreadyExists`], [`Error::NotADeque`],
    /// [`Error::VersionMismatch`], [`Error::GeometryMismatch`], [`Error::Remote`].
    pub fn open_redis(&self, url: &str) -> Result<RedisDeque, Error> {
        RedisDeque::attach(&self.cfg, url)
    }
}

impl RedisDeque {
    fn attach(cfg: &Config, url: &str) -> Result<RedisDeque, Error> {
        check_redis_name(&cfg.name)?;
        if cfg.capacity == 0 {
            return Err(Error::InvalidConfig("capacity must be at least 1".into()));
        }
        if cfg.slot_size < 8 || cfg.slot_size > (512 << 20) {
            return Err(Error::InvalidConfig(format!(
                "slot size {} is out of range: a deque on Redis takes 8 bytes to 512 MiB",
                cfg.slot_size
            )));
        }
        let ep = Arc::new(Endpoint::parse(url)?);
        let base = script::base(&cfg.name);
        let interrupt = Interrupter::new();
        let mut link = Link::new(ep.clone(), interrupt.clone());
        let name = cfg.name.clone();
        let mode = match cfg.create_mode {
            CreateMode::CreateExclusive => "create",
            CreateMode::Open => "open",
            _ => "either",
        };
        let meta = format!("{base}meta");
        // Bounded by the URL's `reconnect` time: the builder's open timeout is about a segment that another
        // process is still creating, which a server does not have.
        let reply = link.call(&name, "open", Budget::Reconnect, |c| {
            eval(c, &script::CREATE, &meta, |cmd| {
                cmd.arg(mode).arg(cfg.capacity).arg(cfg.slot_size).arg(REDIS_LAYOUT_VERSION);
            })
        })?;
        let Value::Array(r) = reply else { return Err(Error::NotADeque { name }) };
        let field = |i: usize| r.get(i).and_then(int);
        match field(0) {
            Some(-1) => return Err(Error::NotFound { name }),
            Some(-3) => return Err(Error::AlreadyExists { name }),
            Some(0 | 1) => {}
            _ => return Err(Error::NotADeque { name }),
        }
        let version = field(3).unwrap_or(-1);
        if version != i64::from(REDIS_LAYOUT_VERSION) {
            return Err(Error::VersionMismatch {
                name,
                found: u32::try_from(version).unwrap_or(0),
                expected: REDIS_LAYOUT_VERSION,
            });
        }
        let (Some(capacity), Some(slot_size)) =
            (field(1).and_then(|c| u32::try_from(c).ok()), field(2).and_then(|s| u32::try_from(s).ok()))
        else {
            return Err(Error::NotADeque { name });
        };
        if (cfg.explicit_capacity && capacity != cfg.capacity) || (cfg.explicit_slot_size && slot_size != cfg.slot_size)
        {
            return Err(Error::GeometryMismatch {
                name,
                capacity,
                slot_size,
                requested_capacity: cfg.capacity,
                requested_slot_size: cfg.slot_size,
            });
        }
        if field(0) == Some(1) {
            // Outside the deque's slot, so not in the script; a crash in between only hides it from `list`.
            link.call(&name, "register the name", Budget::Reconnect, |c| {
                redis::cmd("SADD").arg(DEQUES_KEY).arg(&name).query::<i64>(c)
            })?;
        }
        let id = new_id();
        Ok(RedisDeque {
            pending: format!("{base}pending:{id}"),
            list: format!("{base}list"),
            meta,
            name,
            capacity,
            slot_size,
            id,
            ep,
            interrupt,
            session: Mutex::new(Session { link, end_recorded: None, acks: 0, ahead: None }),
        })
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic in a caller's closure cannot leave the session inconsistent: it holds no half-done state.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn missing(&self) -> Error {
        Error::NotFound { name: self.name.clone() }
    }

    fn heartbeat_ms(&self) -> u64 {
        self.ep.heartbeat.as_millis().max(1) as u64
    }

    /// The deque's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the server, its password hidden.
    pub fn url(&self) -> &str {
        &self.ep.shown
    }

    /// A handle on this handle's waits, as [`RawDeque::interrupter`](crate::RawDeque::interrupter):
    /// [`Interrupter::interrupt`] makes its blocked pops and pushes (and later ones, until
    /// [`Interrupter::reset`]) return `Interrupted` within one [`REDIS_WAIT_SLICE`], and stops a
    /// reconnection at its next pause (within about 10 ms) instead of letting it run for the URL's
    /// `reconnect` time; an operation interrupted there that has no `Interrupted` outcome fails with
    /// [`Error::Remote`] saying so. A connection attempt already under way (bounded by `timeout=`) is
    /// waited for. Operations that need not wait and find the server answering go on as usual; what a
    /// handle does as it is dropped (giving back its pending messages) is not interrupted.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupt.clone()
    }

    /// How many messages the deque holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The slot size the deque was created with: the largest message plus
    /// [`SLOT_OVERHEAD`](crate::SLOT_OVERHEAD), as for shared memory.
    pub fn slot_size(&self) -> usize {
        self.slot_size as usize
    }

    /// The largest message, in bytes, that the deque accepts.
    pub fn max_message_len(&self) -> usize {
        self.slot_size as usize - crate::SLOT_OVERHEAD
    }

    /// The body of every push: pushes `msgs` in order, as many as fit at each attempt, waiting for room in
    /// between; with [`Wait::Now`], what fits at once (at least one). Returns how many were pushed, or on an
    /// error how many were pushed before it.
    fn push_many<M: AsRef<[u8]>>(&self, end: End, msgs: &[M], wait: Wait) -> Result<usize, PushError<usize>> {
        let max = self.max_message_len();
        if let Some(len) = msgs.iter().map(|m| m.as_ref().len()).find(|&len| len > max) {
            return Err(PushError::TooLarge { value: 0, len, max });
        }
        let side = if end == End::Front { "L" } else { "R" };
        let mut s = self.session();
        let mut done = 0;
        while done < msgs.len() {
            let rest = &msgs[done..];
            let r = s.link.call(&self.name, "push", Budget::Reconnect, |c| {
                eval(c, &script::PUSH, &self.meta, |cmd| {
                    cmd.arg(side);
                    for m in rest {
                        cmd.arg(m.as_ref());
                    }
                })
            });
            let r = r.map_err(|h| match h {
                Halt::Interrupted(_) => PushError::Interrupted(done),
                Halt::Failed(error) => PushError::Failed { value: done, error },
            })?;
            match int(&r) {
                Some(k) if k > 0 => {
                    done += k as usize;
                    if done < msgs.len() && !matches!(wait, Wait::Now) {
                        self.wait_for_room(&mut s, wait).map_err(|e| e.map(|()| done))?;
                    }
                    if matches!(wait, Wait::Now) {
                        break;
                    }
                }
                Some(-1) if matches!(wait, Wait::Now) => return Err(PushError::Full(done)),
                Some(-1) => self.wait_for_room(&mut s, wait).map_err(|e| e.map(|()| done))?,
                Some(-2) => return Err(PushError::Closed(done)),
                Some(-3) => return Err(PushError::Failed { value: done, error: self.missing() }),
                _ => return Err(PushError::Failed { value: done, error: self.odd_reply("push", &r) }),
            }
        }
        Ok(done)
    }

    /// Waits for a token on the doorbell, at most one [`REDIS_WAIT_SLICE`] and never past the deadline.
    fn wait_for_room(&self, s: &mut Session, wait: Wait) -> Result<(), PushError<()>> {
        if self.interrupt.is_interrupted() {
            return Err(PushError::Interrupted(()));
        }
        let Some(block) = slice_of(wait) else { return Err(PushError::Timeout(())) };
        let room = format!("{}room", script::base(&self.name));
        let read_timeout = block + self.ep.io_timeout;
        s.link
            .call_once(&self.name, "wait for room", read_timeout, |c| {
                redis::cmd("BLPOP").arg(&room).arg(block.as_secs_f64()).query::<Value>(c)
            })
            .map_err(|error| PushError::Failed { value: (), error })?;
        Ok(())
    }

    fn odd_reply(&self, op: &'static str, v: &Value) -> Error {
        Error::Remote {
            name: self.name.clone(),
            op,
            reason: format!(
                "unexpected reply {v:?} from {}; is another program using the deque's keys?",
                self.ep.shown
            ),
        }
    }

    fn push_one<'m>(&self, end: End, msg: &'m [u8], wait: Wait) -> Result<(), PushError<&'m [u8]>> {
        self.push_many(end, &[msg], wait).map(drop).map_err(|e| e.map(|_| msg))
    }

    /// Moves up to `max` messages from `end` into this handle's pending list, waiting as `wait` says;
    /// returns them, still pending.
    fn take(&self, s: &mut Session, end: End, max: usize, wait: Wait) -> Result<Vec<Vec<u8>>, PopError> {
        if let Some((from, msgs)) = s.ahead.take() {
            if from == end && msgs.len() <= max {
                return Ok(msgs);
            }
            // Taken at the other end, or more than this call wants: back to the deque, in their order.
            s.link.call(&self.name, "give back", Budget::Reconnect, |c| {
                eval(c, &script::GIVE_BACK, &self.meta, |cmd| {
                    cmd.arg(&self.id);
                })
            })?;
        }
        loop {
            let take = self.take_cmd(s, end, max);
            let r = s.link.call(&self.name, "pop", Budget::Reconnect, |c| run(c, &script::TAKE, &take))?;
            s.end_recorded = Some(end);
            match self.took(r)? {
                Took::Msgs(m) => return Ok(m),
                Took::Closed => return Err(PopError::Closed),
                Took::Gone => return Err(PopError::ProducersGone),
                Took::Missing => return Err(PopError::Failed(self.missing())),
                Took::Empty => {}
            }
            if matches!(wait, Wait::Now) {
                return Err(PopError::Empty);
            }
            if self.interrupt.is_interrupted() {
                return Err(PopError::Interrupted);
            }
            let Some(block) = slice_of(wait) else { return Err(PopError::Timeout) };
            // One message moved straight into the pending list by the server as soon as one comes; a
            // dropped connection here is resolved by the next take, which finds the pending list.
            let read_timeout = block + self.ep.io_timeout;
            let got = s.link.call_once(&self.name, "wait for a message", read_timeout, |c| {
                redis::cmd("BLMOVE")
                    .arg(&self.list)
                    .arg(&self.pending)
                    .arg(if end == End::Front { "LEFT" } else { "RIGHT" })
                    .arg("RIGHT")
                    .arg(block.as_secs_f64())
                    .query::<Option<Vec<u8>>>(c)
            })?;
            if let Some(Some(msg)) = got {
                return Ok(vec![msg]);
            }
        }
    }

    /// The take script's command: up to `max` messages from `end` into this handle's pending list.
    fn take_cmd(&self, s: &Session, end: End, max: usize) -> Cmd {
        let side = if end == End::Front { "L" } else { "R" };
        let record = if s.end_recorded == Some(end) { "0" } else { "1" };
        evalsha(&script::TAKE, &self.meta, |cmd| {
            cmd.arg(&self.id).arg(side).arg(max.min(100_000)).arg(self.heartbeat_ms()).arg(record);
        })
    }

    fn took(&self, r: Value) -> Result<Took, PopError> {
        let odd = |r: &Value| PopError::Failed(self.odd_reply("pop", r));
        let Value::Array(mut items) = r else { return Err(odd(&r)) };
        match items.first().and_then(int) {
            Some(0) => {}
            Some(-1) => return Ok(Took::Empty),
            Some(-2) => return Ok(Took::Closed),
            Some(-3) => return Ok(Took::Missing),
            Some(-4) => return Ok(Took::Gone),
            _ => return Err(odd(&Value::Array(items))),
        }
        let Some(Value::Array(msgs)) = items.pop() else { return Err(odd(&Value::Array(items))) };
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            match m {
                Value::BulkString(b) => out.push(b),
                other => return Err(odd(&other)),
            }
        }
        Ok(Took::Msgs(out))
    }

    /// Acknowledges the first `keep` messages of this handle's pending list (the caller has them) and gives
    /// the rest back. `Ok(false)`: this consumer's registration had expired, all of them went back to the
    /// deque, and the caller must not use them.
    fn ack(&self, s: &mut Session, keep: usize) -> Result<bool, Halt> {
        let ack = self.ack_cmd(s, keep);
        let r = s.link.call(&self.name, "acknowledge", Budget::Reconnect, |c| run(c, &script::ACK, &ack))?;
        self.acked(&r)
    }

    /// The acknowledgement script's command, under the next acknowledgement number: running it again (a
    /// retry) returns the first run's outcome.
    fn ack_cmd(&self, s: &mut Session, keep: usize) -> Cmd {
        s.acks += 1;
        evalsha(&script::ACK, &self.meta, |cmd| {
            cmd.arg(&self.id).arg(self.heartbeat_ms()).arg(keep).arg(s.acks);
        })
    }

    fn acked(&self, r: &Value) -> Result<bool, Halt> {
        match int(r) {
            Some(-1) => Ok(false),
            Some(_) => Ok(true),
            None => Err(Halt::Failed(self.odd_reply("acknowledge", r))),
        }
    }

    /// As [`ack`](Self::ack), and in the same round trip (pipelined) takes up to `max` messages from `end`
    /// into the pending list for the next pop, keeping them in [`Session::ahead`]. Sent again whole after
    /// a dropped connection: the acknowledgement's number makes its second run a no-op, and a take that
    /// finds the pending list filled returns what is there.
    fn ack_and_take(&self, s: &mut Session, keep: usize, end: End, max: usize) -> Result<bool, Halt> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors().add_command(self.ack_cmd(s, keep)).add_command(self.take_cmd(s, end, max));
        let no_script =
            |v: &Value| matches!(v, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript));
        let replies: Vec<Value> = s.link.call(&self.name, "acknowledge", Budget::Reconnect, |c| {
            let mut v: Vec<Value> = pipe.query(c)?;
            if v.iter().any(no_script) {
                script::ACK.load(c)?;
                script::TAKE.load(c)?;
                v = pipe.query(c)?;
            }
            match v.iter().find_map(|r| if let Value::ServerError(e) = r { Some(e.clone()) } else { None }) {
                Some(e) => Err(e.into()),
                None => Ok(v),
            }
        })?;
        s.end_recorded = Some(end);
        let [ack, take] = <[Value; 2]>::try_from(replies)
            .map_err(|v| Halt::Failed(self.odd_reply("acknowledge", &Value::Array(v))))?;
        let acked = self.acked(&ack)?;
        s.ahead = match self.took(take) {
            Ok(Took::Msgs(m)) if !m.is_empty() => Some((end, m)),
            Err(PopError::Failed(e)) => return Err(Halt::Failed(e)),
            // Nothing now, closed, gone: the next pop's own take finds out again.
            _ => None,
        };
        Ok(acked)
    }

    /// The body of every pop: takes up to `max` messages, lets `keep` say how many of them the caller will
    /// have (all, or up to a bad one), acknowledges those and gives the others back, then hands them over.
    fn pop_many<E: From<PopError>>(
        &self,
        end: End,
        max: usize,
        wait: Wait,
        mut keep: impl FnMut(&[Vec<u8>]) -> usize,
        deliver: impl FnOnce(Vec<Vec<u8>>) -> Result<(), E>,
    ) -> Result<usize, E> {
        if max == 0 {
            return Ok(0);
        }
        let mut s = self.session();
        loop {
            let mut msgs = self.take(&mut s, end, max, wait)?;
            let k = keep(&msgs).min(msgs.len());
            // A whole batch, every message kept: the deque likely holds more, so the next batch is taken in
            // the acknowledgement's round trip. One round trip per batch instead of two, at the cost of
            // holding that batch in this handle's pending list until its next pop (or its drop). Not on a
            // Cluster, whose connections take no pipelines through `ConnectionLike`.
            let acked = if k == max && msgs.len() == max && !self.ep.is_cluster() {
                self.ack_and_take(&mut s, k, end, max).map_err(PopError::from)?
            } else {
                self.ack(&mut s, k).map_err(PopError::from)?
            };
            if !acked {
                continue; // they went back: take again
            }
            drop(s);
            msgs.truncate(k);
            let n = msgs.len();
            deliver(msgs)?;
            return Ok(n);
        }
    }

    fn pop_one<R>(&self, end: End, wait: Wait, read: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        let mut out = None;
        self.pop_many(
            end,
            1,
            wait,
            |m| m.len(),
            |mut msgs| {
                out = msgs.pop();
                Ok::<_, PopError>(())
            },
        )?;
        let msg = out.ok_or_else(|| PopError::Failed(self.odd_reply("pop", &Value::Nil)))?;
        Ok(read(&msg))
    }

    fn pop_into(&self, end: End, buf: &mut Vec<u8>, wait: Wait) -> Result<usize, PopError> {
        self.pop_one(end, wait, |m| {
            buf.clear();
            buf.extend_from_slice(m);
            m.len()
        })
    }

    fn pop_vecs(&self, end: End, max: usize, out: &mut Vec<Vec<u8>>, wait: Wait) -> Result<usize, PopError> {
        self.pop_many(
            end,
            max,
            wait,
            |m| m.len(),
            |msgs| {
                out.extend(msgs);
                Ok::<_, PopError>(())
            },
        )
    }

    fn pop_each(&self, end: End, max: usize, mut read: impl FnMut(&[u8]), wait: Wait) -> Result<usize, PopError> {
        self.pop_many(
            end,
            max,
            wait,
            |m| m.len(),
            |msgs| {
                msgs.iter().for_each(|m| read(m));
                Ok::<_, PopError>(())
            },
        )
    }

    /// Typed batch pops: decodes before acknowledging, so that a batch stops after a message that does not
    /// decode (removed, and handed back as bytes, as on shared memory) and the messages after it go back
    /// to the deque instead of being lost.
    pub(crate) fn pop_decoded<T: serde::de::DeserializeOwned>(
        &self,
        end: End,
        max: usize,
        out: &mut Vec<T>,
        wait: Wait,
    ) -> Result<usize, crate::TypedPopError> {
        let mut decoded = Vec::new();
        let mut bad = None;
        self.pop_many(
            end,
            max,
            wait,
            |msgs| {
                decoded.clear();
                bad = None;
                for m in msgs {
                    match crate::codec::decode::<T>(m) {
                        Ok(v) => decoded.push(v),
                        Err(reason) => {
                            bad = Some(crate::TypedPopError::Decode { bytes: m.clone(), reason });
                            return decoded.len() + 1;
                        }
                    }
                }
                msgs.len()
            },
            |_| Ok::<_, crate::TypedPopError>(()),
        )?;
        let n = decoded.len();
        out.append(&mut decoded);
        match bad {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    byte_grid! {
        push_errors: "[`PushError::Closed`] once the deque is closed, [`PushError::TooLarge`] if the message \
            exceeds [`max_message_len`](Self::max_message_len), [`PushError::Interrupted`] once the handle's \
            [interrupter](Self::interrupter) is used while it waits, [`PushError::Failed`] when the server cannot \
            be reached or the deque was removed; each hands the message back. After [`PushError::Failed`] the \
            message may have been pushed: the reply may be what was lost.",
        pop_errors: "[`PopError::Closed`] once the deque is closed and drained; [`PopError::ProducersGone`] \
            when it is empty and every registered producer's heartbeat expired; [`PopError::Interrupted`] once \
            the handle's [interrupter](Self::interrupter) is used while it waits; [`PopError::Failed`].",
    }

    wait_forms! {
        /// Takes up to `max` messages from the front without acknowledging them, waiting for the first:
        /// they stay in this handle's pending list until [`Taken::ack`], and go back to the deque if the
        /// [`Taken`] is dropped, or if this process dies or stalls longer than the heartbeat time first.
        /// This is at-least-once consumption: process, then acknowledge. The handle is busy meanwhile (its
        /// other operations wait for the `Taken` to go).
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_take_front_many, take_front_many, take_front_many_timeout, take_front_many_deadline] []
            (&self, max: usize) [] -> Result<Taken<'_>, PopError>
            where wait => self.take_many(End::Front, max, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// As [`take_front_many`](Self::take_front_many), from the back.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_take_back_many, take_back_many, take_back_many_timeout, take_back_many_deadline] []
            (&self, max: usize) [] -> Result<Taken<'_>, PopError>
            where wait => self.take_many(End::Back, max, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";
    }

    fn take_many(&self, end: End, max: usize, wait: Wait) -> Result<Taken<'_>, PopError> {
        let mut s = self.session();
        let msgs = if max == 0 { Vec::new() } else { self.take(&mut s, end, max, wait)? };
        Ok(Taken { deque: self, session: Some(s), msgs })
    }

    /// Runs one script that returns an integer, mapping `-3` to [`Error::NotFound`].
    fn run_int(&self, op: &'static str, script: &redis::Script, args: impl Fn(&mut Cmd)) -> Result<i64, Error> {
        let mut s = self.session();
        let r = s.link.call(&self.name, op, Budget::Reconnect, |c| eval(c, script, &self.meta, &args))?;
        match int(&r) {
            Some(-3) => Err(self.missing()),
            Some(n) => Ok(n),
            None => Err(self.odd_reply(op, &r)),
        }
    }

    fn query<T: redis::FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> Result<T, Error> {
        Ok(self.session().link.call(&self.name, op, Budget::Reconnect, |c| cmd.query(c))?)
    }

    /// Number of messages in the list now (not counting those being acknowledged).
    ///
    /// # Errors
    /// [`Error::Remote`] when the server cannot be reached.
    pub fn len(&self) -> Result<usize, Error> {
        self.query("len", redis::cmd("LLEN").arg(&self.list))
    }

    /// Whether the list is empty now.
    ///
    /// # Errors
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Whether the deque has been closed.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the deque was removed; [`Error::Remote`].
    pub fn is_closed(&self) -> Result<bool, Error> {
        let v: Option<String> = self.query("is_closed", redis::cmd("HGET").arg(&self.meta).arg("closed"))?;
        v.map(|v| v == "1").ok_or_else(|| self.missing())
    }

    /// A copy of the front message, leaving it in place.
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn peek_front(&self) -> Result<Option<Vec<u8>>, Error> {
        self.query("peek", redis::cmd("LINDEX").arg(&self.list).arg(0))
    }

    /// A copy of the back message, leaving it in place.
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn peek_back(&self) -> Result<Option<Vec<u8>>, Error> {
        self.query("peek", redis::cmd("LINDEX").arg(&self.list).arg(-1))
    }

    /// Removes every message of the list (not those being acknowledged); returns how many there were.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the deque was removed; [`Error::Remote`].
    pub fn clear(&self) -> Result<usize, Error> {
        self.run_int("clear", &script::CLEAR, |_| {}).map(|n| n as usize)
    }

    /// Closes the deque: pushes fail with `Closed` from now on; pops drain what is left, then report
    /// `Closed`. Waiting pops and pushes notice within [`REDIS_WAIT_SLICE`]. Closing twice is harmless.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the deque was removed; [`Error::Remote`].
    pub fn close(&self) -> Result<(), Error> {
        self.run_int("close", &script::CLOSE, |_| {}).map(drop)
    }

    /// Counters and state of the deque, read in one script.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the deque was removed; [`Error::Remote`].
    pub fn stats(&self) -> Result<RedisStats, Error> {
        let mut s = self.session();
        let r = s.link.call(&self.name, "stats", Budget::Reconnect, |c| eval(c, &script::STATS, &self.meta, |_| {}))?;
        let list_bytes: Option<u64> = s.link.call(&self.name, "stats", Budget::Reconnect, |c| {
            redis::cmd("MEMORY").arg("USAGE").arg(&self.list).query(c)
        })?;
        drop(s);
        let odd = || self.odd_reply("stats", &r);
        let Value::Array(items) = &r else { return Err(odd()) };
        if items.first().and_then(int) == Some(-3) {
            return Err(self.missing());
        }
        let Some(Value::Array(fields)) = items.get(1) else { return Err(odd()) };
        let mut meta = std::collections::HashMap::new();
        for pair in fields.chunks_exact(2) {
            meta.insert(text(&pair[0]), text(&pair[1]));
        }
        let num = |k: &str| meta.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let at = |i: usize| items.get(i).and_then(int).map_or(0, |v| v.max(0) as u64);
        Ok(RedisStats {
            name: self.name.clone(),
            capacity: num("capacity") as u32,
            slot_size: num("slot_size") as u32,
            len: at(2),
            pending: at(3),
            closed: num("closed") == 1,
            producers: at(5),
            consumers: at(4),
            pushed: num("pushed"),
            popped: num("popped"),
            high_water: num("high_water"),
            requeued: num("requeued"),
            producers_lost: num("producers_lost"),
            producers_gone: num("abandoned") == 1,
            list_bytes: list_bytes.unwrap_or(0),
        })
    }

    /// Registers this process as a producer: until [`RedisProducer::leave`] (or its drop), a thread renews
    /// the registration every third of the heartbeat time. When every registered producer's heartbeat has
    /// expired — their processes died or lost the server — pops of the empty deque report
    /// [`PopError::ProducersGone`] instead of waiting for ever.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the deque was removed; [`Error::Remote`].
    pub fn register_producer(&self) -> Result<RedisProducer<'_>, Error> {
        let id = new_id();
        let ttl = self.heartbeat_ms();
        self.run_int("register a producer", &script::PRODUCER, |cmd| {
            cmd.arg("join").arg(&id).arg(ttl).arg(0);
        })?;
        let (stop, stopped) = mpsc::channel::<()>();
        let (ep, name, meta, beat_id) = (self.ep.clone(), self.name.clone(), self.meta.clone(), id.clone());
        let every = self.ep.heartbeat / 3;
        let thread = std::thread::Builder::new()
            .name("shmdeque-heartbeat".into())
            .spawn(move || {
                // Its own connection, which no interrupter stops: the heartbeat goes on until `leave`.
                let mut link = Link::new(ep, Interrupter::new());
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failure is retried at the next beat; the registration outlives two missed ones.
                    let _ = link.call(&name, "producer heartbeat", Budget::Fixed(every), |c| {
                        eval(c, &script::PRODUCER, &meta, |cmd| {
                            cmd.arg("beat").arg(&beat_id).arg(ttl).arg(0);
                        })
                    });
                }
            })
            .map_err(|e| Error::Remote {
                name: self.name.clone(),
                op: "start the producer heartbeat",
                reason: e.to_string(),
            })?;
        Ok(RedisProducer { deque: self, id, stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for RedisDeque {
    /// Unregisters this handle as a consumer, giving back anything left pending, within a short time.
    fn drop(&mut self) {
        let s = self.session.get_mut().unwrap_or_else(PoisonError::into_inner);
        if s.end_recorded.is_none() {
            return;
        }
        let (name, meta, id) = (&self.name, &self.meta, &self.id);
        let _ = s.link.call(name, "unregister", self.interrupt.last_call(), |c| {
            eval(c, &script::BYE, meta, |cmd| {
                cmd.arg(id);
            })
        });
    }
}

impl Interrupter {
    /// The budget of what a handle does as it goes away: [`DROP_BUDGET`], or a single attempt once the
    /// handle was interrupted (its owner wants to stop now; what it leaves pending comes back when its
    /// heartbeat expires).
    fn last_call(&self) -> Budget {
        Budget::Fixed(if self.is_interrupted() { Duration::ZERO } else { DROP_BUDGET })
    }
}

/// The time a blocked operation may wait in one server command: a [`REDIS_WAIT_SLICE`], less if the deadline is near;
/// `None` once it has passed.
fn slice_of(wait: Wait) -> Option<Duration> {
    match wait {
        Wait::Until(deadline) => {
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| d.as_millis() >= 1)?;
            Some(left.min(REDIS_WAIT_SLICE))
        }
        _ => Some(REDIS_WAIT_SLICE),
    }
}

/// Messages taken by [`RedisDeque::take_front_many`] and not yet acknowledged. Dropping it gives them
/// back to the deque, at the end they came from.
pub struct Taken<'a> {
    deque: &'a RedisDeque,
    session: Option<MutexGuard<'a, Session>>,
    msgs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Taken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taken").field("deque", &self.deque.name).field("messages", &self.msgs.len()).finish()
    }
}

impl Taken<'_> {
    /// The messages, in the order they were taken.
    pub fn messages(&self) -> &[Vec<u8>] {
        &self.msgs
    }

    /// Renews this consumer's heartbeat, so that the messages stay taken while their processing lasts
    /// longer than the heartbeat time. `Ok(false)`: too late, the registration had expired and the
    /// messages went back to the deque (another consumer may have them by now).
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn keep_alive(&mut self) -> Result<bool, Error> {
        let d = self.deque;
        let Some(s) = self.session.as_mut() else { return Ok(false) };
        let r = s.link.call(&d.name, "keep alive", Budget::Reconnect, |c| {
            eval(c, &script::TOUCH, &d.meta, |cmd| {
                cmd.arg(&d.id).arg(d.heartbeat_ms());
            })
        })?;
        Ok(int(&r) == Some(1))
    }

    /// Acknowledges the messages: they leave the deque for good. Returns them; `Ok(None)` if this
    /// consumer's registration had expired before (the process stalled longer than the heartbeat time),
    /// in which case they went back to the deque and may be delivered again elsewhere.
    ///
    /// # Errors
    /// [`Error::Remote`] when the server cannot be reached: the messages stay pending and go back to the
    /// deque once this consumer's heartbeat expires.
    pub fn ack(mut self) -> Result<Option<Vec<Vec<u8>>>, Error> {
        let Some(mut s) = self.session.take() else { return Ok(None) };
        if self.msgs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let acked = self.deque.ack(&mut s, usize::MAX >> 1)?;
        Ok(acked.then(|| std::mem::take(&mut self.msgs)))
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let d = self.deque;
        if let Some(mut s) = self.session.take()
            && !self.msgs.is_empty()
        {
            let _ = s.link.call(&d.name, "give back", d.interrupt.last_call(), |c| {
                eval(c, &script::GIVE_BACK, &d.meta, |cmd| {
                    cmd.arg(&d.id);
                })
            });
        }
    }
}

/// A registered producer of a [`RedisDeque`]; see [`RedisDeque::register_producer`]. Dropping it leaves
/// without closing.
pub struct RedisProducer<'a> {
    deque: &'a RedisDeque,
    id: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisProducer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProducer").field("deque", &self.deque.name).field("id", &self.id).finish()
    }
}

impl RedisProducer<'_> {
    /// Leaves. If `close_if_last` and no other live producer remains, closes the deque so that consumers
    /// drain it and finish. Returns whether this call closed the deque.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the deque was removed; [`Error::Remote`].
    pub fn leave(mut self, close_if_last: bool) -> Result<bool, Error> {
        self.leave_inner(close_if_last, Budget::Reconnect)
    }

    fn leave_inner(&mut self, close_if_last: bool, budget: Budget) -> Result<bool, Error> {
        let Some(stop) = self.stop.take() else { return Ok(false) };
        drop(stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let d = self.deque;
        let ttl = d.heartbeat_ms();
        let r = d.session().link.call(&d.name, "leave", budget, |c| {
            eval(c, &script::PRODUCER, &d.meta, |cmd| {
                cmd.arg("leave").arg(&self.id).arg(ttl).arg(u8::from(close_if_last));
            })
        })?;
        match int(&r) {
            Some(-3) => Err(d.missing()),
            Some(n) => Ok(n == 1),
            None => Err(d.odd_reply("leave", &r)),
        }
    }
}

impl Drop for RedisProducer<'_> {
    fn drop(&mut self) {
        let _ = self.leave_inner(false, self.deque.interrupt.last_call());
    }
}

/// Deletes the Redis deque `name` at `url` — its messages, pending messages and registrations. Handles
/// still open get [`Error::NotFound`] from their next operation.
///
/// # Errors
/// [`Error::InvalidUrl`], [`Error::InvalidName`], [`Error::NotFound`] if there is no such deque,
/// [`Error::Remote`].
pub fn remove_redis(url: &str, name: &str) -> Result<(), Error> {
    check_redis_name(name)?;
    let ep = Arc::new(Endpoint::parse(url)?);
    let mut link = Link::new(ep, Interrupter::new());
    let meta = format!("{}meta", script::base(name));
    let r = link.call(name, "remove", Budget::Reconnect, |c| eval(c, &script::REMOVE, &meta, |_| {}))?;
    link.call(name, "unregister the name", Budget::Reconnect, |c| {
        redis::cmd("SREM").arg(DEQUES_KEY).arg(name).query::<i64>(c)
    })?;
    if int(&r) == Some(0) {
        return Err(Error::NotFound { name: name.to_owned() });
    }
    Ok(())
}

/// Names of the deques created on the server or cluster at `url` (those removed since are left out).
///
/// # Errors
/// [`Error::InvalidUrl`], [`Error::Remote`].
pub fn list_redis(url: &str) -> Result<Vec<String>, Error> {
    let ep = Arc::new(Endpoint::parse(url)?);
    let mut link = Link::new(ep, Interrupter::new());
    let mut names: Vec<String> =
        link.call(DEQUES_KEY, "list", Budget::Reconnect, |c| redis::cmd("SMEMBERS").arg(DEQUES_KEY).query(c))?;
    names.sort();
    let mut live = Vec::with_capacity(names.len());
    for name in names {
        let meta = format!("{}meta", script::base(&name));
        let exists: i64 = link.call(&name, "list", Budget::Reconnect, |c| redis::cmd("EXISTS").arg(&meta).query(c))?;
        if exists == 1 {
            live.push(name);
        }
    }
    Ok(live)
}
