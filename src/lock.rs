//! The deque's lock and its recovery.
//!
//! A process-shared robust pthread mutex in the header guards the ring word and the slots. [`LockCell`]'s
//! methods here are the only code that calls pthread on it: replacing the lock means replacing this file.
//!
//! A locker first tries once; if the lock is held it spins briefly (bounded by [`LOCK_SPIN`]), because
//! critical sections are a memcpy long and a sleep costs far more, and then blocks in the kernel. Between
//! its looks at a held lock a single-message operation backs off exponentially, so that a busy producer and
//! consumer take the lock in runs rather than handing its cache line back and forth for every message; a
//! batch looks after every PAUSE. A locker that finds the previous holder died (`EOWNERDEAD`) validates the
//! ring, marks the mutex consistent and counts a recovery. Since a push writes its payload before the single
//! ring-word store that publishes it, a holder killed at any instant leaves nothing torn.

use std::io;
use std::time::Instant;

use crate::err::Error;
use crate::guard::{RawLockGuard, bump};
use crate::layout::LockCell;
use crate::os::{self, LockFail, Locked};
use crate::raw::RawDeque;
use crate::tuning::{LOCK_BACKOFF_MAX, LOCK_SPIN, SPIN_POLLS};
use crate::wait::Blocked;

// Every method below calls pthread on `self.0`. What makes that sound: a `LockCell` is only reachable
// through the `Header` of a mapped segment (`Segment::header`), which stays mapped while it is borrowed, and
// `Segment::attach` hands out only segments whose creator initialized the mutex with `os::mutex_init` before
// it published the READY state. glibc's robust mutex functions touch only the mutex's own bytes (and this
// thread's robust list); a mutex that garbage was written over yields error codes, which are mapped below.
impl LockCell {
    /// One attempt to take the lock, without blocking.
    #[inline]
    pub(crate) fn try_lock(&self) -> Result<Locked, LockFail> {
        // SAFETY: an initialized, mapped process-shared mutex (see above).
        unsafe { os::mutex_trylock(self.0.get()) }
    }

    /// Whether the lock word shows an owner: a plain read, a hint for spinners (see `os::mutex_looks_held`).
    #[inline]
    pub(crate) fn looks_held(&self) -> bool {
        // SAFETY: as in `try_lock`.
        unsafe { os::mutex_looks_held(self.0.get()) }
    }

    /// After a first [`try_lock`](Self::try_lock) that returned `first`: if the lock was busy, spins for up
    /// to [`LOCK_SPIN`] with pauses between looks that double up to `max_pauses` PAUSEs, then blocks in the
    /// kernel until `deadline` (forever with `None`).
    #[inline(never)]
    pub(crate) fn acquire(
        &self,
        first: Result<Locked, LockFail>,
        deadline: Option<Instant>,
        max_pauses: u32,
    ) -> Result<Locked, LockFail> {
        if !matches!(first, Err(LockFail::Busy)) {
            return first;
        }
        // Each look pulls the lock's cache line away from the holder; backing off lets the holder take the
        // lock again and again from its own cache (see docs/DESIGN.md, LOCK_BACKOFF_MAX). The first looks
        // still come within a few PAUSEs, for the common case of a holder about to unlock.
        let spin_until = Instant::now() + LOCK_SPIN;
        let spin_until = deadline.map_or(spin_until, |d| d.min(spin_until));
        let mut pauses = 1u32;
        let mut looks = 0u32;
        loop {
            for _ in 0..pauses {
                std::hint::spin_loop();
            }
            if !self.looks_held() {
                let r = self.try_lock();
                if !matches!(r, Err(LockFail::Busy)) {
                    return r;
                }
            }
            pauses = (pauses * 2).min(max_pauses);
            looks = looks.wrapping_add(1);
            // The clock costs about as much as a few PAUSEs: read it once per SPIN_POLLS short looks.
            if (pauses >= SPIN_POLLS || looks.is_multiple_of(SPIN_POLLS)) && Instant::now() >= spin_until {
                // SAFETY: as in `try_lock`.
                return unsafe { os::mutex_lock(self.0.get(), deadline) };
            }
        }
    }

    /// Marks the mutex usable again after its owner died; the caller got [`Locked::OwnerDied`].
    fn mark_consistent(&self) -> io::Result<()> {
        // SAFETY: as in `try_lock`; the calling thread holds the mutex in the owner-died state (the contract
        // of `os::mutex_consistent`), which the only caller, `RawDeque::recover`, has just been told.
        unsafe { os::mutex_consistent(self.0.get()) }
    }

    /// Releases the lock; called only by the guard that holds it.
    #[inline]
    pub(crate) fn unlock(&self) {
        // SAFETY: as in `try_lock`; the only caller is `RawLockGuard::drop`, and a guard exists only while
        // this thread holds the lock (the contract of `os::mutex_unlock`).
        unsafe { os::mutex_unlock(self.0.get()) }
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
    /// [`Error::AlreadyLocked`] if this thread holds the lock already; [`Error::Corrupted`] if the lock was
    /// left unrecoverable.
    pub fn lock(&self) -> Result<RawLockGuard<'_>, Error> {
        self.lock_until(None, LOCK_BACKOFF_MAX).map_err(|b| match b {
            Blocked::Failed(e) => *e,
            _ => self.corrupted("the lock timed out without a deadline"),
        })
    }

    /// Takes the lock, spinning with pauses up to `max_pauses` PAUSEs, then sleeping until `deadline`.
    /// Inline, so that the usual case compiles to one trylock and a branch inside each operation; the rest is
    /// out of line (a 64-byte push+pop in one process went from 157 to 108 ns with this split).
    #[inline]
    pub(crate) fn lock_until(&self, deadline: Option<Instant>, max_pauses: u32) -> Result<RawLockGuard<'_>, Blocked> {
        let cell = &self.header().lock;
        match cell.try_lock() {
            Ok(Locked::Clean) => Ok(RawLockGuard::new(self)),
            first => self.lock_slow(cell.acquire(first, deadline, max_pauses)),
        }
    }

    /// The outcome of a lock attempt that did not simply succeed: recovery and errors.
    #[inline(never)]
    fn lock_slow(&self, r: Result<Locked, LockFail>) -> Result<RawLockGuard<'_>, Blocked> {
        let failed = |e: Error| Blocked::Failed(Box::new(e));
        // A guard is made only once the lock is held: its Drop unlocks, and on EDEADLK the lock belongs to
        // another guard of this thread that must stay locked.
        match r {
            Ok(Locked::Clean) => Ok(RawLockGuard::new(self)),
            Ok(Locked::OwnerDied) => {
                let guard = RawLockGuard::new(self);
                self.recover(&guard).map_err(failed)?;
                Ok(guard)
            }
            Err(LockFail::TimedOut) => Err(Blocked::Timeout),
            Err(LockFail::Busy) => Err(Blocked::WouldBlock),
            Err(LockFail::Deadlock) => Err(failed(Error::AlreadyLocked { name: self.name().to_owned() })),
            Err(LockFail::NotRecoverable) => {
                Err(failed(self.corrupted("its lock was left unrecoverable by a crashed process")))
            }
            Err(LockFail::Other(source)) => {
                Err(failed(Error::Os { name: self.name().to_owned(), op: "taking the lock", source }))
            }
        }
    }

    /// The previous holder died inside the critical section. Because every change is published by one store
    /// of the ring word after the payload is in place, the ring is consistent; check it anyway (the segment
    /// is untrusted), then mark the mutex usable again and count the recovery.
    fn recover(&self, guard: &RawLockGuard<'_>) -> Result<(), Error> {
        self.header().lock.mark_consistent().map_err(|source| Error::Os {
            name: self.name().to_owned(),
            op: "recovering the lock",
            source,
        })?;
        // Wrapping, like every counter: the header is untrusted and a plain `+ 1` panics on u64::MAX.
        bump(&self.header().ring.recoveries, 1);
        guard.validate()
    }
}
