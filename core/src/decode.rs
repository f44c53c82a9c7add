//! Raw record bytes -> clean text (parsers/lines.py `decode`): BOM, `\r`, NUL and invalid
//! bytes handled as the reference does. UTF-8 only: other encodings stay on the Python engine.

use crate::lines::flags;

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Text and flags of record bytes (final newline excluded). `cut`: the bytes were cut at the
/// size cap, so an incomplete last character is dropped instead of reported.
pub fn decode(raw: &[u8], cut: bool) -> (String, u8) {
    let mut fl = 0u8;
    let raw = raw.strip_prefix(BOM).unwrap_or(raw);
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
        for b in bad {
            text.push_str(&format!("\\x{b:02x}"));
        }
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
    fn invalid_bytes_become_escapes_and_a_cut_character_is_dropped() {
        assert_eq!(
            decode(b"a\xffb", false),
            ("a\\xffb".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"a\xe2\x82", false),
            ("a\\xe2\\x82".to_string(), flags::DECODE)
        );
        assert_eq!(decode(b"a\xe2\x82", true), ("a".to_string(), 0));
        assert_eq!(decode(b"a\xed\xa0", true), ("a".to_string(), 0));
        assert_eq!(
            decode(b"\xc2\xed\xa0", true),
            ("\\xc2".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"a\xe0\x80", true),
            ("a\\xe0\\x80".to_string(), flags::DECODE)
        );
        assert_eq!(
            decode(b"\xef\xbb\xbfx\r\ny\r", false),
            ("x\ny".to_string(), 0)
        );
        assert_eq!(decode(b"a\0b", false), ("ab".to_string(), flags::NUL));
    }
}
