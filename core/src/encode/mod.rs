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

/// The key last seen at a field position: its address and its slot (`Fit` has the rest).
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// `Arc::as_ptr` of the key; 0: nothing seen. Only ever set from a slot holding that
    /// `Arc` (so no other key can have the address while the entry stands), and cleared
    /// before the slot gives it up (`KeyCache::find`).
    addr: usize,
    slot: u8,
}

/// What the usual lookup reads of a position's key, together in 64 bytes (an entry's address
/// is the row's plus the position shifted): one compare, a length and the form.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Fit {
    /// `Seen::addr` when the form fits in `PAD` bytes (`form` holds it), else 0.
    addr: usize,
    /// The form's length (255 for any longer): a `u8`, so offsets from it are known small.
    len: u8,
    /// The form when `len <= PAD`, padded with zeros; otherwise the slot has it.
    form: [u8; PAD],
}

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
    /// The key last seen at each field position: records of one parser mostly have the same
    /// keys in the same places, so this is the first place to look.
    row: [Seen; ROW],
    /// The forms of `row`'s keys, and which fit in `PAD` bytes.
    fits: [Fit; ROW],
    /// Where the LogGroup encoder puts a record together before appending it to the batch
    /// (`loggroup::encode_log_cached`; allocated with its first record, 4 KiB).
    scratch: Option<Box<[u8; loggroup::SCRATCH]>>,
    /// The LogGroup head of the last record (`loggroup::head`): records of one second in a
    /// row share it.
    head: Option<(u32, loggroup::Head)>,
}

fn addr(key: &Key) -> usize {
    Arc::as_ptr(key).cast::<u8>() as usize
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

    /// `padded`'s answer when the key is the one last seen at `pos` and its form fits in
    /// `PAD` bytes (the usual field), else None: one compare, and a length the caller knows
    /// to be under 256 (offsets from it into a window sized for that need no bounds checks;
    /// a fitting form is at most `PAD`).
    /// A position past the row looks at the entry of `pos % ROW`: an entry answers only for
    /// its own key, wherever it is found.
    #[inline(always)]
    pub fn short(&self, pos: usize, key: &Key) -> Option<(&[u8; PAD], usize)> {
        let f = &self.fits[pos % ROW];
        (f.addr == addr(key)).then_some((&f.form, usize::from(f.len)))
    }

    /// `get`'s form followed by zeros up to `PAD` bytes at least, and the form's length.
    #[inline]
    pub fn padded(&mut self, pos: usize, key: &Key, make: fn(&str) -> Vec<u8>) -> (&[u8], usize) {
        let hit = matches!(self.row.get(pos), Some(seen) if seen.addr == addr(key));
        let i = if hit {
            match (self.row.get(pos), self.fits.get(pos)) {
                (_, Some(f)) if usize::from(f.len) <= PAD => return (&f.form, usize::from(f.len)),
                (Some(seen), _) => usize::from(seen.slot),
                _ => return (&[], 0), // never: `hit`
            }
        } else {
            self.miss(pos, key, make)
        };
        match self
            .slots
            .as_deref()
            .and_then(|slots| slots[i % SLOTS].as_ref())
        {
            Some((_, bytes, len)) => (bytes, *len),
            None => (&[], 0), // never: slot i holds the key (seen, or just filled)
        }
    }

    /// The key is not where its position's last key was: look it up (or fill a slot) and
    /// remember it for the position; its slot.
    #[cold]
    #[inline(never)]
    fn miss(&mut self, pos: usize, key: &Key, make: fn(&str) -> Vec<u8>) -> usize {
        let slots = self
            .slots
            .get_or_insert_with(|| Box::new(std::array::from_fn(|_| None)));
        let i = Self::find(slots, &mut self.row, &mut self.fits, key, make);
        if let (Some(seen), Some((k, form, len))) = (self.row.get_mut(pos), &slots[i]) {
            *seen = Seen {
                addr: addr(k),
                slot: i as u8,
            };
            if let Some(f) = self.fits.get_mut(pos) {
                *f = Fit {
                    addr: if *len <= PAD { addr(k) } else { 0 },
                    len: u8::try_from(*len).unwrap_or(u8::MAX),
                    form: form.first_chunk().copied().unwrap_or_default(),
                };
            }
        }
        i
    }

    /// The slot of `key`, filled by `make` if it is not in the table (the positions that
    /// remembered a key it replaces forget it).
    fn find(
        slots: &mut [Slot; SLOTS],
        row: &mut [Seen; ROW],
        fits: &mut [Fit; ROW],
        key: &Key,
        make: fn(&str) -> Vec<u8>,
    ) -> usize {
        let addr = addr(key);
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
        for (seen, fit) in row.iter_mut().zip(fits.iter_mut()) {
            if usize::from(seen.slot) == i {
                seen.addr = 0;
                fit.addr = 0;
            }
        }
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
