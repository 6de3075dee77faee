//! The async reactor: one thread per process that sleeps in the kernel for every async waiter of every
//! deque, and wakes the tasks whose condition may have changed (feature `async`).
//!
//! # Keys, counts and the baton
//!
//! Async waiters are grouped by *key*: one handle's wait for one condition (a message, or room). A key
//! stands for its waiters as one sleeping thread would: it counts **one** sleeper in the condition's wait
//! word and in its handle's registration (`registry.rs`), taken under the deque's lock by a waiter about to
//! wait, so that a signaller, which bumps the sequence word and calls `FUTEX_WAKE` only when it counts a
//! sleeper, wakes the reactor, and finds as many woken as it counted.
//!
//! The reactor sleeps in `futex_waitv` on the sequence word of every *armed* key (armed with a value that
//! a waiter read, after the count, before a try that failed), on the interrupt word of each handle, and on
//! a process-private word that futures bump when the watched set changes. When it finds a key's word
//! changed, it does what a woken sleeper does first: it takes the key's count back out of the segment
//! (so that the pushes that follow cost their makers nothing, as with a sleeper that is awake), disarms the
//! key, and wakes **one** waiter, which holds the baton: it polls, tries its operation, and either
//! - fails, counts the key again under the lock, reads the word, tries once more and arms the key, or
//! - completes (or is dropped), and if the key is still disarmed, hands the baton to the next waiter.
//!
//! So a message pushed to a deque with 10 000 waiting tasks wakes one task, not 10 000, and a burst of
//! messages goes down the line of waiters one hand-over at a time. A waiter that a deadline or an interrupt
//! wakes tries too, and the reactor looks unasked every `SLEEP_RECHECK` (for a signaller killed between its
//! change and its wake-up, and for producers that died), as a sleeping thread does. The last waiter to
//! leave a key takes its count back; a killed process's key counts go back with its registration, like any
//! sleeper's.
//!
//! # The reactor's own view of each header
//!
//! A future borrows its handle, but a future can be leaked (`mem::forget`), after which the handle and its
//! mapping may go away while the key is still registered. So each key maps the segment's header again, for
//! the reactor alone (`os::map_prefix`): the words it sleeps on, reads and takes counts out of are in a
//! mapping the key owns. A key without waiters is kept for [`KEY_IDLE`] (so that a task that waits again
//! and again does not map the header each time) and then unmapped by the reactor thread, between two
//! sleeps: the only thread that unmaps, so no address in a `futex_waitv` call goes away during the call.
//!
//! # Limits and the fallback
//!
//! `futex_waitv` takes at most 128 words. The first 128 are watched by the kernel; words beyond them (more
//! than about 60 handles with async waiters at once in one process) are looked at every
//! [`FALLBACK_SLICE`]. On kernels without `futex_waitv` (before Linux 5.16) the reactor sleeps on its
//! private word alone, in slices of [`FALLBACK_SLICE`], and looks at every watched word after each: a waiter
//! then learns of a change within about a millisecond rather than a wake-up's few microseconds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::err::Error;
use crate::layout::{HEADER_SIZE, Header, WaitWord};
use crate::os::{self, Waited, Watched};
use crate::raw::RawDeque;
use crate::registry;
use crate::tuning::{FALLBACK_SLICE, KEY_IDLE, LOCK_BACKOFF_MAX, SLEEP_RECHECK, UNCOUNTED_SLEEP};
use crate::wait::{Blocked, Interrupter};

/// The most words one `futex_waitv` call takes (the kernel's `FUTEX_WAITV_MAX`).
const MAX_WAITV: usize = 128;

/// Which condition a key waits for: its wait word and its index in a registration's `asleep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    Message = 0,
    Room = 1,
}

impl Cond {
    fn of(self, h: &Header) -> &WaitWord {
        match self {
            Cond::Message => &h.not_empty,
            Cond::Room => &h.not_full,
        }
    }

    /// This condition's wait word in `deque`'s mapping.
    pub(crate) fn word(self, deque: &RawDeque) -> &WaitWord {
        self.of(deque.header())
    }
}

/// The reactor's own mapping of a segment's header.
struct HeaderView {
    ptr: NonNull<u8>,
}

// SAFETY: the view is shared memory made of atomics, only ever used through `&Header`; nothing in it is tied
// to a thread.
unsafe impl Send for HeaderView {}

impl HeaderView {
    fn new(deque: &RawDeque) -> Result<HeaderView, Error> {
        let ptr = os::map_prefix(deque.seg.fd(), HEADER_SIZE).map_err(|source| Error::Os {
            name: deque.name().to_owned(),
            op: "mapping the header for the async reactor",
            source,
        })?;
        Ok(HeaderView { ptr })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is HEADER_SIZE >= size_of::<Header>() bytes of a segment file at least that long
        // (checked when its handle opened it), page-aligned (so aligned for Header), and lives as long as
        // `self`; every Header field is an atomic (or an array or padded struct of them), valid for any bit
        // pattern and safe to share between threads and processes.
        unsafe { self.ptr.cast::<Header>().as_ref() }
    }
}

impl Drop for HeaderView {
    fn drop(&mut self) {
        // SAFETY: `ptr` is this view's own mapping of HEADER_SIZE bytes; `header()` borrows `self`, so no
        // reference into it outlives the view.
        unsafe { os::unmap(self.ptr, HEADER_SIZE) };
    }
}

/// Whether a key counts its sleeper in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    No,
    Yes,
    /// The count could not take one more (only garbage gets there): armed anyway, and looked at often.
    Failed,
}

/// One handle's wait for one condition, and its waiters.
struct Key {
    view: HeaderView,
    cond: Cond,
    /// The handle's registration, which the count is in.
    reg: (u32, u32),
    /// The handle's interrupter (a clone, so that its address names this handle for as long as the key lives).
    interrupt: Interrupter,
    /// The value the reactor sleeps on; `None` while disarmed.
    armed: Option<u32>,
    count: Count,
    /// Bumped whenever the key counts again, so that a waiter never arms with a value read under an older
    /// count (one the reactor has taken back since).
    epoch: u64,
    /// Live waiters, and how many of them hold a wake-up they have not acted on.
    waiters: usize,
    notified: usize,
    /// Waiters that may be handed the baton, oldest first (ids of waiters gone since are skipped).
    queue: VecDeque<u64>,
    /// When the reactor next looks unasked; `None` with the test hook that turns rechecks off.
    recheck_at: Option<Instant>,
    /// Since when the key has had no waiter.
    idle_since: Option<Instant>,
}

impl Key {
    fn seq(&self) -> &AtomicU32 {
        &self.cond.of(self.view.header()).seq
    }

    /// Takes the key's count back out of the segment, through the reactor's own view.
    fn uncount(&mut self) {
        if self.count == Count::Yes {
            registry::remove_sleeper_in(self.view.header(), self.reg.0, self.reg.1, self.cond as usize);
        }
        self.count = Count::No;
    }
}

struct Waiter {
    key: u64,
    waker: Option<Waker>,
    /// Woken to try: the baton.
    notified: bool,
    queued: bool,
    deadline: Option<Instant>,
}

struct State {
    keys: BTreeMap<u64, Key>,
    /// (the handle's sequence word address, its interrupt word address) -> key.
    idents: BTreeMap<(usize, usize), u64>,
    waiters: BTreeMap<u64, Waiter>,
    /// Waiters' deadlines.
    timers: BTreeSet<(Instant, u64)>,
    next_id: u64,
}

/// What a waiter about to wait gets from [`Reactor::prepare`]: its id, the value it read from the sequence
/// word after the key counted, and the count's epoch.
pub(crate) struct Prepared {
    pub id: u64,
    pub seen: u32,
    pub epoch: u64,
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
fn recheck_interval(count: Count) -> Option<Duration> {
    if count == Count::Failed {
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

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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

    /// The word of an armed key changed (or the reactor looks unasked): as a woken sleeper, take the count
    /// back, disarm, and hand the baton on.
    fn changed(&mut self, key_id: u64, wake: &mut Vec<Waker>) {
        let Some(key) = self.keys.get_mut(&key_id) else { return };
        if key.armed.is_none() {
            return;
        }
        key.armed = None;
        key.uncount();
        self.notify_next(key_id, wake);
    }

    /// Looks at the word of every armed key.
    fn look(&mut self, wake: &mut Vec<Waker>) {
        let changed: Vec<u64> = self
            .keys
            .iter()
            .filter(|(_, k)| k.armed.is_some_and(|v| k.seq().load(Acquire) != v))
            .map(|(&id, _)| id)
            .collect();
        for id in changed {
            self.changed(id, wake);
        }
    }

    /// Fires due deadlines and rechecks, and unmaps keys idle for [`KEY_IDLE`]; returns when the next of
    /// those is due.
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
                key.recheck_at = None;
            }
            self.changed(id, wake);
        }
        let idle: Vec<u64> = self
            .keys
            .iter()
            .filter(|(_, k)| k.idle_since.is_some_and(|t| now.saturating_duration_since(t) >= KEY_IDLE))
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            if let Some(key) = self.keys.remove(&id) {
                self.idents.retain(|_, k| *k != id);
                drop(key);
            }
        }
        let mut next = self.timers.first().map(|&(t, _)| t);
        for k in self.keys.values() {
            next = earliest(next, k.recheck_at);
            next = earliest(next, k.idle_since.and_then(|t| t.checked_add(KEY_IDLE)));
        }
        next
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

    /// Registers a waiter for `cond` of `deque`, creating the key (and its view of the header) if this
    /// handle has none for `cond` yet. Nothing is counted yet: see [`prepare`](Self::prepare).
    ///
    /// # Errors
    /// Mapping the header for a new key.
    pub(crate) fn register(
        &self,
        deque: &RawDeque,
        cond: Cond,
        deadline: Option<Instant>,
        waker: &Waker,
    ) -> Result<u64, Error> {
        let ident = (cond.word(deque).seq.as_ptr() as usize, deque.interrupt.word().as_ptr() as usize);
        let mut s = self.lock();
        let key_id = match s.idents.get(&ident) {
            Some(&k) => k,
            None => {
                let view = HeaderView::new(deque)?;
                s.next_id = s.next_id.wrapping_add(1);
                let k = s.next_id;
                let key = Key {
                    view,
                    cond,
                    reg: (deque.reg.index, deque.reg.generation),
                    interrupt: deque.interrupt.clone(),
                    armed: None,
                    count: Count::No,
                    epoch: 0,
                    waiters: 0,
                    notified: 0,
                    queue: VecDeque::new(),
                    recheck_at: None,
                    idle_since: None,
                };
                s.keys.insert(k, key);
                s.idents.insert(ident, k);
                k
            }
        };
        s.next_id = s.next_id.wrapping_add(1);
        let id = s.next_id;
        s.waiters
            .insert(id, Waiter { key: key_id, waker: Some(waker.clone()), notified: false, queued: false, deadline });
        if let Some(d) = deadline {
            s.timers.insert((d, id));
        }
        if let Some(key) = s.keys.get_mut(&key_id) {
            key.waiters += 1;
            key.idle_since = None;
        }
        Ok(id)
    }

    /// Gets waiter `id` of `deque` ready to wait: its key counts its sleeper (if it does not, this takes the
    /// deque's lock to count it, as a sleeping thread does), and the value of the sequence word read after
    /// that comes back. The caller then tries its operation once more, and arms with the value if it still
    /// has to wait.
    ///
    /// # Errors
    /// The lock's: a deadline that passed, a corrupted segment.
    pub(crate) fn prepare(&self, id: u64, deque: &RawDeque, deadline: Option<Instant>) -> Result<Prepared, Blocked> {
        let lost = || Blocked::Failed(Box::new(deque.corrupted("the async reactor lost a waiter")));
        {
            let s = self.lock();
            let key = s.waiters.get(&id).and_then(|w| s.keys.get(&w.key)).ok_or_else(lost)?;
            if key.count != Count::No {
                // Counted already: any change after the count bumps the word, so a value read now is one to
                // wait on.
                return Ok(Prepared { id, seen: key.seq().load(Acquire), epoch: key.epoch });
            }
        }
        // Count under the deque's lock, as a sleeping thread does: whoever changes the deque after this
        // unlock sees the count. (The deque's lock first, then the reactor's: the reactor thread never takes
        // a deque's lock.)
        let _guard = deque.lock_until(deadline, LOCK_BACKOFF_MAX)?;
        let mut s = self.lock();
        let key_id = s.waiters.get(&id).map(|w| w.key).ok_or_else(lost)?;
        let key = s.keys.get_mut(&key_id).ok_or_else(lost)?;
        let word = key.cond.of(deque.header());
        if key.count == Count::No {
            let counted = deque.seg.add_sleeper(deque.reg.index, key.cond as usize, word);
            key.count = if counted { Count::Yes } else { Count::Failed };
            key.epoch = key.epoch.wrapping_add(1);
        }
        Ok(Prepared { id, seen: word.seq.load(Relaxed), epoch: key.epoch })
    }

    /// Takes the waiter's wake-up, if it has one, and remembers its latest waker.
    pub(crate) fn notified(&self, id: u64, waker: &Waker) -> bool {
        // Declared before the lock, so dropped after it: dropping a waker may run the executor's code.
        let mut _stale = None;
        let mut s = self.lock();
        let Some(w) = s.waiters.get_mut(&id) else { return true };
        if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            _stale = w.waker.replace(waker.clone());
        }
        w.notified
    }

    /// The waiter tried after [`prepare`](Self::prepare) and must wait: it queues for the baton and, if the
    /// key is disarmed, arms it with the value it read. `false` if the key's count was taken back since
    /// that value was read: the caller must prepare again (it keeps its wake-up).
    pub(crate) fn arm(&self, p: &Prepared, waker: &Waker) -> bool {
        // Declared before the lock, so dropped after it: dropping a waker may run the executor's code.
        let mut _stale = None;
        let mut s = self.lock();
        let s = &mut *s;
        let Some(w) = s.waiters.get_mut(&p.id) else { return false };
        let key_id = w.key;
        if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            _stale = w.waker.replace(waker.clone());
        }
        let Some(key) = s.keys.get_mut(&key_id) else { return false };
        if key.count == Count::No || key.epoch != p.epoch {
            return false;
        }
        if w.notified {
            w.notified = false;
            key.notified = key.notified.saturating_sub(1);
        }
        if !w.queued {
            w.queued = true;
            key.queue.push_back(p.id);
        }
        let kick = key.armed.is_none();
        if kick {
            key.armed = Some(p.seen);
            if key.recheck_at.is_none() {
                key.recheck_at = recheck_interval(key.count).and_then(|d| Instant::now().checked_add(d));
            }
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
        true
    }

    /// The waiter completed or was dropped. The last waiter of a key takes its count back (under the
    /// reactor's lock, so that no waiter counts meanwhile); otherwise, if the key is disarmed and no other
    /// waiter holds a wake-up, the baton goes to the next one.
    pub(crate) fn leave(&self, id: u64) {
        let mut wake = Vec::new();
        // Dropped after the lock: dropping its waker may run the executor's code.
        let mut _removed = None;
        {
            let mut s = self.lock();
            let Some(w) = s.waiters.remove(&id) else { return };
            let w = &*_removed.insert(w);
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
                key.uncount();
                key.armed = None;
                key.recheck_at = None;
                key.queue.clear();
                key.idle_since = Some(Instant::now());
            } else if key.armed.is_none() && key.notified == 0 {
                s.notify_next(key_id, &mut wake);
            }
        }
        wake_all(wake);
    }

    /// The reactor thread: looks at what changed, wakes those waiters, and sleeps on the armed words.
    fn run(&self) {
        let mut waitv = !forced_fallback();
        loop {
            let mut wake = Vec::new();
            let mut words = Vec::new();
            let next = {
                let mut s = self.lock();
                s.look(&mut wake);
                let next = s.fire_timers(Instant::now(), &mut wake);
                words.push(Watched {
                    addr: self.changed.as_ptr() as usize,
                    expected: self.changed.load(Acquire),
                    private: true,
                });
                let mut interrupts = BTreeSet::new();
                let mut interrupted = BTreeSet::new();
                for (&id, k) in &s.keys {
                    if let Some(v) = k.armed {
                        words.push(Watched { addr: k.seq().as_ptr() as usize, expected: v, private: false });
                    }
                    if k.waiters == 0 {
                        continue;
                    }
                    // An interrupted handle's waiters are woken (they return `Interrupted`), and its word, which
                    // stays set, is not slept on.
                    if k.interrupt.is_interrupted() {
                        interrupted.insert(id);
                    } else if interrupts.insert(k.interrupt.word().as_ptr() as usize) {
                        words.push(Watched { addr: k.interrupt.word().as_ptr() as usize, expected: 0, private: true });
                    }
                }
                if !interrupted.is_empty() {
                    wake.extend(
                        s.waiters.values().filter(|w| interrupted.contains(&w.key)).filter_map(|w| w.waker.clone()),
                    );
                }
                next
            };
            wake_all(std::mem::take(&mut wake));

            // The kernel watches the first MAX_WAITV words; any others are looked at every FALLBACK_SLICE.
            // Without futex_waitv the reactor sleeps on its own word alone, in slices while it watches others.
            let watched = if waitv { words.len().min(MAX_WAITV) } else { 1 };
            let mut timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            if watched < words.len() {
                timeout = Some(timeout.map_or(FALLBACK_SLICE, |t| t.min(FALLBACK_SLICE)));
            }
            // The views in `words` stay mapped: only this thread unmaps them, in `fire_timers`.
            if waitv {
                if os::futex_waitv_addrs(&words[..watched], timeout) == Waited::Unsupported {
                    waitv = false;
                }
            } else {
                os::futex_wait_private(&self.changed, words[0].expected, timeout);
            }
        }
    }
}
