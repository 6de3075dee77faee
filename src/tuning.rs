//! Every tuning constant of the lock and the waits, one line each on what it does and what was measured.
//! The full measurements behind each are in `docs/DESIGN.md`, under a heading with the constant's name.
//! Figures come from 64-byte messages across the two vCPUs of an AMD EPYC virtual machine, medians of
//! interleaved runs of the old and new builds.

use std::time::Duration;

/// How long a locker spins on a held lock before it blocks in the kernel (critical sections are a memcpy).
pub(crate) const LOCK_SPIN: Duration = Duration::from_micros(20);
/// Longest pause, in PAUSEs, between looks at a held lock by a single-message operation (doubling from 1):
/// one per call 2.0 -> 5.2 M msg/s against polling after every PAUSE.
pub(crate) const LOCK_BACKOFF_MAX: u32 = 128;
/// The same for a batch, which looks after every PAUSE: batches of 64, 31-32 M msg/s against 24-25 M.
pub(crate) const BATCH_LOCK_PAUSES: u32 = 1;
/// Slots a batch asks the CPU to fetch before it takes the lock: batches of 64, 33.5 -> 40.4 M msg/s.
pub(crate) const PREFETCH_SLOTS: usize = 64;
/// Free slots (at most a quarter of the deque) a spinning producer waits for: 3.26 -> 3.89 M msg/s.
pub(crate) const ROOM_SLACK_MAX: u32 = 256;
/// PAUSEs between two looks at the ring word while waiting for room: 3.2 -> 4.9 M msg/s against 1.
pub(crate) const ROOM_POLL_PAUSES: u32 = 32;
/// PAUSEs between two looks while waiting for a message: round trips 0.56 (1) -> 0.45 us (3).
pub(crate) const MESSAGE_POLL_PAUSES: u32 = 3;
/// PAUSEs between two clock reads by a waiter, and looks between two by a locker with short pauses.
pub(crate) const SPIN_POLLS: u32 = 16;
/// Lower bound of the adaptive spin before a waiter sleeps, in nanoseconds: above a running partner's usual
/// answer, so that halving the budget after long waits does not make the next quick one come too late.
pub(crate) const WAIT_SPIN_MIN_NS: u32 = 2_000;
/// Upper bound of the adaptive spin, and the budget after a late answer it would have caught: 64 B round
/// trips p99 3.4-4.1 us against 3.5-4.2 us for "half the budget plus the wait", p99.9 7-30 against 9-38 us.
pub(crate) const WAIT_SPIN_MAX_NS: u32 = 20_000;
/// The spin budget of a new handle, in nanoseconds.
pub(crate) const WAIT_SPIN_START_NS: u32 = 2_000;
/// How long a wait spins after this thread woke a sleeper (a probe): longer than a woken process takes to
/// run again, so that two processes that both sleep on every message get back to spinning. 64 B round
/// trips, p99: 50-90 us without, 3.1-4.1 us with.
pub(crate) const WAIT_PROBE_NS: u32 = 200_000;
/// At most this many probes skipped between two, after probes that ended asleep (a power of two).
pub(crate) const WAIT_PROBE_SKIP_MAX: u32 = 64;
/// How often a wait that never sleeps (busy-spin, yielding) looks whether the producers are gone.
pub(crate) const SPINNING_GONE_CHECK: Duration = Duration::from_millis(1);
/// Spinning after which a waiter also yields the core each round: with a third process spinning, 0.5 / 1 /
/// 2 us gave 7.2 / 8.3 / 9.6 us round trips; with a partner answering after 1 us, 1.54 / 1.29 / 1.29 us.
pub(crate) const SPIN_YIELD_AFTER: Duration = Duration::from_micros(1);
/// Longest sleep before a sleeper looks again unwoken: a look costs ~60 us of CPU, so once a second.
pub(crate) const SLEEP_RECHECK: Duration = Duration::from_secs(1);
/// The same when the sleeper count could not take one more (only a garbage count gets there).
pub(crate) const UNCOUNTED_SLEEP: Duration = Duration::from_millis(1);
/// How often a locker asleep on a held lock looks whether its owner died (nobody wakes it then): a killed
/// holder's lock is taken over within about this long.
pub(crate) const LOCK_RECHECK: Duration = Duration::from_millis(10);
/// Where the kernel lacks futex_waitv (before Linux 5.16), how often a sleeper looks whether its handle was
/// interrupted.
pub(crate) const INTERRUPT_FALLBACK_SLICE: Duration = Duration::from_millis(10);
/// Async waits (feature `async`): where the kernel has no `futex_waitv`, or for words beyond the 128 it
/// takes, how often the reactor looks at the watched words itself. Not measured: it bounds the extra latency
/// of a fallback that should be rare.
#[cfg(feature = "async")]
pub(crate) const FALLBACK_SLICE: Duration = Duration::from_millis(1);
/// Async waits: how long a key without waiters keeps its view of the header before the reactor unmaps it.
/// Not measured: long enough that a task waiting again and again maps nothing, short enough that dropped
/// handles' views go soon.
#[cfg(feature = "async")]
pub(crate) const KEY_IDLE: Duration = Duration::from_secs(1);
