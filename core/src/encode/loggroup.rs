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

/// The `Logs` tag, its length (LEN_GUESS bytes) and the time field (tag, a u32 varint).
const PROLOGUE: usize = 1 + LEN_GUESS + 1 + 5;

/// The protobuf varint of `n`, in the first bytes of the array, and its length: worked out
/// with arithmetic on all the bytes a `u32` can take, written with one fixed-size copy.
#[inline]
fn varint_u32(n: u32) -> ([u8; 5], usize) {
    let len = varint_len(u64::from(n));
    let mut b = [0u8; 5];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = (n >> (7 * i)) as u8 | 0x80;
    }
    // The last byte has no continuation bit (len is 1-5).
    if let Some(last) = b.get_mut(len - 1) {
        *last &= 0x7F;
    }
    (b, len)
}

/// `encode_log` with each key's `Key` field (and the value's tag) from `keys` (worked out once
/// per key), written straight into `out` without a body buffer: the length varint is given two
/// bytes and the body moved in the rare case it needs another count; a usual content (a short
/// key and value) is one fixed-size block. Same bytes as `encode_log`, which writes the rare
/// record with a value over 1 MB (cut, and named in a `truncated_keys` content), so the hot
/// loop keeps no list of cut keys.
pub fn encode_log_cached(
    out: &mut Vec<u8>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    keys: &mut KeyCache,
) {
    let start = out.len();
    if write_log(out, fields, time, time_ns, keys).is_none() {
        out.truncate(start);
        encode_log(out, fields, time, time_ns);
    }
}

/// The `Logs` entry appended to `out`. None: a value over 1 MB, for `encode_log`.
#[inline]
fn write_log(
    out: &mut Vec<u8>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    keys: &mut KeyCache,
) -> Option<()> {
    // Logs (1) { Time (1), Contents (2)..., TimeNs (4) }
    let start = out.len();
    let (tv, tlen) = varint_u32(time as u32);
    let mut head = [0u8; PROLOGUE];
    head[0] = 0x0a;
    head[1 + LEN_GUESS] = 0x08;
    head[2 + LEN_GUESS..].copy_from_slice(&tv);
    out.extend_from_slice(&head);
    out.truncate(start + PROLOGUE - 5 + tlen);
    for (pos, (key, value)) in fields.iter().enumerate() {
        let text = match value {
            Value::Str(s) | Value::Int(s) => s.as_bytes(),
            Value::None => continue,
        };
        if text.len() > MAX_VALUE_BYTES {
            return None;
        }
        let vlen = text.len();
        // The Key field and the value's tag, padded: the usual key's from its position's entry
        // (a length known to be at most PAD, so the block's offsets need no checks).
        if let Some((block, flen)) = keys.short(pos, key) {
            if vlen <= SHORT && out.capacity() - out.len() >= BLOCK {
                short_content(out, block, flen, text);
                continue;
            }
        }
        let (form, flen) = keys.padded(pos, key, key_and_tag);
        match form.first_chunk::<PAD>() {
            Some(block) if flen <= PAD && vlen <= SHORT && out.capacity() - out.len() >= BLOCK => {
                short_content(out, block, flen, text);
            }
            Some(block) if flen <= PAD && flen + 1 + vlen < 0x80 => {
                // The head alone as one block, the same way.
                let mut head = [0u8; PAD + 3];
                head[0] = 0x12;
                head[1] = (flen + 1 + vlen) as u8;
                head[2..2 + PAD].copy_from_slice(block);
                if let Some(b) = head.get_mut(2 + flen) {
                    *b = vlen as u8;
                }
                let end = out.len() + 3 + flen;
                out.extend_from_slice(&head);
                out.truncate(end);
                out.extend_from_slice(text);
            }
            _ => {
                long_head(out, form.get(..flen)?, vlen);
                out.extend_from_slice(text);
            }
        }
    }
    let mut end = [0x25; 5];
    end[1..].copy_from_slice(&time_ns.to_le_bytes());
    out.extend_from_slice(&end);
    set_length(out, start);
    Some(())
}

/// Values up to this many bytes (most are) are put together with their content's head.
const SHORT: usize = 32;

/// The usual content: a short key and value (so its length and the value's fit a byte each).
/// The head (tag, length, Key field padded to `PAD`, value tag, value length) and the value
/// are put together on the stack from fixed-size pieces and appended as one block, cut to its
/// length: no memcpy call and its dispatch on the size. Only into room the buffer has
/// (`BLOCK` bytes): a batch buffer is reserved to its expected size, and the block's slack
/// must not make it reallocate (doubled).
#[inline(always)]
fn short_content(out: &mut Vec<u8>, block: &[u8; PAD], flen: usize, text: &[u8]) {
    let vlen = text.len();
    let mut buf = [0u8; BLOCK];
    buf[0] = 0x12;
    buf[1] = (flen + 1 + vlen) as u8;
    buf[2..2 + PAD].copy_from_slice(block);
    if let Some(b) = buf.get_mut(2 + flen) {
        *b = vlen as u8;
    }
    if let Some(room) = buf.get_mut(3 + flen..) {
        copy_short(room, text);
    }
    let end = out.len() + 3 + flen + vlen;
    out.extend_from_slice(&buf);
    out.truncate(end);
}

/// A usual content's block: its head (with the padded Key field) and room for a short value.
const BLOCK: usize = PAD + 3 + SHORT;

/// `src` copied to the start of `dst` (room for it): up to `SHORT` bytes as two fixed-size
/// pieces, its first and last bytes, overlapping.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    fn ends<const N: usize>(dst: &mut [u8], src: &[u8]) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
            *d = *s;
        }
        let last = src.len().checked_sub(N).and_then(|at| dst.get_mut(at..));
        if let (Some(d), Some(s)) = (
            last.and_then(|d| d.first_chunk_mut::<N>()),
            src.last_chunk::<N>(),
        ) {
            *d = *s;
        }
    }
    match src.len() {
        0 => {}
        1..=3 => {
            let n = src.len();
            for i in [0, n / 2, n - 1] {
                if let (Some(d), Some(s)) = (dst.get_mut(i), src.get(i)) {
                    *d = *s;
                }
            }
        }
        4..=7 => ends::<4>(dst, src),
        8..=15 => ends::<8>(dst, src),
        16..=SHORT => ends::<16>(dst, src),
        n => {
            // Longer than `SHORT`: never from `write_log`, copied whole all the same.
            if let Some(d) = dst.get_mut(..n) {
                d.copy_from_slice(src);
            }
        }
    }
}

/// A content's head when its length or its value's takes more than a byte, or its key is long.
#[cold]
#[inline(never)]
fn long_head(out: &mut Vec<u8>, form: &[u8], vlen: usize) {
    out.push(0x12);
    varint(out, (form.len() + varint_len(vlen as u64) + vlen) as u64);
    out.extend_from_slice(form);
    varint(out, vlen as u64);
}

/// The length of the `Logs` entry that starts at `start` (its tag) written into the LEN_GUESS
/// bytes left for it, the body moved in the rare case the length takes another count.
#[inline]
fn set_length(out: &mut Vec<u8>, start: usize) {
    let at = start + 1;
    let body = at + LEN_GUESS;
    let len = out.len() - body;
    if varint_len(len as u64) == LEN_GUESS {
        if let Some(room) = out.get_mut(at..body) {
            room.copy_from_slice(&[len as u8 | 0x80, (len >> 7) as u8]);
        }
        return;
    }
    // A body under 128 B or over 16 KiB: moved so its length fits.
    let mut bytes = Vec::with_capacity(10);
    varint(&mut bytes, len as u64);
    out.splice(at..body, bytes);
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
            if let Ok(n) = u32::try_from(n) {
                let (bytes, len) = varint_u32(n);
                assert_eq!(bytes.get(..len), Some(v.as_slice()), "{n}");
            }
        }
    }

    #[test]
    fn short_values_of_every_length_are_copied_whole() {
        let src: Vec<u8> = (1..=SHORT as u8 + 2).collect();
        for n in 0..=SHORT + 2 {
            let mut dst = [0u8; SHORT + 8];
            copy_short(&mut dst, &src[..n]);
            assert_eq!(&dst[..n], &src[..n], "{n}");
            assert!(dst[n..].iter().all(|b| *b == 0), "{n}");
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
        // All records also into one buffer each, as a batch holds them, grown as they come
        // (the paths taken when a fixed-size block would not fit the buffer's room): the
        // cached encoder writes blocks past its content and cuts back, and must leave nothing
        // behind.
        let (mut all_general, mut all_cached) = (Vec::new(), Vec::new());
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
            // One buffer with room, as a batch buffer has (the paths a Stream takes), after
            // a byte already there.
            let (mut general, mut cached) = (vec![7u8], Vec::with_capacity(1 << 20));
            cached.push(7u8);
            encode_log(&mut general, &fields, time, ns);
            encode_log_cached(&mut cached, &fields, time, ns, &mut keys);
            assert_eq!(general, cached, "round {round}");
            encode_log(&mut all_general, &fields, time, ns);
            encode_log_cached(&mut all_cached, &fields, time, ns, &mut keys);
        }
        assert!(all_general == all_cached);
    }
}
