//! Waiting for room or for a message: the spin policy, the futex sleep, the wake-ups and the sleeper
//! bookkeeping.
//!
//! A process that finds the deque full (or empty) unlocks and spins for an adaptive few microseconds,
//! watching the ring word, then tries again. If the condition still does not hold, it registers in the
//! condition's [`WaitWord`] `sleepers` count while holding the lock, remembers its sequence value, unlocks
//! and sleeps on it with `FUTEX_WAIT`. A process that makes room (or adds a message) reads the sleeper count
//! under the lock and, only if someone sleeps, bumps the sequence after unlocking and calls `FUTEX_WAKE` for
//! all of them: while the other side spins or nobody waits, a push or a pop costs no extra atomic operation
//! and no system call. Waking all rather than one means a waiter killed right after its wake-up cannot
//! swallow the wake-up another process needed. A killed sleeper leaves its count behind in the wait word
//! and in its registration; the first wake-up call that wakes fewer than were counted makes the signaller
//! take back the counts of dead registrations (`registry.rs`), so the count is exact again. A sleeper
//! looks at the deque again every [`SLEEP_RECHECK`] even if nobody wakes it, in case a signaller was
//! killed between its unlock and its wake-up call (the `test-hooks` feature can switch that off, so that a
//! lost wake-up shows as a hang).

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use crate::err::Error;
use crate::guard::RawLockGuard;
use crate::layout::{self, WaitWord};
use crate::os;
use crate::raw::RawDeque;
use crate::ring::End;
use crate::tuning::{
    INTERRUPT_FALLBACK_SLICE, LOCK_BACKOFF_MAX, LOCK_SPIN, MESSAGE_POLL_PAUSES, ROOM_POLL_PAUSES, ROOM_SLACK_MAX,
    SLEEP_RECHECK, SPIN_POLLS, SPIN_YIELD_AFTER, UNCOUNTED_SLEEP, WAIT_SPIN_MAX_NS, WAIT_SPIN_MIN_NS,
    WAIT_SPIN_START_NS,
};

/// How long an operation may wait for room or for a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: the `try_` forms.
    Now,
    /// As long as it takes.
    Forever,
    /// Until this instant (on the monotonic clock).
    Until(Instant),
}

impl Wait {
    /// Up to `d` from now; a duration too long to add to the clock means forever.
    #[inline]
    pub(crate) fn timeout(d: Duration) -> Wait {
        Instant::now().checked_add(d).map_or(Wait::Forever, Wait::Until)
    }

    #[inline]
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(t) => Some(t),
            _ => None,
        }
    }
}

/// Which condition a blocked operation waits for.
#[derive(Clone, Copy)]
pub(crate) enum Cond {
    /// A message to pop at this end.
    NotEmpty(End),
    NotFull,
}

/// Why taking the lock or a blocking loop ended without a result.
pub(crate) enum Blocked {
    WouldBlock,
    Timeout,
    /// The handle's [`Interrupter`] was used.
    Interrupted,
    /// Waiting for a message, but every registered producer died without leaving.
    ProducersGone,
    /// Boxed: `Error` is 56 bytes, and every blocking operation returns through this type, in registers.
    Failed(Box<Error>),
}

/// Makes the blocked operations of one handle return at once with `Interrupted`, from another thread or a
/// signal handler, without touching other processes; see [`RawDeque::interrupter`].
///
/// Cloning it is cheap; every clone acts on the same handle. [`interrupt`](Self::interrupt) is sticky: the
/// handle's waits for room or for a message fail with `Interrupted` (`PushError::Interrupted`,
/// `PopError::Interrupted`) until [`reset`](Self::reset), while operations that need not wait go on as
/// usual. A wait for the deque's lock itself (held by a stopped process) is not interrupted.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # let name = format!("doc-interrupt-{}", std::process::id());
/// let q = shmdeque::Builder::new(&name).capacity(4).slot_size(32).open_raw()?;
/// let stop = q.interrupter();
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         std::thread::sleep(Duration::from_millis(20));
///         stop.interrupt(); // e.g. on Ctrl-C
///     });
///     assert!(q.pop_front().unwrap_err().is_interrupted()); // would have waited for good
/// });
/// stop.reset();
/// q.push_back(b"on we go")?;
/// assert_eq!(q.pop_front()?, b"on we go");
/// # shmdeque::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Interrupter(Arc<AtomicU32>);

impl Interrupter {
    pub(crate) fn new() -> Interrupter {
        Interrupter(Arc::new(AtomicU32::new(0)))
    }

    /// Makes the handle's blocked (and later) waits return `Interrupted` at once. Async-signal-safe: an
    /// atomic store and one system call, so a signal handler may call it.
    pub fn interrupt(&self) {
        self.0.store(1, Release);
        os::futex_wake_private(&self.0);
    }

    /// Lets the handle's operations wait again.
    pub fn reset(&self) {
        self.0.store(0, Release);
    }

    /// Whether [`interrupt`](Self::interrupt) was called since the last [`reset`](Self::reset).
    pub fn is_interrupted(&self) -> bool {
        self.0.load(Acquire) != 0
    }
}

/// A handle's adaptive spin budget, in nanoseconds: how long its next wait spins before it sleeps.
pub(crate) struct SpinBudget(AtomicU32);

impl SpinBudget {
    pub(crate) fn new() -> SpinBudget {
        SpinBudget(AtomicU32::new(WAIT_SPIN_START_NS))
    }

    fn get(&self) -> u32 {
        self.0.load(Relaxed)
    }

    /// Sets the next wait's budget from how long this one lasted. A wait that a spin of at most
    /// [`WAIT_SPIN_MAX_NS`] would have covered (the other side is running and answers within microseconds)
    /// moves the budget towards twice its length, even if this wait ended asleep: otherwise one slow answer
    /// (the other side preempted) shrinks the budget below the usual answer time and every later wait
    /// sleeps, for good. A longer wait halves the budget, down to [`WAIT_SPIN_MIN_NS`]: the other side is not
    /// running, and spinning would only take the core from it. Not called for a wait that ended within the
    /// spin's first round of polls: any budget covered it, and measuring it would cost a clock read.
    fn adapt(&self, budget: u32, waited: Duration) {
        let waited = waited.as_nanos().min(u32::MAX as u128) as u32;
        let next = if waited <= WAIT_SPIN_MAX_NS {
            (budget / 2 + waited).clamp(WAIT_SPIN_MIN_NS, WAIT_SPIN_MAX_NS)
        } else {
            (budget / 2).max(WAIT_SPIN_MIN_NS)
        };
        self.0.store(next, Relaxed);
    }
}

impl RawDeque {
    /// Runs `attempt` under the lock until it yields a result, waiting for `cond` in between as `wait` says.
    ///
    /// A failed attempt first spins outside the lock, watching the ring word, for the handle's adaptive
    /// budget; spinners register nowhere, so a push or pop costs its maker nothing extra while the other side
    /// spins. If the budget runs out, the next failed attempt registers in the condition's `sleepers` count
    /// under the lock, remembers the sequence word, unlocks and sleeps on it.
    ///
    /// `first`: the lock, if the caller holds it already (after a fast path that did not apply); the first
    /// attempt then runs under it.
    pub(crate) fn blocking<'d, R>(
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
                // exact length would cost a clock read (about 30 ns) on every short wait.
                if let Some((budget, start, true)) = spun {
                    self.spin.adapt(budget, start.elapsed());
                }
                return Ok(r);
            }
            let deadline = match wait {
                Wait::Now => return Err(Blocked::WouldBlock),
                Wait::Until(t) if Instant::now() >= t => return Err(Blocked::Timeout),
                _ if self.interrupt.is_interrupted() => return Err(Blocked::Interrupted),
                w => w.deadline(),
            };
            let Some((budget, start, _)) = spun else {
                drop(guard);
                let budget = self.spin.get();
                let start = Instant::now();
                let long = self.spin_for(cond, start, Duration::from_nanos(budget as u64), deadline);
                spun = Some((budget, start, long));
                continue;
            };
            // About to sleep for a message that no live producer will push: say so instead.
            if matches!(cond, Cond::NotEmpty(_)) && self.seg.producers_gone(&self.own) {
                return Err(Blocked::ProducersGone);
            }
            let (word, k) = self.word(cond);
            // Register while holding the lock: whoever changes the deque after this unlock will see us.
            let counted = self.seg.add_sleeper(self.reg.index, k, word);
            let seq = word.seq.load(Relaxed);
            drop(guard);
            // Never sleep unbounded: a process that changed the deque and was killed (or stopped) between its
            // unlock and its wake-up call leaves this sleeper counted but unwoken; so does a count that
            // cannot take one more (only garbage gets there), where nobody may wake it at all.
            let nap = if counted { recheck_interval() } else { Some(UNCOUNTED_SLEEP) };
            let until = nap.and_then(|nap| Instant::now().checked_add(nap));
            let until = match (deadline, until) {
                (Some(d), Some(u)) => Some(d.min(u)),
                (d, u) => d.or(u),
            };
            self.sleep_while(word, seq, until);
            if counted {
                self.seg.remove_sleeper(self.reg.index, k, word);
            }
            let rechecking = word.seq.load(Acquire) == seq && deadline.is_none_or(|d| Instant::now() < d);
            if !rechecking {
                self.spin.adapt(budget, start.elapsed());
                spun = None;
            }
            // A recheck keeps `spun`: if the deque still does not let it proceed, it goes back to sleep
            // without spinning again.
        }
    }

    /// The wait word of `cond`, and its index in a registration's `asleep`.
    fn word(&self, cond: Cond) -> (&WaitWord, usize) {
        match cond {
            Cond::NotEmpty(_) => (&self.header().not_empty, 0),
            Cond::NotFull => (&self.header().not_full, 1),
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
                // that fetching it overlaps with taking the lock (round trips 0.75 -> 0.64 us).
                let first = match end {
                    End::Front => u64::from(head),
                    End::Back => u64::from(head) + u64::from(len) - 1,
                };
                self.seg.prefetch_slot(first, false);
                // The pusher stores the ring word just before it unlocks: a trylock now would only take the
                // lock's line from the holder in the middle of its unlock. Wait until the lock looks free
                // (the same cache line, so no extra transfer); failed trylocks went from 40-65 % to 0.1 %.
                !self.header().lock.looks_held()
            }
            Cond::NotEmpty(_) => false,
            Cond::NotFull => len.saturating_add((cap / 4).min(ROOM_SLACK_MAX)) < cap,
        };
        ready || r.closed.load(Relaxed) != 0
    }

    /// Spins until `cond` may hold, for `budget` from `start` or until `deadline`. Returns whether it spun
    /// longer than one round of polls; only then has it read the clock, so a short wait (the usual one
    /// between two running processes) costs one clock read, at `start`.
    ///
    /// A wait for a message polls every [`MESSAGE_POLL_PAUSES`] PAUSEs and reads the clock once per round of
    /// about [`SPIN_POLLS`] PAUSEs: the round trip is what a waiting consumer is measured by. A wait for room
    /// polls every [`ROOM_POLL_PAUSES`]: the consumer has work queued, and every read of the ring word takes
    /// the lock's cache line from it. After [`SPIN_YIELD_AFTER`] each round also yields the core: the
    /// process that would change the condition may be queued on this very core.
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
            if self.interrupt.is_interrupted() {
                return long;
            }
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

    /// Bumps the sequence of `word` (so that a sleeper about to call FUTEX_WAIT with the old value returns at
    /// once) and wakes every process asleep on it: all, so that a sleeper killed right after its wake-up
    /// cannot swallow the wake-up another needed. `counted`: the sleepers counted under the lock (zero for a
    /// close waking whoever there is). A call that wakes fewer than were counted means that a counted
    /// sleeper is dead (or, briefly, about to sleep or just woken): the signaller then takes back the
    /// counts of dead registrations, under the lock if it is free within [`LOCK_SPIN`].
    pub(crate) fn signal(&self, word: &WaitWord, counted: u32) {
        word.seq.fetch_add(1, Release);
        let woken = os::futex_wake(&word.seq, i32::MAX);
        if woken < counted {
            self.reap_sleepers();
        }
    }

    /// Takes back the sleeper counts of dead registrations; see [`signal`](Self::signal).
    #[cold]
    fn reap_sleepers(&self) {
        let Ok(guard) = self.lock_until(Instant::now().checked_add(LOCK_SPIN), LOCK_BACKOFF_MAX) else {
            return;
        };
        let _ = self.seg.reap(&self.own, false);
        drop(guard);
    }
}

/// How long a counted sleeper sleeps at most before it looks again unwoken: [`SLEEP_RECHECK`], or (with the
/// `test-hooks` feature and `SHMDEQUE_TEST_NO_RECHECK` set) not at all, so that a lost wake-up hangs.
fn recheck_interval() -> Option<Duration> {
    #[cfg(feature = "test-hooks")]
    {
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *OFF.get_or_init(|| std::env::var_os("SHMDEQUE_TEST_NO_RECHECK").is_some()) {
            return None;
        }
    }
    Some(SLEEP_RECHECK)
}

impl RawDeque {
    /// Sleeps while `word.seq` still holds `seq`, up to the deadline, unless the handle is interrupted; the
    /// caller re-checks under the lock in every case (a wake-up, a change, a signal, the timeout).
    fn sleep_while(&self, word: &WaitWord, seq: u32, deadline: Option<Instant>) {
        let interrupt = &self.interrupt.0;
        while word.seq.load(Acquire) == seq && interrupt.load(Acquire) == 0 {
            let timeout = match deadline {
                Some(t) => match t.checked_duration_since(Instant::now()) {
                    Some(d) if !d.is_zero() => Some(d),
                    _ => break,
                },
                None => None,
            };
            os::futex_wait_either(&word.seq, seq, interrupt, 0, timeout, INTERRUPT_FALLBACK_SLICE);
        }
    }
}

/// The sleepers counted on `word` (read under the lock, by the guard before it unlocks).
#[inline]
pub(crate) fn sleepers(word: &WaitWord) -> u32 {
    word.sleepers.load(Relaxed)
}

#[cfg(feature = "async")]
impl Interrupter {
    /// The word that [`interrupt`](Self::interrupt) sets and wakes, for the async reactor to sleep on.
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.0
    }
}
