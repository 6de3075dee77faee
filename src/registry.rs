//! Registrations: who has the deque open, who produces, who sleeps, and who holds the lock, in a form that
//! means the same in every PID namespace.
//!
//! The header keeps a table of [`Registration`] entries. A handle takes one when it opens the deque, and a
//! producer one more; the lock word names its owner by entry, and a sleeper counts itself in its handle's
//! entry. What makes an entry *alive* is not in the header at all: entry `i` belongs to whoever holds an
//! open file description lock (`F_OFD_SETLK`) on byte `i` of the segment file, taken through the
//! handle's own description of the file. The kernel releases such a lock when the description's last
//! descriptor closes, so a process killed at any instant leaves its entries free to be taken, and `F_OFD_GETLK`
//! tells any process, in any PID namespace, that they are. No thread id, pid or `/proc` is involved.
//!
//! Taking an entry is a `F_OFD_SETLK` that succeeds: the kernel decides between two processes that want
//! the same entry. The taker first undoes what a dead previous holder left (its sleeper counts), then bumps
//! the entry's generation, so that a lock word naming the dead holder never names the new one.
//!
//! Two rules follow from the kernel's notion of a lock owner, the open file description:
//! * A child made by `fork()` shares its parent's descriptions, and so its registrations: they stay alive
//!   while either process lives, and the two act as one registration. Open a new handle in the child (the
//!   descriptions are `O_CLOEXEC`, so `exec` leaves nothing behind).
//! * Through its own description a handle cannot see its own locks (`F_OFD_GETLK` never reports a
//!   conflict with the caller's description), so each handle remembers which entries are its own.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard};

use crate::err::Error;
use crate::layout::{self, KIND_FREE, KIND_PRODUCER, MAX_REGISTRATIONS, Registration, WaitWord};
use crate::os;
use crate::segment::Segment;

/// An entry this handle holds: its index and the generation it took it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registered {
    pub index: u32,
    pub generation: u32,
}

/// The entries this handle holds, process-local: see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Own(Mutex<Vec<u32>>);

impl Own {
    fn lock(&self) -> MutexGuard<'_, Vec<u32>> {
        // A panic while this is held leaves a valid Vec: go on with it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contains(&self, index: u32) -> bool {
        self.lock().contains(&index)
    }
}

impl Segment {
    fn registration(&self, index: u32) -> Option<&Registration> {
        self.header().registrations.get(index as usize)
    }

    /// Takes a free entry (or one whose holder died) for `kind`, through this handle's description.
    ///
    /// # Errors
    /// `Ok(None)` when every entry is held by a live process; [`Error::Os`] if the kernel refuses the lock.
    pub(crate) fn register(&self, own: &Own, kind: u32) -> Result<Option<Registered>, Error> {
        let mut mine = own.lock();
        for index in 0..MAX_REGISTRATIONS as u32 {
            // Our own entries would lock again through our own description: skip them.
            if mine.contains(&index) {
                continue;
            }
            if !self.try_take(index)? {
                continue;
            }
            let entry = &self.header().registrations[index as usize];
            self.free_dead(entry);
            let generation = entry.generation.load(Relaxed).wrapping_add(1);
            entry.generation.store(generation, Relaxed);
            entry.kind.store(kind, Relaxed);
            mine.push(index);
            return Ok(Some(Registered { index, generation }));
        }
        Ok(None)
    }

    /// Gives an entry of this handle back: marks it free in a new generation, then releases its lock.
    pub(crate) fn unregister(&self, own: &Own, r: Registered) {
        let mut mine = own.lock();
        let Some(pos) = mine.iter().position(|&i| i == r.index) else { return };
        mine.swap_remove(pos);
        if let Some(entry) = self.registration(r.index) {
            self.take_back_sleepers(entry);
            entry.kind.store(KIND_FREE, Relaxed);
            entry.generation.store(r.generation.wrapping_add(1), Relaxed);
        }
        os::ofd_unlock(self.fd(), u64::from(r.index));
    }

    /// Whether entry `index` is held by a live process, this one included.
    pub(crate) fn registration_alive(&self, own: &Own, index: u32) -> bool {
        own.contains(index) || os::ofd_held_elsewhere(self.fd(), u64::from(index))
    }

    /// Whether the lock word's owner `(index, generation bits)` is alive: its entry is held, and in the
    /// generation the lock word names (a later holder of the entry is not the owner).
    pub(crate) fn lock_owner_alive(&self, own: &Own, index: u32, generation: u32) -> bool {
        let Some(entry) = self.registration(index) else { return false };
        layout::lock_generation(entry.generation.load(Relaxed)) == generation && self.registration_alive(own, index)
    }

    /// How many live entries of `kind` there are, this handle's included (a system call per other entry
    /// of that kind: for stats, detaching and producers leaving, never for a push or a pop).
    pub(crate) fn count_alive(&self, own: &Own, kind: u32) -> u32 {
        let h = self.header();
        (0..MAX_REGISTRATIONS as u32)
            .filter(|&i| h.registrations[i as usize].kind.load(Relaxed) == kind && self.registration_alive(own, i))
            .count() as u32
    }

    /// Frees the entries of dead processes that still count sleepers (or, with `all`, every dead entry),
    /// taking their counts back, then sets each wait word's `sleepers` to the sum over the entries, which
    /// also repairs a count that garbage raised. The caller holds the deque's lock, so no sleeper registers
    /// meanwhile; one that unregisters meanwhile can only leave the sum too high, which costs a wake-up.
    ///
    /// Returns the live entries it saw of each kind (indexed by kind): with `all`, every live entry, found
    /// by the same lock attempts that free the dead, so that `stats` needs no second look at each.
    pub(crate) fn reap(&self, own: &Own, all: bool) -> [u32; 3] {
        let h = self.header();
        let mine = own.lock();
        let mut live = [0u32; 3];
        let mut count = |kind: u32| {
            if let Some(n) = live.get_mut(kind as usize) {
                *n += 1;
            }
        };
        for index in 0..MAX_REGISTRATIONS as u32 {
            let entry = &h.registrations[index as usize];
            let asleep = entry.asleep.iter().any(|a| a.load(Relaxed) != 0);
            let kind = entry.kind.load(Relaxed);
            if mine.contains(&index) {
                count(kind);
                continue;
            }
            if !(asleep || all && kind != KIND_FREE) {
                continue;
            }
            if self.try_take(index).unwrap_or(false) {
                self.free_dead(entry);
                entry.kind.store(KIND_FREE, Relaxed);
                entry.generation.store(entry.generation.load(Relaxed).wrapping_add(1), Relaxed);
                os::ofd_unlock(self.fd(), u64::from(index));
            } else {
                count(kind);
            }
        }
        for (k, word) in [&*h.not_empty, &*h.not_full].into_iter().enumerate() {
            let sum = h.registrations.iter().fold(0u32, |n, e| n.saturating_add(e.asleep[k].load(Relaxed)));
            word.sleepers.store(sum, Relaxed);
        }
        live
    }

    /// Undoes what the dead holder of an entry just taken left behind: its sleeper counts, and if it was a
    /// producer, the record that a producer died without leaving.
    fn free_dead(&self, entry: &Registration) {
        self.take_back_sleepers(entry);
        if entry.kind.load(Relaxed) == KIND_PRODUCER {
            self.header().ring.producers_died.store(1, Relaxed);
        }
    }

    /// Whether every registered producer has died without leaving (at least one did, none lives): the
    /// stream ended without a close. A system call per producer entry: only for a pop about to sleep.
    pub(crate) fn producers_gone(&self, own: &Own) -> bool {
        let h = self.header();
        let mut dead = h.ring.producers_died.load(Relaxed) != 0;
        for i in 0..MAX_REGISTRATIONS as u32 {
            if h.registrations[i as usize].kind.load(Relaxed) == KIND_PRODUCER {
                if self.registration_alive(own, i) {
                    return false;
                }
                dead = true;
            }
        }
        dead
    }

    /// One attempt at the lock of entry `index`'s byte.
    fn try_take(&self, index: u32) -> Result<bool, Error> {
        os::ofd_try_lock(self.fd(), u64::from(index)).map_err(|source| Error::Os {
            name: self.name().to_owned(),
            op: "locking a registration",
            source,
        })
    }

    /// Takes an entry's sleeper counts out of the wait words (the entry is this process's: just taken from a
    /// dead holder, or being given back).
    fn take_back_sleepers(&self, entry: &Registration) {
        let h = self.header();
        for (k, word) in [&*h.not_empty, &*h.not_full].into_iter().enumerate() {
            let n = entry.asleep[k].swap(0, Relaxed);
            if n != 0 {
                sub(&word.sleepers, n);
            }
        }
    }

    /// Counts a sleeper of entry `index` on wait word `k` (0: a message, 1: room); the caller holds the
    /// deque's lock. `false` if the count cannot take one more (only garbage gets there): the caller then
    /// must not sleep long, since nobody may wake it.
    pub(crate) fn add_sleeper(&self, index: u32, k: usize, word: &WaitWord) -> bool {
        let Some(entry) = self.registration(index) else { return false };
        if word.sleepers.load(Relaxed) == u32::MAX || entry.asleep[k].load(Relaxed) == u32::MAX {
            return false;
        }
        word.sleepers.fetch_add(1, Relaxed);
        entry.asleep[k].fetch_add(1, Relaxed);
        true
    }

    /// Takes back a sleeper counted by [`add_sleeper`](Self::add_sleeper), without the lock: the wait word
    /// first, so that a concurrent [`reap`](Self::reap) can only count it once too often, never once too few.
    pub(crate) fn remove_sleeper(&self, index: u32, k: usize, word: &WaitWord) {
        sub(&word.sleepers, 1);
        if let Some(entry) = self.registration(index) {
            sub(&entry.asleep[k], 1);
        }
    }
}

/// Takes back a sleeper that registration `index`, in `generation`, counted on wait word `k` (0: a message,
/// 1: room) of header `h`, without the lock: as [`Segment::remove_sleeper`], for a header mapped by the async
/// reactor. Nothing happens if the registration has been given back since (its generation moved on): its
/// counts went back with it.
#[cfg(feature = "async")]
pub(crate) fn remove_sleeper_in(h: &layout::Header, index: u32, generation: u32, k: usize) {
    let Some(entry) = h.registrations.get(index as usize) else { return };
    if entry.generation.load(Relaxed) != generation {
        return;
    }
    let word = if k == 0 { &*h.not_empty } else { &*h.not_full };
    sub(&word.sleepers, 1);
    if let Some(a) = entry.asleep.get(k) {
        sub(a, 1);
    }
}

/// Subtracts `n`, stopping at zero (the header is untrusted).
fn sub(counter: &std::sync::atomic::AtomicU32, n: u32) {
    let _ = counter.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(n)));
}
