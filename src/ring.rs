//! The deque arithmetic over any byte storage: a fixed number of equal slots used as a circular buffer
//! with a head index and a length, growable at both ends.
//!
//! Nothing here knows about shared memory or locks, so it is tested against
//! `std::collections::VecDeque` (see the model test below) on a plain `Vec<u8>`. The shared deque runs the
//! very same code over the slot area of a mapped segment while it holds the segment's lock.
//!
//! Indices and lengths handed in from the segment are untrusted: [`Ring::new`] checks them, and every slot
//! length is checked when the slot is read, so a corrupted segment yields [`RingError::Corrupt`] and never an
//! out-of-bounds access.

use crate::layout::SLOT_LEN_BYTES;

/// Why a ring operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RingError {
    Full,
    Empty,
    TooLarge { len: usize, max: usize },
    Corrupt(String),
}

/// A view of `capacity` slots of `slot_size` bytes with the deque's head and length.
///
/// Invariants (established by [`Ring::new`], kept by every method): `head < capacity`, `len <= capacity`,
/// `storage.len() == capacity * slot_size`, `slot_size > SLOT_LEN_BYTES`.
pub(crate) struct Ring<S> {
    storage: S,
    slot_size: usize,
    capacity: u32,
    head: u32,
    len: u32,
}

impl<S: AsRef<[u8]>> Ring<S> {
    /// Builds a view of `capacity` slots of `slot_size` bytes, checking the geometry against the storage
    /// and the untrusted head and length against the capacity. No division: this runs for every operation.
    #[inline]
    pub(crate) fn new(storage: S, slot_size: usize, capacity: u32, head: u32, len: u32) -> Result<Self, RingError> {
        let bytes = storage.as_ref().len();
        if slot_size <= SLOT_LEN_BYTES || (capacity as usize).checked_mul(slot_size) != Some(bytes) {
            return Err(RingError::Corrupt(format!(
                "{capacity} slots of {slot_size} bytes do not make the {bytes}-byte slot area"
            )));
        }
        if head >= capacity || len > capacity {
            return Err(RingError::Corrupt(format!("head {head} / length {len} out of range for capacity {capacity}")));
        }
        Ok(Ring { storage, slot_size, capacity, head, len })
    }

    pub(crate) fn head(&self) -> u32 {
        self.head
    }

    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.slot_size - SLOT_LEN_BYTES
    }

    /// Physical slot of the `logical`-th message from the front. Requires `logical < capacity`.
    #[inline]
    fn physical(&self, logical: u32) -> u32 {
        debug_assert!(logical < self.capacity);
        // head < capacity <= 2^30 and logical < capacity, so the sum cannot overflow.
        wrap(self.head + logical, self.capacity)
    }

    /// Where the payload stored in physical slot `index` lies in the storage, with its length checked.
    #[inline]
    fn payload_range(&self, index: u32) -> Result<std::ops::Range<usize>, RingError> {
        let start = index as usize * self.slot_size;
        let len = stored_len(&self.storage.as_ref()[start..start + SLOT_LEN_BYTES]);
        if len > self.max_payload() {
            return Err(RingError::Corrupt(format!(
                "slot {index} claims a {len}-byte message, more than the {}-byte payload",
                self.max_payload()
            )));
        }
        Ok(start + SLOT_LEN_BYTES..start + SLOT_LEN_BYTES + len)
    }

    #[inline]
    fn logical_range(&self, logical: u32) -> Result<std::ops::Range<usize>, RingError> {
        if logical >= self.len {
            return Err(RingError::Empty);
        }
        self.payload_range(self.physical(logical))
    }

    /// The `logical`-th message from the front, without removing it.
    #[inline]
    pub(crate) fn get(&self, logical: u32) -> Result<&[u8], RingError> {
        Ok(&self.storage.as_ref()[self.logical_range(logical)?])
    }

    /// Checks every stored slot length; used when recovering a lock whose holder died.
    pub(crate) fn validate(&self) -> Result<(), RingError> {
        (0..self.len).try_for_each(|i| self.get(i).map(|_| ()))
    }
}

impl<'a> Ring<&'a [u8]> {
    /// As [`get`](Self::get), borrowing from the storage rather than from the view.
    pub(crate) fn get_in(&self, logical: u32) -> Result<&'a [u8], RingError> {
        let storage: &'a [u8] = self.storage;
        Ok(&storage[self.logical_range(logical)?])
    }
}

impl<S: AsRef<[u8]> + AsMut<[u8]>> Ring<S> {
    #[inline]
    fn slot_mut(&mut self, index: u32) -> &mut [u8] {
        let start = index as usize * self.slot_size;
        &mut self.storage.as_mut()[start..start + self.slot_size]
    }

    /// Adds a message of `n` bytes written by `fill` at `end`. The slot is filled before head and length
    /// change, so the caller can publish the new state with one store afterwards.
    #[inline]
    pub(crate) fn push_with(&mut self, end: End, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), RingError> {
        if n > self.max_payload() {
            return Err(RingError::TooLarge { len: n, max: self.max_payload() });
        }
        // `None` only when full: `new` checked head and length.
        let (index, head) = push_slot(end, self.head, self.len, self.capacity).ok_or(RingError::Full)?;
        write_slot(self.slot_mut(index), n, fill);
        self.head = head;
        self.len += 1;
        Ok(())
    }

    /// Removes the message at `end`, handing its bytes to `read` before the slot can be reused.
    #[inline]
    pub(crate) fn pop_with<R>(&mut self, end: End, read: impl FnOnce(&[u8]) -> R) -> Result<R, RingError> {
        let (index, head) = pop_slot(end, self.head, self.len, self.capacity).ok_or(RingError::Empty)?;
        let r = read(&self.storage.as_ref()[self.payload_range(index)?]);
        self.head = head;
        self.len -= 1;
        Ok(r)
    }

    /// Removes every message.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

/// Which end of the deque an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Front,
    Back,
}

/// Where a single push at `end` goes, from a ring word's head and length (untrusted): the physical slot to
/// fill and the head after the push. `None` if the deque is full or the word is out of range.
///
/// Shared by [`Ring::push_with`] and the locked fast path, which does the same arithmetic straight on the
/// slot area without building a view; the model test below covers both through this function.
#[inline]
pub(crate) fn push_slot(end: End, head: u32, len: u32, capacity: u32) -> Option<(u32, u32)> {
    if head >= capacity || len >= capacity {
        return None;
    }
    Some(match end {
        // head < capacity and len < capacity, so the sum is below 2 * capacity.
        End::Back => (wrap(head + len, capacity), head),
        End::Front => {
            let index = if head == 0 { capacity - 1 } else { head - 1 };
            (index, index)
        }
    })
}

/// Where a single pop at `end` reads: the physical slot and the head after the pop. `None` if the deque is
/// empty or the word is out of range. See [`push_slot`].
#[inline]
pub(crate) fn pop_slot(end: End, head: u32, len: u32, capacity: u32) -> Option<(u32, u32)> {
    if head >= capacity || len == 0 || len > capacity {
        return None;
    }
    Some(match end {
        End::Front => (head, wrap(head + 1, capacity)),
        // head < capacity and 0 < len <= capacity, so the sum is below 2 * capacity.
        End::Back => (wrap(head + len - 1, capacity), head),
    })
}

/// `i` reduced into `0..capacity`, for an `i` below twice the capacity.
#[inline]
fn wrap(i: u32, capacity: u32) -> u32 {
    if i >= capacity { i - capacity } else { i }
}

/// The message stored in `slot`, if its stored length fits the slot (the length is untrusted).
#[inline]
pub(crate) fn payload(slot: &[u8]) -> Option<&[u8]> {
    slot.get(SLOT_LEN_BYTES..SLOT_LEN_BYTES.saturating_add(stored_len(slot)))
}

/// The payload length stored at the start of `slot`: untrusted, to be checked against the payload size.
#[inline]
fn stored_len(slot: &[u8]) -> usize {
    let mut len_bytes = [0u8; SLOT_LEN_BYTES];
    len_bytes.copy_from_slice(&slot[..SLOT_LEN_BYTES]);
    u32::from_le_bytes(len_bytes) as usize
}

/// Writes the length of an `n`-byte message into `slot`, then the message itself through `fill`. Requires
/// `n <= slot.len() - SLOT_LEN_BYTES` (checked by slicing).
#[inline]
pub(crate) fn write_slot(slot: &mut [u8], n: usize, fill: impl FnOnce(&mut [u8])) {
    slot[..SLOT_LEN_BYTES].copy_from_slice(&(n as u32).to_le_bytes());
    fill(&mut slot[SLOT_LEN_BYTES..SLOT_LEN_BYTES + n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopFront,
        PopBack,
        Get(u32),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        let msg = proptest::collection::vec(any::<u8>(), 0..20);
        prop_oneof![
            4 => msg.clone().prop_map(Op::PushBack),
            3 => msg.prop_map(Op::PushFront),
            3 => Just(Op::PopFront),
            3 => Just(Op::PopBack),
            2 => (0u32..8).prop_map(Op::Get),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Random operations at both ends behave exactly as a bounded VecDeque, including the head and
        /// length carried from one view to the next as the shared deque does between lock acquisitions.
        #[test]
        fn matches_vecdeque(cap in 1u32..6, slot_size in 8usize..24, ops in proptest::collection::vec(op(), 0..200)) {
            let mut storage = vec![0u8; cap as usize * slot_size];
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let (mut head, mut len) = (0u32, 0u32);
            let max = slot_size - SLOT_LEN_BYTES;
            for op in ops {
                let mut ring = Ring::new(&mut storage[..], slot_size, cap, head, len).unwrap();
                match op {
                    Op::PushBack(m) | Op::PushFront(m) if m.len() > max => {
                        let r = ring.push_with(End::Back, m.len(), |b| b.copy_from_slice(&m));
                        prop_assert_eq!(r, Err(RingError::TooLarge { len: m.len(), max }));
                    }
                    Op::PushBack(m) => {
                        let r = ring.push_with(End::Back, m.len(), |b| b.copy_from_slice(&m));
                        if model.len() == cap as usize { prop_assert_eq!(r, Err(RingError::Full)); }
                        else { prop_assert!(r.is_ok()); model.push_back(m); }
                    }
                    Op::PushFront(m) => {
                        let r = ring.push_with(End::Front, m.len(), |b| b.copy_from_slice(&m));
                        if model.len() == cap as usize { prop_assert_eq!(r, Err(RingError::Full)); }
                        else { prop_assert!(r.is_ok()); model.push_front(m); }
                    }
                    Op::PopFront => {
                        let r = ring.pop_with(End::Front, |b| b.to_vec());
                        prop_assert_eq!(r.ok(), model.pop_front());
                    }
                    Op::PopBack => {
                        let r = ring.pop_with(End::Back, |b| b.to_vec());
                        prop_assert_eq!(r.ok(), model.pop_back());
                    }
                    Op::Get(i) => {
                        prop_assert_eq!(ring.get(i).ok().map(<[u8]>::to_vec), model.get(i as usize).cloned());
                    }
                    Op::Clear => { ring.clear(); model.clear(); }
                }
                prop_assert_eq!(ring.len() as usize, model.len());
                prop_assert!(ring.validate().is_ok());
                head = ring.head();
                len = ring.len();
            }
        }
    }

    proptest! {
        /// The straight-line push and pop of the lock guard use only `push_slot`, `pop_slot`, `write_slot`
        /// and `payload` on the slot area, with no `Ring` view: the same random operations, through those
        /// alone, behave as a bounded VecDeque too.
        #[test]
        fn fast_path_matches_vecdeque(cap in 1u32..6, ops in proptest::collection::vec(op(), 0..200)) {
            const SLOT: usize = 24;
            let mut storage = vec![0u8; cap as usize * SLOT];
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let (mut head, mut len) = (0u32, 0u32);
            let slot = |i: u32| i as usize * SLOT..(i as usize + 1) * SLOT;
            for op in ops {
                let back = matches!(op, Op::PushBack(_));
                match op {
                    Op::PushBack(m) | Op::PushFront(m) => {
                        let end = if back { End::Back } else { End::Front };
                        match push_slot(end, head, len, cap) {
                            None => prop_assert_eq!(model.len(), cap as usize),
                            Some((i, new_head)) => {
                                write_slot(&mut storage[slot(i)], m.len(), |b| b.copy_from_slice(&m));
                                (head, len) = (new_head, len + 1);
                                if end == End::Back { model.push_back(m) } else { model.push_front(m) }
                            }
                        }
                    }
                    Op::PopFront | Op::PopBack => {
                        let end = if matches!(op, Op::PopFront) { End::Front } else { End::Back };
                        let expected = if end == End::Front { model.pop_front() } else { model.pop_back() };
                        match pop_slot(end, head, len, cap) {
                            None => prop_assert_eq!(expected, None),
                            Some((i, new_head)) => {
                                prop_assert_eq!(payload(&storage[slot(i)]).map(<[u8]>::to_vec), expected);
                                (head, len) = (new_head, len - 1);
                            }
                        }
                    }
                    Op::Get(_) => {}
                    Op::Clear => { len = 0; model.clear(); }
                }
                prop_assert_eq!(len as usize, model.len());
                prop_assert!(head < cap);
            }
        }
    }

    #[test]
    fn untrusted_state_is_refused() {
        let mut storage = vec![0u8; 4 * 8];
        assert!(matches!(Ring::new(&storage[..], 8, 4, 4, 0), Err(RingError::Corrupt(_))));
        assert!(matches!(Ring::new(&storage[..], 8, 4, 0, 5), Err(RingError::Corrupt(_))));
        assert!(matches!(Ring::new(&mut storage, 7, 4, 0, 0), Err(RingError::Corrupt(_))));
        assert!(matches!(Ring::new(&storage[..], 8, 5, 0, 0), Err(RingError::Corrupt(_))));
        assert!(matches!(Ring::new(&storage[..], 4, 8, 0, 0), Err(RingError::Corrupt(_))));
        storage[..4].copy_from_slice(&100u32.to_le_bytes());
        let ring = Ring::new(&storage[..], 8, 4, 0, 1).unwrap();
        assert!(matches!(ring.get(0), Err(RingError::Corrupt(_))));
        assert!(ring.validate().is_err());
    }
}
