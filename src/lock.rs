//! The deque's lock and its recovery.
//!
//! A futex word of our own in the header ([`LockWord`]) guards the ring word and the slots. Its owner is a
//! registration (see `registry.rs`), not a thread id: a thread id means something only inside its PID
//! namespace, and two processes that are each pid 1 in their own container would look like one. Taking a
//! free lock is one compare-and-swap of 0 for the handle's owner word; releasing it is one swap back to 0,
//! plus a `FUTEX_WAKE` only when the word says that someone sleeps on it.
//!
//! A locker that finds the lock held spins briefly (bounded by [`LOCK_SPIN`]), backing off between looks,
//! because critical sections are a memcpy long and a sleep costs far more; then it marks the word
//! [`LOCK_WAITERS`] and sleeps on it. Nobody wakes a waiter when a holder dies, so a sleeping waiter looks
//! again every [`LOCK_RECHECK`]: if the owner's registration is dead (its file lock released by the kernel,
//! or its entry taken again in a later generation), the waiter takes the lock over with a
//! compare-and-swap, validates the ring, counts a recovery and wakes the sleepers the dead holder may have
//! owed a wake-up. Since a push writes its payload before the single ring-word store that publishes it, a
//! holder killed at any instant leaves nothing torn.
//!
//! The word also records a token of the holding thread, so that a thread locking a deque it holds already
//! (through any handle) gets [`Error::AlreadyLocked`] instead of waiting for itself.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use crate::err::Error;
use crate::guard::{RawLockGuard, bump};
use crate::layout::{LOCK_WAITERS, LockWord, unpack_lock};
use crate::os;
use crate::raw::RawDeque;
use crate::tuning::{LOCK_BACKOFF_MAX, LOCK_RECHECK, LOCK_SPIN, SPIN_POLLS};
use crate::wait::Blocked;

/// How a lock attempt that got the lock found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Free.
    Clean,
    /// Held by a registration that is dead: the caller now holds it and must recover.
    OwnerDied,
}

/// Why a lock attempt did not get the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockFail {
    /// The deadline passed.
    TimedOut,
    /// This thread holds it already.
    Deadlock,
}

thread_local! {
    /// This thread's token (see [`thread_token`]); 0 until first used.
    static TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A value unique to this thread among the live threads of this process, and unlike any other process's:
/// the address of this thread's [`TOKEN`] mixed with a random number drawn once per process. Never 0.
#[inline]
fn thread_token() -> u64 {
    TOKEN.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        static PROCESS: OnceLock<u64> = OnceLock::new();
        let nonce = *PROCESS.get_or_init(|| RandomState::new().hash_one(0x5348_4d44_u64));
        let v = (nonce ^ t as *const Cell<u64> as u64) | 1;
        t.set(v);
        v
    })
}

impl LockWord {
    /// One attempt to take a free lock as `me` (an owner word from `layout::lock_owner`).
    #[inline]
    pub(crate) fn try_lock(&self, me: u32) -> bool {
        if self.word.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            self.holder.store(thread_token(), Relaxed);
            return true;
        }
        false
    }

    /// Whether the word names an owner: a plain read, a hint for spinners.
    #[inline]
    pub(crate) fn looks_held(&self) -> bool {
        unpack_lock(self.word.load(Relaxed)).is_some()
    }

    /// Takes the lock from the value `seen` (no owner, or a dead one) if the word still holds it, keeping
    /// the waiters flag and adding `waiters`.
    fn take_from(&self, seen: u32, me: u32, waiters: u32) -> bool {
        let new = me | (seen & LOCK_WAITERS) | waiters;
        if self.word.compare_exchange(seen, new, Acquire, Relaxed).is_ok() {
            self.holder.store(thread_token(), Relaxed);
            return true;
        }
        false
    }

    /// Releases the lock; called only by the guard that holds it. The holder token is cleared first, so that
    /// a thread that sees another owner in the word can never read its own old token next to it.
    #[inline]
    pub(crate) fn unlock(&self) {
        self.holder.store(0, Relaxed);
        if self.word.swap(0, Release) & LOCK_WAITERS != 0 {
            os::futex_wake(&self.word, 1);
        }
    }
}

impl RawDeque {
    /// Takes the deque's lock, so that several operations happen atomically with respect to every other
    /// thread and process, and so that the messages can be read in place without removing them.
    ///
    /// Keep the guard briefly: every other user of the deque waits for it. Blocking operations are not
    /// available on the guard (they would wait forever while holding the lock).
    ///
    /// # Examples
    ///
    /// ```
    /// # let name = format!("doc-lock-{}", std::process::id());
    /// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(32).open_raw()?;
    /// q.push_back(b"a")?;
    /// let mut g = q.lock()?;
    /// if g.front()? == Some(&b"a"[..]) {
    ///     g.try_push_front(b"before a").map_err(|e| e.map(|_| ()))?;
    /// }
    /// assert_eq!(g.len(), 2);
    /// # drop(g);
    /// # shmdeque::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AlreadyLocked`] if this thread holds the lock already; [`Error::Corrupted`] if a dead holder
    /// left the ring inconsistent.
    pub fn lock(&self) -> Result<RawLockGuard<'_>, Error> {
        self.lock_until(None, LOCK_BACKOFF_MAX).map_err(|b| match b {
            Blocked::Failed(e) => *e,
            _ => self.corrupted("the lock timed out without a deadline"),
        })
    }

    /// Takes the lock, spinning with pauses up to `max_pauses` PAUSEs, then sleeping until `deadline`.
    /// Inline, so that the usual case compiles to one compare-and-swap and a branch inside each operation;
    /// the rest is out of line.
    #[inline]
    pub(crate) fn lock_until(&self, deadline: Option<Instant>, max_pauses: u32) -> Result<RawLockGuard<'_>, Blocked> {
        if self.header().lock.try_lock(self.me) {
            return Ok(RawLockGuard::new(self));
        }
        self.lock_slow(deadline, max_pauses)
    }

    /// The rest of [`lock_until`](Self::lock_until): spinning, sleeping, recovery and errors.
    #[inline(never)]
    fn lock_slow(&self, deadline: Option<Instant>, max_pauses: u32) -> Result<RawLockGuard<'_>, Blocked> {
        let failed = |e: Error| Blocked::Failed(Box::new(e));
        match self.acquire(deadline, max_pauses) {
            Ok(Locked::Clean) => Ok(RawLockGuard::new(self)),
            Ok(Locked::OwnerDied) => {
                let mut guard = RawLockGuard::new(self);
                self.recover(&mut guard).map_err(failed)?;
                Ok(guard)
            }
            Err(LockFail::TimedOut) => Err(Blocked::Timeout),
            Err(LockFail::Deadlock) => Err(failed(Error::AlreadyLocked { name: self.name().to_owned() })),
        }
    }

    /// Spins, then sleeps, until the lock is free or its owner is found dead, or the deadline passes.
    fn acquire(&self, deadline: Option<Instant>, max_pauses: u32) -> Result<Locked, LockFail> {
        let lock = &self.header().lock;
        // Each look pulls the lock's cache line away from the holder; backing off lets the holder take the
        // lock again and again from its own cache (docs/DESIGN.md, LOCK_BACKOFF_MAX). The first looks still
        // come within a few PAUSEs, for the common case of a holder about to unlock.
        let spin_until = Instant::now() + LOCK_SPIN;
        let spin_until = deadline.map_or(spin_until, |d| d.min(spin_until));
        let (mut pauses, mut looks) = (1u32, 0u32);
        loop {
            let seen = lock.word.load(Relaxed);
            match unpack_lock(seen) {
                None if lock.take_from(seen, self.me, 0) => return Ok(Locked::Clean),
                None => {}
                Some(_) if lock.holder.load(Relaxed) == thread_token() => return Err(LockFail::Deadlock),
                Some(_) => {}
            }
            for _ in 0..pauses {
                std::hint::spin_loop();
            }
            pauses = (pauses * 2).min(max_pauses);
            looks = looks.wrapping_add(1);
            // The clock costs about as much as a few PAUSEs: read it once per SPIN_POLLS short looks.
            if (pauses >= SPIN_POLLS || looks.is_multiple_of(SPIN_POLLS)) && Instant::now() >= spin_until {
                break;
            }
        }
        // Sleep on the word, looking at the owner's liveness first and then every LOCK_RECHECK: nobody wakes
        // a waiter when a holder dies. A waiter that took the lock after sleeping keeps the waiters flag set,
        // since others may still sleep.
        let mut check_owner = true;
        loop {
            let seen = lock.word.load(Acquire);
            let Some((index, generation)) = unpack_lock(seen) else {
                if lock.take_from(seen, self.me, LOCK_WAITERS) {
                    return Ok(Locked::Clean);
                }
                continue;
            };
            if check_owner && !self.seg.lock_owner_alive(&self.own, index, generation) {
                if lock.take_from(seen, self.me, 0) {
                    return Ok(Locked::OwnerDied);
                }
                continue;
            }
            if seen & LOCK_WAITERS == 0
                && lock.word.compare_exchange(seen, seen | LOCK_WAITERS, Relaxed, Relaxed).is_err()
            {
                continue;
            }
            let now = Instant::now();
            let nap = match deadline {
                Some(d) if now >= d => return Err(LockFail::TimedOut),
                Some(d) => (d - now).min(LOCK_RECHECK),
                None => LOCK_RECHECK,
            };
            os::futex_wait(&lock.word, seen | LOCK_WAITERS, Some(nap));
            // A wake-up means the lock changed hands: look at the new owner only if it keeps this one waiting
            // a whole interval.
            check_owner = now.elapsed() >= nap.saturating_sub(Duration::from_micros(100));
        }
    }

    /// The previous holder died inside the critical section. Because every change is published by one store
    /// of the ring word after the payload is in place, the ring is consistent; check it anyway (the segment
    /// is untrusted), count the recovery, and make the guard wake both kinds of sleepers when it unlocks:
    /// the dead holder may have changed the deque without living to wake anyone.
    fn recover(&self, guard: &mut RawLockGuard<'_>) -> Result<(), Error> {
        // Wrapping, like every counter: the header is untrusted and a plain `+ 1` panics on u64::MAX.
        bump(&self.header().ring.recoveries, 1);
        guard.owe_wake_ups();
        guard.validate()
    }
}
