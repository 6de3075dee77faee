//! [`AnyDeque`] and [`AnySharedDeque`]: one handle type for either backend, chosen by URL, so that an
//! application moves from one host to several by changing a URL rather than its calls.
//!
//! Two flavors behind one enum, as crossbeam-channel does with its channel flavors: every method matches
//! on the variant and calls the method of the same name. What only one backend has (the lock guard of
//! shared memory, the reliable take of Redis) stays on that backend's own type, reached by matching.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::grid::byte_grid;
use super::{RedisDeque, RedisProducer, link};
use crate::err::{Error, PopError, PushError, TypedPopError, TypedPushError};
use crate::grid::wait_forms;
use crate::raw::{Producer, RawDeque};
use crate::ring::End;
use crate::wait::{Interrupter, Wait};
use crate::{Builder, SharedDeque, codec};

/// A deque of byte messages on either backend: shared memory on this host, or Redis.
///
/// Opened by [`Builder::open_url`]. Its operations are those that both backends have, with the names,
/// argument order and errors of [`RawDeque`]: push and pop at both ends, one message or many, each in the
/// four forms `try_x` / `x` / `x_timeout` / `x_deadline`. Queries that may need the network return a
/// `Result`. For what only one backend has, match on the variant.
///
/// # Examples
///
/// ```
/// # let name = format!("doc-any-{}", std::process::id());
/// // "shm:" (or "") is this host's shared memory; "redis://host:6379/0" a Redis server.
/// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(64).open_url("shm:")?;
/// q.push_back(b"hello")?;
/// assert_eq!(q.pop_front()?, b"hello");
/// # drop(q);
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyDeque {
    /// A deque in POSIX shared memory on this host.
    Local(RawDeque),
    /// A deque in Redis.
    Redis(RedisDeque),
}

/// Whether `url` names the shared-memory backend: empty, `shm:` or `shm://`.
fn is_local_url(url: &str) -> bool {
    matches!(url, "" | "shm:" | "shm://")
}

fn unknown_scheme(url: &str) -> Error {
    Error::InvalidUrl {
        url: url.to_owned(),
        reason: "the scheme is not one of shm:, redis://, redis+unix://, redis+cluster://".into(),
    }
}

impl Builder {
    /// Opens (or creates) the deque on the backend `url` names: `shm:` (or an empty string) for shared
    /// memory on this host, a `redis://`, `redis+unix://` or `redis+cluster://` URL for Redis (see
    /// [`open_redis`](Self::open_redis)). The builder's settings apply to both.
    ///
    /// # Errors
    /// As [`open_raw`](Self::open_raw) or [`open_redis`](Self::open_redis); [`Error::InvalidUrl`] for any
    /// other scheme.
    pub fn open_url(&self, url: &str) -> Result<AnyDeque, Error> {
        if is_local_url(url) {
            self.open_raw().map(AnyDeque::Local)
        } else if link::is_redis_url(url) {
            self.open_redis(url).map(AnyDeque::Redis)
        } else {
            Err(unknown_scheme(url))
        }
    }

    /// As [`open_url`](Self::open_url), for typed messages.
    ///
    /// # Errors
    /// As [`open_url`](Self::open_url).
    pub fn open_url_typed<T: Serialize + DeserializeOwned>(&self, url: &str) -> Result<AnySharedDeque<T>, Error> {
        let inner = if is_local_url(url) {
            Typed::Local(self.open::<T>()?)
        } else if link::is_redis_url(url) {
            Typed::Redis(self.open_redis(url)?)
        } else {
            return Err(unknown_scheme(url));
        };
        Ok(AnySharedDeque { inner, _type: PhantomData })
    }
}

/// Removes the deque `name` on the backend `url` names (see [`Builder::open_url`]).
///
/// # Errors
/// As [`remove`](crate::remove) or [`remove_redis`](super::remove_redis).
pub fn remove_at(url: &str, name: &str) -> Result<(), Error> {
    if is_local_url(url) {
        crate::remove(name)
    } else if link::is_redis_url(url) {
        super::remove_redis(url, name)
    } else {
        Err(unknown_scheme(url))
    }
}

/// Calls the shared-memory form of an operation that matches `wait`.
macro_rules! local {
    ($q:expr, $wait:expr, $try_fn:ident, $fn:ident, $deadline_fn:ident ($($arg:expr),*) $(, $tail:expr)?) => {
        match $wait {
            Wait::Now => $q.$try_fn($($arg,)* $($tail)?),
            Wait::Forever => $q.$fn($($arg,)* $($tail)?),
            Wait::Until(d) => $q.$deadline_fn($($arg,)* d $(, $tail)?),
        }
    };
}

/// The shared-memory call at `end`: `[front forms] [back forms]`.
macro_rules! local_at {
    ($q:expr, $end:expr, $wait:expr, [$($front:ident),*] [$($back:ident),*] ($($arg:expr),*) $(, $tail:expr)?) => {
        match $end {
            End::Front => local!($q, $wait, $($front),* ($($arg),*) $(, $tail)?),
            End::Back => local!($q, $wait, $($back),* ($($arg),*) $(, $tail)?),
        }
    };
}

impl AnyDeque {
    fn push_one<'m>(&self, end: End, msg: &'m [u8], wait: Wait) -> Result<(), PushError<&'m [u8]>> {
        match self {
            AnyDeque::Local(q) => local_at!(q, end, wait,
                [try_push_front, push_front, push_front_deadline] [try_push_back, push_back, push_back_deadline] (msg)),
            AnyDeque::Redis(q) => q.push_one(end, msg, wait),
        }
    }

    fn push_many<M: AsRef<[u8]>>(&self, end: End, msgs: &[M], wait: Wait) -> Result<usize, PushError<usize>> {
        match self {
            AnyDeque::Local(q) => local_at!(q, end, wait,
                [try_push_front_many, push_front_many, push_front_many_deadline]
                [try_push_back_many, push_back_many, push_back_many_deadline] (msgs)),
            AnyDeque::Redis(q) => q.push_many(end, msgs, wait),
        }
    }

    fn pop_one<R>(&self, end: End, wait: Wait, read: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        match self {
            AnyDeque::Local(q) => local_at!(q, end, wait,
                [try_pop_front_with, pop_front_with, pop_front_with_deadline]
                [try_pop_back_with, pop_back_with, pop_back_with_deadline] (), read),
            AnyDeque::Redis(q) => q.pop_one(end, wait, read),
        }
    }

    fn pop_into(&self, end: End, buf: &mut Vec<u8>, wait: Wait) -> Result<usize, PopError> {
        match self {
            AnyDeque::Local(q) => local_at!(q, end, wait,
                [try_pop_front_into, pop_front_into, pop_front_into_deadline]
                [try_pop_back_into, pop_back_into, pop_back_into_deadline] (buf)),
            AnyDeque::Redis(q) => q.pop_into(end, buf, wait),
        }
    }

    fn pop_vecs(&self, end: End, max: usize, out: &mut Vec<Vec<u8>>, wait: Wait) -> Result<usize, PopError> {
        match self {
            AnyDeque::Local(q) => local_at!(q, end, wait,
                [try_pop_front_many, pop_front_many, pop_front_many_deadline]
                [try_pop_back_many, pop_back_many, pop_back_many_deadline] (max, out)),
            AnyDeque::Redis(q) => q.pop_vecs(end, max, out, wait),
        }
    }

    fn pop_each(&self, end: End, max: usize, read: impl FnMut(&[u8]), wait: Wait) -> Result<usize, PopError> {
        match self {
            AnyDeque::Local(q) => local_at!(q, end, wait,
                [try_pop_front_many_with, pop_front_many_with, pop_front_many_with_deadline]
                [try_pop_back_many_with, pop_back_many_with, pop_back_many_with_deadline] (max), read),
            AnyDeque::Redis(q) => q.pop_each(end, max, read, wait),
        }
    }

    byte_grid! {
        push_errors: "As [`RawDeque::push_back`] and [`RedisDeque::push_back`].",
        pop_errors: "[`PopError::Closed`] once closed and drained; [`PopError::ProducersGone`] once every \
            registered producer is gone without leaving; [`PopError::Interrupted`] once the handle's \
            [interrupter](Self::interrupter) is used while it waits; [`PopError::Failed`].",
    }

    /// A handle on this handle's waits: see [`RawDeque::interrupter`] and [`RedisDeque::interrupter`]
    /// (which also stops a reconnection).
    pub fn interrupter(&self) -> Interrupter {
        match self {
            AnyDeque::Local(q) => q.interrupter(),
            AnyDeque::Redis(q) => q.interrupter(),
        }
    }

    /// The deque's name.
    pub fn name(&self) -> &str {
        match self {
            AnyDeque::Local(q) => q.name(),
            AnyDeque::Redis(q) => q.name(),
        }
    }

    /// How many messages the deque holds at most.
    pub fn capacity(&self) -> usize {
        match self {
            AnyDeque::Local(q) => q.capacity(),
            AnyDeque::Redis(q) => q.capacity(),
        }
    }

    /// Bytes per slot, including [`SLOT_OVERHEAD`](crate::SLOT_OVERHEAD).
    pub fn slot_size(&self) -> usize {
        match self {
            AnyDeque::Local(q) => q.slot_size(),
            AnyDeque::Redis(q) => q.slot_size(),
        }
    }

    /// The largest message, in bytes, that the deque accepts.
    pub fn max_message_len(&self) -> usize {
        match self {
            AnyDeque::Local(q) => q.max_message_len(),
            AnyDeque::Redis(q) => q.max_message_len(),
        }
    }

    /// Number of messages in the deque now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Remote`] (Redis only).
    pub fn len(&self) -> Result<usize, Error> {
        match self {
            AnyDeque::Local(q) => Ok(q.len()),
            AnyDeque::Redis(q) => q.len(),
        }
    }

    /// Whether the deque is empty now.
    ///
    /// # Errors
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Whether the deque has been closed.
    ///
    /// # Errors
    /// [`Error::NotFound`] and [`Error::Remote`] (Redis only).
    pub fn is_closed(&self) -> Result<bool, Error> {
        match self {
            AnyDeque::Local(q) => Ok(q.is_closed()),
            AnyDeque::Redis(q) => q.is_closed(),
        }
    }

    /// A copy of the front message, leaving it in place.
    ///
    /// # Errors
    /// As [`RawDeque::peek_front`] and [`RedisDeque::peek_front`].
    pub fn peek_front(&self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            AnyDeque::Local(q) => q.peek_front(),
            AnyDeque::Redis(q) => q.peek_front(),
        }
    }

    /// A copy of the back message, leaving it in place.
    ///
    /// # Errors
    /// As [`peek_front`](Self::peek_front).
    pub fn peek_back(&self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            AnyDeque::Local(q) => q.peek_back(),
            AnyDeque::Redis(q) => q.peek_back(),
        }
    }

    /// Removes every message; returns how many there were.
    ///
    /// # Errors
    /// As [`RawDeque::clear`] and [`RedisDeque::clear`].
    pub fn clear(&self) -> Result<usize, Error> {
        match self {
            AnyDeque::Local(q) => q.clear(),
            AnyDeque::Redis(q) => q.clear(),
        }
    }

    /// Closes the deque: pushes fail from now on, pops drain what is left and then report `Closed`.
    ///
    /// # Errors
    /// As [`RawDeque::close`] and [`RedisDeque::close`].
    pub fn close(&self) -> Result<(), Error> {
        match self {
            AnyDeque::Local(q) => q.close(),
            AnyDeque::Redis(q) => q.close(),
        }
    }

    /// Registers this process as a producer; see [`RawDeque::register_producer`] and
    /// [`RedisDeque::register_producer`].
    ///
    /// # Errors
    /// As those.
    pub fn register_producer(&self) -> Result<AnyProducer<'_>, Error> {
        Ok(match self {
            AnyDeque::Local(q) => AnyProducer::Local(q.register_producer()?),
            AnyDeque::Redis(q) => AnyProducer::Redis(q.register_producer()?),
        })
    }
}

/// A registered producer of an [`AnyDeque`]. Dropping it leaves without closing.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyProducer<'a> {
    /// Of a shared-memory deque.
    Local(Producer<'a>),
    /// Of a Redis deque.
    Redis(RedisProducer<'a>),
}

impl AnyProducer<'_> {
    /// Leaves; with `close_if_last`, the last producer to leave closes the deque. Returns whether this
    /// call closed it.
    ///
    /// # Errors
    /// As [`Producer::leave`] and [`RedisProducer::leave`].
    pub fn leave(self, close_if_last: bool) -> Result<bool, Error> {
        match self {
            AnyProducer::Local(p) => p.leave(close_if_last),
            AnyProducer::Redis(p) => p.leave(close_if_last),
        }
    }
}

enum Typed<T> {
    Local(SharedDeque<T>),
    Redis(RedisDeque),
}

/// A deque of `T` values (serde + bincode, as [`SharedDeque`]) on either backend, chosen by URL.
///
/// Opened by [`Builder::open_url_typed`]. Push and pop at both ends, one value or many, in the four
/// forms, with the errors of [`SharedDeque`]. A message that does not decode as `T` is removed once and
/// handed back as bytes in [`TypedPopError::Decode`]; in a batch, the messages after it stay in the deque.
///
/// # Examples
///
/// ```
/// # let name = format!("doc-anytyped-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(64).open_url_typed::<(u32, String)>("shm:")?;
/// q.push_back((1, "one".into()))?;
/// assert_eq!(q.pop_front()?, (1, "one".to_owned()));
/// # drop(q);
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AnySharedDeque<T> {
    inner: Typed<T>,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for AnySharedDeque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Typed::Local(q) => f.debug_tuple("AnySharedDeque").field(q).finish(),
            Typed::Redis(q) => f.debug_tuple("AnySharedDeque").field(q).finish(),
        }
    }
}

fn decode_popped<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, TypedPopError> {
    codec::decode(bytes).map_err(|reason| TypedPopError::Decode { bytes: bytes.to_vec(), reason })
}

impl<T: Serialize + DeserializeOwned> AnySharedDeque<T> {
    fn push(&self, end: End, value: T, wait: Wait) -> Result<(), TypedPushError<T>> {
        match &self.inner {
            Typed::Local(q) => local_at!(q, end, wait,
                [try_push_front, push_front, push_front_deadline] [try_push_back, push_back, push_back_deadline] (value)),
            Typed::Redis(q) => {
                match codec::with_encoded(&value, |bytes| q.push_one(end, bytes, wait).map_err(|e| e.map(drop))) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.map(|()| value).into()),
                    Err(reason) => Err(TypedPushError::Encode { value, reason }),
                }
            }
        }
    }

    fn push_many(&self, end: End, values: &[T], wait: Wait) -> Result<usize, TypedPushError<usize>> {
        match &self.inner {
            Typed::Local(q) => local_at!(q, end, wait,
                [try_push_front_many, push_front_many, push_front_many_deadline]
                [try_push_back_many, push_back_many, push_back_many_deadline] (values)),
            Typed::Redis(q) => {
                let mut encoded = Vec::with_capacity(values.len());
                for v in values {
                    let mut buf = Vec::new();
                    codec::encode_into(v, &mut buf).map_err(|reason| TypedPushError::Encode { value: 0, reason })?;
                    encoded.push(buf);
                }
                Ok(q.push_many(end, &encoded, wait)?)
            }
        }
    }

    fn pop(&self, end: End, wait: Wait) -> Result<T, TypedPopError> {
        match &self.inner {
            Typed::Local(q) => local_at!(q, end, wait,
                [try_pop_front, pop_front, pop_front_deadline] [try_pop_back, pop_back, pop_back_deadline] ()),
            Typed::Redis(q) => q.pop_one(end, wait, decode_popped)?,
        }
    }

    fn pop_many(&self, end: End, max: usize, out: &mut Vec<T>, wait: Wait) -> Result<usize, TypedPopError> {
        match &self.inner {
            Typed::Local(q) => local_at!(q, end, wait,
                [try_pop_front_many, pop_front_many, pop_front_many_deadline]
                [try_pop_back_many, pop_back_many, pop_back_many_deadline] (max, out)),
            Typed::Redis(q) => q.pop_decoded(end, max, out, wait),
        }
    }

    wait_forms! {
        /// Pushes `value` at the back, waiting for room as long as it takes.
        ///
        /// # Errors
        /// As [`SharedDeque::push_back`]; each hands `value` back.
        pub fn [try_push_back, push_back, push_back_timeout, push_back_deadline] []
            (&self, value: T) [] -> Result<(), TypedPushError<T>>
            where wait => self.push(End::Back, value, wait);
            now: "[`TypedPushError::Full`] if there is no room", late: "[`TypedPushError::Timeout`]";

        /// Pushes `value` at the front, waiting for room as long as it takes.
        ///
        /// # Errors
        /// As [`push_back`](Self::push_back).
        pub fn [try_push_front, push_front, push_front_timeout, push_front_deadline] []
            (&self, value: T) [] -> Result<(), TypedPushError<T>>
            where wait => self.push(End::Front, value, wait);
            now: "[`TypedPushError::Full`] if there is no room", late: "[`TypedPushError::Timeout`]";

        /// Pushes all of `values` at the back in order; returns `values.len()`.
        ///
        /// # Errors
        /// As [`SharedDeque::push_back_many`].
        pub fn [try_push_back_many, push_back_many, push_back_many_timeout, push_back_many_deadline] []
            (&self, values: &[T]) [] -> Result<usize, TypedPushError<usize>>
            where wait => self.push_many(End::Back, values, wait);
            now: "[`TypedPushError::Full`]`(0)` if none fit",
            late: "[`TypedPushError::Timeout`] with the count pushed";

        /// Pushes `values` one after another at the front (the last ends up frontmost).
        ///
        /// # Errors
        /// As [`push_back_many`](Self::push_back_many).
        pub fn [try_push_front_many, push_front_many, push_front_many_timeout, push_front_many_deadline] []
            (&self, values: &[T]) [] -> Result<usize, TypedPushError<usize>>
            where wait => self.push_many(End::Front, values, wait);
            now: "[`TypedPushError::Full`]`(0)` if none fit",
            late: "[`TypedPushError::Timeout`] with the count pushed";

        /// Removes the front value, waiting for one as long as it takes.
        ///
        /// # Errors
        /// As [`SharedDeque::pop_front`], plus [`TypedPopError::ProducersGone`] once every registered
        /// producer is gone without leaving.
        pub fn [try_pop_front, pop_front, pop_front_timeout, pop_front_deadline] []
            (&self) [] -> Result<T, TypedPopError>
            where wait => self.pop(End::Front, wait);
            now: "[`TypedPopError::Empty`] if there is none", late: "[`TypedPopError::Timeout`]";

        /// Removes the back value, waiting for one as long as it takes.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_back, pop_back, pop_back_timeout, pop_back_deadline] []
            (&self) [] -> Result<T, TypedPopError>
            where wait => self.pop(End::Back, wait);
            now: "[`TypedPopError::Empty`] if there is none", late: "[`TypedPopError::Timeout`]";

        /// Removes up to `max` values from the front, appending them to `out`, waiting for the first;
        /// returns how many.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front). On `Decode`, the values before the bad message are in `out`.
        pub fn [try_pop_front_many, pop_front_many, pop_front_many_timeout, pop_front_many_deadline] []
            (&self, max: usize, out: &mut Vec<T>) [] -> Result<usize, TypedPopError>
            where wait => self.pop_many(End::Front, max, out, wait);
            now: "[`TypedPopError::Empty`] if there is none", late: "[`TypedPopError::Timeout`]";

        /// As [`pop_front_many`](Self::pop_front_many), from the back (back-most first).
        ///
        /// # Errors
        /// As [`pop_front_many`](Self::pop_front_many).
        pub fn [try_pop_back_many, pop_back_many, pop_back_many_timeout, pop_back_many_deadline] []
            (&self, max: usize, out: &mut Vec<T>) [] -> Result<usize, TypedPopError>
            where wait => self.pop_many(End::Back, max, out, wait);
            now: "[`TypedPopError::Empty`] if there is none", late: "[`TypedPopError::Timeout`]";
    }

    /// The deque's name.
    pub fn name(&self) -> &str {
        match &self.inner {
            Typed::Local(q) => q.name(),
            Typed::Redis(q) => q.name(),
        }
    }

    /// How many values the deque holds at most.
    pub fn capacity(&self) -> usize {
        match &self.inner {
            Typed::Local(q) => q.capacity(),
            Typed::Redis(q) => q.capacity(),
        }
    }

    /// Closes the deque.
    ///
    /// # Errors
    /// As [`AnyDeque::close`].
    pub fn close(&self) -> Result<(), Error> {
        match &self.inner {
            Typed::Local(q) => q.close(),
            Typed::Redis(q) => q.close(),
        }
    }

    /// Number of values in the deque now.
    ///
    /// # Errors
    /// As [`AnyDeque::len`].
    pub fn len(&self) -> Result<usize, Error> {
        match &self.inner {
            Typed::Local(q) => Ok(q.len()),
            Typed::Redis(q) => q.len(),
        }
    }

    /// Whether the deque is empty now.
    ///
    /// # Errors
    /// As [`AnyDeque::len`].
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }
}
