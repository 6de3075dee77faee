//! The async reactor: one thread per process that sleeps in the kernel for every async waiter of every
//! deque, and wakes the tasks whose condition may have changed (feature `async`).
//!
//! # Keys, counts and the baton
//!
//! Async waiters are grouped by *key*: one handle's wait for one condition (a message, or room). A key counts
//! **one** sleeper in the condition's wait word and in its handle's registration (`registry.rs`), taken
//! under the deque's lock by the first waiter and given back by the last one to leave, whether it completed
//! or was dropped: so a signaller, which bumps the sequence word and calls `FUTEX_WAKE` only when it counts
//! a sleeper, wakes the reactor exactly as it would wake a sleeping thread, and finds as many woken as it
//! counted. A killed process's key counts are taken back like any sleeper's, through its registration.
//!
//! The reactor sleeps in `futex_waitv` on the sequence word of every *armed* key, the value it was armed
//! with being one that a waiter read before an attempt that failed; on the interrupt word of each
//! handle; and on a process-private word that futures bump when the watched set changes. When a key's word
//! changes, the reactor disarms the key and wakes **one** of its waiters, which holds the baton: it polls,
//! tries its operation, and either
//! - fails, and arms the key again with the value it read before trying, or
//! - completes (or is dropped), and if the key is still disarmed, hands the baton to the next waiter.
//!
//! So a message pushed to a deque with 10 000 waiting tasks wakes one task, not 10 000, and a burst of
//! messages goes down the line of waiters one hand-over at a time. A waiter that a deadline, an interrupt,
//! or the reactor's periodic look (every `SLEEP_RECHECK`, for a signaller killed between its change and its
//! wake-up, and for producers that died) wakes, tries too.
//!
//! # Why the reactor never reads a segment
//!
//! A future borrows its handle, but a future can be leaked (`mem::forget`), after which the handle, and
//! its mapping, may go away while the key is still registered. So the reactor only hands addresses to the
//! kernel (`futex_waitv`, and a `FUTEX_WAIT` with a zero timeout to ask whether a word still holds a value):
//! an address that is no longer mapped comes back as `EFAULT` and its key is dropped from the watch. Reading
//! the deque (its length, whether it is closed) is left to the futures, which hold their handle.
//!
//! # Limits and the fallback
//!
//! `futex_waitv` takes at most 128 words. The first 128 are watched by the kernel; words beyond them (more
//! than about 60 handles with async waiters at once in one process) are looked at every
//! [`FALLBACK_SLICE`]. On kernels without `futex_waitv` (before Linux 5.16) the reactor sleeps on its
//! private word alone, in slices of [`FALLBACK_SLICE`], and looks at every watched word after each: a waiter
//! then learns of a change within about a millisecond rather than a wake-up's few microseconds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::guard::RawLockGuard;
use crate::layout::WaitWord;
use crate::os::{self, Probed, Waited, Watched};
use crate::raw::RawDeque;
use crate::tuning::{SLEEP_RECHECK, UNCOUNTED_SLEEP};
use crate::wait::Interrupter;

/// Where the kernel has no `futex_waitv`, or for words beyond the 128 it takes: how often the reactor looks
/// at the watched words itself. Not measured: it bounds the extra latency of a fallback that should be rare.
pub(crate) const FALLBACK_SLICE: Duration = Duration::from_millis(1);
/// The most words one `futex_waitv` call takes (the kernel's `FUTEX_WAITV_MAX`).
const MAX_WAITV: usize = 128;

/// Which condition a key waits for: its wait word and its index in a registration's `asleep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    Message = 0,
    Room = 1,
}

impl Cond {
    pub(crate) fn word(self, deque: &RawDeque) -> &WaitWord {
        match self {
            Cond::Message => &deque.header().not_empty,
            Cond::Room => &deque.header().not_full,
        }
    }
}

/// One handle's wait for one condition, and its waiters.
struct Key {
    /// The sequence word's address in this process; never dereferenced here (see the module docs).
    seq: usize,
    /// The handle's interrupter (a clone, so that its address names this handle for as long as the key lives).
    interrupt: Interrupter,
    /// The value the reactor sleeps on; `None` while disarmed (a waiter holds the baton, or none armed yet).
    armed: Option<u32>,
    /// Whether the key counts its sleeper in the wait word (false only if a garbage count was full).
    counted: bool,
    /// Live waiters, and how many of them hold a wake-up they have not acted on.
    waiters: usize,
    notified: usize,
    /// Waiters that may be handed the baton, oldest first (ids of waiters gone since are skipped).
    queue: VecDeque<u64>,
    /// When the reactor next wakes a waiter unasked; `None` with the test hook that turns rechecks off.
    recheck_at: Option<Instant>,
    /// The word's address is not mapped any more (a leaked future outlived its handle): never watched again.
    faulted: bool,
}

struct Waiter {
    key: u64,
    waker: Option<Waker>,
    /// Woken to try: the baton, a deadline or an interrupt.
    notified: bool,
    queued: bool,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct State {
    keys: BTreeMap<u64, Key>,
    /// (sequence word address, interrupt word address) -> key.
    idents: BTreeMap<(usize, usize), u64>,
    waiters: BTreeMap<u64, Waiter>,
    /// Waiters' deadlines.
    timers: BTreeSet<(Instant, u64)>,
    next_id: u64,
}

/// What a word of one `futex_waitv` call stands for.
#[derive(Clone, Copy)]
enum Entry {
    /// The reactor's own word.
    Changed,
    /// A key's sequence word, armed with this value.
    Seq(u64, u32),
    /// A handle's interrupt word.
    Interrupt,
}

/// The process's reactor: its state, and the private word futures bump when they change what it watches.
pub(crate) struct Reactor {
    state: Mutex<State>,
    changed: AtomicU32,
}

static REACTOR: Reactor = Reactor {
    state: Mutex::new(State {
        keys: BTreeMap::new(),
        idents: BTreeMap::new(),
        waiters: BTreeMap::new(),
        timers: BTreeSet::new(),
        next_id: 0,
    }),
    changed: AtomicU32::new(0),
};

/// The reactor, its thread started on first use; `None` if the thread cannot be started.
pub(crate) fn reactor() -> Option<&'static Reactor> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    let started = *STARTED
        .get_or_init(|| std::thread::Builder::new().name("shmdeque-reactor".into()).spawn(|| REACTOR.run()).is_ok());
    started.then_some(&REACTOR)
}

/// How long a key goes without a look when nobody wakes it: as a sync sleeper's recheck (`wait.rs`), and as
/// there, `SHMDEQUE_TEST_NO_RECHECK` with the `test-hooks` feature turns it off so that a lost wake-up hangs.
fn recheck_interval(counted: bool) -> Option<Duration> {
    if !counted {
        return Some(UNCOUNTED_SLEEP);
    }
    #[cfg(feature = "test-hooks")]
    {
        static OFF: OnceLock<bool> = OnceLock::new();
        if *OFF.get_or_init(|| std::env::var_os("SHMDEQUE_TEST_NO_RECHECK").is_some()) {
            return None;
        }
    }
    Some(SLEEP_RECHECK)
}

/// Whether the reactor must do without `futex_waitv`: never, except with the `test-hooks` feature and
/// `SHMDEQUE_TEST_NO_WAITV` set, which exercises the fallback on kernels that have it.
fn forced_fallback() -> bool {
    #[cfg(feature = "test-hooks")]
    {
        std::env::var_os("SHMDEQUE_TEST_NO_WAITV").is_some()
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        false
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

impl State {
    /// Hands the baton to the oldest queued waiter of `key` that holds none; its waker goes into `wake`.
    fn notify_next(&mut self, key_id: u64, wake: &mut Vec<Waker>) {
        let Some(key) = self.keys.get_mut(&key_id) else { return };
        while let Some(id) = key.queue.pop_front() {
            let Some(w) = self.waiters.get_mut(&id) else { continue };
            if w.key != key_id || !w.queued {
                continue;
            }
            w.queued = false;
            if !w.notified {
                w.notified = true;
                key.notified += 1;
            }
            if let Some(waker) = &w.waker {
                wake.push(waker.clone());
            }
            return;
        }
    }

    /// The word of `key` changed from `value` (or the reactor looks unasked): disarm and hand the baton on.
    fn changed(&mut self, key_id: u64, value: Option<u32>, wake: &mut Vec<Waker>) {
        let Some(key) = self.keys.get_mut(&key_id) else { return };
        if key.armed.is_none() || (value.is_some() && key.armed != value) {
            // Disarmed already (someone holds the baton), or armed again since with a newer value.
            return;
        }
        key.armed = None;
        self.notify_next(key_id, wake);
    }

    /// Wakes every waiter of `key` to try (an interrupt, a fault), without handing out batons.
    fn wake_key(&mut self, key_id: u64, wake: &mut Vec<Waker>) {
        for w in self.waiters.values_mut().filter(|w| w.key == key_id) {
            if let Some(waker) = &w.waker {
                wake.push(waker.clone());
            }
        }
    }

    /// Fires due deadlines and rechecks; returns when the next one is due.
    fn fire_timers(&mut self, now: Instant, wake: &mut Vec<Waker>) -> Option<Instant> {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(waker) = self.waiters.get(&id).and_then(|w| w.waker.clone()) {
                wake.push(waker);
            }
        }
        let due: Vec<u64> =
            self.keys.iter().filter(|(_, k)| k.recheck_at.is_some_and(|t| t <= now)).map(|(&id, _)| id).collect();
        for id in due {
            if let Some(key) = self.keys.get_mut(&id) {
                key.recheck_at = recheck_interval(key.counted).and_then(|d| now.checked_add(d));
            }
            self.changed(id, None, wake);
        }
        let next_key = self.keys.values().filter_map(|k| k.recheck_at).min();
        let next_timer = self.timers.first().map(|&(t, _)| t);
        match (next_key, next_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Reactor {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing here leaves the state half-changed across a panic: go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the reactor build its watch set again.
    fn kick(&self) {
        self.changed.fetch_add(1, Release);
        os::futex_wake_private(&self.changed);
    }

    /// Registers a waiter for `cond` of `deque`, whose lock `_guard` is held: the key counts its sleeper
    /// under the lock, as a sync sleeper does, so that whoever changes the deque after this sees it. Returns
    /// the waiter's id and the sequence value read under the lock; the caller tries its operation once more
    /// before it waits on that value.
    pub(crate) fn register(
        &self,
        deque: &RawDeque,
        _guard: &RawLockGuard<'_>,
        cond: Cond,
        deadline: Option<Instant>,
        waker: &Waker,
    ) -> (u64, u32) {
        let word = cond.word(deque);
        let seq_addr = word.seq.as_ptr() as usize;
        let ident = (seq_addr, deque.interrupt.word().as_ptr() as usize);
        let mut s = self.lock();
        s.next_id = s.next_id.wrapping_add(1);
        let id = s.next_id;
        let key_id = match s.idents.get(&ident) {
            Some(&k) => k,
            None => {
                let key = Key {
                    seq: seq_addr,
                    interrupt: deque.interrupt.clone(),
                    armed: None,
                    counted: false,
                    waiters: 0,
                    notified: 0,
                    queue: VecDeque::new(),
                    recheck_at: None,
                    faulted: false,
                };
                s.keys.insert(id, key);
                s.idents.insert(ident, id);
                id
            }
        };
        if let Some(key) = s.keys.get_mut(&key_id) {
            if !key.counted {
                key.counted = deque.seg.add_sleeper(deque.reg.index, cond as usize, word);
                key.recheck_at = recheck_interval(key.counted).and_then(|d| Instant::now().checked_add(d));
            }
            key.waiters += 1;
        }
        s.waiters
            .insert(id, Waiter { key: key_id, waker: Some(waker.clone()), notified: false, queued: false, deadline });
        if let Some(d) = deadline {
            s.timers.insert((d, id));
        }
        (id, word.seq.load(Relaxed))
    }

    /// Takes the waiter's wake-up, if it has one, and remembers its latest waker.
    pub(crate) fn notified(&self, id: u64, waker: &Waker) -> bool {
        let mut s = self.lock();
        let Some(w) = s.waiters.get_mut(&id) else { return true };
        if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            w.waker = Some(waker.clone());
        }
        w.notified
    }

    /// The waiter tried after reading `seen` from the sequence word and must wait: it queues for the baton
    /// and, if the key is disarmed, arms it with `seen`.
    pub(crate) fn arm(&self, id: u64, seen: u32, waker: &Waker) {
        let mut s = self.lock();
        let s = &mut *s;
        let Some(w) = s.waiters.get_mut(&id) else { return };
        let key_id = w.key;
        if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            w.waker = Some(waker.clone());
        }
        let Some(key) = s.keys.get_mut(&key_id) else { return };
        if w.notified {
            w.notified = false;
            key.notified = key.notified.saturating_sub(1);
        }
        if !w.queued {
            w.queued = true;
            key.queue.push_back(id);
        }
        let kick = key.armed.is_none() && !key.faulted;
        if kick {
            key.armed = Some(seen);
        }
        // Ids of waiters gone since pile up only until the next hand-over; keep them from piling up
        // without one (waiters that come and go while nothing changes).
        if key.queue.len() > 2 * key.waiters + 64 {
            let waiters = &s.waiters;
            key.queue.retain(|i| waiters.get(i).is_some_and(|w| w.key == key_id && w.queued));
        }
        if kick {
            self.kick();
        }
    }

    /// The waiter completed or was dropped. The last waiter of a key gives its sleeper count back
    /// (`uncount`, called under the reactor's lock so that no waiter counts meanwhile); otherwise, if the key
    /// is disarmed and no other waiter holds a wake-up, the baton goes to the next one.
    pub(crate) fn leave(&self, id: u64, uncount: impl FnOnce()) {
        let mut wake = Vec::new();
        {
            let mut s = self.lock();
            let Some(w) = s.waiters.remove(&id) else { return };
            if let Some(d) = w.deadline {
                s.timers.remove(&(d, id));
            }
            let key_id = w.key;
            let Some(key) = s.keys.get_mut(&key_id) else { return };
            key.waiters = key.waiters.saturating_sub(1);
            if w.notified {
                key.notified = key.notified.saturating_sub(1);
            }
            if key.waiters == 0 {
                if key.counted {
                    uncount();
                }
                let ident = (key.seq, key.interrupt.word().as_ptr() as usize);
                s.keys.remove(&key_id);
                s.idents.remove(&ident);
                drop(s);
                // Let the reactor forget the word, so that the kernel holds no address of a handle that may
                // be dropped next.
                self.kick();
            } else if key.armed.is_none() && key.notified == 0 {
                s.notify_next(key_id, &mut wake);
            }
        }
        wake_all(wake);
    }

    /// The reactor thread: builds the watch set, sleeps, and wakes the waiters of what changed.
    fn run(&self) {
        let mut waitv = !forced_fallback();
        loop {
            let mut wake = Vec::new();
            let mut words = Vec::new();
            let mut entries = Vec::new();
            let next = {
                let mut s = self.lock();
                let now = Instant::now();
                let next = s.fire_timers(now, &mut wake);
                // Interrupted handles: wake all their waiters (they return `Interrupted`), and do not sleep on a
                // word that stays set.
                let interrupted: Vec<u64> =
                    s.keys.iter().filter(|(_, k)| k.interrupt.is_interrupted()).map(|(&id, _)| id).collect();
                for id in interrupted {
                    s.wake_key(id, &mut wake);
                }
                words.push(Watched {
                    addr: self.changed.as_ptr() as usize,
                    expected: self.changed.load(Acquire),
                    private: true,
                });
                entries.push(Entry::Changed);
                let mut interrupts = BTreeSet::new();
                for (&id, k) in &s.keys {
                    if let (Some(v), false) = (k.armed, k.faulted) {
                        words.push(Watched { addr: k.seq, expected: v, private: false });
                        entries.push(Entry::Seq(id, v));
                    }
                    let iw = k.interrupt.word();
                    if interrupts.insert(iw.as_ptr() as usize) && !k.interrupt.is_interrupted() {
                        words.push(Watched { addr: iw.as_ptr() as usize, expected: 0, private: true });
                        entries.push(Entry::Interrupt);
                    }
                }
                next
            };
            wake_all(std::mem::take(&mut wake));

            // The kernel watches the first MAX_WAITV words; any others are looked at every FALLBACK_SLICE.
            let watched = if waitv { words.len().min(MAX_WAITV) } else { 0 };
            // Without futex_waitv the reactor sleeps on its own word alone: it needs slices only while it
            // watches some other word.
            let polled = if waitv { watched < words.len() } else { words.len() > 1 };
            let mut timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            if polled {
                timeout = Some(timeout.map_or(FALLBACK_SLICE, |t| t.min(FALLBACK_SLICE)));
            }
            let outcome = if waitv {
                os::futex_waitv_addrs(&words[..watched], timeout)
            } else {
                os::futex_wait_private(&self.changed, words[0].expected, timeout);
                Waited::LookAgain
            };
            let look_from = match outcome {
                Waited::Woken(i) => {
                    if let Some(&Entry::Seq(id, v)) = entries.get(i) {
                        self.lock().changed(id, Some(v), &mut wake);
                    }
                    watched
                }
                Waited::TimedOut => watched,
                Waited::LookAgain | Waited::Fault => 0,
                Waited::Unsupported => {
                    waitv = false;
                    0
                }
            };
            if polled || look_from == 0 {
                self.look_at(&words[look_from..], &entries[look_from..], &mut wake);
            }
            wake_all(wake);
        }
    }

    /// Asks the kernel whether each key word still holds its armed value; hands the baton on for those that
    /// changed, and stops watching those that are not mapped any more.
    fn look_at(&self, words: &[Watched], entries: &[Entry], wake: &mut Vec<Waker>) {
        let found: Vec<(u64, u32, Probed)> = words
            .iter()
            .zip(entries)
            .filter_map(|(w, e)| match *e {
                Entry::Seq(id, v) => Some((id, v, os::futex_probe(w.addr, v))),
                _ => None,
            })
            .collect();
        let mut s = self.lock();
        for (id, v, probed) in found {
            match probed {
                Probed::Same => {}
                Probed::Changed => s.changed(id, Some(v), wake),
                Probed::Fault => {
                    if let Some(k) = s.keys.get_mut(&id) {
                        k.faulted = true;
                        k.armed = None;
                    }
                    s.wake_key(id, wake);
                }
            }
        }
    }
}
