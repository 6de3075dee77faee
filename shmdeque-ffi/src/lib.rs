//! The C ABI of shmdeque: every operation of [`RawDeque`] as an `extern "C"` function
//! that returns a [`shmdeque_status`], with a per-thread error message, SQLite style.
//!
//! The header `include/shmdeque.h` is generated from this file by cbindgen (`cbindgen.toml` beside
//! `Cargo.toml`; the test `header` fails when the checked-in copy is stale), and `include/shmdeque.hpp` wraps
//! it in C++17. The rules every function follows:
//!
//! * **Status codes.** Every function returns a [`shmdeque_status`]; on anything but `SHMDEQUE_OK` it records
//!   a one-line UTF-8 message for [`shmdeque_last_error`], the library's own text where the library failed.
//! * **Pointers are checked.** A NULL where a pointer is required gives `SHMDEQUE_INVALID`, never a crash.
//!   What cannot be checked (a pointer to too little memory, a freed handle) is the caller's contract, stated
//!   in each function's `# Safety` section.
//! * **Nothing unwinds across the boundary.** Each body runs under `catch_unwind`; a panic (a bug) becomes
//!   `SHMDEQUE_ERROR`. Callbacks from C must return normally (a C++ callback must not throw).
//! * **Timeouts** (`timeout_ms`): -1 waits as long as it takes, 0 does not wait (the library's `try_` forms),
//!   a positive value waits up to that many milliseconds; other negative values are `SHMDEQUE_INVALID`.
//! * **Nothing is lost.** A pop whose buffer is too small leaves the message in the deque and reports its
//!   size (`SHMDEQUE_BUFFER_TOO_SMALL`); a callback that returns nonzero cancels its push or pop
//!   (`SHMDEQUE_CANCELLED`). Both use the library's documented guarantee that a `fill` or `read` closure
//!   that panics pushes nothing, or leaves the message where it was, under the same lock acquisition.
//!
//! Rust programs should use the `shmdeque` crate itself; this crate's Rust items exist for the header and
//! for its own tests.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The exported names are C's: `shmdeque_status`, `SHMDEQUE_OK`, exactly as C programs spell them.
#![allow(non_camel_case_types)]

// `SHMDEQUE_BUFFER_TOO_SMALL` and `SHMDEQUE_CANCELLED` unwind through the library's closures (see `call.rs`):
// with panic = "abort" they would abort the caller instead.
#[cfg(panic = "abort")]
compile_error!("shmdeque-ffi needs panic = \"unwind\" (the default): it relies on catching unwinds");

mod call;

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::thread::{self, ThreadId};

use ::shmdeque::{Builder, CreateMode, PopError, Producer, RawDeque, RawLockGuard, WaitStrategy};

use call::{
    CANCELLED, Decline, EMPTY, Fail, POP_CLOSED, Wait, by_wait, bytes, bytes_mut, call, decline, declining, get, out,
    too_large, too_small,
};

/// What a call did. `SHMDEQUE_OK` is 0; every other value comes with a message from
/// `shmdeque_last_error()`. Values may be added at the end in later versions: keep a `default:` in switches.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmdeque_status {
    /// Success.
    SHMDEQUE_OK = 0,
    /// The deque is full (only when not waiting: `timeout_ms` 0, or a guard's try-push).
    SHMDEQUE_FULL,
    /// The deque is empty (only when not waiting).
    SHMDEQUE_EMPTY,
    /// The deque stayed full (push) or empty (pop) for the whole timeout.
    SHMDEQUE_TIMEOUT,
    /// Push: the deque is closed. Pop: the deque is closed and every message has been popped.
    SHMDEQUE_CLOSED,
    /// The message is larger than a slot's payload (`shmdeque_max_message_len`); nothing was pushed.
    SHMDEQUE_TOO_LARGE,
    /// No deque of that name (open without create, remove); for a guard, no message at that index.
    SHMDEQUE_NOT_FOUND,
    /// Creating exclusively, and the name is taken.
    SHMDEQUE_EXISTS,
    /// A bad argument: a NULL pointer, an invalid name, a bad `create` or `timeout_ms`, a capacity or slot
    /// size that does not match the existing deque, a guard used from another thread.
    SHMDEQUE_INVALID,
    /// The message does not fit the buffer. It was left in the deque; `*len` says how many bytes it needs.
    SHMDEQUE_BUFFER_TOO_SMALL,
    /// Any other failure: an OS error, a corrupted segment, permissions. See `shmdeque_last_error()`.
    SHMDEQUE_ERROR,
    /// A callback returned nonzero: its push or pop was cancelled and the deque is as it was.
    SHMDEQUE_CANCELLED,
    /// Pop: the deque is empty and every producer that registered (`shmdeque_register_producer`) died
    /// without leaving; the stream ended without a close. A producer that registers again resumes it.
    SHMDEQUE_PRODUCERS_GONE,
    /// The segment belongs to another user and was not opened; the message names the owner.
    SHMDEQUE_UNTRUSTED_OWNER,
    /// Remove: the file is not a deque but another program's data; it was not removed.
    SHMDEQUE_FOREIGN,
}

use shmdeque_status::*;

/// An open deque. Opaque: create it with `shmdeque_open`, release it with `shmdeque_close_handle`.
///
/// Threads: one handle may be used by any number of threads at once, for every function that takes it.
pub struct shmdeque {
    q: RawDeque,
}

/// The deque's lock, held: from `shmdeque_lock`, released by `shmdeque_unlock`. Opaque.
///
/// Threads: a guard belongs to the thread that locked it; every guard function called from another thread
/// returns `SHMDEQUE_INVALID` and leaves the guard as it was.
pub struct shmdeque_guard {
    // Declared before `deque`, so that it is dropped (and unlocks) while the deque it borrows is still alive.
    guard: UnsafeCell<RawLockGuard<'static>>,
    owner: ThreadId,
    deque: Arc<shmdeque>,
}

/// A registered producer: from `shmdeque_register_producer`, released by `shmdeque_producer_leave`. Opaque.
///
/// Threads: it may be left from any thread.
pub struct shmdeque_producer {
    // Declared before `_deque`, as in `shmdeque_guard`.
    producer: Option<Producer<'static>>,
    /// Keeps the deque that `producer` borrows alive.
    _deque: Arc<shmdeque>,
}

/// One message of a batch push: `len` bytes at `data` (`data` may be NULL when `len` is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmdeque_msg {
    /// The message's bytes.
    pub data: *const c_void,
    /// Its length in bytes.
    pub len: usize,
}

/// A deque's state and counters, from `shmdeque_get_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shmdeque_stats {
    /// Maximum number of messages.
    pub capacity: u32,
    /// Bytes per slot, the 4-byte length included.
    pub slot_size: u32,
    /// Messages in the deque now.
    pub len: u32,
    /// Registered producers whose process is alive.
    pub producers: u32,
    /// Open handles across all processes (a killed process leaves its handle counted).
    pub attached: u32,
    /// Blocked pops asleep waiting for a message.
    pub asleep_for_message: u32,
    /// Blocked pushes asleep waiting for room.
    pub asleep_for_room: u32,
    /// Permission bits of the segment.
    pub mode: u32,
    /// Messages ever pushed.
    pub pushed: u64,
    /// Messages ever removed (popped or cleared).
    pub popped: u64,
    /// Times a process found the lock's previous holder dead and recovered it.
    pub lock_recoveries: u64,
    /// The largest length the deque has reached.
    pub high_water: u64,
    /// Size of the segment in bytes.
    pub segment_bytes: u64,
    /// Whether the deque is closed.
    pub closed: bool,
}

/// Writes an in-place push's message: `len` bytes into `slot`. Return 0 to push it, nonzero to cancel (the
/// push then returns `SHMDEQUE_CANCELLED` and the deque is unchanged). Runs while the deque is locked: keep
/// it to a copy, and call no shmdeque function on the same deque from it. It must return normally.
pub type shmdeque_fill_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, slot: *mut c_void, len: usize) -> c_int>;

/// Reads an in-place pop's message: `len` bytes at `msg`, valid only during the call. Return 0 to remove
/// it, nonzero to leave it in the deque (the pop then returns `SHMDEQUE_CANCELLED`). Runs while the deque is
/// locked, as `shmdeque_fill_fn`.
pub type shmdeque_read_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_void, len: usize) -> c_int>;

/// Reads each message of an in-place batch pop: `len` bytes at `msg`, valid only during the call. Every
/// message handed to it is removed. Runs while the deque is locked, as `shmdeque_fill_fn`.
pub type shmdeque_each_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_void, len: usize)>;

#[derive(Clone, Copy)]
enum End {
    Front,
    Back,
}

/// The deque behind a handle.
///
/// # Safety
/// `q` is NULL or a live handle from `shmdeque_open`.
#[inline]
unsafe fn deque<'a>(q: *const shmdeque) -> Result<&'a RawDeque, Fail> {
    // SAFETY: the caller's contract; a live handle is an `Arc<shmdeque>`'s pointer, never written through.
    unsafe { get(q, "the deque handle q") }.map(|d| &d.q)
}

/// A new counted reference to the handle's deque, for a guard or producer that must keep it alive.
///
/// # Safety
/// `q` is a live, non-NULL handle from `shmdeque_open`.
unsafe fn share(q: *const shmdeque) -> Arc<shmdeque> {
    // SAFETY: `q` came from `Arc::into_raw` in `shmdeque_open`, and a live handle holds one count, so the
    // allocation exists; the new count is given to the returned `Arc`.
    unsafe {
        Arc::increment_strong_count(q);
        Arc::from_raw(q)
    }
}

/// The deque inside `arc`, for as long as the caller keeps `arc`: guards and producers store both, the borrow
/// declared first so that it is dropped first.
///
/// # Safety
/// The returned reference must not outlive `arc` (nor any clone that keeps the allocation alive).
unsafe fn extend(arc: &Arc<shmdeque>) -> &'static RawDeque {
    // SAFETY: the allocation behind an `Arc` does not move and lives while any clone of it does; the caller
    // keeps one for as long as it uses the reference.
    unsafe { &(*Arc::as_ptr(arc)).q }
}

// ---------------------------------------------------------------------------------------------------------
// Opening and closing

/// Opens the deque called `name` (the segment /dev/shm/NAME) and stores a new handle in `*out`.
///
/// `create`: 0 opens an existing deque, 1 opens it or creates it, 2 creates it and fails with
/// `SHMDEQUE_EXISTS` if the name is taken. When opening, `capacity` and `slot_size` of 0 mean "whatever the
/// deque has", and nonzero values must match it (`SHMDEQUE_INVALID` otherwise); when creating, 0 means the
/// default (1024 messages of 4096-byte slots, 4 bytes of each for the length). `mode` gives the permission
/// bits of a new segment, 0 for the default 0600. An opener waits up to 2 s for a segment that another
/// process is still creating.
///
/// Ownership: on success `*out` is a new handle that the caller releases with `shmdeque_close_handle`; on
/// failure `*out` is set to NULL. `name` is only read during the call.
///
/// Threads: any thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_open(
    name: *const c_char,
    capacity: u32,
    slot_size: u32,
    create: c_int,
    mode: u32,
    out: *mut *mut shmdeque,
) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `out`.
        let out = unsafe { call::out(out, "out") }?;
        *out = std::ptr::null_mut();
        // SAFETY: the caller's contract on `name`.
        let name = unsafe { call::name(name) }?;
        let create_mode = match create {
            0 => CreateMode::Open,
            1 => CreateMode::OpenOrCreate,
            2 => CreateMode::CreateExclusive,
            other => {
                return Err(Fail::invalid(format!(
                    "create {other} is invalid: pass 0 to open, 1 to open or create, 2 to create exclusively"
                )));
            }
        };
        if mode > 0o777 {
            return Err(Fail::invalid(format!("mode {mode:#o} has bits beyond 0777; pass permission bits only")));
        }
        let mut b = Builder::new(name).create_mode(create_mode).mode(if mode == 0 { 0o600 } else { mode });
        if capacity != 0 {
            b = b.capacity(capacity);
        }
        if slot_size != 0 {
            b = b.slot_size(slot_size);
        }
        let q = b.open_raw()?;
        *out = Arc::into_raw(Arc::new(shmdeque { q })).cast_mut();
        Ok(())
    })
}

/// Releases a handle; NULL is a no-op. The deque itself stays until `shmdeque_remove`, except that a closed
/// and drained deque is removed when the last handle to it, in any process, is released.
///
/// Ownership: `q` is invalid afterwards. Guards and producers made from it stay valid: the handle's resources
/// are freed when the last of them is released too.
///
/// Threads: no other thread may be using `q` (its guards and producers excepted).
///
/// # Safety
/// `q` is NULL or a live handle from `shmdeque_open`, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_close_handle(q: *mut shmdeque) {
    let _ = call(|| {
        if !q.is_null() {
            // SAFETY: a live handle is one count of an `Arc` from `shmdeque_open`; the caller gives it up.
            drop(unsafe { Arc::from_raw(q.cast_const()) });
        }
        Ok(())
    });
}

/// Removes the deque's name. Processes that have it open keep working on it; new opens will not find it
/// (`SHMDEQUE_NOT_FOUND` if there is no such deque).
///
/// Threads: any thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_remove(name: *const c_char) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `name`.
        let name = unsafe { call::name(name) }?;
        ::shmdeque::remove(name)?;
        Ok(())
    })
}

/// This thread's last error message: a one-line UTF-8 description of the most recent call on this thread
/// that returned something other than `SHMDEQUE_OK` (successful calls leave it as it was); "" before any.
/// Never NULL.
///
/// Ownership: the string belongs to the library and stays valid until the next shmdeque call on this
/// thread; copy it to keep it.
///
/// Threads: each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn shmdeque_last_error() -> *const c_char {
    call::last_error()
}

/// The name of a status code, e.g. "SHMDEQUE_FULL"; "SHMDEQUE_UNKNOWN" for a value that is none. Never
/// NULL; the string is static.
#[unsafe(no_mangle)]
pub extern "C" fn shmdeque_status_name(status: c_int) -> *const c_char {
    let all = [
        (SHMDEQUE_OK, c"SHMDEQUE_OK"),
        (SHMDEQUE_FULL, c"SHMDEQUE_FULL"),
        (SHMDEQUE_EMPTY, c"SHMDEQUE_EMPTY"),
        (SHMDEQUE_TIMEOUT, c"SHMDEQUE_TIMEOUT"),
        (SHMDEQUE_CLOSED, c"SHMDEQUE_CLOSED"),
        (SHMDEQUE_TOO_LARGE, c"SHMDEQUE_TOO_LARGE"),
        (SHMDEQUE_NOT_FOUND, c"SHMDEQUE_NOT_FOUND"),
        (SHMDEQUE_EXISTS, c"SHMDEQUE_EXISTS"),
        (SHMDEQUE_INVALID, c"SHMDEQUE_INVALID"),
        (SHMDEQUE_BUFFER_TOO_SMALL, c"SHMDEQUE_BUFFER_TOO_SMALL"),
        (SHMDEQUE_ERROR, c"SHMDEQUE_ERROR"),
        (SHMDEQUE_CANCELLED, c"SHMDEQUE_CANCELLED"),
        (SHMDEQUE_PRODUCERS_GONE, c"SHMDEQUE_PRODUCERS_GONE"),
        (SHMDEQUE_UNTRUSTED_OWNER, c"SHMDEQUE_UNTRUSTED_OWNER"),
        (SHMDEQUE_FOREIGN, c"SHMDEQUE_FOREIGN"),
    ];
    all.iter().find(|(s, _)| *s as c_int == status).map_or(c"SHMDEQUE_UNKNOWN", |(_, n)| n).as_ptr()
}

// ---------------------------------------------------------------------------------------------------------
// Single pushes and pops

// Flattened into the exported functions: 779 -> 751 instructions per 64 B push+pop (callgrind).
#[inline(always)]
unsafe fn push(q: *mut shmdeque, end: End, msg: *const c_void, len: usize, timeout_ms: i64) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    let wait = Wait::from_ms(timeout_ms)?;
    let max = q.max_message_len();
    if len > max {
        return Err(too_large(len, max));
    }
    // SAFETY: the caller's contract on `msg`.
    let msg = unsafe { bytes(msg, len, "msg") }?;
    match end {
        End::Back => by_wait!(wait, q, [try_push_back, push_back, push_back_timeout](msg))?,
        End::Front => by_wait!(wait, q, [try_push_front, push_front, push_front_timeout](msg))?,
    }
    Ok(())
}

/// Pushes the `len` bytes at `msg` at the back, waiting for room as `timeout_ms` says.
///
/// Returns `SHMDEQUE_FULL` (not waiting) or `SHMDEQUE_TIMEOUT` when there was no room, `SHMDEQUE_CLOSED`,
/// `SHMDEQUE_TOO_LARGE`. `msg` may be NULL when `len` is 0. The bytes are copied; the caller keeps `msg`.
///
/// Threads: any number at once on one handle.
///
/// # Safety
/// `q` is NULL or a live handle; `msg` is NULL or points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_push_back(
    q: *mut shmdeque,
    msg: *const c_void,
    len: usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { push(q, End::Back, msg, len, timeout_ms) })
}

/// As `shmdeque_push_back`, at the front: the message becomes the next one `shmdeque_pop_front` returns.
///
/// # Safety
/// As `shmdeque_push_back`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_push_front(
    q: *mut shmdeque,
    msg: *const c_void,
    len: usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { push(q, End::Front, msg, len, timeout_ms) })
}

/// Copies `msg` into `buf` if it fits, or declines it so that it stays in the deque.
#[inline]
fn copy_or_decline(buf: &mut [u8], msg: &[u8]) -> usize {
    match buf.get_mut(..msg.len()) {
        Some(dst) => {
            dst.copy_from_slice(msg);
            msg.len()
        }
        None => decline(Decline::TooSmall(msg.len())),
    }
}

/// Pops into `buf`; `Err((fail, needed))` where `needed` is the message's size for `BUFFER_TOO_SMALL`.
// Flattened, as `push` is.
#[inline(always)]
fn pop_into(q: &RawDeque, end: End, buf: &mut [u8], wait: Wait) -> Result<usize, (Fail, Option<usize>)> {
    let have = buf.len();
    let copy = |m: &[u8]| copy_or_decline(buf, m);
    let r = declining(|| match end {
        End::Front => by_wait!(wait, q, [try_pop_front_with, pop_front_with, pop_front_with_timeout](), copy),
        End::Back => by_wait!(wait, q, [try_pop_back_with, pop_back_with, pop_back_with_timeout](), copy),
    });
    match r {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err((e.into(), None)),
        Err(Decline::TooSmall(needed)) => Err((too_small(needed, have), Some(needed))),
        Err(Decline::Cancelled) => Err((CANCELLED, None)),
    }
}

// Flattened, as `push` is.
#[inline(always)]
unsafe fn pop(q: *mut shmdeque, end: End, buf: *mut c_void, len: *mut usize, timeout_ms: i64) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    // SAFETY: the caller's contract on `len`.
    let len = unsafe { out(len, "len") }?;
    // SAFETY: the caller's contract on `buf`: `*len` writable bytes.
    let buf = unsafe { bytes_mut(buf, *len, "buf") }?;
    let wait = Wait::from_ms(timeout_ms)?;
    match pop_into(q, end, buf, wait) {
        Ok(n) => {
            *len = n;
            Ok(())
        }
        Err((fail, needed)) => {
            if let Some(needed) = needed {
                *len = needed;
            }
            Err(fail)
        }
    }
}

/// Removes the front message into `buf`, waiting for one as `timeout_ms` says.
///
/// On entry `*len` is the size of `buf` (`buf` may be NULL when it is 0); on success it is the message's
/// length. `SHMDEQUE_BUFFER_TOO_SMALL` leaves the message in the deque and sets `*len` to the size needed
/// (a blocking pop first waits for a message, then reports its size); any other status leaves `*len` as it
/// was. Returns `SHMDEQUE_EMPTY` (not waiting) or `SHMDEQUE_TIMEOUT` when no message came, and
/// `SHMDEQUE_CLOSED` once the deque is closed and drained. A buffer of `shmdeque_max_message_len` bytes
/// holds any message.
///
/// Threads: any number at once on one handle.
///
/// # Safety
/// `q` is NULL or a live handle; `len` is NULL or points to a writable `size_t`; `buf` is NULL or points to
/// `*len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_front(
    q: *mut shmdeque,
    buf: *mut c_void,
    len: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop(q, End::Front, buf, len, timeout_ms) })
}

/// As `shmdeque_pop_front`, at the back (the newest message pushed at the back).
///
/// # Safety
/// As `shmdeque_pop_front`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_back(
    q: *mut shmdeque,
    buf: *mut c_void,
    len: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop(q, End::Back, buf, len, timeout_ms) })
}

unsafe fn peek(q: *mut shmdeque, end: End, buf: *mut c_void, len: *mut usize) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    // SAFETY: the caller's contract on `len`.
    let len = unsafe { out(len, "len") }?;
    // SAFETY: the caller's contract on `buf`: `*len` writable bytes.
    let buf = unsafe { bytes_mut(buf, *len, "buf") }?;
    let g = q.lock()?;
    copy_from_guard(&g, end, buf, len)
}

/// Copies the message at `end` into `buf` under a held lock, as a pop would, without removing it.
fn copy_from_guard(g: &RawLockGuard<'_>, end: End, buf: &mut [u8], len: &mut usize) -> Result<(), Fail> {
    let msg = match end {
        End::Front => g.front()?,
        End::Back => g.back()?,
    };
    let Some(msg) = msg else {
        return Err(if g.is_closed() { POP_CLOSED } else { EMPTY });
    };
    let Some(dst) = buf.get_mut(..msg.len()) else {
        let have = buf.len();
        *len = msg.len();
        return Err(too_small(msg.len(), have));
    };
    dst.copy_from_slice(msg);
    *len = msg.len();
    Ok(())
}

/// Copies the front message into `buf` without removing it; never waits for a message. `buf` and `*len`
/// as in `shmdeque_pop_front`; `SHMDEQUE_EMPTY` when there is none (`SHMDEQUE_CLOSED` when also closed).
///
/// Threads: any number at once on one handle.
///
/// # Safety
/// As `shmdeque_pop_front`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_peek_front(q: *mut shmdeque, buf: *mut c_void, len: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { peek(q, End::Front, buf, len) })
}

/// As `shmdeque_peek_front`, at the back.
///
/// # Safety
/// As `shmdeque_pop_front`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_peek_back(q: *mut shmdeque, buf: *mut c_void, len: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { peek(q, End::Back, buf, len) })
}

// ---------------------------------------------------------------------------------------------------------
// In place

unsafe fn push_with(
    q: *mut shmdeque,
    end: End,
    len: usize,
    fill: shmdeque_fill_fn,
    ctx: *mut c_void,
    timeout_ms: i64,
) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    let fill = fill.ok_or_else(|| Fail::null("fill"))?;
    let wait = Wait::from_ms(timeout_ms)?;
    let write = |slot: &mut [u8]| {
        // SAFETY: `slot` is `len` writable bytes for the duration of the call; the callback's contract is the
        // caller's.
        if unsafe { fill(ctx, slot.as_mut_ptr().cast(), slot.len()) } != 0 {
            decline(Decline::Cancelled);
        }
    };
    let r = declining(|| match end {
        End::Back => by_wait!(wait, q, [try_push_back_with, push_back_with, push_back_with_timeout](len), write),
        End::Front => by_wait!(wait, q, [try_push_front_with, push_front_with, push_front_with_timeout](len), write),
    });
    match r {
        Ok(r) => Ok(r?),
        Err(_) => Err(CANCELLED),
    }
}

/// Pushes a `len`-byte message at the back that `fill(ctx, slot, len)` writes straight into its slot, waiting
/// for room as `timeout_ms` says: a large message is copied once, from wherever `fill` makes it. If `fill`
/// returns nonzero, nothing is pushed and the result is `SHMDEQUE_CANCELLED`. Other statuses as
/// `shmdeque_push_back` (`fill` is not called then).
///
/// Threads: any number at once on one handle; `fill` runs on the calling thread, under the deque's lock.
///
/// # Safety
/// `q` is NULL or a live handle; `fill` is NULL or a function that writes at most `len` bytes to `slot` and
/// returns normally; `ctx` is passed to it untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_push_back_with(
    q: *mut shmdeque,
    len: usize,
    fill: shmdeque_fill_fn,
    ctx: *mut c_void,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { push_with(q, End::Back, len, fill, ctx, timeout_ms) })
}

/// As `shmdeque_push_back_with`, at the front.
///
/// # Safety
/// As `shmdeque_push_back_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_push_front_with(
    q: *mut shmdeque,
    len: usize,
    fill: shmdeque_fill_fn,
    ctx: *mut c_void,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { push_with(q, End::Front, len, fill, ctx, timeout_ms) })
}

unsafe fn pop_with(
    q: *mut shmdeque,
    end: End,
    read: shmdeque_read_fn,
    ctx: *mut c_void,
    timeout_ms: i64,
) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    let read = read.ok_or_else(|| Fail::null("read"))?;
    let wait = Wait::from_ms(timeout_ms)?;
    let take = |msg: &[u8]| {
        // SAFETY: `msg` is `len` readable bytes for the duration of the call; the callback's contract is the
        // caller's.
        if unsafe { read(ctx, msg.as_ptr().cast(), msg.len()) } != 0 {
            decline(Decline::Cancelled);
        }
    };
    let r = declining(|| match end {
        End::Front => by_wait!(wait, q, [try_pop_front_with, pop_front_with, pop_front_with_timeout](), take),
        End::Back => by_wait!(wait, q, [try_pop_back_with, pop_back_with, pop_back_with_timeout](), take),
    });
    match r {
        Ok(r) => Ok(r?),
        Err(_) => Err(CANCELLED),
    }
}

/// Removes the front message, handing it to `read(ctx, msg, len)` where it lies (no copy out of the
/// segment), waiting for one as `timeout_ms` says. If `read` returns nonzero, the message stays in the deque
/// and the result is `SHMDEQUE_CANCELLED`. Other statuses as `shmdeque_pop_front` (`read` is not called then).
///
/// Threads: any number at once on one handle; `read` runs on the calling thread, under the deque's lock.
///
/// # Safety
/// `q` is NULL or a live handle; `read` is NULL or a function that reads at most `len` bytes at `msg`, keeps
/// no pointer to them, and returns normally; `ctx` is passed to it untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_front_with(
    q: *mut shmdeque,
    read: shmdeque_read_fn,
    ctx: *mut c_void,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop_with(q, End::Front, read, ctx, timeout_ms) })
}

/// As `shmdeque_pop_front_with`, at the back.
///
/// # Safety
/// As `shmdeque_pop_front_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_back_with(
    q: *mut shmdeque,
    read: shmdeque_read_fn,
    ctx: *mut c_void,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop_with(q, End::Back, read, ctx, timeout_ms) })
}

// ---------------------------------------------------------------------------------------------------------
// Batches

/// A message of a batch whose pointer and length were checked: `len` is at most the slot payload and `data`
/// points to `len` readable bytes (the caller's contract) or is irrelevant because `len` is 0. Made only by
/// [`checked`], so that the library can take a slice of them without a copy of the caller's array.
#[repr(transparent)]
struct Checked(shmdeque_msg);

impl AsRef<[u8]> for Checked {
    fn as_ref(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: `checked` verified that `data` is non-NULL with a length below the slot payload, and the
        // caller of the batch function guarantees the bytes are readable while the call lasts, which is as
        // long as any `Checked` exists.
        unsafe { std::slice::from_raw_parts(self.0.data.cast::<u8>(), self.0.len) }
    }
}

/// Checks every message of a batch before any is pushed: a NULL with a nonzero length, or a message too
/// large for a slot, fails the whole batch.
///
/// # Safety
/// `msgs` is NULL or points to `count` readable `shmdeque_msg`, each pointing to its `len` readable bytes.
unsafe fn checked<'a>(msgs: *const shmdeque_msg, count: usize, max: usize) -> Result<&'a [Checked], Fail> {
    // SAFETY: the caller's contract on `msgs`.
    let msgs = unsafe { call::slice(msgs, count, "msgs") }?;
    for (i, m) in msgs.iter().enumerate() {
        if m.len > max {
            return Err(too_large(m.len, max));
        }
        if m.len != 0 && m.data.is_null() {
            return Err(Fail::null(&format!("msgs[{i}].data")));
        }
    }
    // SAFETY: `Checked` is a `repr(transparent)` wrapper of `shmdeque_msg`, so the slices have one layout;
    // every element was just checked.
    Ok(unsafe { std::slice::from_raw_parts(msgs.as_ptr().cast::<Checked>(), msgs.len()) })
}

unsafe fn push_many(
    q: *mut shmdeque,
    end: End,
    msgs: *const shmdeque_msg,
    count: usize,
    pushed: *mut usize,
    timeout_ms: i64,
) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    // SAFETY: the caller's contract on `pushed`.
    let pushed = unsafe { out(pushed, "pushed") }?;
    *pushed = 0;
    let wait = Wait::from_ms(timeout_ms)?;
    // SAFETY: the caller's contract on `msgs`.
    let msgs = unsafe { checked(msgs, count, q.max_message_len()) }?;
    let r = match end {
        End::Back => by_wait!(wait, q, [try_push_back_many, push_back_many, push_back_many_timeout](msgs)),
        End::Front => by_wait!(wait, q, [try_push_front_many, push_front_many, push_front_many_timeout](msgs)),
    };
    match r {
        Ok(n) => {
            *pushed = n;
            Ok(())
        }
        Err(e) => {
            let e = e.map(|n| *pushed = n);
            Err(e.into())
        }
    }
}

/// Pushes the `count` messages of `msgs` at the back, in order, taking the lock once per stretch of free
/// room; `*pushed` says how many were pushed, also when the call fails part-way. Waiting as `timeout_ms`
/// says: -1 pushes them all (or fails), a timeout may leave some unpushed (`SHMDEQUE_TIMEOUT`), and 0
/// pushes what fits now (`SHMDEQUE_FULL` only if none did). A message too large fails the whole batch
/// before anything is pushed.
///
/// Threads: any number at once on one handle.
///
/// # Safety
/// `q` is NULL or a live handle; `msgs` is NULL or points to `count` readable `shmdeque_msg`, each `data`
/// NULL or pointing to its `len` readable bytes; `pushed` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_push_back_many(
    q: *mut shmdeque,
    msgs: *const shmdeque_msg,
    count: usize,
    pushed: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { push_many(q, End::Back, msgs, count, pushed, timeout_ms) })
}

/// As `shmdeque_push_back_many`, each message at the front in turn (so the last ends up frontmost).
///
/// # Safety
/// As `shmdeque_push_back_many`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_push_front_many(
    q: *mut shmdeque,
    msgs: *const shmdeque_msg,
    count: usize,
    pushed: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { push_many(q, End::Front, msgs, count, pushed, timeout_ms) })
}

#[allow(clippy::too_many_arguments)]
unsafe fn pop_many(
    q: *mut shmdeque,
    end: End,
    buf: *mut c_void,
    buf_len: usize,
    lens: *mut usize,
    max: usize,
    count: *mut usize,
    timeout_ms: i64,
) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    // SAFETY: the caller's contract on `count`.
    let count = unsafe { out(count, "count") }?;
    *count = 0;
    // SAFETY: the caller's contract on `buf`.
    let buf = unsafe { bytes_mut(buf, buf_len, "buf") }?;
    // SAFETY: the caller's contract on `lens`.
    let lens = unsafe { call::slice_mut(lens, max, "lens") }?;
    let wait = Wait::from_ms(timeout_ms)?;
    if max == 0 {
        return Ok(());
    }
    // As many as fit whatever their sizes: the library's batch pop cannot stop at a message that does not fit
    // without putting back the ones before it.
    let fit = (buf.len() / q.max_message_len()).min(max);
    if fit == 0 {
        return match pop_into(q, end, buf, wait) {
            Ok(n) => {
                lens[0] = n;
                *count = 1;
                Ok(())
            }
            Err((fail, needed)) => {
                if let Some(needed) = needed {
                    lens[0] = needed;
                }
                Err(fail)
            }
        };
    }
    let (mut n, mut at) = (0, 0);
    let copy = |m: &[u8]| {
        // Cannot fail: `fit` messages of at most the slot payload fit `buf`.
        buf[at..at + m.len()].copy_from_slice(m);
        lens[n] = m.len();
        at += m.len();
        n += 1;
    };
    let r = match end {
        End::Front => {
            by_wait!(wait, q, [try_pop_front_many_with, pop_front_many_with, pop_front_many_with_timeout](fit), copy)
        }
        End::Back => {
            by_wait!(wait, q, [try_pop_back_many_with, pop_back_many_with, pop_back_many_with_timeout](fit), copy)
        }
    };
    *count = r?;
    Ok(())
}

/// Removes up to `max` messages from the front under one lock acquisition, waiting for the first as
/// `timeout_ms` says, and copies them back to back into `buf` (`buf_len` bytes); `lens[i]` is the length of
/// the i-th and `*count` how many there were. At most `buf_len / shmdeque_max_message_len` messages are
/// taken, so that any of them fits; when `buf` is smaller than that, one message is popped as by
/// `shmdeque_pop_front`, and `SHMDEQUE_BUFFER_TOO_SMALL` leaves it in the deque with its size in `lens[0]`.
/// Other statuses as `shmdeque_pop_front`.
///
/// Threads: any number at once on one handle.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or points to `buf_len` writable bytes; `lens` is NULL or
/// points to `max` writable `size_t`; `count` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_front_many(
    q: *mut shmdeque,
    buf: *mut c_void,
    buf_len: usize,
    lens: *mut usize,
    max: usize,
    count: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop_many(q, End::Front, buf, buf_len, lens, max, count, timeout_ms) })
}

/// As `shmdeque_pop_front_many`, from the back (back-most first).
///
/// # Safety
/// As `shmdeque_pop_front_many`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_back_many(
    q: *mut shmdeque,
    buf: *mut c_void,
    buf_len: usize,
    lens: *mut usize,
    max: usize,
    count: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop_many(q, End::Back, buf, buf_len, lens, max, count, timeout_ms) })
}

unsafe fn pop_many_with(
    q: *mut shmdeque,
    end: End,
    max: usize,
    each: shmdeque_each_fn,
    ctx: *mut c_void,
    count: *mut usize,
    timeout_ms: i64,
) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `q`.
    let q = unsafe { deque(q) }?;
    // SAFETY: the caller's contract on `count`.
    let count = unsafe { out(count, "count") }?;
    *count = 0;
    let each = each.ok_or_else(|| Fail::null("each"))?;
    let wait = Wait::from_ms(timeout_ms)?;
    // SAFETY: `msg` is `len` readable bytes for the duration of the call; the callback's contract is the
    // caller's.
    let read = |msg: &[u8]| unsafe { each(ctx, msg.as_ptr().cast(), msg.len()) };
    let r = match end {
        End::Front => {
            by_wait!(wait, q, [try_pop_front_many_with, pop_front_many_with, pop_front_many_with_timeout](max), read)
        }
        End::Back => {
            by_wait!(wait, q, [try_pop_back_many_with, pop_back_many_with, pop_back_many_with_timeout](max), read)
        }
    };
    *count = r?;
    Ok(())
}

/// Removes up to `max` messages from the front under one lock acquisition, handing each to
/// `each(ctx, msg, len)` where it lies, waiting for the first as `timeout_ms` says; `*count` says how many.
/// Every message handed to `each` is removed. Statuses as `shmdeque_pop_front`.
///
/// Threads: any number at once on one handle; `each` runs on the calling thread, under the deque's lock.
///
/// # Safety
/// `q` is NULL or a live handle; `each` is NULL or a function that reads at most `len` bytes at `msg`, keeps
/// no pointer to them and returns normally; `count` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_front_many_with(
    q: *mut shmdeque,
    max: usize,
    each: shmdeque_each_fn,
    ctx: *mut c_void,
    count: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop_many_with(q, End::Front, max, each, ctx, count, timeout_ms) })
}

/// As `shmdeque_pop_front_many_with`, from the back (back-most first).
///
/// # Safety
/// As `shmdeque_pop_front_many_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_pop_back_many_with(
    q: *mut shmdeque,
    max: usize,
    each: shmdeque_each_fn,
    ctx: *mut c_void,
    count: *mut usize,
    timeout_ms: i64,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    call(|| unsafe { pop_many_with(q, End::Back, max, each, ctx, count, timeout_ms) })
}

// ---------------------------------------------------------------------------------------------------------
// State

/// Runs `f` on the deque behind `q` and stores its result in `*out`.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or points to a writable `T`.
unsafe fn query<T>(q: *mut shmdeque, out: *mut T, f: impl FnOnce(&RawDeque) -> Result<T, Fail>) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `q`.
        let q = unsafe { deque(q) }?;
        // SAFETY: the caller's contract on `out`.
        let out = unsafe { call::out(out, "out") }?;
        *out = f(q)?;
        Ok(())
    })
}

/// The number of messages in the deque, in `*out` (a snapshot: other processes may change it at once).
///
/// Threads: any number at once on one handle.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_len(q: *mut shmdeque, out: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { query(q, out, |q| Ok(q.len())) }
}

/// The most messages the deque holds, in `*out`.
///
/// # Safety
/// As `shmdeque_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_capacity(q: *mut shmdeque, out: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { query(q, out, |q| Ok(q.capacity())) }
}

/// The largest message in bytes, in `*out`: the slot size less 4. A buffer this large holds any message.
///
/// # Safety
/// As `shmdeque_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_max_message_len(q: *mut shmdeque, out: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { query(q, out, |q| Ok(q.max_message_len())) }
}

/// Whether the deque is closed, in `*out`.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or points to a writable `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_is_closed(q: *mut shmdeque, out: *mut bool) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { query(q, out, |q| Ok(q.is_closed())) }
}

/// How a handle waits for room or for a message (`shmdeque_set_wait_strategy`): latency against CPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmdeque_wait_strategy {
    /// Spins for an adaptive few microseconds, then sleeps in the kernel (the default).
    SHMDEQUE_WAIT_ADAPTIVE = 0,
    /// Spins and never sleeps or yields: the lowest latency, a whole core while waiting.
    SHMDEQUE_WAIT_BUSY_SPIN = 1,
    /// Spins, yielding the core between looks; never sleeps.
    SHMDEQUE_WAIT_YIELDING = 2,
    /// Sleeps in the kernel at once: no CPU while waiting, a wake-up's latency per message.
    SHMDEQUE_WAIT_BLOCKING = 3,
}

/// Sets how the handle's blocking calls wait for room or for a message, from their next wait on: one of
/// `shmdeque_wait_strategy` (the library's `WaitStrategy`, where each one's CPU cost is documented). Another
/// value gives `SHMDEQUE_INVALID`.
///
/// Threads: any thread; the handle's calls in other threads use it from their next wait.
///
/// # Safety
/// `q` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_set_wait_strategy(q: *mut shmdeque, strategy: c_int) -> shmdeque_status {
    call(|| {
        let s = match strategy {
            0 => WaitStrategy::Adaptive,
            1 => WaitStrategy::BusySpin,
            2 => WaitStrategy::Yielding,
            3 => WaitStrategy::Blocking,
            other => {
                return Err(Fail::invalid(format!(
                    "wait strategy {other} is invalid: pass one of SHMDEQUE_WAIT_ADAPTIVE, _BUSY_SPIN, _YIELDING, \
                     _BLOCKING"
                )));
            }
        };
        // SAFETY: the caller's contract on `q`.
        unsafe { deque(q) }?.set_wait_strategy(s);
        Ok(())
    })
}

/// Removes every message; `*removed` says how many there were.
///
/// # Safety
/// As `shmdeque_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_clear(q: *mut shmdeque, removed: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { query(q, removed, |q| Ok(q.clear()?)) }
}

/// Closes the deque for everyone, like `shmdeque close NAME`: pushes fail with `SHMDEQUE_CLOSED` from now on,
/// pops drain what is left and then return `SHMDEQUE_CLOSED`, and every blocked process wakes. Closing twice
/// is harmless. The handle stays valid.
///
/// Threads: any thread.
///
/// # Safety
/// `q` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_close(q: *mut shmdeque) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `q`.
        unsafe { deque(q) }?.close()?;
        Ok(())
    })
}

/// The deque's state and counters, read under its lock, in `*out`.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or points to a writable `shmdeque_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_get_stats(q: *mut shmdeque, out: *mut shmdeque_stats) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        query(q, out, |q| {
            let s = q.stats()?;
            Ok(shmdeque_stats {
                capacity: s.capacity,
                slot_size: s.slot_size,
                len: s.len,
                producers: s.producers,
                attached: s.attached,
                asleep_for_message: s.asleep_for_message,
                asleep_for_room: s.asleep_for_room,
                mode: s.mode,
                pushed: s.pushed,
                popped: s.popped,
                lock_recoveries: s.lock_recoveries,
                high_water: s.high_water,
                segment_bytes: s.segment_bytes,
                closed: s.closed,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Producers

/// Registers the calling process as a producer of the deque (counted in `shmdeque_stats.producers`; the
/// registration of a process that dies is reclaimed by the next registration). Tools use it to close the
/// deque when the last producer leaves: see `shmdeque_producer_leave`.
///
/// Ownership: on success `*out` is a new registration that the caller releases with
/// `shmdeque_producer_leave`; it keeps the deque open even if `q` is closed first. On failure `*out` is NULL.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_register_producer(
    q: *mut shmdeque,
    out: *mut *mut shmdeque_producer,
) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `out`.
        let out = unsafe { call::out(out, "out") }?;
        *out = std::ptr::null_mut();
        // SAFETY: the caller's contract on `q`.
        unsafe { deque(q) }?;
        // SAFETY: `q` is a live handle (checked non-NULL just above).
        let arc = unsafe { share(q) };
        // SAFETY: the producer is stored next to `arc` and declared first, so it is dropped first.
        let producer = unsafe { extend(&arc) }.register_producer()?;
        *out = Box::into_raw(Box::new(shmdeque_producer { producer: Some(producer), _deque: arc }));
        Ok(())
    })
}

/// Leaves and releases the registration. If `close_if_last` is nonzero and no other live producer remains,
/// closes the deque so that consumers drain it and finish; `*closed` (which may be NULL) says whether this
/// call closed it. The registration is released even when the call fails.
///
/// Threads: any thread.
///
/// # Safety
/// `p` is NULL or a live registration from `shmdeque_register_producer`, not used again; `closed` is NULL or
/// points to a writable `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_producer_leave(
    p: *mut shmdeque_producer,
    close_if_last: c_int,
    closed: *mut bool,
) -> shmdeque_status {
    call(|| {
        if p.is_null() {
            return Err(Fail::null("the producer p"));
        }
        // SAFETY: a live registration is a `Box` from `shmdeque_register_producer`; the caller gives it up.
        let mut p = unsafe { Box::from_raw(p) };
        let producer = p.producer.take().ok_or_else(|| Fail::invalid("the producer has left already"))?;
        let did_close = producer.leave(close_if_last != 0)?;
        drop(p);
        // SAFETY: the caller's contract on `closed`.
        if let Some(closed) = unsafe { closed.as_mut() } {
            *closed = did_close;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------------------
// The lock guard

/// Takes the deque's lock, waiting for it as long as it takes, and stores the guard in `*out`: the
/// analogue of `QSharedMemory::lock()`. Under it, the `shmdeque_guard_*` functions read the messages in place
/// and push and pop without waiting, all atomically with respect to every other thread and process. Keep
/// it briefly: everyone else waits for it. Blocking operations on the same deque from the locking thread
/// fail with `SHMDEQUE_INVALID` (this thread already holds the lock).
///
/// Ownership: on success `*out` is a new guard that the caller releases with `shmdeque_unlock`; it keeps the
/// deque open even if `q` is closed first. On failure `*out` is NULL.
///
/// Threads: the guard belongs to this thread (a pthread mutex is unlocked by the thread that locked it).
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_lock(q: *mut shmdeque, out: *mut *mut shmdeque_guard) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `out`.
        let out = unsafe { call::out(out, "out") }?;
        *out = std::ptr::null_mut();
        // SAFETY: the caller's contract on `q`.
        unsafe { deque(q) }?;
        // SAFETY: `q` is a live handle (checked non-NULL just above).
        let arc = unsafe { share(q) };
        // SAFETY: the guard is stored next to `arc` and declared first, so it is dropped first.
        let guard = unsafe { extend(&arc) }.lock()?;
        let g = shmdeque_guard { guard: UnsafeCell::new(guard), owner: thread::current().id(), deque: arc };
        *out = Box::into_raw(Box::new(g));
        Ok(())
    })
}

/// Checks that the calling thread owns the guard.
///
/// # Safety
/// `g` is NULL or a live guard from `shmdeque_lock`.
unsafe fn owned<'a>(g: *mut shmdeque_guard) -> Result<&'a shmdeque_guard, Fail> {
    // SAFETY: the caller's contract; the guard is only ever accessed through shared references, its lock
    // guard through the `UnsafeCell`.
    let g = unsafe { get(g.cast_const(), "the guard g") }?;
    if g.owner != thread::current().id() {
        return Err(Fail::invalid(
            "this guard belongs to the thread that locked the deque; use and unlock it from that thread",
        ));
    }
    Ok(g)
}

/// Runs `f` on the lock guard behind `g`, from its owning thread.
///
/// # Safety
/// `g` is NULL or a live guard from `shmdeque_lock`.
unsafe fn with_guard(
    g: *mut shmdeque_guard,
    f: impl FnOnce(&RawDeque, &mut RawLockGuard<'static>) -> Result<(), Fail>,
) -> shmdeque_status {
    call(|| {
        // SAFETY: the caller's contract on `g`.
        let g = unsafe { owned(g) }?;
        // SAFETY: only the owning thread gets here (checked above), and no guard function calls out to the
        // caller while it runs, so no other reference to the lock guard exists during `f`.
        f(&g.deque.q, unsafe { &mut *g.guard.get() })
    })
}

/// Unlocks and releases the guard; NULL is a no-op. Whoever waits for what changed under the guard wakes.
/// Called from another thread than the one that locked, it returns `SHMDEQUE_INVALID` and the guard stays.
///
/// # Safety
/// `g` is NULL or a live guard from `shmdeque_lock`, not used again after `SHMDEQUE_OK`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_unlock(g: *mut shmdeque_guard) -> shmdeque_status {
    call(|| {
        if g.is_null() {
            return Ok(());
        }
        // SAFETY: the caller's contract on `g`.
        unsafe { owned(g) }?;
        // SAFETY: a live guard is a `Box` from `shmdeque_lock`; the owning thread gives it up.
        drop(unsafe { Box::from_raw(g) });
        Ok(())
    })
}

/// The number of messages, in `*out` (exact: nobody else can change it while the lock is held).
///
/// # Safety
/// `g` is NULL or a live guard; `out` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_len(g: *mut shmdeque_guard, out: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_guard(g, |_, g| {
            *call::out(out, "out")? = g.len();
            Ok(())
        })
    }
}

/// Whether the deque is closed, in `*out`.
///
/// # Safety
/// `g` is NULL or a live guard; `out` is NULL or points to a writable `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_is_closed(g: *mut shmdeque_guard, out: *mut bool) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_guard(g, |_, g| {
            *call::out(out, "out")? = g.is_closed();
            Ok(())
        })
    }
}

/// Where the message at `index` from the front (0 is the front) lies: `*msg` and `*len`, pointing into the
/// deque, without removing it. `SHMDEQUE_NOT_FOUND` when `index` is not below `shmdeque_guard_len`. To
/// iterate: `for (i = 0; i < len; i++) shmdeque_guard_get(g, i, &msg, &n);`.
///
/// Ownership: the bytes belong to the deque; they stay valid until the next push, pop, clear or unlock
/// through this guard. Do not write to them.
///
/// # Safety
/// `g` is NULL or a live guard; `msg` and `len` are NULL or point to writable storage of their types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_get(
    g: *mut shmdeque_guard,
    index: usize,
    msg: *mut *const c_void,
    len: *mut usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { with_guard(g, |_, g| locate(g.get(index), g.len(), Some(index), msg, len)) }
}

/// Stores where a message found under a guard lies, or says why there is none.
///
/// # Safety
/// `msg` and `len` are NULL or point to writable storage of their types.
unsafe fn locate(
    found: Result<Option<&[u8]>, ::shmdeque::Error>,
    held: usize,
    index: Option<usize>,
    msg: *mut *const c_void,
    len: *mut usize,
) -> Result<(), Fail> {
    // SAFETY: the caller's contract on `msg` and `len`.
    let (msg, len) = unsafe { (out(msg, "msg")?, out(len, "len")?) };
    match (found?, index) {
        (Some(m), _) => {
            *msg = m.as_ptr().cast();
            *len = m.len();
            Ok(())
        }
        (None, Some(i)) => Err(Fail::new(
            shmdeque_status::SHMDEQUE_NOT_FOUND,
            format!("there is no message at index {i}: the deque holds {held}"),
        )),
        (None, None) => Err(EMPTY),
    }
}

/// Where the front message lies, as `shmdeque_guard_get` with index 0; `SHMDEQUE_EMPTY` when there is none.
///
/// # Safety
/// As `shmdeque_guard_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_front(
    g: *mut shmdeque_guard,
    msg: *mut *const c_void,
    len: *mut usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { with_guard(g, |_, g| locate(g.front(), g.len(), None, msg, len)) }
}

/// Where the back message lies; `SHMDEQUE_EMPTY` when there is none.
///
/// # Safety
/// As `shmdeque_guard_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_back(
    g: *mut shmdeque_guard,
    msg: *mut *const c_void,
    len: *mut usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { with_guard(g, |_, g| locate(g.back(), g.len(), None, msg, len)) }
}

unsafe fn guard_push(g: *mut shmdeque_guard, end: End, msg: *const c_void, len: usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_guard(g, |q, g| {
            let max = q.max_message_len();
            if len > max {
                return Err(too_large(len, max));
            }
            let msg = bytes(msg, len, "msg")?;
            match end {
                End::Back => g.try_push_back(msg)?,
                End::Front => g.try_push_front(msg)?,
            }
            Ok(())
        })
    }
}

/// Pushes the `len` bytes at `msg` at the back if there is room (never waits: the lock is held);
/// `SHMDEQUE_FULL`, `SHMDEQUE_CLOSED`, `SHMDEQUE_TOO_LARGE` otherwise. Invalidates message pointers from
/// `shmdeque_guard_get`.
///
/// # Safety
/// `g` is NULL or a live guard; `msg` is NULL or points to `len` readable bytes outside the deque.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_try_push_back(
    g: *mut shmdeque_guard,
    msg: *const c_void,
    len: usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { guard_push(g, End::Back, msg, len) }
}

/// As `shmdeque_guard_try_push_back`, at the front.
///
/// # Safety
/// As `shmdeque_guard_try_push_back`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_try_push_front(
    g: *mut shmdeque_guard,
    msg: *const c_void,
    len: usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { guard_push(g, End::Front, msg, len) }
}

unsafe fn guard_pop(g: *mut shmdeque_guard, end: End, buf: *mut c_void, len: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_guard(g, |_, g| {
            let len = out(len, "len")?;
            let buf = bytes_mut(buf, *len, "buf")?;
            copy_from_guard(&*g, end, buf, len)?;
            // The message fitted and was copied; now remove it. The lock is held throughout, so it is the
            // same message.
            let removed: Result<Vec<u8>, PopError> = match end {
                End::Front => g.try_pop_front(),
                End::Back => g.try_pop_back(),
            };
            removed?;
            Ok(())
        })
    }
}

/// Removes the front message into `buf` if there is one (never waits); `buf` and `*len` as in
/// `shmdeque_pop_front`, including `SHMDEQUE_BUFFER_TOO_SMALL`. Invalidates message pointers from
/// `shmdeque_guard_get`.
///
/// # Safety
/// `g` is NULL or a live guard; `len` is NULL or points to a writable `size_t`; `buf` is NULL or points to
/// `*len` writable bytes outside the deque.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_try_pop_front(
    g: *mut shmdeque_guard,
    buf: *mut c_void,
    len: *mut usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { guard_pop(g, End::Front, buf, len) }
}

/// As `shmdeque_guard_try_pop_front`, at the back.
///
/// # Safety
/// As `shmdeque_guard_try_pop_front`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_try_pop_back(
    g: *mut shmdeque_guard,
    buf: *mut c_void,
    len: *mut usize,
) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { guard_pop(g, End::Back, buf, len) }
}

/// Removes every message; `*removed` says how many there were.
///
/// # Safety
/// `g` is NULL or a live guard; `removed` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_clear(g: *mut shmdeque_guard, removed: *mut usize) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_guard(g, |_, g| {
            let removed = out(removed, "removed")?;
            *removed = g.clear()?;
            Ok(())
        })
    }
}

/// Closes the deque (see `shmdeque_close`); blocked processes wake when the guard is unlocked.
///
/// # Safety
/// `g` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmdeque_guard_close(g: *mut shmdeque_guard) -> shmdeque_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_guard(g, |_, g| {
            g.close();
            Ok(())
        })
    }
}
