//! Every error the crate returns.
//!
//! The families follow crossbeam-channel's split of errors by operation, and each operation's error type
//! carries only the variants it can return:
//!
//! * [`Error`]: opening, creating, removing and inspecting a deque, and the failures that any operation can
//!   run into (a corrupted segment, an OS error).
//! * [`PushError<T>`]: a push of bytes ([`RawDeque`](crate::RawDeque)) that did not happen. It always hands
//!   the message back, so nothing the caller still owns is lost.
//! * [`PopError`]: a pop of bytes that returned no message.
//! * [`TypedPushError<T>`] and [`TypedPopError`]: the same for [`SharedDeque<T>`](crate::SharedDeque), plus
//!   what only typed messages can meet: a value that does not encode, and a message that does not decode as
//!   `T` (removed all the same, so its raw bytes come back in [`TypedPopError::Decode`] rather than being
//!   dropped).
//!
//! Each variant's documentation says what happened and what the caller can do about it.

use std::fmt;
use std::io;
use std::time::Duration;

/// The methods and the `Debug` of an error that carries the pushed value in every variant: `$plain` variants
/// hold it alone, `$named` ones in a `value` field next to the listed fields. Written once for
/// [`PushError`] and [`TypedPushError`], so that the two cannot drift.
macro_rules! value_carrying {
    ($ty:ident, [$($plain:ident),*], [$($named:ident { $($field:ident),* }),*]) => {
        impl<T> $ty<T> {
            /// Takes the message back out of the error.
            pub fn into_inner(self) -> T {
                match self {
                    $($ty::$plain(value) => value,)*
                    $($ty::$named { value, .. } => value,)*
                }
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Full`].")]
            pub fn is_full(&self) -> bool {
                matches!(self, $ty::Full(_))
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Closed`].")]
            pub fn is_closed(&self) -> bool {
                matches!(self, $ty::Closed(_))
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Timeout`].")]
            pub fn is_timeout(&self) -> bool {
                matches!(self, $ty::Timeout(_))
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Interrupted`].")]
            pub fn is_interrupted(&self) -> bool {
                matches!(self, $ty::Interrupted(_))
            }

            /// Replaces the message carried by the error, keeping the reason.
            pub fn map<U>(self, f: impl FnOnce(T) -> U) -> $ty<U> {
                match self {
                    $($ty::$plain(value) => $ty::$plain(f(value)),)*
                    $($ty::$named { value, $($field),* } => $ty::$named { value: f(value), $($field),* },)*
                }
            }
        }

        // The message itself is left out so that `T` needs no `Debug` bound and `unwrap()` works on any push.
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$plain(_) => f.write_str(concat!(stringify!($plain), "(..)")),)*
                    $($ty::$named { $($field,)* .. } => {
                        f.debug_struct(stringify!($named)) $(.field(stringify!($field), $field))* .finish_non_exhaustive()
                    })*
                }
            }
        }
    };
}

/// The predicates of an error of a pop, one per outcome that is not a failure. Written once for
/// [`PopError`] and [`TypedPopError`], so that the two cannot drift.
macro_rules! pop_outcomes {
    ($ty:ident) => {
        impl $ty {
            #[doc = concat!("True for [`", stringify!($ty), "::Empty`].")]
            pub fn is_empty(&self) -> bool {
                matches!(self, $ty::Empty)
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Timeout`].")]
            pub fn is_timeout(&self) -> bool {
                matches!(self, $ty::Timeout)
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Closed`].")]
            pub fn is_closed(&self) -> bool {
                matches!(self, $ty::Closed)
            }

            #[doc = concat!("True for [`", stringify!($ty), "::ProducersGone`].")]
            pub fn is_producers_gone(&self) -> bool {
                matches!(self, $ty::ProducersGone)
            }

            #[doc = concat!("True for [`", stringify!($ty), "::Interrupted`].")]
            pub fn is_interrupted(&self) -> bool {
                matches!(self, $ty::Interrupted)
            }
        }
    };
}

/// Errors from opening, creating, removing or inspecting a deque, and failures shared by all operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No deque with this name exists. Create it first, or open with [`CreateMode::OpenOrCreate`].
    ///
    /// [`CreateMode::OpenOrCreate`]: crate::CreateMode::OpenOrCreate
    #[error("deque '{name}' does not exist; create it first or open it with open-or-create")]
    NotFound {
        /// The name that was looked up.
        name: String,
    },

    /// A segment with this name already exists. Open it instead, or remove it with [`remove`](crate::remove).
    #[error("deque '{name}' already exists; open it instead, or remove it first")]
    AlreadyExists {
        /// The name that was taken.
        name: String,
    },

    /// The name cannot be used for a shared-memory segment.
    #[error("invalid deque name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (lossily converted if it was not UTF-8).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A builder setting is out of range (zero capacity, a slot too small to hold a length, a segment whose
    /// size overflows).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The segment exists but is not a shmdeque segment (its magic number is wrong).
    #[error("'{name}' is not a shmdeque segment (wrong magic number); pick another name or remove it")]
    NotADeque {
        /// The segment's name.
        name: String,
    },

    /// The segment was created by a version of shmdeque with another segment layout.
    #[error(
        "deque '{name}' uses segment layout version {found}, this build understands version {expected}; \
         use a matching shmdeque build or remove and recreate the deque"
    )]
    VersionMismatch {
        /// The segment's name.
        name: String,
        /// The layout version found in the segment.
        found: u32,
        /// The layout version this build writes and reads.
        expected: u32,
    },

    /// The deque exists with another capacity or slot size than the one explicitly requested.
    #[error(
        "deque '{name}' exists with capacity {capacity} and slot size {slot_size}, \
         but capacity {requested_capacity} and slot size {requested_slot_size} were requested; \
         drop the explicit sizes to use it as it is, or remove it first"
    )]
    GeometryMismatch {
        /// The segment's name.
        name: String,
        /// The existing capacity.
        capacity: u32,
        /// The existing slot size.
        slot_size: u32,
        /// The capacity that was asked for.
        requested_capacity: u32,
        /// The slot size that was asked for.
        requested_slot_size: u32,
    },

    /// The segment is still being initialized by its creator after the open timeout.
    #[error(
        "deque '{name}' was still being created after {waited:?}; \
         retry, raise the open timeout, or remove it if its creator is stuck"
    )]
    NotReady {
        /// The segment's name.
        name: String,
        /// How long the opener waited.
        waited: Duration,
    },

    /// The process that was creating the segment died before finishing; nobody can use it as it is.
    #[error(
        "deque '{name}' was abandoned half-created by process {pid}; \
         remove it (`shmdeque remove {name}`) or open it with open-or-create to take it over"
    )]
    Abandoned {
        /// The segment's name.
        name: String,
        /// The creator's process id, or 0 when the creator died before recording it.
        pid: u32,
    },

    /// There is not enough free memory in the shared-memory file system for the segment.
    #[error(
        "not enough space in /dev/shm for deque '{name}' ({bytes} bytes needed); \
         free space there or choose a smaller capacity or slot size"
    )]
    NoSpace {
        /// The segment's name.
        name: String,
        /// The segment size that could not be reserved.
        bytes: u64,
    },

    /// The segment belongs to another user or its mode forbids this process to use it.
    #[error("permission denied for deque '{name}'; run as its owner or create it with a wider --mode")]
    PermissionDenied {
        /// The segment's name.
        name: String,
    },

    /// [`remove`](crate::remove) was asked to remove a file of `/dev/shm` that is not a deque: it belongs to
    /// another program. Check the name; [`remove_forced`](crate::remove_forced) (`--force` in the tool)
    /// removes it all the same.
    #[error(
        "'{name}' in /dev/shm is not a deque but another program's data; not removed (use --force to remove it anyway)"
    )]
    ForeignSegment {
        /// The segment's name.
        name: String,
    },

    /// The segment belongs to another user, whom this opener did not say it trusts. Whoever owns a segment
    /// can rewrite what this process reads and writes there; a name in world-writable `/dev/shm` may have
    /// been created by anyone first. Trust the owner explicitly if that is intended
    /// ([`Builder::trust_owner`](crate::Builder::trust_owner), `--trust-owner` in the tools), or remove the
    /// segment and create it again.
    #[error(
        "deque '{name}' belongs to user {owner}, not to this process's user {user}; \
         open it with --trust-owner {owner} (Builder::trust_owner) if you trust that user, or remove it"
    )]
    UntrustedOwner {
        /// The segment's name.
        name: String,
        /// The user id that owns the segment file.
        owner: u32,
        /// This process's effective user id.
        user: u32,
    },

    /// The segment's contents break an invariant (an index or a length out of range). The segment was
    /// overwritten by something other than shmdeque; its messages can no longer be trusted.
    #[error("deque '{name}' is corrupted: {what}; remove it and create it again")]
    Corrupted {
        /// The segment's name.
        name: String,
        /// Which invariant was broken.
        what: String,
    },

    /// The calling thread already holds this deque's lock (through a [`LockGuard`](crate::LockGuard) or
    /// [`RawLockGuard`](crate::RawLockGuard)); use that guard's methods, or drop it first.
    #[error("this thread already holds the lock of deque '{name}'; use the guard's methods or drop it first")]
    AlreadyLocked {
        /// The segment's name.
        name: String,
    },

    /// Every registration in the header is taken by a live handle or producer, so no more handles can open
    /// the deque.
    #[error("deque '{name}' already has {max} open handles and producers; close some first")]
    TooManyHandles {
        /// The segment's name.
        name: String,
        /// How many handles and producers a deque can register.
        max: usize,
    },

    /// Every registration in the header is taken by a live handle or producer, so no more producers can
    /// register.
    #[error("deque '{name}' already has {max} open handles and producers; wait for a producer to leave")]
    TooManyProducers {
        /// The segment's name.
        name: String,
        /// How many handles and producers a deque can register.
        max: usize,
    },

    /// A URL given for a deque (a Redis server or cluster) cannot be used.
    #[error("invalid deque URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given, its password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An operation on a deque in Redis failed: the server stayed unreachable longer than the reconnection
    /// time, or answered with an error (say which in `reason`). Only the Redis backend (cargo feature
    /// `redis`) returns it.
    #[error("{op} failed for deque '{name}' on Redis: {reason}")]
    Remote {
        /// The deque's name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// What went wrong, and where.
        reason: String,
    },

    /// A system call failed for a reason not covered above.
    #[error("{op} failed for deque '{name}': {source}")]
    Os {
        /// The segment's name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why a push of bytes did not happen. Every variant hands the message back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The deque is full (only from the `try_` forms). Retry later or use a blocking push.
    #[error("the deque is full")]
    Full(T),
    /// The deque stayed full until the timeout (only from the `_timeout` and `_deadline` forms).
    #[error("timed out waiting for room in the deque")]
    Timeout(T),
    /// The deque is closed; no more messages can be pushed.
    #[error("the deque is closed")]
    Closed(T),
    /// The handle's [`Interrupter`](crate::Interrupter) was used while the push waited for room.
    #[error("interrupted while waiting for room in the deque")]
    Interrupted(T),
    /// The message is larger than a slot's payload; the deque is unchanged. Use a deque with a larger slot
    /// size, or split the message.
    #[error("message of {len} bytes is larger than the slot payload of {max} bytes")]
    TooLarge {
        /// The message.
        value: T,
        /// Its length in bytes.
        len: usize,
        /// The largest payload a slot holds.
        max: usize,
    },
    /// The push failed for a reason that concerns the deque rather than the message.
    #[error("{error}")]
    Failed {
        /// The message.
        value: T,
        /// The underlying error.
        #[source]
        error: Error,
    },
}

value_carrying!(PushError, [Full, Timeout, Closed, Interrupted], [TooLarge { len, max }, Failed { error }]);

/// Why a pop of bytes returned no message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// The deque is empty (only from the `try_` forms). Retry later or use a blocking pop.
    #[error("the deque is empty")]
    Empty,
    /// The deque stayed empty until the timeout (only from the `_timeout` and `_deadline` forms).
    #[error("timed out waiting for a message")]
    Timeout,
    /// The deque is closed and every message has been popped.
    #[error("the deque is closed and drained")]
    Closed,
    /// The deque is empty and every producer that registered ([`RawDeque::register_producer`]) died without
    /// leaving: the stream ended without a close, as a pipe's reader sees end-of-file when its writer dies.
    /// Only blocking pops say so (a `try_` pop says `Empty`), within about a second of the last producer's
    /// death; a producer that registers again resumes the stream. Deques whose producers never register
    /// never report it. The Redis backend reports it too, once every registered producer's heartbeat has
    /// expired without its leaving (its process died, or lost the server).
    ///
    /// [`RawDeque::register_producer`]: crate::RawDeque::register_producer
    #[error("every producer of the deque died without closing it")]
    ProducersGone,
    /// The handle's [`Interrupter`](crate::Interrupter) was used while the pop waited for a message.
    #[error("interrupted while waiting for a message")]
    Interrupted,
    /// The pop failed for a reason that concerns the deque itself.
    #[error(transparent)]
    Failed(#[from] Error),
}

pop_outcomes!(PopError);

/// Why a push of a typed value ([`SharedDeque<T>`](crate::SharedDeque)) did not happen: a [`PushError`], or a
/// value that does not encode. Every variant hands the value back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TypedPushError<T> {
    /// The deque is full (only from the `try_` forms). Retry later or use a blocking push.
    #[error("the deque is full")]
    Full(T),
    /// The deque stayed full until the timeout (only from the `_timeout` and `_deadline` forms).
    #[error("timed out waiting for room in the deque")]
    Timeout(T),
    /// The deque is closed; no more messages can be pushed.
    #[error("the deque is closed")]
    Closed(T),
    /// The handle's [`Interrupter`](crate::Interrupter) was used while the push waited for room.
    #[error("interrupted while waiting for room in the deque")]
    Interrupted(T),
    /// The encoded value is larger than a slot's payload; the deque is unchanged. Use a deque with a larger
    /// slot size, or send smaller values.
    #[error("message of {len} bytes is larger than the slot payload of {max} bytes")]
    TooLarge {
        /// The value.
        value: T,
        /// Its encoded length in bytes.
        len: usize,
        /// The largest payload a slot holds.
        max: usize,
    },
    /// The value could not be serialized.
    #[error("could not encode the message: {reason}")]
    Encode {
        /// The value.
        value: T,
        /// What the encoder said.
        reason: String,
    },
    /// The push failed for a reason that concerns the deque rather than the value.
    #[error("{error}")]
    Failed {
        /// The value.
        value: T,
        /// The underlying error.
        #[source]
        error: Error,
    },
}

value_carrying!(
    TypedPushError,
    [Full, Timeout, Closed, Interrupted],
    [TooLarge { len, max }, Encode { reason }, Failed { error }]
);

impl<T> From<PushError<T>> for TypedPushError<T> {
    fn from(e: PushError<T>) -> Self {
        match e {
            PushError::Full(v) => TypedPushError::Full(v),
            PushError::Timeout(v) => TypedPushError::Timeout(v),
            PushError::Closed(v) => TypedPushError::Closed(v),
            PushError::Interrupted(v) => TypedPushError::Interrupted(v),
            PushError::TooLarge { value, len, max } => TypedPushError::TooLarge { value, len, max },
            PushError::Failed { value, error } => TypedPushError::Failed { value, error },
        }
    }
}

/// Why a pop of a typed value returned no value: a [`PopError`], or a message that does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedPopError {
    /// The deque is empty (only from the `try_` forms). Retry later or use a blocking pop.
    #[error("the deque is empty")]
    Empty,
    /// The deque stayed empty until the timeout (only from the `_timeout` and `_deadline` forms).
    #[error("timed out waiting for a message")]
    Timeout,
    /// The deque is closed and every message has been popped.
    #[error("the deque is closed and drained")]
    Closed,
    /// As [`PopError::ProducersGone`].
    #[error("every producer of the deque died without closing it")]
    ProducersGone,
    /// The handle's [`Interrupter`](crate::Interrupter) was used while the pop waited for a message.
    #[error("interrupted while waiting for a message")]
    Interrupted,
    /// A message was removed from the deque but is not a valid encoding of the requested type (a peek leaves
    /// it in place). Its bytes are here, so it is not lost.
    #[error("a message of {} bytes could not be decoded: {reason}", bytes.len())]
    Decode {
        /// The message exactly as it was stored.
        bytes: Vec<u8>,
        /// What the decoder said.
        reason: String,
    },
    /// The pop failed for a reason that concerns the deque itself.
    #[error(transparent)]
    Failed(#[from] Error),
}

pop_outcomes!(TypedPopError);

impl From<PopError> for TypedPopError {
    fn from(e: PopError) -> Self {
        match e {
            PopError::Empty => TypedPopError::Empty,
            PopError::Timeout => TypedPopError::Timeout,
            PopError::Closed => TypedPopError::Closed,
            PopError::ProducersGone => TypedPopError::ProducersGone,
            PopError::Interrupted => TypedPopError::Interrupted,
            PopError::Failed(e) => TypedPopError::Failed(e),
        }
    }
}
