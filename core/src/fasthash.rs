//! A small, fast hasher for the per-record lookups (label sets, minute cells, time caches):
//! the keys are short and not chosen by an attacker who could profit from collisions (a
//! collision only costs a comparison), so SipHash's protection is not worth its cost.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash (rustc's): one multiply and rotate per word.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fx(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for Fx {
    /// Whole words, then the tail read in place: the last 8 bytes as a word (overlapping the
    /// one before), or a short text's bytes packed into one word. No byte-by-byte copy of
    /// the tail into a word, which had cost the label sets' hash (six short texts) more than
    /// its multiplies.
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        match n {
            0 => {}
            1..=3 => {
                let byte = |at: usize| u64::from(bytes.get(at).copied().unwrap_or(0));
                self.add(byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16 | (n as u64) << 24);
            }
            4..=7 => {
                let half = |at: usize| u64::from(word4(bytes, at).unwrap_or(0));
                // The two halves decide a 4-7 byte text of a given length; a text of another
                // length with the same ends (`aaaaa`, `aaaaaa`) only costs a comparison.
                self.add(half(0) | half(n - 4) << 32);
            }
            _ => {
                let last = n - 8;
                let mut at = 0;
                while at < last {
                    self.add(word8(bytes, at).unwrap_or(0));
                    at += 8;
                }
                self.add(word8(bytes, last).unwrap_or(0));
            }
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxBuild = BuildHasherDefault<Fx>;
pub type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// The hash of a sequence of strings (each one's length is hashed too, so ("ab", "c") and
/// ("a", "bc") differ).
pub fn hash_strs(parts: &[&str]) -> u64 {
    let mut h = Fx::default();
    for p in parts {
        h.write_usize(p.len());
        h.write(p.as_bytes());
    }
    h.finish()
}

/// The 4 bytes of `s` from `at` as a word (None past the end).
#[inline]
pub(crate) fn word4(s: &[u8], at: usize) -> Option<u32> {
    let w = s.get(at..at.checked_add(4)?)?;
    <[u8; 4]>::try_from(w).ok().map(u32::from_le_bytes)
}

/// The 8 bytes of `s` from `at` as a word (None past the end).
#[inline]
fn word8(s: &[u8], at: usize) -> Option<u64> {
    let w = s.get(at..at.checked_add(8)?)?;
    <[u8; 8]>::try_from(w).ok().map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_hash_by_their_bytes_and_length() {
        let hash = |b: &[u8]| {
            let mut h = Fx::default();
            h.write(b);
            h.finish()
        };
        let texts: [&[u8]; 11] = [
            b"",
            b"a",
            b"ab",
            b"abb",
            b"abbb",
            b"abcd",
            b"abcdcd",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefghh",
            b"abcdefghabcdefgh",
        ];
        let hashes: std::collections::HashSet<u64> = texts.iter().map(|t| hash(t)).collect();
        assert_eq!(hashes.len(), texts.len());
        // Read in place: the same bytes anywhere hash alike.
        let long = b"xxabcdefghh";
        assert_eq!(hash(&long[2..]), hash(b"abcdefghh"));
        assert_eq!(hash_strs(&["ab", "c"]), hash_strs(&["ab", "c"]));
        assert_ne!(hash_strs(&["ab", "c"]), hash_strs(&["a", "bc"]));
    }
}
