//! NDJSON lines (agent/sinks/ndjson.py `encode_records`) with orjson's exact formatting:
//! compact, only `"`, `\` and control characters escaped, non-ASCII written as is.

use super::KeyCache;
use crate::payload::{Key, Value};

/// Bytes a JSON string must escape: `"`, `\\` and the control characters.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether any byte of the word is `"`, `\\` or below 0x20 (the bit tricks of "determine if a
/// word has a byte less than n / equal to n": exact as a yes/no answer).
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    below | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\'))) != 0
}

/// A JSON string literal as orjson writes it. Runs of plain bytes are copied in one piece.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs an escape (the usual case).
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let Some(&b) = bytes.get(i) else { break };
        i += 1;
        if !ESCAPED[usize::from(b)] {
            continue;
        }
        let i = i - 1;
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// The decimal of `v`, written without a temporary String.
fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    out.extend_from_slice(buf.get(at..).unwrap_or_default());
}

/// Whether orjson writes this integer natively: [-(2**63), 2**64 - 1].
fn native(t: &str) -> bool {
    // An Int's text is `-?[0-9]+` without leading zeros: 18 characters are below 2**63.
    if t.len() <= 18 {
        return true;
    }
    t.parse::<i128>()
        .is_ok_and(|v| (-(1i128 << 63)..=((1i128 << 64) - 1)).contains(&v))
}

fn json_value(out: &mut Vec<u8>, v: &Value, sanitize: bool) {
    match v {
        Value::None => out.extend_from_slice(b"null"),
        Value::Str(s) => json_str(out, s),
        Value::Int(t) if sanitize && !native(t) => json_str(out, t),
        Value::Int(t) => out.extend_from_slice(t.as_bytes()),
    }
}

/// The envelope keys every line ends with (`envelope_fields`), duplicates collapsed as a dict.
pub fn envelope(topic: &str, source: &str, tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut extra: Vec<(String, String)> = vec![
        ("__topic__".to_string(), topic.to_string()),
        ("__source__".to_string(), source.to_string()),
    ];
    for (name, value) in tags {
        put(&mut extra, format!("__tag__:{name}"), value.clone());
    }
    extra
}

fn put<K: PartialEq, V>(items: &mut Vec<(K, V)>, key: K, value: V) {
    match items.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => items.push((key, value)),
    }
}

/// What ends each line of a batch: `,"__topic__":...}` and the newline (`envelope_closing`).
pub fn envelope_closing(extra: &[(String, String)]) -> Vec<u8> {
    let mut closing = Vec::new();
    for (k, v) in extra {
        closing.push(b',');
        json_str(&mut closing, k);
        closing.push(b':');
        json_str(&mut closing, v);
    }
    if extra.is_empty() {
        closing.push(b'}');
    } else {
        closing.extend_from_slice(b"}");
    }
    closing.push(b'\n');
    closing
}

/// Whether a record takes the plain path: fields, then the times (no integer beyond 64 bits,
/// which the reference writes through one merged, sanitised object).
#[inline]
fn fits_native(fields: &[(Key, Value)]) -> bool {
    !fields.is_empty()
        && fields
            .iter()
            .all(|(_, v)| !matches!(v, Value::Int(t) if !native(t)))
}

/// The plain path's `__time__` and `__time_ns__` members.
#[inline]
fn times(out: &mut Vec<u8>, time: i64, time_ns: u32) {
    out.extend_from_slice(b",\"__time__\":");
    push_int(out, time);
    out.extend_from_slice(b",\"__time_ns__\":");
    push_int(out, i64::from(time_ns));
}

/// One NDJSON line (`encode_line`): the record's fields, `__time__`, `__time_ns__`, then
/// `closing`. Integers beyond 64 bits take the reference's careful path: one merged object,
/// written as text.
pub fn encode_line(
    out: &mut Vec<u8>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    closing: &[u8],
) {
    let fast = fits_native(fields);
    let mut merged: Vec<(Key, Value)>;
    let (items, sanitize): (&[(Key, Value)], bool) = if fast {
        (fields, false)
    } else {
        merged = Vec::with_capacity(fields.len() + 2);
        for (k, v) in fields {
            put(&mut merged, k.clone(), v.clone());
        }
        put(&mut merged, "__time__".into(), Value::Int(time.to_string()));
        put(
            &mut merged,
            "__time_ns__".into(),
            Value::Int(time_ns.to_string()),
        );
        let sanitize = merged
            .iter()
            .any(|(_, v)| matches!(v, Value::Int(t) if !native(t)));
        (&merged, sanitize)
    };
    out.push(b'{');
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, k);
        out.push(b':');
        json_value(out, v, sanitize);
    }
    if fast {
        times(out, time, time_ns);
    }
    out.extend_from_slice(closing);
}

/// A key as it starts a member: `"key":`.
pub fn key_member(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 3);
    json_str(&mut out, key);
    out.push(b':');
    out
}

/// `encode_line` with each key's `"key":` from `keys` (escaped once per key, not once per
/// field of every record). Lines with an integer beyond 64 bits take `encode_line` itself.
pub fn encode_line_cached(
    out: &mut Vec<u8>,
    fields: &[(Key, Value)],
    time: i64,
    time_ns: u32,
    closing: &[u8],
    keys: &mut KeyCache,
) {
    let fast = fits_native(fields);
    if !fast {
        return encode_line(out, fields, time, time_ns, closing);
    }
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(keys.get(i, k, key_member));
        json_value(out, v, false);
    }
    times(out, time, time_ns);
    out.extend_from_slice(closing);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_test_finds_exactly_the_bytes_to_escape() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut w = *b"abcdefgh";
                w[at] = b;
                let expect = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(needs_escape(u64::from_le_bytes(w)), expect, "{b} at {at}");
            }
        }
        let mut out = Vec::new();
        json_str(&mut out, "0123456789abcdef\"0123456789\u{1}é");
        assert_eq!(out, "\"0123456789abcdef\\\"0123456789\\u0001é\"".as_bytes());
    }

    #[test]
    fn strings_are_escaped_as_orjson_does() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"\\\n\u{1}\u{7f}é");
        assert_eq!(out, "\"a\\\"\\\\\\n\\u0001\u{7f}é\"".as_bytes());
    }

    #[test]
    fn ints_past_64_bits_become_text() {
        let fields = vec![("n".into(), Value::Int("18446744073709551616".to_string()))];
        let mut out = Vec::new();
        encode_line(
            &mut out,
            &fields,
            1,
            2,
            &envelope_closing(&envelope("t", "s", &[])),
        );
        assert_eq!(
            out,
            b"{\"n\":\"18446744073709551616\",\"__time__\":1,\"__time_ns__\":2,\"__topic__\":\"t\",\"__source__\":\"s\"}\n"
        );
    }

    #[test]
    fn the_cached_encoder_writes_what_the_general_one_writes() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const ALPHABET: [&str; 10] = ["a", "\"", "\\", "\n", "\u{1}", "é", "中", " ", "0", "_"];
        let text = |n: usize, next: &mut dyn FnMut() -> u64| -> String {
            (0..n).map(|_| ALPHABET[(next() % 10) as usize]).collect()
        };
        let mut pool: Vec<Key> = vec![Key::from("__time__"), Key::from("n")];
        for _ in 0..30 {
            let n = (next() % 12) as usize;
            pool.push(Key::from(text(n, &mut next).as_str()));
        }
        let closing = envelope_closing(&envelope("t", "s", &[("k".into(), "v".into())]));
        let mut keys = KeyCache::new();
        for round in 0..3000 {
            let mut fields: Vec<(Key, Value)> = Vec::new();
            for _ in 0..next() % 14 {
                let key = Key::clone(&pool[(next() % pool.len() as u64) as usize]);
                let value = match next() % 6 {
                    0 => Value::None,
                    1 => Value::Int(format!("{}", next())),
                    2 if round % 50 == 0 => Value::Int("-99999999999999999999".to_string()),
                    _ => Value::Str(text((next() % 30) as usize, &mut next)),
                };
                fields.push((key, value));
            }
            let (time, ns) = (next() as i64 >> 20, next() as u32);
            let (mut general, mut cached) = (Vec::new(), Vec::new());
            encode_line(&mut general, &fields, time, ns, &closing);
            encode_line_cached(&mut cached, &fields, time, ns, &closing, &mut keys);
            assert_eq!(general, cached, "round {round}");
        }
    }
}
