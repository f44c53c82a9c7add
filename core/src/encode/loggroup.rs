//! LogGroup protobuf encoding (agent/sinks/loggroup.py `LogEncoder.encode_log`,
//! `encode_trailer`): the same bytes, key renames and value cuts.

use std::borrow::Cow;

use super::{KeyCache, PAD};
use crate::payload::{Key, Value};

pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
pub const MAX_KEY_BYTES: usize = 128;
pub const TRUNCATED_KEY: &str = "truncated_keys";

const RESERVED_KEYS: [&str; 7] = [
    "__time__",
    "__time_ns_part__",
    "__source__",
    "__topic__",
    "__partition_time__",
    "__extract_others__",
    "_extract_others_",
];

/// Appends the protobuf base-128 varint of `n`.
#[inline]
pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    if n < 0x80 {
        out.push(n as u8);
        return;
    }
    while n > 0x7F {
        out.push((n & 0x7F) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(n: u64) -> usize {
    // 7 bits a byte; 0 takes one byte.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// The key SLS will accept for `key`: itself when legal, otherwise a predictable rename.
pub fn legal_key(key: &str) -> Cow<'_, str> {
    let b = key.as_bytes();
    let legal = !b.is_empty()
        && b.len() <= MAX_KEY_BYTES
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    // Every reserved name starts with `_`: most keys skip the list.
    if legal && !(key.starts_with('_') && RESERVED_KEYS.contains(&key)) {
        return Cow::Borrowed(key);
    }
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name.truncate(MAX_KEY_BYTES);
    if RESERVED_KEYS.contains(&name.as_str()) {
        name.push('_');
        let cut = name.len().saturating_sub(MAX_KEY_BYTES);
        name = name.split_off(cut);
    }
    Cow::Owned(name)
}

fn content(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // Contents (2) { Key (1), Value (2) }
    let inner = 1
        + varint_len(key.len() as u64)
        + key.len()
        + 1
        + varint_len(value.len() as u64)
        + value.len();
    out.push(0x12);
    varint(out, inner as u64);
    out.push(0x0a);
    varint(out, key.len() as u64);
    out.extend_from_slice(key);
    out.push(0x12);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// A value over 1 MB cut to 1 MB on a UTF-8 boundary.
fn truncate(value: &[u8]) -> &[u8] {
    let mut cut = value.get(..MAX_VALUE_BYTES).unwrap_or(value);
    while let Err(e) = std::str::from_utf8(cut) {
        cut = cut.get(..e.valid_up_to()).unwrap_or_default();
    }
    cut
}

/// A value's bytes as its `Content` holds them; None: no value, no content. A value over
/// 1 MB is cut, and its key noted in `truncated` (for `truncated_content`).
#[inline]
fn value_bytes<'v>(key: &Key, value: &'v Value, truncated: &mut Vec<String>) -> Option<&'v [u8]> {
    let text: &[u8] = match value {
        Value::None => return None,
        Value::Str(s) => s.as_bytes(),
        Value::Int(t) => t.as_bytes(),
    };
    if text.len() > MAX_VALUE_BYTES {
        truncated.push(legal_key(key).into_owned());
        return Some(truncate(text));
    }
    Some(text)
}

/// The content naming the keys whose values were cut, when there are any.
fn truncated_content(out: &mut Vec<u8>, truncated: &[String]) {
    if !truncated.is_empty() {
        content(
            out,
            TRUNCATED_KEY.as_bytes(),
            truncated.join(",").as_bytes(),
        );
    }
}

/// One `Logs` entry (tag, length, body) appended to `out`.
pub fn encode_log(out: &mut Vec<u8>, fields: &[(Key, Value)], time: i64, time_ns: u32) {
    let mut body = Vec::with_capacity(256);
    let mut truncated: Vec<String> = Vec::new();
    for (key, value) in fields {
        let Some(text) = value_bytes(key, value, &mut truncated) else {
            continue;
        };
        content(&mut body, legal_key(key).as_bytes(), text);
    }
    truncated_content(&mut body, &truncated);
    let tv = (time as u64) & 0xFFFF_FFFF;
    out.push(0x0a);
    varint(out, (body.len() + varint_len(tv) + 6) as u64);
    out.push(0x08);
    varint(out, tv);
    out.extend_from_slice(&body);
    out.push(0x25);
    out.extend_from_slice(&time_ns.to_le_bytes());
}

/// The `Key` field (tag, length, name) of a `Content`, with the name SLS will accept.
pub fn key_field(key: &str) -> Vec<u8> {
    let name = legal_key(key);
    let mut out = Vec::with_capacity(name.len() + 3);
    out.push(0x0a);
    varint(&mut out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    out
}

/// The `Key` field of a `Content` followed by the tag of its `Value` field: what comes
/// between a content's length and its value's length, the same for every value of the key.
pub fn key_and_tag(key: &str) -> Vec<u8> {
    let mut out = key_field(key);
    out.push(0x12);
    out
}

/// Bytes the `Logs` length varint is first given: the common size of a record (128 B-16 KiB).
const LEN_GUESS: usize = 2;

/// Bytes made ready ahead of the writing, when the room runs out (the size of a common record):
/// one zero-fill for most records, not a capacity check per piece.
const AHEAD: usize = 512;

/// What a content's head takes besides its `Key` field: its tag, its length and the value's
/// length (a value of at most 1 MB: three bytes each, five allowed).
const HEAD: usize = 1 + 5 + 5;

/// The protobuf varint of `n`, in the first bytes of the array, and its length: worked out
/// with arithmetic on all ten bytes, written with one fixed-size copy.
#[inline]
fn varint_bytes(n: u64) -> ([u8; 10], usize) {
    let len = varint_len(n);
    let mut b = [0u8; 10];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = (n >> (7 * i)) as u8 | 0x80;
    }
    // The last byte has no continuation bit (len is 1-10).
    if let Some(last) = b.get_mut(len - 1) {
        *last &= 0x7F;
    }
    (b, len)
}

/// The end of `out` a record is written into. `out` is grown (zero-filled) ahead of the
/// writing, so each piece is copied into a slice checked once instead of pushed with a
/// capacity check per push; `len` is where the record's bytes end, and `finish` cuts `out`
/// back to it.
struct Tail<'a> {
    out: &'a mut Vec<u8>,
    len: usize,
}

impl<'a> Tail<'a> {
    fn new(out: &'a mut Vec<u8>) -> Tail<'a> {
        let len = out.len();
        Tail { out, len }
    }

    /// The next `n` bytes, to write into (what is not written is cut by `finish`, or written
    /// over by the next piece).
    #[inline]
    fn next(&mut self, n: usize) -> &mut [u8] {
        if self.out.len() - self.len < n {
            self.grow(n);
        }
        self.out
            .get_mut(self.len..self.len + n)
            .unwrap_or_default() // never: grown above
    }

    /// At least `n` bytes ready, up to `AHEAD` if the buffer has the room already: a batch
    /// buffer is reserved to its expected size, and looking ahead must not make it reallocate.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) {
        let need = self.len + n;
        let ahead = (self.len + AHEAD).min(self.out.capacity());
        self.out.resize(need.max(ahead), 0);
    }

    /// The next `n` bytes are the record's.
    #[inline]
    fn advance(&mut self, n: usize) {
        self.len += n;
    }

    fn finish(self) {
        self.out.truncate(self.len);
    }
}

/// `encode_log` with each key's `Key` field (and the value's tag) from `keys` (worked out once
/// per key), written straight into `out` without a body buffer: the length varint is given two
/// bytes and the body moved in the rare case it needs another count. Same bytes as
/// `encode_log`, which writes a record with a value over 1 MB (cut, and named in a
/// `truncated_keys` content).
pub fn encode_log_cached(
    out: &mut Vec<u8>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    keys: &mut KeyCache,
) {
    let start = out.len();
    let mut tail = Tail::new(out);
    if contents(&mut tail, fields, time, time_ns, keys).is_none() {
        tail.out.truncate(start);
        return encode_log(out, fields, time, time_ns);
    }
    tail.finish();
    set_length(out, start);
}

/// The `Logs` entry written into `tail`, with its length left to `set_length` (LEN_GUESS
/// bytes). None: a value over 1 MB, for `encode_log`.
#[inline]
fn contents(
    tail: &mut Tail<'_>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    keys: &mut KeyCache,
) -> Option<()> {
    // Logs (1) { Time (1), Contents (2)..., TimeNs (4) }
    let (tv, tlen) = varint_bytes((time as u64) & 0xFFFF_FFFF);
    let dst = tail.next(2 + LEN_GUESS + 10);
    if let Some(head) = dst.first_chunk_mut::<{ 2 + LEN_GUESS + 10 }>() {
        head[0] = 0x0a;
        head[1 + LEN_GUESS] = 0x08;
        head[2 + LEN_GUESS..].copy_from_slice(&tv);
    }
    tail.advance(2 + LEN_GUESS + tlen);
    for (pos, (key, value)) in fields.iter().enumerate() {
        let text = match value {
            Value::Str(s) | Value::Int(s) => s.as_bytes(),
            Value::None => continue,
        };
        if text.len() > MAX_VALUE_BYTES {
            return None;
        }
        // The Key field and the value's tag, padded.
        let (form, flen) = keys.padded(pos, key, key_and_tag);
        let vlen = text.len();
        let dst = tail.next(HEAD + flen.max(PAD) + vlen);
        let at = match form.first_chunk::<PAD>() {
            Some(block) if flen + 1 + vlen < 0x80 && flen <= PAD => {
                // The usual content: its length and the value's fit a byte each. The head
                // (tag, length, Key field, value tag, value length) from one fixed-size copy
                // of the padded form, its tail written over by the value length and value.
                if let Some(head) = dst.first_chunk_mut::<{ PAD + 3 }>() {
                    head[0] = 0x12;
                    head[1] = (flen + 1 + vlen) as u8;
                    head[2..2 + PAD].copy_from_slice(block);
                    if let Some(b) = head.get_mut(2 + flen) {
                        *b = vlen as u8;
                    }
                }
                3 + flen
            }
            _ => long_head(dst, form.get(..flen).unwrap_or_default(), vlen),
        };
        if let Some(room) = dst.get_mut(at..at + vlen) {
            room.copy_from_slice(text);
        }
        tail.advance(at + vlen);
    }
    let dst = tail.next(5);
    if let Some(end) = dst.first_chunk_mut::<5>() {
        end[0] = 0x25;
        end[1..].copy_from_slice(&time_ns.to_le_bytes());
    }
    tail.advance(5);
    Some(())
}

/// A content's head when its length or its value's takes more than a byte, or its key is long:
/// written into `dst` (room for `HEAD` and the form); its length.
#[cold]
#[inline(never)]
fn long_head(dst: &mut [u8], form: &[u8], vlen: usize) -> usize {
    let (inner, ilen) = varint_bytes((form.len() + varint_len(vlen as u64) + vlen) as u64);
    let (value, len) = varint_bytes(vlen as u64);
    let pieces: [&[u8]; 4] = [
        &[0x12],
        inner.get(..ilen).unwrap_or_default(),
        form,
        value.get(..len).unwrap_or_default(),
    ];
    let mut at = 0;
    for piece in pieces {
        if let Some(room) = dst.get_mut(at..at + piece.len()) {
            room.copy_from_slice(piece);
        }
        at += piece.len();
    }
    at
}

/// The length of the `Logs` entry that starts at `start` (its tag) written into the LEN_GUESS
/// bytes left for it, the body moved in the rare case the length takes another count.
#[inline]
fn set_length(out: &mut Vec<u8>, start: usize) {
    let at = start + 1;
    let body = at + LEN_GUESS;
    let len = out.len() - body;
    let (bytes, need) = varint_bytes(len as u64);
    if need != LEN_GUESS {
        // Move the body so the length's room fits (a body under 128 B or over 16 KiB).
        let end = out.len();
        if need > LEN_GUESS {
            out.resize(end + need - LEN_GUESS, 0);
        }
        out.copy_within(body..end, at + need);
        out.truncate(at + need + len);
    }
    if let (Some(room), Some(len)) = (out.get_mut(at..at + need), bytes.get(..need)) {
        room.copy_from_slice(len);
    }
}

fn len_field(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Topic (3), Source (4) and LogTags (6): what follows the logs in field-number order.
pub fn encode_trailer(topic: &str, source: &str, tags: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    len_field(&mut out, 0x1a, topic.as_bytes());
    len_field(&mut out, 0x22, source.as_bytes());
    for (k, v) in tags {
        let mut tag = Vec::new();
        len_field(&mut tag, 0x0a, k.as_bytes());
        len_field(&mut tag, 0x12, v.as_bytes());
        len_field(&mut out, 0x32, &tag);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_the_encoding() {
        for n in [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut v = Vec::new();
            varint(&mut v, n);
            assert_eq!(varint_len(n), v.len(), "{n}");
            let (bytes, len) = varint_bytes(n);
            assert_eq!(bytes.get(..len), Some(v.as_slice()), "{n}");
        }
    }

    #[test]
    fn keys_are_renamed_as_sls_needs() {
        assert_eq!(legal_key("level"), "level");
        assert_eq!(legal_key("__time__"), "__time___");
        assert_eq!(legal_key("9a-b"), "_9a_b");
        assert_eq!(legal_key(""), "_");
        assert_eq!(legal_key("é"), "_");
    }

    #[test]
    fn a_log_has_time_contents_and_nanoseconds() {
        let mut out = Vec::new();
        encode_log(&mut out, &[("a".into(), Value::Str("b".to_string()))], 1, 2);
        assert_eq!(
            out,
            vec![0x0a, 15, 0x08, 1, 0x12, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x25, 2, 0, 0, 0]
        );
    }

    use crate::testgen::Gen;

    const ALPHABET: [&str; 12] = ["a", "Z", "0", "_", "-", " ", ".", "é", "中", ":", "9", "\n"];

    #[test]
    fn the_cached_encoder_writes_what_the_general_one_writes() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let mut pool: Vec<Key> = RESERVED_KEYS.iter().map(|k| Key::from(*k)).collect();
        for _ in 0..40 {
            let n = g.below(12);
            pool.push(Key::from(g.text(&ALPHABET, n).as_str()));
        }
        pool.push(Key::from("x".repeat(200).as_str()));
        // Keys whose Key field and value tag just fit the padded block, or just do not.
        for n in 27..=33 {
            pool.push(Key::from("k".repeat(n).as_str()));
        }
        let big = "v".repeat(MAX_VALUE_BYTES + 3);
        let mut keys = KeyCache::new();
        // All records also into one buffer each, as a batch holds them: the cached encoder
        // writes ahead of its record and cuts back, and must leave nothing behind.
        let (mut all_general, mut all_cached) = (Vec::new(), Vec::with_capacity(100));
        for round in 0..3000 {
            let mut fields: Vec<(Key, Value)> = Vec::new();
            for _ in 0..g.below(16) {
                let key = Key::clone(&pool[g.below(pool.len())]);
                // Some values put the body's length past one varint byte, and past two.
                let len = match g.below(20) {
                    0 => 3000 + g.below(20000),
                    1 => 100 + g.below(100),
                    // Around where a content's length takes a second byte.
                    2 => 80 + g.below(50),
                    _ => g.below(40),
                };
                let value = match g.below(5) {
                    0 => Value::None,
                    1 => Value::Int(format!("{}", g.next())),
                    _ => Value::Str(g.text(&ALPHABET, len)),
                };
                fields.push((key, value));
            }
            if round % 500 == 0 {
                fields.push((Key::clone(&pool[0]), Value::Str(big.clone())));
            }
            let time = g.next() as i64;
            let ns = g.next() as u32;
            let (mut general, mut cached) = (vec![7u8], vec![7u8]);
            encode_log(&mut general, &fields, time, ns);
            encode_log_cached(&mut cached, &fields, time, ns, &mut keys);
            assert_eq!(general, cached, "round {round}");
            encode_log(&mut all_general, &fields, time, ns);
            encode_log_cached(&mut all_cached, &fields, time, ns, &mut keys);
        }
        assert!(all_general == all_cached);
    }
}
