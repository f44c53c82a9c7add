//! Raw record bytes -> clean text (parsers/lines.py `decode`): BOM, `\r`, NUL and invalid
//! bytes handled as the reference does. UTF-8 only: other encodings stay on the Python engine.

use crate::lines::flags;

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Text and flags of record bytes (final newline excluded). `cut`: the bytes were cut at the
/// size cap, so an incomplete last character is dropped instead of reported.
pub fn decode(raw: &[u8], cut: bool) -> (String, u8) {
    let mut fl = 0u8;
    let raw = raw.strip_prefix(BOM).unwrap_or(raw);
    let mut text = String::with_capacity(raw.len());
    let mut chunks = raw.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        text.push_str(chunk.valid());
        let bad = chunk.invalid();
        if bad.is_empty() {
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
        assert_eq!(
            decode(b"\xef\xbb\xbfx\r\ny\r", false),
            ("x\ny".to_string(), 0)
        );
        assert_eq!(decode(b"a\0b", false), ("ab".to_string(), flags::NUL));
    }
}
