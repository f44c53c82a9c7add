//! Which bytes of a 16-byte block belong to a small set of bytes: the step the scans of the
//! payload walk (its separators) and of the prefix matcher (a field's stop byte) take, 16
//! bytes at a time. SSE2 where the build has it (every x86_64 target), one byte at a time
//! elsewhere (aarch64 hosts); a test holds the two to the same answers.

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
