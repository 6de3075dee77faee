//! [`SharedDeque<T>`]: typed messages over a [`RawDeque`]. Values are encoded (see `codec`) before the lock
//! is taken and copied into a slot under it; pops decode straight from the slot while the lock is held, so a
//! message that does not decode is still removed exactly once and comes back as raw bytes in
//! [`TypedPopError::Decode`].

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::err::{Error, TypedPopError, TypedPushError};
use crate::grid::wait_forms;
use crate::guard::RawLockGuard;
use crate::raw::{Producer, RawDeque};
use crate::ring::End;
use crate::wait::Wait;
use crate::{Config, Stats};

/// A bounded deque of `T` values in a named shared-memory segment, usable from many threads and processes.
///
/// Built by [`Builder::open`](crate::Builder::open). Push and pop at both ends, one value or many under one
/// lock acquisition, each in four forms as on [`RawDeque`]: `try_x` returns at once, `x` blocks,
/// `x_timeout` and `x_deadline` block up to a duration or an instant. Every failed push hands the value
/// back. In-place operations on the encoded bytes go through [`as_raw`](Self::as_raw).
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Job { id: u32, path: String }
///
/// # let name = format!("doc-typed-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(16).slot_size(256).open::<Job>()?;
/// q.push_back(Job { id: 1, path: "/a".into() })?;
/// q.push_front(Job { id: 0, path: "/urgent".into() })?;
/// assert_eq!(q.pop_front()?.id, 0);
/// assert_eq!(q.try_pop_back()?, Job { id: 1, path: "/a".into() });
/// assert!(q.try_pop_front().unwrap_err().is_empty());
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedDeque<T> {
    raw: RawDeque,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for SharedDeque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedDeque").field(&self.raw).finish()
    }
}

fn decode_popped<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, TypedPopError> {
    codec::decode(bytes).map_err(|reason| TypedPopError::Decode { bytes: bytes.to_vec(), reason })
}

impl<T: Serialize + DeserializeOwned> SharedDeque<T> {
    pub(crate) fn attach(cfg: &Config) -> Result<Self, Error> {
        Ok(SharedDeque { raw: RawDeque::attach(cfg)?, _type: PhantomData })
    }

    /// The byte-level deque underneath, for raw and in-place operations on the same segment.
    pub fn as_raw(&self) -> &RawDeque {
        &self.raw
    }

    /// Makes this handle's waits return `Interrupted`; see [`RawDeque::interrupter`].
    pub fn interrupter(&self) -> crate::Interrupter {
        self.raw.interrupter()
    }

    /// How this handle waits for room or for a message; see [`RawDeque::wait_strategy`].
    pub fn wait_strategy(&self) -> crate::WaitStrategy {
        self.raw.wait_strategy()
    }

    /// Changes how this handle waits; see [`RawDeque::set_wait_strategy`].
    pub fn set_wait_strategy(&self, strategy: crate::WaitStrategy) {
        self.raw.set_wait_strategy(strategy);
    }

    /// Encodes `value` (outside the lock, into a reused per-thread buffer) and pushes its bytes.
    fn push(&self, end: End, value: T, wait: Wait) -> Result<(), TypedPushError<T>> {
        let r = codec::with_encoded(&value, |bytes| {
            self.raw.push_with(end, bytes.len(), |slot| slot.copy_from_slice(bytes), wait)
        });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.map(|()| value).into()),
            Err(reason) => Err(TypedPushError::Encode { value, reason }),
        }
    }

    /// Pops a message and decodes it straight from its slot, under the lock.
    fn pop(&self, end: End, wait: Wait) -> Result<T, TypedPopError> {
        self.raw.pop_with(end, decode_popped, wait)?
    }

    fn push_many(&self, end: End, values: &[T], wait: Wait) -> Result<usize, TypedPushError<usize>> {
        // Encode everything before taking the lock, so the critical section is only copies.
        let mut buf = Vec::new();
        let mut ends = Vec::with_capacity(values.len());
        for v in values {
            codec::encode_into(v, &mut buf).map_err(|reason| TypedPushError::Encode { value: 0, reason })?;
            ends.push(buf.len());
        }
        let msg = |i: usize| &buf[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        Ok(self.raw.push_many_with(end, values.len(), msg, wait)?)
    }

    fn pop_many(&self, end: End, max: usize, out: &mut Vec<T>, wait: Wait) -> Result<usize, TypedPopError> {
        self.raw.pop_many_with(end, max, |b| decode_popped(b).map(|v| out.push(v)), wait)
    }

    wait_forms! {
        /// Pushes `value` at the back, waiting for room as long as it takes.
        ///
        /// # Examples
        ///
        /// ```
        /// # let name = format!("doc-tpush-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(1).slot_size(64).open::<String>()?;
        /// q.push_back("first".to_owned())?;
        /// let e = q.try_push_back("second".to_owned()).unwrap_err();
        /// assert!(e.is_full());
        /// assert_eq!(e.into_inner(), "second"); // the value comes back
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// [`TypedPushError::Closed`], [`TypedPushError::TooLarge`] (encoded size over
        /// [`max_message_len`](Self::max_message_len)), [`TypedPushError::Encode`],
        /// [`TypedPushError::Failed`]; each hands `value` back.
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

        /// Pushes all of `values` at the back in order, taking the lock once per stretch of free room and
        /// waiting for room in between; returns `values.len()`. The `try_` form pushes what fits now (at
        /// least one) and returns how many; the rest are still the caller's.
        ///
        /// # Errors
        /// [`TypedPushError::TooLarge`] or [`TypedPushError::Encode`] (nothing pushed);
        /// [`TypedPushError::Closed`], [`TypedPushError::Failed`]. The value carried is the number pushed
        /// before the error.
        pub fn [try_push_back_many, push_back_many, push_back_many_timeout, push_back_many_deadline] []
            (&self, values: &[T]) [] -> Result<usize, TypedPushError<usize>>
            where wait => self.push_many(End::Back, values, wait);
            now: "[`TypedPushError::Full`]`(0)` if none fit",
            late: "[`TypedPushError::Timeout`] with the count pushed";

        /// Pushes `values` one after another at the front (the last ends up frontmost), waiting for room as
        /// long as it takes.
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
        /// # Examples
        ///
        /// ```
        /// use shmdeque::TypedPopError;
        /// # let name = format!("doc-tpop-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(4).slot_size(64).open::<(u32, String)>()?;
        /// q.push_back((1, "one".into()))?;
        /// assert_eq!(q.pop_front()?, (1, "one".to_owned()));
        /// // Bytes that are not a (u32, String) are removed once and handed back.
        /// q.as_raw().push_back(&[0xff])?;
        /// match q.try_pop_front() {
        ///     Err(TypedPopError::Decode { bytes, .. }) => assert_eq!(bytes, [0xff]),
        ///     other => panic!("{other:?}"),
        /// }
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// [`TypedPopError::Closed`] once closed and drained; [`TypedPopError::Decode`] if the message is not
        /// a `T` (it is removed, and its bytes are in the error); [`TypedPopError::Failed`].
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

        /// Removes up to `max` values from the front under one lock acquisition, appending them to `out`,
        /// waiting as long as it takes for the first; returns how many.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front). On `Decode`, the values before the bad message are in `out`
        /// and the batch stops after it.
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

    /// A copy of the front value, leaving it in place.
    ///
    /// # Errors
    /// [`TypedPopError::Decode`] if it is not a `T` (it stays in the deque); [`TypedPopError::Failed`].
    pub fn peek_front(&self) -> Result<Option<T>, TypedPopError> {
        self.lock()?.front()
    }

    /// A copy of the back value, leaving it in place.
    ///
    /// # Errors
    /// As [`peek_front`](Self::peek_front).
    pub fn peek_back(&self) -> Result<Option<T>, TypedPopError> {
        self.lock()?.back()
    }

    /// Takes the deque's lock; see [`RawDeque::lock`].
    ///
    /// # Errors
    /// As [`RawDeque::lock`].
    pub fn lock(&self) -> Result<LockGuard<'_, T>, Error> {
        Ok(LockGuard { raw: self.raw.lock()?, _type: PhantomData })
    }

    /// Number of values now in the deque (a snapshot).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the deque is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the deque is full (a snapshot).
    pub fn is_full(&self) -> bool {
        self.raw.is_full()
    }

    /// How many values the deque holds at most.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Size of one slot in bytes.
    pub fn slot_size(&self) -> usize {
        self.raw.slot_size()
    }

    /// The largest encoded value, in bytes, that fits in a slot.
    pub fn max_message_len(&self) -> usize {
        self.raw.max_message_len()
    }

    /// The deque's name.
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// Removes every value; returns how many there were.
    ///
    /// # Errors
    /// As [`RawDeque::clear`].
    pub fn clear(&self) -> Result<usize, Error> {
        self.raw.clear()
    }

    /// Closes the deque; see [`RawDeque::close`].
    ///
    /// # Errors
    /// As [`RawDeque::close`].
    pub fn close(&self) -> Result<(), Error> {
        self.raw.close()
    }

    /// Whether the deque has been closed.
    pub fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    /// Counters and state; see [`RawDeque::stats`].
    ///
    /// # Errors
    /// As [`RawDeque::stats`].
    pub fn stats(&self) -> Result<Stats, Error> {
        self.raw.stats()
    }

    /// Registers this process as a producer; see [`RawDeque::register_producer`].
    ///
    /// # Errors
    /// As [`RawDeque::register_producer`].
    pub fn register_producer(&self) -> Result<Producer<'_>, Error> {
        self.raw.register_producer()
    }
}

/// The lock of a [`SharedDeque`], held; typed counterpart of [`RawLockGuard`].
///
/// # Examples
///
/// ```
/// # let name = format!("doc-tguard-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(64).open::<u64>()?;
/// q.push_back_many(&[1, 2, 3])?;
/// let g = q.lock()?;
/// let sum: u64 = g.iter().map(|v| v.unwrap()).sum();
/// assert_eq!((sum, g.len()), (6, 3));
/// # drop(g);
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LockGuard<'a, T> {
    raw: RawLockGuard<'a>,
    _type: PhantomData<fn(T) -> T>,
}

impl<'a, T: Serialize + DeserializeOwned> LockGuard<'a, T> {
    /// The raw guard underneath.
    pub fn as_raw(&mut self) -> &mut RawLockGuard<'a> {
        &mut self.raw
    }

    /// Number of values in the deque.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the deque is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// A copy of the value at `index` from the front.
    ///
    /// # Errors
    /// [`TypedPopError::Decode`] if it is not a `T` (it stays in place), [`TypedPopError::Failed`] if corrupted.
    pub fn get(&self, index: usize) -> Result<Option<T>, TypedPopError> {
        self.raw.get(index)?.map(decode_popped).transpose()
    }

    /// A copy of the front value.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn front(&self) -> Result<Option<T>, TypedPopError> {
        self.get(0)
    }

    /// A copy of the back value.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn back(&self) -> Result<Option<T>, TypedPopError> {
        // The raw guard validates the ring even when it looks empty, as `front` does.
        self.raw.back()?.map(decode_popped).transpose()
    }

    /// Decoded copies of the values front to back, without removing them.
    pub fn iter(&self) -> impl Iterator<Item = Result<T, TypedPopError>> + '_ {
        self.raw.iter().map(|m| decode_popped(m?))
    }

    /// Pushes at the back if there is room.
    ///
    /// # Errors
    /// As [`SharedDeque::try_push_back`].
    pub fn try_push_back(&mut self, value: T) -> Result<(), TypedPushError<T>> {
        self.push(End::Back, value)
    }

    /// Pushes at the front if there is room.
    ///
    /// # Errors
    /// As [`SharedDeque::try_push_front`].
    pub fn try_push_front(&mut self, value: T) -> Result<(), TypedPushError<T>> {
        self.push(End::Front, value)
    }

    fn push(&mut self, end: End, value: T) -> Result<(), TypedPushError<T>> {
        let raw = &mut self.raw;
        let r = codec::with_encoded(&value, |bytes| {
            match end {
                End::Back => raw.try_push_back(bytes),
                End::Front => raw.try_push_front(bytes),
            }
            .map_err(|e| e.map(|_| ()))
        });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.map(|()| value).into()),
            Err(reason) => Err(TypedPushError::Encode { value, reason }),
        }
    }

    /// Removes the front value if there is one.
    ///
    /// # Errors
    /// As [`SharedDeque::try_pop_front`].
    pub fn try_pop_front(&mut self) -> Result<T, TypedPopError> {
        self.raw.pop(End::Front, decode_popped)?
    }

    /// Removes the back value if there is one.
    ///
    /// # Errors
    /// As [`SharedDeque::try_pop_back`].
    pub fn try_pop_back(&mut self) -> Result<T, TypedPopError> {
        self.raw.pop(End::Back, decode_popped)?
    }

    /// Removes every value; returns how many there were.
    ///
    /// # Errors
    /// As [`RawLockGuard::clear`].
    pub fn clear(&mut self) -> Result<usize, Error> {
        self.raw.clear()
    }

    /// Closes the deque.
    pub fn close(&mut self) {
        self.raw.close()
    }
}

#[cfg(feature = "async")]
mod async_forms {
    use std::task::Poll;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::SharedDeque;
    use crate::asynchronous::{Waiting, Why, async_forms, pop_error, push_error, push_many_op};
    use crate::codec;
    use crate::err::{TypedPopError, TypedPushError};
    use crate::reactor::Cond;
    use crate::ring::End;
    use crate::wait::Wait;

    /// The typed error of a push that gives up, handing `value` back.
    fn typed_push_error<T>(why: Why, value: T) -> TypedPushError<T> {
        push_error(why, value).into()
    }

    /// The `_async` forms (cargo feature `async`); see [`RawDeque`](crate::RawDeque)'s, and the README,
    /// "Async".
    impl<T: Serialize + DeserializeOwned> SharedDeque<T> {
        /// The operation of a single typed push: encoded at each try (a retry after a full deque encodes again).
        fn push_op(&self, end: End, value: T) -> impl FnMut(Option<Why>) -> Poll<Result<(), TypedPushError<T>>> {
            let mut value = Some(value);
            move |why| {
                // Always there: the future calls this no more after a result.
                let Some(v) = value.take() else { return Poll::Pending };
                match why {
                    None => match self.push(end, v, Wait::Now) {
                        Err(TypedPushError::Full(v)) => {
                            value = Some(v);
                            Poll::Pending
                        }
                        r => Poll::Ready(r),
                    },
                    Some(why) => Poll::Ready(Err(typed_push_error(why, v))),
                }
            }
        }

        fn pop_op(&self, end: End) -> impl FnMut(Option<Why>) -> Poll<Result<T, TypedPopError>> {
            move |why| match why {
                None => match self.pop(end, Wait::Now) {
                    Err(TypedPopError::Empty) => Poll::Pending,
                    r => Poll::Ready(r),
                },
                Some(why) => Poll::Ready(Err(pop_error(why).into())),
            }
        }

        fn pop_many_op(
            &self,
            end: End,
            max: usize,
            out: &mut Vec<T>,
        ) -> impl FnMut(Option<Why>) -> Poll<Result<usize, TypedPopError>> {
            move |why| match why {
                None => match self.pop_many(end, max, out, Wait::Now) {
                    Err(TypedPopError::Empty) => Poll::Pending,
                    r => Poll::Ready(r),
                },
                Some(why) => Poll::Ready(Err(pop_error(why).into())),
            }
        }

        /// Encodes every value once, before the first try; `None` with the error if one does not encode.
        fn encode_all(values: &[T]) -> Result<(Vec<u8>, Vec<usize>), TypedPushError<usize>> {
            let mut buf = Vec::new();
            let mut ends = Vec::with_capacity(values.len());
            for v in values {
                codec::encode_into(v, &mut buf).map_err(|reason| TypedPushError::Encode { value: 0, reason })?;
                ends.push(buf.len());
            }
            Ok((buf, ends))
        }

        async fn push_many_async_inner(
            &self,
            end: End,
            values: &[T],
            deadline: Option<std::time::Instant>,
        ) -> Result<usize, TypedPushError<usize>> {
            let (buf, ends) = Self::encode_all(values)?;
            let msg = |i: usize| &buf[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
            let op = push_many_op(self.as_raw(), end, values.len(), msg);
            Ok(Waiting::new(self.as_raw(), Cond::Room, deadline, op).await?)
        }

        async_forms! {
            /// Pushes `value` at the back, waiting asynchronously for room: the async form of
            /// [`push_back`](Self::push_back).
            ///
            /// # Examples
            ///
            /// ```
            /// # let name = format!("doc-tpush-async-{}", std::process::id());
            /// let q = shmdeque::Builder::new(&name).capacity(4).slot_size(64).open::<(u32, String)>()?;
            /// futures_executor::block_on(async {
            ///     q.push_back_async((7, "seven".into())).await?;
            ///     assert_eq!(q.pop_front_async().await?, (7, "seven".to_owned()));
            ///     Ok::<(), Box<dyn std::error::Error>>(())
            /// })?;
            /// # shmdeque::remove(&name)?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            ///
            /// # Errors
            /// As [`push_back`](Self::push_back); each hands `value` back.
            pub fn [push_back_async, push_back_deadline_async] []
                (&self, value: T) [] -> Result<(), TypedPushError<T>>
                where deadline => Waiting::new(self.as_raw(), Cond::Room, deadline, self.push_op(End::Back, value));
                cancel: "Cancel-safe: the value is pushed in the poll that returns `Ready`; a future dropped \
                    before that pushed nothing (the value is dropped with it) and left no registration or \
                    sleeper count behind.";

            /// Pushes `value` at the front, waiting asynchronously for room: the async form of
            /// [`push_front`](Self::push_front).
            ///
            /// # Errors
            /// As [`push_back`](Self::push_back).
            pub fn [push_front_async, push_front_deadline_async] []
                (&self, value: T) [] -> Result<(), TypedPushError<T>>
                where deadline => Waiting::new(self.as_raw(), Cond::Room, deadline, self.push_op(End::Front, value));
                cancel: "As [`push_back_async`](Self::push_back_async).";

            /// Pushes all of `values` at the back in order, waiting asynchronously for room in between: the
            /// async form of [`push_back_many`](Self::push_back_many). Every value is encoded once, first.
            ///
            /// # Errors
            /// As [`push_back_many`](Self::push_back_many).
            pub fn [push_back_many_async, push_back_many_deadline_async] []
                (&self, values: &[T]) [] -> Result<usize, TypedPushError<usize>>
                where deadline => self.push_many_async_inner(End::Back, values, deadline);
                cancel: "Not cancel-safe as a whole, like tokio's `write_all`: a future dropped part-way leaves \
                    the values pushed so far in the deque without saying how many. No registration or sleeper \
                    count is left behind.";

            /// As [`push_back_many_async`](Self::push_back_many_async), at the front.
            ///
            /// # Errors
            /// As [`push_back_many`](Self::push_back_many).
            pub fn [push_front_many_async, push_front_many_deadline_async] []
                (&self, values: &[T]) [] -> Result<usize, TypedPushError<usize>>
                where deadline => self.push_many_async_inner(End::Front, values, deadline);
                cancel: "As [`push_back_many_async`](Self::push_back_many_async).";

            /// Removes the front value, waiting asynchronously for one: the async form of
            /// [`pop_front`](Self::pop_front).
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [pop_front_async, pop_front_deadline_async] []
                (&self) [] -> Result<T, TypedPopError>
                where deadline => Waiting::new(self.as_raw(), Cond::Message, deadline, self.pop_op(End::Front));
                cancel: "Cancel-safe: a future that completed removed its message in the poll that returned \
                    it (a message that does not decode too, handed back as bytes in `Decode`); one dropped \
                    before completing removed none and left no registration or sleeper count behind.";

            /// Removes the back value, waiting asynchronously for one: the async form of
            /// [`pop_back`](Self::pop_back).
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [pop_back_async, pop_back_deadline_async] []
                (&self) [] -> Result<T, TypedPopError>
                where deadline => Waiting::new(self.as_raw(), Cond::Message, deadline, self.pop_op(End::Back));
                cancel: "As [`pop_front_async`](Self::pop_front_async).";

            /// Removes up to `max` values from the front under one lock acquisition, appending them to `out`,
            /// waiting asynchronously for the first: the async form of
            /// [`pop_front_many`](Self::pop_front_many).
            ///
            /// # Errors
            /// As [`pop_front_many`](Self::pop_front_many).
            pub fn [pop_front_many_async, pop_front_many_deadline_async] []
                (&self, max: usize, out: &mut Vec<T>) [] -> Result<usize, TypedPopError>
                where deadline => Waiting::new(self.as_raw(), Cond::Message, deadline,
                    self.pop_many_op(End::Front, max, out));
                cancel: "Cancel-safe: values are removed and appended to `out` in the poll that returns \
                    `Ready`; a future dropped before that removed none.";

            /// As [`pop_front_many_async`](Self::pop_front_many_async), from the back (back-most first).
            ///
            /// # Errors
            /// As [`pop_front_many`](Self::pop_front_many).
            pub fn [pop_back_many_async, pop_back_many_deadline_async] []
                (&self, max: usize, out: &mut Vec<T>) [] -> Result<usize, TypedPopError>
                where deadline => Waiting::new(self.as_raw(), Cond::Message, deadline,
                    self.pop_many_op(End::Back, max, out));
                cancel: "As [`pop_front_many_async`](Self::pop_front_many_async).";
        }
    }
}
