//! [`RawLockGuard`]: the deque's lock, held. Every change to the ring happens through it: it publishes a
//! new head and length with one store after the payload is in place, does the single-message push and pop
//! in a straight line when it can, and on drop unlocks and wakes whoever sleeps waiting for what changed.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, Release};

use crate::err::{Error, PopError, PushError};
use crate::layout::{self, Header, WaitWord};
use crate::raw::RawDeque;
use crate::ring::{self, End, Ring, RingError};
use crate::{os, wait};

thread_local! {
    /// The deque this thread last pushed to (the address of its slot area in this process) and the ring word
    /// it published there; see `RawDeque::prefetch_push`. Per thread rather than per handle, so that
    /// threads sharing a handle do not pass a cache line back and forth to keep it.
    static LAST_RING: std::cell::Cell<(usize, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// The slot-area address and ring word of this thread's last push (see [`LAST_RING`]).
#[inline]
pub(crate) fn last_ring() -> (usize, u64) {
    LAST_RING.get()
}

/// The deque's lock, held: several operations under it happen atomically for every other thread and process.
/// Obtained from [`RawDeque::lock`]. Dropping it unlocks and wakes whoever waits for what changed.
///
/// The guard is not `Send`: the lock records which thread holds it, so that the same thread locking again
/// gets an error rather than waiting for itself.
///
/// # Examples
///
/// ```
/// # let name = format!("doc-guard-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(32).open_raw()?;
/// q.push_back_many(&["one", "two", "three"])?;
/// {
///     let mut g = q.lock()?;
///     let all: Vec<&[u8]> = g.iter().collect::<Result<_, _>>()?;
///     assert_eq!(all, [&b"one"[..], b"two", b"three"]);
///     // Move the back message to the front, atomically.
///     let back = g.try_pop_back()?;
///     g.try_push_front(&back).map_err(|e| e.map(|_| ()))?;
/// }
/// assert_eq!(q.pop_front()?, b"three");
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawLockGuard<'a> {
    deque: &'a RawDeque,
    added: bool,
    removed: bool,
    closed: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RawLockGuard<'a> {
    /// The guard of a lock this thread has just taken.
    #[inline]
    pub(crate) fn new(deque: &'a RawDeque) -> Self {
        RawLockGuard { deque, added: false, removed: false, closed: false, _not_send: PhantomData }
    }

    /// Makes the drop wake the sleepers of both conditions, counted or not: after a recovery, the dead holder
    /// may have changed the deque without living to wake them.
    pub(crate) fn owe_wake_ups(&mut self) {
        self.added = true;
        self.removed = true;
    }

    #[inline]
    pub(crate) fn header(&self) -> &'a Header {
        self.deque.header()
    }

    pub(crate) fn ring_error(&self, e: RingError) -> Error {
        match e {
            RingError::Corrupt(what) => self.deque.corrupted(what),
            other => self.deque.corrupted(format!("unexpected ring state {other:?}")),
        }
    }

    /// A read-only view of the ring, valid while `self` is borrowed.
    fn view(&self) -> Result<Ring<&[u8]>, Error> {
        let (head, len) = layout::unpack_ring(self.header().ring.ring.load(Relaxed));
        // SAFETY: this guard holds the lock for as long as the returned view borrows it, and mutable slices of
        // the slot area are only made by `modify`, which takes `&mut self` and so cannot overlap this borrow.
        let slots = unsafe { self.deque.seg.slots() };
        Ring::new(slots, self.deque.seg.slot_size as usize, self.deque.seg.capacity, head, len)
            .map_err(|e| self.ring_error(e))
    }

    /// Checks every stored length (after a recovery: the segment is untrusted).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.view()?.validate().map_err(|e| self.ring_error(e))
    }

    /// Runs `f` on a view of the ring and publishes the resulting head and length with one store, after
    /// every payload byte `f` wrote: a crash before that store leaves the deque as it was.
    #[inline]
    pub(crate) fn modify<R>(
        &mut self,
        f: impl FnOnce(&mut Ring<&mut [u8]>) -> Result<R, RingError>,
    ) -> Result<R, RingError> {
        let r = &self.header().ring;
        let (head, len) = layout::unpack_ring(r.ring.load(Relaxed));
        // SAFETY: this guard holds the lock; `&mut self` rules out any view or message borrowed from this
        // guard, and the slice does not outlive this call.
        let slots = unsafe { self.deque.seg.slots_mut() };
        let mut ring = Ring::new(slots, self.deque.seg.slot_size as usize, self.deque.seg.capacity, head, len)?;
        let out = f(&mut ring);
        let (new_head, new_len) = (ring.head(), ring.len());
        if (new_head, new_len) != (head, len) {
            self.publish(len, new_head, new_len);
        }
        out
    }

    /// Publishes a new head and length with one store of the ring word, after every payload byte of the
    /// change is in place, and counts the change (`len` was the length before it).
    #[inline]
    fn publish(&mut self, len: u32, new_head: u32, new_len: u32) {
        let r = &self.header().ring;
        let word = layout::pack_ring(new_head, new_len);
        r.ring.store(word, Release);
        if new_len > len {
            self.added = true;
            LAST_RING.set((self.deque.seg.slots_addr(), word));
            bump(&r.pushed, (new_len - len) as u64);
            if new_len as u64 > r.high_water.load(Relaxed) {
                r.high_water.store(new_len as u64, Relaxed);
            }
        } else if new_len < len {
            self.removed = true;
            bump(&r.popped, (len - new_len) as u64);
        } else {
            // Same length, new head: a pop and a push inside one batch. Both sides may be waiting.
            self.added = true;
            self.removed = true;
        }
    }

    /// A single-message push in a straight line, for the usual case: the deque is open, has room, and its
    /// ring word is in range. Otherwise hands `fill` back untouched, for the general path (which waits for
    /// room and reports a closed or corrupted deque). `n` must fit in a slot.
    ///
    /// The general path builds a [`Ring`] view and runs the push as a closure inside the retry loop of
    /// `RawDeque::blocking`; this does the same arithmetic with the functions `Ring` itself uses
    /// ([`ring::push_slot`], [`ring::write_slot`]), and less of everything else: 712 -> 516 instructions per
    /// 64 B push+pop, round trips 0.51 -> 0.46 us (see docs/DESIGN.md).
    #[inline]
    pub(crate) fn push_fast<F: FnOnce(&mut [u8])>(&mut self, end: End, n: usize, fill: F) -> Result<(), F> {
        let h = self.header();
        let (head, len) = layout::unpack_ring(h.ring.ring.load(Relaxed));
        let Some((index, new_head)) = ring::push_slot(end, head, len, self.deque.seg.capacity) else {
            return Err(fill);
        };
        if h.ring.closed.load(Relaxed) != 0 {
            return Err(fill);
        }
        // SAFETY: `push_slot` returns an index below the capacity; this guard holds the lock, and `&mut self`
        // rules out any other slice of the slot area borrowed from it; the slice does not outlive this call.
        let slot = unsafe { self.deque.seg.slot_mut(index) };
        ring::write_slot(slot, n, fill);
        self.publish(len, new_head, len + 1);
        Ok(())
    }

    /// A single-message pop in a straight line, for the usual case: the deque holds a message whose stored
    /// length is in range. Otherwise hands `read` back untouched, for the general path (which waits for a
    /// message and reports a closed or corrupted deque). See [`push_fast`](Self::push_fast).
    #[inline]
    pub(crate) fn pop_fast<R, F: FnOnce(&[u8]) -> R>(&mut self, end: End, read: F) -> Result<R, F> {
        let (head, len) = layout::unpack_ring(self.header().ring.ring.load(Relaxed));
        let Some((index, new_head)) = ring::pop_slot(end, head, len, self.deque.seg.capacity) else {
            return Err(read);
        };
        // SAFETY: as in `push_fast`.
        let slot = unsafe { self.deque.seg.slot_mut(index) };
        let Some(msg) = ring::payload(slot) else {
            return Err(read);
        };
        let r = read(msg);
        self.publish(len, new_head, len - 1);
        Ok(r)
    }

    /// Number of messages in the deque.
    pub fn len(&self) -> usize {
        self.deque.len()
    }

    /// Whether the deque is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the deque is full.
    pub fn is_full(&self) -> bool {
        self.deque.is_full()
    }

    /// Whether the deque is closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.deque.is_closed()
    }

    /// The message at `index` from the front, in place.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the segment's state or the slot's length is out of range.
    pub fn get(&self, index: usize) -> Result<Option<&[u8]>, Error> {
        let Ok(i) = u32::try_from(index) else { return Ok(None) };
        let ring = self.view()?;
        if i >= ring.len() {
            return Ok(None);
        }
        match ring.get_in(i) {
            Ok(m) => Ok(Some(m)),
            Err(e) => Err(self.ring_error(e)),
        }
    }

    /// The front message, in place.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn front(&self) -> Result<Option<&[u8]>, Error> {
        self.get(0)
    }

    /// The back message, in place.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn back(&self) -> Result<Option<&[u8]>, Error> {
        // Through the validated view, as `front` does: a head out of range is an error even at length zero.
        match self.view()?.len() {
            0 => Ok(None),
            n => self.get(n as usize - 1),
        }
    }

    /// Iterates over the messages front to back without removing them.
    pub fn iter(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        (0..self.len()).map_while(move |i| self.get(i).transpose())
    }

    /// Pushes at the back if there is room (never waits: the lock is held).
    ///
    /// # Errors
    /// As [`RawDeque::try_push_back`].
    pub fn try_push_back<'m>(&mut self, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        self.push(End::Back, msg)
    }

    /// Pushes at the front if there is room.
    ///
    /// # Errors
    /// As [`RawDeque::try_push_front`].
    pub fn try_push_front<'m>(&mut self, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        self.push(End::Front, msg)
    }

    fn push<'m>(&mut self, end: End, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        if self.is_closed() {
            return Err(PushError::Closed(msg));
        }
        let r = self.modify(|ring| ring.push_with(end, msg.len(), |b| b.copy_from_slice(msg)));
        match r {
            Ok(()) => Ok(()),
            Err(RingError::Full) => Err(PushError::Full(msg)),
            Err(RingError::TooLarge { len, max }) => Err(PushError::TooLarge { value: msg, len, max }),
            Err(e) => Err(PushError::Failed { value: msg, error: self.ring_error(e) }),
        }
    }

    /// Removes the front message if there is one.
    ///
    /// # Errors
    /// [`PopError::Empty`], or [`PopError::Closed`] when closed and drained.
    pub fn try_pop_front(&mut self) -> Result<Vec<u8>, PopError> {
        self.pop(End::Front, <[u8]>::to_vec)
    }

    /// Removes the back message if there is one.
    ///
    /// # Errors
    /// As [`try_pop_front`](Self::try_pop_front).
    pub fn try_pop_back(&mut self) -> Result<Vec<u8>, PopError> {
        self.pop(End::Back, <[u8]>::to_vec)
    }

    pub(crate) fn pop<R>(&mut self, end: End, read: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        let r = self.modify(|ring| ring.pop_with(end, read));
        match r {
            Ok(v) => Ok(v),
            Err(RingError::Empty) if self.is_closed() => Err(PopError::Closed),
            Err(RingError::Empty) => Err(PopError::Empty),
            Err(e) => Err(PopError::Failed(self.ring_error(e))),
        }
    }

    /// Removes every message; returns how many there were.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the segment's state is out of range.
    pub fn clear(&mut self) -> Result<usize, Error> {
        let r = self.modify(|ring| {
            let n = ring.len() as usize;
            ring.clear();
            Ok(n)
        });
        r.map_err(|e| self.ring_error(e))
    }

    /// Closes the deque (see [`RawDeque::close`]); blocked processes wake when the guard is dropped.
    pub fn close(&mut self) {
        self.header().ring.closed.store(1, Release);
        self.closed = true;
    }
}

/// Adds `n` to a counter, wrapping: the header is untrusted and a plain `+` panics on overflow.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Drop for RawLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let h = self.header();
        // Read under the lock: a sleeper registers under the lock before it sleeps, so a zero here means
        // nobody sleeps waiting for this change (spinners watch the ring word themselves).
        let asleep = |changed: bool, w: &WaitWord| if changed { wait::sleepers(w) } else { 0 };
        let not_empty = asleep(self.added, &h.not_empty);
        let not_full = asleep(self.removed, &h.not_full);
        if self.added | self.removed {
            // Where this thread runs, for a waiter deciding whether to spin (see `wait.rs`); the store goes
            // to the lock's cache line, which this thread holds anyway.
            let cpu = os::current_cpu();
            if self.added {
                h.ring.last_cpu[0].store(cpu, Relaxed);
            }
            if self.removed {
                h.ring.last_cpu[1].store(cpu, Relaxed);
            }
        }
        h.lock.unlock();
        if not_empty != 0 || self.closed {
            self.deque.signal(&h.not_empty, not_empty);
        }
        if not_full != 0 || self.closed {
            self.deque.signal(&h.not_full, not_full);
        }
    }
}
