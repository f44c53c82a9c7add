//! The output wire forms: SLS LogGroup `Logs` entries and NDJSON lines.

pub mod loggroup;
pub mod ndjson;

use crate::payload::Key;
use std::sync::Arc;

const SLOTS: usize = 64;
const PROBES: usize = 8;
/// Field positions remembered (`KeyCache::row`).
const ROW: usize = 32;

/// Encoded forms are stored padded with zeros to this many bytes at least, so a short one can
/// be copied as one fixed-size block (`KeyCache::padded`).
pub const PAD: usize = 32;

/// The key, its encoded form (padded to `PAD`), and the form's true length.
type Slot = Option<(Key, Box<[u8]>, usize)>;

/// Each key's encoded form (LogGroup: the `Key` field of a `Content`, renamed as SLS needs;
/// NDJSON: `"key":`), worked out once per key instead of once per field of every record. A
/// record's keys are clones of the few `Arc`s its parser made, so the table is keyed by the
/// `Arc`'s address; the entry holds a clone, so the address cannot be reused by another key
/// while it is cached. Every answer is checked against the key itself (same `Arc`), and a key
/// not in the table (a full neighbourhood) is just encoded again: the table only ever saves
/// work, never answers differently. Bounded: 64 entries.
#[derive(Debug, Default)]
pub struct KeyCache {
    /// Allocated with the first key (a Stream that never encodes pays nothing).
    slots: Option<Box<[Slot; SLOTS]>>,
    /// The slot of the key last seen at each field position: records of one parser mostly
    /// have the same keys in the same places, so this is the first place to look.
    row: [u8; ROW],
}

impl KeyCache {
    pub fn new() -> KeyCache {
        KeyCache::default()
    }

    /// The encoded form of `key`, the field at `pos` of its record, made by `make` the first
    /// time.
    #[inline]
    pub fn get(&mut self, pos: usize, key: &Key, make: fn(&str) -> Vec<u8>) -> &[u8] {
        let (padded, len) = self.padded(pos, key, make);
        padded.get(..len).unwrap_or_default()
    }

    /// `get`'s form followed by zeros up to `PAD` bytes at least, and the form's length.
    #[inline]
    pub fn padded(&mut self, pos: usize, key: &Key, make: fn(&str) -> Vec<u8>) -> (&[u8], usize) {
        let seen = self.row.get(pos).map(|s| usize::from(*s) % SLOTS);
        let i = match (seen, self.slots.as_deref()) {
            (Some(i), Some(slots)) if matches!(&slots[i], Some((k, _, _)) if Arc::ptr_eq(k, key)) => {
                i
            }
            _ => self.miss(pos, key, make),
        };
        match self.slots.as_deref().and_then(|slots| slots[i].as_ref()) {
            Some((_, bytes, len)) => (bytes, *len),
            None => (&[], 0), // never: slot i holds the key (checked above, or just filled)
        }
    }

    /// The key is not where its position's last key was: look it up (or fill a slot) and
    /// remember its slot for the position.
    #[cold]
    #[inline(never)]
    fn miss(&mut self, pos: usize, key: &Key, make: fn(&str) -> Vec<u8>) -> usize {
        let slots = self
            .slots
            .get_or_insert_with(|| Box::new(std::array::from_fn(|_| None)));
        let i = Self::find(slots, key, make);
        if let Some(r) = self.row.get_mut(pos) {
            *r = i as u8;
        }
        i
    }

    /// The slot of `key`, filled by `make` if it is not in the table.
    fn find(slots: &mut [Slot; SLOTS], key: &Key, make: fn(&str) -> Vec<u8>) -> usize {
        let addr = Arc::as_ptr(key).cast::<u8>() as usize;
        // Fibonacci hashing: the top bits of the address times 2^64 / phi.
        let home = ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize;
        let mut at = None;
        for p in 0..PROBES {
            let i = (home + p) % SLOTS;
            match &slots[i] {
                Some((k, _, _)) if Arc::ptr_eq(k, key) => return i,
                None if at.is_none() => at = Some(i),
                _ => {}
            }
        }
        // Not found: a free slot nearby, or the home slot gives way.
        let i = at.unwrap_or(home % SLOTS);
        let mut form = make(key);
        let len = form.len();
        form.resize(len.max(PAD), 0);
        slots[i] = Some((Arc::clone(key), form.into_boxed_slice(), len));
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(k: &str) -> Vec<u8> {
        k.to_uppercase().into_bytes()
    }

    #[test]
    fn every_key_gets_its_own_encoding_however_many_collide() {
        let mut cache = KeyCache::new();
        let keys: Vec<Key> = (0..500)
            .map(|i| Key::from(format!("k{i}").as_str()))
            .collect();
        for _ in 0..3 {
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(cache.get(i % 40, k, upper), upper(k).as_slice());
            }
        }
        // Equal texts in different Arcs, and an Arc freed and its address reused.
        for i in 0..200 {
            let k = Key::from(format!("t{i}").as_str());
            assert_eq!(cache.get(i % 3, &k, upper), upper(&k).as_slice());
        }
    }
}
