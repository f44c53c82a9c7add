//! Which bytes of a text belong to a small set of bytes, 16 bytes a step: the scans of the
//! payload walk (its separators) and of the prefix matcher (a field's stop byte); and the
//! framing's newlines with the plain-ASCII test, 32 bytes a step (`Newlines`). SSE2 where the
//! build has it (every x86_64 target), one byte at a time elsewhere (aarch64 hosts); tests
//! hold the two to the same answers.

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

/// The newlines of a text, 32 bytes a step, each with where the run of plain bytes before it
/// starts: the framing's line ends and, in the same pass, whether a record is plain ASCII (no
/// byte from 0x80 up, no NUL, no CR), which is then its own clean text (what
/// crate::decode::decode_borrowed answers for it): a record's bytes were read twice, by
/// `memchr` and by the decoder's check.
pub struct Newlines<'m> {
    m: &'m [u8],
    /// Where the block `hits` was read from.
    block: usize,
    /// Bit i set where byte `block + i` is a newline not reported yet.
    hits: u32,
    /// One past the last byte read that is not plain (0: none yet). Every byte from here up
    /// to the end of the block read is plain: whole blocks are read, so a newline's answer
    /// also counts the bytes after it in its block, never fewer than those before it.
    plain_from: usize,
}

const STEP: usize = 32;

impl<'m> Newlines<'m> {
    pub fn new(m: &'m [u8]) -> Newlines<'m> {
        let mut lines = Newlines {
            m,
            block: 0,
            hits: 0,
            plain_from: 0,
        };
        lines.seek(0);
        lines
    }

    /// Reads the blocks from `at` on up to the first with a newline (or the end). A block of
    /// plain bytes and no newline (nearly all) costs one test; the others are read again for
    /// where their newlines and odd bytes are.
    #[inline(always)]
    fn seek(&mut self, mut at: usize) {
        let rest = self.m.get(at..).unwrap_or_default();
        let mut blocks = rest.chunks_exact(STEP);
        let mut found = 0;
        for block in &mut blocks {
            let Ok(block) = <&[u8; STEP]>::try_from(block) else {
                break;
            };
            if !quiet(block) {
                let (newlines, odd) = lines(block);
                if odd != 0 {
                    self.plain_from = at + STEP - odd.leading_zeros() as usize;
                }
                if newlines != 0 {
                    found = newlines;
                    break;
                }
            }
            at += STEP;
        }
        if found == 0 {
            let tail = blocks.remainder();
            if !tail.is_empty() {
                let (newlines, odd) = tail_lines(tail);
                if odd != 0 {
                    self.plain_from = at + STEP - odd.leading_zeros() as usize;
                }
                found = newlines;
            }
        }
        self.block = at;
        self.hits = found;
    }
}

impl Iterator for Newlines<'_> {
    /// A newline's place, and a place at or before it from which every byte before it is
    /// plain ASCII.
    type Item = (usize, usize);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.hits == 0 {
            if self.block + STEP >= self.m.len() {
                return None;
            }
            self.seek(self.block + STEP);
            if self.hits == 0 {
                return None;
            }
        }
        let at = self.block + self.hits.trailing_zeros() as usize;
        self.hits &= self.hits - 1;
        Some((at, self.plain_from.min(at)))
    }
}

/// `lines` of the last bytes of a text (fewer than a block), the lanes past them in neither.
#[cold]
fn tail_lines(tail: &[u8]) -> (u32, u32) {
    let mut block = [0u8; STEP];
    let n = tail.len().min(STEP);
    block[..n].copy_from_slice(tail.get(..n).unwrap_or_default());
    let live = (1u32 << n) - 1;
    let (newlines, odd) = lines(&block);
    (newlines & live, odd & live)
}

/// Bits of a block: the newlines, and the bytes from 0x80 up, NUL and CR.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub fn lines(block: &[u8; STEP]) -> (u32, u32) {
    // SAFETY: as `hits`: compiled only where the build enables SSE2, which every x86_64 CPU has.
    unsafe { lines_sse2(block) }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
pub fn lines(block: &[u8; STEP]) -> (u32, u32) {
    lines_scalar(block)
}

/// True when a block has no newline and only plain bytes (`lines` would answer (0, 0)); may
/// be false for a block of plain bytes too (any byte under 0x0E, a tab among them), which
/// `lines` then reads again.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub fn quiet(block: &[u8; STEP]) -> bool {
    // SAFETY: as `hits`: compiled only where the build enables SSE2, which every x86_64 CPU has.
    unsafe { quiet_sse2(block) }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
pub fn quiet(block: &[u8; STEP]) -> bool {
    quiet_scalar(block)
}

/// `quiet` a byte at a time: every byte from 0x0E to 0x7F (the newline, CR and NUL are
/// under it).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
pub fn quiet_scalar(block: &[u8; STEP]) -> bool {
    block.iter().all(|&b| (0x0E..0x80).contains(&b))
}

/// `quiet` in SSE2: as signed bytes, those from 0x80 up are negative, so one signed compare
/// with 0x0E marks them and the bytes under 0x0E alike.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn quiet_sse2(block: &[u8; STEP]) -> bool {
    use std::arch::x86_64::{_mm_cmpgt_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let (lo, hi) = halves(block);
    let low = _mm_set1_epi8(0x0E);
    let marks = _mm_or_si128(_mm_cmpgt_epi8(low, lo), _mm_cmpgt_epi8(low, hi));
    _mm_movemask_epi8(marks) == 0
}

/// A block's two halves as vectors.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn halves(block: &[u8; STEP]) -> (std::arch::x86_64::__m128i, std::arch::x86_64::__m128i) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128};
    let (lo, hi) = block.split_at(16);
    // SAFETY: `lo` and `hi` are 16 bytes each (halves of 32), so both reads stay inside the
    // block; `loadu` needs no alignment.
    unsafe {
        (
            _mm_loadu_si128(lo.as_ptr().cast::<__m128i>()),
            _mm_loadu_si128(hi.as_ptr().cast::<__m128i>()),
        )
    }
}

/// `lines` in SSE2, sixteen bytes a half: a byte's top bit is its own mark of 0x80 and up, so
/// one movemask of the bytes or'ed with the NUL and CR compares gives the odd ones.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn lines_sse2(block: &[u8; STEP]) -> (u32, u32) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128,
    };
    let half = |v: __m128i| {
        let newlines = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
        let nul = _mm_cmpeq_epi8(v, _mm_setzero_si128());
        let cr = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8));
        let odd = _mm_or_si128(v, _mm_or_si128(nul, cr));
        // movemask fills the low 16 bits only: never negative.
        (
            _mm_movemask_epi8(newlines) as u32,
            _mm_movemask_epi8(odd) as u32,
        )
    };
    let (lo, hi) = halves(block);
    let ((n0, o0), (n1, o1)) = (half(lo), half(hi));
    (n0 | n1 << 16, o0 | o1 << 16)
}

/// `lines` a byte at a time: the version of other targets, and the tests' reference.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
pub fn lines_scalar(block: &[u8; STEP]) -> (u32, u32) {
    let (mut newlines, mut odd) = (0, 0);
    for (i, &b) in block.iter().enumerate() {
        if b == b'\n' {
            newlines |= 1 << i;
        }
        if b >= 0x80 || b == 0 || b == b'\r' {
            odd |= 1 << i;
        }
    }
    (newlines, odd)
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
    fn newlines_come_with_a_plain_start_no_later_than_the_last_odd_byte() {
        let mut g = crate::testgen::Gen(0x5851_F42D_4C95_7F2D);
        for _ in 0..5000 {
            let len = g.below(140);
            let s: Vec<u8> = (0..len)
                .map(|_| *g.pick(&[b'a', b'a', b'a', b'a', b'\n', b'\r', 0x80, 0xff, 0x7f, 0, 1]))
                .collect();
            let want: Vec<usize> = (0..s.len()).filter(|&i| s[i] == b'\n').collect();
            let got: Vec<(usize, usize)> = Newlines::new(&s).collect();
            assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), want, "{s:?}");
            for &(nl, plain) in &got {
                assert!(plain <= nl, "{s:?}");
                let odd = |b: u8| b >= 0x80 || b == 0 || b == b'\r';
                assert!(!s[plain..nl].iter().any(|&b| odd(b)), "{s:?} {nl}");
                // Never further than the end of the newline's block demands.
                let block_end = (nl / STEP + 1) * STEP;
                let last_odd = s[..block_end.min(s.len())].iter().rposition(|&b| odd(b));
                assert_eq!(plain, last_odd.map_or(0, |p| (p + 1).min(nl)), "{s:?} {nl}");
            }
        }
    }

    #[test]
    fn sse2_and_scalar_lines_alike() {
        let mut g = crate::testgen::Gen(0x94D0_49BB_1331_11EB);
        for _ in 0..5000 {
            let block: [u8; STEP] =
                std::array::from_fn(|_| *g.pick(&[b'\n', b'\r', b'a', 0, 0x7f, 0x80, 0xff, 1]));
            assert_eq!(lines(&block), lines_scalar(&block), "{block:?}");
            assert_eq!(quiet(&block), quiet_scalar(&block), "{block:?}");
            if quiet(&block) {
                assert_eq!(lines_scalar(&block), (0, 0), "{block:?}");
            }
            // Plain bytes from 0x0E up: quiet whatever else the block held.
            let plain = block.map(|b| if b == b'a' || b == 0x7f { b } else { b' ' });
            assert!(quiet(&plain), "{plain:?}");
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
