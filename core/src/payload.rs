//! The payload of `llm_call` records (parsers/payload.py): the well-formed regex, emulated with
//! the same backtracking, then the slow split that also says why a message is malformed.

use crate::byteset;
use crate::matcher::{Caps, El, Matcher, Mode, Set};
use crate::places::counted;
use crate::pyrepr::repr;

/// A record key: shared, so a record's fields cost no allocation per key.
pub type Key = std::sync::Arc<str>;

/// A field value: text, an integer (normalized decimal, any size, as Python's int), or None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(String),
    None,
}

/// CPython's limit on the digits `int(text)` converts (sys.get_int_max_str_digits()).
const MAX_STR_DIGITS: usize = 4300;

/// `int(text)` for `-?[0-9]+` text: the decimal Python prints for it; None where Python
/// raises ValueError (more than 4300 digits).
pub fn int_text(text: &str) -> Option<String> {
    let mut out = String::new();
    int_text_into(text, &mut out).then_some(out)
}

/// `int_text` written over `out` (its capacity reused); false (and `out` empty) where
/// Python raises ValueError.
pub fn int_text_into(text: &str, out: &mut String) -> bool {
    out.clear();
    if plain_int(text) {
        // No sign and no leading zero: already the decimal Python prints (the general path
        // below writes the same text).
        out.push_str(text);
        return true;
    }
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.len() > MAX_STR_DIGITS {
        return false;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        out.push('0');
    } else {
        if neg {
            out.push('-');
        }
        out.push_str(trimmed);
    }
    true
}

/// Whether `int_text_into` converts `text` (`-?[0-9]+`): false where Python raises, without
/// writing the decimal.
pub fn int_converts(text: &str) -> bool {
    if plain_int(text) {
        return true;
    }
    let digits = match text.strip_prefix('-') {
        Some(d) => d,
        None => text.strip_prefix('+').unwrap_or(text),
    };
    digits.len() <= MAX_STR_DIGITS
}

/// Whether `text` (`-?[0-9]+`) is already the decimal Python prints for it: no sign, no
/// leading zero, within the digits `int()` converts.
#[inline(always)]
fn plain_int(text: &str) -> bool {
    text.len() <= MAX_STR_DIGITS
        && text
            .as_bytes()
            .first()
            .is_some_and(|b| (b'1'..=b'9').contains(b))
}

/// Strings of earlier records' values, kept so that a record's values reuse their capacity
/// instead of each being a fresh allocation (`Fill` takes from it and gives back to it).
pub type Spare = Vec<String>;

/// The Strings a `Spare` keeps at most, and the largest capacity a String is kept with: what
/// a parser holds between records stays bounded (some 1 MiB) whatever records went through,
/// while a record of the usual ~20 short fields reuses all of its values' Strings.
pub const SPARE_STRINGS: usize = 64;
pub const SPARE_CAPACITY: usize = 16 << 10;

/// Keeps `s` for a later value if there is room and it is not too big.
pub fn keep(spare: &mut Spare, s: String) {
    if spare.len() < SPARE_STRINGS && s.capacity() <= SPARE_CAPACITY {
        spare.push(s);
    }
}

/// The lanes `copy_padded` copies at once, and the longest text it copies (more goes to
/// `push_str`: a payload's fields are mostly under 16 bytes, its request id 36).
const LANE: usize = 16;
const PADDED_MAX: usize = 3 * LANE;

/// Writes `text` over `s`; `room` is the text the field was cut from, from `text` on. Where
/// `room` has the bytes, whole lanes of 16 are copied instead of `clear` and `push_str` (an
/// out-of-line `append_elements` and a `memcpy` call for a few bytes), the bytes past the
/// text landing in `s`'s spare capacity. Else (the message ends within the lanes, or the text
/// is long) `push_str`, leaving `s` room for the lanes next time: a String of under
/// `PADDED_MAX` bytes grows to under twice that at most (memory stays bounded).
#[inline(always)]
fn write_over(s: &mut String, text: &str, room: &str) {
    debug_assert!(room.starts_with(text));
    if !copy_padded(s, text, room) {
        push_padded(s, text);
    }
}

/// `write_over` where the lanes cannot be copied: out of line, so that the field loop the
/// copy is inlined into stays small enough to be inlined itself.
#[cold]
#[inline(never)]
fn push_padded(s: &mut String, text: &str) {
    s.clear();
    let padded = text.len().div_ceil(LANE) * LANE;
    if padded <= PADDED_MAX {
        s.reserve(padded);
    }
    s.push_str(text);
}

/// `s` set to `text`, copied lane by lane from `room`, which starts at `text` (the same
/// address); false (`s` untouched) where it does not, where `room` has fewer bytes than the
/// lanes, `s` has no capacity for them, or they are over `PADDED_MAX`.
#[inline(always)]
fn copy_padded(s: &mut String, text: &str, room: &str) -> bool {
    let len = text.len();
    let padded = len.div_ceil(LANE) * LANE;
    if padded > PADDED_MAX || s.capacity() < padded || room.as_ptr() != text.as_ptr() {
        return false;
    }
    let Some(src) = room.as_bytes().get(..padded) else {
        return false;
    };
    // SAFETY: `src` has `padded` bytes (the `get` above) and `s`'s buffer has a capacity of at
    // least `padded` (checked above), so each lane copied (`padded` is 0 to 3 lanes) reads and
    // writes in bounds; the buffer is `s`'s own allocation, which no shared reference (such as
    // `room`) can point into while `s` is borrowed mutably, so the two do not overlap. The
    // length set, `len`, is within the bytes written, and those are the `len` bytes at `text`'s
    // address (`room` starts there, checked above): `text` itself, valid UTF-8. The bytes past
    // `len` lie in the spare capacity, which a String may hold anything in.
    unsafe {
        let v = s.as_mut_vec();
        let (from, to) = (src.as_ptr(), v.as_mut_ptr());
        if padded > 0 {
            std::ptr::copy_nonoverlapping(from, to, LANE);
        }
        if padded > LANE {
            std::ptr::copy_nonoverlapping(from.add(LANE), to.add(LANE), LANE);
        }
        if padded > 2 * LANE {
            std::ptr::copy_nonoverlapping(from.add(2 * LANE), to.add(2 * LANE), LANE);
        }
        v.set_len(len);
    }
    true
}

/// The value slot of field `at` (then `at` moves on), keyed `key`; its old value is left for
/// the caller.
#[inline(always)]
fn slot<'f>(
    fields: &'f mut Vec<(Key, Value)>,
    at: &mut usize,
    key: &Key,
    changed: &mut bool,
) -> &'f mut Value {
    let i = (*at).min(fields.len());
    *at = i + 1;
    if i == fields.len() {
        fields.push((key.clone(), Value::None));
        *changed = true;
    } else if let Some(slot) = fields.get_mut(i) {
        if !std::sync::Arc::ptr_eq(&slot.0, key) {
            slot.0 = key.clone();
            *changed = true;
        }
    }
    // i < len: the field was pushed above when `i` was the end.
    &mut fields[i].1
}

/// Writes a record's fields over those of the record before it, in order: a slot that already
/// has the key keeps it (no reference count traffic), a value reuses the String of the value
/// it replaces (else one from `spare`), and `finish` drops the old record's remaining fields
/// into `spare`. Every value is written whole (cleared first): nothing of the old one survives.
pub struct Fill<'a> {
    fields: &'a mut Vec<(Key, Value)>,
    at: usize,
    spare: &'a mut Spare,
    /// The fields of the last record of the other kind (`Fill::kind`).
    parked: Option<Parked<'a>>,
    /// Whether a field's key was written over, or fields were added or dropped (`finish`).
    changed: bool,
    /// Whether this record may leave a String of over `SPARE_CAPACITY` in `fields`.
    long: bool,
}

/// The fields of the last record of the other kind than a `Fill`'s, and what is known of the
/// Fill's own: whether they are of the `text` kind (`Fill::kind`), and whether they may hold
/// a String too big to be reused (`Fill::long`).
struct Parked<'a> {
    fields: &'a mut Vec<(Key, Value)>,
    text: &'a mut bool,
    long: &'a mut bool,
}

impl<'a> Fill<'a> {
    pub fn new(fields: &'a mut Vec<(Key, Value)>, spare: &'a mut Spare) -> Fill<'a> {
        Fill {
            fields,
            at: 0,
            spare,
            parked: None,
            changed: false,
            long: false,
        }
    }

    /// A Fill that keeps the fields of two kinds of record apart (`kind`): `parked` holds
    /// the last record of the kind `fields` is not (`text`: whether `fields` is the text kind;
    /// `long`: whether `fields` may hold a String of over `SPARE_CAPACITY`, which `finish`
    /// updates).
    pub fn with_parked(
        fields: &'a mut Vec<(Key, Value)>,
        parked: &'a mut Vec<(Key, Value)>,
        text: &'a mut bool,
        long: &'a mut bool,
        spare: &'a mut Spare,
    ) -> Fill<'a> {
        Fill {
            fields,
            at: 0,
            spare,
            parked: Some(Parked {
                fields: parked,
                text,
                long,
            }),
            changed: false,
            long: false,
        }
    }

    /// The record's texts may be longer than half `SPARE_CAPACITY`: a String written with
    /// one may grow past `SPARE_CAPACITY`. Shorter texts cannot make one grow that far: a
    /// String is written into only while it has at most `SPARE_CAPACITY`, and one that
    /// must grow for a text takes twice its capacity or the text's length, whichever is more.
    pub fn long(&mut self) {
        self.long = true;
    }

    /// Before the first write: the record is of the text kind (prompt, result, feedback:
    /// event and message) or not (a log, mostly an llm_call's dozen payload fields). Records
    /// of the two kinds alternate; each is written over the last record of its own kind, so
    /// its values are written in place instead of pushed after a shorter record and dropped
    /// before the next one (the outcome is the same: every value is written whole). Values too
    /// big to be reused are freed as their record is parked, as the next write would.
    pub fn kind(&mut self, text: bool) {
        if self.at != 0 {
            return;
        }
        let Some(parked) = &mut self.parked else {
            return;
        };
        if *parked.text == text {
            return;
        }
        std::mem::swap(self.fields, parked.fields);
        *parked.text = text;
        // Only the last record can have left such Strings (`long`): every value of the record
        // before it was written over or dropped, and parked fields were looked at.
        if !*parked.long {
            return;
        }
        for (_, v) in parked.fields.iter_mut() {
            if matches!(v, Value::Str(s) | Value::Int(s) if s.capacity() > SPARE_CAPACITY) {
                *v = Value::None;
            }
        }
    }

    /// Fields written so far.
    pub fn written(&self) -> usize {
        self.at
    }

    /// Forgets the fields written from `at` on (`finish` recycles them).
    pub fn rewind(&mut self, at: usize) {
        self.at = self.at.min(at);
    }

    /// The String a new value is written into: the old value's (unless too big), else a spare.
    fn string(old: Value, spare: &mut Spare) -> String {
        let mut s = match old {
            Value::Str(s) | Value::Int(s) if s.capacity() <= SPARE_CAPACITY => s,
            _ => spare.pop().unwrap_or_default(),
        };
        s.clear();
        s
    }

    /// The String of the next field when it already holds text under `key` (the record
    /// before had the same layout): what `text` writes over without `slot`'s work.
    #[inline(always)]
    fn same_str(&mut self, key: &Key) -> Option<&mut String> {
        match self.fields.get_mut(self.at) {
            Some((k, Value::Str(s)))
                if std::sync::Arc::ptr_eq(k, key) && s.capacity() <= SPARE_CAPACITY =>
            {
                self.at += 1;
                Some(s)
            }
            _ => None,
        }
    }

    #[inline(always)]
    pub fn text(&mut self, key: &Key, text: &str) {
        if let Some(s) = self.same_str(key) {
            s.clear();
            s.push_str(text);
            return;
        }
        self.text_slow(key, text);
    }

    #[inline(never)]
    fn text_slow(&mut self, key: &Key, text: &str) {
        if self.at >= self.fields.len() {
            // Past the fields of the record before (after a shorter record): a spare String.
            let mut s = self.spare.pop().unwrap_or_default();
            s.clear();
            s.push_str(text);
            self.fields.push((key.clone(), Value::Str(s)));
            self.at = self.fields.len();
            self.changed = true;
            return;
        }
        let v = slot(self.fields, &mut self.at, key, &mut self.changed);
        // The common case: text over text, the String written in place.
        if let Value::Str(s) = v {
            if s.capacity() <= SPARE_CAPACITY {
                s.clear();
                s.push_str(text);
                return;
            }
        }
        let mut s = Fill::string(std::mem::replace(v, Value::None), self.spare);
        s.push_str(text);
        *v = Value::Str(s);
    }

    /// `text` with the rest of its message from the field's start (`room`, which starts with
    /// `text`): written by `write_over` when the field's String is there.
    #[inline(always)]
    pub fn text_in(&mut self, key: &Key, text: &str, room: &str) {
        if let Some(s) = self.same_str(key) {
            write_over(s, text, room);
            return;
        }
        self.text_slow(key, text);
    }

    /// `int` with the rest of the message, as `text_in`.
    #[inline(always)]
    pub fn int_in(&mut self, key: &Key, text: &str, room: &str) -> bool {
        if let Some((k, Value::Int(s))) = self.fields.get_mut(self.at) {
            if std::sync::Arc::ptr_eq(k, key) && s.capacity() <= SPARE_CAPACITY && plain_int(text) {
                write_over(s, text, room);
                self.at += 1;
                return true;
            }
        }
        self.int_slow(key, text)
    }

    /// `int_text` of `text`; false (the field not written) where Python raises.
    #[inline(always)]
    pub fn int(&mut self, key: &Key, text: &str) -> bool {
        // The common case: plain digits over an int under the same key, copied as they are
        // (`int_text_into`'s own first case).
        if let Some((k, Value::Int(s))) = self.fields.get_mut(self.at) {
            if std::sync::Arc::ptr_eq(k, key) && s.capacity() <= SPARE_CAPACITY && plain_int(text) {
                s.clear();
                s.push_str(text);
                self.at += 1;
                return true;
            }
        }
        self.int_slow(key, text)
    }

    #[inline(never)]
    fn int_slow(&mut self, key: &Key, text: &str) -> bool {
        if self.at >= self.fields.len() {
            // As in `text_slow`; nothing is pushed where Python raises.
            let mut s = self.spare.pop().unwrap_or_default();
            if !int_text_into(text, &mut s) {
                keep(self.spare, s);
                return false;
            }
            self.fields.push((key.clone(), Value::Int(s)));
            self.at = self.fields.len();
            self.changed = true;
            return true;
        }
        let v = slot(self.fields, &mut self.at, key, &mut self.changed);
        // The common case: an int over an int, written in place.
        if let Value::Int(s) = v {
            if s.capacity() <= SPARE_CAPACITY {
                if int_text_into(text, s) {
                    return true;
                }
                if let Value::Int(s) = std::mem::replace(v, Value::None) {
                    keep(self.spare, s);
                }
                self.at -= 1;
                return false;
            }
        }
        let mut s = Fill::string(std::mem::replace(v, Value::None), self.spare);
        if int_text_into(text, &mut s) {
            *v = Value::Int(s);
            true
        } else {
            keep(self.spare, s);
            self.at -= 1;
            false
        }
    }

    /// A value made elsewhere (the rare paths: errors, feedback, the slow payload split).
    pub fn value(&mut self, key: &Key, value: Value) {
        if matches!(&value, Value::Str(s) | Value::Int(s) if s.capacity() > SPARE_CAPACITY) {
            self.long = true;
        }
        let v = slot(self.fields, &mut self.at, key, &mut self.changed);
        if let Value::Str(s) | Value::Int(s) = std::mem::replace(v, value) {
            keep(self.spare, s);
        }
    }

    /// Rewrites the text of the field at `index` (already written) in place.
    pub fn set_text(&mut self, index: usize, text: &str) {
        if let Some((_, v)) = self.fields.get_mut(index).filter(|_| index < self.at) {
            let mut s = Fill::string(std::mem::replace(v, Value::None), self.spare);
            s.push_str(text);
            *v = Value::Str(s);
        }
    }

    /// Ends the record: the old record's fields past the new one's go to `spare`. Whether the
    /// fields' keys may differ from the record's before (`Record::layout`): false when every
    /// field kept its key.
    pub fn finish(self) -> bool {
        if let Some(parked) = self.parked {
            // The record before's values were all written over or dropped: only this one's
            // can be too big now.
            *parked.long = self.long;
        }
        if self.at >= self.fields.len() {
            // The usual record: as many fields as the one before (no `drain` to set up).
            return self.changed;
        }
        for (_, v) in self.fields.drain(self.at..).rev() {
            if let Value::Str(s) | Value::Int(s) = v {
                keep(self.spare, s);
            }
        }
        // Fields were dropped.
        true
    }
}

/// Outcome of a payload parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Fields(Vec<(Key, Value)>),
    Error(String),
    NotPayload,
    /// The reference raises here (an integer too long for `int()`).
    Internal,
    /// A well-formed `feedback:` message's fields.
    Feedback(Vec<(Key, Value)>),
}

#[derive(Debug, Clone)]
pub struct PayloadParser {
    sep: String,
    names: Vec<Key>,
    ints: Vec<bool>,
    /// Whether the count wire reads each field (crate::places::counted).
    counted: Vec<bool>,
    regex: Option<Matcher>,
    /// The regex's one-pass equivalent, when it has one.
    one_pass: Option<OnePass>,
}

/// The well-formed payload regex as one pass over the first line, for a separator of one
/// ASCII byte that is no digit, `-` or newline. Then every field of the regex is possessive
/// or atomic and no field can take the separator, so the regex has a single way to match:
/// field i ends at the i-th separator (the last one at the line end, the first one also at
/// a blank), and each field either has the shape its class demands or the match fails.
/// The answer is the matcher's, captures included (a unit test compares the two).
#[derive(Debug, Clone)]
struct OnePass {
    sep: u8,
    ints: Vec<bool>,
}

/// Where a first field of text, `[^sep \t\n]*`, ends in `m`: its first separator, blank or
/// newline, else its end.
#[inline(always)]
fn first_word_end(m: &[u8], sep: u8) -> usize {
    byteset::Stops::new(m, [sep, b' ', b'\t', b'\n'], 0)
        .next()
        .unwrap_or(m.len())
}

/// Whether `m[start..end]` is `-?[0-9]+`, or also nothing when not `required` (the atomic
/// `(?:-?[0-9]++)?`).
#[inline(always)]
fn int_shape(m: &[u8], start: usize, end: usize, required: bool) -> bool {
    let Some(t) = m.get(start..end) else {
        return false;
    };
    if t.is_empty() {
        return !required;
    }
    let from = start + usize::from(t.first() == Some(&b'-'));
    from < end && digits_only(m, from, end)
}

/// Whether `m[start..end]` (at most a few bytes, usually) holds ASCII digits only: eight
/// bytes of the message at once, the field's own lanes looked at (the word from `start`,
/// or near the message's end the word that ends at `end`), else byte by byte.
#[inline(always)]
fn digits_only(m: &[u8], start: usize, end: usize) -> bool {
    let len = end.saturating_sub(start);
    if (1..=8).contains(&len) {
        // The low `len` lanes of a little-endian word are its first `len` bytes, the high
        // ones its last (both shifts are below 64).
        let (first, last) = (u64::MAX >> (64 - 8 * len), u64::MAX << (64 - 8 * len));
        if let Some(word) = m.get(start..start + 8) {
            return non_digit_lanes(word_at(word)) & first == 0;
        }
        if let Some(word) = end.checked_sub(8).and_then(|from| m.get(from..end)) {
            return non_digit_lanes(word_at(word)) & last == 0;
        }
    }
    m.get(start..end)
        .is_some_and(|t| t.iter().all(u8::is_ascii_digit))
}

/// The little-endian word of eight bytes (`word` has eight).
#[inline(always)]
fn word_at(word: &[u8]) -> u64 {
    word.try_into().map_or(u64::MAX, u64::from_le_bytes)
}

/// Nonzero bits in each byte of `w` that is no ASCII digit, none in the others: a digit is
/// 0x30..=0x39, so `b ^ 0x30` has no high nibble and a low one below 10 (adding 6 to the
/// low nibble carries into 0x10 exactly where it is 10 or more; no carry crosses a byte).
#[inline(always)]
pub(crate) fn non_digit_lanes(w: u64) -> u64 {
    let x = w ^ (LANE_ONES * 0x30);
    let high = x & (LANE_ONES * 0xF0);
    let low_over_nine = ((x & (LANE_ONES * 0x0F)) + LANE_ONES * 0x06) & (LANE_ONES * 0x10);
    high | low_over_nine
}

/// 1 in every byte.
pub(crate) const LANE_ONES: u64 = 0x0101_0101_0101_0101;

impl OnePass {
    fn new(separator: &str, ints: &[bool]) -> Option<OnePass> {
        let &[sep] = separator.as_bytes() else {
            return None;
        };
        if !sep.is_ascii() || b"-0123456789\n".contains(&sep) || ints.is_empty() {
            return None;
        }
        Some(OnePass {
            sep,
            ints: ints.to_vec(),
        })
    }

    /// Whether the regex matches at the start of `m`; if so `caps` holds its captures (one
    /// per field, all set).
    #[cfg(test)]
    fn captures(&self, m: &[u8], caps: &mut Caps) -> bool {
        caps.clear();
        self.walk(m, None, |_, _, start, end| {
            caps.push(Some((start, end)));
            true
        }) == Walked::Matched
    }

    /// The regex's match at the start of `m`, field by field: `field(i, is_int, start, end)`
    /// is called with each field's span as soon as the field is known to have its shape, so
    /// a caller writes the values while the line is walked, without a buffer of captures in
    /// between. Field i ends at the i-th stop (`byteset::Stops`), which must be a separator; the last
    /// one at the line's end. `field` returning false (an int Python cannot convert) gives
    /// no more fields, but the walk goes on to the line's end: as in the reference, the
    /// conversion fails the payload only where the regex matches the whole line
    /// (`Walked::Stopped`); where it does not, the line is no payload (`Walked::Failed`).
    /// Every start and end given falls between characters (`walked_field` relies on it).
    #[inline(always)]
    fn walk(
        &self,
        m: &[u8],
        word_end: Option<usize>,
        mut field: impl FnMut(usize, bool, usize, usize) -> bool,
    ) -> Walked {
        let sep = self.sep;
        let n = self.ints.len();
        let (mut pos, mut from) = (0, 0);
        let mut stopped = false;
        if self.ints.first() == Some(&false) {
            // A first field of text: `[^sep \t\n]+`, which stops at a blank too (prose fails
            // here, at its first word); the separator must follow unless no field does.
            let k = word_end.unwrap_or_else(|| first_word_end(m, sep));
            let last = n == 1;
            if k == 0 || (!last && m.get(k) != Some(&sep)) {
                return Walked::Failed;
            }
            stopped = !field(0, false, 0, k);
            if last {
                return if stopped {
                    Walked::Stopped
                } else {
                    Walked::Matched
                };
            }
            (pos, from) = (k + 1, 1);
        }
        let mut stops = byteset::Stops::new(m, [sep, b'\n'], pos);
        for (i, &is_int) in self.ints.iter().enumerate().skip(from) {
            let end = if i + 1 == n {
                // The rest of the first line, separators and all.
                stops.find(|&k| m.get(k) == Some(&b'\n')).unwrap_or(m.len())
            } else {
                // The next separator, before the line ends.
                match stops.next() {
                    Some(k) if m.get(k) == Some(&sep) => k,
                    _ => return Walked::Failed,
                }
            };
            if is_int && !int_shape(m, pos, end, i == 0) {
                return Walked::Failed;
            }
            stopped = stopped || !field(i, is_int, pos, end);
            pos = end + 1;
        }
        if stopped {
            Walked::Stopped
        } else {
            Walked::Matched
        }
    }
}

/// The text of a field `OnePass::walk` gave, and the message from the field's start on
/// (`Fill::text_in`'s room), without `str::get`'s char-boundary checks (~250 instructions of a
/// payload's 2,000 before) and for one bounds check.
#[inline(always)]
fn walked_field(message: &str, start: usize, end: usize) -> (&str, &str) {
    debug_assert!(message.get(start..end).is_some());
    if start > end || end > message.len() {
        return ("", "");
    }
    // SAFETY: `start..end` and `start..` are in bounds (checked above), and `start`, `end` and
    // the message's end are char boundaries: the walk gives a field's start as 0 or one past a
    // separator, its end as the message's end or the index of a separator, newline, space or
    // tab; the separator is one ASCII byte (`OnePass::new`), and in UTF-8 an ASCII byte is
    // never part of a longer character, so the index of one, or one past it, always falls
    // between characters.
    unsafe {
        (
            message.get_unchecked(start..end),
            message.get_unchecked(start..),
        )
    }
}

/// How `OnePass::walk` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walked {
    /// The regex matched; every field was given.
    Matched,
    /// The regex does not match.
    Failed,
    /// The regex matched, but a field's value could not be converted (`field` said so).
    Stopped,
}

fn identifier(name: &str) -> bool {
    let mut cs = name.chars();
    match cs.next() {
        Some(c) if c == '_' || c.is_alphabetic() => cs.all(|c| c == '_' || c.is_alphanumeric()),
        _ => false,
    }
}

impl PayloadParser {
    /// Err: the reference's ValueError text.
    pub fn new(separator: &str, fields: &[(String, String)]) -> Result<PayloadParser, String> {
        if separator.is_empty() {
            return Err("payload separator must not be empty".to_string());
        }
        if fields.is_empty() {
            return Err("payload needs at least one field".to_string());
        }
        let mut seen: Vec<&str> = Vec::new();
        for (n, _) in fields {
            if seen.contains(&n.as_str()) {
                return Err("payload field names must be unique".to_string());
            }
            seen.push(n);
        }
        for (name, kind) in fields {
            if kind != "str" && kind != "int" {
                return Err(format!(
                    "payload field {}: type must be str or int, not {}",
                    repr(name),
                    repr(kind)
                ));
            }
        }
        Ok(PayloadParser {
            sep: separator.to_string(),
            names: fields.iter().map(|(n, _)| Key::from(n.as_str())).collect(),
            ints: fields.iter().map(|(_, k)| k == "int").collect(),
            counted: fields.iter().map(|(n, _)| counted(n)).collect(),
            regex: payload_regex(separator, fields),
            one_pass: None,
        }
        .with_one_pass())
    }

    /// The one-pass walk where the regex has one (only where there is a regex: names that
    /// are no identifiers leave the reference without it).
    fn with_one_pass(mut self) -> PayloadParser {
        if self.regex.is_some() {
            self.one_pass = OnePass::new(&self.sep, &self.ints);
        }
        self
    }

    /// The regex's answer (`re.match`) by the matcher, for a layout without a one-pass walk.
    fn matches(&self, message: &str, caps: &mut Caps) -> bool {
        self.regex
            .as_ref()
            .is_some_and(|re| re.matches_into(message.as_bytes(), caps).is_some())
    }

    pub fn names(&self) -> &[Key] {
        &self.names
    }

    /// The fields; NotPayload when the message is not payload-shaped; Error if malformed.
    pub fn parse(&self, message: &str) -> Payload {
        let mut values = Vec::new();
        let mut spare = Spare::new();
        let mut fill = Fill::new(&mut values, &mut spare);
        let outcome = self.parse_into(message, None, &mut Vec::new(), &mut fill);
        fill.finish();
        match outcome {
            Payload::Fields(_) => Payload::Fields(values),
            other => other,
        }
    }

    /// `parse` for the record parser: a well-formed payload's fields are written to `out`
    /// (then `Payload::Fields` comes back empty), `caps` is the matcher's reused buffer, and
    /// the values reuse the Strings `out` holds: the common case allocates nothing once warm.
    /// Other outcomes leave `out` where it was. `word_end`: `first_word` of the message, when
    /// the caller has it (else worked out).
    pub fn parse_into(
        &self,
        message: &str,
        word_end: Option<usize>,
        caps: &mut Caps,
        out: &mut Fill<'_>,
    ) -> Payload {
        self.parse_fields::<false>(message, word_end, caps, out)
    }

    /// `parse_into` writing only the fields the count wire reads (crate::places::counted), the
    /// others checked as they would be converted: the same outcome.
    pub fn parse_counted(
        &self,
        message: &str,
        word_end: Option<usize>,
        caps: &mut Caps,
        out: &mut Fill<'_>,
    ) -> Payload {
        self.parse_fields::<true>(message, word_end, caps, out)
    }

    /// Both, compiled apart (`LEAN` costs the full parse nothing): the one-pass walk where
    /// the layout has one, else the matcher; where the regex fails, the slow split.
    #[inline(always)]
    fn parse_fields<const LEAN: bool>(
        &self,
        message: &str,
        word_end: Option<usize>,
        caps: &mut Caps,
        out: &mut Fill<'_>,
    ) -> Payload {
        let start = out.written();
        let outcome = match &self.one_pass {
            Some(one) => self.fill_walked::<LEAN>(one, message, word_end, out),
            None => self.fill_matched::<LEAN>(message, caps, out),
        };
        match outcome {
            // Moved out whole, not dropped and made again (an empty Vec either way).
            Some(fields @ Payload::Fields(_)) => fields,
            Some(other) => {
                out.rewind(start);
                other
            }
            None => {
                out.rewind(start);
                self.fill_split(message, out)
            }
        }
    }

    /// The well-formed payload written as the one-pass walk finds its fields (one pass over
    /// the line, no captures kept): Fields, Internal (an int Python cannot convert), or None
    /// where the regex fails (the fields written so far are then for the caller to rewind).
    #[inline(always)]
    fn fill_walked<const LEAN: bool>(
        &self,
        one: &OnePass,
        message: &str,
        word_end: Option<usize>,
        out: &mut Fill<'_>,
    ) -> Option<Payload> {
        let walked = one.walk(
            message.as_bytes(),
            word_end,
            // Inlined into the walk's loop (a call per field costs ~30 instructions more).
            #[inline(always)]
            |i, is_int, a, b| {
                let (text, room) = walked_field(message, a, b);
                self.write_field::<LEAN>(i, is_int, text, room, out)
            },
        );
        match walked {
            Walked::Matched => Some(Payload::Fields(Vec::new())),
            Walked::Stopped => Some(Payload::Internal),
            Walked::Failed => None,
        }
    }

    /// `fill_walked` by the matcher's captures (layouts whose regex can backtrack).
    fn fill_matched<const LEAN: bool>(
        &self,
        message: &str,
        caps: &mut Caps,
        out: &mut Fill<'_>,
    ) -> Option<Payload> {
        if !self.matches(message, caps) {
            return None;
        }
        for (i, cap) in caps.iter().enumerate().take(self.names.len()) {
            let text = cap.and_then(|(a, b)| message.get(a..b)).unwrap_or("");
            let is_int = self.ints.get(i).copied().unwrap_or(false);
            if !self.write_field::<LEAN>(i, is_int, text, text, out) {
                return Some(Payload::Internal);
            }
        }
        Some(Payload::Fields(Vec::new()))
    }

    /// Field `i` of a well-formed payload, `text` as the regex captured it, written to `out`
    /// as the reference types it (an empty int is None); false where `int()` raises. `LEAN`
    /// writes only the fields the count wire reads, the others checked as they would be
    /// converted. `room`: the message from the field's start (`Fill::text_in`).
    #[inline(always)]
    fn write_field<const LEAN: bool>(
        &self,
        i: usize,
        is_int: bool,
        text: &str,
        room: &str,
        out: &mut Fill<'_>,
    ) -> bool {
        let Some(name) = self.names.get(i) else {
            return true;
        };
        if LEAN && !self.counted.get(i).copied().unwrap_or(true) {
            return !is_int || text.is_empty() || int_converts(text);
        }
        if !is_int {
            out.text_in(name, text, room);
        } else if text.is_empty() {
            out.value(name, Value::None);
        } else {
            return out.int_in(name, text, room);
        }
        true
    }

    /// The slow split's outcome, its fields written to `out`.
    fn fill_split(&self, message: &str, out: &mut Fill<'_>) -> Payload {
        match self.split(message) {
            Payload::Fields(values) => {
                for (k, v) in values {
                    out.value(&k, v);
                }
                Payload::Fields(Vec::new())
            }
            other => other,
        }
    }

    /// Whether `message` is surely no payload by its first word: the first line has no
    /// separator, or a blank comes before it (prose, mostly), and the layout needs one; then
    /// neither the regex nor the split takes it. `split` asks first, and so does the record
    /// parser for `Fill::kind`, before the payload is parsed: such a log is written over
    /// the last record of prompts and results, which it has the shape of, and not over the
    /// last payload, whose dozen fields it would drop for the next payload to push back.
    /// True only where the message is no payload (the split relies on it), false where
    /// unsure: a separator of more than one byte, or one that is a blank or newline.
    /// `word_end`: `first_word` of the message.
    pub fn surely_not_payload(&self, message: &str, word_end: Option<usize>) -> bool {
        let (Some(&sep), Some(k)) = (self.sep.as_bytes().first(), word_end) else {
            return false;
        };
        self.names.len() > 1 && message.as_bytes().get(k) != Some(&sep)
    }

    /// Where the message's first word ends (at the separator's first byte, a blank or a
    /// newline): what `surely_not_payload` looks at, and where the one-pass walk's first
    /// field of text ends, worked out once for both (`parse_into`). None without a separator.
    pub fn first_word(&self, message: &str) -> Option<usize> {
        let &sep = self.sep.as_bytes().first()?;
        Some(first_word_end(message.as_bytes(), sep))
    }

    fn split(&self, message: &str) -> Payload {
        // Prose fails at its first word, before the separators of its line are counted (a
        // search for a `&str` separator sets up a two-way searcher: some 1,000 instructions).
        if self.surely_not_payload(message, self.first_word(message)) {
            return Payload::NotPayload;
        }
        let line = message.split('\n').next().unwrap_or("");
        let splits = self.names.len() - 1;
        if line.matches(self.sep.as_str()).count() < splits {
            return Payload::NotPayload;
        }
        let parts: Vec<&str> = line.splitn(splits + 1, self.sep.as_str()).collect();
        if parts.len() <= splits {
            return Payload::NotPayload;
        }
        let first = parts.first().copied().unwrap_or("");
        if first.is_empty() || first.contains(' ') || first.contains('\t') {
            return Payload::NotPayload;
        }
        let mut values = Vec::with_capacity(parts.len());
        for ((name, &is_int), text) in self.names.iter().zip(&self.ints).zip(&parts) {
            let v = if !is_int {
                Value::Str((*text).to_string())
            } else if text.is_empty() {
                Value::None
            } else {
                let digits = text.strip_prefix('-').unwrap_or(text);
                let plain = text.bytes().all(|b| b.is_ascii_digit());
                let signed = text.starts_with('-')
                    && !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit());
                if plain || signed {
                    match int_text(text) {
                        Some(t) => Value::Int(t),
                        None => return Payload::Internal,
                    }
                } else {
                    let head: String = text.chars().take(40).collect();
                    return Payload::Error(format!(
                        "payload field {name} is not an integer: {}",
                        repr(&head)
                    ));
                }
            };
            values.push((name.clone(), v));
        }
        Payload::Fields(values)
    }
}

fn not_class(exclude: &str, min: usize) -> El {
    if exclude.is_ascii() {
        El::class(Set::not(exclude.as_bytes()), min, None, Mode::Possessive)
    } else {
        El::NotIn {
            chars: exclude.chars().collect(),
            min,
            mode: Mode::Possessive,
        }
    }
}

/// The well-formed payload as matcher elements (a single-character separator only).
fn payload_regex(separator: &str, fields: &[(String, String)]) -> Option<Matcher> {
    if separator.chars().count() != 1 || fields.iter().any(|(n, _)| !identifier(n)) {
        return None;
    }
    let plus = !"-0123456789".contains(separator);
    let mut els = Vec::new();
    let n = fields.len();
    for (index, (_, kind)) in fields.iter().enumerate() {
        let last = index == n - 1;
        if index > 0 {
            els.push(El::Lit(separator.as_bytes().to_vec()));
        }
        let body = if kind == "int" {
            let p = last || plus;
            let mode = if p { Mode::Possessive } else { Mode::Greedy };
            let run = vec![
                El::class(Set::of(b"-"), 0, Some(1), Mode::Greedy),
                El::class(Set::digits(), 1, None, mode),
            ];
            if index == 0 {
                run
            } else {
                let opt = El::Alt(vec![run, vec![]]);
                if p {
                    vec![El::Atomic(vec![opt])]
                } else {
                    vec![opt]
                }
            }
        } else if index == 0 {
            vec![not_class(&format!("{separator} \t\n"), 1)]
        } else if last {
            vec![El::class(Set::not(b"\n"), 0, None, Mode::Possessive)]
        } else {
            vec![not_class(&format!("{separator}\n"), 0)]
        };
        els.push(El::Group(index, body));
    }
    if fields.last().is_some_and(|(_, k)| k == "int") {
        els.push(El::AtLineEnd);
    }
    Some(Matcher::new(els, n, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(sep: &str, kinds: &[&str]) -> PayloadParser {
        let fields: Vec<(String, String)> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("f{i}"), (*k).to_string()))
            .collect();
        PayloadParser::new(sep, &fields).unwrap()
    }

    /// The lane copy's twin is `clear` and `push_str`: every text and room, every String
    /// capacity before, gives the same String (texts of 0 to some 300 bytes, ASCII and not,
    /// rooms ending within a lane).
    #[test]
    fn writing_over_by_lanes_gives_what_push_str_gives() {
        let mut g = crate::testgen::Gen(0x9E37_79B9_7F4A_7C15);
        let alphabet = ["a", "7", ",", "-", " ", "é", "中", "\n", "😀"];
        for _ in 0..5000 {
            let len = g.below(80);
            let message = g.text(&alphabet, len);
            let start = g.below(message.len() + 1);
            let end = start + g.below(message.len() + 1 - start);
            let (Some(text), Some(room)) = (message.get(start..end), message.get(start..)) else {
                continue;
            };
            let mut s = String::with_capacity(g.below(90));
            let old_len = g.below(8);
            s.push_str(&g.text(&alphabet, old_len));
            for _ in 0..2 {
                write_over(&mut s, text, room);
                assert_eq!(s, text, "{message:?} {start}..{end}");
                assert!(s.capacity() <= (s.len() + PADDED_MAX).max(180));
            }
        }
    }

    #[test]
    fn the_lane_copy_declines_a_room_not_at_its_text() {
        let mut s = String::with_capacity(64);
        s.push_str("old");
        let room = "ab中cdefghijklmnopqrstuvwxyz";
        assert!(!copy_padded(&mut s, "ab中", &room[1..]));
        let elsewhere = String::from("ab中");
        assert!(!copy_padded(&mut s, &elsewhere, room));
        assert_eq!(s, "old");
        assert!(copy_padded(&mut s, &room[..5], room));
        assert_eq!(s, "ab中");
        assert!(!copy_padded(&mut s, &room[..2], &room[..5]));
        assert_eq!(s, "ab中");
    }

    #[test]
    fn a_digit_separator_backtracks_as_the_regex_does() {
        let p = parser("1", &["str", "int", "int"]);
        let Payload::Fields(v) = p.parse("a1121") else {
            panic!()
        };
        assert_eq!(v[1].1, Value::Int("12".to_string()));
        assert_eq!(v[2].1, Value::None);
    }

    #[test]
    fn the_first_path_walk_agrees_with_backtracking_on_payloads() {
        use crate::matcher::tests::{agree, Gen};
        let default: Vec<&str> = [
            "str", "str", "str", "str", "str", "int", "int", "int", "int", "int", "str", "str",
        ]
        .to_vec();
        let parsers = [
            (
                parser(",", &default),
                "chat-app,summary,qwen-max,ws-19,a170b338,200,19183,582,492,1074,,",
            ),
            (
                parser(",", &default),
                "a,b,c,d,e,500,-1,,0012,7,E42,boom, again\nline 2",
            ),
            (parser("1", &["str", "int", "int"]), "a1121"),
            (parser("-", &["str", "int", "str", "int"]), "a-12--3-x-7"),
            (parser(",", &["str", "int"]), "a,-17"),
            (parser("é", &["str", "str", "int"]), "aébé12"),
        ];
        let alphabet = [
            ",", "-", "1", "0", " ", "\t", "\n", "é", "x", "?", "1,", ",-",
        ];
        let mut g = Gen(0xA076_1D64_78BD_642F);
        let (mut decided, mut total) = (0usize, 0usize);
        for (p, seed) in &parsers {
            let Some(re) = &p.regex else { continue };
            for _ in 0..2000 {
                let text = g.mutate(seed, &alphabet);
                total += 1;
                decided += usize::from(agree(re, text.as_bytes(), false));
            }
        }
        // Most payload-like text is decided by the walk, so the comparison is not empty.
        assert!(decided * 2 > total, "decided {decided} of {total}");
    }

    /// The one-pass walk gives the matcher's answer (the plan walk's and the backtracking
    /// one's), captures included, on payload-like text of every layout it takes.
    #[test]
    fn the_one_pass_walk_answers_as_the_matcher() {
        use crate::matcher::tests::Gen;
        let layouts: [&[&str]; 8] = [
            &[
                "str", "str", "str", "str", "str", "int", "int", "int", "int", "int", "str", "str",
            ],
            &["str"],
            &["int"],
            &["int", "str"],
            &["str", "int"],
            &["int", "int", "int"],
            &["str", "str"],
            &["str", "int", "str", "int"],
        ];
        let mut g = Gen(0xD1B5_4A32_D192_ED03);
        let (mut matched, mut total) = (0usize, 0usize);
        for sep in [",", ";", " ", "\t", "|"] {
            for kinds in layouts {
                let p = parser(sep, kinds);
                let (Some(one), Some(re)) = (&p.one_pass, &p.regex) else {
                    panic!("no one-pass walk for {sep:?} {kinds:?}");
                };
                let seed: Vec<&str> = kinds
                    .iter()
                    .map(|k| if *k == "int" { "-12" } else { "ab" })
                    .collect();
                let seed = seed.join(sep);
                let doubled = format!("{sep}{sep}");
                let alphabet = [
                    sep, sep, "-", "1", "0", " ", "\t", "\n", "é", "x", &doubled, "-1", "",
                ];
                for _ in 0..1500 {
                    let text = g.mutate(&seed, &alphabet);
                    let mut caps = vec![Some((7, 7))];
                    let got = one.captures(text.as_bytes(), &mut caps);
                    let (_, general) = re.both(text.as_bytes(), false);
                    let want = re.matches(text.as_bytes());
                    assert_eq!(want, general, "{text:?}");
                    assert_eq!(got, want.is_some(), "{sep:?} {kinds:?} {text:?}");
                    if let Some((_, want)) = want {
                        assert_eq!(caps, want, "{sep:?} {kinds:?} {text:?}");
                    }
                    total += 1;
                    matched += usize::from(got);
                }
            }
        }
        // Both answers are common, so neither side of the comparison is empty.
        assert!(
            matched * 5 > total && matched * 5 < total * 4,
            "{matched} of {total}"
        );
    }

    #[test]
    fn separators_the_regex_can_backtrack_over_have_no_one_pass_walk() {
        for sep in ["-", "1", "0", "é", ",,", "\n"] {
            let p = parser(sep, &["str", "int", "str"]);
            assert!(p.one_pass.is_none(), "{sep:?}");
        }
        let odd = PayloadParser::new(",", &[("a-b".into(), "str".into())]).unwrap();
        assert!(odd.regex.is_none() && odd.one_pass.is_none());
        assert!(parser(",", &["str"]).one_pass.is_some());
    }

    #[test]
    fn int_shapes_are_the_regex_ones_in_words_and_bytes() {
        let mut g = crate::testgen::Gen(0xBF58_476D_1CE4_E5B9);
        for _ in 0..20000 {
            let len = g.below(24);
            let m: Vec<u8> = (0..len)
                .map(|_| *g.pick(&[b'0', b'9', b'5', b'-', b'/', b':', b'a', 0x80, 0xb9, b',']))
                .collect();
            let start = g.below(len + 1);
            let end = start + g.below(len - start + 1);
            let required = g.below(2) == 0;
            let t = &m[start..end];
            let digits = t.strip_prefix(b"-").unwrap_or(t);
            let want = if t.is_empty() {
                !required
            } else {
                !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
            };
            assert_eq!(
                int_shape(&m, start, end, required),
                want,
                "{m:?} {start} {end}"
            );
        }
    }

    #[test]
    fn int_text_normalises_as_python_int() {
        for (text, want) in [
            ("42", Some("42")),
            ("0042", Some("42")),
            ("-0", Some("0")),
            ("-007", Some("-7")),
            ("+5", Some("5")),
            ("000", Some("0")),
        ] {
            assert_eq!(int_text(text).as_deref(), want, "{text}");
        }
        assert_eq!(
            int_text(&"1".repeat(MAX_STR_DIGITS)).map(|t| t.len()),
            Some(MAX_STR_DIGITS)
        );
        assert_eq!(int_text(&"1".repeat(MAX_STR_DIGITS + 1)), None);
        assert_eq!(
            int_text(&format!("-{}", "1".repeat(MAX_STR_DIGITS + 1))),
            None
        );
    }

    fn values(p: &PayloadParser, message: &str) -> Vec<Value> {
        match p.parse(message) {
            Payload::Fields(v) => v.into_iter().map(|(_, v)| v).collect(),
            other => panic!("{message:?}: {other:?}"),
        }
    }

    fn s(t: &str) -> Value {
        Value::Str(t.to_string())
    }

    fn i(t: &str) -> Value {
        Value::Int(t.to_string())
    }

    /// Expected values read off parsers/payload.py; the same for the one-pass walk (`,`), the
    /// matcher (`é`, `-`: the regex can backtrack) and, where a part is no int, the split.
    #[test]
    fn edge_payloads_are_typed_as_the_reference_types_them() {
        let kinds = ["str", "int", "int", "str"];
        for sep in [",", "é", "-", "|"] {
            let p = parser(sep, &kinds);
            let m = |parts: &[&str]| parts.join(sep);
            assert_eq!(
                values(&p, &m(&["a", "", "", ""])),
                [s("a"), Value::None, Value::None, s("")],
                "{sep}"
            );
            if sep != "-" {
                assert_eq!(
                    values(&p, &m(&["a", "-0", "007", "x"])),
                    [s("a"), i("0"), i("7"), s("x")],
                    "{sep}"
                );
                assert_eq!(
                    values(&p, &m(&["a", "-007", "0", "x"])),
                    [s("a"), i("-7"), i("0"), s("x")],
                    "{sep}"
                );
            }
            let error = format!("boom{sep} again{sep}{sep} more");
            assert_eq!(
                values(&p, &m(&["a", "1", "2", &error])),
                [s("a"), i("1"), i("2"), s(&error)],
                "{sep}"
            );
            assert_eq!(
                values(&p, &format!("{}\nb{sep}3", m(&["a", "1", "2", "x"]))),
                [s("a"), i("1"), i("2"), s("x")],
                "{sep}"
            );
            let most = "9".repeat(MAX_STR_DIGITS);
            assert_eq!(
                values(&p, &m(&["a", &most, "1", ""])),
                [s("a"), i(&most), i("1"), s("")],
                "{sep}"
            );
            let zeros = format!("0{most}");
            assert_eq!(
                p.parse(&m(&["a", &zeros, "1", ""])),
                Payload::Internal,
                "{sep}"
            );
            assert_eq!(p.parse(&m(&["a b", "1", "2", ""])), Payload::NotPayload);
            assert_eq!(p.parse(&m(&["a", "1"])), Payload::NotPayload);
            // An int Python cannot convert fails the payload only in a line of payload shape:
            // with a field missing, the line is no payload at all (the regex, then the split,
            // turn it away before any int() is tried).
            assert_eq!(
                p.parse(&m(&["a", &zeros, "1"])),
                Payload::NotPayload,
                "{sep}"
            );
            assert_eq!(
                p.parse(&m(&["a", "1", &zeros])),
                Payload::NotPayload,
                "{sep}"
            );
        }
    }

    /// A record written over the one before it (`parse_into`, the record parser's reuse)
    /// holds what a fresh parse gives, whatever the record before held.
    #[test]
    fn a_payload_written_over_another_is_the_fresh_parse() {
        let p = parser(",", &["str", "int", "int", "str"]);
        let messages = [
            "a,1,2,x",
            "a,,-0,y, z",
            "prose, not a payload",
            "a,x1,2,",
            "bb,0012,345678901234567890123,",
            &format!("a,{},1,", "1".repeat(MAX_STR_DIGITS + 1)),
            "a,1",
        ];
        let mut g = crate::testgen::Gen(0x853C_49E6_748F_EA9B);
        let (mut fields, mut spare) = (Vec::new(), Spare::new());
        for _ in 0..500 {
            let message = *g.pick(&messages);
            let mut fill = Fill::new(&mut fields, &mut spare);
            let got = p.parse_into(message, p.first_word(message), &mut Vec::new(), &mut fill);
            fill.finish();
            match p.parse(message) {
                Payload::Fields(want) => {
                    assert_eq!(got, Payload::Fields(Vec::new()));
                    assert_eq!(fields, want, "{message:?}");
                }
                want => {
                    assert_eq!(got, want, "{message:?}");
                    assert!(fields.is_empty(), "{message:?}");
                }
            }
        }
    }

    #[test]
    fn a_bad_int_is_named_with_its_text() {
        let p = parser(",", &["str", "int"]);
        assert_eq!(
            p.parse("a,x'1"),
            Payload::Error("payload field f1 is not an integer: \"x'1\"".to_string())
        );
        assert_eq!(p.parse("a b,1"), Payload::NotPayload);
    }
}

/// `feedback:<payload>` messages (parsers/payload.py `FeedbackParser` on main): the payload's
/// splitting, but the last field may be left out (then null); fewer fields is malformed.
#[derive(Debug, Clone)]
pub struct FeedbackParser {
    sep: String,
    names: Vec<Key>,
    ints: Vec<bool>,
}

pub const FEEDBACK_PREFIX: &str = "feedback:";

impl FeedbackParser {
    /// Err: the reference's ValueError text (its PayloadParser checks the same settings).
    pub fn new(separator: &str, fields: &[(String, String)]) -> Result<FeedbackParser, String> {
        let payload = PayloadParser::new(separator, fields)?;
        Ok(FeedbackParser {
            sep: separator.to_string(),
            names: payload.names,
            ints: payload.ints,
        })
    }

    pub fn names(&self) -> &[Key] {
        &self.names
    }

    /// The fields of a message that starts with `feedback:`.
    pub fn parse(&self, message: &str) -> Payload {
        let rest = message.get(FEEDBACK_PREFIX.len()..).unwrap_or("");
        let line = rest.split('\n').next().unwrap_or("");
        let n = self.names.len();
        let parts: Vec<&str> = line.splitn(n, self.sep.as_str()).collect();
        if parts.len() < (n - 1).max(1) || parts.first().is_none_or(|p| p.is_empty()) {
            let head: Vec<&str> = self.names[..n - 1].iter().map(|k| &**k).collect();
            let need = match head.join(&self.sep) {
                j if j.is_empty() => self.names[0].to_string(),
                j => j,
            };
            return Payload::Error(format!("feedback needs {need} at least"));
        }
        let mut values = Vec::with_capacity(n);
        for (i, (name, &is_int)) in self.names.iter().zip(&self.ints).enumerate() {
            let text = parts.get(i).copied();
            let v = match text {
                None => Value::None,
                Some("") if is_int => Value::None,
                Some(t) if !is_int => Value::Str(t.to_string()),
                Some(t) => {
                    let digits = t.strip_prefix('-').unwrap_or(t);
                    let plain = t.bytes().all(|b| b.is_ascii_digit());
                    let signed = t.starts_with('-')
                        && !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit());
                    if !(plain || signed) {
                        let head: String = t.chars().take(40).collect();
                        return Payload::Error(format!(
                            "feedback field {name} is not an integer: {}",
                            repr(&head)
                        ));
                    }
                    match int_text(t) {
                        Some(x) => Value::Int(x),
                        None => return Payload::Internal,
                    }
                }
            };
            values.push((name.clone(), v));
        }
        Payload::Fields(values)
    }
}

#[cfg(test)]
mod feedback_tests {
    use super::*;

    fn fields() -> Vec<(String, String)> {
        [("request_id", "str"), ("rating", "str"), ("comment", "str")]
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
            .collect()
    }

    // Expected values read off main's parsers.payload.FeedbackParser.
    #[test]
    fn a_rating_without_comment_has_a_null_comment() {
        let f = FeedbackParser::new(",", &fields()).unwrap();
        let Payload::Fields(v) = f.parse("feedback:r1,down") else {
            panic!()
        };
        assert_eq!(v[2].1, Value::None);
        let Payload::Fields(v) = f.parse("feedback:r1,up,a, b\nmore") else {
            panic!()
        };
        assert_eq!(v[2].1, Value::Str("a, b".into()));
    }

    #[test]
    fn too_few_fields_name_what_is_needed() {
        let f = FeedbackParser::new(",", &fields()).unwrap();
        assert_eq!(
            f.parse("feedback:r1"),
            Payload::Error("feedback needs request_id,rating at least".into())
        );
        assert_eq!(
            f.parse("feedback:,up"),
            Payload::Error("feedback needs request_id,rating at least".into())
        );
    }
}
