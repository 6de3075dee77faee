//! The connection to Redis: what a URL names ([`Endpoint`]), and one handle's connection to it ([`Link`]),
//! re-established with backoff when it drops.
//!
//! Every operation of the backend goes through [`Link::call`] (retried on the new connection: the scripts
//! are written so that running one again after a lost reply is safe) or [`Link::call_once`] (not retried:
//! the blocking `BLMOVE`, after which the caller re-reads its pending list instead). A server error that no
//! reconnection can cure (a script error, a key of the wrong type) is returned at once.

use std::time::{Duration, Instant};

use redis::{ConnectionLike, RedisError, RedisResult};

use crate::err::{Error, PopError};
use crate::wait::Interrupter;

/// How long a handle keeps reconnecting after its connection drops, unless the URL says `reconnect=SECS`.
pub(crate) const DEFAULT_RECONNECT_FOR: Duration = Duration::from_secs(10);
/// How long a consumer's or producer's registration lives without a heartbeat, unless the URL says
/// `heartbeat=SECS`: a consumer killed while it held messages gives them back after this long.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// How long one command may take to answer (not counting a blocking command's own wait), unless the URL
/// says `timeout=SECS`. A server that answers nothing for this long counts as a dropped connection.
pub(crate) const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause between two reconnection attempts; the pause doubles in between.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// A pause between reconnection attempts looks at the handle's interrupter this often.
const INTERRUPT_POLL: Duration = Duration::from_millis(10);

/// How long [`Link::call`] keeps reconnecting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// The endpoint's `reconnect` time, cut short by the handle's [`Interrupter`]: every operation a
    /// caller asked for, opening included.
    Reconnect,
    /// This long, whatever the interrupter says: what a handle does as it goes away (giving messages
    /// back), and the producer heartbeat's own connection.
    Fixed(Duration),
}

/// Why [`Link::call`] gave up.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The handle's [`Interrupter`] was used while the connection was being re-established; the error
    /// says so, for operations that have no `Interrupted` outcome of their own.
    Interrupted(Error),
    /// The server stayed unreachable for the whole budget, or answered with an error.
    Failed(Error),
}

impl From<Halt> for Error {
    fn from(h: Halt) -> Error {
        match h {
            Halt::Interrupted(e) | Halt::Failed(e) => e,
        }
    }
}

impl From<Halt> for PopError {
    fn from(h: Halt) -> PopError {
        match h {
            Halt::Interrupted(_) => PopError::Interrupted,
            Halt::Failed(e) => PopError::Failed(e),
        }
    }
}

/// The server or cluster a URL names.
enum Target {
    Single(redis::Client),
    Cluster(Vec<String>),
}

/// What a Redis URL names, with the backend's settings from its query string. Shared by every connection
/// of one handle (its own, and its producer's heartbeat thread's).
pub(crate) struct Endpoint {
    target: Target,
    /// The URL as given, its password hidden: for messages.
    pub shown: String,
    pub heartbeat: Duration,
    pub reconnect_for: Duration,
    pub io_timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Whether `url` names a Redis server or cluster (rather than the shared-memory backend).
pub(crate) fn is_redis_url(url: &str) -> bool {
    ["redis://", "rediss://", "redis+cluster://", "redis+unix://", "unix://"].iter().any(|s| url.starts_with(s))
}

/// `url` with the password of its user-info part replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

fn parse_secs(url: &str, key: &str, value: &str) -> Result<Duration, Error> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(url, format!("{key}={value} is not a positive number of seconds")))
}

fn invalid(url: &str, reason: impl Into<String>) -> Error {
    Error::InvalidUrl { url: redact(url), reason: reason.into() }
}

impl Endpoint {
    /// Parses `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, `redis+unix:///PATH` or
    /// `redis+cluster://HOST:PORT[,HOST:PORT…]`, each with an optional query string of the backend's own
    /// settings (`heartbeat`, `reconnect`, `timeout`, in seconds); other query parameters go to the client.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, Error> {
        if url.starts_with("rediss://") {
            return Err(invalid(
                url,
                "TLS (rediss://) is not compiled into this build; use redis:// through a TLS tunnel",
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut ep = Endpoint {
            target: Target::Cluster(Vec::new()),
            shown: redact(url),
            heartbeat: DEFAULT_HEARTBEAT,
            reconnect_for: DEFAULT_RECONNECT_FOR,
            io_timeout: DEFAULT_IO_TIMEOUT,
        };
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "heartbeat" => ep.heartbeat = parse_secs(url, k, v)?,
                "reconnect" => ep.reconnect_for = parse_secs(url, k, v)?,
                "timeout" => ep.io_timeout = parse_secs(url, k, v)?,
                _ => passed.push(pair),
            }
        }
        let rest = if passed.is_empty() { String::new() } else { format!("?{}", passed.join("&")) };
        let client_err = |e: RedisError| invalid(url, e.to_string());
        if let Some(nodes) = base.strip_prefix("redis+cluster://") {
            let (auth, hosts) = match nodes.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), nodes),
            };
            let hosts = hosts.trim_end_matches('/');
            if hosts.is_empty() || hosts.split(',').any(|h| h.is_empty() || h.contains('/')) {
                return Err(invalid(
                    url,
                    "a cluster URL lists its nodes as HOST:PORT[,HOST:PORT…], without a database",
                ));
            }
            let seeds: Vec<String> = hosts.split(',').map(|h| format!("redis://{auth}{h}{rest}")).collect();
            // Checked now, so that a bad node address is a usage error rather than a connection failure.
            redis::cluster::ClusterClient::new(seeds.clone()).map_err(client_err)?;
            ep.target = Target::Cluster(seeds);
        } else {
            ep.target = Target::Single(redis::Client::open(format!("{base}{rest}")).map_err(client_err)?);
        }
        Ok(ep)
    }

    fn connect(&self) -> RedisResult<Conn> {
        let t = Some(self.io_timeout);
        match &self.target {
            Target::Single(client) => {
                let c = client.get_connection_with_timeout(self.io_timeout)?;
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Ok(Conn::Single(c))
            }
            Target::Cluster(seeds) => {
                let c = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(self.io_timeout)
                    .response_timeout(self.io_timeout)
                    // Redirections and a moving slot are retried here; a lost node is this module's business.
                    .retries(3)
                    .build()?
                    .get_connection()?;
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Ok(Conn::Cluster(Box::new(c)))
            }
        }
    }

    /// Whether the target is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }
}

enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }

    /// Sets how long a reply may take: longer than a blocking command's own wait while it runs.
    fn set_read_timeout(&self, d: Duration) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.set_read_timeout(Some(d)),
            Conn::Cluster(c) => c.set_read_timeout(Some(d)),
        }
    }
}

/// Whether `e` means the connection (or the server behind it) is gone or not serving for now, so that the
/// operation may succeed on a new connection a little later: I/O errors and timeouts, a server still
/// loading its data after a restart, a cluster moving slots or electing a primary, a primary demoted to
/// replica.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Parse
                | ErrorKind::Server(S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly)
        )
}

/// One handle's connection, opened on first use and again after it drops.
pub(crate) struct Link {
    pub ep: std::sync::Arc<Endpoint>,
    conn: Option<Conn>,
    /// Small generator for the backoff's jitter.
    jitter: u64,
    /// The handle's interrupter: stops a reconnection between two attempts.
    stop: Interrupter,
}

impl Link {
    pub(crate) fn new(ep: std::sync::Arc<Endpoint>, stop: Interrupter) -> Link {
        Link { ep, conn: None, jitter: crate::remote::random_u64() | 1, stop }
    }

    fn pause(&mut self, step: u32) -> Duration {
        // xorshift: decorrelates handles that lost the same server at the same moment.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = BACKOFF_FIRST.saturating_mul(1 << step.min(10)).min(BACKOFF_MAX);
        base / 2 + base.mul_f64((self.jitter % 1000) as f64 / 2000.0)
    }

    /// Runs `f` on the connection, opening it first if needed. A transient failure drops the connection
    /// and runs `f` again on a new one, with backoff, for as long as `budget` says; then, or on any other
    /// error, fails with [`Error::Remote`] saying what `op` was. With [`Budget::Reconnect`], the handle's
    /// interrupter stops the reconnection at its next pause ([`Halt::Interrupted`]); a working connection
    /// is used whatever the interrupter says, as a local deque's operations that need not wait are.
    pub(crate) fn call<T>(
        &mut self,
        name: &str,
        op: &'static str,
        budget: Budget,
        mut f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, Halt> {
        let (limit, interruptible) = match budget {
            Budget::Reconnect => (self.ep.reconnect_for, true),
            Budget::Fixed(d) => (d, false),
        };
        let mut first_failure: Option<Instant> = None;
        let mut step = 0;
        loop {
            let e = match self.attempt(&mut f) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !is_transient(&e) {
                return Err(Halt::Failed(self.failure(name, op, &e, None)));
            }
            self.conn = None;
            let since = *first_failure.get_or_insert_with(Instant::now);
            if since.elapsed() >= limit {
                return Err(Halt::Failed(self.failure(name, op, &e, Some(limit))));
            }
            let pause = self.pause(step).min(limit.saturating_sub(since.elapsed()));
            if !interruptible {
                std::thread::sleep(pause);
            } else if !self.nap(pause) {
                let reason = format!("interrupted while reconnecting to {} (last error: {e})", self.ep.shown);
                return Err(Halt::Interrupted(Error::Remote { name: name.to_owned(), op, reason }));
            }
            step += 1;
        }
    }

    /// Sleeps `d`, looking at the interrupter every [`INTERRUPT_POLL`]; `false` if it was used.
    fn nap(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stop.is_interrupted() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(INTERRUPT_POLL));
        }
    }

    /// Runs `f` once. `Ok(None)`: the connection dropped (it is closed now; the next [`call`](Self::call)
    /// reconnects), and whether `f` took effect on the server is unknown.
    pub(crate) fn call_once<T>(
        &mut self,
        name: &str,
        op: &'static str,
        read_timeout: Duration,
        mut f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<Option<T>, Error> {
        if self.conn.is_none() {
            return Ok(None);
        }
        let conn = self.conn.as_mut().expect("checked above");
        let r = conn.set_read_timeout(read_timeout).and_then(|()| f(conn.as_dyn()));
        let r = r.and_then(|v| conn.set_read_timeout(self.ep.io_timeout).map(|()| v));
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_transient(&e) => {
                self.conn = None;
                Ok(None)
            }
            Err(e) => Err(self.failure(name, op, &e, None)),
        }
    }

    fn attempt<T>(&mut self, f: &mut impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>) -> RedisResult<T> {
        if self.conn.is_none() {
            self.conn = Some(self.ep.connect()?);
        }
        f(self.conn.as_mut().expect("connected above").as_dyn())
    }

    fn failure(&self, name: &str, op: &'static str, e: &RedisError, gave_up_after: Option<Duration>) -> Error {
        use redis::{ErrorKind, ServerErrorKind as S};
        let hint = match e.kind() {
            ErrorKind::Server(S::Moved | S::Ask) if !self.ep.is_cluster() => {
                "; the server is part of a Redis Cluster: use a redis+cluster:// URL"
            }
            ErrorKind::Server(S::CrossSlot) => "; the deque's keys were spread over slots",
            ErrorKind::AuthenticationFailed | ErrorKind::Server(S::NoPerm) => {
                "; check the user and password in the URL and the user's ACL"
            }
            _ => "",
        };
        let reason = match gave_up_after {
            Some(d) => format!(
                "no answer from {} for {} despite reconnecting (last error: {e}); check that the server is running \
                 and reachable",
                self.ep.shown,
                crate::remote::secs(d)
            ),
            None => format!("{e} (server {}){hint}", self.ep.shown),
        };
        Error::Remote { name: name.to_owned(), op, reason }
    }
}
