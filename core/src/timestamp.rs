//! `%d{...}` date formats (parsers/timestamp.py): the matcher elements of the written text and
//! text -> epoch seconds/nanoseconds in the configured zone, with the reference's caches where
//! they decide results (a minute's base second is remembered, as Python does).

use std::collections::HashMap;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

use crate::matcher::{El, Matcher, Mode, Set};
use crate::pyrepr::repr;

const CACHE_LIMIT: usize = 200_000;

/// A format letter this parser does not read, or a malformed format (the reference's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormatError(pub String);

/// An exception the reference lets escape from the conversion (parse reports it as internal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internal(pub &'static str);

#[derive(Clone, Debug)]
struct Field {
    letter: char,
    count: usize,
    els: Vec<El>,
    width: Option<usize>,
}

#[derive(Clone, Debug)]
enum Tok {
    Field(Field),
    Lit(String),
}

fn digits(min: usize, max: Option<usize>, mode: Mode) -> El {
    El::class(Set::digits(), min, max, mode)
}

fn numeric(letter: char, count: usize) -> Field {
    if count == 1 {
        return Field {
            letter,
            count,
            els: vec![digits(1, Some(2), Mode::Greedy)],
            width: None,
        };
    }
    Field {
        letter,
        count,
        els: vec![digits(count, Some(count), Mode::Possessive)],
        width: Some(count),
    }
}

fn field(letter: char, count: usize) -> Result<Field, DateFormatError> {
    let f = |els: Vec<El>, width: Option<usize>| {
        Ok(Field {
            letter,
            count,
            els,
            width,
        })
    };
    let letters = |min, max, mode| El::class(Set::letters(), min, max, mode);
    match letter {
        'y' => {
            let w = if count == 2 { 2 } else { 4 };
            f(vec![digits(w, Some(w), Mode::Possessive)], Some(w))
        }
        'M' if count >= 3 => {
            if count == 3 {
                f(vec![letters(3, Some(3), Mode::Possessive)], Some(3))
            } else {
                f(vec![letters(1, None, Mode::Greedy)], None)
            }
        }
        'M' | 'd' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' | 'u' => Ok(numeric(letter, count)),
        'S' => f(
            vec![digits(count, Some(count), Mode::Possessive)],
            Some(count),
        ),
        'E' => f(vec![letters(1, None, Mode::Greedy)], None),
        'a' => f(
            vec![
                El::class(Set::of(b"AaPp"), 1, Some(1), Mode::Greedy),
                El::class(Set::of(b"Mm"), 1, Some(1), Mode::Greedy),
            ],
            Some(2),
        ),
        'Z' => f(
            vec![El::Alt(vec![
                vec![
                    El::class(Set::of(b"+-"), 1, Some(1), Mode::Greedy),
                    digits(4, Some(4), Mode::Greedy),
                ],
                vec![El::Lit(b"Z".to_vec())],
            ])],
            None,
        ),
        'X' => f(
            vec![El::Alt(vec![
                vec![El::Lit(b"Z".to_vec())],
                vec![
                    El::class(Set::of(b"+-"), 1, Some(1), Mode::Greedy),
                    digits(2, Some(2), Mode::Greedy),
                    El::Alt(vec![
                        vec![
                            El::class(Set::of(b":"), 0, Some(1), Mode::Greedy),
                            digits(2, Some(2), Mode::Greedy),
                        ],
                        vec![],
                    ]),
                ],
            ])],
            None,
        ),
        'z' => f(
            vec![
                letters(1, Some(1), Mode::Greedy),
                El::class(
                    Set::of(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+_-"),
                    0,
                    None,
                    Mode::Greedy,
                ),
            ],
            None,
        ),
        'D' => f(vec![digits(1, Some(3), Mode::Greedy)], None),
        _ => Err(DateFormatError(format!(
            "date letter {} is not supported",
            repr(&letter.to_string())
        ))),
    }
}

fn tokens(fmt: &str) -> Result<Vec<Tok>, DateFormatError> {
    let chars: Vec<char> = fmt.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '\'')
                .map(|p| p + i + 1);
            match end {
                Some(e) if e == i + 1 => {
                    out.push(Tok::Lit("'".to_string()));
                    i += 2;
                }
                Some(e) => {
                    out.push(Tok::Lit(chars[i + 1..e].iter().collect()));
                    i = e + 1;
                }
                None => {
                    return Err(DateFormatError(format!(
                        "unterminated quote in date format {}",
                        repr(fmt)
                    )))
                }
            }
        } else if c.is_ascii_alphabetic() {
            let mut j = i;
            while j < n && chars[j] == c {
                j += 1;
            }
            out.push(Tok::Field(field(c, j - i)?));
            i = j;
        } else {
            out.push(Tok::Lit(c.to_string()));
            i += 1;
        }
    }
    Ok(out)
}

/// The zone name is not in the zone database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownZone;

/// The zone of a date format: a named zone, or the host's.
#[derive(Clone, Debug)]
pub struct Zone(TimeZone);

impl Zone {
    /// `ZoneInfo(name)`, or the host zone for None. Err: the name is not a zone.
    pub fn new(name: Option<&str>) -> Result<Zone, UnknownZone> {
        match name {
            None => Ok(Zone(TimeZone::system())),
            Some(n) => {
                // Python reads zone files by exact (case-sensitive) name.
                let known = jiff::tz::db().available().any(|z| z.as_str() == n);
                if !known {
                    return Err(UnknownZone);
                }
                TimeZone::get(n).map(Zone).map_err(|_| UnknownZone)
            }
        }
    }
}

/// A compiled `%d` format.
#[derive(Clone, Debug)]
pub struct DateFormat {
    pub format: String,
    fields: Vec<Field>,
    /// The written text, without captures, for embedding in the record matcher.
    pub els: Vec<El>,
    full: Matcher,
    zone: Zone,
    pub frac_at: Option<usize>,
    sec_at: Option<usize>,
    seconds: HashMap<String, i64>,
    minutes: HashMap<String, i64>,
    cache: HashMap<String, Option<i64>>,
    /// The previous record's `seconds` key and value.
    last: Option<(String, i64)>,
    /// `sec_at` when only ASCII literals stand between the seconds and the fraction that ends the
    /// text: then `text[..sec_at]` and the two digits decide the epoch second (see `minute`).
    minute_at: Option<usize>,
    /// The last minute `minutes` answered (its text up to the seconds, ASCII) and its base: a
    /// copy of that entry, forgotten whenever `minutes` or `seconds` is cleared, so it never
    /// answers what the reference's caches would not.
    minute: Option<(Vec<u8>, i64)>,
}

pub const NAMED: [(&str, &str); 3] = [
    ("ISO8601", "yyyy-MM-dd HH:mm:ss,SSS"),
    ("STRICT", "yyyy-MM-dd'T'HH:mm:ss,SSS"),
    ("DEFAULT", "yyyy-MM-dd HH:mm:ss,SSS"),
];

impl DateFormat {
    /// Err(Ok): a format error; Err(Err): unknown zone.
    pub fn new(
        fmt: &str,
        zone: Option<&str>,
    ) -> Result<DateFormat, Result<DateFormatError, UnknownZone>> {
        let fmt = NAMED
            .iter()
            .find(|(n, _)| *n == fmt)
            .map_or(fmt, |(_, f)| *f)
            .to_string();
        let toks = tokens(&fmt).map_err(Ok)?;
        if !toks
            .iter()
            .any(|t| matches!(t, Tok::Field(f) if f.letter == 'd'))
        {
            return Err(Ok(DateFormatError(format!(
                "date format {} has no day (d): cannot place records in time",
                repr(&fmt)
            ))));
        }
        let zone = Zone::new(zone).map_err(Err)?;
        let mut els = Vec::new();
        let mut full = Vec::new();
        let mut fields = Vec::new();
        for t in &toks {
            match t {
                Tok::Field(f) => {
                    els.extend(f.els.iter().cloned());
                    full.push(El::Group(fields.len(), f.els.clone()));
                    fields.push(f.clone());
                }
                Tok::Lit(s) => {
                    els.push(El::Lit(s.as_bytes().to_vec()));
                    full.push(El::Lit(s.as_bytes().to_vec()));
                }
            }
        }
        let mut d = DateFormat {
            format: fmt,
            full: Matcher::new(full, fields.len(), true),
            fields,
            els,
            zone,
            frac_at: None,
            sec_at: None,
            seconds: HashMap::new(),
            minutes: HashMap::new(),
            cache: HashMap::new(),
            last: None,
            minute_at: None,
            minute: None,
        };
        d.layout(&toks);
        Ok(d)
    }

    fn layout(&mut self, toks: &[Tok]) {
        let mut width = 0;
        let mut sec_at = None;
        // Only ASCII literals since the seconds field (`sec_at` and `minute_at` then agree).
        let mut only_lits = false;
        for (index, t) in toks.iter().enumerate() {
            match t {
                Tok::Lit(s) => {
                    width += s.chars().count();
                    only_lits &= s.is_ascii();
                }
                Tok::Field(f) => {
                    if f.letter == 'S' && index == toks.len() - 1 {
                        self.frac_at = Some(width);
                        self.sec_at = sec_at;
                        self.minute_at = sec_at.filter(|_| only_lits);
                        return;
                    }
                    let Some(w) = f.width else { return };
                    if f.letter == 'S' {
                        return;
                    }
                    only_lits = f.letter == 's' && f.count == 2;
                    if only_lits {
                        sec_at = Some(width);
                    }
                    width += w;
                }
            }
        }
        self.frac_at = Some(width);
        self.sec_at = sec_at;
        self.minute_at = sec_at.filter(|_| only_lits);
    }

    /// A text in the minute `minute` holds: that minute's base plus the two digits of the
    /// seconds, what `second_of` answers from `minutes` (a key's `seconds` entry holds the same
    /// sum). None: another minute, or a text this shortcut does not read.
    #[inline]
    fn same_minute(&self, text: &str) -> Option<(i64, u32)> {
        let (frac_at, at) = (self.frac_at?, self.minute_at?);
        let (key, base) = self.minute.as_ref()?;
        let b = text.as_bytes();
        // `key` is ASCII, so an equal `minute` is too; the seconds' two characters are then
        // bytes `at` and `at + 1` when they are ASCII digits, and what follows up to `frac_at`
        // are the layout's literals (`text` matched them), ASCII (`minute_at`): so `frac_at`
        // is the character position the layout counted.
        if !same_bytes(b.get(..at)?, key) {
            return None;
        }
        let t = b.get(at)?.wrapping_sub(b'0');
        let u = b.get(at + 1)?.wrapping_sub(b'0');
        if t > 9 || u > 9 {
            return None;
        }
        let second = i64::from(t) * 10 + i64::from(u);
        Some((base + second, nanos(text.get(frac_at..)?)))
    }

    /// Epoch seconds and nanoseconds of `text` (a match of `els`), or None when it is no valid
    /// time. Internal: the reference raises here (an offset of 24 hours or more).
    pub fn epoch(&mut self, text: &str) -> Result<Option<(i64, u32)>, Internal> {
        match self.same_minute(text) {
            Some(hit) => Ok(Some(hit)),
            None => self.epoch_cached(text),
        }
    }

    /// `epoch` through the reference's caches (out of line: the usual record takes the
    /// shortcut above, which then needs no registers saved for this).
    #[inline(never)]
    fn epoch_cached(&mut self, text: &str) -> Result<Option<(i64, u32)>, Internal> {
        if let Some(frac_at) = self.frac_at {
            // `text` was matched by the same elements: every field before the fraction has a
            // fixed width, so character positions are the reference's.
            let (key, frac) = split_chars(text, frac_at);
            // Records come in time order: most share the previous record's second, which
            // `seconds` holds too (it was inserted or found on the previous call).
            if let Some((last, s)) = &self.last {
                if last.as_str() == key {
                    return Ok(Some((*s, nanos(frac))));
                }
            }
            let second = match self.seconds.get(key) {
                Some(&s) => Some(s),
                None => self.second_of(text)?,
            };
            if let Some(s) = second {
                let mut last = self.last.take().map(|(k, _)| k).unwrap_or_default();
                last.clear();
                last.push_str(key);
                self.last = Some((last, s));
            }
            return Ok(second.map(|s| (s, nanos(frac))));
        }
        let Some((_, caps)) = self.full.full(text.as_bytes()) else {
            return Ok(None);
        };
        let mut frac = "";
        let mut key = String::new();
        for (f, cap) in self.fields.iter().zip(&caps) {
            let v = cap.and_then(|(a, b)| text.get(a..b)).unwrap_or("");
            if f.letter == 'S' {
                frac = v;
            } else {
                key.push_str(v);
                key.push('\0');
            }
        }
        let seconds = match self.cache.get(&key) {
            Some(&s) => s,
            None => {
                let s = self.convert(text)?;
                if self.cache.len() >= CACHE_LIMIT {
                    self.cache.clear();
                }
                self.cache.insert(key, s);
                s
            }
        };
        Ok(seconds.map(|s| (s, nanos(frac))))
    }

    /// The record parser's fast path: `text[:frac_at]` is known to be fixed width. A minute's
    /// base second is keyed, as the reference keys it, by `text[:frac_at]` without the two
    /// second digits: a field after the seconds (`a`, a date after the time) names the minute
    /// as much as one before them.
    fn second_of(&mut self, text: &str) -> Result<Option<i64>, Internal> {
        let frac_at = self.frac_at.unwrap_or(0);
        let key = split_chars(text, frac_at).0;
        let sec = self.sec_at.and_then(|at| {
            let (head, rest) = split_chars(key, at);
            let [t, u] = *rest.as_bytes().get(..2)? else {
                return None;
            };
            if !t.is_ascii_digit() || !u.is_ascii_digit() {
                return None;
            }
            // Two ASCII digits: byte 2 of `rest` starts a character (or ends it).
            let tail = rest.get(2..)?;
            let s2 = i64::from(t - b'0') * 10 + i64::from(u - b'0');
            Some((head, tail, s2))
        });
        let seconds = if let Some((head, tail, s2)) = sec {
            let mut minute = String::with_capacity(head.len() + tail.len());
            minute.push_str(head);
            minute.push_str(tail);
            let base = match self.minutes.get(&minute) {
                Some(&b) => b,
                None => {
                    let Some(seconds) = self.convert(text)? else {
                        return Ok(None);
                    };
                    let b = seconds - s2;
                    if self.minutes.len() >= CACHE_LIMIT {
                        self.minutes.clear();
                        self.minute = None;
                    }
                    self.minutes.insert(minute, b);
                    b
                }
            };
            // The shortcut's copy holds `head` alone: with `minute_at`, `tail` is the layout's
            // literals, the same in every text that matched.
            if self.minute_at.is_some() && head.is_ascii() {
                let mut copy = self.minute.take().map(|(k, _)| k).unwrap_or_default();
                copy.clear();
                copy.extend_from_slice(head.as_bytes());
                self.minute = Some((copy, base));
            }
            base + s2
        } else {
            let Some(s) = self.convert(text)? else {
                return Ok(None);
            };
            s
        };
        if self.seconds.len() >= CACHE_LIMIT {
            self.seconds.clear();
            self.minute = None;
        }
        self.seconds.insert(key.to_string(), seconds);
        Ok(Some(seconds))
    }

    fn convert(&self, text: &str) -> Result<Option<i64>, Internal> {
        let Some((_, caps)) = self.full.full(text.as_bytes()) else {
            return Ok(None);
        };
        let (mut y, mut mo, mut d, mut h, mut mi, mut s) = (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64);
        let mut pm = false;
        let mut offset: Option<Offset> = None;
        for (f, cap) in self.fields.iter().zip(&caps) {
            let v = cap.and_then(|(a, b)| text.get(a..b)).unwrap_or("");
            let num = || v.parse::<i64>().unwrap_or(0);
            match f.letter {
                'y' => y = num() + if f.count == 2 { 2000 } else { 0 },
                'M' => mo = if f.count <= 2 { num() } else { month(v) },
                'd' => d = num(),
                'm' => mi = num(),
                's' => s = num(),
                'H' | 'k' => h = num(),
                'h' | 'K' => h = num() % 12,
                'a' => pm = v.eq_ignore_ascii_case("pm"),
                'Z' | 'X' => offset = Some(parse_offset(v)?),
                _ => {}
            }
        }
        let hour = h % 24 + if pm { 12 } else { 0 };
        if !(1..=9999).contains(&y) || hour > 23 || mi > 59 || s > 59 {
            return Ok(None);
        }
        let (Ok(y), Ok(mo), Ok(d), Ok(hour), Ok(mi), Ok(s)) = (
            i16::try_from(y),
            i8::try_from(mo),
            i8::try_from(d),
            i8::try_from(hour),
            i8::try_from(mi),
            i8::try_from(s),
        ) else {
            return Ok(None);
        };
        let Ok(dt) = DateTime::new(y, mo, d, hour, mi, s, 0) else {
            return Ok(None);
        };
        let zoned = match offset {
            Some(o) => dt.to_zoned(TimeZone::fixed(o)),
            None => dt.to_zoned(self.zone.0.clone()),
        };
        Ok(zoned.ok().map(|z| z.timestamp().as_second()))
    }
}

/// `text[:at]` and `text[at:]` by character position.
fn split_chars(text: &str, at: usize) -> (&str, &str) {
    if let Some(head) = text.as_bytes().get(..at) {
        if head.is_ascii() {
            // ASCII: the character position is the byte position (a boundary, as the next
            // byte starts a character after an ASCII one).
            return text.split_at(at);
        }
    }
    match text.char_indices().nth(at) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    }
}

fn month(v: &str) -> i64 {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let head: String = v.chars().take(3).collect::<String>().to_ascii_lowercase();
    NAMES
        .iter()
        .position(|&n| n == head)
        .map_or(0, |i| i as i64 + 1)
}

fn parse_offset(text: &str) -> Result<Offset, Internal> {
    if text == "Z" {
        return Ok(Offset::UTC);
    }
    let digits: String = text.chars().skip(1).filter(|&c| c != ':').collect();
    let hours: i32 = digits.get(..2).and_then(|d| d.parse().ok()).unwrap_or(0);
    let minutes: i32 = if digits.len() >= 4 {
        digits.get(2..4).and_then(|d| d.parse().ok()).unwrap_or(0)
    } else {
        0
    };
    let total = hours * 3600 + minutes * 60;
    if total >= 24 * 3600 {
        return Err(Internal("ValueError"));
    }
    let total = if text.starts_with('-') { -total } else { total };
    Offset::from_seconds(total).map_err(|_| Internal("ValueError"))
}

/// `a == b`, for the minute's key (17 bytes in `yyyy-MM-dd HH:mm:`): 8 to 32 bytes as two
/// overlapping words from each end, not a `bcmp` call (~25 instructions a record with its
/// set-up); other lengths as slices.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn ends<const W: usize>(s: &[u8]) -> Option<([u8; W], [u8; W])> {
        Some((*s.first_chunk::<W>()?, *s.last_chunk::<W>()?))
    }
    match n {
        16..=32 => ends::<16>(a).zip(ends::<16>(b)).is_some_and(|(x, y)| {
            u128::from_ne_bytes(x.0) == u128::from_ne_bytes(y.0)
                && u128::from_ne_bytes(x.1) == u128::from_ne_bytes(y.1)
        }),
        8..=15 => ends::<8>(a).zip(ends::<8>(b)).is_some_and(|(x, y)| {
            u64::from_ne_bytes(x.0) == u64::from_ne_bytes(y.0)
                && u64::from_ne_bytes(x.1) == u64::from_ne_bytes(y.1)
        }),
        _ => a == b,
    }
}

/// Nanoseconds of fraction digits ("748" -> 748000000); not digits: 0.
pub fn nanos(frac: &str) -> u32 {
    let b = frac.as_bytes();
    // The usual `SSS` first.
    if let [x, y, z] = *b {
        let (x, y, z) = (
            x.wrapping_sub(b'0'),
            y.wrapping_sub(b'0'),
            z.wrapping_sub(b'0'),
        );
        if x > 9 || y > 9 || z > 9 {
            return 0;
        }
        return (u32::from(x) * 100 + u32::from(y) * 10 + u32::from(z)) * 1_000_000;
    }
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let used = &b[..b.len().min(9)];
    let v = used.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
    // 9 digits at most: below 10^9, and scaled to 9 digits it stays below 10^9.
    v * 10u32.pow(9 - used.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_is_slice_equality_at_every_length_and_position() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n).map(|i| b'0' + (i % 10) as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for k in 0..n {
                let mut b = a.clone();
                b[k] ^= 0x40;
                assert!(!same_bytes(&a, &b), "{n} {k}");
            }
            let mut longer = a.clone();
            longer.push(b'x');
            assert!(!same_bytes(&a, &longer), "{n}");
            assert!(!same_bytes(&longer, &a), "{n}");
        }
    }

    #[test]
    fn dst_gap_and_fold_follow_zoneinfo_fold_zero() {
        let mut d = DateFormat::new("yyyy-MM-dd HH:mm:ss", Some("America/New_York")).unwrap();
        // Skipped hour: 02:30 read with the offset before the change (EST): 07:30 UTC.
        assert_eq!(
            d.epoch("2024-03-10 02:30:00").unwrap(),
            Some((1710055800, 0))
        );
        // Repeated hour: the first one (EDT): 05:30 UTC.
        assert_eq!(
            d.epoch("2024-11-03 01:30:00").unwrap(),
            Some((1730611800, 0))
        );
    }

    /// Each text (a match of the format, as the record parser passes) read after the others
    /// (the minute shortcut warm) and read alone.
    fn agree_with_fresh(fmt: &str, zone: &str, texts: &[&str]) {
        let mut warm = DateFormat::new(fmt, Some(zone)).unwrap();
        for t in texts {
            let mut fresh = DateFormat::new(fmt, Some(zone)).unwrap();
            assert_eq!(
                warm.epoch(t).unwrap(),
                fresh.epoch(t).unwrap(),
                "{zone} {t}"
            );
        }
    }

    #[test]
    fn the_minute_shortcut_agrees_around_dst_changes() {
        let fmt = "yyyy-MM-dd HH:mm:ss,SSS";
        // New York: the skipped hour, and the repeated one (fold 0 throughout).
        agree_with_fresh(
            fmt,
            "America/New_York",
            &[
                "2024-03-10 01:59:58,001",
                "2024-03-10 01:59:59,999",
                "2024-03-10 02:30:00,000",
                "2024-03-10 02:30:59,500",
                "2024-03-10 03:00:00,000",
                "2024-11-03 01:30:00,100",
                "2024-11-03 01:30:42,100",
                "2024-11-03 02:00:01,000",
                "2024-11-03 01:30:43,100",
            ],
        );
        // Lord Howe: half-hour shifts, +10:30 <-> +11 at 02:00 local.
        agree_with_fresh(
            fmt,
            "Australia/Lord_Howe",
            &[
                "2024-10-06 01:59:59,000",
                "2024-10-06 02:00:00,000",
                "2024-10-06 02:15:30,000",
                "2024-10-06 02:15:31,000",
                "2024-10-06 02:30:00,000",
                "2024-04-07 01:30:00,000",
                "2024-04-07 01:45:12,000",
                "2024-04-07 01:45:13,000",
                "2024-04-07 02:00:00,000",
            ],
        );
        // A field after the seconds: the minute's text does not decide it, no shortcut.
        let later = DateFormat::new("HH:mm:ss yyyy-MM-dd", Some("Europe/Berlin")).unwrap();
        assert_eq!((later.sec_at, later.minute_at), (Some(6), None));
        agree_with_fresh(
            fmt,
            "Asia/Shanghai",
            &[
                "2024-01-01 00:00:01,500",
                "2024-01-01 00:00:09,000",
                "2023-12-31 23:59:59,999",
            ],
        );
    }

    /// A field after the seconds (`a`, a date after the time, `a` before the fraction) is part
    /// of the minute's key: texts alike up to the seconds are read by their own minute.
    #[test]
    fn fields_after_the_seconds_name_the_minute() {
        let cases: [(&str, &str, [&str; 3]); 3] = [
            (
                "yyyy-MM-dd hh:mm:ss a",
                "Asia/Shanghai",
                [
                    "2026-11-26 02:15:07 AM",
                    "2026-11-26 02:15:09 PM",
                    "2026-11-26 02:15:30 AM",
                ],
            ),
            (
                "HH:mm:ss dd/MM/yyyy",
                "America/New_York",
                [
                    "10:02:11 25/11/2026",
                    "10:02:13 26/11/2026",
                    "10:02:34 25/11/2026",
                ],
            ),
            (
                "dd hh:mm:ss a,SSS",
                "UTC",
                [
                    "26 02:15:07 AM,001",
                    "26 02:15:09 PM,002",
                    "26 02:15:30 AM,003",
                ],
            ),
        ];
        for (fmt, zone, texts) in cases {
            agree_with_fresh(fmt, zone, &texts);
            let mut d = DateFormat::new(fmt, Some(zone)).unwrap();
            let s: Vec<i64> = texts
                .iter()
                .map(|t| d.epoch(t).unwrap().unwrap().0)
                .collect();
            let apart = if fmt.contains('a') {
                12 * 3600
            } else {
                24 * 3600
            };
            assert_eq!([s[1] - s[0], s[2] - s[0]], [apart + 2, 23], "{fmt}");
        }
    }

    #[test]
    fn fraction_digits_become_nanoseconds() {
        assert_eq!(nanos("748"), 748_000_000);
        assert_eq!(nanos("1"), 100_000_000);
        assert_eq!(nanos("1234567891"), 123_456_789);
        assert_eq!(nanos(""), 0);
        assert_eq!(nanos("012"), 12_000_000);
        assert_eq!(nanos("01x"), 0);
        assert_eq!(nanos("x"), 0);
    }
}
