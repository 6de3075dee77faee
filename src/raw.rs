//! [`RawDeque`]: the deque of byte messages, with the lock, the waits and every operation. The typed
//! [`SharedDeque`](crate::SharedDeque) is a thin codec layer over it.
//!
//! # Locking
//! A process-shared robust pthread mutex in the header guards the ring word and the slots. A locker first
//! spins briefly with `pthread_mutex_trylock` (bounded: [`LOCK_SPIN`]), because critical sections are a
//! memcpy long and a sleep costs far more; then it blocks in the kernel. Between its looks at a held lock a
//! single-message operation backs off exponentially, so that a busy producer and consumer take the lock in
//! runs rather than handing its cache line back and forth for every message; a batch looks after every
//! PAUSE. A locker that gets `EOWNERDEAD` validates the ring, marks the mutex consistent and counts a
//! recovery. Since a push writes its payload before the single ring-word store that publishes it, a holder
//! killed at any instant leaves nothing torn.
//!
//! # Waiting
//! A process that finds the deque full (or empty) unlocks and spins for an adaptive few microseconds,
//! watching the ring word, then tries again. If the condition still does not hold, it registers in the
//! condition's [`WaitWord`] `sleepers` count while holding the lock, remembers its sequence value, unlocks and
//! sleeps on it with `FUTEX_WAIT`. A process that makes room (or adds a message) reads the sleeper count
//! under the lock and, only if someone sleeps, bumps the sequence after unlocking and calls `FUTEX_WAKE` for
//! all of them: while the other side spins or nobody waits, a push or a pop costs no extra atomic operation
//! and no system call. Waking all rather than one means a waiter killed right after its wake-up cannot
//! swallow the wake-up another process needed. A killed sleeper leaves its count behind, which costs later
//! signallers a system call each, until wake-ups on that word (by any process) have woken fewer than were
//! counted many times in a row, and the count is forgotten ([`RawDeque::forget_sleepers`]). A sleeper looks
//! at the deque again every [`SLEEP_RECHECK`] even if nobody wakes it.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::err::{Error, PopError, PushError};
use crate::layout::SLOT_LEN_BYTES;
use crate::layout::{self, Header, WaitWord};
use crate::os::{self, LockFail, Locked};
use crate::ring::{self, Ring, RingError};
use crate::segment::Segment;
use crate::{Config, Stats};

/// How long a locker spins on a held lock before sleeping in the kernel.
pub(crate) const LOCK_SPIN: Duration = Duration::from_micros(20);
/// The longest pause, in PAUSE instructions (about 30 ns each on the AMD EPYC the figures in these comments
/// come from), between two looks at a held lock by a single-message operation; it doubles from one up to
/// this.
const LOCK_BACKOFF_MAX: u32 = 128;
/// The same for a batch operation: it looks after every PAUSE. A batch pays for the lock's cache line once
/// for many messages, so what costs it is the lock standing free while it pauses (batches of 64 across two
/// cores: 31-32 M msg/s looking after every PAUSE, 24-25 M backing off to 32 or 128 PAUSEs).
const BATCH_LOCK_PAUSES: u32 = 1;
/// How many slots a batch asks the CPU to fetch before it takes the lock ([`RawDeque::prefetch_batch`]): the
/// messages a batch pop will read (or the free slots a batch push will write) are likely still in the other
/// process's cache, and fetching them while the lock is free shortens the time it is held. Batches of 64
/// across two cores, medians of seven interleaved runs: 33.5 M msg/s without, 40.4 M with. (For single
/// messages it did not pay: same throughput, round trips 0.75 -> 0.85 us; and fetching the push's slots
/// for writing, with PREFETCHW, measured the same as this plain prefetch.)
const PREFETCH_SLOTS: usize = 64;
/// While it spins, a producer waiting for room waits for this many free slots (at most a quarter of the
/// deque) rather than one: taking the lock for each single slot the consumer frees keeps the lock's cache
/// line moving for every message, while a producer that lets the consumer free a stretch first then fills
/// it in a burst. The spin budget still bounds the wait; after it the producer takes any room there is.
/// 64 B one per call across two cores, copying out, nine interleaved runs: median 3.26 M msg/s waiting
/// for one slot, 3.79 M for 64, 3.89 M for 256 (faster in 8 of 9 runs); in place and batches unchanged.
const ROOM_SLACK_MAX: u32 = 256;
/// PAUSE instructions between two looks at the ring word while waiting for room (see [`RawDeque::spin_for`]).
const ROOM_POLL_PAUSES: u32 = 32;
/// The same while waiting for a message: about 90 ns here. Each look takes the lock's cache line away from
/// whoever writes it, and a look every PAUSE (30 ns, less than one transfer of the line between cores)
/// makes a push on the other side fetch the line again for its ring store and its unlock. 64 B round
/// trips across two cores (cache line round trip ~80 ns), medians of seven interleaved runs: 1, 2, 3, 4
/// and 5 PAUSEs gave 0.56, 0.48, 0.45, 0.47 and 0.51 us. Where the two vCPUs share a core (line round
/// trip ~30 ns) 3 PAUSEs cost a little (0.39 -> 0.42 us), and pausing longer only after seeing the lock
/// held was worse than either (0.61 us). Since push and pop have their short fast paths (less time for a
/// look to land in), the gap is smaller: 0.46 us polling after every PAUSE, 0.44 us every 3; 2, 3 and 4
/// measured the same (0.45 us).
const MESSAGE_POLL_PAUSES: u32 = 3;
/// How long dropping a handle waits for the lock to update the attach count.
const DETACH_LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// Bounds of the adaptive spin before a waiter sleeps on its futex (nanoseconds).
const WAIT_SPIN_MIN_NS: u32 = 250;
const WAIT_SPIN_MAX_NS: u32 = 20_000;
/// How long a waiter spins before it also yields the core between polls. A trade-off, measured with 64 B
/// round trips (p50, medians of interleaved runs): with a third process spinning on one of two cores the
/// partner is often queued on the waiter's own core, and yielding after 0.5 / 1 / 2 us gave 7.2 / 8.3 /
/// 9.6 us; with a partner that is running but answers after about 1 us of work, an early yield is a system
/// call in the middle of the wait (0.5 us: 1.54-1.74 us, 1 and 2 us: 1.29-1.45 us).
const SPIN_YIELD_AFTER: Duration = Duration::from_micros(1);
/// How many wake-up calls in a row (by any process) that wake fewer sleepers than are counted make the
/// signaller of the last one conclude that the count includes processes killed in their sleep, and forget
/// it (see [`RawDeque::forget_sleepers`]). Each such call is a system call of about a microsecond in a push
/// or a pop; forgetting costs one lock acquisition and one more call, and is harmless if it was wrong.
const IDLE_WAKES_TO_FORGET: u32 = 64;
/// How long a sleeper waits at most before it looks at the deque again under the lock: a signaller killed
/// between its unlock and its wake-up call would otherwise leave it asleep until the next change. A look
/// after a long sleep costs about 60 us of CPU (cold caches): with one every 100 ms, a consumer blocked for
/// 0.5 s used 0.35-0.44 ms of CPU instead of 0.06 ms, so the look comes once a second.
const SLEEP_RECHECK: Duration = Duration::from_secs(1);
/// The same when the count cannot take one more sleeper (only a garbage count gets there), so that nobody
/// may wake it at all.
const UNCOUNTED_SLEEP: Duration = Duration::from_millis(1);
/// PAUSEs between two reads of the clock by a waiter for a message (whole polls of
/// [`MESSAGE_POLL_PAUSES`], so 15), and looks between two reads by a locker while its pauses are short (with
/// longer pauses it reads the clock at every look, and a waiter for room at every poll).
const SPIN_POLLS: u32 = 16;

thread_local! {
    /// The deque this thread last pushed to (the address of its slot area in this process) and the ring word
    /// it published there; see [`RawDeque::prefetch_push`]. Per thread rather than per handle, so that
    /// threads sharing a handle do not pass a cache line back and forth to keep it.
    static LAST_RING: std::cell::Cell<(usize, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Which end of the deque an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Front,
    Back,
}

/// How long an operation may wait for room or for a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: the `try_` variants.
    Now,
    /// As long as it takes.
    Forever,
    /// Until this instant (on the monotonic clock).
    Until(Instant),
}

impl Wait {
    pub(crate) fn timeout(d: Duration) -> Wait {
        Instant::now().checked_add(d).map_or(Wait::Forever, Wait::Until)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(t) => Some(t),
            _ => None,
        }
    }
}

/// Which condition a blocked operation waits for.
#[derive(Clone, Copy)]
enum Cond {
    /// A message to pop at this end.
    NotEmpty(End),
    NotFull,
}

/// Why a blocking loop ended without a result.
enum Blocked {
    WouldBlock,
    Timeout,
    /// Boxed: `Error` is 56 bytes, and every blocking operation returns through this type.
    Failed(Box<Error>),
}

/// A bounded deque of byte messages in a named shared-memory segment.
///
/// Built by [`Builder::open_raw`](crate::Builder::open_raw). Every operation comes as a triple: `try_x`
/// returns at once, `x` blocks, `x_timeout` blocks up to a duration. Handles are `Send + Sync`: share one
/// between threads with `Arc` or scoped threads, or open the same name in other processes.
///
/// ```
/// # let name = format!("doc-raw-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(64).open_raw()?;
/// q.push_back(b"world")?;
/// q.push_front(b"hello")?;
/// assert_eq!(q.pop_front()?, b"hello");
/// assert_eq!(q.pop_back()?, b"world");
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawDeque {
    seg: Segment,
    /// Current spin budget of this handle's waits, in nanoseconds; grows when spinning pays off.
    spin_ns: AtomicU32,
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
    pub(crate) fn attach(cfg: &Config) -> Result<RawDeque, Error> {
        let deque = RawDeque { seg: Segment::attach(cfg)?, spin_ns: AtomicU32::new(2_000) };
        {
            let g = deque.lock()?;
            let attached = &g.header().ring.attached;
            attached.store(attached.load(Relaxed).saturating_add(1), Relaxed);
        }
        Ok(deque)
    }

    #[inline]
    fn header(&self) -> &Header {
        self.seg.header()
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

    /// Whether the deque has been closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.header().ring.closed.load(Acquire) != 0
    }

    /// Takes the deque's lock, so that several operations happen atomically with respect to every other
    /// thread and process, and so that the messages can be read in place without removing them.
    ///
    /// Keep the guard briefly: every other user of the deque waits for it. Blocking operations are not
    /// available on the guard (they would wait forever while holding the lock).
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

    fn corrupted(&self, what: impl Into<String>) -> Error {
        Error::Corrupted { name: self.name().to_owned(), what: what.into() }
    }

    /// Takes the lock, spinning for up to [`LOCK_SPIN`] with pauses between looks that double up to
    /// `max_pauses` PAUSE instructions, then sleeping in the kernel until `deadline`.
    #[inline]
    fn lock_until(&self, deadline: Option<Instant>, max_pauses: u32) -> Result<RawLockGuard<'_>, Blocked> {
        let m = self.header().lock.0.get();
        // SAFETY: `m` is the initialized process-shared mutex of a READY segment that `self` keeps mapped.
        match unsafe { os::mutex_trylock(m) } {
            Ok(Locked::Clean) => Ok(RawLockGuard::new(self)),
            r => self.lock_slow(r, deadline, max_pauses),
        }
    }

    /// The rest of [`lock_until`](Self::lock_until), after a first trylock that did not simply succeed:
    /// spinning, sleeping, recovery and errors. Out of line, so that the usual case compiles to a trylock
    /// and a branch inside each operation. With this, the error boxed in [`Blocked`] (so that results pass
    /// in registers rather than through memory) and the small helpers down to the pthread calls inlined, a
    /// 64-byte push+pop in one process went from 157 to 108 ns (medians of interleaved runs, two steps).
    #[inline(never)]
    fn lock_slow(
        &self,
        mut r: Result<Locked, LockFail>,
        deadline: Option<Instant>,
        max_pauses: u32,
    ) -> Result<RawLockGuard<'_>, Blocked> {
        let m = self.header().lock.0.get();
        if matches!(r, Err(LockFail::Busy)) {
            // Exponential backoff between looks at the lock word. Both sides of a busy deque take the lock for
            // every message, and each look pulls the lock's cache line away from the holder: a loser that polls
            // after every PAUSE makes the line change hands several times per message, while one that backs
            // off lets the holder take the lock again and again from its own cache. Measured across two cores,
            // 64 B one per call in place, medians of five interleaved runs: 2.0-2.1 M msg/s polling after every
            // PAUSE, 5.2-5.6 M with this backoff; round trips unchanged (they rarely find the lock held). The
            // first looks still come within a few PAUSEs, for the common case of a holder about to unlock.
            let spin_until = Instant::now() + LOCK_SPIN;
            let spin_until = deadline.map_or(spin_until, |d| d.min(spin_until));
            let mut pauses = 1u32;
            let mut looks = 0u32;
            loop {
                for _ in 0..pauses {
                    std::hint::spin_loop();
                }
                // SAFETY: as above.
                if !unsafe { os::mutex_looks_held(m) } {
                    // SAFETY: as above.
                    r = unsafe { os::mutex_trylock(m) };
                    if !matches!(r, Err(LockFail::Busy)) {
                        break;
                    }
                }
                pauses = (pauses * 2).min(max_pauses);
                looks = looks.wrapping_add(1);
                // The clock costs about as much as a few PAUSEs: read it once per SPIN_POLLS short looks.
                if (pauses >= SPIN_POLLS || looks.is_multiple_of(SPIN_POLLS)) && Instant::now() >= spin_until {
                    // SAFETY: as above.
                    r = unsafe { os::mutex_lock(m, deadline) };
                    break;
                }
            }
        }
        // A guard exists only once the lock is held: its Drop unlocks, and on EDEADLK the lock belongs to
        // another guard of this thread that must stay locked.
        let held = || RawLockGuard::new(self);
        match r {
            Ok(Locked::Clean) => Ok(held()),
            Ok(Locked::OwnerDied) => {
                let guard = held();
                self.recover(&guard).map_err(|e| Blocked::Failed(Box::new(e)))?;
                Ok(guard)
            }
            Err(LockFail::TimedOut) => Err(Blocked::Timeout),
            Err(LockFail::Busy) => Err(Blocked::WouldBlock),
            Err(LockFail::Deadlock) => {
                Err(Blocked::Failed(Box::new(Error::AlreadyLocked { name: self.name().to_owned() })))
            }
            Err(LockFail::NotRecoverable) => {
                Err(Blocked::Failed(Box::new(self.corrupted("its lock was left unrecoverable by a crashed process"))))
            }
            Err(LockFail::Other(source)) => Err(Blocked::Failed(Box::new(Error::Os {
                name: self.name().to_owned(),
                op: "taking the lock",
                source,
            }))),
        }
    }

    /// The previous holder died inside the critical section. Because every change is published by one store
    /// of the ring word after the payload is in place, the ring is consistent; check it anyway (the segment
    /// is untrusted), then mark the mutex usable again and count the recovery.
    fn recover(&self, guard: &RawLockGuard<'_>) -> Result<(), Error> {
        let m = self.header().lock.0.get();
        // SAFETY: we hold the mutex in the owner-died state (EOWNERDEAD was just returned to this thread).
        unsafe { os::mutex_consistent(m) }.map_err(|source| Error::Os {
            name: self.name().to_owned(),
            op: "recovering the lock",
            source,
        })?;
        // Wrapping, like every counter: the header is untrusted and a plain `+ 1` panics on u64::MAX.
        bump(&self.header().ring.recoveries, 1);
        guard.inspect(|ring| ring.validate())
    }

    /// Runs `attempt` under the lock until it yields a result, waiting for `cond` in between as `wait` says.
    ///
    /// A failed attempt first spins outside the lock, watching the ring word, for an adaptive budget (see
    /// [`adapt_spin`](Self::adapt_spin)); spinners register nowhere, so a push or pop costs its maker nothing
    /// extra while the other side spins. If the budget runs out, the next failed attempt registers in the
    /// condition's `sleepers` count under the lock, remembers the sequence word, unlocks and sleeps on it.
    ///
    /// `first`: the lock, if the caller holds it already (after a fast path that did not apply); the first
    /// attempt then runs under it.
    fn blocking<'d, R>(
        &'d self,
        cond: Cond,
        wait: Wait,
        max_pauses: u32,
        mut first: Option<RawLockGuard<'d>>,
        mut attempt: impl FnMut(&mut RawLockGuard<'_>) -> Option<R>,
    ) -> Result<R, Blocked> {
        // After a spin: the budget it had, when it began, and whether it outlasted one round of polls.
        let mut spun: Option<(u32, Instant, bool)> = None;
        loop {
            let mut guard = match first.take() {
                Some(guard) => guard,
                None => self.lock_until(wait.deadline(), max_pauses)?,
            };
            if let Some(r) = attempt(&mut guard) {
                // A wait that ended within the first round of polls was covered by any budget; learning its
                // exact length would cost a clock read (about 30 ns on that EPYC) on every short wait.
                if let Some((budget, start, true)) = spun {
                    self.adapt_spin(budget, start.elapsed());
                }
                return Ok(r);
            }
            let deadline = match wait {
                Wait::Now => return Err(Blocked::WouldBlock),
                Wait::Until(t) if Instant::now() >= t => return Err(Blocked::Timeout),
                w => w.deadline(),
            };
            let Some((budget, start, _)) = spun else {
                drop(guard);
                let budget = self.spin_ns.load(Relaxed);
                let start = Instant::now();
                let long = self.spin_for(cond, start, Duration::from_nanos(budget as u64), deadline);
                spun = Some((budget, start, long));
                continue;
            };
            let word = self.word(cond);
            // Register while holding the lock: whoever changes the deque after this unlock will see us.
            let generation = register_sleeper(word);
            let seq = word.seq.load(Relaxed);
            drop(guard);
            // Never sleep unbounded: a process that changed the deque and was killed (or stopped) between its
            // unlock and its wake-up call leaves this sleeper counted but unwoken; so does a count that
            // cannot take one more (only garbage gets there), where nobody may wake it at all.
            let nap = if generation.is_some() { SLEEP_RECHECK } else { UNCOUNTED_SLEEP };
            let soon = Instant::now() + nap;
            Self::sleep_while(word, seq, Some(deadline.map_or(soon, |d| d.min(soon))));
            if let Some(generation) = generation {
                unregister_sleeper(word, generation);
            }
            let rechecking = word.seq.load(Acquire) == seq && deadline.is_none_or(|d| Instant::now() < d);
            if !rechecking {
                self.adapt_spin(budget, start.elapsed());
                spun = None;
            }
            // A recheck keeps `spun`: if the deque still does not let it proceed, it goes back to sleep
            // without spinning again.
        }
    }

    fn word(&self, cond: Cond) -> &WaitWord {
        match cond {
            Cond::NotEmpty(_) => &self.header().not_empty,
            Cond::NotFull => &self.header().not_full,
        }
    }

    /// Whether a spinning waiter should take the lock and try again, from the ring word, the lock word and
    /// the closed flag read without the lock: there is a message and the lock looks free, or there is room
    /// beyond [`ROOM_SLACK_MAX`] slack.
    #[inline]
    fn may_proceed(&self, cond: Cond) -> bool {
        let r = &self.header().ring;
        let (head, len) = layout::unpack_ring(r.ring.load(Acquire));
        let cap = self.seg.capacity;
        let ready = match cond {
            Cond::NotEmpty(end) if len != 0 => {
                // The message the pop will read is likely still in the pusher's cache: ask for it now, so
                // that fetching it overlaps with taking the lock instead of following it. 64 B round trips
                // across two cores, medians of seven interleaved runs: 0.73 -> 0.71 us fetching the slot's
                // first cache line, 0.75 -> 0.64 us fetching both lines it spans.
                let first = match end {
                    End::Front => u64::from(head),
                    End::Back => u64::from(head) + u64::from(len) - 1,
                };
                self.seg.prefetch_slot(first, false);
                // The pusher stores the ring word just before it unlocks, so the waiter often sees the message
                // while the lock is still held; a trylock then would only take the lock's line from the
                // holder in the middle of its unlock. Wait until the lock looks free (the same cache line, so
                // no extra transfer): trylocks that failed after a spin went from 40-65 % to under 0.1 %
                // (64 B round trips, interleaved medians: 0.60 -> 0.59 us in one sitting, 0.55 -> 0.53 in
                // another).
                // SAFETY: the mutex of a READY segment that `self` keeps mapped.
                !unsafe { os::mutex_looks_held(self.header().lock.0.get()) }
            }
            Cond::NotEmpty(_) => false,
            Cond::NotFull => len.saturating_add((cap / 4).min(ROOM_SLACK_MAX)) < cap,
        };
        ready || r.closed.load(Relaxed) != 0
    }

    /// Spins until `cond` may hold, for `budget` from `start` or until `deadline`. Returns whether it spun
    /// longer than one round of polls; only then has it read the clock, so a short wait (the usual one
    /// between two running processes) costs one clock read, at `start` (64 B round trips, p50: 0.77 us
    /// with three clock reads per wait, 0.69 us with one; medians of seven interleaved runs).
    ///
    /// A wait for a message polls every [`MESSAGE_POLL_PAUSES`] PAUSEs and reads the clock once per round of
    /// about [`SPIN_POLLS`] PAUSEs: an exponential backoff of PAUSEs (each tens of ns on current x86) would
    /// notice the message microseconds late, and the round trip is what a waiting consumer is measured by.
    /// A wait for room polls every [`ROOM_POLL_PAUSES`] PAUSEs instead: the deque is full, so the consumer
    /// has work queued and nothing is gained by noticing each single free slot at once, while every read of
    /// the ring word takes the lock's cache line from the consumer (64 B one per call across two cores,
    /// copying out, medians of five interleaved runs: 3.2 M msg/s polling after every PAUSE, 4.9 M with
    /// this pacing). While it spins it also waits for [`ROOM_SLACK_MAX`] slack, see
    /// [`may_proceed`](Self::may_proceed).
    ///
    /// After [`SPIN_YIELD_AFTER`] each round also yields the core: the process that would change the
    /// condition may be queued on this very core (the scheduler tends to wake a process next to its waker),
    /// and spinning on would only keep it from running until the budget ran out.
    fn spin_for(&self, cond: Cond, start: Instant, budget: Duration, deadline: Option<Instant>) -> bool {
        let until = start + budget;
        let until = deadline.map_or(until, |d| d.min(until));
        let yield_after = start + SPIN_YIELD_AFTER;
        let pauses = match cond {
            Cond::NotEmpty(_) => MESSAGE_POLL_PAUSES,
            Cond::NotFull => ROOM_POLL_PAUSES,
        };
        let mut long = false;
        loop {
            for _ in 0..(SPIN_POLLS / pauses).max(1) {
                if self.may_proceed(cond) {
                    return long;
                }
                for _ in 0..pauses {
                    std::hint::spin_loop();
                }
            }
            long = true;
            let now = Instant::now();
            if now >= until {
                return long;
            }
            if now >= yield_after {
                std::thread::yield_now();
            }
        }
    }

    /// Sleeps while `word.seq` still holds `seq`, up to the deadline; the caller re-checks under the lock in
    /// every case (a wake-up, a change, a signal, the timeout).
    fn sleep_while(word: &WaitWord, seq: u32, deadline: Option<Instant>) {
        while word.seq.load(Acquire) == seq {
            let timeout = match deadline {
                Some(t) => match t.checked_duration_since(Instant::now()) {
                    Some(d) if !d.is_zero() => Some(d),
                    _ => break,
                },
                None => None,
            };
            os::futex_wait(&word.seq, seq, timeout);
        }
    }

    /// Sets the next wait's spin budget from how long this one lasted. A wait that a spin of at most
    /// [`WAIT_SPIN_MAX_NS`] would have covered (the other side is running and answers within microseconds)
    /// moves the budget towards twice its length, even if this wait ended asleep: otherwise one slow answer
    /// (the other side preempted) shrinks the budget below the usual answer time and every later wait
    /// sleeps, for good. A longer wait halves the budget, down to [`WAIT_SPIN_MIN_NS`]: the other side is not
    /// running, and spinning would only take the core from it (or from whoever else needs it). Not called
    /// for a wait that ended within the spin's first round of polls: any budget covered it, and measuring
    /// it would cost a clock read on every short wait.
    fn adapt_spin(&self, budget: u32, waited: Duration) {
        let waited = waited.as_nanos().min(u32::MAX as u128) as u32;
        let next = if waited <= WAIT_SPIN_MAX_NS {
            (budget / 2 + waited).clamp(WAIT_SPIN_MIN_NS, WAIT_SPIN_MAX_NS)
        } else {
            (budget / 2).max(WAIT_SPIN_MIN_NS)
        };
        self.spin_ns.store(next, Relaxed);
    }

    /// Bumps the sequence of `word` (so that a sleeper about to call FUTEX_WAIT with the old value returns at
    /// once) and wakes every process asleep on it: all, so that a sleeper killed right after its wake-up
    /// cannot swallow the wake-up another needed. `counted`: the sleepers counted under the lock (zero for a
    /// close waking whoever there is). A call that wakes fewer than were counted adds to the word's
    /// `idle_wakes`, whoever makes it; the call that makes it reach [`IDLE_WAKES_TO_FORGET`] forgets the
    /// count ([`forget_sleepers`]). Counting "fewer" rather than "none" lets a dead sleeper be forgotten even
    /// next to live ones that sleep often; the rare wrong forget (a live sleeper between registering and
    /// sleeping) only costs it a second look.
    ///
    /// [`forget_sleepers`]: Self::forget_sleepers
    fn signal(&self, word: &WaitWord, counted: u32) {
        word.seq.fetch_add(1, Release);
        let woken = os::futex_wake(&word.seq, i32::MAX);
        if counted == 0 {
            return;
        }
        // Fewer woken than counted: someone counted is dead, or (briefly) about to sleep or just woken.
        if woken >= counted {
            if word.idle_wakes.load(Relaxed) != 0 {
                word.idle_wakes.store(0, Relaxed);
            }
        } else if word.idle_wakes.fetch_add(1, Relaxed).wrapping_add(1) >= IDLE_WAKES_TO_FORGET {
            word.idle_wakes.store(0, Relaxed);
            self.forget_sleepers(word);
        }
    }

    /// Forgets the sleeper count of `word`, whose wake-ups have, again and again, woken fewer processes
    /// than it counts: it counts processes killed in their sleep (or garbage raised it). Under the lock, in
    /// this order: bumps the sequence word, wakes everyone, sets the count to zero in a new generation. A
    /// live sleeper that registered before is either asleep and woken here, or not yet asleep and finds the
    /// sequence changed, and looks at the deque again under the lock, registering anew if it still has to
    /// wait; its unregistering from the old generation leaves the new count alone. A kill anywhere in
    /// between leaves either the old count (nothing lost) or no old-generation sleeper asleep. Skipped if the
    /// lock is not free within [`LOCK_SPIN`]: the next run of idle wake-ups tries again.
    #[cold]
    fn forget_sleepers(&self, word: &WaitWord) {
        let Ok(guard) = self.lock_until(Some(Instant::now() + LOCK_SPIN), LOCK_BACKOFF_MAX) else {
            return;
        };
        word.seq.fetch_add(1, Release);
        os::futex_wake(&word.seq, i32::MAX);
        let _ = word.sleepers.fetch_update(Relaxed, Relaxed, |v| {
            let (generation, _) = layout::unpack_sleepers(v);
            Some(layout::pack_sleepers(generation.wrapping_add(1), 0))
        });
        drop(guard);
    }

    /// Shared body of every single-message push.
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
                let once = |buf: &mut [u8]| {
                    if let Some(f) = fill.take() {
                        f(buf)
                    }
                };
                match end {
                    End::Back => ring.push_back_with(n, once),
                    End::Front => ring.push_front_with(n, once),
                }
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
                    let r = match end {
                        End::Back => ring.push_back_with(m.len(), |b| b.copy_from_slice(m)),
                        End::Front => ring.push_front_with(m.len(), |b| b.copy_from_slice(m)),
                    };
                    match r {
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
            Err(Blocked::Timeout) => Err(PushError::Timeout(done)),
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
            let popped = g.modify(|ring| {
                let once = |b: &[u8]| read.take().map(|f| f(b));
                match end {
                    End::Front => ring.pop_front_with(once),
                    End::Back => ring.pop_back_with(once),
                }
            });
            match popped {
                Ok(Some(v)) => Some(Ok(v)),
                Ok(None) => Some(Err(PopError::Failed(g.deque.corrupted("a message was read twice")))),
                Err(RingError::Empty) if g.is_closed() => Some(Err(PopError::Closed)),
                Err(RingError::Empty) => None,
                Err(e) => Some(Err(PopError::Failed(g.ring_error(e)))),
            }
        });
        flatten_pop(r)
    }

    /// Asks the CPU for the slot a single-message push at `end` will probably fill, for writing, before the
    /// lock is taken, so that fetching it overlaps with the lock's cache line instead of following it. The
    /// guess comes from the ring word this thread's last push published ([`LAST_RING`]): reading the
    /// shared one here would cost a cache-line transfer of its own. A pusher at the back of a deque popped
    /// at the front guesses right, since pops at the front leave head + length where they were. 64 B round
    /// trips, medians of interleaved runs: 0.63 -> 0.61 us in place, 0.64 -> 0.62 us copying out (a
    /// per-handle guess measured the same but would pass a cache line between threads sharing the handle).
    #[inline]
    fn prefetch_push(&self, end: End) {
        let (deque, word) = LAST_RING.get();
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

    /// Shared body of every batch pop: removes up to `max` messages under one lock acquisition (waiting for
    /// the first as `wait` says), handing each to `read`. If `read` fails, that message is removed too and
    /// the batch stops there. Returns how many were removed.
    pub(crate) fn pop_many_with(
        &self,
        end: End,
        max: usize,
        mut read: impl FnMut(&[u8]) -> Result<(), PopError>,
        wait: Wait,
    ) -> Result<usize, PopError> {
        if max == 0 {
            return Ok(0);
        }
        self.prefetch_batch(end, false, max);
        let r = self.blocking(Cond::NotEmpty(end), wait, BATCH_LOCK_PAUSES, None, |g| {
            let mut failure = None;
            let popped = g.modify(|ring| {
                let mut n = 0;
                while n < max && ring.len() > 0 {
                    let r = match end {
                        End::Front => ring.pop_front_with(&mut read),
                        End::Back => ring.pop_back_with(&mut read),
                    }?;
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
                (Ok(0), None) if g.is_closed() => Some(Err(PopError::Closed)),
                (Ok(0), None) => None,
                (Ok(n), None) => Some(Ok(n)),
                (Err(e), _) => Some(Err(PopError::Failed(g.ring_error(e)))),
            }
        });
        flatten_pop(r)
    }

    /// Pushes a message at the back without waiting.
    ///
    /// # Errors
    /// [`PushError::Full`] if there is no room, [`PushError::Closed`] once closed, [`PushError::TooLarge`] if
    /// the message exceeds [`max_message_len`](Self::max_message_len); each hands the message back.
    pub fn try_push_back<'m>(&self, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        self.push_slice(End::Back, msg, Wait::Now)
    }

    /// Pushes a message at the back, waiting for room as long as it takes.
    ///
    /// # Errors
    /// As [`try_push_back`](Self::try_push_back), except that it waits instead of returning `Full`.
    pub fn push_back<'m>(&self, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        self.push_slice(End::Back, msg, Wait::Forever)
    }

    /// Pushes a message at the back, waiting for room up to `timeout`.
    ///
    /// # Errors
    /// As [`try_push_back`](Self::try_push_back), with [`PushError::Timeout`] in place of `Full`.
    pub fn push_back_timeout<'m>(&self, msg: &'m [u8], timeout: Duration) -> Result<(), PushError<&'m [u8]>> {
        self.push_slice(End::Back, msg, Wait::timeout(timeout))
    }

    /// Pushes a message at the front without waiting; it becomes the next one `pop_front` returns.
    ///
    /// # Errors
    /// As [`try_push_back`](Self::try_push_back).
    pub fn try_push_front<'m>(&self, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        self.push_slice(End::Front, msg, Wait::Now)
    }

    /// Pushes a message at the front, waiting for room as long as it takes.
    ///
    /// # Errors
    /// As [`push_back`](Self::push_back).
    pub fn push_front<'m>(&self, msg: &'m [u8]) -> Result<(), PushError<&'m [u8]>> {
        self.push_slice(End::Front, msg, Wait::Forever)
    }

    /// Pushes a message at the front, waiting for room up to `timeout`.
    ///
    /// # Errors
    /// As [`push_back_timeout`](Self::push_back_timeout).
    pub fn push_front_timeout<'m>(&self, msg: &'m [u8], timeout: Duration) -> Result<(), PushError<&'m [u8]>> {
        self.push_slice(End::Front, msg, Wait::timeout(timeout))
    }

    fn push_slice<'m>(&self, end: End, msg: &'m [u8], wait: Wait) -> Result<(), PushError<&'m [u8]>> {
        self.push_with(end, msg.len(), |b| b.copy_from_slice(msg), wait).map_err(|e| e.map(|()| msg))
    }

    /// Pushes an `n`-byte message at the back that `fill` writes directly into its slot: a large message is
    /// copied once, from wherever `fill` produces it. Waits for room as `timeout` says (`None`: as long as it
    /// takes; `Some(Duration::ZERO)`: not at all).
    ///
    /// `fill` runs while the deque is locked; keep it to a copy or an encode. If it panics, the message is
    /// not pushed and the deque is unchanged.
    ///
    /// ```
    /// # let name = format!("doc-with-{}", std::process::id());
    /// let q = shmdeque::Builder::new(&name).capacity(2).slot_size(1 << 16).open_raw()?;
    /// q.push_back_with(60_000, None, |slot| slot.fill(7))?;
    /// let sum = q.pop_front_with(None, |msg| msg.iter().map(|&b| b as u64).sum::<u64>())?;
    /// assert_eq!(sum, 420_000);
    /// # shmdeque::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`push_back_timeout`](Self::push_back_timeout) (`Full` when the timeout is zero).
    pub fn push_back_with(
        &self,
        n: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PushError<()>> {
        self.push_with(End::Back, n, fill, wait_for(timeout))
    }

    /// As [`push_back_with`](Self::push_back_with), at the front.
    ///
    /// # Errors
    /// As [`push_back_with`](Self::push_back_with).
    pub fn push_front_with(
        &self,
        n: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PushError<()>> {
        self.push_with(End::Front, n, fill, wait_for(timeout))
    }

    /// Removes the front message without waiting.
    ///
    /// # Errors
    /// [`PopError::Empty`] if there is none, [`PopError::Closed`] once closed and drained.
    pub fn try_pop_front(&self) -> Result<Vec<u8>, PopError> {
        self.pop_with(End::Front, <[u8]>::to_vec, Wait::Now)
    }

    /// Removes the front message, waiting for one as long as it takes.
    ///
    /// # Errors
    /// [`PopError::Closed`] once the deque is closed and drained.
    pub fn pop_front(&self) -> Result<Vec<u8>, PopError> {
        self.pop_with(End::Front, <[u8]>::to_vec, Wait::Forever)
    }

    /// Removes the front message, waiting for one up to `timeout`.
    ///
    /// # Errors
    /// [`PopError::Timeout`] if none arrived in time, [`PopError::Closed`] once closed and drained.
    pub fn pop_front_timeout(&self, timeout: Duration) -> Result<Vec<u8>, PopError> {
        self.pop_with(End::Front, <[u8]>::to_vec, Wait::timeout(timeout))
    }

    /// Removes the back message without waiting.
    ///
    /// # Errors
    /// As [`try_pop_front`](Self::try_pop_front).
    pub fn try_pop_back(&self) -> Result<Vec<u8>, PopError> {
        self.pop_with(End::Back, <[u8]>::to_vec, Wait::Now)
    }

    /// Removes the back message, waiting for one as long as it takes.
    ///
    /// # Errors
    /// As [`pop_front`](Self::pop_front).
    pub fn pop_back(&self) -> Result<Vec<u8>, PopError> {
        self.pop_with(End::Back, <[u8]>::to_vec, Wait::Forever)
    }

    /// Removes the back message, waiting for one up to `timeout`.
    ///
    /// # Errors
    /// As [`pop_front_timeout`](Self::pop_front_timeout).
    pub fn pop_back_timeout(&self, timeout: Duration) -> Result<Vec<u8>, PopError> {
        self.pop_with(End::Back, <[u8]>::to_vec, Wait::timeout(timeout))
    }

    /// Removes the front message, handing it to `read` in place (no copy out of the segment); waits as
    /// `timeout` says (`None`: as long as it takes; `Some(Duration::ZERO)`: not at all). `read` runs while the
    /// deque is locked. If it panics, the message stays in the deque.
    ///
    /// # Errors
    /// As [`pop_front_timeout`](Self::pop_front_timeout) (`Empty` when the timeout is zero).
    pub fn pop_front_with<R>(&self, timeout: Option<Duration>, read: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        self.pop_with(End::Front, read, wait_for(timeout))
    }

    /// As [`pop_front_with`](Self::pop_front_with), at the back.
    ///
    /// # Errors
    /// As [`pop_front_with`](Self::pop_front_with).
    pub fn pop_back_with<R>(&self, timeout: Option<Duration>, read: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        self.pop_with(End::Back, read, wait_for(timeout))
    }

    /// Pushes as many of `msgs` at the back as there is room for, under one lock acquisition, without waiting.
    /// Returns how many were pushed (at least one).
    ///
    /// # Errors
    /// [`PushError::Full`]`(0)` if none fit; [`PushError::TooLarge`] (nothing pushed) if any message is too
    /// large; [`PushError::Closed`]. The value carried is the number pushed before the error.
    pub fn try_push_back_many<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<usize, PushError<usize>> {
        self.push_many_with(End::Back, msgs.len(), |i| msgs[i].as_ref(), Wait::Now)
    }

    /// Pushes all of `msgs` at the back in order, taking the lock once per stretch of free room and waiting
    /// for room in between. Returns `msgs.len()`.
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
    /// As [`try_push_back_many`](Self::try_push_back_many), without `Full`.
    pub fn push_back_many<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<usize, PushError<usize>> {
        self.push_many_with(End::Back, msgs.len(), |i| msgs[i].as_ref(), Wait::Forever)
    }

    /// As [`push_back_many`](Self::push_back_many), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`push_back_many`](Self::push_back_many), plus [`PushError::Timeout`] with the count pushed.
    pub fn push_back_many_timeout<M: AsRef<[u8]>>(
        &self,
        msgs: &[M],
        timeout: Duration,
    ) -> Result<usize, PushError<usize>> {
        self.push_many_with(End::Back, msgs.len(), |i| msgs[i].as_ref(), Wait::timeout(timeout))
    }

    /// Pushes `msgs` one after another at the front (so the last ends up frontmost), waiting for room as
    /// `timeout` says (`None`: as long as it takes; `Some(Duration::ZERO)`: push what fits now).
    ///
    /// # Errors
    /// As [`push_back_many_timeout`](Self::push_back_many_timeout).
    pub fn push_front_many<M: AsRef<[u8]>>(
        &self,
        msgs: &[M],
        timeout: Option<Duration>,
    ) -> Result<usize, PushError<usize>> {
        self.push_many_with(End::Front, msgs.len(), |i| msgs[i].as_ref(), wait_for(timeout))
    }

    /// Removes up to `max` messages from the front under one lock acquisition, without waiting, appending
    /// them to `out`. Returns how many.
    ///
    /// # Errors
    /// [`PopError::Empty`], or [`PopError::Closed`] once closed and drained.
    pub fn try_pop_front_many(&self, max: usize, out: &mut Vec<Vec<u8>>) -> Result<usize, PopError> {
        self.pop_many_with(End::Front, max, collect_into(out), Wait::Now)
    }

    /// Removes up to `max` messages from the front under one lock acquisition, waiting for at least one.
    ///
    /// # Errors
    /// [`PopError::Closed`] once closed and drained.
    pub fn pop_front_many(&self, max: usize, out: &mut Vec<Vec<u8>>) -> Result<usize, PopError> {
        self.pop_many_with(End::Front, max, collect_into(out), Wait::Forever)
    }

    /// As [`pop_front_many`](Self::pop_front_many), waiting up to `timeout` for the first message.
    ///
    /// # Errors
    /// As [`pop_front_many`](Self::pop_front_many), plus [`PopError::Timeout`].
    pub fn pop_front_many_timeout(
        &self,
        max: usize,
        out: &mut Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<usize, PopError> {
        self.pop_many_with(End::Front, max, collect_into(out), Wait::timeout(timeout))
    }

    /// Removes up to `max` messages from the back (back-most first), waiting for the first as `timeout`
    /// says (`None`: as long as it takes; `Some(Duration::ZERO)`: not at all).
    ///
    /// # Errors
    /// As [`pop_front_many_timeout`](Self::pop_front_many_timeout) (`Empty` when the timeout is zero).
    pub fn pop_back_many(
        &self,
        max: usize,
        out: &mut Vec<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<usize, PopError> {
        self.pop_many_with(End::Back, max, collect_into(out), wait_for(timeout))
    }

    /// Removes up to `max` messages from the front under one lock acquisition, handing each to `read` in place
    /// (no copy out of the segment, no allocation); waits for the first as `timeout` says (`None`: as long as
    /// it takes; `Some(Duration::ZERO)`: not at all). Returns how many were removed. `read` runs while the
    /// deque is locked.
    ///
    /// ```
    /// # let name = format!("doc-many-with-{}", std::process::id());
    /// let q = shmdeque::Builder::new(&name).capacity(8).slot_size(16).open_raw()?;
    /// q.push_back_many(&["ab", "cde"])?;
    /// let mut total = 0;
    /// assert_eq!(q.pop_front_many_with(64, None, |m| total += m.len())?, 2);
    /// assert_eq!(total, 5);
    /// # shmdeque::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`pop_front_many_timeout`](Self::pop_front_many_timeout) (`Empty` when the timeout is zero).
    pub fn pop_front_many_with(
        &self,
        max: usize,
        timeout: Option<Duration>,
        read: impl FnMut(&[u8]),
    ) -> Result<usize, PopError> {
        self.pop_many_in_place(End::Front, max, timeout, read)
    }

    /// As [`pop_front_many_with`](Self::pop_front_many_with), from the back (back-most first).
    ///
    /// # Errors
    /// As [`pop_front_many_with`](Self::pop_front_many_with).
    pub fn pop_back_many_with(
        &self,
        max: usize,
        timeout: Option<Duration>,
        read: impl FnMut(&[u8]),
    ) -> Result<usize, PopError> {
        self.pop_many_in_place(End::Back, max, timeout, read)
    }

    /// The body of both public in-place batch pops: a reader that cannot fail.
    fn pop_many_in_place(
        &self,
        end: End,
        max: usize,
        timeout: Option<Duration>,
        mut read: impl FnMut(&[u8]),
    ) -> Result<usize, PopError> {
        self.pop_many_with(
            end,
            max,
            |b| {
                read(b);
                Ok(())
            },
            wait_for(timeout),
        )
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
    /// # Errors
    /// As [`lock`](Self::lock), or an OS error reading the segment's attributes.
    pub fn stats(&self) -> Result<Stats, Error> {
        let file = self.seg.file_info()?;
        let g = self.lock()?;
        let r = &g.header().ring;
        let (_, len) = layout::unpack_ring(r.ring.load(Relaxed));
        let producers = g.header().producers.iter().filter(|w| producer_alive(w.load(Relaxed))).count() as u32;
        Ok(Stats {
            name: self.name().to_owned(),
            capacity: self.seg.capacity,
            slot_size: self.seg.slot_size,
            len: len.min(self.seg.capacity),
            closed: r.closed.load(Relaxed) != 0,
            producers,
            attached: r.attached.load(Relaxed),
            pushed: r.pushed.load(Relaxed),
            popped: r.popped.load(Relaxed),
            lock_recoveries: r.recoveries.load(Relaxed),
            high_water: r.high_water.load(Relaxed),
            asleep_for_message: layout::unpack_sleepers(g.header().not_empty.sleepers.load(Relaxed)).1,
            asleep_for_room: layout::unpack_sleepers(g.header().not_full.sleepers.load(Relaxed)).1,
            segment_bytes: self.seg.len as u64,
            mode: file.mode,
        })
    }

    /// Registers the calling process as a producer of this deque. Producers are counted in
    /// [`Stats::producers`]; the registration of a process that died is reclaimed by the next registration.
    /// Tools use it to close the deque when the last producer leaves ([`Producer::leave`]).
    ///
    /// # Errors
    /// [`Error::TooManyProducers`] when every slot is held by a live process; errors of [`lock`](Self::lock).
    pub fn register_producer(&self) -> Result<Producer<'_>, Error> {
        let pid = os::current_pid();
        let word = layout::producer_word(pid, os::start_tag(pid));
        let g = self.lock()?;
        let table = &g.header().producers;
        for w in table {
            let v = w.load(Relaxed);
            if v != 0 && !producer_alive(v) {
                w.store(0, Relaxed);
            }
        }
        let slot = table
            .iter()
            .position(|w| w.load(Relaxed) == 0)
            .ok_or(Error::TooManyProducers { name: self.name().to_owned(), max: layout::MAX_PRODUCERS })?;
        table[slot].store(word, Relaxed);
        g.recount_producers();
        Ok(Producer { deque: self, slot, word, left: false })
    }
}

/// The wait a `timeout: Option<Duration>` argument stands for: `None` forever, zero not at all.
#[inline]
pub(crate) fn wait_for(timeout: Option<Duration>) -> Wait {
    match timeout {
        None => Wait::Forever,
        Some(d) if d.is_zero() => Wait::Now,
        Some(d) => Wait::timeout(d),
    }
}

fn collect_into(out: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8]) -> Result<(), PopError> + '_ {
    |b| {
        out.push(b.to_vec());
        Ok(())
    }
}

fn producer_alive(word: u64) -> bool {
    let (pid, tag) = layout::unpack_producer(word);
    word != 0 && os::process_alive(pid, tag)
}

#[inline]
fn flatten_push(r: Result<Result<(), PushError<()>>, Blocked>) -> Result<(), PushError<()>> {
    match r {
        Ok(inner) => inner,
        Err(Blocked::WouldBlock) => Err(PushError::Full(())),
        Err(Blocked::Timeout) => Err(PushError::Timeout(())),
        Err(Blocked::Failed(error)) => Err(PushError::Failed { value: (), error: *error }),
    }
}

#[inline]
fn flatten_pop<R>(r: Result<Result<R, PopError>, Blocked>) -> Result<R, PopError> {
    match r {
        Ok(inner) => inner,
        Err(Blocked::WouldBlock) => Err(PopError::Empty),
        Err(Blocked::Timeout) => Err(PopError::Timeout),
        Err(Blocked::Failed(e)) => Err(PopError::Failed(*e)),
    }
}

impl Drop for RawDeque {
    /// Detaches. The last handle to leave a closed and drained deque removes its name, so that a finished
    /// producer/consumer run leaves nothing in /dev/shm.
    fn drop(&mut self) {
        // Bounded: a lock held by a stopped process must not hang a detaching one (the count then stays).
        let Ok(g) = self.lock_until(Some(Instant::now() + DETACH_LOCK_TIMEOUT), LOCK_BACKOFF_MAX) else { return };
        let r = &g.header().ring;
        let attached = r.attached.load(Relaxed).saturating_sub(1);
        r.attached.store(attached, Relaxed);
        let (_, len) = layout::unpack_ring(r.ring.load(Relaxed));
        if attached == 0 && len == 0 && r.closed.load(Relaxed) != 0 {
            self.seg.unlink_if_same();
        }
    }
}

/// A registered producer; see [`RawDeque::register_producer`]. Dropping it leaves without closing.
#[derive(Debug)]
pub struct Producer<'a> {
    deque: &'a RawDeque,
    slot: usize,
    word: u64,
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
        let mut g = self.deque.lock()?;
        let table = &g.header().producers;
        // Only our own registration: a reaped and reused slot belongs to someone else now.
        let _ = table[self.slot].compare_exchange(self.word, 0, Relaxed, Relaxed);
        let live = table.iter().filter(|w| producer_alive(w.load(Relaxed))).count();
        g.recount_producers();
        if close_if_last && live == 0 && !g.is_closed() {
            g.close();
            return Ok(true);
        }
        Ok(false)
    }
}

impl Drop for Producer<'_> {
    fn drop(&mut self) {
        let _ = self.leave_inner(false);
    }
}

/// The deque's lock, held: several operations under it happen atomically for every other thread and process.
/// Obtained from [`RawDeque::lock`]. Dropping it unlocks and wakes whoever waits for what changed.
///
/// The guard is not `Send`: a pthread mutex must be unlocked by the thread that locked it.
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
    fn new(deque: &'a RawDeque) -> Self {
        RawLockGuard { deque, added: false, removed: false, closed: false, _not_send: PhantomData }
    }

    #[inline]
    fn header(&self) -> &'a Header {
        self.deque.header()
    }

    fn ring_error(&self, e: RingError) -> Error {
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

    /// Runs `f` on a read-only view of the ring.
    fn inspect<R>(&self, f: impl FnOnce(&Ring<&[u8]>) -> Result<R, RingError>) -> Result<R, Error> {
        f(&self.view()?).map_err(|e| self.ring_error(e))
    }

    /// Runs `f` on a view of the ring and publishes the resulting head and length with one store, after
    /// every payload byte `f` wrote: a crash before that store leaves the deque as it was.
    #[inline]
    fn modify<R>(&mut self, f: impl FnOnce(&mut Ring<&mut [u8]>) -> Result<R, RingError>) -> Result<R, RingError> {
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
    /// [`RawDeque::blocking`]; this does the same arithmetic with the slot helpers `Ring` itself uses, and
    /// less of everything else. 64 B push+pop in place in one process, counted by callgrind: 712
    /// instructions per pair through the general path, 516 with both fast paths (of which about 240 are in
    /// glibc's lock and unlock); 64 B round trips across two cores, medians of seven interleaved runs:
    /// 0.51 -> 0.46 us in place, 0.59 -> 0.53 us copying out, in one sitting; 0.46 -> 0.41 us in another.
    #[inline]
    fn push_fast<F: FnOnce(&mut [u8])>(&mut self, end: End, n: usize, fill: F) -> Result<(), F> {
        let h = self.header();
        let (head, len) = layout::unpack_ring(h.ring.ring.load(Relaxed));
        let cap = self.deque.seg.capacity;
        if head >= cap || len >= cap || h.ring.closed.load(Relaxed) != 0 {
            return Err(fill);
        }
        let (index, new_head) = match end {
            // head < cap and len < cap, so the sum is below 2 * cap.
            End::Back => (ring::wrap(head + len, cap), head),
            End::Front => {
                let index = if head == 0 { cap - 1 } else { head - 1 };
                (index, index)
            }
        };
        // SAFETY: index < cap; this guard holds the lock, and `&mut self` rules out any other slice of the
        // slot area borrowed from it; the slice does not outlive this call.
        let slot = unsafe { self.deque.seg.slot_mut(index) };
        ring::write_slot(slot, n, fill);
        self.publish(len, new_head, len + 1);
        Ok(())
    }

    /// A single-message pop in a straight line, for the usual case: the deque holds a message whose stored
    /// length is in range. Otherwise hands `read` back untouched, for the general path (which waits for a
    /// message and reports a closed or corrupted deque). See [`push_fast`](Self::push_fast).
    #[inline]
    fn pop_fast<R, F: FnOnce(&[u8]) -> R>(&mut self, end: End, read: F) -> Result<R, F> {
        let (head, len) = layout::unpack_ring(self.header().ring.ring.load(Relaxed));
        let cap = self.deque.seg.capacity;
        if head >= cap || len == 0 || len > cap {
            return Err(read);
        }
        let (index, new_head) = match end {
            End::Front => (head, ring::wrap(head + 1, cap)),
            // head < cap and 0 < len <= cap, so the sum is below 2 * cap.
            End::Back => (ring::wrap(head + len - 1, cap), head),
        };
        // SAFETY: as in `push_fast`.
        let slot = unsafe { self.deque.seg.slot_mut(index) };
        let Some(msg) = slot.get(SLOT_LEN_BYTES..SLOT_LEN_BYTES.saturating_add(ring::stored_len(slot))) else {
            return Err(read);
        };
        let r = read(msg);
        self.publish(len, new_head, len - 1);
        Ok(r)
    }

    fn recount_producers(&self) {
        let h = self.header();
        let n = h.producers.iter().filter(|w| w.load(Relaxed) != 0).count() as u32;
        h.ring.producers.store(n, Relaxed);
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
        let r = self.modify(|ring| match end {
            End::Back => ring.push_back_with(msg.len(), |b| b.copy_from_slice(msg)),
            End::Front => ring.push_front_with(msg.len(), |b| b.copy_from_slice(msg)),
        });
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
        let r = self.modify(|ring| match end {
            End::Front => ring.pop_front_with(read),
            End::Back => ring.pop_back_with(read),
        });
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

/// Counts the caller as a sleeper on `word` (the caller holds the lock) and returns the generation it
/// registered in; `None` if the count cannot take one more (a garbage count), in which case the caller must
/// not sleep for long, since nobody may wake it.
fn register_sleeper(word: &WaitWord) -> Option<u32> {
    let mut generation = None;
    let _ = word.sleepers.fetch_update(Relaxed, Relaxed, |v| {
        let (g, n) = layout::unpack_sleepers(v);
        generation = (n < u32::MAX).then_some(g);
        generation.map(|g| layout::pack_sleepers(g, n + 1))
    });
    generation
}

/// Takes back a registration made in `generation`, unless the count has since been forgotten (a new
/// generation: the registration is already gone, and taking one off would remove somebody else's).
fn unregister_sleeper(word: &WaitWord, generation: u32) {
    let _ = word.sleepers.fetch_update(Relaxed, Relaxed, |v| {
        let (g, n) = layout::unpack_sleepers(v);
        (g == generation && n > 0).then(|| layout::pack_sleepers(g, n - 1))
    });
}

#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Drop for RawLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let h = self.header();
        // Read under the lock: a sleeper registers under the lock before it sleeps, so a zero here means
        // nobody sleeps waiting for this change (spinners watch the ring word themselves).
        let asleep =
            |changed: bool, w: &WaitWord| if changed { layout::unpack_sleepers(w.sleepers.load(Relaxed)).1 } else { 0 };
        let not_empty = asleep(self.added, &h.not_empty);
        let not_full = asleep(self.removed, &h.not_full);
        // SAFETY: this guard's existence means this thread holds the mutex.
        unsafe { os::mutex_unlock(h.lock.0.get()) };
        if not_empty != 0 || self.closed {
            self.deque.signal(&h.not_empty, not_empty);
        }
        if not_full != 0 || self.closed {
            self.deque.signal(&h.not_full, not_full);
        }
    }
}
