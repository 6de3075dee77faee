//! What every exported function shares: the boundary (`call`: no unwinding out, a status back, the message
//! recorded), the thread's last error, the timeout convention, the checks on the caller's pointers, and the
//! mapping of the library's errors to status codes.

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

use ::shmdeque::{Error, PopError, PushError};

use crate::shmdeque_status::{self, *};

/// Why a call did not return `SHMDEQUE_OK`: the status and what [`shmdeque_last_error`](crate::shmdeque_last_error)
/// will say.
pub(crate) struct Fail {
    pub status: shmdeque_status,
    message: Cow<'static, CStr>,
}

impl Fail {
    #[cold]
    pub fn new(status: shmdeque_status, message: impl Into<String>) -> Fail {
        let mut bytes = message.into().into_bytes();
        // The library's messages quote names, which C strings cannot hold a NUL of; other sources could.
        bytes.retain(|&b| b != 0);
        let message = CString::new(bytes).unwrap_or_default();
        Fail { status, message: Cow::Owned(message) }
    }

    /// The frequent outcomes of `try` and timed operations: no allocation, so that polling stays cheap. Each
    /// text is the library's own (a unit test checks that they agree).
    const fn fixed(status: shmdeque_status, message: &'static CStr) -> Fail {
        Fail { status, message: Cow::Borrowed(message) }
    }

    /// A NULL where a pointer is required.
    #[cold]
    #[inline(never)]
    pub fn null(what: &str) -> Fail {
        Fail::new(SHMDEQUE_INVALID, format!("{what} is NULL; pass a valid pointer"))
    }

    #[cold]
    pub fn invalid(message: impl Into<String>) -> Fail {
        Fail::new(SHMDEQUE_INVALID, message)
    }

    /// The message of `status`, recorded as this thread's last error; returns the status.
    fn record(self) -> shmdeque_status {
        let status = self.status;
        // `try_with`: during thread teardown the slot may be gone; the status still tells what happened.
        let _ = LAST_ERROR.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = self.message;
            }
        });
        status
    }

    /// A panic that reached the boundary: a bug in this crate or the library, reported instead of unwinding
    /// into C.
    fn panic(payload: Box<dyn Any + Send>) -> Fail {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown payload".to_owned());
        Fail::new(SHMDEQUE_ERROR, format!("internal error (a panic in shmdeque: {what}); please report it"))
    }
}

pub(crate) const FULL: Fail = Fail::fixed(SHMDEQUE_FULL, c"the deque is full");
pub(crate) const PUSH_TIMEOUT: Fail = Fail::fixed(SHMDEQUE_TIMEOUT, c"timed out waiting for room in the deque");
pub(crate) const PUSH_CLOSED: Fail = Fail::fixed(SHMDEQUE_CLOSED, c"the deque is closed");
pub(crate) const EMPTY: Fail = Fail::fixed(SHMDEQUE_EMPTY, c"the deque is empty");
pub(crate) const POP_TIMEOUT: Fail = Fail::fixed(SHMDEQUE_TIMEOUT, c"timed out waiting for a message");
pub(crate) const POP_CLOSED: Fail = Fail::fixed(SHMDEQUE_CLOSED, c"the deque is closed and drained");
pub(crate) const CANCELLED: Fail = Fail::fixed(
    SHMDEQUE_CANCELLED,
    c"the callback returned nonzero: the operation was cancelled, the deque is unchanged",
);

thread_local! {
    /// This thread's last error message. Replaced only by failing calls; read by `shmdeque_last_error`.
    static LAST_ERROR: RefCell<Cow<'static, CStr>> = const { RefCell::new(Cow::Borrowed(c"")) };
}

/// This thread's last error message: valid until the next call into the library on this thread.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.try_with(|last| last.try_borrow().map(|m| m.as_ptr()).unwrap_or(c"".as_ptr())).unwrap_or(c"".as_ptr())
}

/// The boundary: runs `body`, records a failure as this thread's last error and returns its status. Nothing
/// unwinds out of here: a panic becomes `SHMDEQUE_ERROR`.
#[inline]
pub(crate) fn call(body: impl FnOnce() -> Result<(), Fail>) -> shmdeque_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SHMDEQUE_OK,
        Ok(Err(fail)) => fail.record(),
        Err(payload) => Fail::panic(payload).record(),
    }
}

/// Thrown by a closure running under the deque's lock to leave the deque as it was (the library documents
/// that a panicking `fill` pushes nothing and a panicking `read` leaves the message in place), and caught by
/// [`declining`]. Raised with `resume_unwind`, which skips the panic hook: nothing is printed.
pub(crate) enum Decline {
    /// The message is this many bytes, more than the caller's buffer holds.
    TooSmall(usize),
    /// The caller's callback returned nonzero.
    Cancelled,
}

/// Declines the message or slot the closure was handed (see [`Decline`]). Never returns.
#[cold]
pub(crate) fn decline(why: Decline) -> ! {
    resume_unwind(Box::new(why))
}

/// Runs `op`, turning a [`Decline`] raised inside it into `Err`; any other panic goes on unwinding to [`call`].
#[inline]
pub(crate) fn declining<R>(op: impl FnOnce() -> R) -> Result<R, Decline> {
    match catch_unwind(AssertUnwindSafe(op)) {
        Ok(r) => Ok(r),
        Err(payload) => match payload.downcast::<Decline>() {
            Ok(why) => Err(*why),
            Err(other) => resume_unwind(other),
        },
    }
}

/// How long an operation may wait, from a `timeout_ms` argument.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// 0: do not wait (the `try_` forms).
    Now,
    /// -1: as long as it takes.
    Forever,
    /// > 0: up to this long.
    For(Duration),
}

impl Wait {
    #[inline]
    pub fn from_ms(timeout_ms: i64) -> Result<Wait, Fail> {
        match timeout_ms {
            0 => Ok(Wait::Now),
            -1 => Ok(Wait::Forever),
            ms if ms > 0 => Ok(Wait::For(Duration::from_millis(ms as u64))),
            ms => Err(bad_timeout(ms)),
        }
    }
}

#[cold]
#[inline(never)]
fn bad_timeout(ms: i64) -> Fail {
    Fail::invalid(format!(
        "timeout_ms {ms} is invalid: pass -1 to wait as long as it takes, 0 not to wait, or a positive count"
    ))
}

/// A length no object can have (`len` values of `size` bytes exceed `isize::MAX`).
#[cold]
#[inline(never)]
fn too_long(what: &str, len: usize) -> Fail {
    Fail::invalid(format!("{what}'s length {len} is larger than any object"))
}

/// Calls the `try_`, blocking or `_timeout` form of an operation as `wait` says. The arguments come in the
/// library's order: the data, then the timeout, then a closure.
macro_rules! by_wait {
    ($wait:expr, $q:expr, [$try_fn:ident, $fn:ident, $timeout_fn:ident] ($($arg:expr),*) $(, $f:expr)?) => {
        match $wait {
            $crate::call::Wait::Now => $q.$try_fn($($arg,)* $($f)?),
            $crate::call::Wait::Forever => $q.$fn($($arg,)* $($f)?),
            $crate::call::Wait::For(d) => $q.$timeout_fn($($arg,)* d $(, $f)?),
        }
    };
}
pub(crate) use by_wait;

/// The status of a library error.
pub(crate) fn error_status(e: &Error) -> shmdeque_status {
    match e {
        Error::NotFound { .. } => SHMDEQUE_NOT_FOUND,
        Error::AlreadyExists { .. } => SHMDEQUE_EXISTS,
        Error::UntrustedOwner { .. } => SHMDEQUE_UNTRUSTED_OWNER,
        Error::ForeignSegment { .. } => SHMDEQUE_FOREIGN,
        Error::InvalidName { .. }
        | Error::InvalidConfig(_)
        | Error::GeometryMismatch { .. }
        | Error::AlreadyLocked { .. } => SHMDEQUE_INVALID,
        _ => SHMDEQUE_ERROR,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::new(error_status(&e), e.to_string())
    }
}

impl<T> From<PushError<T>> for Fail {
    fn from(e: PushError<T>) -> Fail {
        match e {
            PushError::Full(_) => FULL,
            PushError::Timeout(_) => PUSH_TIMEOUT,
            PushError::Closed(_) => PUSH_CLOSED,
            PushError::TooLarge { .. } => Fail::new(SHMDEQUE_TOO_LARGE, e.to_string()),
            PushError::Failed { error, .. } => error.into(),
            other => Fail::new(SHMDEQUE_ERROR, other.to_string()),
        }
    }
}

impl From<PopError> for Fail {
    fn from(e: PopError) -> Fail {
        match e {
            PopError::Empty => EMPTY,
            PopError::Timeout => POP_TIMEOUT,
            PopError::Closed => POP_CLOSED,
            PopError::ProducersGone => Fail::new(SHMDEQUE_PRODUCERS_GONE, e.to_string()),
            PopError::Failed(error) => error.into(),
            other => Fail::new(SHMDEQUE_ERROR, other.to_string()),
        }
    }
}

/// A message too large for any slot of the deque, refused before a slice of it is made.
#[cold]
#[inline(never)]
pub(crate) fn too_large(len: usize, max: usize) -> Fail {
    Fail::new(SHMDEQUE_TOO_LARGE, format!("message of {len} bytes is larger than the slot payload of {max} bytes"))
}

/// A message that does not fit the caller's buffer; it was left in the deque.
#[cold]
#[inline(never)]
pub(crate) fn too_small(needed: usize, have: usize) -> Fail {
    Fail::new(
        SHMDEQUE_BUFFER_TOO_SMALL,
        format!(
            "the message is {needed} bytes but the buffer holds {have}; it was left in the deque: \
             retry with a buffer of at least {needed} bytes"
        ),
    )
}

// ---------------------------------------------------------------------------------------------------------
// The caller's pointers

/// A shared reference to what `p` points to, or `Fail::null(what)`.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T` that nothing writes for `'a`.
#[inline]
pub(crate) unsafe fn get<'a, T>(p: *const T, what: &str) -> Result<&'a T, Fail> {
    // SAFETY: the caller's contract: NULL (handled by `as_ref`) or a valid `T` for 'a.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::null(what))
}

/// A unique reference to the out-parameter `p`, or `Fail::null(what)`.
///
/// # Safety
/// `p` is NULL or points to a properly aligned, writable `T` that nothing else accesses for `'a`.
#[inline]
pub(crate) unsafe fn out<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Fail> {
    // SAFETY: the caller's contract, as above.
    unsafe { p.as_mut() }.ok_or_else(|| Fail::null(what))
}

/// The `len` values at `p`: NULL is allowed for zero values only.
///
/// # Safety
/// Unless NULL or `len` is 0, `p` points to `len` readable, properly aligned `T` that nothing writes for `'a`.
#[inline]
pub(crate) unsafe fn slice<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(too_long(what, len));
    }
    // SAFETY: non-NULL, and `len` values fit an object (checked above); readable and aligned by the caller's
    // contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The `len` writable values at `p`: NULL is allowed for zero values only.
///
/// # Safety
/// Unless NULL or `len` is 0, `p` points to `len` writable, properly aligned `T` that nothing else accesses
/// for `'a`.
#[inline]
pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, len: usize, what: &str) -> Result<&'a mut [T], Fail> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(too_long(what, len));
    }
    // SAFETY: as in `slice`, for writing, with no other access by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// The `len` bytes at `p` (NULL is allowed for zero bytes only).
///
/// # Safety
/// As [`slice`].
#[inline]
pub(crate) unsafe fn bytes<'a>(p: *const c_void, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    // SAFETY: the caller's contract, passed on; bytes need no alignment.
    unsafe { slice(p.cast::<u8>(), len, what) }
}

/// The `len` writable bytes at `p` (NULL is allowed for zero bytes only).
///
/// # Safety
/// As [`slice_mut`].
#[inline]
pub(crate) unsafe fn bytes_mut<'a>(p: *mut c_void, len: usize, what: &str) -> Result<&'a mut [u8], Fail> {
    // SAFETY: the caller's contract, passed on; bytes need no alignment.
    unsafe { slice_mut(p.cast::<u8>(), len, what) }
}

/// A deque name from C: NUL-terminated UTF-8.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub(crate) unsafe fn name<'a>(name: *const c_char) -> Result<&'a str, Fail> {
    if name.is_null() {
        return Err(Fail::null("name"));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(name) };
    c.to_str()
        .map_err(|_| Fail::invalid(format!("deque name {:?} is not UTF-8; use a UTF-8 name", c.to_string_lossy())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed messages are the library's own texts.
    #[test]
    fn fixed_messages_match_the_library() {
        let text = |f: Fail| f.message.to_str().unwrap().to_owned();
        assert_eq!(text(FULL), PushError::Full(()).to_string());
        assert_eq!(text(PUSH_TIMEOUT), PushError::Timeout(()).to_string());
        assert_eq!(text(PUSH_CLOSED), PushError::Closed(()).to_string());
        assert_eq!(text(EMPTY), PopError::Empty.to_string());
        assert_eq!(text(POP_TIMEOUT), PopError::Timeout.to_string());
        assert_eq!(text(POP_CLOSED), PopError::Closed.to_string());
        assert_eq!(text(too_large(9, 4)), PushError::TooLarge { value: (), len: 9, max: 4 }.to_string());
    }

    #[test]
    fn nul_bytes_are_dropped_from_messages() {
        assert_eq!(Fail::new(SHMDEQUE_ERROR, "a\0b").message.to_bytes(), b"ab");
    }
}
