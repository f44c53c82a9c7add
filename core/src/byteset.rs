//! Which bytes of a text belong to a small set of bytes, 16 bytes a step: the scans of the
//! payload walk (its separators) and of the prefix matcher (a field's stop byte). SSE2 where
//! the build has it (every x86_64 target), one byte at a time elsewhere (aarch64 hosts); a
//! test holds the two to the same answers.

/// The bytes of a text that are in a small set, in order, sixteen bytes a step: each byte is
/// read once however many stops are taken (the payload walk's separators: a scan per field,
/// or per byte, read the bytes at the fields' joins twice and paid its set-up a dozen times a
/// payload).
pub struct Stops<'m, const N: usize> {
    m: &'m [u8],
    set: [u8; N],
    /// Where the block `hits` was read from.
    block: usize,
    /// Bit i set where byte `block + i` is a stop not reported yet.
    hits: u32,
}

impl<'m, const N: usize> Stops<'m, N> {
    /// The stops of `m` at or after `from`: the bytes in `set`.
    pub fn new(m: &'m [u8], set: [u8; N], from: usize) -> Stops<'m, N> {
        Stops {
            m,
            set,
            block: from,
            hits: block_hits(m, from, set),
        }
    }
}

impl<const N: usize> Iterator for Stops<'_, N> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.hits == 0 {
            self.block += 16;
            if self.block >= self.m.len() {
                return None;
            }
            self.hits = block_hits(self.m, self.block, self.set);
        }
        let at = self.block + self.hits.trailing_zeros() as usize;
        self.hits &= self.hits - 1;
        Some(at)
    }
}

/// Where the first byte of `t` in `set` is, else `t.len()`: the first of `Stops`, found
/// without its state (the prefix matcher's field ends, mostly under 32 bytes: whole blocks
/// read in place, the last few bytes as one padded block).
#[inline]
pub fn first_of<const N: usize>(t: &[u8], set: [u8; N]) -> usize {
    let mut blocks = t.chunks_exact(16);
    let mut at = 0;
    for block in &mut blocks {
        let found = <&[u8; 16]>::try_from(block).map_or(0, |b| hits(b, set));
        if found != 0 {
            return at + found.trailing_zeros() as usize;
        }
        at += 16;
    }
    match block_hits(t, at, set) {
        0 => t.len(),
        found => at + found.trailing_zeros() as usize,
    }
}

/// Bit i set where byte `at + i` of `m` (i < 16) is in `set`; the bytes past the end of `m`
/// count as in none.
#[inline(always)]
fn block_hits<const N: usize>(m: &[u8], at: usize, set: [u8; N]) -> u32 {
    let mut block = [0u8; 16];
    let live = match m.get(at..at.saturating_add(16)) {
        Some(full) => {
            block.copy_from_slice(full);
            0xFFFF
        }
        None => {
            let tail = m.get(at..).unwrap_or_default();
            // tail.len() < 16: the lanes past it masked off (the padding may be in `set`).
            block[..tail.len()].copy_from_slice(tail);
            (1u32 << tail.len()) - 1
        }
    };
    hits(&block, set) & live
}

/// Bit i set where `block[i]` is in `set`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub fn hits<const N: usize>(block: &[u8; 16], set: [u8; N]) -> u32 {
    // SAFETY: `hits_sse2` is safe but for the target feature it needs, and this function is
    // only compiled where the build enables SSE2 (the cfg above: every x86_64 target does, it
    // is part of the architecture), so any CPU running this code has it.
    unsafe { hits_sse2(block, set) }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
pub fn hits<const N: usize>(block: &[u8; 16], set: [u8; N]) -> u32 {
    hits_scalar(block, set)
}

/// `hits` in SSE2: a compare per byte of the set and one movemask for the sixteen bytes. The
/// block is read as two words (no pointer), which the compiler turns into one load.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn hits_sse2<const N: usize>(block: &[u8; 16], set: [u8; N]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
        _mm_setzero_si128,
    };
    let (lo, hi) = block.split_at(8);
    let word = |w: &[u8]| i64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
    let v = _mm_set_epi64x(word(hi), word(lo));
    let mut found = _mm_setzero_si128();
    for b in set {
        found = _mm_or_si128(found, _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)));
    }
    // movemask fills the low 16 bits only: never negative.
    _mm_movemask_epi8(found) as u32
}

/// `hits` a byte at a time: the version of other targets, and the tests' reference.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
pub fn hits_scalar<const N: usize>(block: &[u8; 16], set: [u8; N]) -> u32 {
    let mut bits = 0;
    for (i, b) in block.iter().enumerate() {
        if set.contains(b) {
            bits |= 1 << i;
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_the_separators_and_newlines_as_a_scan_finds_them() {
        let mut g = crate::testgen::Gen(0x2545_F491_4F6C_DD1D);
        for _ in 0..5000 {
            let len = g.below(70);
            let s: Vec<u8> = (0..len)
                .map(|_| *g.pick(&[b'a', b']', b'\n', 0x80, 0xdd, b'\x5d' ^ 0x80, 0]))
                .collect();
            let c = *g.pick(&[b']', b'#', 0u8, b',']);
            let from = g.below(len + 2);
            let want: Vec<usize> = (0..s.len())
                .filter(|&i| i >= from && (s[i] == c || s[i] == b'\n'))
                .collect();
            let got: Vec<usize> = Stops::new(&s, [c, b'\n'], from).collect();
            assert_eq!(got, want, "{s:?} {c}");
            let first = s.iter().position(|&b| b == c || b == b'\n');
            assert_eq!(
                first_of(&s, [c, b'\n']),
                first.unwrap_or(s.len()),
                "{s:?} {c}"
            );
        }
    }

    #[test]
    fn sse2_and_scalar_hits_alike() {
        let mut g = crate::testgen::Gen(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let block: [u8; 16] = std::array::from_fn(|_| {
                *g.pick(&[b',', b'\n', b'a', b']', 0, 0x8a, 0xac, 0xff, b'|'])
            });
            let sep = *g.pick(&[b',', 0u8, b'|', 0xac, 0xff, b']']);
            let one = [sep];
            let two = [sep, b'\n'];
            let four = [sep, b' ', b'\t', b'\n'];
            assert_eq!(hits(&block, one), hits_scalar(&block, one), "{block:?}");
            assert_eq!(hits(&block, two), hits_scalar(&block, two), "{block:?}");
            assert_eq!(hits(&block, four), hits_scalar(&block, four), "{block:?}");
            let want = (0..16).filter(|&i| two.contains(&block[i]));
            assert_eq!(
                hits_scalar(&block, two),
                want.map(|i| 1u32 << i).sum::<u32>(),
                "{block:?}"
            );
        }
    }
}
