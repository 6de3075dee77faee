//! The segment layout: the one module that knows where anything lives in shared memory.
//!
//! # Layout version 4
//!
//! ```text
//! offset 0            Header (HEADER_SIZE bytes, #[repr(C)], cache-line padded groups)
//!   identity          magic "SHMDEQUE", layout version, ready state, creator pid,
//!                     capacity, slot size, segment length          (written once, before READY)
//!   lock              process-shared robust pthread mutex           (at offset 128, a cache line start)
//!   ring              ring word (head | len << 32), pushed and popped counters: right after the
//!                     mutex, in its cache line; then the closed flag, attached count, producer
//!                     count, lock recoveries, high-water mark       (written under the lock)
//!   not_empty         futex sequence word, idle wake-ups, sleepers (u64: count | generation << 32)
//!                     (own cache line)
//!   not_full          the same for room (own cache line)
//!   producers         MAX_PRODUCERS words: pid | start-time tag << 32, 0 = free
//! offset HEADER_SIZE  capacity slots of slot_size bytes each:
//!                     [u32 little-endian payload length][payload ... up to slot_size - 4 bytes]
//! ```
//!
//! The segment is exactly `HEADER_SIZE + capacity * slot_size` bytes; openers check this against the file
//! size. Nothing in it is a pointer: every process maps it at its own address.
//!
//! Head and length share one 64-bit word so that a single store publishes a push or a pop. A process killed
//! at any instant therefore leaves each message either wholly in the deque or wholly out of it: payload bytes
//! are written first, and only then the ring word that makes them part of the deque.

use std::cell::UnsafeCell;
use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crossbeam_utils::CachePadded;

/// "SHMDEQUE" read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMDEQUE");
/// Bumped whenever anything in this file changes meaning or place.
pub(crate) const LAYOUT_VERSION: u32 = 4;
/// Value of [`Header::state`] once the creator has finished initializing. "REDY" in ASCII.
pub(crate) const STATE_READY: u32 = 0x5944_4552;
/// How many producers can register at once.
pub(crate) const MAX_PRODUCERS: usize = 64;
/// Bytes at the start of each slot that hold the payload length.
pub(crate) const SLOT_LEN_BYTES: usize = 4;
/// The smallest slot accepted: a length and at least four bytes of payload.
pub(crate) const MIN_SLOT_SIZE: u32 = 8;
/// The largest capacity accepted; keeps `head + len` within a u32 without wrapping.
pub(crate) const MAX_CAPACITY: u32 = 1 << 30;

/// A pthread mutex that lives in shared memory. Only ever touched through the pthread functions in `os`.
#[repr(C)]
pub(crate) struct LockCell(pub(crate) UnsafeCell<libc::pthread_mutex_t>);

/// The words guarded by the lock. They are atomics so that `len()` and the spinning waiters may read them
/// without the lock; every write happens with the lock held.
///
/// The first three are written by every push and pop and sit right after the mutex, in the mutex's cache
/// line (x86_64 glibc's mutex is 40 bytes): a process that takes the lock gets the ring word with the same
/// cache-line transfer instead of a second one, and a waiter spinning on the ring word sees a change with
/// one. The others are rarely written and start the next line.
#[repr(C)]
pub(crate) struct RingWords {
    /// `head | len << 32`; see [`pack_ring`].
    pub ring: AtomicU64,
    pub pushed: AtomicU64,
    pub popped: AtomicU64,
    /// Nonzero once the deque is closed.
    pub closed: AtomicU32,
    /// Handles currently open on the segment, across all processes (a killed process leaves its count).
    pub attached: AtomicU32,
    /// Live registered producers.
    pub producers: AtomicU32,
    pub _reserved: AtomicU32,
    pub recoveries: AtomicU64,
    pub high_water: AtomicU64,
}

/// One condition (not empty, not full) that processes wait for.
///
/// A waiter first spins watching the ring word, unregistered. Before it sleeps on `seq` it registers in
/// `sleepers` while holding the lock; a process that makes the condition true reads `sleepers` under the
/// lock and only if it counts someone bumps `seq` and makes the `FUTEX_WAKE` system call, so push and pop
/// cost no extra atomic operation and no system call while nobody sleeps. (Layout 1 also made signallers
/// bump `seq` for spinning waiters, counted in a `waiters` word; a mix of versions would lose wake-ups,
/// hence version 2.)
///
/// Version 4: `sleepers` is a count and a generation in one 64-bit word, and `idle_wakes` (where version 3
/// kept its unused `waiters`) counts wake-up calls in a row, by any process, that woke fewer sleepers than
/// were counted. A process killed in its sleep stays counted, and every later change would make such a
/// call; when `idle_wakes` reaches a threshold, the signaller forgets the count: under the lock it bumps
/// `seq`, wakes everyone, and sets the count to zero in a new generation. A live sleeper that had
/// registered in the old generation is woken (or finds `seq` changed before it sleeps) and looks again,
/// and when it unregisters it sees the new generation and leaves the count alone (taking one off would
/// remove somebody else's registration). 32 bits of generation do not wrap in any realistic lifetime, even
/// for a sleeper stopped (SIGSTOP) across many forgettings.
#[repr(C)]
pub(crate) struct WaitWord {
    /// The futex word: changes whenever the condition may have become true.
    pub seq: AtomicU32,
    /// Wake-up calls in a row that woke fewer sleepers than were counted.
    pub idle_wakes: AtomicU32,
    /// Processes registered to sleep in `FUTEX_WAIT`, with the generation: see [`pack_sleepers`].
    pub sleepers: AtomicU64,
}

/// Packs a generation and a sleeper count into [`WaitWord::sleepers`].
#[inline]
pub(crate) const fn pack_sleepers(generation: u32, count: u32) -> u64 {
    (generation as u64) << 32 | count as u64
}

/// Splits [`WaitWord::sleepers`] into (generation, count).
#[inline]
pub(crate) const fn unpack_sleepers(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// The segment header. See the module documentation for the picture.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// 0 while being created, [`STATE_READY`] once usable. SYNC POINT: published with Release last.
    pub state: AtomicU32,
    /// The process initializing the segment; an opener that finds it dead before READY may take over.
    pub creator_pid: AtomicU32,
    pub _reserved: AtomicU32,
    pub capacity: AtomicU64,
    pub slot_size: AtomicU64,
    pub segment_len: AtomicU64,
    /// Puts `lock` at the start of a cache-line pair.
    pub _pad: [u8; LOCK_OFFSET - 48],
    /// Not padded: `ring` follows it in the same cache line.
    pub lock: LockCell,
    pub ring: RingWords,
    pub not_empty: CachePadded<WaitWord>,
    pub not_full: CachePadded<WaitWord>,
    pub producers: [AtomicU64; MAX_PRODUCERS],
}

/// Where the lock begins: the first cache-line pair after the identity fields.
const LOCK_OFFSET: usize = 128;

/// Where the first slot begins; the header rounded up to a cache line pair.
pub(crate) const HEADER_SIZE: usize = size_of::<Header>().next_multiple_of(128);

// Pin the layout: a change here must come with a new LAYOUT_VERSION.
const _: () = {
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, version) == 8);
    assert!(offset_of!(Header, state) == 12);
    assert!(offset_of!(Header, creator_pid) == 16);
    assert!(offset_of!(Header, capacity) == 24);
    assert!(offset_of!(Header, slot_size) == 32);
    assert!(offset_of!(Header, segment_len) == 40);
    assert!(offset_of!(Header, lock) == LOCK_OFFSET);
    assert!(offset_of!(Header, ring) == LOCK_OFFSET + size_of::<LockCell>());
    // The words every push and pop writes share the mutex's cache line (x86_64 glibc: a 40-byte mutex).
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    assert!(offset_of!(Header, ring) + offset_of!(RingWords, popped) + 8 <= LOCK_OFFSET + 64);
    assert!(offset_of!(Header, not_empty) % 64 == 0);
    assert!(offset_of!(Header, not_full) % 64 == 0);
    assert!(offset_of!(WaitWord, idle_wakes) == 4 && offset_of!(WaitWord, sleepers) == 8);
    assert!(offset_of!(Header, lock) >= 48);
    assert!(size_of::<RingWords>() == 56);
    assert!(align_of::<Header>() <= 4096);
    assert!(HEADER_SIZE.is_multiple_of(128));
    assert!(HEADER_SIZE <= 4096);
};

/// Packs head and length into the ring word.
#[inline]
pub(crate) const fn pack_ring(head: u32, len: u32) -> u64 {
    head as u64 | (len as u64) << 32
}

/// Splits the ring word into (head, length). The values are unchecked: callers validate them.
#[inline]
pub(crate) const fn unpack_ring(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}

/// Total segment length for a geometry, or `None` if it does not fit in `usize`.
pub(crate) const fn segment_len(capacity: u32, slot_size: u32) -> Option<usize> {
    match (capacity as usize).checked_mul(slot_size as usize) {
        Some(slots) => slots.checked_add(HEADER_SIZE),
        None => None,
    }
}

/// The largest payload one slot carries.
pub(crate) const fn max_payload(slot_size: u32) -> usize {
    slot_size as usize - SLOT_LEN_BYTES
}

/// Checks a geometry read from a header or given by a user. Returns the segment length it implies.
pub(crate) fn check_geometry(capacity: u64, slot_size: u64) -> Result<usize, String> {
    if capacity == 0 || capacity > MAX_CAPACITY as u64 {
        return Err(format!("capacity {capacity} is outside 1..={MAX_CAPACITY}"));
    }
    if slot_size < MIN_SLOT_SIZE as u64 || slot_size > u32::MAX as u64 {
        return Err(format!("slot size {slot_size} is outside {MIN_SLOT_SIZE}..={}", u32::MAX));
    }
    segment_len(capacity as u32, slot_size as u32)
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| format!("capacity {capacity} x slot size {slot_size} does not fit in memory"))
}

/// The producer-table word for a process: its pid, and a tag from its start time so that a recycled pid is
/// not mistaken for the process that registered.
#[inline]
pub(crate) const fn producer_word(pid: u32, start_tag: u32) -> u64 {
    pid as u64 | (start_tag as u64) << 32
}

/// Splits a producer-table word into (pid, start tag).
#[inline]
pub(crate) const fn unpack_producer(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}

/// Header fields read from a copy of the first [`HEADER_SIZE`] bytes, for tools that inspect a segment
/// without mapping or locking it. Values are unchecked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub version: u32,
    pub state: u32,
    pub creator_pid: u32,
    pub capacity: u64,
    pub slot_size: u64,
    pub segment_len: u64,
    pub ring: u64,
    pub closed: u32,
}

/// Reads a [`Snapshot`] from header bytes; `None` if there are fewer than [`HEADER_SIZE`].
pub(crate) fn snapshot(bytes: &[u8]) -> Option<Snapshot> {
    if bytes.len() < HEADER_SIZE {
        return None;
    }
    let u64_at = |off: usize| u64::from_ne_bytes(bytes[off..off + 8].try_into().unwrap_or_default());
    let u32_at = |off: usize| u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap_or_default());
    let ring = offset_of!(Header, ring);
    Some(Snapshot {
        version: u32_at(offset_of!(Header, version)),
        state: u32_at(offset_of!(Header, state)),
        creator_pid: u32_at(offset_of!(Header, creator_pid)),
        capacity: u64_at(offset_of!(Header, capacity)),
        slot_size: u64_at(offset_of!(Header, slot_size)),
        segment_len: u64_at(offset_of!(Header, segment_len)),
        ring: u64_at(ring + offset_of!(RingWords, ring)),
        closed: u32_at(ring + offset_of!(RingWords, closed)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeper_word_round_trips() {
        for (g, c) in [(0, 0), (1, 5), (u32::MAX, u32::MAX), (7, 0)] {
            assert_eq!(unpack_sleepers(pack_sleepers(g, c)), (g, c));
        }
    }

    #[test]
    fn ring_word_round_trips() {
        for (h, l) in [(0, 0), (5, 7), (u32::MAX, 1), (3, u32::MAX)] {
            assert_eq!(unpack_ring(pack_ring(h, l)), (h, l));
        }
    }

    /// `snapshot` reads fields by offset from raw bytes; check it against the real struct, including the
    /// fields inside `CachePadded`, whose inner offset `offset_of!` cannot see.
    #[test]
    fn snapshot_reads_what_the_struct_holds() {
        use std::sync::atomic::Ordering::Relaxed;
        // SAFETY: every field of Header is an atomic integer or a pthread mutex cell, for which all-zero bytes
        // are a valid value.
        let h: Box<Header> = Box::new(unsafe { std::mem::zeroed() });
        h.version.store(7, Relaxed);
        h.state.store(STATE_READY, Relaxed);
        h.creator_pid.store(4242, Relaxed);
        h.capacity.store(3, Relaxed);
        h.slot_size.store(64, Relaxed);
        h.segment_len.store(999, Relaxed);
        h.ring.ring.store(pack_ring(2, 1), Relaxed);
        h.ring.closed.store(1, Relaxed);
        let mut bytes = vec![0u8; HEADER_SIZE];
        // SAFETY: `h` is a live Header of size_of::<Header>() <= HEADER_SIZE bytes, read as plain bytes.
        let raw = unsafe { std::slice::from_raw_parts((&*h as *const Header).cast::<u8>(), size_of::<Header>()) };
        bytes[..raw.len()].copy_from_slice(raw);
        let s = snapshot(&bytes).unwrap();
        assert_eq!((s.version, s.state, s.creator_pid), (7, STATE_READY, 4242));
        assert_eq!((s.capacity, s.slot_size, s.segment_len), (3, 64, 999));
        assert_eq!((unpack_ring(s.ring), s.closed), ((2, 1), 1));
        assert!(snapshot(&bytes[..HEADER_SIZE - 1]).is_none());
    }

    #[test]
    fn geometry_limits() {
        assert!(check_geometry(0, 64).is_err());
        assert!(check_geometry(1, 7).is_err());
        assert!(check_geometry(MAX_CAPACITY as u64 + 1, 64).is_err());
        assert_eq!(check_geometry(2, 64), Ok(HEADER_SIZE + 128));
    }
}
