//! The `_async` forms of the blocking operations (feature `async`): futures that any executor can poll,
//! woken by the process's reactor thread (`reactor.rs`) rather than blocking a thread in a futex wait.
//!
//! Every async operation is one [`Waiting`] future around the operation's `try_` body (`ops.rs`), written
//! once. A poll goes:
//!
//! 1. **Try first.** The `try_` body; if it does not say "full" or "empty", that is the result. No
//!    spinning: a spin would hold the executor's thread.
//! 2. **Count, then try again.** Otherwise the future registers with the reactor and makes sure its key
//!    counts a sleeper in the segment (taking the deque's lock to count, as a sleeping thread does), reads
//!    the sequence word after the count, and tries once more: a change before the count is seen by this
//!    try, a change after it moves the word.
//! 3. **Wait.** If that try fails too, the future arms the reactor with the value it read and returns
//!    `Pending`. Polls without a wake-up from the reactor (the baton, the deadline, an interrupt) return
//!    `Pending` at once; with one, the future goes round again from 1.
//!
//! A future that completes has done its operation in the poll that returns it; one that is dropped did
//! nothing (see "Cancel safety" on each method); either way it leaves the reactor, and the last waiter of a
//! key takes its sleeper count back out of the segment.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::err::{Error, PopError, PushError};
use crate::raw::RawDeque;
use crate::reactor::{Cond, reactor};
use crate::ring::End;
use crate::wait::{Blocked, Wait};

/// Why a waiting future gives up without a result of its operation.
pub(crate) enum Why {
    Timeout,
    Interrupted,
    ProducersGone,
    Failed(Error),
}

/// The future behind every `_async` operation.
///
/// `op(None)` runs the operation's `try_` body: `Pending` means full (or empty), anything else is the
/// result. `op(Some(why))` builds the result for giving up, and is always `Ready`.
pub(crate) struct Waiting<'d, R, F> {
    deque: &'d RawDeque,
    cond: Cond,
    deadline: Option<Instant>,
    op: F,
    /// The reactor's id of this waiter, while registered.
    ticket: Option<u64>,
    /// Try on the next poll even without a wake-up from the reactor.
    retry: bool,
    done: bool,
    _out: PhantomData<fn() -> R>,
}

// The future never pins its fields: `op` is only called through `&mut`, and nothing points into the future.
impl<R, F> Unpin for Waiting<'_, R, F> {}

/// How many times one poll goes round "try, count, try, arm" when the reactor keeps taking the count back
/// in between (the deque keeps changing), before it yields to the executor.
const ROUNDS_PER_POLL: usize = 4;

impl<'d, R, F: FnMut(Option<Why>) -> Poll<R>> Waiting<'d, R, F> {
    pub(crate) fn new(deque: &'d RawDeque, cond: Cond, deadline: Option<Instant>, op: F) -> Self {
        Waiting { deque, cond, deadline, op, ticket: None, retry: false, done: false, _out: PhantomData }
    }

    fn finish(&mut self, r: R) -> Poll<R> {
        self.leave();
        self.done = true;
        Poll::Ready(r)
    }

    fn give_up(&mut self, why: Why) -> Poll<R> {
        match (self.op)(Some(why)) {
            Poll::Ready(r) => self.finish(r),
            // Not reached: every `op` gives up with a result.
            Poll::Pending => {
                self.leave();
                self.done = true;
                Poll::Pending
            }
        }
    }

    /// Leaves the reactor; the last waiter of the key takes the key's sleeper count back.
    fn leave(&mut self) {
        if let (Some(id), Some(reactor)) = (self.ticket.take(), reactor()) {
            reactor.leave(id);
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Why this future must stop waiting, if it must: its deadline passed, or its handle was interrupted.
    fn must_stop(&self) -> Option<Why> {
        if self.past_deadline() {
            Some(Why::Timeout)
        } else if self.deque.interrupt.is_interrupted() {
            Some(Why::Interrupted)
        } else {
            None
        }
    }
}

impl<R, F: FnMut(Option<Why>) -> Poll<R>> Future for Waiting<'_, R, F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = &mut *self;
        if this.done {
            // Polled after completion: a contract violation by the caller, answered without a panic.
            return Poll::Pending;
        }
        let q = this.deque;
        let Some(reactor) = reactor() else {
            if let Poll::Ready(r) = (this.op)(None) {
                return this.finish(r);
            }
            let source = std::io::Error::other("the thread could not be started");
            return this.give_up(Why::Failed(Error::Os {
                name: q.name().to_owned(),
                op: "starting the async reactor",
                source,
            }));
        };
        // Registered: try only when woken for it (the baton, the deadline, an interrupt).
        if let Some(id) = this.ticket {
            let due = std::mem::take(&mut this.retry) || this.past_deadline() || q.interrupt.is_interrupted();
            if !reactor.notified(id, cx.waker()) && !due {
                return Poll::Pending;
            }
        }
        for _ in 0..ROUNDS_PER_POLL {
            // The fast path first: the `try_` form, nothing registered or counted.
            if let Poll::Ready(r) = (this.op)(None) {
                return this.finish(r);
            }
            if let Some(why) = this.must_stop() {
                return this.give_up(why);
            }
            let id = match this.ticket {
                Some(id) => id,
                None => match reactor.register(q, this.cond, this.deadline, cx.waker()) {
                    Ok(id) => *this.ticket.insert(id),
                    Err(e) => return this.give_up(Why::Failed(e)),
                },
            };
            // Counted, and the sequence word read after the count: a change between the try above and the
            // count is seen by the try below, a change after it moves the word the reactor watches.
            let prepared = match reactor.prepare(id, q, this.deadline) {
                Ok(p) => p,
                Err(Blocked::Failed(e)) => return this.give_up(Why::Failed(*e)),
                Err(_) => return this.give_up(Why::Timeout),
            };
            if let Poll::Ready(r) = (this.op)(None) {
                return this.finish(r);
            }
            // About to wait for a message that no live producer will push: say so instead. A message pushed
            // before the producers were found gone is taken by the try after the look.
            if this.cond == Cond::Message && q.seg.producers_gone(&q.own) {
                if let Poll::Ready(r) = (this.op)(None) {
                    return this.finish(r);
                }
                return this.give_up(Why::ProducersGone);
            }
            if reactor.arm(&prepared, cx.waker()) {
                return Poll::Pending;
            }
        }
        // The deque keeps changing under this future: let others run, and try again on the next poll.
        this.retry = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<R, F> Drop for Waiting<'_, R, F> {
    fn drop(&mut self) {
        if let (Some(id), Some(reactor)) = (self.ticket.take(), reactor()) {
            reactor.leave(id);
        }
    }
}

/// The error of a pop that gives up.
pub(crate) fn pop_error(why: Why) -> PopError {
    match why {
        Why::Timeout => PopError::Timeout,
        Why::Interrupted => PopError::Interrupted,
        Why::ProducersGone => PopError::ProducersGone,
        Why::Failed(e) => PopError::Failed(e),
    }
}

/// The error of a push that gives up, handing `value` back.
pub(crate) fn push_error<M>(why: Why, value: M) -> PushError<M> {
    match why {
        // Only a wait for a message ends with producers gone.
        Why::Timeout | Why::ProducersGone => PushError::Timeout(value),
        Why::Interrupted => PushError::Interrupted(value),
        Why::Failed(error) => PushError::Failed { value, error },
    }
}

/// Generates the two async forms of one operation: `x_async`, which waits as long as it takes, and
/// `x_deadline_async`, which gives up at an instant (the reactor keeps the deadline: no runtime timer).
///
/// ```text
/// async_forms! {
///     /// Docs of `x_async`.
///     pub fn [x_async, x_deadline_async] [generics] (&self, data: T) [, closure: F] -> Ret
///         where deadline => body using `deadline: Option<Instant>`;
///         cancel: "what dropping the pending future does";
/// }
/// ```
macro_rules! async_forms {
    ($(
        $(#[$doc:meta])*
        $vis:vis fn [$fn:ident, $deadline_fn:ident] [$($gen:tt)*]
        (&$s:ident $(, $arg:ident: $ty:ty)*) [$(, $tail:ident: $tail_ty:ty)*] -> $ret:ty
        where $deadline:ident => $body:expr;
        cancel: $cancel:literal;
    )*) => {$(
        $(#[$doc])*
        #[doc = ""]
        #[doc = "# Cancel safety"]
        #[doc = ""]
        #[doc = $cancel]
        $vis fn $fn<$($gen)*>(&$s $(, $arg: $ty)* $(, $tail: $tail_ty)*)
            -> impl std::future::Future<Output = $ret>
        {
            let $deadline: Option<std::time::Instant> = None;
            $body
        }

        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), giving up at `deadline` \
            (a deadline already past still makes one attempt). The process's reactor keeps the deadline, so \
            this needs no timer from the runtime; a runtime's own timeout around \
            [`", stringify!($fn), "`](Self::", stringify!($fn), ") works as well.")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), plus `Timeout` when the \
            time is up.")]
        #[doc = ""]
        #[doc = "# Cancel safety"]
        #[doc = ""]
        #[doc = $cancel]
        $vis fn $deadline_fn<$($gen)*>(
            &$s $(, $arg: $ty)*, deadline: std::time::Instant $(, $tail: $tail_ty)*
        ) -> impl std::future::Future<Output = $ret> {
            let $deadline = Some(deadline);
            $body
        }
    )*};
}

pub(crate) use async_forms;

/// The operation of a single push of `n` bytes that `fill` writes.
fn push_op(
    q: &RawDeque,
    end: End,
    n: usize,
    fill: impl FnOnce(&mut [u8]),
) -> impl FnMut(Option<Why>) -> Poll<Result<(), PushError<()>>> {
    let mut fill = Some(fill);
    move |why| match why {
        None => {
            let fill = |slot: &mut [u8]| {
                if let Some(f) = fill.take() {
                    f(slot)
                }
            };
            match q.push_with(end, n, fill, Wait::Now) {
                Err(PushError::Full(())) => Poll::Pending,
                r => Poll::Ready(r),
            }
        }
        Some(why) => Poll::Ready(Err(push_error(why, ()))),
    }
}

/// The operation of a batch push that goes on until all of `count` messages are in, waiting for room in
/// between; `msg(i)` is the i-th.
pub(crate) fn push_many_op<'m>(
    q: &RawDeque,
    end: End,
    count: usize,
    msg: impl Fn(usize) -> &'m [u8],
) -> impl FnMut(Option<Why>) -> Poll<Result<usize, PushError<usize>>> {
    let mut done = 0;
    move |why| match why {
        None => match q.push_many_with(end, count - done, |i| msg(done + i), Wait::Now) {
            Ok(n) => {
                done += n;
                if done >= count { Poll::Ready(Ok(done)) } else { Poll::Pending }
            }
            Err(PushError::Full(0)) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e.map(|n| done + n))),
        },
        Some(why) => Poll::Ready(Err(push_error(why, done))),
    }
}

/// The operation of a single pop that hands the message to `read` in place.
fn pop_op<R>(
    q: &RawDeque,
    end: End,
    read: impl FnOnce(&[u8]) -> R,
) -> impl FnMut(Option<Why>) -> Poll<Result<R, PopError>> {
    let mut read = Some(read);
    move |why| match why {
        None => match q.pop_with(end, |m| read.take().map(|f| f(m)), Wait::Now) {
            Err(PopError::Empty) => Poll::Pending,
            Ok(Some(r)) => Poll::Ready(Ok(r)),
            Ok(None) => Poll::Ready(Err(PopError::Failed(q.corrupted("a message was read twice")))),
            Err(e) => Poll::Ready(Err(e)),
        },
        Some(why) => Poll::Ready(Err(pop_error(why))),
    }
}

/// The operation of a batch pop of up to `max` messages, each handed to `read` in place.
fn pop_many_op(
    q: &RawDeque,
    end: End,
    max: usize,
    mut read: impl FnMut(&[u8]),
) -> impl FnMut(Option<Why>) -> Poll<Result<usize, PopError>> {
    move |why| match why {
        None => match q.pop_many_with(
            end,
            max,
            |m| {
                read(m);
                Ok::<_, PopError>(())
            },
            Wait::Now,
        ) {
            Err(PopError::Empty) => Poll::Pending,
            r => Poll::Ready(r),
        },
        Some(why) => Poll::Ready(Err(pop_error(why))),
    }
}

/// The `_async` forms (cargo feature `async`): futures that complete with the results and errors of the
/// blocking forms, for any executor. A waiting task costs no thread and no CPU: the process's reactor
/// thread sleeps in the kernel for every waiter of every deque and wakes the tasks whose condition may have
/// changed. See the README, "Async".
impl RawDeque {
    async_forms! {
        /// Pushes a message at the back, waiting asynchronously for room: the async form of
        /// [`push_back`](Self::push_back).
        ///
        /// # Examples
        ///
        /// ```
        /// # let name = format!("doc-push-async-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(1).slot_size(16).open_raw()?;
        /// futures_executor::block_on(async {
        ///     q.push_back_async(b"first").await?;
        ///     // Full now: a second push waits until some process pops.
        ///     let (pushed, popped) = futures_util::join!(q.push_back_async(b"second"), q.pop_front_async());
        ///     pushed?;
        ///     assert_eq!(popped?, b"first");
        ///     assert_eq!(q.pop_front_async().await?, b"second");
        ///     Ok::<(), Box<dyn std::error::Error>>(())
        /// })?;
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// As [`push_back`](Self::push_back): `Closed`, `TooLarge`, `Interrupted`, `Failed`, each handing the
        /// message back.
        pub fn [push_back_async, push_back_deadline_async] ['m]
            (&self, msg: &'m [u8]) [] -> Result<(), PushError<&'m [u8]>>
            where deadline => {
                let mut op = push_op(self, End::Back, msg.len(), |b| b.copy_from_slice(msg));
                Waiting::new(self, Cond::Room, deadline, move |why| op(why).map(|r| r.map_err(|e| e.map(|()| msg))))
            };
            cancel: "Cancel-safe: the message is pushed in the poll that returns `Ready`, and a future dropped \
                before that pushed nothing (the caller still has the message) and left no registration or \
                sleeper count behind.";

        /// Pushes a message at the front, waiting asynchronously for room: the async form of
        /// [`push_front`](Self::push_front).
        ///
        /// # Errors
        /// As [`push_back_async`](Self::push_back_async).
        pub fn [push_front_async, push_front_deadline_async] ['m]
            (&self, msg: &'m [u8]) [] -> Result<(), PushError<&'m [u8]>>
            where deadline => {
                let mut op = push_op(self, End::Front, msg.len(), |b| b.copy_from_slice(msg));
                Waiting::new(self, Cond::Room, deadline, move |why| op(why).map(|r| r.map_err(|e| e.map(|()| msg))))
            };
            cancel: "As [`push_back_async`](Self::push_back_async).";

        /// Pushes an `n`-byte message at the back that `fill` writes in place, waiting asynchronously for room:
        /// the async form of [`push_back_with`](Self::push_back_with). `fill` runs once, under the lock, in
        /// the poll that pushes.
        ///
        /// # Errors
        /// As [`push_back_with`](Self::push_back_with).
        pub fn [push_back_with_async, push_back_with_deadline_async] []
            (&self, n: usize) [, fill: impl FnOnce(&mut [u8])] -> Result<(), PushError<()>>
            where deadline => Waiting::new(self, Cond::Room, deadline, push_op(self, End::Back, n, fill));
            cancel: "Cancel-safe: `fill` runs and the message is pushed in the poll that returns `Ready`; a \
                future dropped before that pushed nothing and never ran `fill`.";

        /// As [`push_back_with_async`](Self::push_back_with_async), at the front.
        ///
        /// # Errors
        /// As [`push_back_with`](Self::push_back_with).
        pub fn [push_front_with_async, push_front_with_deadline_async] []
            (&self, n: usize) [, fill: impl FnOnce(&mut [u8])] -> Result<(), PushError<()>>
            where deadline => Waiting::new(self, Cond::Room, deadline, push_op(self, End::Front, n, fill));
            cancel: "As [`push_back_with_async`](Self::push_back_with_async).";

        /// Pushes all of `msgs` at the back in order, waiting asynchronously for room in between: the async
        /// form of [`push_back_many`](Self::push_back_many). Returns `msgs.len()`.
        ///
        /// # Errors
        /// As [`push_back_many`](Self::push_back_many); the value carried is the number pushed before the
        /// error.
        pub fn [push_back_many_async, push_back_many_deadline_async] [M: AsRef<[u8]>]
            (&self, msgs: &[M]) [] -> Result<usize, PushError<usize>>
            where deadline => Waiting::new(self, Cond::Room, deadline,
                push_many_op(self, End::Back, msgs.len(), |i| msgs[i].as_ref()));
            cancel: "Not cancel-safe as a whole, like tokio's `write_all`: messages are pushed stretch by \
                stretch as room appears, and a future dropped part-way leaves those pushed so far in the \
                deque without saying how many. No registration or sleeper count is left behind. Where that \
                matters, push one message at a time, or use `try_push_back_many`, which says how many it \
                pushed.";

        /// As [`push_back_many_async`](Self::push_back_many_async), at the front (the last ends up
        /// frontmost).
        ///
        /// # Errors
        /// As [`push_back_many`](Self::push_back_many).
        pub fn [push_front_many_async, push_front_many_deadline_async] [M: AsRef<[u8]>]
            (&self, msgs: &[M]) [] -> Result<usize, PushError<usize>>
            where deadline => Waiting::new(self, Cond::Room, deadline,
                push_many_op(self, End::Front, msgs.len(), |i| msgs[i].as_ref()));
            cancel: "As [`push_back_many_async`](Self::push_back_many_async).";

        /// Removes the front message, waiting asynchronously for one: the async form of
        /// [`pop_front`](Self::pop_front).
        ///
        /// # Examples
        ///
        /// ```
        /// use std::time::{Duration, Instant};
        /// # let name = format!("doc-pop-async-{}", std::process::id());
        /// let q = shmdeque::Builder::new(&name).capacity(4).slot_size(16).open_raw()?;
        /// futures_executor::block_on(async {
        ///     q.push_back(b"ready")?;
        ///     assert_eq!(q.pop_front_async().await?, b"ready");
        ///     // Nothing more: give up after 10 ms.
        ///     let late = Instant::now() + Duration::from_millis(10);
        ///     assert!(q.pop_front_deadline_async(late).await.unwrap_err().is_timeout());
        ///     Ok::<(), Box<dyn std::error::Error>>(())
        /// })?;
        /// # shmdeque::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// As [`pop_front`](Self::pop_front): `Closed` once closed and drained, `ProducersGone`,
        /// `Interrupted`, `Failed`.
        pub fn [pop_front_async, pop_front_deadline_async] []
            (&self) [] -> Result<Vec<u8>, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_op(self, End::Front, <[u8]>::to_vec));
            cancel: "Cancel-safe: a future that completed removed its message in the poll that returned it; \
                one dropped before completing removed none, and left no registration or sleeper count behind. \
                Use it in `select!` or under a timeout without losing a message.";

        /// Removes the back message, waiting asynchronously for one: the async form of
        /// [`pop_back`](Self::pop_back).
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_back_async, pop_back_deadline_async] []
            (&self) [] -> Result<Vec<u8>, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_op(self, End::Back, <[u8]>::to_vec));
            cancel: "As [`pop_front_async`](Self::pop_front_async).";

        /// Removes the front message into `buf` (cleared first), waiting asynchronously for one; returns its
        /// length: the async form of [`pop_front_into`](Self::pop_front_into). On an error `buf` is left as
        /// it was.
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_front_into_async, pop_front_into_deadline_async] []
            (&self, buf: &mut Vec<u8>) [] -> Result<usize, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_into_op(self, End::Front, buf));
            cancel: "As [`pop_front_async`](Self::pop_front_async): `buf` changes only in the poll that \
                completes.";

        /// As [`pop_front_into_async`](Self::pop_front_into_async), at the back.
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_back_into_async, pop_back_into_deadline_async] []
            (&self, buf: &mut Vec<u8>) [] -> Result<usize, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_into_op(self, End::Back, buf));
            cancel: "As [`pop_front_into_async`](Self::pop_front_into_async).";

        /// Removes the front message, handing it to `read` in place, waiting asynchronously for one; returns
        /// what `read` returned: the async form of [`pop_front_with`](Self::pop_front_with). `read` runs once,
        /// under the lock, in the poll that pops.
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_front_with_async, pop_front_with_deadline_async] [R]
            (&self) [, read: impl FnOnce(&[u8]) -> R] -> Result<R, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_op(self, End::Front, read));
            cancel: "Cancel-safe: `read` runs and the message is removed in the poll that returns `Ready`; a \
                future dropped before that removed nothing and never ran `read`.";

        /// As [`pop_front_with_async`](Self::pop_front_with_async), at the back.
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_back_with_async, pop_back_with_deadline_async] [R]
            (&self) [, read: impl FnOnce(&[u8]) -> R] -> Result<R, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_op(self, End::Back, read));
            cancel: "As [`pop_front_with_async`](Self::pop_front_with_async).";

        /// Removes up to `max` messages from the front under one lock acquisition, appending them to `out`,
        /// waiting asynchronously for the first; returns how many: the async form of
        /// [`pop_front_many`](Self::pop_front_many).
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_front_many_async, pop_front_many_deadline_async] []
            (&self, max: usize, out: &mut Vec<Vec<u8>>) [] -> Result<usize, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline,
                pop_many_op(self, End::Front, max, |m| out.push(m.to_vec())));
            cancel: "Cancel-safe: the messages are removed and appended to `out` in the poll that returns \
                `Ready`; a future dropped before that removed none.";

        /// As [`pop_front_many_async`](Self::pop_front_many_async), from the back (back-most first).
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_back_many_async, pop_back_many_deadline_async] []
            (&self, max: usize, out: &mut Vec<Vec<u8>>) [] -> Result<usize, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline,
                pop_many_op(self, End::Back, max, |m| out.push(m.to_vec())));
            cancel: "As [`pop_front_many_async`](Self::pop_front_many_async).";

        /// Removes up to `max` messages from the front under one lock acquisition, handing each to `read` in
        /// place, waiting asynchronously for the first; returns how many: the async form of
        /// [`pop_front_many_with`](Self::pop_front_many_with).
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_front_many_with_async, pop_front_many_with_deadline_async] []
            (&self, max: usize) [, read: impl FnMut(&[u8])] -> Result<usize, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_many_op(self, End::Front, max, read));
            cancel: "Cancel-safe: `read` runs and the messages are removed in the poll that returns `Ready`; a \
                future dropped before that removed none and never ran `read`.";

        /// As [`pop_front_many_with_async`](Self::pop_front_many_with_async), from the back (back-most first).
        ///
        /// # Errors
        /// As [`pop_front_async`](Self::pop_front_async).
        pub fn [pop_back_many_with_async, pop_back_many_with_deadline_async] []
            (&self, max: usize) [, read: impl FnMut(&[u8])] -> Result<usize, PopError>
            where deadline => Waiting::new(self, Cond::Message, deadline, pop_many_op(self, End::Back, max, read));
            cancel: "As [`pop_front_many_with_async`](Self::pop_front_many_with_async).";
    }
}

/// The operation of a pop into the caller's buffer.
fn pop_into_op(q: &RawDeque, end: End, buf: &mut Vec<u8>) -> impl FnMut(Option<Why>) -> Poll<Result<usize, PopError>> {
    move |why| match why {
        None => {
            let fill = |m: &[u8]| {
                buf.clear();
                buf.extend_from_slice(m);
                m.len()
            };
            match q.pop_with(end, fill, Wait::Now) {
                Err(PopError::Empty) => Poll::Pending,
                r => Poll::Ready(r),
            }
        }
        Some(why) => Poll::Ready(Err(pop_error(why))),
    }
}
