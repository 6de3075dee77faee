//! Synthetic, self-checking test messages: what `producer --count` sends and `consumer --verify` checks,
//! and what the tests and benchmarks use, so every tool agrees on one format.
//!
//! A message is exactly the requested size (at least [`MIN_SIZE`] bytes) of printable ASCII without
//! newlines, so it also survives line-based transports:
//!
//! ```text
//! bytes 0..8    producer id, 8 lowercase hex digits
//! bytes 8..24   sequence number, 16 lowercase hex digits
//! bytes 24..32  checksum of every other byte, 8 lowercase hex digits
//! bytes 32..    filler: a run of the printable characters '!'..='~' starting at a point derived from
//!               producer and sequence number
//! ```
//!
//! The checksum is FNV-1a over 64-bit little-endian words (then the tail bytes), folded to 32 bits: word
//! at a time so that making and checking messages stays cheap next to the transport being measured.
//!
//! ```
//! use shmdeque_synth as synth;
//! let msg = synth::make(7, 42, 64);
//! assert_eq!(msg.len(), 64);
//! assert_eq!(synth::check(&msg), Ok(synth::Stamp { producer: 7, seq: 42 }));
//! let mut bad = msg.clone();
//! bad[40] ^= 1;
//! assert!(synth::check(&bad).is_err());
//! ```

use std::collections::HashMap;
use std::fmt;

/// The smallest synthetic message: id, sequence number and checksum.
pub const MIN_SIZE: usize = 32;

const CHECK: std::ops::Range<usize> = 24..32;

/// Who sent a synthetic message and its place in that producer's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The producer's id.
    pub producer: u32,
    /// The message's sequence number within that producer.
    pub seq: u64,
}

fn hex(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
}

fn unhex(s: &[u8]) -> Option<u64> {
    // Lowercase only, as written: an uppercase digit means a flipped bit.
    s.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | d as u64)
    })
}

fn checksum(msg: &[u8]) -> u32 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mix = |h: u64, word: u64| (h ^ word).wrapping_mul(PRIME);
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in [&msg[..CHECK.start], &msg[CHECK.end..]] {
        let mut words = part.chunks_exact(8);
        for w in &mut words {
            h = mix(h, u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        for &b in words.remainder() {
            h = mix(h, b as u64);
        }
    }
    (h ^ h >> 32) as u32
}

/// The printable characters twice over, so that any run of up to 94 starting anywhere is one slice.
const ALPHABET: [u8; 188] = {
    let mut a = [0u8; 188];
    let mut i = 0;
    while i < 188 {
        a[i] = b'!' + (i % 94) as u8;
        i += 1;
    }
    a
};

/// Writes the message of `producer` number `seq` into `buf`, which must be at least [`MIN_SIZE`] bytes; the
/// message is exactly `buf.len()` bytes long. Suits in-place pushes.
///
/// # Panics
/// If `buf` is shorter than [`MIN_SIZE`]: callers check sizes when they parse their input.
pub fn fill(buf: &mut [u8], producer: u32, seq: u64) {
    assert!(buf.len() >= MIN_SIZE, "synthetic messages are at least {MIN_SIZE} bytes");
    hex(&mut buf[0..8], producer as u64);
    hex(&mut buf[8..24], seq);
    let start = (seq.wrapping_mul(31).wrapping_add(producer as u64) % 94) as usize;
    for chunk in buf[CHECK.end..].chunks_mut(94) {
        chunk.copy_from_slice(&ALPHABET[start..start + chunk.len()]);
    }
    let sum = checksum(buf);
    hex(&mut buf[CHECK], sum as u64);
}

/// The message of `producer` number `seq`, `size` bytes long (at least [`MIN_SIZE`]).
///
/// # Panics
/// If `size < MIN_SIZE`.
pub fn make(producer: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    fill(&mut v, producer, seq);
    v
}

/// Checks a message's format and checksum and returns its stamp.
///
/// # Errors
/// A description of what is wrong (too short, not hex, checksum mismatch).
pub fn check(msg: &[u8]) -> Result<Stamp, String> {
    if msg.len() < MIN_SIZE {
        return Err(format!("{} bytes is shorter than a synthetic message ({MIN_SIZE} bytes)", msg.len()));
    }
    let field = |r: std::ops::Range<usize>, what: &str| {
        unhex(&msg[r]).ok_or_else(|| format!("the {what} field is not lowercase hexadecimal"))
    };
    let producer = field(0..8, "producer")? as u32;
    let seq = field(8..24, "sequence")?;
    let stored = field(CHECK, "checksum")? as u32;
    let actual = checksum(msg);
    if stored != actual {
        return Err(format!(
            "checksum mismatch in message {seq} of producer {producer}: stored {stored:08x}, computed {actual:08x}"
        ));
    }
    Ok(Stamp { producer, seq })
}

/// Checks a stream of synthetic messages as one consumer sees them: every checksum, and per producer
/// sequence numbers that increase (or, when `consecutive`, that start at 0 and go up by exactly one).
#[derive(Debug, Default)]
pub struct Verifier {
    consecutive: bool,
    next: HashMap<u32, u64>,
    count: u64,
}

/// The first bad message a [`Verifier`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// Position of the message in the stream, from 0.
    pub index: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message #{} is bad: {}", self.index, self.reason)
    }
}

impl std::error::Error for VerifyError {}

impl Verifier {
    /// A verifier; `consecutive` demands gap-free sequences (one consumer popping from the front).
    pub fn new(consecutive: bool) -> Verifier {
        Verifier { consecutive, ..Verifier::default() }
    }

    /// Checks the next message of the stream.
    ///
    /// # Errors
    /// [`VerifyError`] describing the message and the problem.
    pub fn observe(&mut self, msg: &[u8]) -> Result<Stamp, VerifyError> {
        let index = self.count;
        self.count += 1;
        let stamp = check(msg).map_err(|reason| VerifyError { index, reason })?;
        let next = self.next.entry(stamp.producer).or_insert(0);
        let ok = if self.consecutive { stamp.seq == *next } else { stamp.seq >= *next };
        if !ok {
            let want = if self.consecutive { "exactly" } else { "at least" };
            return Err(VerifyError {
                index,
                reason: format!(
                    "producer {} sent sequence {} where {want} {} was due",
                    stamp.producer, stamp.seq, next
                ),
            });
        }
        // Saturating: a hostile message may carry the largest sequence number.
        *next = stamp.seq.saturating_add(1);
        Ok(stamp)
    }

    /// How many messages have been observed.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_and_checked() {
        for size in [32, 33, 64, 1000] {
            let m = make(u32::MAX, u64::MAX - 3, size);
            assert!(m.iter().all(|b| b.is_ascii_graphic()), "{m:?}");
            assert_eq!(check(&m).unwrap(), Stamp { producer: u32::MAX, seq: u64::MAX - 3 });
        }
        assert!(check(&make(1, 2, 40)[..31]).is_err());
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let msg = make(3, 1234, 101);
        for i in 0..msg.len() {
            for bit in 0..8 {
                let mut bad = msg.clone();
                bad[i] ^= 1 << bit;
                assert!(check(&bad).is_err(), "flip of bit {bit} in byte {i} went unnoticed");
            }
        }
        let mut v = Verifier::new(false);
        v.observe(&make(1, u64::MAX, 32)).unwrap();
        assert!(v.observe(&make(1, 0, 32)).is_err());
        // Two messages of one producer differ beyond their header.
        assert_ne!(make(3, 1, 64)[32..], make(3, 2, 64)[32..]);
    }

    #[test]
    fn verifier_orders() {
        let mut v = Verifier::new(true);
        v.observe(&make(1, 0, 32)).unwrap();
        v.observe(&make(2, 0, 32)).unwrap();
        v.observe(&make(1, 1, 32)).unwrap();
        assert_eq!(v.observe(&make(1, 3, 32)).unwrap_err().index, 3);
        let mut loose = Verifier::new(false);
        loose.observe(&make(1, 5, 32)).unwrap();
        assert!(loose.observe(&make(1, 4, 32)).is_err());
    }
}
