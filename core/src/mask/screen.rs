//! The screen in front of the needs DFA (`NEEDS` in mask.rs): 32 bytes a step (one AVX2 block
//! where the CPU has AVX2 and the text is 32 bytes or more, else two SSE2 blocks), it looks for
//! the bytes (or pairs of bytes) some match of an enabled built-in alternative must hold, and
//! checks each one found against the few bytes around it. Most texts hold none that passes (an
//! llm_call payload: lowercase words, hex, digits, `-` and `,`) and are turned away at a few
//! instructions a byte, where the DFA walk costs ~10; what passes goes on to the DFA, which
//! decides. Every need holds one of these, so the screen never turns away a text the DFA would
//! let through, but for digit runs: there it goes further than the need and turns away runs no
//! digit rule can take (`digit_run_taken`: their length and ASCII word boundaries), a claim
//! about the rules' outcome tested against the unfiltered regex in mask.rs:
//!
//! | need | looked for | checked around it |
//! |---|---|---|
//! | `-----BEGIN` | `BE` (the bearer pair, case folded, finds it) | the whole literal |
//! | `LTAI` | `L` | the whole literal |
//! | `sk-` | `k-` | the whole literal |
//! | `(?i:bearer)` | `be`, ASCII case folded | the word, ASCII case folded |
//! | a password key, `\\?["']`, `[ \t]*`, then `:`, `=` or `：` | `:` to `@`, `\xEF` | `：`'s bytes; a key's last letters before the quote and blanks |
//! | `@` (url userinfo, email) | `@` | nothing |
//! | `[0-9]{11}` | digits | a run of eleven; then the whole run: a length a digit rule takes, word boundaries |
//!
//! `ipv4`'s need (a digit, `.`, a digit) is not looked for: with it on, or with user rules,
//! there is no screen.

/// The single bytes the screen stops at (besides digits and the pairs of `PAIRS`), and the
/// range `:` to `@` (`;<>?` with them: one compare for three, those four are turned away by
/// `confirm`).
const SINGLES: [u8; 2] = [b'L', 0xEF];
const PUNCT: std::ops::RangeInclusive<u8> = b':'..=b'@';

/// (first byte, second byte, bits or-ed into both before comparing) of each pair the screen
/// stops at (at the first byte). The first, case folded, stops at `BE` too: `-----BEGIN`'s.
const PAIRS: [(u8, u8, u8); 2] = [(b'b', b'e', 0x20), (b'k', b'-', 0)];

/// What each need's key may end with before its quote and blanks (ASCII case folded, except
/// the Chinese ones): every key of `password_pair` ends with one of them (`key` stands for
/// `secret_key`, `api-key` and their kin, `token` for every kind of token). The screen asks
/// `keys_ending_with`, which holds the same keys by their last byte (tested).
#[cfg(test)]
const KEY_ENDS: [&[u8]; 9] = [
    b"passwd",
    b"password",
    b"passphrase",
    b"pwd",
    b"secret",
    b"key",
    b"token",
    MIMA,
    KOULING,
];

/// Which needs are enabled (a trigger of a disabled one is not checked further).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Screen {
    private_key: bool,
    access_key: bool,
    api_key: bool,
    bearer: bool,
    password: bool,
    at: bool,
    digits: bool,
    /// Whether the CPU has AVX2 (found once here): the screen then reads 32 bytes a block.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    wide: bool,
}

impl Screen {
    /// The screen of the enabled alternatives (`PATTERNS` keys); None when one of them is not
    /// covered here (`ipv4`, or a name this table does not know).
    pub fn new(keys: &[&str]) -> Option<Screen> {
        let mut s = Screen::default();
        for key in keys {
            match *key {
                "private_key" => s.private_key = true,
                "alibaba_access_key" => s.access_key = true,
                "api_key" => s.api_key = true,
                "bearer_token" => s.bearer = true,
                "password_pair" => s.password = true,
                "url_userinfo" | "email" => s.at = true,
                "digits" => s.digits = true,
                _ => return None,
            }
        }
        s.wide = has_avx2();
        Some(s)
    }

    /// Whether `text` may hold a need of an enabled alternative; false: it holds none.
    pub fn may_match(&self, text: &[u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.wide && text.len() >= 32 {
            // SAFETY: `wide` is set only where `has_avx2` found AVX2 on this CPU, the one
            // feature `scan_avx2` enables.
            return unsafe { self.scan_avx2(text) };
        }
        self.scan(text, classify)
    }

    /// `scan_wide` with the blocks classified in AVX2 (and inlined into its loop: the loop is
    /// compiled for AVX2 as a whole).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scan_avx2(&self, text: &[u8]) -> bool {
        self.scan_wide(text, |block| classify_avx2(block))
    }

    /// `may_match` 32 bytes a block, for texts of 32 bytes or more: a block without triggers
    /// costs its classification, one digit-run test and one branch; the last 1 to 32 bytes are
    /// the end of the block ending at the text's end (one fixed copy, for the blank after it).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    fn scan_wide<F: Fn(&[u8; 33]) -> (u32, u32)>(&self, text: &[u8], classify_with: F) -> bool {
        // The digits of the block before: the low 32 bits of the digit window.
        let mut before = 0u32;
        let mut base = 0;
        // A block with the byte after it (for the pairs), straight from the text.
        while let Some(block) = text
            .get(base..base + 33)
            .and_then(|c| <&[u8; 33]>::try_from(c).ok())
        {
            if self.wide_block(text, base, classify_with(block), &mut before) {
                return true;
            }
            base += 32;
        }
        let left = text.len() - base.min(text.len());
        // The last 1..=32 bytes: the block ending at the text's end (one blank after it), of
        // which the first `seen` bytes were looked at already.
        let Some(last) = text
            .len()
            .checked_sub(32)
            .and_then(|s| text.get(s..))
            .filter(|_| left > 0)
        else {
            return false;
        };
        let mut block = [b' '; 33];
        if let Some(head) = block.get_mut(..32) {
            head.copy_from_slice(last);
        }
        let seen = 32 - left;
        let (digits, triggers) = classify_with(&block);
        self.wide_block(text, base, (digits >> seen, triggers >> seen), &mut before)
    }

    /// One 32-byte block at `base` whose (digit, trigger) bits are `bits`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    fn wide_block(&self, text: &[u8], base: usize, bits: (u32, u32), before: &mut u32) -> bool {
        let (digits, triggers) = bits;
        let window = (u64::from(digits) << 32) | u64::from(*before);
        *before = digits;
        (self.digits && eleven_ones(window) && digit_run_taken(text, base, base + 32))
            || (triggers != 0 && self.confirm_any(text, base, triggers))
    }

    /// `may_match` with the blocks classified by `classify_with`. Two blocks a step: a pair
    /// without triggers costs its two classifications, one digit-run test over both and one
    /// branch; the triggers are checked apart.
    #[inline]
    fn scan<F: Fn(&[u8; 17]) -> (u16, u16)>(&self, text: &[u8], classify_with: F) -> bool {
        // The digits of the block before, the low 16 bits of the digit window.
        let mut before = 0u16;
        let mut base = 0;
        // Two blocks with the byte after them (for the pairs), straight from the text.
        while let Some(pair) = text
            .get(base..base + 33)
            .and_then(|c| <&[u8; 33]>::try_from(c).ok())
        {
            let (Some(first), Some(second)) = (pair.first_chunk(), pair.last_chunk()) else {
                break;
            };
            let (d0, t0) = classify_with(first);
            let (d1, t1) = classify_with(second);
            let window = u64::from(before) | (u64::from(d0) << 16) | (u64::from(d1) << 32);
            before = d1;
            let triggers = u32::from(t0) | (u32::from(t1) << 16);
            if (self.digits && eleven_ones(window) && digit_run_taken(text, base, base + 32))
                || (triggers != 0 && self.confirm_any_apart(text, base, triggers))
            {
                return true;
            }
            base += 32;
        }
        // One block more when 17 to 32 bytes are left.
        if let Some(block) = text
            .get(base..base + 17)
            .and_then(|c| <&[u8; 17]>::try_from(c).ok())
        {
            if self.block(text, base, classify_with(block), &mut before) {
                return true;
            }
            base += 16;
        }
        let left = text.len() - base.min(text.len());
        if left == 0 {
            return false;
        }
        // The last 1..=16 bytes: a block ending at the text's end (one blank after it), of
        // which the first `seen` bytes were looked at already; a text under 16 bytes is
        // padded with blanks (neither digits nor in a trigger).
        let mut block = [b' '; 17];
        let seen = match text.len().checked_sub(16).and_then(|s| text.get(s..)) {
            Some(last) => {
                if let Some(head) = block.get_mut(..16) {
                    head.copy_from_slice(last);
                }
                16 - left
            }
            _ => {
                if let Some(head) = block.get_mut(..left) {
                    head.copy_from_slice(text.get(base..).unwrap_or(&[]));
                }
                0
            }
        };
        let (digits, triggers) = classify_with(&block);
        self.block(text, base, (digits >> seen, triggers >> seen), &mut before)
    }

    /// One block at `base` whose (digit, trigger) bits are `bits`.
    #[inline(always)]
    fn block(&self, text: &[u8], base: usize, bits: (u16, u16), before: &mut u16) -> bool {
        let (digits, triggers) = bits;
        let window = (u64::from(digits) << 16) | u64::from(*before);
        *before = digits;
        (self.digits && eleven_ones(window) && digit_run_taken(text, base, base + 16))
            || (triggers != 0 && self.confirm_any_apart(text, base, u32::from(triggers)))
    }

    /// `confirm_any` out of line, for the SSE2 loop: its constants fill the registers.
    #[inline(never)]
    fn confirm_any_apart(&self, text: &[u8], base: usize, triggers: u32) -> bool {
        self.confirm_any(text, base, triggers)
    }

    /// Whether one of the triggers at `base` (bit i: byte `base + i`) passes. Inlined into
    /// the AVX2 loop, which has the registers for it (the compiler keeps `confirm` apart):
    /// 26 instructions a record fewer than a call.
    #[inline]
    fn confirm_any(&self, text: &[u8], base: usize, mut triggers: u32) -> bool {
        while triggers != 0 {
            let at = base + triggers.trailing_zeros() as usize;
            triggers &= triggers - 1;
            if self.confirm(text, at) {
                return true;
            }
        }
        false
    }

    /// Whether the trigger byte at `at` starts, ends or sits in a need of an enabled
    /// alternative.
    fn confirm(&self, t: &[u8], at: usize) -> bool {
        let Some(&byte) = t.get(at) else {
            return false;
        };
        let has = |from: usize, what: &[u8]| t.get(from..from + what.len()) == Some(what);
        match byte {
            b'@' => self.at,
            b':' | b'=' => self.password && key_before(t, at),
            b';' | b'<' | b'>' | b'?' => false,
            0xEF => self.password && has(at, "：".as_bytes()) && key_before(t, at),
            b'b' => self.bearer && bearer(t, at),
            b'B' => {
                (self.bearer && bearer(t, at))
                    || (self.private_key && at >= 5 && has(at - 5, b"-----BEGIN"))
            }
            b'k' => self.api_key && at >= 1 && has(at - 1, b"sk-"),
            b'L' => self.access_key && has(at, b"LTAI"),
            // Any other byte here is a bug of `classify`: the DFA decides.
            _ => true,
        }
    }
}

/// Whether `bearer` (ASCII case folded) starts at `at`.
fn bearer(t: &[u8], at: usize) -> bool {
    t.get(at..at + 6)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
}

/// Whether a password key ends before the separator at `sep`, as the need writes it: the key,
/// an optional quote (itself optionally escaped), blanks, then the separator.
fn key_before(t: &[u8], sep: usize) -> bool {
    let mut end = sep;
    while end > 0 && matches!(t.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    // No key ends with a quote or a backslash: one here is the need's optional quote.
    if end > 0 && matches!(t.get(end - 1), Some(b'"' | b'\'')) {
        end -= 1;
        if end > 0 && t.get(end - 1) == Some(&b'\\') {
            end -= 1;
        }
    }
    let head = t.get(..end).unwrap_or(&[]);
    // Only the keys ending with the head's last byte can end it: most separators stop here
    // (`prompt:`, `response:`), the others compare one to three keys.
    let Some(&last) = head.last() else {
        return false;
    };
    keys_ending_with(last).iter().any(|k| {
        head.len() >= k.len()
            && head
                .get(head.len() - k.len()..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(k))
    })
}

const MIMA: &[u8] = "密码".as_bytes();
const KOULING: &[u8] = "口令".as_bytes();

/// The keys of `KEY_ENDS` whose last byte is `last` (ASCII case folded), by a switch on it.
fn keys_ending_with(last: u8) -> &'static [&'static [u8]] {
    match last.to_ascii_lowercase() {
        b'd' => &[b"passwd", b"password", b"pwd"],
        b'e' => &[b"passphrase"],
        b't' => &[b"secret"],
        b'y' => &[b"key"],
        b'n' => &[b"token"],
        0x81 => &[MIMA],
        0xA4 => &[KOULING],
        _ => &[],
    }
}

/// The lengths of an all-digit value some digit rule can accept: mobile 11 and 13 (`861`...),
/// bank_card 16 to 19, resident_id 18 (mask.rs's `judge` and validators; a test there checks
/// that no other length is ever masked).
const TAKEN: [usize; 6] = [11, 13, 16, 17, 18, 19];

/// The one length of a value ending in `X` or `x` (counted) a digit rule accepts: a resident
/// id's (a phone number never ends in X; bank cards are all digits).
const TAKEN_X: usize = 18;

/// Whether a maximal run of ASCII digits with a digit in `t[from - 16..to]` (the end of the
/// block before `from` and the blocks from it: every run of the digit window that the windows
/// before did not hold whole has a digit there) may be a value a digit rule takes. The digit
/// alternative, `\b[0-9]{11,19}[Xx]?\b` (ASCII `\b`), only ever matches a whole run, not after
/// a word byte (`[0-9A-Za-z_]`), and either not before one or with the `X`/`x` after it
/// counted, not before a word byte; its validators accept only the lengths of `TAKEN`
/// (`TAKEN_X` with the `X`). So a text whose runs of eleven or more all fail this has no digit
/// value to mask; with no other trigger passing either, the rules' regex finds nothing to
/// replace. Called only where the window holds eleven digits in a row, so every run of eleven
/// or more is looked at.
#[inline(never)]
fn digit_run_taken(t: &[u8], from: usize, to: usize) -> bool {
    let digit = |i: usize| t.get(i).is_some_and(u8::is_ascii_digit);
    let word = |i: usize| {
        t.get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    let to = to.min(t.len());
    let mut i = from.saturating_sub(16);
    while i < to {
        if !digit(i) {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && digit(start - 1) {
            start -= 1;
        }
        let mut end = i;
        while digit(end) {
            end += 1;
        }
        let run = end - start;
        let alone = start == 0 || !word(start - 1);
        let x = matches!(t.get(end), Some(b'X' | b'x'));
        let taken =
            (!word(end) && TAKEN.contains(&run)) || (x && !word(end + 1) && run + 1 == TAKEN_X);
        if alone && taken {
            return true;
        }
        i = end;
    }
    false
}

/// Whether `w` has eleven set bits in a row.
#[inline]
fn eleven_ones(w: u64) -> bool {
    let two = w & (w >> 1);
    let four = two & (two >> 2);
    let eight = four & (four >> 4);
    eight & (four >> 7) != 0
}

/// (digits, triggers) of a block (16 bytes and the one after): bit i set when byte i is an
/// ASCII digit, or one of SINGLES, or the first of one of PAIRS.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn classify(block: &[u8; 17]) -> (u16, u16) {
    // SAFETY: `classify_sse2` is safe but for the target feature it needs, and this function
    // is only compiled where the build enables SSE2 (the cfg above: every x86_64 target does,
    // it is part of the architecture), so any CPU running this code has it.
    unsafe { classify_sse2(block) }
}

/// `classify` in SSE2: the block and the block one byte on, one compare per byte looked for.
/// They are read as words (no pointer), which the compiler turns into loads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn classify_sse2(block: &[u8; 17]) -> (u16, u16) {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };
    // Sixteen bytes as one little-endian word, split in halves: one unaligned load (two 8-byte
    // reads were three instructions, a load, a load and a merge).
    let load = |at: usize| {
        let w = block
            .get(at..at + 16)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map_or(0, u128::from_le_bytes);
        _mm_set_epi64x((w >> 64) as i64, w as i64)
    };
    let v = load(0);
    let next = load(1);
    let splat = |b: u8| _mm_set1_epi8(b as i8);
    // '0'..='9' move to 0x80..=0x89, the smallest signed bytes; nothing else lands there.
    let moved = _mm_add_epi8(v, splat(0x50));
    let digits = _mm_cmplt_epi8(moved, splat(0x8A));
    // `:` to `@` move to the smallest signed bytes, as the digits do.
    let punct = _mm_add_epi8(v, splat(0x80 - PUNCT.start()));
    let span = PUNCT.end() - PUNCT.start() + 1;
    let mut hits: __m128i = _mm_cmplt_epi8(punct, splat(0x80 + span));
    for b in SINGLES {
        hits = _mm_or_si128(hits, _mm_cmpeq_epi8(v, splat(b)));
    }
    for (first, second, fold) in PAIRS {
        let a = _mm_cmpeq_epi8(_mm_or_si128(v, splat(fold)), splat(first));
        let b = _mm_cmpeq_epi8(_mm_or_si128(next, splat(fold)), splat(second));
        hits = _mm_or_si128(hits, _mm_and_si128(a, b));
    }
    // movemask fills the low 16 bits only.
    (
        (_mm_movemask_epi8(digits) & 0xFFFF) as u16,
        (_mm_movemask_epi8(hits) & 0xFFFF) as u16,
    )
}

/// Whether this CPU has AVX2 (the standard library caches what it found).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// (digits, triggers) of a 32-byte block (and the byte after it) in AVX2: `classify_sse2`'s
/// operations on 32 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn classify_avx2(block: &[u8; 33]) -> (u32, u32) {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi8, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8,
        _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    let ptr = block.as_ptr();
    // SAFETY: `block` holds 33 bytes, so the 32 from offset 0 and the 32 from offset 1 are
    // both inside it; `loadu` has no alignment requirement.
    let (v, next) = unsafe {
        (
            _mm256_loadu_si256(ptr.cast::<__m256i>()),
            _mm256_loadu_si256(ptr.add(1).cast::<__m256i>()),
        )
    };
    let splat = |b: u8| _mm256_set1_epi8(b as i8);
    // As in `classify_sse2`: the bytes looked for moved to the smallest signed bytes.
    let moved = _mm256_add_epi8(v, splat(0x50));
    let digits = _mm256_cmpgt_epi8(splat(0x8A), moved);
    let punct = _mm256_add_epi8(v, splat(0x80 - PUNCT.start()));
    let span = PUNCT.end() - PUNCT.start() + 1;
    let mut hits = _mm256_cmpgt_epi8(splat(0x80 + span), punct);
    for b in SINGLES {
        hits = _mm256_or_si256(hits, _mm256_cmpeq_epi8(v, splat(b)));
    }
    for (first, second, fold) in PAIRS {
        let a = _mm256_cmpeq_epi8(_mm256_or_si256(v, splat(fold)), splat(first));
        let b = _mm256_cmpeq_epi8(_mm256_or_si256(next, splat(fold)), splat(second));
        hits = _mm256_or_si256(hits, _mm256_and_si256(a, b));
    }
    (
        _mm256_movemask_epi8(digits) as u32,
        _mm256_movemask_epi8(hits) as u32,
    )
}

/// `classify` of a 32-byte block as two 16-byte ones a byte at a time: the reference the AVX2
/// version is tested against, and `scan_wide`'s classification in the tests.
#[cfg(test)]
fn classify_wide_scalar(block: &[u8; 33]) -> (u32, u32) {
    let half = |at: usize| {
        block
            .get(at..at + 17)
            .and_then(|b| <&[u8; 17]>::try_from(b).ok())
            .map_or((0, 0), classify_scalar)
    };
    let ((d0, t0), (d1, t1)) = (half(0), half(16));
    (
        u32::from(d0) | (u32::from(d1) << 16),
        u32::from(t0) | (u32::from(t1) << 16),
    )
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn classify(block: &[u8; 17]) -> (u16, u16) {
    classify_scalar(block)
}

/// `classify` a byte at a time: the reference the SSE2 version is tested against, and the
/// version of other targets.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn classify_scalar(block: &[u8; 17]) -> (u16, u16) {
    let (mut digits, mut triggers) = (0u16, 0u16);
    for (i, pair) in block.windows(2).enumerate() {
        let (b, next) = (pair[0], pair[1]);
        if b.is_ascii_digit() {
            digits |= 1 << i;
        }
        let paired = PAIRS
            .iter()
            .any(|&(f, s, fold)| b | fold == f && next | fold == s);
        if SINGLES.contains(&b) || PUNCT.contains(&b) || paired {
            triggers |= 1 << i;
        }
    }
    (digits, triggers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::Gen;

    #[test]
    fn sse2_and_scalar_classify_alike() {
        let mut g = Gen(0x1234_5678_9ABC_DEF1);
        // Every byte value in every position, then random blocks.
        for value in 0..=255u8 {
            for second in 0..=255u8 {
                let at = usize::from(value ^ second) % 16;
                let mut block = [b'x'; 17];
                block[at] = value;
                block[at + 1] = second;
                assert_eq!(classify(&block), classify_scalar(&block), "{block:?}");
            }
        }
        // Bytes drawn from the pairs' (and their case-folded) bytes, so pairs form often.
        let near: Vec<u8> = PAIRS
            .iter()
            .flat_map(|&(f, s, _)| [f, s, f ^ 0x20, s ^ 0x20])
            .chain(SINGLES)
            .chain(PUNCT)
            .chain([b'0', b'9', b'x'])
            .collect();
        for round in 0..40_000 {
            let mut block = [0u8; 17];
            for b in &mut block {
                *b = if round % 2 == 0 {
                    g.next() as u8
                } else {
                    *g.pick(&near)
                };
            }
            assert_eq!(classify(&block), classify_scalar(&block), "{block:?}");
        }
    }

    #[test]
    fn avx2_and_scalar_classify_alike() {
        if !has_avx2() {
            return;
        }
        let mut g = Gen(0x0FED_CBA9_8765_4321);
        let near: Vec<u8> = PAIRS
            .iter()
            .flat_map(|&(f, s, _)| [f, s, f ^ 0x20, s ^ 0x20])
            .chain(SINGLES)
            .chain(PUNCT)
            .chain([b'0', b'9', b'x', 0x80, 0xFF, b'/'])
            .collect();
        // Every pair of byte values at a position of each half, then random blocks.
        for value in 0..=255u8 {
            for second in 0..=255u8 {
                let at = usize::from(value ^ second) % 32;
                let mut block = [b'x'; 33];
                block[at] = value;
                block[at + 1] = second;
                // SAFETY: AVX2 was found on this CPU just above.
                let wide = unsafe { classify_avx2(&block) };
                assert_eq!(wide, classify_wide_scalar(&block), "{block:?}");
            }
        }
        for round in 0..40_000 {
            let mut block = [0u8; 33];
            for b in &mut block {
                *b = if round % 2 == 0 {
                    g.next() as u8
                } else {
                    *g.pick(&near)
                };
            }
            // SAFETY: as above.
            let wide = unsafe { classify_avx2(&block) };
            assert_eq!(wide, classify_wide_scalar(&block), "{block:?}");
        }
    }

    /// A need (or a near miss) at every offset of texts of every length up to 100 bytes: the
    /// two-block steps, the single block and the tail each find it, with the SSE2 and the
    /// scalar classification alike, and the 32-byte blocks (AVX2 and scalar) alike; digit runs of lengths no rule takes are turned away.
    #[test]
    fn every_offset_of_every_length_is_screened() {
        let all = [
            "private_key",
            "alibaba_access_key",
            "api_key",
            "bearer_token",
            "password_pair",
            "email",
            "digits",
        ];
        let screen = Screen::new(&all).unwrap();
        let pieces = [
            ("@", true),
            ("sk-", true),
            ("LTAI", true),
            ("Bearer", true),
            ("-----BEGIN", true),
            ("pwd=", true),
            ("密码：", true),
            ("13812345678", true),
            ("1381234567812", true),
            ("123456789012x", false), // 13 with an X: a phone number never ends in X
            ("12345678901234567x", true), // 18 with an X: a resident id's length
            ("4111111111111111111", true),
            ("12345678901", true),
            ("1234567890", false),
            ("123456789012", false),
            ("12345678901234", false),
            ("12345678901234567890", false),
            ("prompt: ", false),
            ("token", false),
            ("k-", false),
            ("a13812345678", false),
            ("13812345678_", false),
            ("13812345678b", false),
            ("123456789012X", false),
            ("12345678901234567X", true),
            ("12345678901234567Xa", false),
            ("123456789012Xa", false),
            ("_1234567890123", false),
        ];
        for len in 0..=100usize {
            for (piece, passes) in pieces {
                for at in 0..=len.saturating_sub(piece.len()) {
                    if at + piece.len() > len {
                        continue;
                    }
                    let text = format!(
                        "{}{piece}{}",
                        " ".repeat(at),
                        " ".repeat(len - at - piece.len())
                    );
                    let t = text.as_bytes();
                    assert_eq!(screen.may_match(t), passes, "{text:?}");
                    assert_eq!(screen.scan(t, classify_scalar), passes, "{text:?}");
                    if len >= 32 {
                        let wide = screen.scan_wide(t, classify_wide_scalar);
                        assert_eq!(wide, passes, "{text:?}");
                        if has_avx2() {
                            // SAFETY: AVX2 was found on this CPU just above.
                            let avx2 = unsafe { screen.scan_avx2(t) };
                            assert_eq!(avx2, passes, "{text:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_keys_by_last_byte_are_the_key_ends() {
        for b in 0..=255u8 {
            let want: Vec<&[u8]> = KEY_ENDS
                .iter()
                .copied()
                .filter(|k| k.last().is_some_and(|l| l.eq_ignore_ascii_case(&b)))
                .collect();
            assert_eq!(keys_ending_with(b), &want[..], "{b:#x}");
        }
    }

    #[test]
    fn eleven_ones_are_runs_of_eleven() {
        for start in 0..64 {
            for len in 0..=(64 - start) {
                let w = if len == 64 {
                    u64::MAX
                } else {
                    ((1u64 << len) - 1) << start
                };
                assert_eq!(eleven_ones(w), len >= 11, "{start} {len}");
            }
        }
    }

    #[test]
    fn unknown_or_ipv4_alternatives_have_no_screen() {
        assert!(Screen::new(&["email", "ipv4"]).is_none());
        assert!(Screen::new(&["custom"]).is_none());
        assert!(Screen::new(&["email", "digits"]).is_some());
    }
}
