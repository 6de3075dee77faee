//! Everything Linux-specific, in one place so that a port has one file to rewrite: the process-shared robust
//! mutex, futex waits, POSIX shared-memory files beyond what `shared_memory` offers (reserving pages, mode,
//! unlinking, listing), and process liveness.
//!
//! Why futexes and not pthread condition variables: a condition variable in shared memory keeps waiter
//! bookkeeping inside itself, and glibc's (2.36, measured) is left inconsistent when blocked waiters are
//! SIGKILLed, so a live waiter misses its wake-up and the signaller can hang. A futex keeps no state in user
//! memory beyond the word itself, so a dead waiter leaves nothing behind.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Directory where Linux exposes POSIX shared-memory objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Longest segment name accepted (NAME_MAX less the leading slash).
pub(crate) const MAX_NAME_LEN: usize = 254;

/// How a lock attempt ended when it did get the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Normal acquisition.
    Clean,
    /// The previous holder died holding the lock; the caller now holds it and must make it consistent.
    OwnerDied,
}

/// Why a lock attempt did not get the lock.
#[derive(Debug)]
pub(crate) enum LockFail {
    /// Held by someone else (try-lock only).
    Busy,
    /// The deadline passed.
    TimedOut,
    /// This thread holds it already.
    Deadlock,
    /// The mutex was left unrecoverable (a holder died and nobody marked it consistent).
    NotRecoverable,
    Other(io::Error),
}

unsafe extern "C" {
    // glibc >= 2.30; libc does not bind it. Same contract as pthread_mutex_timedlock, but the absolute
    // deadline is read on the given clock, so a wall-clock step cannot stretch or cut a timeout.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Initializes a process-shared, robust, error-checking mutex in place.
///
/// # Safety
/// `m` must point to writable memory of a `pthread_mutex_t` that no other thread or process uses until this
/// returns (the creator runs it before publishing the segment).
pub(crate) unsafe fn mutex_init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) };
    // SAFETY: attr is initialized by pthread_mutexattr_init before any other use and destroyed once; `m` is
    // exclusively ours per this function's contract.
    unsafe {
        check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        let a = attr.as_mut_ptr();
        let r = check(libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED))
            .and_then(|_| check(libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST)))
            .and_then(|_| check(libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK)))
            .and_then(|_| check(libc::pthread_mutex_init(m, a)));
        libc::pthread_mutexattr_destroy(a);
        r
    }
}

#[inline]
fn lock_result(rc: libc::c_int) -> Result<Locked, LockFail> {
    match rc {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => Ok(Locked::OwnerDied),
        libc::EBUSY => Err(LockFail::Busy),
        libc::ETIMEDOUT => Err(LockFail::TimedOut),
        libc::EDEADLK => Err(LockFail::Deadlock),
        libc::ENOTRECOVERABLE => Err(LockFail::NotRecoverable),
        rc => Err(LockFail::Other(io::Error::from_raw_os_error(rc))),
    }
}

/// Tries to take the mutex without blocking.
///
/// # Safety
/// `m` must point to a mutex initialized by [`mutex_init`] in memory that stays mapped for the call.
#[inline]
pub(crate) unsafe fn mutex_trylock(m: *mut libc::pthread_mutex_t) -> Result<Locked, LockFail> {
    // SAFETY: per this function's contract, `m` is an initialized process-shared mutex.
    lock_result(unsafe { libc::pthread_mutex_trylock(m) })
}

/// Whether the mutex's lock word shows an owner: a plain read, so that a spinning locker can wait for the
/// lock to look free without taking the cache line away from the holder. A hint only; the lock itself is
/// taken with [`mutex_trylock`]. Reads glibc's lock word (the first `int` of `pthread_mutex_t`: the owner's
/// thread id and flag bits) and looks at the thread id only: when an owner dies the kernel leaves just the
/// owner-died flag there, and the next trylock gets `EOWNERDEAD` at once instead of after a spin. Elsewhere
/// it always answers "free", which only costs a trylock.
///
/// # Safety
/// As for [`mutex_trylock`].
#[inline]
pub(crate) unsafe fn mutex_looks_held(m: *mut libc::pthread_mutex_t) -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: `m` points to an initialized, mapped, 4-aligned pthread_mutex_t whose first field is glibc's
        // `int __lock`, which glibc itself only changes with atomic instructions; this is an atomic read of it.
        let word = unsafe { AtomicI32::from_ptr(m.cast::<i32>()) }.load(Ordering::Relaxed);
        word as u32 & libc::FUTEX_TID_MASK != 0
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = m;
        false
    }
}

/// Takes the mutex, blocking until `deadline` (or forever with `None`).
///
/// # Safety
/// As for [`mutex_trylock`].
pub(crate) unsafe fn mutex_lock(m: *mut libc::pthread_mutex_t, deadline: Option<Instant>) -> Result<Locked, LockFail> {
    let Some(deadline) = deadline else {
        // SAFETY: per this function's contract, `m` is an initialized process-shared mutex.
        return lock_result(unsafe { libc::pthread_mutex_lock(m) });
    };
    let abs = monotonic_deadline(deadline.saturating_duration_since(Instant::now()));
    // SAFETY: as above; `abs` is a normalized timespec that lives across the call.
    lock_result(unsafe { pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &abs) })
}

/// Marks a mutex whose owner died as consistent again.
///
/// # Safety
/// The calling thread must hold `m`, obtained with [`Locked::OwnerDied`].
pub(crate) unsafe fn mutex_consistent(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: per this function's contract the caller holds the mutex in the owner-died state.
    match unsafe { libc::pthread_mutex_consistent(m) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Releases the mutex.
///
/// # Safety
/// The calling thread must hold `m`.
#[inline]
pub(crate) unsafe fn mutex_unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: per this function's contract the caller holds the mutex. An error-checking mutex reports
    // misuse with EPERM instead of corrupting its state; there is nothing useful to do with it here.
    let _ = unsafe { libc::pthread_mutex_unlock(m) };
}

/// `now + d` on CLOCK_MONOTONIC as a normalized timespec (tv_nsec < 1e9), saturating far in the future.
fn monotonic_deadline(d: Duration) -> libc::timespec {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let mut sec = now.tv_sec.saturating_add(d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t);
    let mut nsec = now.tv_nsec + d.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec { tv_sec: sec, tv_nsec: nsec }
}

/// Sleeps while `word` still holds `expected`, for at most `timeout` (measured by the kernel on
/// CLOCK_MONOTONIC). Returns on a wake-up, a value change, a signal or the timeout; the caller re-checks.
/// Shared (not private) futex: the word lives in memory mapped by several processes.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which is valid for the call; `ts_ptr` is null or
    // points to a timespec that outlives the call. Errors (EAGAIN, EINTR, ETIMEDOUT) all mean "re-check".
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr, 0usize, 0u32);
    }
}

/// Wakes up to `n` processes sleeping on `word`; returns how many it woke (0 if the call failed).
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) -> u32 {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key; it stays valid for the call.
    let woken = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n, 0usize, 0usize, 0u32) };
    woken.clamp(0, i64::from(u32::MAX)) as u32
}

/// The `shm_open` name for a deque name.
pub(crate) fn shm_path(name: &str) -> CString {
    // Names are validated to contain no NUL before they get here.
    CString::new(format!("/{name}")).unwrap_or_default()
}

/// Opens an existing segment file, read-write or read-only.
pub(crate) fn shm_open(name: &str, write: bool) -> io::Result<OwnedFd> {
    let path = shm_path(name);
    let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
    // SAFETY: `path` is a valid NUL-terminated string for the call.
    let fd = unsafe { libc::shm_open(path.as_ptr(), flags | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Allocates every page of the file now, so that running out of /dev/shm space is an error here rather than
/// a SIGBUS on some later write.
pub(crate) fn reserve(fd: &OwnedFd, len: usize) -> io::Result<()> {
    // SAFETY: plain syscall on a valid open descriptor.
    match unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len as libc::off_t) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Sets the permission bits of the segment file (the umask does not apply to fchmod).
pub(crate) fn set_mode(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid open descriptor.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Size, permission bits and identity of a segment file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    pub size: u64,
    pub mode: u32,
    pub ino: u64,
}

pub(crate) fn file_info(fd: &OwnedFd) -> io::Result<FileInfo> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable and fstat fully initializes it on success, which is checked before reading.
    let st = unsafe {
        if libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        st.assume_init()
    };
    Ok(FileInfo { size: st.st_size as u64, mode: st.st_mode & 0o7777, ino: st.st_ino })
}

/// Reads up to `buf.len()` bytes from the start of the file without mapping it.
pub(crate) fn read_prefix(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Removes the segment's name; processes that have it mapped keep their mapping.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name);
    // SAFETY: `path` is a valid NUL-terminated string for the call.
    if unsafe { libc::shm_unlink(path.as_ptr()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Names of every shared-memory object visible to this process.
pub(crate) fn list_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        // Deque names are UTF-8, so a name that is not cannot be one of ours.
        if entry.file_type().is_ok_and(|t| t.is_file())
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// State letter and start time (fields 3 and 22 of /proc/PID/stat), if the process exists.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything: split after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was just taken; start time is field 22, 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// A 32-bit tag of a process's start time, or 0 if it cannot be read. Together with the pid it tells a live
/// process from a later one that got the same pid.
pub(crate) fn start_tag(pid: u32) -> u32 {
    proc_stat(pid).map_or(0, |(_, start)| start as u32 | 1)
}

/// Whether process `pid` is alive (not a zombie) and, when `tag` is nonzero, is the same process that had
/// that start tag. Assumes the processes share one pid namespace; when /proc cannot tell, a process that
/// exists counts as alive.
pub(crate) fn process_alive(pid: u32, tag: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission check.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match proc_stat(pid) {
        Some((state, _)) if state == 'Z' || state == 'X' => false,
        Some((_, start)) => tag == 0 || start as u32 | 1 == tag,
        None => true,
    }
}
