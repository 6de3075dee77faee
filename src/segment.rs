//! Creating, opening and validating a segment: the readiness handshake between a creator and its openers.
//!
//! The mapping itself comes from the `shared_memory` crate. This module covers what it leaves open:
//!
//! * `create` there is `shm_open(O_CREAT|O_EXCL)` followed by `ftruncate`, so an opener can find a
//!   zero-length file in between: openers retry that until their open timeout.
//! * The creator publishes [`STATE_READY`] with a Release store only after the header is fully initialized
//!   (the SYNC POINT below); openers read it with Acquire and never look at anything else before it.
//! * A creator holds an open file description lock on byte [`CREATOR_LOCK_BYTE`] of the file from before it
//!   writes the magic number until after READY. The kernel releases it if the creator dies, in whatever PID
//!   namespace: an opener that finds the magic number, no READY and that byte free reports the segment as
//!   abandoned, and an open-or-create takes it over by taking the same lock (the kernel picks one winner,
//!   and a winner that fails gives it back on every path, or by dying). Only a creator killed in the few
//!   system calls between creating the file and writing the magic number leaves a segment that openers
//!   cannot tell from one still being created (`NotReady` until someone removes it).
//! * A size that the file system or the address space cannot take fails the create with `NoSpace`.
//! * The file's pages are reserved with `posix_fallocate` so that a full /dev/shm fails the create instead
//!   of raising SIGBUS on a later push, and the mode is set with `fchmod` (0600 unless the builder says otherwise).
//! * Everything in a header written by someone else is validated before use.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use shared_memory::{Shmem, ShmemConf, ShmemError};

use crate::err::Error;
use crate::layout::{self, CREATOR_LOCK_BYTE, HEADER_SIZE, Header, KIND_FREE, LAYOUT_VERSION, MAGIC, STATE_READY};
use crate::os;
use crate::{Config, CreateMode};

/// A mapped, validated segment. The geometry fields are copies taken once at open, never re-read from
/// shared memory, so a hostile writer cannot change the bounds this process uses.
pub(crate) struct Segment {
    name: String,
    // Keeps the mapping alive; `header` and `slots` point into it.
    _map: Shmem,
    /// This handle's own open file description of the segment file: its registrations are locks through it.
    fd: OwnedFd,
    header: *const Header,
    slots: *mut u8,
    pub(crate) capacity: u32,
    pub(crate) slot_size: u32,
    pub(crate) len: usize,
}

// SAFETY: the mapping is plain shared memory that any thread may access; all header fields are atomics or
// arrays of atomics, and slot bytes are only touched while holding the deque's lock.
unsafe impl Send for Segment {}
// SAFETY: as for Send; `&Segment` only hands out `&Header` (atomics) and slot pointers used under the lock.
unsafe impl Sync for Segment {}

/// Checks a deque name: the same rules for every entry point, so every binary refuses the same names.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name == "." || name == ".." {
        "'.' and '..' are not segment names"
    } else if name.len() > os::MAX_NAME_LEN {
        "it is longer than 254 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { name: name.to_owned(), reason })
}

/// Maps an OS error about segment `name` to the typed error every entry point reports for it.
pub(crate) fn os_err(name: &str, op: &'static str, source: std::io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { name: name.to_owned() },
        Some(libc::ENOENT) => Error::NotFound { name: name.to_owned() },
        Some(libc::ENOSPC) => Error::NoSpace { name: name.to_owned(), bytes: 0 },
        _ => Error::Os { name: name.to_owned(), op, source },
    }
}

fn shmem_err(name: &str, op: &'static str, e: ShmemError) -> Error {
    match e {
        ShmemError::MappingIdExists => Error::AlreadyExists { name: name.to_owned() },
        ShmemError::MapCreateFailed(c) | ShmemError::MapOpenFailed(c) | ShmemError::UnknownOsError(c) => {
            os_err(name, op, std::io::Error::from_raw_os_error(c as i32))
        }
        other => Error::Os { name: name.to_owned(), op, source: std::io::Error::other(other.to_string()) },
    }
}

/// Test-only (the `test-hooks` feature): a process whose `SHMDEQUE_TEST_PAUSE` names `point` writes the file
/// named by `SHMDEQUE_TEST_PAUSE_FILE` and sleeps there until it is killed, so that a test can SIGKILL a creator
/// (or a process taking over an abandoned segment) at an exact step of initialization.
#[cfg(feature = "test-hooks")]
fn pause_point(point: &str) {
    if std::env::var("SHMDEQUE_TEST_PAUSE").is_ok_and(|p| p == point) {
        if let Ok(file) = std::env::var("SHMDEQUE_TEST_PAUSE_FILE") {
            let _ = std::fs::write(file, point);
        }
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
fn pause_point(_point: &str) {}

/// What an opener found while polling a segment that is not ready yet.
enum Pending {
    Ready,
    Creating,
    /// The creator died; the pid it recorded, for the message.
    Abandoned(u32),
}

/// The creator's lock on [`CREATOR_LOCK_BYTE`], held through a segment's description; released when
/// dropped, on every path out of a creation or a takeover (and by the kernel if the process dies).
struct CreatorLock<'a>(&'a OwnedFd);

impl<'a> CreatorLock<'a> {
    /// Takes the lock if nobody holds it.
    fn try_take(fd: &'a OwnedFd, name: &str) -> Result<Option<CreatorLock<'a>>, Error> {
        match os::ofd_try_lock(fd, CREATOR_LOCK_BYTE) {
            Ok(true) => Ok(Some(CreatorLock(fd))),
            Ok(false) => Ok(None),
            Err(e) => Err(os_err(name, "locking the segment for its creation", e)),
        }
    }
}

impl Drop for CreatorLock<'_> {
    fn drop(&mut self) {
        os::ofd_unlock(self.0, CREATOR_LOCK_BYTE);
    }
}

impl Segment {
    /// Creates, opens, or opens-or-creates the segment as the configuration says.
    pub(crate) fn attach(cfg: &Config) -> Result<Segment, Error> {
        check_name(&cfg.name)?;
        // A timeout too long for the clock waits as long as it takes.
        let deadline = Instant::now().checked_add(cfg.open_timeout);
        loop {
            match cfg.create_mode {
                CreateMode::CreateExclusive => return Segment::create(cfg),
                CreateMode::Open => return Segment::open(cfg, deadline),
                CreateMode::OpenOrCreate => match Segment::create(cfg) {
                    Err(Error::AlreadyExists { .. }) => match Segment::open(cfg, deadline) {
                        // Removed between our create and open: try creating again, within the timeout.
                        Err(Error::NotFound { .. }) if deadline.is_none_or(|d| Instant::now() < d) => continue,
                        r => return r,
                    },
                    r => return r,
                },
            }
        }
    }

    fn create(cfg: &Config) -> Result<Segment, Error> {
        let name = cfg.name.as_str();
        let (capacity, slot_size) = (cfg.capacity, cfg.slot_size);
        let len = layout::check_geometry(capacity as u64, slot_size as u64).map_err(Error::InvalidConfig)?;
        let no_space = || Error::NoSpace { name: name.to_owned(), bytes: len as u64 };
        let mut map = ShmemConf::new().os_id(format!("/{name}")).size(len).create().map_err(|e| match e {
            // A size that the file system or the address space cannot take (the crate has already removed
            // the file): the same answer as running out of pages below.
            ShmemError::MapCreateFailed(c) | ShmemError::UnknownOsError(c)
                if [libc::ENOMEM, libc::EFBIG, libc::ENOSPC].contains(&(c as i32)) =>
            {
                no_space()
            }
            e => shmem_err(name, "creating the segment", e),
        })?;
        // The name outlives this handle: only `remove` or the last detach of a drained, closed deque unlinks it.
        map.set_owner(false);
        let fail = |e: Error| {
            let _ = os::shm_unlink(name);
            e
        };
        let fd = os::shm_open(name, true).map_err(|e| fail(os_err(name, "reopening the new segment", e)))?;
        // Before anything else: a segment with the magic number and without this lock is abandoned.
        if !os::ofd_try_lock(&fd, CREATOR_LOCK_BYTE).map_err(|e| fail(os_err(name, "locking the new segment", e)))? {
            return Err(fail(Error::Os {
                name: name.to_owned(),
                op: "locking the new segment",
                source: std::io::Error::other("another process holds the lock of a segment just created"),
            }));
        }
        let reserve = |fd: &OwnedFd, n: usize| {
            os::reserve(fd, n).map_err(|e| {
                fail(match e.raw_os_error() {
                    Some(libc::ENOSPC) | Some(libc::EFBIG) => no_space(),
                    _ => os_err(name, "reserving the segment's memory", e),
                })
            })
        };
        // Say what this file is before the long part. Reserving a large segment takes a while (every page is
        // allocated and zeroed); a creator killed meanwhile must have left the magic number, or openers could
        // never tell the segment from one still being created and nobody could take it over, and `probe` (and
        // so `shmdeque list`) would not recognize it as a deque at all. The header's own pages are reserved
        // first, so that these stores cannot fault on a full /dev/shm.
        reserve(&fd, HEADER_SIZE)?;
        let seg = Segment::from_parts(name, map, fd, capacity, slot_size, len);
        let creating = CreatorLock(&seg.fd);
        let h = seg.header();
        h.creator_pid.store(os::current_pid(), Relaxed);
        h.version.store(LAYOUT_VERSION, Relaxed);
        h.magic.store(MAGIC, Relaxed);
        pause_point("identified");
        reserve(&seg.fd, len)?;
        pause_point("reserved");
        os::set_mode(&seg.fd, cfg.mode).map_err(|e| fail(os_err(name, "setting the segment's mode", e)))?;
        seg.initialize().map_err(fail)?;
        drop(creating);
        Ok(seg)
    }

    /// Writes a fresh header. The caller is the only process using this header: it created the segment, or
    /// won the takeover of an abandoned one.
    fn initialize(&self) -> Result<(), Error> {
        let h = self.header();
        h.capacity.store(self.capacity as u64, Relaxed);
        h.slot_size.store(self.slot_size as u64, Relaxed);
        h.segment_len.store(self.len as u64, Relaxed);
        h.lock.word.store(0, Relaxed);
        h.lock.holder.store(0, Relaxed);
        pause_point("initializing");
        let r = &h.ring;
        r.ring.store(layout::pack_ring(0, 0), Relaxed);
        r.closed.store(0, Relaxed);
        for w in [&r.pushed, &r.popped, &r.recoveries, &r.high_water] {
            w.store(0, Relaxed);
        }
        for w in [&h.not_empty, &h.not_full] {
            w.seq.store(0, Relaxed);
            w.sleepers.store(0, Relaxed);
        }
        for e in &h.registrations {
            e.kind.store(KIND_FREE, Relaxed);
            e.asleep.iter().for_each(|a| a.store(0, Relaxed));
        }
        h.magic.store(MAGIC, Relaxed);
        h.version.store(LAYOUT_VERSION, Relaxed);
        pause_point("before-ready");
        // SYNC POINT: everything above becomes visible to an opener that reads READY with Acquire.
        h.state.store(STATE_READY, Release);
        Ok(())
    }

    fn open(cfg: &Config, deadline: Option<Instant>) -> Result<Segment, Error> {
        let name = cfg.name.as_str();
        let start = Instant::now();
        let not_ready = || Error::NotReady { name: name.to_owned(), waited: start.elapsed() };
        // Map the file, waiting out the window between the creator's shm_open and ftruncate.
        let (map, fd, info) = loop {
            let fd = os::shm_open(name, true).map_err(|e| os_err(name, "opening the segment", e))?;
            let info = os::file_info(&fd).map_err(|e| os_err(name, "reading the segment's size", e))?;
            // Whoever owns the file can rewrite what this process reads and writes in it: refuse a segment
            // of another user unless trusted. Judged on this very descriptor; `/dev/shm` is sticky, so no
            // other user can replace a file once it was found to be ours.
            let user = os::effective_uid();
            if info.uid != user && !cfg.trusted_owners.contains(&info.uid) {
                return Err(Error::UntrustedOwner { name: name.to_owned(), owner: info.uid, user });
            }
            if info.size == 0 {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(not_ready());
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if (info.size as usize) < HEADER_SIZE {
                let mut magic = [0u8; 8];
                let ours = os::read_prefix(&fd, &mut magic).is_ok_and(|n| n == 8) && magic == MAGIC.to_le_bytes();
                return Err(if ours {
                    Error::Corrupted { name: name.to_owned(), what: format!("it is truncated to {} bytes", info.size) }
                } else {
                    Error::NotADeque { name: name.to_owned() }
                });
            }
            let map = ShmemConf::new()
                .os_id(format!("/{name}"))
                .open()
                .map_err(|e| shmem_err(name, "mapping the segment", e))?;
            break (map, fd, info);
        };
        // The mapping's own length, not the earlier fstat, bounds everything this process touches.
        let len = map.len();
        if len < HEADER_SIZE || len as u64 != info.size {
            return Err(Error::Corrupted {
                name: name.to_owned(),
                what: "its size changed while it was opened".into(),
            });
        }
        let mut seg = Segment::from_parts(name, map, fd, 0, 0, len);
        loop {
            match seg.pending()? {
                Pending::Ready => break,
                Pending::Creating if deadline.is_none_or(|d| Instant::now() < d) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Pending::Creating => return Err(not_ready()),
                Pending::Abandoned(pid) if cfg.create_mode == CreateMode::OpenOrCreate => {
                    seg.take_over(cfg, pid)?;
                }
                Pending::Abandoned(pid) => return Err(Error::Abandoned { name: name.to_owned(), pid }),
            }
        }
        seg.validate_identity()?;
        if (cfg.explicit_capacity && seg.capacity != cfg.capacity)
            || (cfg.explicit_slot_size && seg.slot_size != cfg.slot_size)
        {
            return Err(Error::GeometryMismatch {
                name: name.to_owned(),
                capacity: seg.capacity,
                slot_size: seg.slot_size,
                requested_capacity: cfg.capacity,
                requested_slot_size: cfg.slot_size,
            });
        }
        Ok(seg)
    }

    fn pending(&self) -> Result<Pending, Error> {
        let h = self.header();
        if h.state.load(Acquire) == STATE_READY {
            return Ok(Pending::Ready);
        }
        let magic = h.magic.load(Relaxed);
        if magic != 0 && magic != MAGIC {
            return Err(Error::NotADeque { name: self.name.clone() });
        }
        if magic == 0 || os::ofd_held_elsewhere(&self.fd, CREATOR_LOCK_BYTE) {
            return Ok(Pending::Creating);
        }
        // The creator's lock is free: it died, or it finished just now (READY comes before the unlock).
        if h.state.load(Acquire) == STATE_READY {
            return Ok(Pending::Ready);
        }
        Ok(Pending::Abandoned(h.creator_pid.load(Relaxed)))
    }

    /// Re-initializes a segment whose creator died before READY. Exactly one opener gets the creator's lock;
    /// the others keep polling and see READY once the winner is done, or the segment abandoned again if the
    /// winner fails: it gives the lock back on every path out of here (or the kernel does, if it dies).
    fn take_over(&mut self, cfg: &Config, dead_pid: u32) -> Result<(), Error> {
        let fd = self.fd.try_clone().map_err(|e| os_err(&self.name, "taking over the segment", e))?;
        let Some(_claim) = CreatorLock::try_take(&fd, &self.name)? else { return Ok(()) };
        let h = self.header();
        // Another opener may have finished a takeover between our look and our lock.
        if h.state.load(Acquire) == STATE_READY {
            return Ok(());
        }
        let wanted = layout::check_geometry(cfg.capacity as u64, cfg.slot_size as u64).map_err(Error::InvalidConfig)?;
        if wanted != self.len {
            return Err(Error::Abandoned { name: self.name.clone(), pid: dead_pid });
        }
        h.creator_pid.store(os::current_pid(), Relaxed);
        pause_point("claimed");
        os::reserve(&self.fd, self.len).map_err(|e| os_err(&self.name, "reserving the segment's memory", e))?;
        os::set_mode(&self.fd, cfg.mode).map_err(|e| os_err(&self.name, "setting the segment's mode", e))?;
        self.capacity = cfg.capacity;
        self.slot_size = cfg.slot_size;
        self.initialize()
    }

    /// Checks a READY header against this build and the file, and takes the geometry from it.
    fn validate_identity(&mut self) -> Result<(), Error> {
        let h = self.header();
        let name = || self.name.clone();
        if h.magic.load(Relaxed) != MAGIC {
            return Err(Error::NotADeque { name: name() });
        }
        let version = h.version.load(Relaxed);
        if version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch { name: name(), found: version, expected: LAYOUT_VERSION });
        }
        let (cap, slot) = (h.capacity.load(Relaxed), h.slot_size.load(Relaxed));
        let expected = layout::check_geometry(cap, slot).map_err(|what| Error::Corrupted { name: name(), what })?;
        let recorded = h.segment_len.load(Relaxed);
        if expected != self.len || recorded != self.len as u64 {
            return Err(Error::Corrupted {
                name: name(),
                what: format!(
                    "header says {cap} slots of {slot} bytes ({expected} bytes, recorded {recorded}) \
                     but the segment is {} bytes",
                    self.len
                ),
            });
        }
        self.capacity = cap as u32;
        self.slot_size = slot as u32;
        Ok(())
    }

    fn from_parts(name: &str, map: Shmem, fd: OwnedFd, capacity: u32, slot_size: u32, len: usize) -> Segment {
        let base = map.as_ptr();
        // SAFETY: callers guarantee len >= HEADER_SIZE == map.len() of the mapping, so the slot area starts
        // inside (or exactly at the end of) the mapping.
        let slots = unsafe { base.add(HEADER_SIZE) };
        Segment { name: name.to_owned(), _map: map, fd, header: base.cast(), slots, capacity, slot_size, len }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// This handle's own description of the segment file (see `registry.rs`).
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page-aligned (so aligned for Header), lives as
        // long as `self`, and every Header field is an atomic (or an array or padded struct of them), valid for any bit pattern and
        // safe to share between threads and processes.
        unsafe { &*self.header }
    }

    /// The address of the slot area in this process: tells this mapping apart from others.
    #[inline]
    pub(crate) fn slots_addr(&self) -> usize {
        self.slots as usize
    }

    /// Asks the CPU to fetch the first cache line of `count` slots from slot `first` on, wrapping around the
    /// ring. A hint only: it reads and writes nothing, needs no lock, and any `first` and `count` are
    /// acceptable (`first` is reduced modulo the capacity, `count` to at most the capacity).
    #[inline]
    pub(crate) fn prefetch(&self, first: u64, count: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let cap = self.capacity.max(1);
            let mut i = if first < u64::from(cap) { first as u32 } else { (first % u64::from(cap)) as u32 };
            for _ in 0..count.min(cap) {
                // In bounds: i < capacity, and the slot area holds capacity * slot_size bytes.
                let p = self.slots.wrapping_add(i as usize * self.slot_size as usize).cast::<i8>();
                // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; a prefetch is a hint that
                // neither reads nor writes memory as far as the program can tell, and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
                i = if i + 1 == cap { 0 } else { i + 1 };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (first, count);
    }

    /// Asks the CPU to fetch the cache lines of one slot (those of its first 256 bytes: all of a small
    /// message; the hardware prefetcher follows a longer copy by itself), for writing if `write`. A hint with
    /// the same guarantees as [`prefetch`](Self::prefetch); `index` is reduced modulo the capacity.
    ///
    /// A slot is not aligned to a cache line (a 64-byte message takes 68 bytes), so a small message usually
    /// spans two lines, and fetching only the first would leave the second to a miss of its own.
    #[inline]
    pub(crate) fn prefetch_slot(&self, index: u64, write: bool) {
        #[cfg(target_arch = "x86_64")]
        {
            let cap = u64::from(self.capacity.max(1));
            let i = if index < cap { index } else { index % cap };
            let start = self.slots.wrapping_add(i as usize * self.slot_size as usize);
            // The line holding the slot's first byte; the slot area starts on a line, so it is in the area.
            let skew = start as usize & 63;
            let line = start.wrapping_sub(skew);
            let span = skew + (self.slot_size as usize).min(256);
            let mut offset = 0;
            while offset < span {
                let p = line.wrapping_add(offset);
                offset += 64;
                if write {
                    // SAFETY: PREFETCHW is a hint that neither reads nor writes memory as far as the program can
                    // tell and never faults; a CPU without it executes the encoding as a NOP.
                    unsafe {
                        std::arch::asm!("prefetchw [{}]", in(reg) p, options(nostack, preserves_flags, readonly))
                    };
                } else {
                    // SAFETY: as in `prefetch`: SSE is part of x86_64, and a prefetch never faults.
                    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast()) };
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (index, write);
    }

    /// The slot area, read-only.
    ///
    /// # Safety
    /// The caller must hold the segment's lock for as long as the slice lives, and no mutable slice of the
    /// slot area may exist meanwhile.
    pub(crate) unsafe fn slots(&self) -> &[u8] {
        let n = self.len - HEADER_SIZE;
        // SAFETY: `slots .. slots + n` is the mapped slot area (len was validated against the file and the
        // geometry); the absence of writers is the caller's obligation per this function's contract.
        unsafe { std::slice::from_raw_parts(self.slots, n) }
    }

    /// The slot area as bytes.
    ///
    /// # Safety
    /// The caller must hold the segment's lock for as long as the slice lives, and must not create another
    /// slice of the slot area meanwhile: the lock is what keeps other processes from writing these bytes.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slots_mut(&self) -> &mut [u8] {
        let n = self.len - HEADER_SIZE;
        debug_assert_eq!(n, self.capacity as usize * self.slot_size as usize);
        // SAFETY: `slots` .. `slots + n` is the mapped slot area (len was validated against the file and the
        // geometry); exclusivity is the caller's obligation per this function's contract.
        unsafe { std::slice::from_raw_parts_mut(self.slots, n) }
    }

    /// Slot `index` (its length word and payload area) as bytes.
    ///
    /// # Safety
    /// `index < capacity`; the caller must hold the segment's lock for as long as the slice lives, and must
    /// not create another slice of the slot area meanwhile.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn slot_mut(&self, index: u32) -> &mut [u8] {
        debug_assert!(index < self.capacity);
        let size = self.slot_size as usize;
        // SAFETY: the slot area holds capacity * slot_size mapped bytes (validated against the file and the
        // geometry), so slot `index < capacity` lies inside it; exclusivity is the caller's obligation per
        // this function's contract.
        unsafe { std::slice::from_raw_parts_mut(self.slots.add(index as usize * size), size) }
    }

    /// Size, mode and owner of the segment file.
    pub(crate) fn file_info(&self) -> Result<os::FileInfo, Error> {
        os::file_info(&self.fd).map_err(|e| os_err(&self.name, "reading the segment's attributes", e))
    }

    /// Unlinks the name if it still refers to this segment (not to a newer one created after a removal).
    pub(crate) fn unlink_if_same(&self) {
        let same = |named: OwnedFd| os::file_info(&named).ok().map(|i| i.ino);
        if let (Ok(ours), Ok(named)) = (os::file_info(&self.fd), os::shm_open(&self.name, false))
            && same(named) == Some(ours.ino)
        {
            let _ = os::shm_unlink(&self.name);
        }
    }
}
