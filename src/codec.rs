//! The one place that turns typed messages into bytes and back: bincode 2 with its serde support and the
//! standard configuration (variable-length integers, little-endian).
//!
//! Decoding goes through serde's visitors, which cap how much they preallocate from a length read off the
//! message, so a hostile length prefix cannot make the decoder reserve huge amounts of memory; and the
//! input is one slot, so nothing can be read past it.

use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

thread_local! {
    /// Reused encode buffer, so a typed push does not allocate.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `value` into this thread's scratch buffer and hands the bytes to `f`.
pub(crate) fn with_encoded<T: Serialize, R>(value: &T, f: impl FnOnce(&[u8]) -> R) -> Result<R, String> {
    // `take` rather than `borrow_mut`: a nested call (an encode inside `f`) gets a fresh buffer, no panic.
    let mut buf = SCRATCH.with(|s| s.take());
    buf.clear();
    let r = bincode::serde::encode_into_std_write(value, &mut buf, bincode::config::standard())
        .map(|_| f(&buf))
        .map_err(|e| e.to_string());
    SCRATCH.with(|s| s.replace(buf));
    r
}

/// Encodes `value` at the end of `out`.
pub(crate) fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Decodes a whole message; trailing bytes are an error, since they mean the message was not a `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes after the value", bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        tag: String,
    }

    #[test]
    fn round_trip_and_rejects() {
        let p = Point { x: -3, tag: "a".into() };
        let bytes = with_encoded(&p, <[u8]>::to_vec).unwrap();
        assert_eq!(decode::<Point>(&bytes).unwrap(), p);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<Point>(&longer).unwrap_err().contains("trailing"));
        assert!(decode::<Point>(&bytes[..1]).is_err());
        // A length prefix claiming ~2^60 bytes must fail, not allocate.
        assert!(decode::<Vec<u8>>(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).is_err());
    }
}
