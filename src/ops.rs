//! The body of every operation: one per kind (single push, batch push, single pop, batch pop), which every
//! public form of [`RawDeque`] and [`SharedDeque`](crate::SharedDeque) forwards to with its end, its way of
//! filling or reading a slot, and its [`Wait`].
//!
//! # What happens on a push
//! 1. [`RawDeque::push_with`] checks the length against the slot, asks the CPU for the slot it will
//!    probably fill ([`prefetch_push`](RawDeque::prefetch_push)), and takes the lock: one trylock when it is
//!    free (`lock.rs`).
//! 2. Under the lock, [`RawLockGuard::push_fast`] computes the slot with [`ring::push_slot`], writes the
//!    length and the payload, and publishes the new ring word with one store (`guard.rs`).
//! 3. Dropping the guard unlocks, and only if a consumer is counted asleep, bumps its futex word and wakes it
//!    (`guard.rs`, `wait.rs`).
//!
//! If the deque is full, closed or its ring word is out of range, step 2 hands the held lock to
//! [`push_slow`](RawDeque::push_slow), which runs the push through a [`Ring`](crate::ring::Ring) view in the
//! retry loop of [`RawDeque::blocking`]: spin, then sleep, until there is room, the deque closes or the wait
//! ends (`wait.rs`). A pop is the mirror image.

use crate::err::{PopError, PushError};
use crate::guard::{RawLockGuard, last_ring};
use crate::layout;
use crate::raw::RawDeque;
use crate::ring::{End, RingError};
use crate::tuning::{BATCH_LOCK_PAUSES, LOCK_BACKOFF_MAX, PREFETCH_SLOTS};
use crate::wait::{Blocked, Cond, Wait};

use std::sync::atomic::Ordering::Relaxed;

impl RawDeque {
    /// Shared body of every single-message push: an `n`-byte message that `fill` writes into its slot.
    pub(crate) fn push_with(
        &self,
        end: End,
        n: usize,
        fill: impl FnOnce(&mut [u8]),
        wait: Wait,
    ) -> Result<(), PushError<()>> {
        let max = self.max_message_len();
        if n > max {
            return Err(PushError::TooLarge { value: (), len: n, max });
        }
        self.prefetch_push(end);
        let mut guard = match self.lock_until(wait.deadline(), LOCK_BACKOFF_MAX) {
            Ok(guard) => guard,
            Err(blocked) => return flatten_push(Err(blocked)),
        };
        match guard.push_fast(end, n, fill) {
            Ok(()) => Ok(()),
            Err(fill) => self.push_slow(guard, end, n, fill, wait),
        }
    }

    /// The rest of [`push_with`](Self::push_with), for the cases its fast path leaves (full, closed or
    /// corrupted): out of line, so that the usual case compiles to a short function.
    #[inline(never)]
    fn push_slow(
        &self,
        guard: RawLockGuard<'_>,
        end: End,
        n: usize,
        fill: impl FnOnce(&mut [u8]),
        wait: Wait,
    ) -> Result<(), PushError<()>> {
        let mut fill = Some(fill);
        let r = self.blocking(Cond::NotFull, wait, LOCK_BACKOFF_MAX, Some(guard), |g| {
            if g.is_closed() {
                return Some(Err(PushError::Closed(())));
            }
            let pushed = g.modify(|ring| {
                ring.push_with(end, n, |buf| {
                    if let Some(f) = fill.take() {
                        f(buf)
                    }
                })
            });
            match pushed {
                Ok(()) => Some(Ok(())),
                Err(RingError::Full) => None,
                Err(e) => Some(Err(PushError::Failed { value: (), error: g.ring_error(e) })),
            }
        });
        flatten_push(r)
    }

    /// Shared body of every batch push: pushes `count` messages, `msg(i)` giving the i-th, taking the lock once
    /// per stretch of free room. Returns how many were pushed; on error, how many were pushed before it.
    pub(crate) fn push_many_with<'m>(
        &self,
        end: End,
        count: usize,
        msg: impl Fn(usize) -> &'m [u8],
        wait: Wait,
    ) -> Result<usize, PushError<usize>> {
        let max = self.max_message_len();
        if let Some(len) = (0..count).map(|i| msg(i).len()).find(|&len| len > max) {
            return Err(PushError::TooLarge { value: 0, len, max });
        }
        self.prefetch_batch(end, true, count);
        let mut done = 0;
        let r = self.blocking(Cond::NotFull, wait, BATCH_LOCK_PAUSES, None, |g| {
            if g.is_closed() {
                return Some(Err(PushError::Closed(done)));
            }
            let before = done;
            let pushed = g.modify(|ring| {
                while done < count {
                    let m = msg(done);
                    match ring.push_with(end, m.len(), |b| b.copy_from_slice(m)) {
                        Ok(()) => done += 1,
                        Err(RingError::Full) => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            });
            match pushed {
                Err(e) => Some(Err(PushError::Failed { value: before, error: g.ring_error(e) })),
                Ok(()) if done == count => Some(Ok(done)),
                // A try pushes what fits; a blocking push goes on waiting for the rest.
                Ok(()) if done > before && matches!(wait, Wait::Now) => Some(Ok(done)),
                Ok(()) => None,
            }
        });
        match r {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e),
            Err(Blocked::WouldBlock) => Err(PushError::Full(done)),
            Err(Blocked::Timeout | Blocked::ProducersGone) => Err(PushError::Timeout(done)),
            Err(Blocked::Interrupted) => Err(PushError::Interrupted(done)),
            Err(Blocked::Failed(error)) => Err(PushError::Failed { value: done, error: *error }),
        }
    }

    /// Shared body of every single-message pop: hands the message to `read` in place, then removes it.
    pub(crate) fn pop_with<R>(&self, end: End, read: impl FnOnce(&[u8]) -> R, wait: Wait) -> Result<R, PopError> {
        let mut guard = match self.lock_until(wait.deadline(), LOCK_BACKOFF_MAX) {
            Ok(guard) => guard,
            Err(blocked) => return flatten_pop(Err(blocked)),
        };
        match guard.pop_fast(end, read) {
            Ok(r) => Ok(r),
            Err(read) => self.pop_slow(guard, end, read, wait),
        }
    }

    /// The rest of [`pop_with`](Self::pop_with), for the cases its fast path leaves (empty or corrupted):
    /// out of line, as [`push_slow`](Self::push_slow).
    #[inline(never)]
    fn pop_slow<R>(
        &self,
        guard: RawLockGuard<'_>,
        end: End,
        read: impl FnOnce(&[u8]) -> R,
        wait: Wait,
    ) -> Result<R, PopError> {
        let mut read = Some(read);
        let r = self.blocking(Cond::NotEmpty(end), wait, LOCK_BACKOFF_MAX, Some(guard), |g| {
            let popped = g.modify(|ring| ring.pop_with(end, |b| read.take().map(|f| f(b))));
            match popped {
                Ok(Some(v)) => Some(Ok(v)),
                Ok(None) => Some(Err(PopError::Failed(self.corrupted("a message was read twice")))),
                Err(RingError::Empty) if g.is_closed() => Some(Err(PopError::Closed)),
                Err(RingError::Empty) => None,
                Err(e) => Some(Err(PopError::Failed(g.ring_error(e)))),
            }
        });
        flatten_pop(r)
    }

    /// Shared body of every batch pop: removes up to `max` messages under one lock acquisition (waiting for
    /// the first as `wait` says), handing each to `read`. If `read` fails, that message is removed too and
    /// the batch stops there. Returns how many were removed.
    pub(crate) fn pop_many_with<E>(
        &self,
        end: End,
        max: usize,
        mut read: impl FnMut(&[u8]) -> Result<(), E>,
        wait: Wait,
    ) -> Result<usize, E>
    where
        E: From<PopError>,
    {
        if max == 0 {
            return Ok(0);
        }
        self.prefetch_batch(end, false, max);
        let r = self.blocking(Cond::NotEmpty(end), wait, BATCH_LOCK_PAUSES, None, |g| {
            let mut failure = None;
            let popped = g.modify(|ring| {
                let mut n = 0;
                while n < max && ring.len() > 0 {
                    let r = ring.pop_with(end, &mut read)?;
                    n += 1;
                    if let Err(e) = r {
                        failure = Some(e);
                        break;
                    }
                }
                Ok(n)
            });
            match (popped, failure) {
                (Ok(_), Some(e)) => Some(Err(e)),
                (Ok(0), None) if g.is_closed() => Some(Err(E::from(PopError::Closed))),
                (Ok(0), None) => None,
                (Ok(n), None) => Some(Ok(n)),
                (Err(e), _) => Some(Err(E::from(PopError::Failed(g.ring_error(e))))),
            }
        });
        match r {
            Ok(inner) => inner,
            Err(blocked) => Err(E::from(blocked_pop(blocked))),
        }
    }

    /// Asks the CPU for the slot a single-message push at `end` will probably fill, for writing, before the
    /// lock is taken, so that fetching it overlaps with the lock's cache line instead of following it. The
    /// guess comes from the ring word this thread's last push published: reading the shared one here would
    /// cost a cache-line transfer of its own. A pusher at the back of a deque popped at the front guesses
    /// right, since pops at the front leave head + length where they were (round trips 0.63 -> 0.61 us).
    #[inline]
    fn prefetch_push(&self, end: End) {
        let (deque, word) = last_ring();
        if deque == self.seg.slots_addr() {
            let (head, len) = layout::unpack_ring(word);
            let slot = match end {
                End::Back => u64::from(head) + u64::from(len),
                End::Front => u64::from(head) + u64::from(self.seg.capacity) - 1,
            };
            self.seg.prefetch_slot(slot, true);
        }
    }

    /// Asks the CPU for the slots a batch is about to use (see [`PREFETCH_SLOTS`]): the first `n` messages
    /// it would pop from `end`, or (`push`) the free slots it would fill. Reads the ring word without the
    /// lock, so this is a guess; garbage in the header only fetches the wrong slots.
    fn prefetch_batch(&self, end: End, push: bool, n: usize) {
        let (head, len) = layout::unpack_ring(self.header().ring.ring.load(Relaxed));
        let (head, len, cap) = (u64::from(head), u64::from(len), u64::from(self.seg.capacity));
        let available = if push { cap.saturating_sub(len) } else { len.min(cap) };
        let n = available.min(n.min(PREFETCH_SLOTS) as u64);
        // Counted from the head: pops read [0, n) at the front and [len - n, len) at the back; pushes fill
        // [len, len + n) at the back and [cap - n, cap), the slots just before the head, at the front.
        let first = match (end, push) {
            (End::Front, false) => head,
            (End::Back, false) => head + len - n,
            (End::Back, true) => head + len,
            (End::Front, true) => head + cap - n,
        };
        self.seg.prefetch(first, n as u32);
    }
}

#[inline]
fn flatten_push(r: Result<Result<(), PushError<()>>, Blocked>) -> Result<(), PushError<()>> {
    match r {
        Ok(inner) => inner,
        Err(Blocked::WouldBlock) => Err(PushError::Full(())),
        Err(Blocked::Timeout) => Err(PushError::Timeout(())),
        Err(Blocked::Interrupted) => Err(PushError::Interrupted(())),
        // Only a wait for a message ends so.
        Err(Blocked::ProducersGone) => Err(PushError::Timeout(())),
        Err(Blocked::Failed(error)) => Err(PushError::Failed { value: (), error: *error }),
    }
}

#[inline]
fn flatten_pop<R>(r: Result<Result<R, PopError>, Blocked>) -> Result<R, PopError> {
    match r {
        Ok(inner) => inner,
        Err(blocked) => Err(blocked_pop(blocked)),
    }
}

#[inline]
fn blocked_pop(blocked: Blocked) -> PopError {
    match blocked {
        Blocked::WouldBlock => PopError::Empty,
        Blocked::Timeout => PopError::Timeout,
        Blocked::ProducersGone => PopError::ProducersGone,
        Blocked::Interrupted => PopError::Interrupted,
        Blocked::Failed(e) => PopError::Failed(*e),
    }
}
