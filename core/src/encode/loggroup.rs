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

/// The start of a `Logs` entry: its tag, LEN_GUESS bytes left for its length, the time field
/// (tag, a u32 varint), and how many of the bytes that takes.
pub type Head = ([u8; 4 + 5], usize);

/// The `Head` of a record of second `time`.
fn head(time: u32) -> Head {
    let (tv, tlen) = varint_u32(time);
    let mut head = [0u8; 4 + 5];
    head[0] = 0x0a;
    head[1 + LEN_GUESS] = 0x08;
    head[2 + LEN_GUESS..].copy_from_slice(&tv);
    (head, 2 + LEN_GUESS + tlen)
}

/// `encode_log` with each key's content head (`content_prefix`: the Contents tag, the Key
/// field, the value's tag) from `keys` (worked out once per key). The entry is put together in the cache's scratch block (`SCRATCH` bytes, always
/// initialised, its size known to the compiler) and appended to `out` in one copy: a usual
/// content (a short key and value) is written there as fixed-size pieces with one room test,
/// and no length or capacity of `out` is read or written per content. The `Logs` length is
/// known before the copy (a record over the block is appended in parts, its length patched).
/// Same bytes as `encode_log`, which writes the rare record with a value over 1 MB (cut, and
/// named in a `truncated_keys` content), so the hot loop keeps no list of cut keys.
pub fn encode_log_cached(
    out: &mut Vec<u8>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    keys: &mut KeyCache,
) {
    let start = out.len();
    let mut block = keys
        .scratch
        .take()
        .unwrap_or_else(|| Box::new([0; SCRATCH]));
    let done = write_log(out, &mut block, fields, time, time_ns, keys);
    keys.scratch = Some(block);
    if done.is_none() {
        out.truncate(start);
        encode_log(out, fields, time, time_ns);
    }
}

/// Bytes of the scratch block a record is put together in: the bench's records are 230-833
/// bytes; a longer one is appended to the batch a block at a time.
pub const SCRATCH: usize = 4096;

/// A `Logs` entry under way: `buf[..at]` is its next bytes, `out[start..]` what was appended
/// of it already (`spilled`: the entry did not fit in the block).
struct Entry<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    spilled: bool,
}

impl Entry<'_> {
    /// The block's bytes appended to `out`, to make room in it.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, buf: &[u8; SCRATCH], at: usize) {
        self.out
            .extend_from_slice(buf.get(..at).unwrap_or_default());
        self.spilled = true;
    }
}

/// The `Logs` entry appended to `out`. None: a value over 1 MB, for `encode_log`.
#[inline]
fn write_log(
    out: &mut Vec<u8>,
    buf: &mut [u8; SCRATCH],
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    keys: &mut KeyCache,
) -> Option<()> {
    // Logs (1) { Time (1), Contents (2)..., TimeNs (4) }
    let mut entry = Entry {
        start: out.len(),
        out,
        spilled: false,
    };
    let time = time as u32;
    let (bytes, mut at) = match keys.head {
        Some((t, head)) if t == time => head,
        _ => {
            let head = head(time);
            keys.head = Some((time, head));
            head
        }
    };
    if let Some(b) = buf.first_chunk_mut() {
        *b = bytes;
    }
    let mut pos = 0;
    while let Some(rest) = fields.get(pos..) {
        // The usual contents in one run; the field that ended it (if any) the general way.
        let (done, end) = usual_run(rest, pos, keys, buf, at);
        at = end;
        pos += done;
        let Some((key, value)) = fields.get(pos) else {
            break;
        };
        if let Value::Str(s) | Value::Int(s) = value {
            at = other_content(&mut entry, buf, at, pos, key, s.as_bytes(), keys)?;
        }
        pos += 1;
    }
    if at > SCRATCH - 5 {
        entry.spill(buf, at);
        at = 0;
    }
    let mut end = [0x25; 5];
    end[1..].copy_from_slice(&time_ns.to_le_bytes());
    if let Some(b) = buf.get_mut(at..).and_then(|b| b.first_chunk_mut()) {
        *b = end;
    }
    finish(entry, buf, at + 5);
    Some(())
}

/// The usual contents at the start of `fields` (the fields from position `pos` of the record)
/// written into the block from `at`, until a field that is not usual or a lack of room: how
/// many fields were written (a None value is one), and where the block's bytes now end.
/// Usual: the key is the one last seen at its position (`KeyCache::short`) and its content's
/// head (`content_prefix`) takes at most PAD bytes, and the content's length takes a byte.
#[inline(always)]
fn usual_run(
    fields: &[(Key, Value)],
    pos: usize,
    keys: &KeyCache,
    buf: &mut [u8; SCRATCH],
    mut at: usize,
) -> (usize, usize) {
    let mut p = pos;
    for (key, value) in fields {
        let text = match value {
            Value::Str(s) | Value::Int(s) => s.as_bytes(),
            Value::None => {
                p += 1;
                continue;
            }
        };
        let Some((form, hlen)) = keys.short(p, key) else {
            break;
        };
        let vlen = text.len();
        if vlen <= SHORT {
            let Some(w) = buf.get_mut(at..).and_then(|b| b.first_chunk_mut()) else {
                break;
            };
            at += short_content(w, form, hlen, text);
        } else {
            if hlen + vlen > 0x80 {
                break;
            }
            let Some(w) = buf.get_mut(at..).and_then(|b| b.first_chunk_mut()) else {
                break;
            };
            at += medium_content(w, form, hlen, text);
        }
        p += 1;
    }
    (p - pos, at)
}

/// Values up to this many bytes (most are) are copied as fixed-size pieces.
const SHORT: usize = 32;

/// Room for a usual content's head and a short value, for a head of any length a `u8` holds
/// (`Fit::len`), so no offset in it needs a check (a usual content takes at most
/// `PAD + 1 + SHORT` of it).
const BLOCK: usize = 1 + u8::MAX as usize + SHORT;

/// The same for a value whose length takes a byte.
const WIDE: usize = 1 + u8::MAX as usize + 0x7F;

/// A content's head as the KeyCache keeps it for the LogGroup encoder: the Contents tag, a
/// byte for the content's length (0 here), the Key field and the value's tag. The usual
/// content then takes one copy and two bytes.
pub fn content_prefix(key: &str) -> Vec<u8> {
    let mut out = vec![0x12, 0];
    out.extend_from_slice(&key_and_tag(key));
    out
}

/// The usual content's head (`content_prefix`, `hlen` bytes, padded to `PAD`: what follows
/// overwrites the padding) with its length, then the value's length. Where the value goes.
#[inline(always)]
fn content_head<const N: usize>(
    w: &mut [u8; N],
    form: &[u8; PAD],
    hlen: usize,
    vlen: usize,
) -> usize {
    if let Some(d) = w.first_chunk_mut::<PAD>() {
        *d = *form;
    }
    // The content: the head but its first two bytes, the value's length, the value (a
    // prefix is never under 6 bytes; wrapping only spares a check).
    w[1] = (hlen + vlen).wrapping_sub(1) as u8;
    if let Some(b) = w.get_mut(hlen) {
        *b = vlen as u8;
    }
    hlen + 1
}

/// A usual content with a short value into `w`: the head, then the value as two overlapping
/// fixed-size pieces (its first and last bytes). Its length.
#[inline(always)]
fn short_content(w: &mut [u8; BLOCK], form: &[u8; PAD], hlen: usize, text: &[u8]) -> usize {
    let at = content_head(w, form, hlen, text.len());
    let n = text.len();
    // Halves by size: 4-7 and 16-32 bytes are the most common values.
    if n < 8 {
        if n >= 4 {
            piece::<4>(w, at, text);
        } else if n > 0 {
            for i in [0, n / 2, n - 1] {
                if let (Some(d), Some(s)) = (w.get_mut(at + i), text.get(i)) {
                    *d = *s;
                }
            }
        }
    } else if n < 16 {
        piece::<8>(w, at, text);
    } else {
        piece::<16>(w, at, text);
    }
    at + n
}

/// `text` (N to 2N bytes) copied to `w[at..]` as its first and last N bytes.
#[inline(always)]
fn piece<const N: usize>(w: &mut [u8; BLOCK], at: usize, text: &[u8]) {
    let n = text.len();
    if let (Some(a), Some(b)) = (text.first_chunk::<N>(), text.last_chunk::<N>()) {
        if let Some(d) = w.get_mut(at..at + N) {
            d.copy_from_slice(a);
        }
        if let Some(d) = w.get_mut(at + n - N..at + n) {
            d.copy_from_slice(b);
        }
    }
}

/// A usual content with a longer value (its length and the content's still a byte each) into
/// `w`: the head, then the value copied whole. Its length.
#[inline(always)]
fn medium_content(w: &mut [u8; WIDE], form: &[u8; PAD], hlen: usize, text: &[u8]) -> usize {
    let at = content_head(w, form, hlen, text.len());
    let to = at + text.len();
    if let Some(d) = w.get_mut(at..to) {
        d.copy_from_slice(text);
    }
    to
}

/// Any other content (a long key or value, or no room left in the block) written at `at` in
/// the block, the block spilled first when it has not the room; a content longer than the
/// block is appended to `out` itself. Where the block's bytes now end. None: a value over
/// 1 MB.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn other_content(
    entry: &mut Entry<'_>,
    buf: &mut [u8; SCRATCH],
    mut at: usize,
    pos: usize,
    key: &Key,
    text: &[u8],
    keys: &mut KeyCache,
) -> Option<usize> {
    let vlen = text.len();
    if vlen > MAX_VALUE_BYTES {
        return None;
    }
    let (head, hlen) = keys.padded(pos, key, content_prefix);
    let form = head.get(2..hlen)?;
    let flen = form.len();
    let (vhead, vl) = varint_u32(vlen as u32);
    let inner = flen + vl + vlen;
    let (chead, cl) = varint_u32(inner as u32);
    let n = 1 + cl + inner;
    if n > SCRATCH - at {
        entry.spill(buf, at);
        at = 0;
        if n > SCRATCH {
            let out = &mut *entry.out;
            out.reserve(n);
            out.push(0x12);
            out.extend_from_slice(chead.get(..cl)?);
            out.extend_from_slice(form);
            out.extend_from_slice(vhead.get(..vl)?);
            out.extend_from_slice(text);
            return Some(0);
        }
    }
    let w = buf.get_mut(at..at + n)?;
    let (tag, w) = w.split_first_mut()?;
    *tag = 0x12;
    let w = put(w, chead.get(..cl)?)?;
    let w = put(w, form)?;
    let w = put(w, vhead.get(..vl)?)?;
    put(w, text)?;
    Some(at + n)
}

/// `bytes` copied to the start of `w`; the rest of `w`.
#[inline(always)]
fn put<'w>(w: &'w mut [u8], bytes: &[u8]) -> Option<&'w mut [u8]> {
    let (head, rest) = w.split_at_mut_checked(bytes.len())?;
    head.copy_from_slice(bytes);
    Some(rest)
}

/// The entry's last `at` bytes (in the block) appended to `out`, and its length given: when
/// it all fit in the block, before the copy (in the LEN_GUESS bytes left for it, or, when it
/// takes another count, by writing the head apart); else patched in `out`.
#[inline]
fn finish(entry: Entry<'_>, buf: &mut [u8; SCRATCH], at: usize) {
    let Entry {
        out,
        start,
        spilled,
    } = entry;
    if spilled {
        out.extend_from_slice(buf.get(..at).unwrap_or_default());
        set_length(out, start);
        return;
    }
    let body = at - 1 - LEN_GUESS;
    // Its varint takes LEN_GUESS (2) bytes.
    if (0x80..0x4000).contains(&body) {
        buf[1] = body as u8 | 0x80;
        buf[2] = (body >> 7) as u8;
        out.extend_from_slice(buf.get(..at).unwrap_or_default());
    } else {
        // A body under 128 B (or over 16 KiB, which spills).
        out.push(0x0a);
        varint(out, body as u64);
        out.extend_from_slice(buf.get(1 + LEN_GUESS..at).unwrap_or_default());
    }
}

/// The length of the `Logs` entry that starts at `start` (its tag) written into the LEN_GUESS
/// bytes left for it, the body moved in the rare case the length takes another count.
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
    // A body over 16 KiB: moved so its length fits.
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
        let src: Vec<u8> = (1..=SHORT as u8).collect();
        for key in ["k", "level", "x".repeat(PAD - 6).as_str()] {
            let head = content_prefix(key);
            let mut form = [0u8; PAD];
            form[..head.len()].copy_from_slice(&head);
            for n in 0..=SHORT {
                let mut w = [0u8; BLOCK];
                let end = short_content(&mut w, &form, head.len(), &src[..n]);
                let mut want = Vec::new();
                content(&mut want, key.as_bytes(), &src[..n]);
                assert_eq!(&w[..end], want.as_slice(), "{key} {n}");
            }
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
        // All records also into one buffer each, as a batch holds them, grown as they come:
        // the cached encoder writes pieces past its content in its scratch block, and must
        // carry nothing of them (or of an earlier record) into the next.
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

    #[test]
    fn records_past_the_scratch_block_are_the_general_encoders_bytes() {
        // Records of many fields (past the row of positions too), their values sized so the
        // block fills at every offset near its end: a usual content that no longer fits, a
        // longer one, one longer than the block itself; and bodies whose length takes one
        // byte, two, or three (a record of 16 KiB and more).
        let mut g = Gen(0x2545_F491_4F6C_DD1D);
        let keys_pool: Vec<Key> = (0..80)
            .map(|i| Key::from(format!("field_{i}").as_str()))
            .collect();
        let mut keys = KeyCache::new();
        let mut all_general = Vec::new();
        let mut all_cached = Vec::new();
        for round in 0..600 {
            let n = match round % 4 {
                0 => 1 + g.below(3),
                1 => 20 + g.below(30),
                _ => 60 + g.below(20),
            };
            let fields: Vec<(Key, Value)> = (0..n)
                .map(|i| {
                    let len = match g.below(12) {
                        0 => SCRATCH - 40 + g.below(80),
                        1 => 100 + g.below(60),
                        2 => 33 + g.below(90),
                        3 => 16_000 + g.below(800),
                        _ => g.below(SHORT + 1),
                    };
                    let value = if g.below(9) == 0 {
                        Value::None
                    } else {
                        Value::Str(g.text(&ALPHABET, len))
                    };
                    (Key::clone(&keys_pool[i % keys_pool.len()]), value)
                })
                .collect();
            let (time, ns) = (g.next() as i64, g.next() as u32);
            let (mut general, mut cached) = (vec![7u8], vec![7u8]);
            encode_log(&mut general, &fields, time, ns);
            encode_log_cached(&mut cached, &fields, time, ns, &mut keys);
            assert!(general == cached, "round {round}");
            encode_log(&mut all_general, &fields, time, ns);
            encode_log_cached(&mut all_cached, &fields, time, ns, &mut keys);
        }
        assert!(all_general == all_cached);
        // A last content ending at every offset near the block's end (the end field then
        // fits, or spills the block first).
        for len in SCRATCH - 60..SCRATCH + 4 {
            for lead in [0, 1, 2] {
                let mut fields: Vec<(Key, Value)> = (0..lead)
                    .map(|i| (Key::clone(&keys_pool[i]), Value::Str("abc".into())))
                    .collect();
                fields.push((Key::clone(&keys_pool[9]), Value::Str("x".repeat(len))));
                let (mut general, mut cached) = (Vec::new(), Vec::new());
                encode_log(&mut general, &fields, 5, 6);
                encode_log_cached(&mut cached, &fields, 5, 6, &mut keys);
                assert!(general == cached, "{len} {lead}");
            }
        }
    }
}
