//! [`RawDeque`]: the deque of byte messages and its public operations. Each operation's body is in
//! `ops.rs`; the forms here only choose the end, how a slot is filled or read, and how long to wait. The
//! typed [`SharedDeque`](crate::SharedDeque) is a thin codec layer over this.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::err::{Error, PopError, PushError};
use crate::grid::wait_forms;
use crate::layout::{self, Header, KIND_HANDLE, KIND_PRODUCER, MAX_REGISTRATIONS};
use crate::registry::{Own, Registered};
use crate::ring::End;
use crate::segment::Segment;
use crate::wait::{self, Interrupter, Pacer, WaitStrategy};
use crate::{Config, Stats};

/// A bounded deque of byte messages in a named shared-memory segment.
///
/// Built by [`Builder::open_raw`](crate::Builder::open_raw). Handles are `Send + Sync`: share one between
/// threads with `Arc` or scoped threads, or open the same name in other processes.
///
/// # The operation grid
/// Push and pop, at the front and at the back, of one message, of many under one lock acquisition
/// (`_many`), or in place in the slot (`_with`); each in four forms, after crossbeam-channel: `try_x`
/// returns at once, `x` waits as long as it takes, `x_timeout` waits up to a duration, `x_deadline` up to
/// an instant. Arguments come in one order everywhere: the data, then the timeout or deadline, then a
/// closure. Pops that copy come in two kinds: `pop_front` returns a new `Vec<u8>`, `pop_front_into` reuses
/// the caller's buffer (no allocation per message once it has grown).
///
/// | | push | pop |
/// |---|---|---|
/// | one | [`push_back`](Self::push_back) | [`pop_front`](Self::pop_front), [`pop_front_into`](Self::pop_front_into) |
/// | many | [`push_back_many`](Self::push_back_many) | [`pop_front_many`](Self::pop_front_many) |
/// | in place | [`push_back_with`](Self::push_back_with) | [`pop_front_with`](Self::pop_front_with), [`pop_front_many_with`](Self::pop_front_many_with) |
///
/// # Examples
///
/// ```
/// # let name = format!("doc-raw-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(64).open_raw()?;
/// q.push_back(b"world")?;
/// q.push_front(b"hello")?;
/// assert_eq!(q.pop_front()?, b"hello");
/// let mut buf = Vec::new();
/// assert_eq!(q.pop_back_into(&mut buf)?, 5);
/// assert_eq!(buf, b"world");
/// assert!(q.try_pop_front().unwrap_err().is_empty());
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawDeque {
    pub(crate) seg: Segment,
    /// How this handle waits for room or for a message.
    pub(crate) pace: Pacer,
    /// Set by this handle's [`Interrupter`]s: its waits return `Interrupted`.
    pub(crate) interrupt: Interrupter,
    /// This handle's registration (see `registry.rs`), and the lock word that names it as the owner.
    pub(crate) reg: Registered,
    pub(crate) me: u32,
    /// The registrations this handle holds: its own and its producers'.
    pub(crate) own: Own,
}

impl std::fmt::Debug for RawDeque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDeque")
            .field("name", &self.seg.name())
            .field("capacity", &self.seg.capacity)
            .field("slot_size", &self.seg.slot_size)
            .finish()
    }
}

impl RawDeque {
    /// Opens the segment and registers this handle in it. Nothing is counted before the registration
    /// succeeds, and a handle that exists is registered: its drop gives back exactly what it took.
    pub(crate) fn attach(cfg: &Config) -> Result<RawDeque, Error> {
        let seg = Segment::attach(cfg)?;
        let own = Own::default();
        let reg = seg
            .register(&own, KIND_HANDLE)?
            .ok_or_else(|| Error::TooManyHandles { name: seg.name().to_owned(), max: MAX_REGISTRATIONS })?;
        let me = layout::lock_owner(reg.index, reg.generation);
        Ok(RawDeque { seg, pace: Pacer::new(cfg.wait_strategy), interrupt: Interrupter::new(), reg, me, own })
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        self.seg.header()
    }

    pub(crate) fn corrupted(&self, what: impl Into<String>) -> Error {
        Error::Corrupted { name: self.name().to_owned(), what: what.into() }
    }

    /// How this handle's blocking operations wait for room or for a message; see [`WaitStrategy`].
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.pace.strategy()
    }

    /// Changes how this handle's blocking operations wait, from their next wait on (for example to busy-spin
    /// once this thread has a core of its own); see [`WaitStrategy`] and
    /// [`Builder::wait_strategy`](crate::Builder::wait_strategy).
    pub fn set_wait_strategy(&self, strategy: WaitStrategy) {
        self.pace.set_strategy(strategy);
    }

    /// The deque's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// How many messages the deque holds at most.
    pub fn capacity(&self) -> usize {
        self.seg.capacity as usize
    }

    /// Size of one slot in bytes, including the 4-byte length.
    pub fn slot_size(&self) -> usize {
        self.seg.slot_size as usize
    }

    /// The largest message, in bytes, that fits in a slot.
    pub fn max_message_len(&self) -> usize {
        layout::max_payload(self.seg.slot_size)
    }

    /// Number of messages now in the deque (a snapshot; other processes may change it at once).
    pub fn len(&self) -> usize {
        let (_, len) = layout::unpack_ring(self.header().ring.ring.load(Acquire));
        (len as usize).min(self.capacity())
    }

    /// Whether the deque holds no message (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the deque is full (a snapshot).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// A handle on this handle's waits: [`Interrupter::interrupt`] makes its blocked operations (and later
    /// ones, until [`Interrupter::reset`]) return `Interrupted` at once, from any thread or a signal
    /// handler, without touching other processes.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupt.clone()
    }

    /// Whether the deque has been closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.header().ring.closed.load(Acquire) != 0
    }

    fn push_slice<'m>(&self, end: End, msg: &'m [u8], wait: wait::Wait) -> Result<(), PushError<&'m [u8]>> {
        self.push_with(end, msg.len(), |b| b.copy_from_slice(msg), wait).map_err(|e| e.map(|()| msg))
    }

    fn push_many_slices<M: AsRef<[u8]>>(
        &self,
        end: End,
        msgs: &[M],
        wait: wait::Wait,
    ) -> Result<usize, PushError<usize>> {
        self.push_many_with(end, msgs.len(), |i| msgs[i].as_ref(), wait)
    }

    fn pop_into(&self, end: End, buf: &mut Vec<u8>, wait: wait::Wait) -> Result<usize, PopError> {
        let fill = |m: &[u8]| {
            buf.clear();
            buf.extend_from_slice(m);
            m.len()
        };
        self.pop_with(end, fill, wait)
    }

    fn pop_many_into(&self, end: End, max: usize, out: &mut Vec<Vec<u8>>, wait: wait::Wait) -> Result<usize, PopError> {
        let read = |b: &[u8]| {
            out.push(b.to_vec());
            Ok::<_, PopError>(())
        };
        self.pop_many_with(end, max, read, wait)
    }

    fn pop_many_in_place(
        &self,
        end: End,
        max: usize,
        mut read: impl FnMut(&[u8]),
        wait: wait::Wait,
    ) -> Result<usize, PopError> {
        let read = |b: &[u8]| {
            read(b);
            Ok::<_, PopError>(())
        };
        self.pop_many_with(end, max, read, wait)
    }

    wait_forms! {
        /// Pushes a message at the back, waiting for room as long as it takes.
        ///
        /// # Examples
        ///
        /// ```
        /// use std::time::Duration;
        /// # let name = format!("doc-push-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(1).slot_size(16).open_raw()?;
        /// q.push_back(b"first")?;
        /// // Full now: the other forms say so instead of waiting for ever.
        /// assert!(q.try_push_back(b"second").unwrap_err().is_full());
        /// let e = q.push_back_timeout(b"second", Duration::from_millis(10)).unwrap_err();
        /// assert!(e.is_timeout());
        /// assert_eq!(e.into_inner(), b"second"); // the message comes back
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// [`PushError::Closed`] once the deque is closed, [`PushError::TooLarge`] if the message exceeds
        /// [`max_message_len`](Self::max_message_len), [`PushError::Failed`] if the segment is corrupted; each
        /// hands the message back.
        pub fn [try_push_back, push_back, push_back_timeout, push_back_deadline] ['m]
            (&self, msg: &'m [u8]) [] -> Result<(), PushError<&'m [u8]>>
            where wait => self.push_slice(End::Back, msg, wait);
            now: "[`PushError::Full`] if there is no room", late: "[`PushError::Timeout`]";

        /// Pushes a message at the front, waiting for room as long as it takes; it becomes the next one
        /// [`pop_front`](Self::pop_front) returns.
        ///
        /// # Errors
        /// As [`push_back`](Self::push_back).
        pub fn [try_push_front, push_front, push_front_timeout, push_front_deadline] ['m]
            (&self, msg: &'m [u8]) [] -> Result<(), PushError<&'m [u8]>>
            where wait => self.push_slice(End::Front, msg, wait);
            now: "[`PushError::Full`] if there is no room", late: "[`PushError::Timeout`]";

        /// Pushes an `n`-byte message at the back that `fill` writes directly into its slot, waiting for
        /// room as long as it takes: a large message is copied once, from wherever `fill` produces it.
        ///
        /// `fill` runs while the deque is locked; keep it to a copy or an encode. If it panics, the message is
        /// not pushed and the deque is unchanged.
        ///
        /// # Examples
        ///
        /// ```
        /// # let name = format!("doc-with-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(2).slot_size(1 << 16).open_raw()?;
        /// q.push_back_with(60_000, |slot| slot.fill(7))?;
        /// let sum = q.pop_front_with(|msg| msg.iter().map(|&b| b as u64).sum::<u64>())?;
        /// assert_eq!(sum, 420_000);
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// As [`push_back`](Self::push_back), with no message to hand back.
        pub fn [try_push_back_with, push_back_with, push_back_with_timeout, push_back_with_deadline] []
            (&self, n: usize) [, fill: impl FnOnce(&mut [u8])] -> Result<(), PushError<()>>
            where wait => self.push_with(End::Back, n, fill, wait);
            now: "[`PushError::Full`] if there is no room", late: "[`PushError::Timeout`]";

        /// As [`push_back_with`](Self::push_back_with), at the front.
        ///
        /// # Errors
        /// As [`push_back_with`](Self::push_back_with).
        pub fn [try_push_front_with, push_front_with, push_front_with_timeout, push_front_with_deadline] []
            (&self, n: usize) [, fill: impl FnOnce(&mut [u8])] -> Result<(), PushError<()>>
            where wait => self.push_with(End::Front, n, fill, wait);
            now: "[`PushError::Full`] if there is no room", late: "[`PushError::Timeout`]";

        /// Pushes all of `msgs` at the back in order, taking the lock once per stretch of free room and
        /// waiting for room in between. Returns `msgs.len()`. The `try_` form pushes what fits now (at least
        /// one) and returns how many.
        ///
        /// # Examples
        ///
        /// ```
        /// # let name = format!("doc-many-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(64).slot_size(64).open_raw()?;
        /// q.push_back_many(&["a", "b", "c"])?;
        /// let mut out = Vec::new();
        /// assert_eq!(q.pop_front_many(10, &mut out)?, 3);
        /// assert_eq!(out, [b"a", b"b", b"c"]);
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// [`PushError::TooLarge`] (nothing pushed) if any message is too large; [`PushError::Closed`],
        /// [`PushError::Failed`]. The value carried is the number pushed before the error.
        pub fn [try_push_back_many, push_back_many, push_back_many_timeout, push_back_many_deadline]
            [M: AsRef<[u8]>] (&self, msgs: &[M]) [] -> Result<usize, PushError<usize>>
            where wait => self.push_many_slices(End::Back, msgs, wait);
            now: "[`PushError::Full`]`(0)` if none fit", late: "[`PushError::Timeout`] with the count pushed";

        /// Pushes `msgs` one after another at the front (so the last ends up frontmost), waiting for room as
        /// long as it takes.
        ///
        /// # Errors
        /// As [`push_back_many`](Self::push_back_many).
        pub fn [try_push_front_many, push_front_many, push_front_many_timeout, push_front_many_deadline]
            [M: AsRef<[u8]>] (&self, msgs: &[M]) [] -> Result<usize, PushError<usize>>
            where wait => self.push_many_slices(End::Front, msgs, wait);
            now: "[`PushError::Full`]`(0)` if none fit", late: "[`PushError::Timeout`] with the count pushed";

        /// Removes the front message, waiting for one as long as it takes.
        ///
        /// # Examples
        ///
        /// ```
        /// use std::time::{Duration, Instant};
        /// # let name = format!("doc-pop-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(4).slot_size(16).open_raw()?;
        /// q.push_back_many(&["a", "b"])?;
        /// assert_eq!(q.pop_front()?, b"a");
        /// assert_eq!(q.pop_front_deadline(Instant::now() + Duration::from_secs(1))?, b"b");
        /// assert!(q.try_pop_front().unwrap_err().is_empty());
        /// q.close()?;
        /// assert!(q.pop_front().unwrap_err().is_closed()); // closed and drained: no waiting
        /// # drop(q);
        /// # let _ = shmdeque::remove(&name);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// [`PopError::Closed`] once the deque is closed and drained; [`PopError::Failed`].
        pub fn [try_pop_front, pop_front, pop_front_timeout, pop_front_deadline] []
            (&self) [] -> Result<Vec<u8>, PopError>
            where wait => self.pop_with(End::Front, <[u8]>::to_vec, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// Removes the back message, waiting for one as long as it takes.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_back, pop_back, pop_back_timeout, pop_back_deadline] []
            (&self) [] -> Result<Vec<u8>, PopError>
            where wait => self.pop_with(End::Back, <[u8]>::to_vec, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// Removes the front message into `buf` (cleared first, then holding exactly the message), waiting for
        /// one as long as it takes; returns its length. Reusing one buffer saves the allocation and the free
        /// that [`pop_front`](Self::pop_front) costs per message. On an error `buf` is left as it was.
        ///
        /// # Examples
        ///
        /// ```
        /// # let name = format!("doc-into-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(64).open_raw()?;
        /// q.push_back_many(&["one", "three"])?;
        /// let mut buf = Vec::with_capacity(60);
        /// while let Ok(n) = q.try_pop_front_into(&mut buf) {
        ///     assert_eq!(buf.len(), n);
        /// }
        /// assert_eq!(buf, b"three");
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_front_into, pop_front_into, pop_front_into_timeout, pop_front_into_deadline] []
            (&self, buf: &mut Vec<u8>) [] -> Result<usize, PopError>
            where wait => self.pop_into(End::Front, buf, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// As [`pop_front_into`](Self::pop_front_into), at the back.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_back_into, pop_back_into, pop_back_into_timeout, pop_back_into_deadline] []
            (&self, buf: &mut Vec<u8>) [] -> Result<usize, PopError>
            where wait => self.pop_into(End::Back, buf, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// Removes the front message, handing it to `read` in place (no copy out of the segment), waiting
        /// for one as long as it takes; returns what `read` returned. `read` runs while the deque is locked.
        /// If it panics, the message stays in the deque.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_front_with, pop_front_with, pop_front_with_timeout, pop_front_with_deadline] [R]
            (&self) [, read: impl FnOnce(&[u8]) -> R] -> Result<R, PopError>
            where wait => self.pop_with(End::Front, read, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// As [`pop_front_with`](Self::pop_front_with), at the back.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_back_with, pop_back_with, pop_back_with_timeout, pop_back_with_deadline] [R]
            (&self) [, read: impl FnOnce(&[u8]) -> R] -> Result<R, PopError>
            where wait => self.pop_with(End::Back, read, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// Removes up to `max` messages from the front under one lock acquisition, appending them to `out`,
        /// waiting as long as it takes for the first; returns how many.
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_front_many, pop_front_many, pop_front_many_timeout, pop_front_many_deadline] []
            (&self, max: usize, out: &mut Vec<Vec<u8>>) [] -> Result<usize, PopError>
            where wait => self.pop_many_into(End::Front, max, out, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// As [`pop_front_many`](Self::pop_front_many), from the back (back-most first).
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_back_many, pop_back_many, pop_back_many_timeout, pop_back_many_deadline] []
            (&self, max: usize, out: &mut Vec<Vec<u8>>) [] -> Result<usize, PopError>
            where wait => self.pop_many_into(End::Back, max, out, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// Removes up to `max` messages from the front under one lock acquisition, handing each to `read` in
        /// place (no copy out of the segment, no allocation), waiting as long as it takes for the first;
        /// returns how many. `read` runs while the deque is locked.
        ///
        /// # Examples
        ///
        /// ```
        /// # let name = format!("doc-many-with-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(16).open_raw()?;
        /// q.push_back_many(&["ab", "cde"])?;
        /// let mut total = 0;
        /// assert_eq!(q.pop_front_many_with(64, |m| total += m.len())?, 2);
        /// assert_eq!(total, 5);
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_front_many_with, pop_front_many_with, pop_front_many_with_timeout,
                pop_front_many_with_deadline] []
            (&self, max: usize) [, read: impl FnMut(&[u8])] -> Result<usize, PopError>
            where wait => self.pop_many_in_place(End::Front, max, read, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

        /// As [`pop_front_many_with`](Self::pop_front_many_with), from the back (back-most first).
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front).
        pub fn [try_pop_back_many_with, pop_back_many_with, pop_back_many_with_timeout,
                pop_back_many_with_deadline] []
            (&self, max: usize) [, read: impl FnMut(&[u8])] -> Result<usize, PopError>
            where wait => self.pop_many_in_place(End::Back, max, read, wait);
            now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";
    }

    /// A copy of the front message, leaving it in place.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the slot's length is out of range.
    pub fn peek_front(&self) -> Result<Option<Vec<u8>>, Error> {
        self.lock()?.front().map(|m| m.map(<[u8]>::to_vec))
    }

    /// A copy of the back message, leaving it in place.
    ///
    /// # Errors
    /// As [`peek_front`](Self::peek_front).
    pub fn peek_back(&self) -> Result<Option<Vec<u8>>, Error> {
        self.lock()?.back().map(|m| m.map(<[u8]>::to_vec))
    }

    /// Removes every message; returns how many there were.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn clear(&self) -> Result<usize, Error> {
        self.lock()?.clear()
    }

    /// Closes the deque: pushes fail with `Closed` from now on, pops drain what is left and then report
    /// `Closed`. Every blocked process wakes. Closing twice is harmless.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn close(&self) -> Result<(), Error> {
        self.lock()?.close();
        Ok(())
    }

    /// Counters and state of the deque, read under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # let name = format!("doc-stats-{}", std::process::id());
    /// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(32).open_raw()?;
    /// q.push_back_many(&["a", "b", "c"])?;
    /// q.pop_front()?;
    /// let s = q.stats()?;
    /// assert_eq!((s.len, s.pushed, s.popped, s.high_water), (2, 3, 1, 3));
    /// # shmdeque::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`lock`](Self::lock), or an OS error reading the segment's attributes.
    pub fn stats(&self) -> Result<Stats, Error> {
        let file = self.seg.file_info()?;
        let g = self.lock()?;
        // Free what dead processes left registered, so that every count below is exact; the same pass
        // counts the live registrations.
        let live = self.seg.reap(&self.own, true);
        let r = &g.header().ring;
        let (_, len) = layout::unpack_ring(r.ring.load(Relaxed));
        let (producers, attached) = (live[KIND_PRODUCER as usize], live[KIND_HANDLE as usize]);
        Ok(Stats {
            name: self.name().to_owned(),
            capacity: self.seg.capacity,
            slot_size: self.seg.slot_size,
            len: len.min(self.seg.capacity),
            closed: r.closed.load(Relaxed) != 0,
            producers,
            attached,
            pushed: r.pushed.load(Relaxed),
            popped: r.popped.load(Relaxed),
            lock_recoveries: r.recoveries.load(Relaxed),
            high_water: r.high_water.load(Relaxed),
            asleep_for_message: wait::sleepers(&g.header().not_empty),
            asleep_for_room: wait::sleepers(&g.header().not_full),
            segment_bytes: self.seg.len as u64,
            mode: file.mode,
        })
    }

    /// Registers the calling process as a producer of this deque. Live producers are counted in
    /// [`Stats::producers`], in every process and container that shares the deque; a producer whose process
    /// died stops counting at once. Tools use it to close the deque when the last producer leaves
    /// ([`Producer::leave`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let name = format!("doc-producer-{}", std::process::id());
    /// let q = shmdeque::Builder::new(&name).open_raw()?;
    /// let me = q.register_producer()?;
    /// q.push_back(b"last words")?;
    /// assert!(me.leave(true)?); // the last producer to leave closes the deque
    /// assert_eq!(q.pop_front()?, b"last words");
    /// assert!(q.pop_front().unwrap_err().is_closed());
    /// # drop(q);
    /// # let _ = shmdeque::remove(&name);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooManyProducers`] when every slot is held by a live process; errors of [`lock`](Self::lock).
    pub fn register_producer(&self) -> Result<Producer<'_>, Error> {
        let reg = self
            .seg
            .register(&self.own, KIND_PRODUCER)?
            .ok_or_else(|| Error::TooManyProducers { name: self.name().to_owned(), max: MAX_REGISTRATIONS })?;
        // A producer arrived: the stream goes on, whoever died before.
        self.header().ring.producers_died.store(0, Relaxed);
        Ok(Producer { deque: self, reg, left: false })
    }
}

impl Drop for RawDeque {
    /// Detaches: gives the registration back. The last live handle to leave a closed and drained deque
    /// removes its name, so that a finished producer/consumer run leaves nothing in /dev/shm, whoever was
    /// killed before (a dead process's handles do not count).
    fn drop(&mut self) {
        self.seg.unregister(&self.own, self.reg);
        let r = &self.header().ring;
        let (_, len) = layout::unpack_ring(r.ring.load(Acquire));
        if len == 0 && r.closed.load(Acquire) != 0 && self.seg.count_alive(&self.own, KIND_HANDLE) == 0 {
            self.seg.unlink_if_same();
        }
    }
}

/// A registered producer; see [`RawDeque::register_producer`]. Dropping it leaves without closing.
#[derive(Debug)]
pub struct Producer<'a> {
    deque: &'a RawDeque,
    reg: Registered,
    left: bool,
}

impl Producer<'_> {
    /// Leaves. If `close_if_last` and no other live producer remains, closes the deque so that consumers
    /// drain it and finish. Returns whether this call closed the deque.
    ///
    /// # Errors
    /// Errors of [`RawDeque::lock`].
    pub fn leave(mut self, close_if_last: bool) -> Result<bool, Error> {
        self.leave_inner(close_if_last)
    }

    fn leave_inner(&mut self, close_if_last: bool) -> Result<bool, Error> {
        if self.left {
            return Ok(false);
        }
        self.left = true;
        let seg = &self.deque.seg;
        // Under the lock, so that of two last producers leaving at once exactly one closes; given back even
        // if the lock cannot be had.
        let g = self.deque.lock();
        seg.unregister(&self.deque.own, self.reg);
        let mut g = g?;
        let live = seg.count_alive(&self.deque.own, KIND_PRODUCER);
        if close_if_last && live == 0 && !g.is_closed() {
            g.close();
            return Ok(true);
        }
        Ok(false)
    }
}

impl Drop for Producer<'_> {
    fn drop(&mut self) {
        if !self.left {
            self.left = true;
            self.deque.seg.unregister(&self.deque.own, self.reg);
        }
    }
}
