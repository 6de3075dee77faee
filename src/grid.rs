//! The operation grid's wait forms, written once.
//!
//! Every operation of [`RawDeque`](crate::RawDeque) and [`SharedDeque`](crate::SharedDeque) comes in four
//! forms, after crossbeam-channel's `try_send` / `send` / `send_timeout` / `send_deadline`: `try_x` returns
//! at once, `x` waits as long as it takes, `x_timeout` waits up to a duration and `x_deadline` up to an
//! instant. [`wait_forms!`] generates the four from one body that takes a `Wait`, so that they cannot drift
//! apart: the same arguments in the same order (the data, then the timeout or deadline, then a closure), the
//! same documentation pattern, the same errors.

/// Generates the four wait forms of one operation.
///
/// ```text
/// wait_forms! {
///     /// Docs of the blocking form.
///     pub fn [try_x, x, x_timeout, x_deadline] [generics] (&self, data: T) [, closure: F] -> Ret
///         where wait => body using `wait`;
///         now: "what `try_x` returns instead of waiting", late: "what the timed forms return at the end";
/// }
/// ```
macro_rules! wait_forms {
    ($(
        $(#[$doc:meta])*
        $vis:vis fn [$try_fn:ident, $fn:ident, $timeout_fn:ident, $deadline_fn:ident] [$($gen:tt)*]
        (&$s:ident $(, $arg:ident: $ty:ty)*) [$(, $tail:ident: $tail_ty:ty)*] -> $ret:ty
        where $wait:ident => $body:expr;
        now: $now:literal, late: $late:literal;
    )*) => {$(
        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), but returns at once: ", $now,
            " instead of waiting.")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), plus ", $now, ".")]
        $vis fn $try_fn<$($gen)*>(&$s $(, $arg: $ty)* $(, $tail: $tail_ty)*) -> $ret {
            let $wait = $crate::wait::Wait::Now;
            $body
        }

        $(#[$doc])*
        $vis fn $fn<$($gen)*>(&$s $(, $arg: $ty)* $(, $tail: $tail_ty)*) -> $ret {
            let $wait = $crate::wait::Wait::Forever;
            $body
        }

        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), waiting at most `timeout` (a \
            duration too long for the clock waits as long as it takes).")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), plus ", $late,
            " when the time is up.")]
        $vis fn $timeout_fn<$($gen)*>(
            &$s $(, $arg: $ty)*, timeout: std::time::Duration $(, $tail: $tail_ty)*
        ) -> $ret {
            let $wait = $crate::wait::Wait::timeout(timeout);
            $body
        }

        #[doc = concat!("As [`", stringify!($fn), "`](Self::", stringify!($fn), "), waiting until `deadline` at \
            most (a deadline already past still makes one attempt).")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("As [`", stringify!($timeout_fn), "`](Self::", stringify!($timeout_fn), ").")]
        $vis fn $deadline_fn<$($gen)*>(
            &$s $(, $arg: $ty)*, deadline: std::time::Instant $(, $tail: $tail_ty)*
        ) -> $ret {
            let $wait = $crate::wait::Wait::Until(deadline);
            $body
        }
    )*};
}

pub(crate) use wait_forms;
