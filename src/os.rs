//! Everything Linux-specific, in one place so that a port has one file to rewrite: futex waits, open file
//! description locks (the liveness of registrations), and POSIX shared-memory files beyond what
//! `shared_memory` offers (reserving pages, mode, unlinking, listing).
//!
//! Why futexes and not pthread condition variables: a condition variable in shared memory keeps waiter
//! bookkeeping inside itself, and glibc's (2.36, measured) is left inconsistent when blocked waiters are
//! SIGKILLed, so a live waiter misses its wake-up and the signaller can hang. A futex keeps no state in user
//! memory beyond the word itself, so a dead waiter leaves nothing behind.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Directory where Linux exposes POSIX shared-memory objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Longest segment name accepted (NAME_MAX less the leading slash).
pub(crate) const MAX_NAME_LEN: usize = 254;

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

/// One entry of a `futex_waitv` call (the kernel's `struct futex_waitv`).
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

impl FutexWaitv {
    /// Watches the 32-bit word at `addr` while it holds `expected`; `private`: a word of this process only.
    fn new(addr: usize, expected: u32, private: bool) -> FutexWaitv {
        const FUTEX2_SIZE_U32: u32 = 2;
        const FUTEX2_PRIVATE: u32 = 128;
        let flags = FUTEX2_SIZE_U32 | if private { FUTEX2_PRIVATE } else { 0 };
        FutexWaitv { val: u64::from(expected), uaddr: addr as u64, flags, reserved: 0 }
    }
}

/// One `futex_waitv` system call over `waiters` (at most 128), until `timeout` from now on
/// `CLOCK_MONOTONIC`: the index of the word woken, or the error (`ENOSYS` before Linux 5.16).
///
/// The caller keeps every watched address mapped for the call; the kernel reads the words itself, with
/// fault handling (an address that is not mapped gives `EFAULT`).
fn futex_waitv(waiters: &[FutexWaitv], timeout: Option<Duration>) -> io::Result<usize> {
    let abs = timeout.map(monotonic_after);
    let abs_ptr = abs.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `waiters` holds `waiters.len()` futex_waitv entries and lives across the call; `abs_ptr` is
    // null or points at a timespec that outlives it. The kernel validates the count and each address.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as u32,
            0u32,
            abs_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if rc >= 0 { Ok(rc as usize) } else { Err(io::Error::last_os_error()) }
}

/// Sleeps as [`futex_wait`] does on the shared `word`, and also until the process-private word `local`
/// stops holding `local_expected` or is woken: one `futex_waitv` call (Linux 5.16 and later). Where the
/// kernel has no `futex_waitv`, it sleeps on `word` alone for at most `fallback_slice` at a time, so that
/// the caller, which looks at `local` after every return, notices a change within that slice.
pub(crate) fn futex_wait_either(
    word: &AtomicU32,
    expected: u32,
    local: &AtomicU32,
    local_expected: u32,
    timeout: Option<Duration>,
    fallback_slice: Duration,
) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    static NO_WAITV: AtomicBool = AtomicBool::new(false);
    if !NO_WAITV.load(Relaxed) {
        let waiters = [
            FutexWaitv::new(word.as_ptr() as usize, expected, false),
            FutexWaitv::new(local.as_ptr() as usize, local_expected, true),
        ];
        let rc = futex_waitv(&waiters, timeout);
        if rc.as_ref().err().and_then(io::Error::raw_os_error) != Some(libc::ENOSYS) {
            return;
        }
        NO_WAITV.store(true, Relaxed);
    }
    futex_wait(word, expected, Some(timeout.map_or(fallback_slice, |t| t.min(fallback_slice))));
}

/// Wakes every thread of this process sleeping on the process-private `word` in [`futex_wait_either`].
/// Async-signal-safe: one system call.
pub(crate) fn futex_wake_private(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE_PRIVATE only uses the address of `word` as a key; it stays valid for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        )
    };
}

/// `now + d` on CLOCK_MONOTONIC as a normalized timespec, saturating far in the future.
fn monotonic_after(d: Duration) -> libc::timespec {
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

/// Size, permission bits, owner and identity of a segment file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
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
    Ok(FileInfo { size: st.st_size as u64, mode: st.st_mode & 0o7777, uid: st.st_uid, ino: st.st_ino })
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

/// 1 + the CPU this thread runs on now, or 0 if unknown: a hint for the wait policy (with glibc's restartable
/// sequences, a load of a per-thread word: about 2 ns).
#[inline]
pub(crate) fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).map_or(0, |c| c.wrapping_add(1))
}

/// The effective user id of this process: the user that segments it opens must belong to, unless trusted.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// This process's id, as its own pid namespace sees it: recorded in a header for people to read, never
/// used to decide anything (another namespace sees other ids).
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// An open file description lock on one byte of a file: a `flock` for `F_OFD_SETLK` / `F_OFD_GETLK`.
fn ofd_flock(kind: libc::c_short, byte: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    // l_pid must be 0 for the OFD commands.
    fl
}

/// Tries to take a write lock on byte `byte` of the file through `fd`'s open file description, without
/// waiting. `Ok(true)`: taken (or already held through this very description); `Ok(false)`: held through
/// another description. The kernel releases it when the description's last descriptor closes, whoever
/// closes it and however the process ends, and judges it the same in every PID namespace.
pub(crate) fn ofd_try_lock(fd: &OwnedFd, byte: u64) -> io::Result<bool> {
    let fl = ofd_flock(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: plain fcntl on a valid descriptor with a valid, live `flock`.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        e => Err(e),
    }
}

/// Releases this description's lock on byte `byte` (nothing happens if it holds none).
pub(crate) fn ofd_unlock(fd: &OwnedFd, byte: u64) {
    let fl = ofd_flock(libc::F_UNLCK as libc::c_short, byte);
    // SAFETY: as in `ofd_try_lock`. Unlocking cannot fail on a valid descriptor and range.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
}

/// Whether another open file description holds a lock on byte `byte`: that registration's process is
/// alive. A lock held through `fd`'s own description does not count (the caller knows its own). When the
/// kernel cannot tell, the answer is "held", which only delays a recovery.
pub(crate) fn ofd_held_elsewhere(fd: &OwnedFd, byte: u64) -> bool {
    let mut fl = ofd_flock(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: as in `ofd_try_lock`; F_OFD_GETLK writes the conflicting lock, if any, into `fl`.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } != 0 {
        return true;
    }
    fl.l_type != libc::F_UNLCK as libc::c_short
}

/// One word that [`futex_waitv_addrs`] sleeps on: its address in this process, the value to sleep while it
/// holds, and whether it is process-private (otherwise shared, a word of a segment).
#[cfg(feature = "async")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watched {
    pub addr: usize,
    pub expected: u32,
    pub private: bool,
}

/// How a [`futex_waitv_addrs`] call ended.
#[cfg(feature = "async")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// Word `i` was woken.
    Woken(usize),
    /// Some word no longer held its value when the kernel looked (it does not say which), or a signal
    /// interrupted the sleep: look at every word.
    LookAgain,
    TimedOut,
    /// Some address is not mapped any more.
    Fault,
    /// The kernel has no `futex_waitv` (before Linux 5.16), or refuses this set.
    Unsupported,
}

/// Sleeps until one of `words` (at most 128) is woken or stops holding its value, or until `timeout`.
/// The words are given by address, so that one call can watch words of many segments; the caller keeps
/// every address mapped for the call.
#[cfg(feature = "async")]
pub(crate) fn futex_waitv_addrs(words: &[Watched], timeout: Option<Duration>) -> Waited {
    const FUTEX_WAITV_MAX: usize = 128;
    if words.is_empty() || words.len() > FUTEX_WAITV_MAX {
        return Waited::Unsupported;
    }
    let waiters: Vec<FutexWaitv> = words.iter().map(|w| FutexWaitv::new(w.addr, w.expected, w.private)).collect();
    match futex_waitv(&waiters, timeout) {
        Ok(i) => Waited::Woken(i),
        Err(e) => match e.raw_os_error() {
            Some(libc::ETIMEDOUT) => Waited::TimedOut,
            Some(libc::EFAULT) => Waited::Fault,
            Some(libc::ENOSYS) | Some(libc::EINVAL) => Waited::Unsupported,
            _ => Waited::LookAgain,
        },
    }
}

/// Sleeps while the process-private `word` holds `expected`, for at most `timeout`: the async reactor's
/// sleep where the kernel has no `futex_waitv`.
#[cfg(feature = "async")]
pub(crate) fn futex_wait_private(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: as in `futex_wait`: the aligned u32 behind `word` is valid for the call, `ts_ptr` is null or
    // points at a timespec that outlives it. Every error means "look again".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
            0usize,
            0u32,
        );
    }
}

/// Maps the first `len` bytes of the segment file behind `fd` read-write and shared, at an address of the
/// kernel's choosing: a view of the header of its own for the async reactor, independent of any handle's
/// mapping (and of when that handle is dropped). Unmap it with [`unmap`].
#[cfg(feature = "async")]
pub(crate) fn map_prefix(fd: &OwnedFd, len: usize) -> io::Result<std::ptr::NonNull<u8>> {
    // SAFETY: a new shared mapping of a valid descriptor at an address the kernel picks: it overlaps nothing
    // this process uses. The result is checked before use.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    std::ptr::NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))
}

/// Unmaps what [`map_prefix`] mapped.
///
/// # Safety
/// `ptr` and `len` are those of one [`map_prefix`] mapping, not unmapped before, and nothing refers into it
/// any more.
#[cfg(feature = "async")]
pub(crate) unsafe fn unmap(ptr: std::ptr::NonNull<u8>, len: usize) {
    // SAFETY: per this function's contract, the range is one live mapping that nothing uses any more.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}
