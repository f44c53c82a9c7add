//! LogGroup protobuf encoding (agent/sinks/loggroup.py `LogEncoder.encode_log`,
//! `encode_trailer`): the same bytes, key renames and value cuts.

use std::borrow::Cow;

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
pub fn varint(out: &mut Vec<u8>, mut n: u64) {
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

/// One `Logs` entry (tag, length, body) appended to `out`.
pub fn encode_log(out: &mut Vec<u8>, fields: &[(Key, Value)], time: i64, time_ns: u32) {
    let mut body = Vec::with_capacity(256);
    let mut truncated: Vec<String> = Vec::new();
    for (key, value) in fields {
        let text: &[u8] = match value {
            Value::None => continue,
            Value::Str(s) => s.as_bytes(),
            Value::Int(t) => t.as_bytes(),
        };
        let text = if text.len() > MAX_VALUE_BYTES {
            truncated.push(legal_key(key).into_owned());
            truncate(text)
        } else {
            text
        };
        content(&mut body, legal_key(key).as_bytes(), text);
    }
    if !truncated.is_empty() {
        content(
            &mut body,
            TRUNCATED_KEY.as_bytes(),
            truncated.join(",").as_bytes(),
        );
    }
    let tv = (time as u64) & 0xFFFF_FFFF;
    out.push(0x0a);
    varint(out, (body.len() + varint_len(tv) + 6) as u64);
    out.push(0x08);
    varint(out, tv);
    out.extend_from_slice(&body);
    out.push(0x25);
    out.extend_from_slice(&time_ns.to_le_bytes());
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
}
