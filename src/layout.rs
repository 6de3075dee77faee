//! The segment layout: the one module that knows where anything lives in shared memory.
//!
//! # Layout version 5
//!
//! ```text
//! offset 0            Header (HEADER_SIZE bytes, #[repr(C)], cache-line padded groups)
//!   identity          magic "SHMDEQUE", layout version, ready state, creator pid (for people to read),
//!                     capacity, slot size, segment length          (written once, before READY)
//!   lock              lock word (owner registration | generation | waiters flag) and the holder
//!                     thread's token                                (at offset 128, a cache line start)
//!   ring              ring word (head | len << 32), pushed and popped counters: right after the
//!                     lock, in its cache line; then the closed flag, lock recoveries, high-water mark
//!                                                                   (written under the lock)
//!   not_empty         futex sequence word, sleepers
//!                     (own cache line)
//!   not_full          the same for room (own cache line)
//!   registrations     MAX_REGISTRATIONS entries: generation, kind (free, handle, producer),
//!                     sleepers for a message, sleepers for room
//! offset HEADER_SIZE  capacity slots of slot_size bytes each:
//!                     [u32 little-endian payload length][payload ... up to slot_size - 4 bytes]
//! ```
//!
//! Who is alive is never read from the header: registration `i` is alive while some open file description
//! of the segment file holds a write lock on byte `i` of it (`F_OFD_SETLK`), and a creator is at work
//! while one holds byte [`CREATOR_LOCK_BYTE`]. The kernel releases those locks when a process dies, in
//! whatever PID namespace it runs (see `registry.rs`).
//!
//! The segment is exactly `HEADER_SIZE + capacity * slot_size` bytes; openers check this against the file
//! size. Nothing in it is a pointer: every process maps it at its own address.
//!
//! Head and length share one 64-bit word so that a single store publishes a push or a pop. A process killed
//! at any instant therefore leaves each message either wholly in the deque or wholly out of it: payload bytes
//! are written first, and only then the ring word that makes them part of the deque.

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crossbeam_utils::CachePadded;

/// "SHMDEQUE" read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMDEQUE");
/// Bumped whenever anything in this file changes meaning or place.
pub(crate) const LAYOUT_VERSION: u32 = 5;
/// Value of [`Header::state`] once the creator has finished initializing. "REDY" in ASCII.
pub(crate) const STATE_READY: u32 = 0x5944_4552;
/// How many handles and producers can be registered at once, across all processes.
pub(crate) const MAX_REGISTRATIONS: usize = 128;
/// The byte of the segment file a creator (or a process taking over an abandoned segment) holds locked
/// until the segment is READY; registration `i` uses byte `i`.
pub(crate) const CREATOR_LOCK_BYTE: u64 = MAX_REGISTRATIONS as u64;
/// Set in [`LockWord::word`] while some locker sleeps on it (or may).
pub(crate) const LOCK_WAITERS: u32 = 1 << 31;
/// Bits of [`LockWord::word`] that hold the owner's registration index + 1 (0: free).
pub(crate) const LOCK_SLOT_BITS: u32 = 8;
/// A free registration, in [`Registration::kind`].
pub(crate) const KIND_FREE: u32 = 0;
/// A registration of an open handle.
pub(crate) const KIND_HANDLE: u32 = 1;
/// A registration of a producer.
pub(crate) const KIND_PRODUCER: u32 = 2;
/// Bytes at the start of each slot that hold the payload length.
pub(crate) const SLOT_LEN_BYTES: usize = 4;
/// The smallest slot accepted: a length and at least four bytes of payload.
pub(crate) const MIN_SLOT_SIZE: u32 = 8;
/// The largest capacity accepted; keeps `head + len` within a u32 without wrapping.
pub(crate) const MAX_CAPACITY: u32 = 1 << 30;

/// The deque's lock: a futex word of our own (see `lock.rs`), owned by a registration rather than a
/// thread id, so that its owner means the same in every PID namespace.
#[repr(C)]
pub(crate) struct LockWord {
    /// 0 when free; otherwise the owner's registration index + 1 in the low [`LOCK_SLOT_BITS`] bits, that
    /// registration's generation above them, and [`LOCK_WAITERS`].
    pub word: AtomicU32,
    pub _reserved: AtomicU32,
    /// A token of the thread that holds the lock, unique in its process (see `lock.rs`), so that a thread
    /// locking twice gets an error instead of waiting for itself; 0 when free.
    pub holder: AtomicU64,
}

/// One registration: a handle, or a producer of one. Alive while its byte of the segment file is locked.
#[repr(C)]
pub(crate) struct Registration {
    /// Bumped whenever the entry is taken or freed, so that the lock word of a dead owner never names a
    /// later owner of the same entry.
    pub generation: AtomicU32,
    /// [`KIND_FREE`], [`KIND_HANDLE`] or [`KIND_PRODUCER`].
    pub kind: AtomicU32,
    /// Threads of this registration counted in `not_empty.sleepers` and `not_full.sleepers`.
    pub asleep: [AtomicU32; 2],
}

/// The words guarded by the lock. They are atomics so that `len()` and the spinning waiters may read them
/// without the lock; every write happens with the lock held.
///
/// The first three are written by every push and pop and sit right after the lock word, in its cache
/// line: a process that takes the lock gets the ring word with the same
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
    /// Nonzero when a registered producer died without leaving, and no producer has registered since.
    pub producers_died: AtomicU32,
    /// Hints, 1 + the CPU number (0: unknown) of the thread that last pushed (`[0]`) and last popped (`[1]`):
    /// a waiter whose partner ran on its own CPU yields at once instead of spinning. Only ever a hint: a
    /// wrong value makes a wait yield sooner or later, nothing else.
    pub last_cpu: [AtomicU32; 2],
    pub recoveries: AtomicU64,
    pub high_water: AtomicU64,
}

/// One condition (not empty, not full) that processes wait for.
///
/// A waiter first spins watching the ring word, unregistered. Before it sleeps on `seq` it counts itself in
/// `sleepers`, and in its registration's `asleep`, while holding the lock; a process that makes the
/// condition true reads `sleepers` under the lock and only if it counts someone bumps `seq` and makes the
/// `FUTEX_WAKE` system call, so push and pop cost no extra atomic operation and no system call while nobody
/// sleeps. A process killed in its sleep leaves its count in both places; whoever finds its registration
/// dead takes the count back (see `registry.rs`), so `sleepers` is exact once anyone looks.
#[repr(C)]
pub(crate) struct WaitWord {
    /// The futex word: changes whenever the condition may have become true.
    pub seq: AtomicU32,
    pub _reserved: AtomicU32,
    /// Threads counted asleep in `FUTEX_WAIT` (or about to be).
    pub sleepers: AtomicU32,
    pub _reserved2: AtomicU32,
}

/// The segment header. See the module documentation for the picture.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// 0 while being created, [`STATE_READY`] once usable. SYNC POINT: published with Release last.
    pub state: AtomicU32,
    /// The process that initialized the segment, as its own PID namespace numbers it: for people to read.
    pub creator_pid: AtomicU32,
    pub _reserved: AtomicU32,
    pub capacity: AtomicU64,
    pub slot_size: AtomicU64,
    pub segment_len: AtomicU64,
    /// Puts `lock` at the start of a cache-line pair.
    pub _pad: [u8; LOCK_OFFSET - 48],
    /// Not padded: `ring` follows it in the same cache line.
    pub lock: LockWord,
    pub ring: RingWords,
    pub not_empty: CachePadded<WaitWord>,
    pub not_full: CachePadded<WaitWord>,
    pub registrations: [Registration; MAX_REGISTRATIONS],
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
    assert!(offset_of!(Header, ring) == LOCK_OFFSET + size_of::<LockWord>());
    // The words every push and pop writes share the lock's cache line.
    assert!(offset_of!(Header, ring) + offset_of!(RingWords, popped) + 8 <= LOCK_OFFSET + 64);
    assert!(offset_of!(Header, not_empty) % 64 == 0);
    assert!(offset_of!(Header, not_full) % 64 == 0);
    assert!(offset_of!(WaitWord, sleepers) == 8);
    assert!(offset_of!(Header, lock) >= 48);
    assert!(size_of::<LockWord>() == 16);
    assert!(size_of::<RingWords>() == 56);
    assert!(size_of::<Registration>() == 16);
    assert!(MAX_REGISTRATIONS < 1 << LOCK_SLOT_BITS);
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

/// The lock word that names registration `index` in `generation` as the owner (without [`LOCK_WAITERS`]).
#[inline]
pub(crate) const fn lock_owner(index: u32, generation: u32) -> u32 {
    (index + 1) | (generation << LOCK_SLOT_BITS) & !LOCK_WAITERS
}

/// The owner a lock word names: `None` when free, else (registration index, generation bits). Unchecked:
/// the index may be out of range in a garbage header.
#[inline]
pub(crate) const fn unpack_lock(word: u32) -> Option<(u32, u32)> {
    let slot = word & ((1 << LOCK_SLOT_BITS) - 1);
    if slot == 0 { None } else { Some((slot - 1, (word & !LOCK_WAITERS) >> LOCK_SLOT_BITS)) }
}

/// The generation bits a lock word keeps of a registration's generation.
#[inline]
pub(crate) const fn lock_generation(generation: u32) -> u32 {
    (generation << LOCK_SLOT_BITS & !LOCK_WAITERS) >> LOCK_SLOT_BITS
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
    fn lock_word_round_trips() {
        for (i, g) in [(0, 0), (5, 7), (MAX_REGISTRATIONS as u32 - 1, u32::MAX), (3, 1 << 23)] {
            let w = lock_owner(i, g);
            assert_eq!(w & LOCK_WAITERS, 0);
            assert_eq!(unpack_lock(w), Some((i, lock_generation(g))));
            assert_eq!(unpack_lock(w | LOCK_WAITERS), Some((i, lock_generation(g))));
        }
        assert_eq!(unpack_lock(0), None);
        assert_eq!(unpack_lock(LOCK_WAITERS), None);
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
        // SAFETY: every field of Header is an atomic integer or an array or padded struct of them, for which
        // all-zero bytes are a valid value.
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
