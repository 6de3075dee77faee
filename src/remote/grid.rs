//! The byte grid that [`RedisDeque`](super::RedisDeque) and [`AnyDeque`](super::AnyDeque) share, written
//! once: push and pop at both ends, one message or many, copied out, into the caller's buffer or handed to
//! a closure, each in the four wait forms of [`wait_forms!`](crate::grid::wait_forms).

/// Generates the byte grid inside an `impl` whose type has the bodies `push_one(end, msg, wait)`,
/// `push_many(end, msgs, wait)`, `pop_one(end, wait, read)`, `pop_into(end, buf, wait)`,
/// `pop_vecs(end, max, out, wait)` and `pop_each(end, max, read, wait)`. `push_errors` and `pop_errors`
/// are the `# Errors` texts of `push_back` and `pop_front`, to which the other operations refer.
macro_rules! byte_grid {
    (push_errors: $push_errors:literal, pop_errors: $pop_errors:literal $(,)?) => {
        $crate::grid::wait_forms! {
            /// Pushes a message at the back, waiting for room as long as it takes.
            ///
            /// # Errors
            #[doc = $push_errors]
            pub fn [try_push_back, push_back, push_back_timeout, push_back_deadline] ['m]
                (&self, msg: &'m [u8]) [] -> Result<(), PushError<&'m [u8]>>
                where wait => self.push_one(End::Back, msg, wait);
                now: "[`PushError::Full`] if there is no room", late: "[`PushError::Timeout`]";

            /// Pushes a message at the front, waiting for room as long as it takes.
            ///
            /// # Errors
            /// As [`push_back`](Self::push_back).
            pub fn [try_push_front, push_front, push_front_timeout, push_front_deadline] ['m]
                (&self, msg: &'m [u8]) [] -> Result<(), PushError<&'m [u8]>>
                where wait => self.push_one(End::Front, msg, wait);
                now: "[`PushError::Full`] if there is no room", late: "[`PushError::Timeout`]";

            /// Pushes all of `msgs` at the back in order, waiting for room in between (on Redis, as many as
            /// fit per round trip); returns `msgs.len()`. The `try_` form pushes what fits now (at least one).
            ///
            /// # Errors
            /// [`PushError::TooLarge`] (nothing pushed) if any message is too large; otherwise as
            /// [`push_back`](Self::push_back). The value carried is the number pushed before the error.
            pub fn [try_push_back_many, push_back_many, push_back_many_timeout, push_back_many_deadline]
                [M: AsRef<[u8]>] (&self, msgs: &[M]) [] -> Result<usize, PushError<usize>>
                where wait => self.push_many(End::Back, msgs, wait);
                now: "[`PushError::Full`]`(0)` if none fit", late: "[`PushError::Timeout`] with the count pushed";

            /// Pushes `msgs` one after another at the front (the last ends up frontmost).
            ///
            /// # Errors
            /// As [`push_back_many`](Self::push_back_many).
            pub fn [try_push_front_many, push_front_many, push_front_many_timeout, push_front_many_deadline]
                [M: AsRef<[u8]>] (&self, msgs: &[M]) [] -> Result<usize, PushError<usize>>
                where wait => self.push_many(End::Front, msgs, wait);
                now: "[`PushError::Full`]`(0)` if none fit", late: "[`PushError::Timeout`] with the count pushed";

            /// Removes the front message, waiting for one as long as it takes.
            ///
            /// # Errors
            #[doc = $pop_errors]
            pub fn [try_pop_front, pop_front, pop_front_timeout, pop_front_deadline] []
                (&self) [] -> Result<Vec<u8>, PopError>
                where wait => self.pop_one(End::Front, wait, <[u8]>::to_vec);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// Removes the back message, waiting for one as long as it takes.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_back, pop_back, pop_back_timeout, pop_back_deadline] []
                (&self) [] -> Result<Vec<u8>, PopError>
                where wait => self.pop_one(End::Back, wait, <[u8]>::to_vec);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// Removes the front message into `buf` (cleared first), waiting for one; returns its length.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_front_into, pop_front_into, pop_front_into_timeout, pop_front_into_deadline] []
                (&self, buf: &mut Vec<u8>) [] -> Result<usize, PopError>
                where wait => self.pop_into(End::Front, buf, wait);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// As [`pop_front_into`](Self::pop_front_into), at the back.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_back_into, pop_back_into, pop_back_into_timeout, pop_back_into_deadline] []
                (&self, buf: &mut Vec<u8>) [] -> Result<usize, PopError>
                where wait => self.pop_into(End::Back, buf, wait);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// Removes the front message and hands it to `read`, waiting for one; returns what `read`
            /// returned. On shared memory `read` sees the message in its slot; on Redis, the received copy,
            /// after the message was acknowledged.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_front_with, pop_front_with, pop_front_with_timeout, pop_front_with_deadline] [R]
                (&self) [, read: impl FnOnce(&[u8]) -> R] -> Result<R, PopError>
                where wait => self.pop_one(End::Front, wait, read);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// As [`pop_front_with`](Self::pop_front_with), at the back.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_back_with, pop_back_with, pop_back_with_timeout, pop_back_with_deadline] [R]
                (&self) [, read: impl FnOnce(&[u8]) -> R] -> Result<R, PopError>
                where wait => self.pop_one(End::Back, wait, read);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// Removes up to `max` messages from the front at once (on Redis, in one round trip while the
            /// deque has a backlog), appending them to `out`, waiting as long as it takes for the first;
            /// returns how many.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_front_many, pop_front_many, pop_front_many_timeout, pop_front_many_deadline] []
                (&self, max: usize, out: &mut Vec<Vec<u8>>) [] -> Result<usize, PopError>
                where wait => self.pop_vecs(End::Front, max, out, wait);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// As [`pop_front_many`](Self::pop_front_many), from the back (back-most first).
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_back_many, pop_back_many, pop_back_many_timeout, pop_back_many_deadline] []
                (&self, max: usize, out: &mut Vec<Vec<u8>>) [] -> Result<usize, PopError>
                where wait => self.pop_vecs(End::Back, max, out, wait);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// As [`pop_front_many`](Self::pop_front_many), handing each message to `read` instead.
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_front_many_with, pop_front_many_with, pop_front_many_with_timeout,
                    pop_front_many_with_deadline] []
                (&self, max: usize) [, read: impl FnMut(&[u8])] -> Result<usize, PopError>
                where wait => self.pop_each(End::Front, max, read, wait);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";

            /// As [`pop_front_many_with`](Self::pop_front_many_with), from the back (back-most first).
            ///
            /// # Errors
            /// As [`pop_front`](Self::pop_front).
            pub fn [try_pop_back_many_with, pop_back_many_with, pop_back_many_with_timeout,
                    pop_back_many_with_deadline] []
                (&self, max: usize) [, read: impl FnMut(&[u8])] -> Result<usize, PopError>
                where wait => self.pop_each(End::Back, max, read, wait);
                now: "[`PopError::Empty`] if there is none", late: "[`PopError::Timeout`]";
        }
    };
}

pub(crate) use byte_grid;
