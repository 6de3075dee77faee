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

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU8, AtomicU32};
use std::time::{Duration, Instant};

use crate::err::Error;
use crate::guard::RawLockGuard;
use crate::layout::{self, WaitWord};
use crate::os;
use crate::raw::RawDeque;
use crate::ring::End;
use crate::tuning::{
    INTERRUPT_FALLBACK_SLICE, LOCK_BACKOFF_MAX, LOCK_SPIN, MESSAGE_POLL_PAUSES, ROOM_POLL_PAUSES, ROOM_SLACK_MAX,
    SLEEP_RECHECK, SPIN_POLLS, SPIN_YIELD_AFTER, SPINNING_GONE_CHECK, UNCOUNTED_SLEEP, WAIT_PROBE_NS,
    WAIT_PROBE_SKIP_MAX, WAIT_SPIN_MAX_NS, WAIT_SPIN_MIN_NS, WAIT_SPIN_START_NS,
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

/// How a handle's blocking operations wait for room or for a message, chosen per handle with
/// [`Builder::wait_strategy`](crate::Builder::wait_strategy): latency against CPU, after the LMAX Disruptor's
/// wait strategies and Aeron's idle strategies.
///
/// Only waits for room or for a message follow it: the deque's lock is held for a copy at most, and a wait
/// for it spins briefly and then sleeps whatever the strategy. The `_async` forms (feature `async`) never
/// spin, whatever the strategy: a task waits through the process's reactor thread, and its executor
/// thread runs other tasks meanwhile. Every strategy honours timeouts, deadlines,
/// [`Interrupter`]s and close, and a pop that waits reports
/// [`ProducersGone`](crate::PopError::ProducersGone) within about a second.
///
/// # Examples
///
/// ```
/// use shmdeque::{Builder, WaitStrategy};
/// # let name = format!("doc-strategy-{}", std::process::id());
/// // A consumer on a core of its own: never sleeps, answers within a cache-line transfer.
/// let q = Builder::new(&name).wait_strategy(WaitStrategy::BusySpin).open_raw()?;
/// # shmdeque::remove(&name)?;
/// # Ok::<(), shmdeque::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
#[repr(u8)]
pub enum WaitStrategy {
    /// Spins for up to 20 µs, then sleeps in the kernel (the default).
    ///
    /// - The spin follows the other side: a late answer that a 20 µs spin would have caught sets the budget
    ///   to 20 µs, and it shrinks slowly while answers come sooner (a spin ends when the answer comes, so a
    ///   large budget costs nothing while the other side answers quickly); each wait longer than 20 µs
    ///   halves it, down to 2 µs.
    /// - After this thread wakes a sleeper, its next wait spins up to 200 µs (a woken process takes tens
    ///   of microseconds to run again on a virtual machine whose idle vCPUs halt), so that two processes
    ///   that both fell asleep (a stolen vCPU, a slow start) are back to spinning after one round trip;
    ///   where the answer still comes later, such waits become rarer, down to one in 64.
    /// - A waiter whose partner last ran on its own CPU yields the CPU after one round of polls: spinning
    ///   there would only keep the partner from answering.
    ///
    /// CPU: a consumer blocked on an empty deque spins once, then uses none; a partner that answers within
    /// the spin costs the waiter a core for that long; one that answers after more than 20 µs costs about
    /// 2 µs of spin and a wake-up per wait.
    #[default]
    Adaptive = 0,
    /// Spins until it may proceed and never sleeps or yields: the lowest latency, at the price of a whole
    /// core for as long as it waits. For a process with a core of its own (pinned, or an isolated CPU).
    /// With more spinning processes than cores, a spinner can keep the very process it waits for off the
    /// CPU; prefer [`Yielding`](Self::Yielding) there.
    BusySpin = 1,
    /// Spins briefly, then offers its core to other runnable threads (`sched_yield`) between looks; never
    /// sleeps. A whole core while it waits, as busy-spin, but a process queued behind it on that core gets
    /// to run.
    Yielding = 2,
    /// Sleeps in the kernel at once: no CPU while it waits. Every message then costs the waker a system
    /// call and the sleeper a wake-up: a few microseconds on bare metal, tens on a virtual machine whose
    /// idle vCPUs halt.
    Blocking = 3,
}

impl WaitStrategy {
    const ALL: [WaitStrategy; 4] =
        [WaitStrategy::Adaptive, WaitStrategy::BusySpin, WaitStrategy::Yielding, WaitStrategy::Blocking];
}

/// A handle's wait policy, with the adaptive strategy's state.
pub(crate) struct Pacer {
    /// The [`WaitStrategy`], as its index in [`WaitStrategy::ALL`]: a handle may change it while in use.
    strategy: AtomicU8,
    /// How long the next wait spins before it sleeps, in nanoseconds.
    budget: AtomicU32,
    /// Probes that failed in a row (the partner took longer than [`WAIT_PROBE_NS`] even so), and how many
    /// probes to skip before the next: `misses << 16 | skip`.
    probes: AtomicU32,
}

thread_local! {
    /// Set when this thread woke a sleeper: the other side will answer after its wake-up, and this thread's
    /// next adaptive wait may spin through it (a probe).
    static WOKE_SLEEPER: Cell<bool> = const { Cell::new(false) };
}

/// How the next wait of a blocking operation spends its time before it sleeps.
#[derive(Clone, Copy)]
struct Spell {
    /// The spin budget it had.
    budget: u32,
    /// Whether it spins through a woken partner's wake-up.
    probe: bool,
    /// When it began.
    start: Instant,
    /// Whether it spun longer than one round of polls.
    long: bool,
}

impl Pacer {
    pub(crate) fn new(strategy: WaitStrategy) -> Pacer {
        Pacer {
            strategy: AtomicU8::new(strategy as u8),
            budget: AtomicU32::new(WAIT_SPIN_START_NS),
            probes: AtomicU32::new(0),
        }
    }

    pub(crate) fn strategy(&self) -> WaitStrategy {
        WaitStrategy::ALL[usize::from(self.strategy.load(Relaxed)) % WaitStrategy::ALL.len()]
    }

    pub(crate) fn set_strategy(&self, strategy: WaitStrategy) {
        self.strategy.store(strategy as u8, Relaxed);
    }

    /// Whether the wait about to spin should be a probe: this thread woke a sleeper since its last wait
    /// (through any handle: a request and its answer usually travel through two deques), and no probe is
    /// to be skipped.
    fn take_probe(&self) -> bool {
        if !WOKE_SLEEPER.replace(false) {
            return false;
        }
        let p = self.probes.load(Relaxed);
        if p & 0xffff != 0 {
            self.probes.store(p - 1, Relaxed);
            return false;
        }
        true
    }

    /// Learns from a probe: one that caught the partner's answer makes the next probe due at once; one
    /// that ended asleep doubles the number of probes skipped before the next (up to
    /// [`WAIT_PROBE_SKIP_MAX`]).
    fn probed(&self, caught: bool) {
        let next = if caught {
            0
        } else {
            let misses = ((self.probes.load(Relaxed) >> 16) + 1).min(WAIT_PROBE_SKIP_MAX.trailing_zeros());
            misses << 16 | ((1 << misses) - 1)
        };
        self.probes.store(next, Relaxed);
    }

    /// Sets the next wait's budget from how long this one lasted (`asleep`: it outlasted its spin).
    ///
    /// - A wait that outlasted its spin but that a spin of [`WAIT_SPIN_MAX_NS`] would have covered (the
    ///   other side is running, and was late this once: preempted, an interrupt) sets the budget to that
    ///   maximum: a sleep costs a wake-up, tens of microseconds on a virtual machine.
    /// - A wait within the budget shrinks it by 1/256 (down to [`WAIT_SPIN_MIN_NS`]): slowly, so that a late
    ///   answer once in a hundred keeps being covered. A spin ends when the answer comes, so a budget larger
    ///   than the usual answer costs nothing while the other side keeps answering.
    /// - A longer wait halves the budget, down to [`WAIT_SPIN_MIN_NS`]: the other side is not running, and
    ///   spinning would only take the core from it.
    fn adapt(&self, budget: u32, waited: Duration, asleep: bool) {
        let waited = waited.as_nanos().min(u32::MAX as u128) as u32;
        let next = if waited > WAIT_SPIN_MAX_NS {
            budget / 2
        } else if asleep || waited > budget {
            WAIT_SPIN_MAX_NS
        } else {
            budget - budget / 256
        };
        self.budget.store(next.clamp(WAIT_SPIN_MIN_NS, WAIT_SPIN_MAX_NS), Relaxed);
    }

    /// Ends a wait that ended after `spell` (asleep or not).
    fn learn(&self, spell: Spell, asleep: bool) {
        if self.strategy() != WaitStrategy::Adaptive {
            return;
        }
        if spell.probe {
            self.probed(!asleep);
        }
        if spell.long || asleep {
            self.adapt(spell.budget, spell.start.elapsed(), asleep);
        }
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
        let strategy = self.pace.strategy();
        // The spin this wait made before it may sleep (for `Blocking`, an empty one).
        let mut spun: Option<Spell> = None;
        // Strategies that never sleep look for dead producers this often instead, from the wait's start.
        let mut gone_check: Option<Instant> = None;
        loop {
            let mut guard = match first.take() {
                Some(guard) => guard,
                None => self.lock_until(wait.deadline(), max_pauses)?,
            };
            if let Some(r) = attempt(&mut guard) {
                if let Some(spell) = spun {
                    self.pace.learn(spell, false);
                }
                return Ok(r);
            }
            let deadline = match wait {
                Wait::Now => return Err(Blocked::WouldBlock),
                Wait::Until(t) if Instant::now() >= t => return Err(Blocked::Timeout),
                _ if self.interrupt.is_interrupted() => return Err(Blocked::Interrupted),
                w => w.deadline(),
            };
            let spell = match (spun, strategy) {
                (Some(spell), _) => spell,
                (None, WaitStrategy::Blocking) => Spell { budget: 0, probe: false, start: Instant::now(), long: true },
                (None, WaitStrategy::BusySpin | WaitStrategy::Yielding) => {
                    drop(guard);
                    let now = Instant::now();
                    if matches!(cond, Cond::NotEmpty(_)) {
                        let due = *gone_check.get_or_insert(now + SPINNING_GONE_CHECK);
                        if now >= due {
                            if self.seg.producers_gone(&self.own) {
                                return Err(Blocked::ProducersGone);
                            }
                            gone_check = Some(now + SPINNING_GONE_CHECK);
                        }
                    }
                    let chunk = Duration::from_nanos(WAIT_SPIN_MAX_NS.into());
                    self.spin_for(cond, now, chunk, deadline, strategy == WaitStrategy::Yielding);
                    continue;
                }
                (None, _) => {
                    drop(guard);
                    let budget = self.pace.budget.load(Relaxed);
                    let probe = self.pace.take_probe();
                    let spin = if probe { WAIT_PROBE_NS.max(budget) } else { budget };
                    let start = Instant::now();
                    let long = self.spin_for(cond, start, Duration::from_nanos(spin.into()), deadline, true);
                    spun = Some(Spell { budget, probe, start, long });
                    continue;
                }
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
            if rechecking {
                // If the deque still does not let it proceed, it goes back to sleep without spinning again.
                spun = Some(spell);
            } else {
                self.pace.learn(spell, true);
                spun = None;
            }
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
    /// process that would change the condition may be queued on this very core (unless `yields` is false:
    /// [`WaitStrategy::BusySpin`]); if it last ran on this core, after the first round.
    fn spin_for(&self, cond: Cond, start: Instant, budget: Duration, deadline: Option<Instant>, yields: bool) -> bool {
        let until = start + budget;
        let until = deadline.map_or(until, |d| d.min(until));
        let yield_after = if !yields {
            until
        } else if self.partner_shares_cpu(cond) {
            // Spinning cannot end the wait while the partner cannot run: give it the CPU after one round.
            start
        } else {
            start + SPIN_YIELD_AFTER
        };
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
            if now >= yield_after && yields {
                std::thread::yield_now();
            }
        }
    }

    /// Whether the thread that last changed the deque the way `cond` waits for (the last pusher, or popper)
    /// ran on this thread's CPU: then it is likely queued behind this thread now, and only a yield lets it
    /// answer. The scheduler puts two processes that wake each other on one CPU, on some machines for good.
    fn partner_shares_cpu(&self, cond: Cond) -> bool {
        let hint = match cond {
            Cond::NotEmpty(_) => &self.header().ring.last_cpu[0],
            Cond::NotFull => &self.header().ring.last_cpu[1],
        };
        let theirs = hint.load(Relaxed);
        theirs != 0 && theirs == os::current_cpu()
    }

    /// Bumps the sequence of `word` (so that a sleeper about to call FUTEX_WAIT with the old value returns at
    /// once) and wakes every process asleep on it: all, so that a sleeper killed right after its wake-up
    /// cannot swallow the wake-up another needed. `counted`: the sleepers counted under the lock (zero for a
    /// close waking whoever there is). A call that wakes fewer than were counted means that a counted
    /// sleeper is dead (or, briefly, about to sleep or just woken): the signaller then takes back the
    /// counts of dead registrations, under the lock if it is free within [`LOCK_SPIN`].
    pub(crate) fn signal(&self, word: &WaitWord, counted: u32) {
        word.seq.fetch_add(1, Release);
        if counted != 0 {
            WOKE_SLEEPER.set(true);
        }
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
