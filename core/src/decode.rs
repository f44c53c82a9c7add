//! Raw record bytes -> clean text (parsers/lines.py `decode`): BOM, `\r`, NUL and invalid
//! bytes handled as the reference does: UTF-8 and GBK in Rust (CPython's codecs, exactly), any
//! other text encoding through CPython's own codec (`External`, provided by the binding).

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};

use crate::gbk_table::GBK;
use crate::lines::flags;

/// The encodings the core reads exactly as CPython does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Utf8,
    Gbk,
    /// A codec the core has no decoder of its own for (registered by `register`).
    External(&'static External),
}

/// CPython's codec of one encoding, called through the binding (lib.rs): for the encodings the
/// core has no exact decoder of its own for, so they decode as the reference does by
/// construction (WHATWG's decoders in `encoding_rs` differ from CPython's on errors and on
/// several mappings).
pub trait TextCodec: Send + Sync {
    /// `raw.decode(enc, "backslashreplace")` (an incremental decoder's `final=False` when
    /// `cut`), and whether a byte was invalid (the strict decode failed).
    fn decode(&self, raw: &[u8], cut: bool) -> (String, bool);
    /// `text.encode(enc)`; None where the codec cannot write a character.
    fn encode(&self, text: &str) -> Option<Vec<u8>>;
}

/// An encoding name and its codec; interned for the life of the process (`register`).
pub struct External {
    pub name: String,
    codec: Box<dyn TextCodec>,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "External({:?})", self.name)
    }
}

/// Interned: one per name, so the same name is the same codec.
impl PartialEq for External {
    fn eq(&self, other: &External) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for External {}

/// Registered external codecs. Leaked on purpose so `Codec` stays `Copy`: one small entry per
/// distinct encoding name a process is configured with, at most `EXTERNAL_MAX`.
static EXTERNAL: Mutex<Vec<&'static External>> = Mutex::new(Vec::new());
const EXTERNAL_MAX: usize = 64;

/// Makes `name` known to `Codec::of` through `codec` (kept when the name is known already).
/// None: the registry is full.
pub fn register(name: &str, codec: Box<dyn TextCodec>) -> Option<Codec> {
    if let Some(c) = Codec::of(name) {
        return Some(c);
    }
    let mut known = EXTERNAL.lock().unwrap_or_else(PoisonError::into_inner);
    if known.len() >= EXTERNAL_MAX {
        return None;
    }
    let entry: &'static External = Box::leak(Box::new(External {
        name: name.to_string(),
        codec,
    }));
    known.push(entry);
    Some(Codec::External(entry))
}

impl Codec {
    /// The codec Python's `codecs.lookup(name)` resolves to, when the core has it.
    pub fn of(name: &str) -> Option<Codec> {
        let n: String = name
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c == '-' || c == ' ' { '_' } else { c })
            .collect();
        match n.as_str() {
            "utf_8" | "utf8" | "u8" | "utf" | "cp65001" | "utf8_ucs2" | "utf8_ucs4" => {
                Some(Codec::Utf8)
            }
            "gbk" | "cp936" | "ms936" | "936" => Some(Codec::Gbk),
            _ => EXTERNAL
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|e| e.name == name)
                .map(|&e| Codec::External(e)),
        }
    }

    /// `text.encode(codec)`; None where the codec cannot write a character.
    pub fn encode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Codec::Utf8 => Some(text.as_bytes().to_vec()),
            Codec::External(e) => e.codec.encode(text),
            Codec::Gbk => {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    if c.is_ascii() {
                        out.push(c as u8);
                        continue;
                    }
                    let cp = u16::try_from(u32::from(c)).ok()?;
                    let i = GBK.iter().position(|&v| v == cp)?;
                    out.push((0x81 + i / 191) as u8);
                    out.push((0x40 + i % 191) as u8);
                }
                Some(out)
            }
        }
    }
}

/// ASCII kept, every other byte as `\\xNN`: what an external codec gives when CPython's codec
/// fails in a way the reference does not handle either (it would raise).
pub fn escaped(raw: &[u8]) -> String {
    let mut text = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii() {
            text.push(char::from(b));
        } else {
            escape(&mut text, b);
        }
    }
    text
}

fn escape(text: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    text.push_str("\\x");
    text.push(char::from(HEX[usize::from(b >> 4)]));
    text.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// CPython's `gbk` decode with backslashreplace: an unmapped pair or a stray byte is one
/// error byte; a lead byte at the end is incomplete (dropped when `cut`).
fn decode_gbk(raw: &[u8], cut: bool, text: &mut String) -> bool {
    let mut bad = false;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b < 0x80 {
            text.push(char::from(b));
            i += 1;
            continue;
        }
        // CPython asks for two bytes before it looks at the first: any byte >= 0x80 at the
        // end is incomplete, 0x80 and 0xFF included.
        let Some(&t) = raw.get(i + 1) else {
            if !cut {
                escape(text, b);
                bad = true;
            }
            break;
        };
        if b == 0x80 || b == 0xFF {
            escape(text, b);
            bad = true;
            i += 1;
            continue;
        }
        let mapped = (0x40..=0xFE)
            .contains(&t)
            .then(|| GBK.get(usize::from(b - 0x81) * 191 + usize::from(t - 0x40)))
            .flatten()
            .copied()
            .filter(|&v| v != 0)
            .and_then(|v| char::from_u32(u32::from(v)));
        match mapped {
            Some(c) => {
                text.push(c);
                i += 2;
            }
            None => {
                escape(text, b);
                bad = true;
                i += 1;
            }
        }
    }
    bad
}

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Text and flags of record bytes (final newline excluded). `cut`: the bytes were cut at the
/// size cap, so an incomplete last character is dropped instead of reported.
pub fn decode(raw: &[u8], codec: Codec, cut: bool) -> (String, u8) {
    let mut fl = 0u8;
    let raw = raw.strip_prefix(BOM).unwrap_or(raw);
    if let Codec::External(e) = codec {
        let (text, bad) = e.codec.decode(raw, cut);
        if bad {
            fl |= flags::DECODE;
        }
        return clean(text, fl);
    }
    if codec == Codec::Gbk {
        let mut text = String::with_capacity(raw.len() + raw.len() / 2);
        if decode_gbk(raw, cut, &mut text) {
            fl |= flags::DECODE;
        }
        return clean(text, fl);
    }
    // Valid UTF-8 (nearly every record): one pass of std's check (word at a time over ASCII),
    // and valid text has no invalid or incomplete sequence for the exact path below to treat.
    if let Ok(text) = std::str::from_utf8(raw) {
        return clean(text.to_owned(), fl);
    }
    decode_utf8(raw, cut, fl)
}

/// `decode`, borrowing `raw` when the text is those bytes: UTF-8, valid, without BOM, CR or
/// NUL (nearly every record). The same text and flags as `decode` either way.
pub fn decode_borrowed(raw: &[u8], codec: Codec, cut: bool) -> (Cow<'_, str>, u8) {
    if codec == Codec::Utf8 && !raw.starts_with(BOM) {
        // Most records are plain ASCII to the end; the others are checked for CR and NUL from
        // the first block that is not, and validated by simdutf8 (vector code: std's
        // `from_utf8` took a few instructions a byte of Chinese text, 130 a record of the
        // bench's mix), which gives the text itself.
        let rest = raw.get(plain_ascii_prefix(raw)..).unwrap_or_default();
        if rest.is_empty() {
            // SAFETY: every byte of `raw` is ASCII (`plain_ascii_prefix` took it all), and
            // ASCII is valid UTF-8, which is all `from_utf8_unchecked` requires.
            let text = unsafe { std::str::from_utf8_unchecked(raw) };
            return (Cow::Borrowed(text), 0);
        }
        if memchr::memchr2(b'\r', 0, rest).is_none() {
            if let Ok(text) = simdutf8::basic::from_utf8(raw) {
                return (Cow::Borrowed(text), 0);
            }
        }
    }
    let (text, fl) = decode(raw, codec, cut);
    (Cow::Owned(text), fl)
}

/// How many bytes at the start of `raw` are ASCII other than CR and NUL, in whole 16-byte
/// blocks (all of `raw` when every byte is): such bytes are their own clean text in UTF-8 (no
/// BOM either, its first byte is not ASCII). One pass of vector compares (the compiler
/// makes a block's test a few SSE2 instructions) answers for most records what `from_utf8` and
/// a `memchr2` of CR and NUL answered in two passes.
#[inline]
fn plain_ascii_prefix(raw: &[u8]) -> usize {
    const LANES: usize = 16;
    // NUL and the bytes from 0x80 up are the ones 1 below wraps to 0x7F or more.
    let odd = |b: u8| (b.wrapping_sub(1) >= 0x7F) | (b == b'\r');
    // A block answered before the next: with one flag kept over the whole loop instead, the
    // compiler gathers lanes across blocks, twice slower.
    let odd_block = |block: &[u8; LANES]| block.iter().fold(false, |bad, &b| bad | odd(b));
    let mut blocks = raw.chunks_exact(LANES);
    let mut plain = 0;
    for block in &mut blocks {
        match <&[u8; LANES]>::try_from(block) {
            Ok(block) if !odd_block(block) => plain += LANES,
            _ => return plain,
        }
    }
    // The tail as the last 16 bytes (overlapping checked ones) when there are that many.
    let tail_plain = match raw.last_chunk::<LANES>() {
        Some(last) => !odd_block(last),
        None => !raw.iter().any(|&b| odd(b)),
    };
    if tail_plain {
        raw.len()
    } else {
        plain
    }
}

/// `decode` of UTF-8 bytes, valid or not, exactly as CPython's codec (strict, then
/// backslashreplace; the incremental decoder's `final=False` when `cut`).
fn decode_utf8(raw: &[u8], cut: bool, mut fl: u8) -> (String, u8) {
    // CPython's incremental decoder holds back `\xed` + `[\xa0-\xbf]` at the end as an
    // incomplete character (it rejects that surrogate range only once the third byte comes).
    let held = if cut && matches!(raw, [.., 0xED, 0xA0..=0xBF]) {
        raw.len() - 2
    } else {
        raw.len()
    };
    let mut at = 0usize;
    let mut text = String::with_capacity(raw.len());
    let mut chunks = raw.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        text.push_str(chunk.valid());
        at += chunk.valid().len();
        let bad = chunk.invalid();
        let start = at;
        at += bad.len();
        if bad.is_empty() || start >= held {
            continue;
        }
        let last = chunks.peek().is_none();
        // An incomplete character at the very end: held back by an incremental decoder.
        let incomplete = last && std::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none());
        if cut && incomplete {
            continue;
        }
        fl |= flags::DECODE;
        for &b in bad {
            escape(&mut text, b);
        }
    }
    clean(text, fl)
}

/// CRLF and a final CR, then NUL bytes, as the reference cleans decoded text.
fn clean(mut text: String, mut fl: u8) -> (String, u8) {
    // One pass for the usual text with neither.
    if memchr::memchr2(b'\r', 0, text.as_bytes()).is_none() {
        return (text, fl);
    }
    if text.contains('\r') {
        text = text.replace("\r\n", "\n");
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.contains('\0') {
        fl |= flags::NUL;
        text.retain(|c| c != '\0');
    }
    (text, fl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_decode_is_the_decode_and_borrows_only_plain_utf8() {
        let cases: [&[u8]; 16] = [
            b"plain text",
            b"2026-11-30 04:38:57.716 INFO  [traceId:e8] - plain, past a block",
            "2026-11-30 04:38:57.716 INFO  [traceId:e8] - prompt: 中文 é".as_bytes(),
            b"2026-11-30 04:38:57.716 INFO  [traceId:e8] - cr\r\n",
            b"2026-11-30 04:38:57.716 INFO  [traceId:e8] - \xef\xbb\xbf BOM inside",
            b"2026-11-30 04:38:57.716 INFO  [traceId:e8] - a\xe2\x82",
            b"0123456789abcdef\0 NUL after a block",
            "中文 é".as_bytes(),
            b"",
            b"\xef\xbb\xbfafter a BOM",
            b"cr\r\nlf",
            b"ends in cr\r",
            b"nul\0byte",
            b"a\xffb",
            b"a\xe2\x82",
            b"a\xed\xa0",
        ];
        for raw in cases {
            for codec in [Codec::Utf8, Codec::Gbk] {
                for cut in [false, true] {
                    let (text, fl) = decode_borrowed(raw, codec, cut);
                    assert_eq!((text.to_string(), fl), decode(raw, codec, cut), "{raw:?}");
                }
            }
            let borrowed = matches!(decode_borrowed(raw, Codec::Utf8, false).0, Cow::Borrowed(_));
            let plain = std::str::from_utf8(raw).is_ok()
                && !raw.starts_with(BOM)
                && !raw.contains(&b'\r')
                && !raw.contains(&0);
            assert_eq!(borrowed, plain, "{raw:?}");
        }
    }

    /// The lane-wise check against its definition, byte by byte, with the odd byte in every
    /// position of whole lanes and of the tail.
    #[test]
    fn a_plain_ascii_prefix_is_ascii_without_cr_or_nul() {
        let mut g = crate::testgen::Gen(0x5EED_0A5C_11C0_DE01);
        for _ in 0..5_000 {
            let len = g.below(70);
            let mut raw: Vec<u8> = (0..len).map(|_| b' ' + g.below(95) as u8).collect();
            if len > 0 && g.below(3) > 0 {
                const ODD: &[u8] = &[0, b'\r', 0x80, 0xFF, 0xEF, 0x7F, b'\n', 0x0C];
                let at = g.below(len);
                raw[at] = ODD[g.below(ODD.len())];
            }
            let plain = raw.iter().all(|&b| b.is_ascii() && b != 0 && b != b'\r');
            let n = plain_ascii_prefix(&raw);
            let prefix = raw.get(..n).unwrap_or_default();
            assert!(prefix.iter().all(|&b| b.is_ascii() && b != 0 && b != b'\r'));
            assert_eq!(n == raw.len(), plain, "{raw:?}");
            assert!(n == raw.len() || n.is_multiple_of(16), "{raw:?}");
        }
    }

    #[test]
    fn invalid_bytes_become_escapes_and_a_cut_character_is_dropped() {
        assert_eq!(
            decode(b"a\xffb", Codec::Utf8, false),
            ("a\\xffb".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"a\xe2\x82", Codec::Utf8, false),
            ("a\\xe2\\x82".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"a\xe2\x82", Codec::Utf8, true),
            ("a".to_string(), 0)
        );
        assert_eq!(
            decode(b"a\xed\xa0", Codec::Utf8, true),
            ("a".to_string(), 0)
        );
        assert_eq!(
            decode(b"\xc2\xed\xa0", Codec::Utf8, true),
            ("\\xc2".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"a\xe0\x80", Codec::Utf8, true),
            ("a\\xe0\\x80".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"\xef\xbb\xbfx\r\ny\r", Codec::Utf8, false),
            ("x\ny".to_string(), 0)
        );
        assert_eq!(
            decode(b"a\0b", Codec::Utf8, false),
            ("ab".to_string(), flags::NUL)
        );
    }

    #[test]
    fn the_valid_utf8_path_answers_as_the_exact_one() {
        const PIECES: &[&[u8]] = &[
            b"a",
            b"\n",
            b"\r",
            b"\r\n",
            b"\0",
            b"\xef\xbb\xbf",
            b"\xc3\xa9",
            b"\xe4\xbd\xa0",
            b"\xf0\x9f\x98\x80",
            b"\xed\xa0",
            b"\xed\x9f\xbf",
            b"\xe2\x82",
            b"\xff",
            b"\x80",
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
        ];
        let mut g = crate::testgen::Gen(0x243F_6A88_85A3_08D3);
        let mut valid = 0;
        for _ in 0..20_000 {
            let mut raw = Vec::new();
            for _ in 0..g.below(8) {
                match g.below(4) {
                    0 => raw.push(g.next() as u8),
                    _ => raw.extend_from_slice(PIECES[g.below(PIECES.len())]),
                }
            }
            for cut in [false, true] {
                let body = raw.strip_prefix(BOM).unwrap_or(&raw);
                valid += usize::from(std::str::from_utf8(body).is_ok());
                assert_eq!(
                    decode(&raw, Codec::Utf8, cut),
                    decode_utf8(body, cut, 0),
                    "{raw:?} cut={cut}"
                );
            }
        }
        assert!(valid > 4000, "{valid}");
    }

    #[test]
    fn gbk_errors_cover_one_byte_as_cpython_does() {
        assert_eq!(
            decode(b"\xc4\xe3a", Codec::Gbk, false),
            ("\u{4f60}a".to_string(), 0)
        );
        assert_eq!(
            decode(b"\x810\x80", Codec::Gbk, false),
            ("\\x810\\x80".to_string(), flags::DECODE)
        );
        assert_eq!(decode(b"a\x81", Codec::Gbk, true), ("a".to_string(), 0));
        assert_eq!(decode(b"a\x80", Codec::Gbk, true), ("a".to_string(), 0));
        assert_eq!(Codec::Gbk.encode("\u{4f60}["), Some(b"\xc4\xe3[".to_vec()));
    }
}
