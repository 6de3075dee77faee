//! A bounded deque of messages shared between processes through POSIX shared memory.
//!
//! A named segment holds a header — with a lock that survives its holder's death — followed by a fixed ring of
//! equal slots. Any process that knows the name can push and pop at both ends; blocked processes sleep on
//! futexes in the header. The design goal is that a process killed at any instant, even while holding the
//! lock or while blocked, never wedges or corrupts the deque for the others.
//!
//! * [`SharedDeque<T>`]: typed messages (serde + bincode).
//! * [`RawDeque`]: byte messages, including in-place reads and writes for large messages.
//! * [`Builder`]: name, capacity, slot size, mode, creation mode, open timeout.
//!
//! Operations follow `VecDeque`'s names — push and pop, front and back, one message, many (`_many`) or in
//! place (`_with`) — each in crossbeam-channel's four forms: `try_push_back` returns at once, `push_back`
//! blocks, `push_back_timeout` and `push_back_deadline` block up to a duration or an instant. Arguments come
//! in one order everywhere: the data, then the timeout or deadline, then a closure. See [`RawDeque`] for the
//! whole grid. Raw operations fail with [`PushError`] and [`PopError`]; typed ones with
//! [`TypedPushError`] and [`TypedPopError`], which add what only typed values can meet (encoding and
//! decoding). Every failed push hands the message back.
//!
//! With the cargo feature `async`, every blocking operation also comes as `x_async` and
//! `x_deadline_async` (`pop_front_async`, `push_back_many_async`, ...): futures for any executor, woken by
//! one reactor thread per process instead of blocking a thread, with the same results and errors, and
//! "Cancel safety" documented per method.
//!
//! ```
//! # let name = format!("doc-crate-{}", std::process::id());
//! use std::time::Duration;
//!
//! // Any process can open the same name; the first one creates it.
//! let q = shmdeque::Builder::new(&name).capacity(64).slot_size(128).open::<String>()?;
//! q.push_back("hello".to_string())?;
//! assert_eq!(q.pop_front_timeout(Duration::from_secs(1))?, "hello");
//! q.close()?;
//! assert!(q.pop_front().unwrap_err().is_closed());
//! drop(q); // the last handle of a closed, drained deque removes it
//! # assert!(shmdeque::remove(&name).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Linux only: the OS-specific parts (futexes, open file description locks, /dev/shm) live in one private
//! module. How
//! the deque works inside is in `docs/DESIGN.md`; what survives which failure, in `docs/GUARANTEES.md`.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "async")]
mod asynchronous;
mod codec;
mod deque;
mod err;
mod grid;
mod guard;
mod layout;
mod lock;
mod ops;
mod os;
mod raw;
#[cfg(feature = "async")]
mod reactor;
mod registry;
#[cfg(feature = "redis")]
mod remote;
mod ring;
mod segment;
mod tuning;
mod wait;

use std::time::Duration;

pub use deque::{LockGuard, SharedDeque};
pub use err::{Error, PopError, PushError, TypedPopError, TypedPushError};
pub use guard::RawLockGuard;
pub use raw::{Producer, RawDeque};
#[cfg(feature = "redis")]
pub use remote::{
    AnyDeque, AnyProducer, AnySharedDeque, REDIS_LAYOUT_VERSION, REDIS_WAIT_SLICE, RedisDeque, RedisProducer,
    RedisStats, Taken, list_redis, remove_at, remove_redis,
};
pub use wait::{Interrupter, WaitStrategy};

/// The segment layout version this build reads and writes.
pub const LAYOUT_VERSION: u32 = layout::LAYOUT_VERSION;
/// Capacity used when the builder is given none.
pub const DEFAULT_CAPACITY: u32 = 1024;
/// Slot size used when the builder is given none.
pub const DEFAULT_SLOT_SIZE: u32 = 4096;
/// Bytes of each slot taken by the message length; a slot of `s` bytes carries messages of up to `s - 4`.
pub const SLOT_OVERHEAD: usize = layout::SLOT_LEN_BYTES;

/// What [`Builder::open`] does about an existing or missing segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CreateMode {
    /// Create a new deque; fail with [`Error::AlreadyExists`] if the name is taken.
    CreateExclusive,
    /// Open an existing deque; fail with [`Error::NotFound`] if there is none.
    Open,
    /// Open the deque if it exists, create it otherwise. A segment abandoned half-created by a dead process
    /// is taken over.
    #[default]
    OpenOrCreate,
}

/// Everything the builder collected; passed down to the segment code.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub name: String,
    pub capacity: u32,
    pub slot_size: u32,
    pub explicit_capacity: bool,
    pub explicit_slot_size: bool,
    pub mode: u32,
    pub create_mode: CreateMode,
    pub open_timeout: Duration,
    /// Users other than this process's whose segments may be opened.
    pub trusted_owners: Vec<u32>,
    pub wait_strategy: WaitStrategy,
}

/// Configures and opens a deque.
///
/// # Examples
///
/// ```
/// use shmdeque::{Builder, CreateMode};
/// use std::time::Duration;
/// # let name = format!("doc-builder-{}", std::process::id());
/// let q = Builder::new(&name)
///     .capacity(256)
///     .slot_size(1024)
///     .mode(0o660)
///     .create_mode(CreateMode::CreateExclusive)
///     .open_timeout(Duration::from_secs(1))
///     .open_raw()?;
/// assert_eq!((q.capacity(), q.max_message_len()), (256, 1020));
/// # shmdeque::remove(&name)?;
/// # Ok::<(), shmdeque::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    cfg: Config,
}

impl Builder {
    /// Starts a configuration for the deque called `name`: the segment `/dev/shm/NAME`. A name is 1 to 254
    /// bytes, without `/` or NUL.
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            cfg: Config {
                name: name.into(),
                capacity: DEFAULT_CAPACITY,
                slot_size: DEFAULT_SLOT_SIZE,
                explicit_capacity: false,
                explicit_slot_size: false,
                mode: 0o600,
                create_mode: CreateMode::default(),
                open_timeout: Duration::from_secs(2),
                trusted_owners: Vec::new(),
                wait_strategy: WaitStrategy::default(),
            },
        }
    }

    /// Maximum number of messages (default 1024). When opening an existing deque, a capacity given here must
    /// match it ([`Error::GeometryMismatch`] otherwise).
    pub fn capacity(mut self, capacity: u32) -> Builder {
        self.cfg.capacity = capacity;
        self.cfg.explicit_capacity = true;
        self
    }

    /// Bytes per slot, including [`SLOT_OVERHEAD`] bytes of length (default 4096, at least 8). Checked
    /// against an existing deque like [`capacity`](Self::capacity).
    pub fn slot_size(mut self, slot_size: u32) -> Builder {
        self.cfg.slot_size = slot_size;
        self.cfg.explicit_slot_size = true;
        self
    }

    /// Permission bits of a newly created segment (default `0o600`: the creating user only).
    pub fn mode(mut self, mode: u32) -> Builder {
        self.cfg.mode = mode & 0o777;
        self
    }

    /// Whether to create, open, or either (default [`CreateMode::OpenOrCreate`]).
    pub fn create_mode(mut self, mode: CreateMode) -> Builder {
        self.cfg.create_mode = mode;
        self
    }

    /// Also opens segments that belong to user `uid` (by default only segments of this process's own
    /// effective user are opened). Whoever owns a segment can rewrite what this process reads and writes
    /// there, and a predictable name in world-writable `/dev/shm` may have been created by anyone first:
    /// trust another user only if that user may influence this process anyway. Call it once per user.
    ///
    /// # Examples
    ///
    /// ```
    /// // A service running as root that consumes a deque its unprivileged producer (uid 1000) creates.
    /// let b = shmdeque::Builder::new("jobs").create_mode(shmdeque::CreateMode::Open).trust_owner(1000);
    /// # let _ = b;
    /// ```
    pub fn trust_owner(mut self, uid: u32) -> Builder {
        self.cfg.trusted_owners.push(uid);
        self
    }

    /// How long an opener waits for a segment that another process is still creating (default 2 s).
    pub fn open_timeout(mut self, timeout: Duration) -> Builder {
        self.cfg.open_timeout = timeout;
        self
    }

    /// How this handle's blocking operations wait for room or for a message (default
    /// [`WaitStrategy::Adaptive`]): a choice of latency against CPU, per handle; see [`WaitStrategy`].
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Builder {
        self.cfg.wait_strategy = strategy;
        self
    }

    /// Opens (or creates) the deque for typed messages.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidConfig`], [`Error::NotFound`], [`Error::AlreadyExists`],
    /// [`Error::NotADeque`], [`Error::VersionMismatch`], [`Error::GeometryMismatch`], [`Error::NotReady`],
    /// [`Error::Abandoned`], [`Error::NoSpace`], [`Error::PermissionDenied`], [`Error::Corrupted`],
    /// [`Error::Os`].
    pub fn open<T: serde::Serialize + serde::de::DeserializeOwned>(&self) -> Result<SharedDeque<T>, Error> {
        SharedDeque::attach(&self.cfg)
    }

    /// Opens (or creates) the deque for byte messages.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_raw(&self) -> Result<RawDeque, Error> {
        RawDeque::attach(&self.cfg)
    }
}

/// A deque's state and counters, from [`RawDeque::stats`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// The deque's name.
    pub name: String,
    /// Maximum number of messages.
    pub capacity: u32,
    /// Bytes per slot, length included.
    pub slot_size: u32,
    /// Messages in the deque now.
    pub len: u32,
    /// Whether the deque is closed.
    pub closed: bool,
    /// Registered producers whose process is alive, in any PID namespace.
    pub producers: u32,
    /// Open handles of live processes, in any PID namespace (a killed process's handles do not count).
    pub attached: u32,
    /// Messages ever pushed.
    pub pushed: u64,
    /// Messages ever removed (popped or cleared).
    pub popped: u64,
    /// Times a process found the lock's previous holder dead and recovered it.
    pub lock_recoveries: u64,
    /// The largest length the deque has reached.
    pub high_water: u64,
    /// Blocked pops of live processes asleep in the kernel waiting for a message.
    pub asleep_for_message: u32,
    /// Blocked pushes of live processes asleep in the kernel waiting for room.
    pub asleep_for_room: u32,
    /// Size of the segment in bytes.
    pub segment_bytes: u64,
    /// Permission bits of the segment.
    pub mode: u32,
}

/// Removes the deque's name. Processes that have it open keep working on it; new opens will not find it.
///
/// # Examples
///
/// ```
/// # let name = format!("doc-remove-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).open_raw()?;
/// shmdeque::remove(&name)?;
/// q.push_back(b"still works")?; // this handle keeps its segment
/// assert!(matches!(shmdeque::remove(&name), Err(shmdeque::Error::NotFound { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Only a deque is removed: a segment whose header carries the deque's magic number (of any layout
/// version, ready or not), or one that is empty or all zeros where the header goes (a creator killed before
/// it wrote the header). Anything else in `/dev/shm` belongs to another program; see [`remove_forced`].
///
/// # Errors
/// [`Error::ForeignSegment`] for a file that is not a deque; [`Error::InvalidName`], [`Error::NotFound`],
/// [`Error::PermissionDenied`], [`Error::Os`].
pub fn remove(name: &str) -> Result<(), Error> {
    segment::check_name(name)?;
    let os_err = |op, e| segment::os_err(name, op, e);
    let fd = os::shm_open(name, false).map_err(|e| os_err("opening the segment", e))?;
    let mut head = vec![0u8; layout::HEADER_SIZE];
    let n = os::read_prefix(&fd, &mut head).map_err(|e| os_err("reading the segment", e))?;
    let ours = n >= 8 && head[..8] == layout::MAGIC.to_le_bytes();
    if !ours && head[..n].iter().any(|&b| b != 0) {
        return Err(Error::ForeignSegment { name: name.to_owned() });
    }
    remove_forced(name)
}

/// Removes the segment `name` whatever it holds, deque or not. Processes that have it open keep working on
/// it.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::Os`].
pub fn remove_forced(name: &str) -> Result<(), Error> {
    segment::check_name(name)?;
    os::shm_unlink(name).map_err(|e| segment::os_err(name, "removing the segment", e))
}

/// Checks a name without touching any segment: the rules every entry point applies.
///
/// # Errors
/// [`Error::InvalidName`] saying what is wrong.
pub fn check_name(name: &str) -> Result<(), Error> {
    segment::check_name(name)
}

/// What [`probe`] found in a segment, read without mapping or locking it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    /// The segment's name.
    pub name: String,
    /// Maximum number of messages.
    pub capacity: u64,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Messages in the deque (a snapshot).
    pub len: u64,
    /// Whether the deque is closed.
    pub closed: bool,
    /// Size of the segment file in bytes.
    pub segment_bytes: u64,
}

/// Reads a segment's header without mapping or locking it, for listing: cheap, and safe on any file.
///
/// Returns `Ok(None)` when the file is not a shmdeque segment at all (its magic number is not ours), and an
/// error saying why when it is one but cannot be used (another layout version, half-created, inconsistent
/// sizes, unreadable).
///
/// # Examples
///
/// ```
/// // List the deques in /dev/shm, as `shmdeque list` does.
/// for name in shmdeque::list_segments()? {
///     match shmdeque::probe(&name) {
///         Ok(Some(p)) => println!("{name}: {} of {} messages", p.len, p.capacity),
///         Ok(None) => {} // not a deque
///         Err(e) => println!("{name}: {e}"),
///     }
/// }
/// # Ok::<(), shmdeque::Error>(())
/// ```
///
/// # Errors
/// [`Error::VersionMismatch`], [`Error::NotReady`], [`Error::Abandoned`], [`Error::Corrupted`],
/// [`Error::PermissionDenied`], [`Error::NotFound`], [`Error::Os`].
pub fn probe(name: &str) -> Result<Option<Probe>, Error> {
    segment::check_name(name)?;
    let os_err = |op, e| segment::os_err(name, op, e);
    let fd = os::shm_open(name, false).map_err(|e| os_err("opening the segment", e))?;
    let info = os::file_info(&fd).map_err(|e| os_err("reading the segment's size", e))?;
    let mut buf = vec![0u8; layout::HEADER_SIZE];
    let n = os::read_prefix(&fd, &mut buf).map_err(|e| os_err("reading the segment", e))?;
    let corrupted = |what: String| Error::Corrupted { name: name.to_owned(), what };
    if n < 8 || buf[..8] != layout::MAGIC.to_le_bytes() {
        return Ok(None);
    }
    let Some(h) = layout::snapshot(&buf[..n]) else {
        return Err(corrupted(format!("it is truncated to {} bytes", info.size)));
    };
    if h.version != layout::LAYOUT_VERSION {
        return Err(Error::VersionMismatch {
            name: name.to_owned(),
            found: h.version,
            expected: layout::LAYOUT_VERSION,
        });
    }
    if h.state != layout::STATE_READY {
        // Abandoned: its creator's lock on the creator byte is gone, and it did not finish just before that
        // (READY comes before the unlock: read the state again after looking at the lock).
        let creator_gone = !os::ofd_held_elsewhere(&fd, layout::CREATOR_LOCK_BYTE)
            && os::read_prefix(&fd, &mut buf)
                .is_ok_and(|n| layout::snapshot(&buf[..n]).is_some_and(|again| again.state != layout::STATE_READY));
        return Err(if creator_gone {
            Error::Abandoned { name: name.to_owned(), pid: h.creator_pid }
        } else {
            Error::NotReady { name: name.to_owned(), waited: Duration::ZERO }
        });
    }
    let expected = layout::check_geometry(h.capacity, h.slot_size).map_err(corrupted)?;
    if expected as u64 != info.size || h.segment_len != info.size {
        return Err(corrupted(format!(
            "header says {} slots of {} bytes but the segment is {} bytes",
            h.capacity, h.slot_size, info.size
        )));
    }
    let (_, len) = layout::unpack_ring(h.ring);
    Ok(Some(Probe {
        name: name.to_owned(),
        capacity: h.capacity,
        slot_size: h.slot_size,
        len: (len as u64).min(h.capacity),
        closed: h.closed != 0,
        segment_bytes: info.size,
    }))
}

/// Names of every shared-memory object visible in /dev/shm, deque or not; pair with [`probe`].
///
/// # Errors
/// [`Error::Os`] if the directory cannot be read.
pub fn list_segments() -> Result<Vec<String>, Error> {
    os::list_names().map_err(|e| Error::Os { name: os::SHM_DIR.to_owned(), op: "listing segments", source: e })
}

// Handles are shared between threads: keep them Send + Sync (a compile error here otherwise).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RawDeque>();
    send_sync::<SharedDeque<std::rc::Rc<u8>>>();
};
