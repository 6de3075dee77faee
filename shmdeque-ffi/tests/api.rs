//! The C API called as C calls it, from Rust: statuses, NULL checks, the last error, timeouts, messages that
//! do not fit their buffer, callbacks, batches, the lock guard, stats and producers. Real segments with
//! unique names; every blocking step under a watchdog.

use std::ffi::{CStr, CString, c_int, c_void};
use std::ptr::{null, null_mut};
use std::thread;
use std::time::Duration;

use shmdeque_ffi::shmdeque_status::{self, *};
use shmdeque_ffi::shmdeque_wait_strategy::*;
use shmdeque_ffi::*;
use shmdeque_testkit::{Name, Watchdog};

const LIMIT: Duration = Duration::from_secs(60);

fn cname(name: &str) -> CString {
    CString::new(name).unwrap()
}

fn last_error() -> String {
    let p = shmdeque_last_error();
    assert!(!p.is_null(), "shmdeque_last_error returned NULL");
    // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_str().expect("the last error is UTF-8").to_owned()
}

/// Opens `name` (1: open or create) and returns the handle, failing the test otherwise.
fn open(name: &str, capacity: u32, slot_size: u32) -> *mut shmdeque {
    let mut q = null_mut();
    // SAFETY: a valid name and out pointer.
    let s = unsafe { shmdeque_open(cname(name).as_ptr(), capacity, slot_size, 1, 0, &mut q) };
    assert_eq!(s, SHMDEQUE_OK, "{}", last_error());
    assert!(!q.is_null());
    q
}

fn push(q: *mut shmdeque, msg: &[u8], timeout_ms: i64) -> shmdeque_status {
    // SAFETY: `msg` is readable for its length.
    unsafe { shmdeque_push_back(q, msg.as_ptr().cast(), msg.len(), timeout_ms) }
}

/// Pops from the front into a buffer of `cap` bytes: the status and what `*len` became.
fn pop(q: *mut shmdeque, cap: usize, timeout_ms: i64) -> (shmdeque_status, usize, Vec<u8>) {
    let mut buf = vec![0u8; cap];
    let mut len = cap;
    // SAFETY: `buf` holds `len` writable bytes.
    let s = unsafe { shmdeque_pop_front(q, buf.as_mut_ptr().cast(), &mut len, timeout_ms) };
    buf.truncate(if s == SHMDEQUE_OK { len } else { 0 });
    (s, len, buf)
}

fn len(q: *mut shmdeque) -> usize {
    let mut n = usize::MAX;
    // SAFETY: a live handle and a valid out pointer.
    assert_eq!(unsafe { shmdeque_len(q, &mut n) }, SHMDEQUE_OK);
    n
}

fn close_handle(q: *mut shmdeque) {
    // SAFETY: a live handle, not used again.
    unsafe { shmdeque_close_handle(q) };
}

/// A raw pointer that may cross to another thread: the C API's handles are documented as shareable.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: the C API documents handles as usable from any number of threads at once, and guards as refusing
// (with SHMDEQUE_INVALID) any thread but their own.
unsafe impl<T> Send for Shared<T> {}

#[test]
fn open_checks_its_arguments() {
    let _w = Watchdog::new("open_checks_its_arguments", LIMIT);
    let name = Name::new("ffi-open");
    let c = cname(&name);
    let mut q = null_mut();
    // SAFETY (all calls below): valid or NULL pointers, as each call says.
    unsafe {
        assert_eq!(shmdeque_open(c.as_ptr(), 0, 0, 0, 0, &mut q), SHMDEQUE_NOT_FOUND);
        assert!(q.is_null());
        assert!(last_error().contains("does not exist"), "{}", last_error());
        assert_eq!(shmdeque_open(null(), 0, 0, 1, 0, &mut q), SHMDEQUE_INVALID);
        assert!(last_error().contains("NULL"), "{}", last_error());
        assert_eq!(shmdeque_open(c.as_ptr(), 0, 0, 1, 0, null_mut()), SHMDEQUE_INVALID);
        assert_eq!(shmdeque_open(c.as_ptr(), 0, 0, 3, 0, &mut q), SHMDEQUE_INVALID);
        assert!(last_error().contains("create 3"), "{}", last_error());
        assert_eq!(shmdeque_open(c.as_ptr(), 0, 0, 1, 0o1777, &mut q), SHMDEQUE_INVALID);
        let bad = cname("a/b");
        assert_eq!(shmdeque_open(bad.as_ptr(), 0, 0, 1, 0, &mut q), SHMDEQUE_INVALID);
        let not_utf8 = [0xffu8, 0];
        assert_eq!(shmdeque_open(not_utf8.as_ptr().cast(), 0, 0, 1, 0, &mut q), SHMDEQUE_INVALID);
        assert!(last_error().contains("UTF-8"), "{}", last_error());

        assert_eq!(shmdeque_open(c.as_ptr(), 16, 64, 2, 0o600, &mut q), SHMDEQUE_OK);
        let mut other = null_mut();
        assert_eq!(shmdeque_open(c.as_ptr(), 0, 0, 2, 0, &mut other), SHMDEQUE_EXISTS);
        // Zero: whatever the deque has; nonzero: must match.
        assert_eq!(shmdeque_open(c.as_ptr(), 0, 0, 0, 0, &mut other), SHMDEQUE_OK);
        let (mut cap, mut max) = (0, 0);
        assert_eq!(shmdeque_capacity(other, &mut cap), SHMDEQUE_OK);
        assert_eq!(shmdeque_max_message_len(other, &mut max), SHMDEQUE_OK);
        assert_eq!((cap, max), (16, 60));
        close_handle(other);
        let mut third = null_mut();
        assert_eq!(shmdeque_open(c.as_ptr(), 32, 0, 1, 0, &mut third), SHMDEQUE_INVALID);
        assert!(last_error().contains("capacity 16"), "{}", last_error());
        assert!(third.is_null());

        // A success leaves the last error as it was.
        let before = last_error();
        assert_eq!(push(q, b"x", 0), SHMDEQUE_OK);
        assert_eq!(last_error(), before);
        close_handle(q);
        close_handle(null_mut());
        assert_eq!(shmdeque_remove(c.as_ptr()), SHMDEQUE_OK);
        assert_eq!(shmdeque_remove(c.as_ptr()), SHMDEQUE_NOT_FOUND);
        assert_eq!(shmdeque_remove(null()), SHMDEQUE_INVALID);
    }
}

/// Another program's file in /dev/shm is not removed: `SHMDEQUE_FOREIGN`, and the message says why.
#[test]
fn remove_refuses_a_file_that_is_not_a_deque() {
    let name = Name::new("ffi-foreign");
    std::fs::write(name.path(), "another program's data").unwrap();
    let c = cname(&name);
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let status = unsafe { shmdeque_remove(c.as_ptr()) };
    assert_eq!(status, SHMDEQUE_FOREIGN);
    assert!(last_error().contains("not a deque"), "{}", last_error());
    assert!(name.exists());
}

#[test]
fn pushes_and_pops_at_both_ends_with_every_timeout() {
    let _w = Watchdog::new("pushes_and_pops_at_both_ends_with_every_timeout", LIMIT);
    let name = Name::new("ffi-ends");
    let q = open(&name, 2, 32);
    // SAFETY (all calls below): a live handle and valid or deliberately NULL pointers.
    unsafe {
        assert_eq!(push(q, b"b", 0), SHMDEQUE_OK);
        assert_eq!(shmdeque_push_front(q, b"a".as_ptr().cast(), 1, -1), SHMDEQUE_OK);
        assert_eq!(push(q, b"c", 0), SHMDEQUE_FULL);
        assert_eq!(last_error(), "the deque is full");
        assert_eq!(push(q, b"c", 5), SHMDEQUE_TIMEOUT);
        assert_eq!(push(q, b"c", -2), SHMDEQUE_INVALID);
        assert!(last_error().contains("timeout_ms -2"), "{}", last_error());
        assert_eq!(push(q, &[0; 29], 0), SHMDEQUE_TOO_LARGE);
        assert_eq!(shmdeque_push_back(q, null(), 3, 0), SHMDEQUE_INVALID);
        assert_eq!(shmdeque_push_back(null_mut(), b"x".as_ptr().cast(), 1, 0), SHMDEQUE_INVALID);

        let mut buf = [0u8; 28];
        let mut n = buf.len();
        assert_eq!(shmdeque_pop_back(q, buf.as_mut_ptr().cast(), &mut n, 0), SHMDEQUE_OK);
        assert_eq!(&buf[..n], b"b");
        assert_eq!(pop(q, 28, -1), (SHMDEQUE_OK, 1, b"a".to_vec()));
        assert_eq!(pop(q, 28, 0).0, SHMDEQUE_EMPTY);
        assert_eq!(last_error(), "the deque is empty");
        assert_eq!(pop(q, 28, 5).0, SHMDEQUE_TIMEOUT);
        assert_eq!(shmdeque_pop_front(q, buf.as_mut_ptr().cast(), null_mut(), 0), SHMDEQUE_INVALID);

        // An empty message: NULL with length 0 is allowed.
        assert_eq!(shmdeque_push_back(q, null(), 0, 0), SHMDEQUE_OK);
        let mut n = 0;
        assert_eq!(shmdeque_pop_front(q, null_mut(), &mut n, 0), SHMDEQUE_OK);
        assert_eq!(n, 0);

        assert_eq!(shmdeque_close(q), SHMDEQUE_OK);
        assert_eq!(push(q, b"x", -1), SHMDEQUE_CLOSED);
        assert_eq!(pop(q, 28, -1).0, SHMDEQUE_CLOSED);
        let mut closed = false;
        assert_eq!(shmdeque_is_closed(q, &mut closed), SHMDEQUE_OK);
        assert!(closed);
    }
    close_handle(q);
}

/// Every wait strategy can be set and then serves a waiting pop woken by another thread's push; anything else
/// is refused with a message naming the values.
#[test]
fn wait_strategies_are_set_per_handle() {
    let _w = Watchdog::new("wait_strategies_are_set_per_handle", LIMIT);
    let name = Name::new("ffi-strategy");
    let q = open(&name, 4, 32);
    let other = open(&name, 0, 0);
    for s in [SHMDEQUE_WAIT_BUSY_SPIN, SHMDEQUE_WAIT_YIELDING, SHMDEQUE_WAIT_BLOCKING, SHMDEQUE_WAIT_ADAPTIVE] {
        // SAFETY: a live handle.
        assert_eq!(unsafe { shmdeque_set_wait_strategy(q, s as c_int) }, SHMDEQUE_OK, "{s:?}");
        let (a, b) = (q as usize, other as usize);
        thread::scope(|sc| {
            let popper = sc.spawn(move || pop(a as *mut shmdeque, 28, -1));
            thread::sleep(Duration::from_millis(20));
            assert_eq!(push(b as *mut shmdeque, b"hi", -1), SHMDEQUE_OK);
            assert_eq!(popper.join().unwrap(), (SHMDEQUE_OK, 2, b"hi".to_vec()), "{s:?}");
        });
    }
    // SAFETY: a live handle, and NULL.
    unsafe {
        assert_eq!(shmdeque_set_wait_strategy(q, 4), SHMDEQUE_INVALID);
        assert!(last_error().contains("wait strategy 4 is invalid"), "{}", last_error());
        assert_eq!(shmdeque_set_wait_strategy(null_mut(), 0), SHMDEQUE_INVALID);
    }
    close_handle(other);
    close_handle(q);
}

#[test]
fn a_message_that_does_not_fit_stays_in_the_deque() {
    let _w = Watchdog::new("a_message_that_does_not_fit_stays_in_the_deque", LIMIT);
    let name = Name::new("ffi-small");
    let q = open(&name, 8, 128);
    assert_eq!(push(q, &[7; 100], 0), SHMDEQUE_OK);
    assert_eq!(push(q, &[8; 3], 0), SHMDEQUE_OK);
    for timeout in [0, -1, 1000] {
        let (s, needed, _) = pop(q, 99, timeout);
        assert_eq!((s, needed), (SHMDEQUE_BUFFER_TOO_SMALL, 100));
        assert!(last_error().contains("100 bytes"), "{}", last_error());
        assert_eq!(len(q), 2, "the message stayed");
    }
    // A zero-length buffer asks for the size.
    let mut n = 0;
    // SAFETY: NULL with a length of 0.
    assert_eq!(unsafe { shmdeque_pop_front(q, null_mut(), &mut n, 0) }, SHMDEQUE_BUFFER_TOO_SMALL);
    assert_eq!(n, 100);
    // At the back, and when peeking.
    let mut buf = [0u8; 2];
    let mut n = buf.len();
    // SAFETY: `buf` holds `n` bytes.
    assert_eq!(unsafe { shmdeque_pop_back(q, buf.as_mut_ptr().cast(), &mut n, -1) }, SHMDEQUE_BUFFER_TOO_SMALL);
    assert_eq!(n, 3);
    let mut n = buf.len();
    // SAFETY: as above.
    assert_eq!(unsafe { shmdeque_peek_front(q, buf.as_mut_ptr().cast(), &mut n) }, SHMDEQUE_BUFFER_TOO_SMALL);
    assert_eq!(n, 100);
    let mut peeked = [0u8; 8];
    let mut n = peeked.len();
    // SAFETY: as above.
    assert_eq!(unsafe { shmdeque_peek_back(q, peeked.as_mut_ptr().cast(), &mut n) }, SHMDEQUE_OK);
    assert_eq!(&peeked[..n], &[8; 3]);
    assert_eq!(len(q), 2);
    assert_eq!(pop(q, 100, 0), (SHMDEQUE_OK, 100, vec![7; 100]));
    assert_eq!(pop(q, 3, 0), (SHMDEQUE_OK, 3, vec![8; 3]));
    close_handle(q);
}

#[test]
fn a_blocking_pop_with_a_small_buffer_waits_then_reports_the_size() {
    let _w = Watchdog::new("a_blocking_pop_with_a_small_buffer_waits_then_reports_the_size", LIMIT);
    let name = Name::new("ffi-small-wait");
    let q = open(&name, 4, 64);
    let shared = Shared(q);
    let popper = thread::spawn(move || {
        let q = shared;
        pop(q.0, 4, -1)
    });
    // Let it block first (not asserted: a pop that has not blocked yet takes the same path).
    thread::sleep(Duration::from_millis(50));
    assert_eq!(push(q, &[1; 50], 0), SHMDEQUE_OK);
    let (s, needed, _) = popper.join().unwrap();
    assert_eq!((s, needed), (SHMDEQUE_BUFFER_TOO_SMALL, 50));
    assert_eq!(len(q), 1);
    assert_eq!(pop(q, 50, 0), (SHMDEQUE_OK, 50, vec![1; 50]));

    // A blocked pop wakes with SHMDEQUE_CLOSED when the deque is closed.
    let popper = thread::spawn(move || {
        let q = shared;
        pop(q.0, 64, -1).0
    });
    thread::sleep(Duration::from_millis(50));
    // SAFETY: a live handle.
    assert_eq!(unsafe { shmdeque_close(q) }, SHMDEQUE_OK);
    assert_eq!(popper.join().unwrap(), SHMDEQUE_CLOSED);
    close_handle(q);
}

unsafe extern "C" fn fill_with_ctx(ctx: *mut c_void, slot: *mut c_void, len: usize) -> c_int {
    // SAFETY: the test passes a `u8` as ctx, and the library `len` writable bytes as slot.
    unsafe { std::ptr::write_bytes(slot.cast::<u8>(), *ctx.cast::<u8>(), len) };
    0
}

unsafe extern "C" fn refuse(_: *mut c_void, _: *mut c_void, _: usize) -> c_int {
    1
}

unsafe extern "C" fn read_into(ctx: *mut c_void, msg: *const c_void, len: usize) -> c_int {
    // SAFETY: the test passes a `Vec<u8>` as ctx, and the library `len` readable bytes as msg.
    unsafe { (*ctx.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(msg.cast::<u8>(), len)) };
    0
}

unsafe extern "C" fn decline(_: *mut c_void, _: *const c_void, _: usize) -> c_int {
    -1
}

unsafe extern "C" fn count_each(ctx: *mut c_void, _: *const c_void, len: usize) {
    // SAFETY: the test passes a `usize` as ctx.
    unsafe { *ctx.cast::<usize>() += len };
}

#[test]
fn callbacks_write_and_read_in_place_or_cancel() {
    let _w = Watchdog::new("callbacks_write_and_read_in_place_or_cancel", LIMIT);
    let name = Name::new("ffi-with");
    let q = open(&name, 8, 64);
    let mut byte = 9u8;
    let ctx: *mut c_void = (&raw mut byte).cast();
    // SAFETY (all calls below): a live handle; callbacks that honour their contracts, with their contexts.
    unsafe {
        assert_eq!(shmdeque_push_back_with(q, 5, Some(fill_with_ctx), ctx, 0), SHMDEQUE_OK);
        assert_eq!(shmdeque_push_front_with(q, 5, Some(refuse), null_mut(), -1), SHMDEQUE_CANCELLED);
        assert!(last_error().contains("cancelled"), "{}", last_error());
        assert_eq!(len(q), 1);
        assert_eq!(shmdeque_push_back_with(q, 5, None, null_mut(), 0), SHMDEQUE_INVALID);
        assert_eq!(shmdeque_push_back_with(q, 61, Some(fill_with_ctx), ctx, 0), SHMDEQUE_TOO_LARGE);

        assert_eq!(shmdeque_pop_front_with(q, Some(decline), null_mut(), -1), SHMDEQUE_CANCELLED);
        assert_eq!(len(q), 1, "a declined message stays");
        let mut got: Vec<u8> = Vec::new();
        let out: *mut c_void = (&raw mut got).cast();
        assert_eq!(shmdeque_pop_back_with(q, Some(read_into), out, 0), SHMDEQUE_OK);
        assert_eq!(got, [9; 5]);
        assert_eq!(shmdeque_pop_front_with(q, Some(read_into), out, 5), SHMDEQUE_TIMEOUT);
        assert_eq!(shmdeque_pop_front_with(q, None, out, 0), SHMDEQUE_INVALID);
    }
    close_handle(q);
}

fn msg(bytes: &[u8]) -> shmdeque_msg {
    shmdeque_msg { data: bytes.as_ptr().cast(), len: bytes.len() }
}

#[test]
fn batches_push_and_pop_many_under_one_lock() {
    let _w = Watchdog::new("batches_push_and_pop_many_under_one_lock", LIMIT);
    let name = Name::new("ffi-many");
    let q = open(&name, 4, 20); // messages of up to 16 bytes
    let batch = [msg(b"one"), shmdeque_msg { data: null(), len: 0 }, msg(b"three")];
    let mut pushed = usize::MAX;
    // SAFETY (all calls below): a live handle, arrays of the lengths passed, valid out pointers.
    unsafe {
        assert_eq!(shmdeque_push_back_many(q, batch.as_ptr(), 3, &mut pushed, -1), SHMDEQUE_OK);
        assert_eq!(pushed, 3);
        // Not waiting: what fits now, then FULL when nothing does.
        assert_eq!(shmdeque_push_front_many(q, batch.as_ptr(), 3, &mut pushed, 0), SHMDEQUE_OK);
        assert_eq!(pushed, 1);
        assert_eq!(shmdeque_push_back_many(q, batch.as_ptr(), 3, &mut pushed, 0), SHMDEQUE_FULL);
        assert_eq!(pushed, 0);
        assert_eq!(shmdeque_push_back_many(q, batch.as_ptr(), 3, &mut pushed, 5), SHMDEQUE_TIMEOUT);
        // A bad message fails the whole batch before anything is pushed.
        let big = [0u8; 17];
        let bad = [msg(b"ok"), msg(&big)];
        assert_eq!(shmdeque_push_back_many(q, bad.as_ptr(), 2, &mut pushed, 0), SHMDEQUE_TOO_LARGE);
        let null_data = [msg(b"ok"), shmdeque_msg { data: null(), len: 2 }];
        assert_eq!(shmdeque_push_back_many(q, null_data.as_ptr(), 2, &mut pushed, 0), SHMDEQUE_INVALID);
        assert!(last_error().contains("msgs[1].data"), "{}", last_error());
        assert_eq!(len(q), 4);

        // Copying batch pops: as many as surely fit, back to back.
        let mut buf = [0u8; 40]; // room for 2 messages of the largest size
        let mut lens = [0usize; 4];
        let mut count = 0;
        let s = shmdeque_pop_front_many(q, buf.as_mut_ptr().cast(), buf.len(), lens.as_mut_ptr(), 4, &mut count, 0);
        assert_eq!(s, SHMDEQUE_OK);
        assert_eq!((count, &lens[..2]), (2, &[3, 3][..]));
        assert_eq!(&buf[..6], b"oneone");
        // A buffer smaller than the largest message: one at a time, never lost.
        let s = shmdeque_pop_back_many(q, buf.as_mut_ptr().cast(), 4, lens.as_mut_ptr(), 4, &mut count, 0);
        assert_eq!((s, count, lens[0]), (SHMDEQUE_BUFFER_TOO_SMALL, 0, 5));
        let s = shmdeque_pop_back_many(q, buf.as_mut_ptr().cast(), 5, lens.as_mut_ptr(), 4, &mut count, 0);
        assert_eq!((s, count, lens[0]), (SHMDEQUE_OK, 1, 5));
        assert_eq!(&buf[..5], b"three");
        // In place: every message handed over is removed.
        let mut total = 0usize;
        let ctx: *mut c_void = (&raw mut total).cast();
        assert_eq!(shmdeque_pop_front_many_with(q, 10, Some(count_each), ctx, &mut count, 0), SHMDEQUE_OK);
        assert_eq!((count, total), (1, 0)); // the empty message
        assert_eq!(shmdeque_pop_back_many_with(q, 10, Some(count_each), ctx, &mut count, 0), SHMDEQUE_EMPTY);
        assert_eq!(shmdeque_pop_back_many_with(q, 10, None, ctx, &mut count, 0), SHMDEQUE_INVALID);
        assert_eq!(shmdeque_pop_front_many(q, null_mut(), 0, null_mut(), 0, &mut count, 0), SHMDEQUE_OK);
        assert_eq!(count, 0);
    }
    close_handle(q);
}

fn lock(q: *mut shmdeque) -> *mut shmdeque_guard {
    let mut g = null_mut();
    // SAFETY: a live handle and a valid out pointer.
    assert_eq!(unsafe { shmdeque_lock(q, &mut g) }, SHMDEQUE_OK, "{}", last_error());
    g
}

/// Every message under the guard, front to back, through `shmdeque_guard_get`.
fn messages(g: *mut shmdeque_guard) -> Vec<Vec<u8>> {
    let mut n = 0;
    // SAFETY (all calls below): a live guard of this thread; pointers from get are read before any change.
    unsafe {
        assert_eq!(shmdeque_guard_len(g, &mut n), SHMDEQUE_OK);
        (0..n)
            .map(|i| {
                let (mut p, mut len) = (null(), 0);
                assert_eq!(shmdeque_guard_get(g, i, &mut p, &mut len), SHMDEQUE_OK);
                std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec()
            })
            .collect()
    }
}

#[test]
fn the_guard_iterates_and_changes_atomically() {
    let _w = Watchdog::new("the_guard_iterates_and_changes_atomically", LIMIT);
    let name = Name::new("ffi-guard");
    let q = open(&name, 4, 32);
    assert_eq!(push(q, b"one", 0), SHMDEQUE_OK);
    assert_eq!(push(q, b"two", 0), SHMDEQUE_OK);
    let g = lock(q);
    // SAFETY (all calls below): a live guard and handle; valid or deliberately NULL pointers.
    unsafe {
        assert_eq!(messages(g), [b"one".to_vec(), b"two".to_vec()]);
        let (mut p, mut n) = (null(), 0);
        assert_eq!(shmdeque_guard_get(g, 2, &mut p, &mut n), SHMDEQUE_NOT_FOUND);
        assert_eq!(shmdeque_guard_get(g, 0, null_mut(), &mut n), SHMDEQUE_INVALID);
        assert_eq!(shmdeque_guard_back(g, &mut p, &mut n), SHMDEQUE_OK);
        assert_eq!(std::slice::from_raw_parts(p.cast::<u8>(), n), b"two");

        // Blocking operations on the same deque from the locking thread are refused, not deadlocked.
        assert_eq!(push(q, b"x", -1), SHMDEQUE_INVALID);
        assert!(last_error().contains("already holds the lock"), "{}", last_error());

        // Move the back message to the front, atomically.
        let mut buf = [0u8; 2];
        let mut len = buf.len();
        assert_eq!(shmdeque_guard_try_pop_back(g, buf.as_mut_ptr().cast(), &mut len), SHMDEQUE_BUFFER_TOO_SMALL);
        assert_eq!(len, 3);
        let mut buf = [0u8; 28];
        let mut len = buf.len();
        assert_eq!(shmdeque_guard_try_pop_back(g, buf.as_mut_ptr().cast(), &mut len), SHMDEQUE_OK);
        assert_eq!(shmdeque_guard_try_push_front(g, buf.as_ptr().cast(), len), SHMDEQUE_OK);
        assert_eq!(shmdeque_guard_try_push_back(g, [0u8; 29].as_ptr().cast(), 29), SHMDEQUE_TOO_LARGE);
        assert_eq!(shmdeque_guard_try_push_back(g, b"3".as_ptr().cast(), 1), SHMDEQUE_OK);
        assert_eq!(shmdeque_guard_try_push_back(g, b"4".as_ptr().cast(), 1), SHMDEQUE_OK);
        assert_eq!(shmdeque_guard_try_push_back(g, b"5".as_ptr().cast(), 1), SHMDEQUE_FULL);
        assert_eq!(messages(g), [b"two".to_vec(), b"one".to_vec(), b"3".to_vec(), b"4".to_vec()]);

        // Another thread may not use or unlock the guard.
        let other = Shared(g);
        let (used, unlocked) = thread::spawn(move || {
            let g = other;
            let mut n = 0;
            (shmdeque_guard_len(g.0, &mut n), shmdeque_unlock(g.0))
        })
        .join()
        .unwrap();
        assert_eq!((used, unlocked), (SHMDEQUE_INVALID, SHMDEQUE_INVALID));

        // The handle may be released first: the guard keeps the deque.
        close_handle(q);
        let mut removed = 0;
        assert_eq!(shmdeque_guard_clear(g, &mut removed), SHMDEQUE_OK);
        assert_eq!(removed, 4);
        let mut len = buf.len();
        assert_eq!(shmdeque_guard_try_pop_front(g, buf.as_mut_ptr().cast(), &mut len), SHMDEQUE_EMPTY);
        assert_eq!(shmdeque_guard_front(g, &mut p, &mut n), SHMDEQUE_EMPTY);
        assert_eq!(shmdeque_guard_close(g), SHMDEQUE_OK);
        let mut closed = false;
        assert_eq!(shmdeque_guard_is_closed(g, &mut closed), SHMDEQUE_OK);
        assert!(closed);
        assert_eq!(shmdeque_guard_try_pop_front(g, buf.as_mut_ptr().cast(), &mut len), SHMDEQUE_CLOSED);
        assert_eq!(shmdeque_unlock(g), SHMDEQUE_OK);
        assert_eq!(shmdeque_unlock(null_mut()), SHMDEQUE_OK);
        assert_eq!(shmdeque_guard_len(null_mut(), &mut n), SHMDEQUE_INVALID);
    }
}

#[test]
fn stats_and_producers() {
    let _w = Watchdog::new("stats_and_producers", LIMIT);
    let name = Name::new("ffi-stats");
    let q = open(&name, 8, 64);
    // SAFETY (all calls below): a live handle, valid out pointers, registrations used once.
    unsafe {
        let (mut a, mut b) = (null_mut(), null_mut());
        assert_eq!(shmdeque_register_producer(q, &mut a), SHMDEQUE_OK);
        assert_eq!(shmdeque_register_producer(q, &mut b), SHMDEQUE_OK);
        assert_eq!(push(q, b"hello", 0), SHMDEQUE_OK);
        let mut s = shmdeque_stats::default();
        assert_eq!(shmdeque_get_stats(q, &mut s), SHMDEQUE_OK);
        assert_eq!((s.capacity, s.slot_size, s.len, s.pushed, s.producers, s.mode), (8, 64, 1, 1, 2, 0o600));
        assert!(!s.closed && s.segment_bytes > 0);
        assert_eq!(shmdeque_get_stats(q, null_mut()), SHMDEQUE_INVALID);

        // The first to leave finds another live producer and leaves the deque open; the last closes it.
        let mut closed = true;
        assert_eq!(shmdeque_producer_leave(a, 1, &mut closed), SHMDEQUE_OK);
        assert!(!closed);
        assert_eq!(push(q, b"more", 0), SHMDEQUE_OK);
        assert_eq!(shmdeque_producer_leave(b, 1, &mut closed), SHMDEQUE_OK);
        assert!(closed);
        assert_eq!(shmdeque_producer_leave(null_mut(), 1, null_mut()), SHMDEQUE_INVALID);
        assert_eq!(push(q, b"late", 0), SHMDEQUE_CLOSED);
        assert_eq!(pop(q, 64, -1), (SHMDEQUE_OK, 5, b"hello".to_vec()));
        assert_eq!(pop(q, 64, -1), (SHMDEQUE_OK, 4, b"more".to_vec()));
        assert_eq!(pop(q, 64, -1).0, SHMDEQUE_CLOSED);
        assert_eq!(shmdeque_register_producer(null_mut(), &mut a), SHMDEQUE_INVALID);
    }
    close_handle(q);
    // The last handle of a closed, drained deque removed it.
    assert!(!name.exists());
}

#[test]
fn status_names() {
    let name = |s: c_int| {
        // SAFETY: a static, NUL-terminated string.
        unsafe { CStr::from_ptr(shmdeque_status_name(s)) }.to_str().unwrap().to_owned()
    };
    assert_eq!(name(SHMDEQUE_OK as c_int), "SHMDEQUE_OK");
    assert_eq!(name(SHMDEQUE_BUFFER_TOO_SMALL as c_int), "SHMDEQUE_BUFFER_TOO_SMALL");
    assert_eq!(name(SHMDEQUE_CANCELLED as c_int), "SHMDEQUE_CANCELLED");
    assert_eq!(name(-1), "SHMDEQUE_UNKNOWN");
    assert_eq!(name(99), "SHMDEQUE_UNKNOWN");
    // The values C programs compile against.
    let values = [
        (SHMDEQUE_OK, 0),
        (SHMDEQUE_FULL, 1),
        (SHMDEQUE_EMPTY, 2),
        (SHMDEQUE_TIMEOUT, 3),
        (SHMDEQUE_CLOSED, 4),
        (SHMDEQUE_TOO_LARGE, 5),
        (SHMDEQUE_NOT_FOUND, 6),
        (SHMDEQUE_EXISTS, 7),
        (SHMDEQUE_INVALID, 8),
        (SHMDEQUE_BUFFER_TOO_SMALL, 9),
        (SHMDEQUE_ERROR, 10),
        (SHMDEQUE_CANCELLED, 11),
    ];
    for (s, v) in values {
        assert_eq!(s as c_int, v, "{s:?}");
    }
}

#[test]
fn the_last_error_is_per_thread() {
    let name = Name::new("ffi-per-thread");
    let c = cname(&name);
    let mut q = null_mut();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { shmdeque_open(c.as_ptr(), 0, 0, 0, 0, &mut q) }, SHMDEQUE_NOT_FOUND);
    let here = last_error();
    let there = thread::spawn(last_error).join().unwrap();
    assert!(here.contains("does not exist"));
    assert_eq!(there, "");
}
