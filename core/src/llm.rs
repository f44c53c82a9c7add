//! LLM water levels of one batch (agent/engine/llm_aggregate.py `LlmAggregate.add`): per label
//! set calls, token and duration sums, histogram buckets, per-minute cells of the records' own
//! time, feedback by normalised rating, and the same caps. Python builds its `LlmAggregate`
//! from these flat columns, so the numbers are exactly the ones `add` would give.
//!
//! Sums are u128 (saturating): Python's ints are unbounded, so the two differ only past 3.4e38.

use std::collections::HashMap;

use crate::fasthash::{hash_strs, FxMap};
use crate::payload::{Key, Value};

pub const DEFAULT_MAX_MINUTE_CELLS: usize = 1_000_000;
const DURATION_BOUNDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TOKEN_BOUNDS: [u128; 14] = [
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];
pub const DURATION_SLOTS: usize = DURATION_BOUNDS.len() + 1;
pub const TOKEN_SLOTS: usize = TOKEN_BOUNDS.len() + 1;
const LABELS: [&str; 6] = [
    "app",
    "module",
    "model",
    "workspace",
    "status_code",
    "error_code",
];
const NUMBERS: [&str; 4] = [
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "duration_ms",
];
/// CPython's limit on the digits `int(text)` converts.
const MAX_STR_DIGITS: usize = 4300;

pub type LabelKey = [String; 6];

#[cfg(test)]
fn other() -> LabelKey {
    LABELS.map(|_| "other".to_string())
}

/// The aggregate of one batch's llm_call and feedback records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Llm {
    max_label_sets: usize,
    max_minute_cells: usize,
    pub keys: Vec<LabelKey>,
    /// Label set by the hash of its six texts: looked up without building the key.
    index: FxMap<u64, usize>,
    /// The sets whose hash is another set's in `index` (rare).
    collided: HashMap<LabelKey, usize>,
    pub calls: Vec<u128>,
    pub input_tokens: Vec<u128>,
    pub output_tokens: Vec<u128>,
    pub total_tokens: Vec<u128>,
    pub duration_ms: Vec<u128>,
    pub duration_buckets: Vec<u64>,
    pub input_buckets: Vec<u64>,
    pub output_buckets: Vec<u64>,
    /// (label index, epoch minute, calls, tokens) in the order the cells were made.
    pub minutes: Vec<(usize, i64, u64, u128)>,
    minute_at: FxMap<(usize, i64), usize>,
    /// Normalised rating -> count, in first-seen order.
    pub feedback: Vec<(String, u64)>,
    pub dropped_calls: u64,
    pub dropped_minutes: u64,
}

impl Llm {
    pub fn new(max_label_sets: usize) -> Llm {
        Llm {
            max_label_sets,
            max_minute_cells: DEFAULT_MAX_MINUTE_CELLS,
            keys: Vec::new(),
            index: FxMap::default(),
            collided: HashMap::new(),
            calls: Vec::new(),
            input_tokens: Vec::new(),
            output_tokens: Vec::new(),
            total_tokens: Vec::new(),
            duration_ms: Vec::new(),
            duration_buckets: Vec::new(),
            input_buckets: Vec::new(),
            output_buckets: Vec::new(),
            minutes: Vec::new(),
            minute_at: FxMap::default(),
            feedback: Vec::new(),
            dropped_calls: 0,
            dropped_minutes: 0,
        }
    }

    /// Counts one record whose event is llm_call or feedback (`time_s`: its own time, if any).
    pub fn add(&mut self, fields: &[(Key, Value)], event: &str, time_s: Option<i64>) {
        if event != "llm_call" {
            if event == "feedback" {
                let get = |k: &str| fields.iter().find(|(key, _)| &**key == k).map(|(_, v)| v);
                let rating = normalise_rating(text(get("rating")));
                match self.feedback.iter_mut().find(|(r, _)| *r == rating) {
                    Some(slot) => slot.1 += 1,
                    None => self.feedback.push((rating, 1)),
                }
            }
            return;
        }
        // One pass over the fields for the six labels and four numbers (the first of each
        // name, as a lookup by name finds it).
        let mut labels: [Option<&Value>; 6] = [None; 6];
        let mut numbers: [Option<&Value>; 4] = [None; 4];
        for (k, v) in fields {
            let k: &str = k;
            if let Some(at) = LABELS.iter().position(|l| *l == k) {
                labels[at].get_or_insert(v);
            } else if let Some(at) = NUMBERS.iter().position(|n| *n == k) {
                numbers[at].get_or_insert(v);
            }
        }
        let key: [&str; 6] = labels.map(text);
        let i = self.slot(key);
        let [inp, out, total, ms] = numbers;
        let inp = number(inp);
        let out = number(out);
        let total = match total {
            None | Some(Value::None) => inp.saturating_add(out),
            v => number(v),
        };
        let ms = number(ms);
        let add = |column: &mut Vec<u128>, n: u128| {
            if let Some(c) = column.get_mut(i) {
                *c = c.saturating_add(n);
            }
        };
        add(&mut self.calls, 1);
        add(&mut self.input_tokens, inp);
        add(&mut self.output_tokens, out);
        add(&mut self.total_tokens, total);
        add(&mut self.duration_ms, ms);
        bump(
            &mut self.duration_buckets,
            i * DURATION_SLOTS + duration_slot(ms),
        );
        bump(&mut self.input_buckets, i * TOKEN_SLOTS + token_slot(inp));
        bump(&mut self.output_buckets, i * TOKEN_SLOTS + token_slot(out));
        if let Some(t) = time_s {
            let minute = t.div_euclid(60);
            match self.minute_at.get(&(i, minute)) {
                Some(&at) => {
                    if let Some(cell) = self.minutes.get_mut(at) {
                        cell.2 += 1;
                        cell.3 = cell.3.saturating_add(total);
                    }
                }
                None if self.minutes.len() >= self.max_minute_cells => self.dropped_minutes += 1,
                None => {
                    self.minute_at.insert((i, minute), self.minutes.len());
                    self.minutes.push((i, minute, 1, total));
                }
            }
        }
    }

    /// The index of the set `key`, if it has one.
    fn find(&self, key: &[&str; 6], hash: u64) -> Option<usize> {
        let &i = self.index.get(&hash)?;
        let known = self.keys.get(i)?;
        if known.iter().zip(key).all(|(a, b)| a == b) {
            return Some(i);
        }
        self.collided.get(&key.map(str::to_string)).copied()
    }

    /// The index of `key`, made if there is room, else OTHER's (the call counted as dropped).
    fn slot(&mut self, key: [&str; 6]) -> usize {
        let mut hash = hash_strs(&key);
        if let Some(i) = self.find(&key, hash) {
            return i;
        }
        let mut key = key;
        let other = ["other"; 6];
        if self.keys.len() >= self.max_label_sets.saturating_sub(1) && key != other {
            self.dropped_calls += 1;
            key = other;
            hash = hash_strs(&key);
            if let Some(i) = self.find(&key, hash) {
                return i;
            }
        }
        let i = self.keys.len();
        let owned: LabelKey = key.map(str::to_string);
        match self.index.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(owned.clone(), i);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        self.keys.push(owned);
        for column in [
            &mut self.calls,
            &mut self.input_tokens,
            &mut self.output_tokens,
            &mut self.total_tokens,
            &mut self.duration_ms,
        ] {
            column.push(0);
        }
        self.duration_buckets.extend([0; DURATION_SLOTS]);
        self.input_buckets.extend([0; TOKEN_SLOTS]);
        self.output_buckets.extend([0; TOKEN_SLOTS]);
        i
    }
}

fn bump(column: &mut [u64], at: usize) {
    if let Some(c) = column.get_mut(at) {
        *c += 1;
    }
}

/// `bisect_left(DURATION_BOUNDS, ms / 1000)`: exact below 2**53 ms, +Inf above either way.
fn duration_slot(ms: u128) -> usize {
    let seconds = ms as f64 / 1000.0;
    DURATION_BOUNDS.partition_point(|b| *b < seconds)
}

fn token_slot(n: u128) -> usize {
    TOKEN_BOUNDS.partition_point(|b| *b < n)
}

/// `_text`: "" for None (or a missing key), else the value as text.
fn text(v: Option<&Value>) -> &str {
    match v {
        None | Some(Value::None) => "",
        Some(Value::Str(s)) => s,
        Some(Value::Int(t)) => t,
    }
}

/// `_int`: a non-negative int; negative, unparsable or missing values are 0.
fn number(v: Option<&Value>) -> u128 {
    let t = match v {
        Some(Value::Int(t)) => t.as_str(),
        Some(Value::Str(s)) => s.as_str(),
        None | Some(Value::None) => return 0,
    };
    // Plain ASCII digits (the usual case) are what `int()` reads them as, leading zeros and
    // all; 38 digits always fit a u128.
    if !t.is_empty() && t.len() <= 38 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u128>().unwrap_or(u128::MAX);
    }
    match py_int(t) {
        Some((false, digits)) => digits.parse::<u128>().unwrap_or(u128::MAX),
        _ => 0,
    }
}

/// `normalise_rating`: `up`/`down` (any case) or an integer in -10..=10 as text, else `other`.
pub fn normalise_rating(value: &str) -> String {
    let text = value.trim_matches(py_space);
    let lower = text.to_ascii_lowercase();
    if lower == "up" || lower == "down" {
        return lower;
    }
    match py_int(&lower) {
        Some((neg, digits)) if digits.len() <= 2 => match digits.parse::<i32>() {
            Ok(n) if n <= 10 => (if neg { -n } else { n }).to_string(),
            _ => "other".to_string(),
        },
        _ => "other".to_string(),
    }
}

/// Python's `str.isspace`.
fn py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x20' | '\u{85}' | '\u{a0}' | '\u{1680}')
        || matches!(
            c,
            '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}'
        )
        || matches!(c, '\u{205f}' | '\u{3000}')
}

/// The first code points of Unicode's runs of decimal digits (Python's `int` reads them all).
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

fn decimal(c: char) -> Option<u8> {
    let c = u32::from(c);
    let at = DIGIT_ZEROS.partition_point(|z| *z <= c);
    let zero = *DIGIT_ZEROS.get(at.checked_sub(1)?)?;
    u8::try_from(c - zero).ok().filter(|d| *d <= 9)
}

/// Python's `int(text)`: (negative, decimal digits without leading zeros), or None where it
/// raises ValueError (whitespace around, one sign, digits with single `_` between them).
pub fn py_int(text: &str) -> Option<(bool, String)> {
    let body = text.trim_matches(py_space);
    let (neg, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body.strip_prefix('+').unwrap_or(body)),
    };
    let mut digits = String::with_capacity(body.len());
    let mut last_digit = false;
    for c in body.chars() {
        if c == '_' {
            if !last_digit {
                return None;
            }
            last_digit = false;
        } else {
            digits.push(char::from(b'0' + decimal(c)?));
            last_digit = true;
        }
    }
    if !last_digit || digits.len() > MAX_STR_DIGITS {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let digits = if trimmed.is_empty() { "0" } else { trimmed };
    Some((neg && digits != "0", digits.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_reads_text_as_python_does() {
        assert_eq!(py_int(" +1_000\n"), Some((false, "1000".into())));
        assert_eq!(py_int("-007"), Some((true, "7".into())));
        assert_eq!(py_int("\u{663}"), Some((false, "3".into())));
        assert_eq!(py_int("-0"), Some((false, "0".into())));
        for bad in ["", "_1", "1_", "1__0", "- 1", "1.0", "0x10", "+-1"] {
            assert_eq!(py_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn ratings_are_normalised() {
        assert_eq!(normalise_rating(" UP "), "up");
        assert_eq!(normalise_rating("-10"), "-10");
        assert_eq!(normalise_rating("11"), "other");
        assert_eq!(normalise_rating("0_5"), "5");
        assert_eq!(normalise_rating("meh"), "other");
    }

    #[test]
    fn label_sets_past_the_cap_go_to_other() {
        let mut llm = Llm::new(2);
        for app in ["a", "b", "c", "a"] {
            let fields = vec![(Key::from("app"), Value::Str(app.into()))];
            llm.add(&fields, "llm_call", Some(120));
        }
        assert_eq!(llm.keys.len(), 2);
        assert_eq!(llm.keys[1], other());
        assert_eq!(llm.calls, vec![2, 2]);
        assert_eq!(llm.dropped_calls, 2);
        assert_eq!(llm.minutes, vec![(0, 2, 2, 0), (1, 2, 2, 0)]);
    }
}
