//! Frames -> typed records (parsers/record.py): the same outcomes, in the same order, with the
//! same `parse_error` texts; `parse` never fails.

use crate::decode::Codec;
use crate::lines::flags;
use crate::matcher::{Caps, Matcher, Resume};
use crate::multiline::{Assembler, Frame};
use crate::pattern::{compile_pattern, CompiledPattern, PatternError};
use crate::start::StartTest;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use crate::payload::{
    int_converts, FeedbackParser, Fill, Key, Payload, PayloadParser, Spare, Value, FEEDBACK_PREFIX,
    SPARE_CAPACITY,
};
use crate::places::counted;

static EVENT: LazyLock<Key> = LazyLock::new(|| Key::from("event"));
static MESSAGE: LazyLock<Key> = LazyLock::new(|| Key::from("message"));
static PARSE_ERROR: LazyLock<Key> = LazyLock::new(|| Key::from("parse_error"));
static RAW_LOG: LazyLock<Key> = LazyLock::new(|| Key::from("__raw_log__"));
use crate::pyrepr::repr;

const ALTERED: u8 = flags::TRUNCATED | flags::DECODE | flags::NUL;
const PREFIX_KEYS: [&str; 7] = [
    "time", "level", "trace_id", "logger", "method", "line", "thread",
];

/// Everything parsing depends on (parsers.record.ParserSettings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserSettings {
    pub pattern: String,
    pub timezone: Option<String>,
    pub payload_separator: String,
    pub payload_fields: Vec<(String, String)>,
    /// None: settings without the feedback event (parsers/ before it), `feedback:` is no prefix.
    pub feedback_fields: Option<Vec<(String, String)>>,
    pub max_record_bytes: i64,
    pub encoding: String,
}

/// A parsed record: fields in design.md order, and its time.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub fields: Vec<(Key, Value)>,
    pub time: Option<i64>,
    pub time_ns: u32,
    pub flags: u8,
    /// A record reused by `parse_next`: the same number for two records of one parser means
    /// the same keys (the same `Arc`s) in the same order, so what was worked out from one's
    /// keys holds for the other (crate::places). 0: unknown (a fresh record).
    pub layout: u64,
}

/// Records are equal by their content: `layout` only says where their keys came from.
impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.fields == other.fields
            && self.time == other.time
            && self.time_ns == other.time_ns
            && self.flags == other.flags
    }
}

impl Eq for Record {}

/// Why settings were refused: the reference's exception class and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    Value(String),
    Pattern(String),
    Index,
    /// The reference's KeyError (a key it cannot place), with the key.
    Key(String),
}

/// A pattern compiled once; makes assemblers and parses their frames.
#[derive(Debug)]
pub struct RecordParser {
    pub settings: ParserSettings,
    codec: Codec,
    starts: Arc<Matcher>,
    /// What a parse reads, apart from the buffers it writes (so both can be borrowed at once,
    /// not moved out of the parser and back for every record).
    rules: Rules,
    /// Capture buffers of the record and payload matchers, reused by every parse.
    caps: Caps,
    payload_caps: Caps,
    /// Strings of earlier records' values, reused by the next records' values.
    spare: Spare,
    /// The record `parse_next` parses into, reused from record to record.
    current: Record,
    /// The fields of the last record of the other kind than `current`'s (`Fill::kind`), and
    /// whether `current`'s are of the text kind.
    parked: Vec<(Key, Value)>,
    text_kind: bool,
    /// Whether `current`'s fields may hold a String too big to be reused (`Fill::long`).
    long: bool,
    /// `Record::layout` of `parked`, and the last number given out.
    parked_layout: u64,
    layouts: u64,
}

/// The compiled pattern and payload layouts a record is parsed by.
#[derive(Debug)]
struct Rules {
    pattern: CompiledPattern,
    payload: PayloadParser,
    feedback: Option<FeedbackParser>,
    /// Record keys in order, their group, whether the key is `line` (an int), and whether
    /// the count wire reads it (crate::places::counted).
    order: Vec<(Key, usize, bool, bool)>,
    time_group: usize,
    message_group: Option<usize>,
    rest_group: Option<usize>,
    /// Where the pattern's match goes on after the start walk's steps (`Frame::marks`).
    resume: Option<Resume>,
}

impl RecordParser {
    pub fn new(settings: ParserSettings) -> Result<RecordParser, SettingsError> {
        let Some(codec) = Codec::of(&settings.encoding) else {
            return Err(SettingsError::Value(format!(
                "encoding {} is not supported by the compiled core: use engine: python",
                repr(&settings.encoding)
            )));
        };
        if settings.max_record_bytes < 1 {
            return Err(SettingsError::Value(
                "max_record_bytes must be positive".to_string(),
            ));
        }
        let pattern = compile_pattern(&settings.pattern, settings.timezone.as_deref()).map_err(
            |e| match e {
                PatternError::Pattern(t) => SettingsError::Pattern(t),
                PatternError::Index => SettingsError::Index,
            },
        )?;
        let starts = pattern
            .start_matcher(codec, &settings.encoding)
            .map_err(|e| match e {
                PatternError::Pattern(t) => SettingsError::Pattern(t),
                PatternError::Index => SettingsError::Index,
            })?;
        let payload = PayloadParser::new(&settings.payload_separator, &settings.payload_fields)
            .map_err(SettingsError::Value)?;
        let taken: Vec<&str> = pattern
            .keys
            .iter()
            .map(String::as_str)
            .chain(["event", "message", "__raw_log__", "parse_error"])
            .collect();
        refuse_clash("payload", payload.names(), &taken)?;
        let feedback = match &settings.feedback_fields {
            None => None,
            Some(ff) => {
                let f = FeedbackParser::new(&settings.payload_separator, ff)
                    .map_err(SettingsError::Value)?;
                refuse_clash("feedback", f.names(), &taken)?;
                Some(f)
            }
        };
        let order: Vec<(Key, usize, bool, bool)> = order_keys(&pattern.keys)
            .into_iter()
            .filter_map(|k| {
                pattern
                    .group(&k)
                    .map(|g| (Key::from(k.as_str()), g, k == "line", counted(&k)))
            })
            .collect();
        if let Some((k, _)) = order_keys(&pattern.keys)
            .into_iter()
            .map(|k| (k.clone(), pattern.unplaced.contains(&k)))
            .find(|(_, missing)| *missing)
        {
            return Err(SettingsError::Key(k));
        }
        let time_group = pattern.group("time").unwrap_or(0);
        let (message_group, rest_group) = if !pattern.has_message {
            (None, pattern.group("_rest"))
        } else if pattern.message_last {
            (pattern.group("message"), None)
        } else {
            (pattern.group("message"), pattern.group("_rest"))
        };
        let starts = Arc::new(starts);
        // The Assemblers' start tests are made from `starts` too: the same walk.
        let resume = StartTest::new(Arc::clone(&starts))
            .shape()
            .and_then(|walk| pattern.regex.resume(&walk));
        Ok(RecordParser {
            settings,
            codec,
            starts,
            rules: Rules {
                pattern,
                payload,
                feedback,
                order,
                time_group,
                message_group,
                rest_group,
                resume,
            },
            caps: Caps::new(),
            payload_caps: Caps::new(),
            spare: Spare::new(),
            current: Record::default(),
            parked: Vec::new(),
            text_kind: false,
            long: false,
            parked_layout: 0,
            layouts: 0,
        })
    }

    /// A fresh assembler for one file read from `start_offset`.
    pub fn assembler(&self, start_offset: u64) -> Assembler {
        let cap = usize::try_from(self.settings.max_record_bytes).unwrap_or(usize::MAX);
        Assembler::new(Arc::clone(&self.starts), self.codec, cap, start_offset)
    }

    /// The record of one frame; a failure becomes a raw record with a reason.
    pub fn parse(&mut self, frame: &Frame) -> Record {
        let mut record = Record::default();
        self.parse_into(frame, &mut record);
        record
    }

    /// `parse` into the parser's own record, reused from call to call: its fields Vec and
    /// its values' Strings keep their capacity, so a record costs no allocation once warm.
    /// The record is valid until the next call.
    pub fn parse_next(&mut self, frame: &Frame) -> &mut Record {
        self.parse_reused::<false>(frame)
    }

    /// `parse_next` for the count wire, where nothing is encoded: only the fields something
    /// then reads are written (crate::places::counted: the event, the texts masking counts,
    /// `time`, `parse_error`, the LLM aggregate's), the others only checked as the full
    /// parse converts them, so the outcome (a record or a raw one, and its reason) is the
    /// same. Copying the unread values (level, trace id, logger, method, line, thread, a
    /// payload's request id) into their Strings was ~10% of the count wire's parse.
    pub fn parse_counted(&mut self, frame: &Frame) -> &mut Record {
        self.parse_reused::<true>(frame)
    }

    /// `LEAN`: the count wire's parse, compiled apart from the full one (which it then costs
    /// nothing).
    fn parse_reused<const LEAN: bool>(&mut self, frame: &Frame) -> &mut Record {
        let was_text = self.text_kind;
        let mut fill = Fill::with_parked(
            &mut self.current.fields,
            &mut self.parked,
            &mut self.text_kind,
            &mut self.long,
            &mut self.spare,
        );
        let time =
            self.rules
                .parse_with::<LEAN>(frame, &mut self.caps, &mut self.payload_caps, &mut fill);
        let changed = fill.finish();
        let record = &mut self.current;
        (record.time, record.time_ns) = time;
        record.flags = frame.flags;
        if self.text_kind != was_text {
            // The fields were swapped with the parked ones (`Fill::kind`): their layouts too.
            std::mem::swap(&mut record.layout, &mut self.parked_layout);
        }
        if changed || record.layout == 0 {
            self.layouts += 1;
            record.layout = self.layouts;
        }
        record
    }

    /// `parse` written over `record` (crate::payload::Fill: nothing of what it held survives).
    pub fn parse_into(&mut self, frame: &Frame, record: &mut Record) {
        let mut fill = Fill::new(&mut record.fields, &mut self.spare);
        let time = self.rules.parse_with::<false>(
            frame,
            &mut self.caps,
            &mut self.payload_caps,
            &mut fill,
        );
        fill.finish();
        (record.time, record.time_ns) = time;
        record.flags = frame.flags;
        record.layout = 0;
    }
}

impl Rules {
    /// Writes the record's fields; returns its time.
    fn parse_with<const LEAN: bool>(
        &mut self,
        frame: &Frame,
        caps: &mut Caps,
        payload_caps: &mut Caps,
        out: &mut Fill<'_>,
    ) -> (Option<i64>, u32) {
        let text: &str = &frame.text;
        if text.len() > SPARE_CAPACITY / 2 {
            out.long();
        }
        let regex = &self.pattern.regex;
        let matched = match (&self.resume, frame.marks.len) {
            (Some(resume), n @ 1..) => {
                let ends = frame.marks.ends.get(..usize::from(n)).unwrap_or_default();
                regex.matches_after(text.as_bytes(), caps, resume, ends)
            }
            _ => regex.matches_into(text.as_bytes(), caps),
        };
        if matched.is_none() {
            let reason = if frame.flags & flags::HEADLESS != 0 {
                "no record header before these lines".to_string()
            } else {
                self.pattern.explain(text.split('\n').next().unwrap_or(""))
            };
            return raw(out, frame, reason, None, 0);
        }
        let group = |g: usize| -> Option<&str> {
            caps.get(g)
                .copied()
                .flatten()
                .and_then(|(a, b)| text.get(a..b))
        };
        let stamp = group(self.time_group).unwrap_or("");
        let (seconds, nanos) = match self.pattern.date.epoch(stamp) {
            Err(e) => {
                return raw(
                    out,
                    frame,
                    format!("internal parser error ({})", e.0),
                    None,
                    0,
                )
            }
            Ok(None) => {
                return raw(
                    out,
                    frame,
                    format!("invalid timestamp {}", repr(stamp)),
                    None,
                    0,
                )
            }
            Ok(Some(t)) => t,
        };
        // Borrowed from the frame in the common layouts (message last, or no message).
        let message: Cow<'_, str> = match (self.message_group, self.rest_group) {
            (Some(m), None) => Cow::Borrowed(group(m).unwrap_or("")),
            (None, Some(r)) => {
                let rest = group(r).unwrap_or("");
                let mut cs = rest.chars();
                cs.next();
                Cow::Borrowed(cs.as_str())
            }
            (Some(m), Some(r)) => Cow::Owned(format!(
                "{}{}",
                group(m).unwrap_or(""),
                group(r).unwrap_or("")
            )),
            (None, None) => Cow::Borrowed(""),
        };
        let message: &str = &message;
        // The reference reads a feedback payload before the record keys.
        let parser = self
            .feedback
            .as_ref()
            .filter(|_| message.starts_with(FEEDBACK_PREFIX));
        let feedback = parser.is_some();
        let rating = if let Some(f) = parser {
            match f.parse(message) {
                Payload::Fields(values) => Some(values),
                Payload::Error(reason) => return raw(out, frame, reason, Some(seconds), nanos),
                _ => {
                    return raw(
                        out,
                        frame,
                        "internal parser error (ValueError)".into(),
                        None,
                        0,
                    )
                }
            }
        } else {
            None
        };
        let text_kind =
            feedback || message.starts_with("prompt:") || message.starts_with("result:");
        // A log's first word, looked at twice (is it prose; the payload's first field).
        let word_end = if text_kind {
            None
        } else {
            self.payload.first_word(message)
        };
        let prose = !text_kind && self.payload.surely_not_payload(message, word_end);
        // Written over the last record of its kind (`Fill::kind`); prose goes with the text.
        out.kind(text_kind || prose);
        for (key, g, is_line, counted) in &self.order {
            // The value and the record's text from its start on: the room `text_in` and
            // `int_in` copy whole 16-byte lanes from (a header's fields are short and the
            // message follows them), instead of a `memcpy` call a field.
            let (v, room) = caps
                .get(*g)
                .copied()
                .flatten()
                .and_then(|(a, b)| {
                    let room = text.get(a..)?;
                    Some((room.get(..b.checked_sub(a)?)?, room))
                })
                .unwrap_or(("", ""));
            if LEAN && !*counted {
                // Not written; `line` checked as `out.int` converts it.
                if *is_line && !(v.is_empty() || v == "?") && !int_converts(v) {
                    let reason = "internal parser error (ValueError)".into();
                    return raw(out, frame, reason, None, 0);
                }
                continue;
            }
            if !*is_line {
                out.text_in(key, v, room);
            } else if v.is_empty() || v == "?" {
                out.value(key, Value::None);
            } else if !out.int_in(key, v, room) {
                let reason = "internal parser error (ValueError)".into();
                return raw(out, frame, reason, None, 0);
            }
        }
        let event: &'static str = if message.starts_with("prompt:") {
            "prompt"
        } else if message.starts_with("result:") {
            "result"
        } else if feedback {
            "feedback"
        } else {
            "log"
        };
        let at_event = out.written();
        // A log that may be a payload is written as an llm_call at once (most are: its event
        // is not rewritten then), and made a log again below if it is none.
        let written = if event == "log" && !prose {
            "llm_call"
        } else {
            event
        };
        let (name, room) = padded_event(written);
        out.text_in(&EVENT, name, room);
        out.text(&MESSAGE, message);
        let mut event = event;
        if event == "log" {
            let payload = if LEAN {
                self.payload
                    .parse_counted(message, word_end, payload_caps, out)
            } else {
                self.payload
                    .parse_into(message, word_end, payload_caps, out)
            };
            match payload {
                Payload::Error(reason) => return raw(out, frame, reason, Some(seconds), nanos),
                Payload::Internal => {
                    return raw(
                        out,
                        frame,
                        "internal parser error (ValueError)".into(),
                        None,
                        0,
                    )
                }
                // Bound, so each arm drops only its own variant's data (`let_go`: the empty
                // Vec of Fields, a test of its capacity), not the whole enum by a call.
                Payload::Fields(values) => {
                    event = "llm_call";
                    let_go(values);
                }
                Payload::Feedback(values) => let_go(values),
                Payload::NotPayload => {}
            }
        } else if let Some(values) = rating {
            for (k, v) in values {
                out.value(&k, v);
            }
        }
        // The names are literals: the same address is the same name (a `bcmp` call saved);
        // two copies of one literal compare equal by their text.
        if !std::ptr::eq(event, written) && event != written {
            out.set_text(at_event, event);
        }
        if frame.flags & ALTERED != 0 {
            out.value(&PARSE_ERROR, Value::Str(damage(frame)));
        }
        (Some(seconds), nanos)
    }
}

/// Drops the Vec a payload's fields came in. `parse_into` writes the fields to the `Fill`
/// and hands back an empty Vec that never allocated: `forget` lets that one go (it owns
/// nothing) without the out-of-line drop's call (~33 instructions an llm_call); any other
/// is dropped.
#[inline(always)]
fn let_go(values: Vec<(Key, Value)>) {
    if values.capacity() == 0 {
        std::mem::forget(values);
    } else {
        drop(values);
    }
}

/// An event's name and 16 bytes that start with it: the room `Fill::text_in` copies one
/// lane from, instead of a `memcpy` call for the few bytes of the name.
fn padded_event(name: &'static str) -> (&'static str, &'static str) {
    let room = match name {
        "llm_call" => "llm_call        ",
        "log" => "log             ",
        "prompt" => "prompt          ",
        "result" => "result          ",
        "feedback" => "feedback        ",
        _ => return (name, name),
    };
    (room.get(..name.len()).unwrap_or(name), room)
}

/// The first (sorted) field of `what` that has the name of a record key, as parsers/record.py
/// refuses it.
fn refuse_clash(what: &str, names: &[Key], taken: &[&str]) -> Result<(), SettingsError> {
    let mut clash: Vec<&Key> = names.iter().filter(|n| taken.contains(&&***n)).collect();
    clash.sort();
    match clash.first() {
        Some(c) => Err(SettingsError::Value(format!(
            "{what} field {} has the name of a record key; rename it",
            repr(c)
        ))),
        None => Ok(()),
    }
}

/// Record keys in design.md order: the prefix keys first, then the pattern's others.
fn order_keys(keys: &[String]) -> Vec<String> {
    PREFIX_KEYS
        .iter()
        .filter(|k| keys.iter().any(|x| x == *k))
        .map(|k| (*k).to_string())
        .chain(
            keys.iter()
                .filter(|k| !PREFIX_KEYS.contains(&k.as_str()))
                .cloned(),
        )
        .collect()
}

/// The raw record of `frame` (over whatever fields were written so far); returns its time.
fn raw(
    out: &mut Fill<'_>,
    frame: &Frame,
    reason: String,
    seconds: Option<i64>,
    nanos: u32,
) -> (Option<i64>, u32) {
    let reason = if frame.flags & ALTERED != 0 {
        format!("{reason}; {}", damage(frame))
    } else {
        reason
    };
    out.rewind(0);
    out.text(&RAW_LOG, &frame.text);
    out.value(&PARSE_ERROR, Value::Str(reason));
    (seconds, nanos)
}

/// What happened to the bytes of a frame, for `parse_error`.
fn damage(frame: &Frame) -> String {
    let mut notes = Vec::new();
    if frame.flags & flags::TRUNCATED != 0 {
        notes.push(format!("record of {} bytes truncated", frame.size));
    }
    if frame.flags & flags::DECODE != 0 {
        notes.push("bytes invalid in the file encoding kept as \\x escapes".to_string());
    }
    if frame.flags & flags::NUL != 0 {
        notes.push("NUL bytes removed".to_string());
    }
    notes.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskSettings, Masker};
    use crate::payload::{SPARE_CAPACITY, SPARE_STRINGS};

    fn parser() -> RecordParser {
        parser_with(&[
            ("app", "str"),
            ("model", "str"),
            ("status_code", "int"),
            ("input_tokens", "int"),
            ("error_message", "str"),
        ])
    }

    fn parser_with(kinds: &[(&str, &str)]) -> RecordParser {
        RecordParser::new(ParserSettings {
            pattern: "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [%c#%method:%L] [%thread] - %m%n".into(),
            timezone: Some("UTC".into()),
            payload_separator: ",".into(),
            payload_fields: kinds
                .iter()
                .map(|(n, k)| ((*n).into(), (*k).into()))
                .collect(),
            feedback_fields: Some(vec![
                ("request_id".into(), "str".into()),
                ("rating".into(), "str".into()),
                ("comment".into(), "str".into()),
            ]),
            max_record_bytes: 1 << 16,
            encoding: "utf-8".into(),
        })
        .unwrap()
    }

    fn masker() -> Masker {
        let s = MaskSettings {
            enabled: true,
            rules: vec![("ipv4".into(), true), ("email".into(), true)],
            replace: vec![],
            max_field_bytes: 1 << 20,
            key: None,
            custom: vec![],
        };
        Masker::new(&s).unwrap().unwrap()
    }

    fn frames<'a>(p: &RecordParser, text: &'a str) -> Vec<Frame<'a>> {
        let mut asm = p.assembler(0);
        let mut out = Vec::new();
        asm.feed(text.as_bytes(), 0.0, &mut out);
        asm.drain(&mut out);
        out
    }

    use crate::testgen::Gen;

    /// Up to `max` pieces of text (IPs and emails among them, for the masker).
    fn text(g: &mut Gen, max: usize) -> String {
        let len = g.below(max + 1);
        g.text(
            &["a", "é", " ", "10.0.0.7", "x@y.io", "\u{4e2d}", "Z9", "-"],
            len,
        )
    }

    /// An int field's text: empty, odd forms, one too long for Python, or a number.
    fn int(g: &mut Gen) -> String {
        match g.below(6) {
            0 => String::new(),
            1 => "007".into(),
            2 => "-0".into(),
            3 => "9".repeat(4301),
            4 => "x1".into(),
            _ => g.below(100_000).to_string(),
        }
    }

    /// One log line of every shape the parser tells apart: payloads (well-formed, malformed,
    /// too-long ints), feedback, prompt, plain logs, bad timestamps, lines without a header,
    /// continuation lines, values from empty to past the spare capacity.
    fn line(g: &mut Gen) -> String {
        let month = if g.below(20) == 0 { "13" } else { "01" };
        let line_no = match g.below(4) {
            0 => "?".to_string(),
            1 => "0042".to_string(),
            _ => g.below(900).to_string(),
        };
        // Now and then a value past the spare capacity (its String is then not kept).
        let long = |g: &mut Gen| {
            if g.below(15) == 0 {
                format!("{}10.0.0.9", "é".repeat(9000))
            } else {
                text(g, 40)
            }
        };
        let message = match g.below(7) {
            // An app name without blanks (else it is no payload, but a log record).
            0 | 1 => format!(
                "{},{},{},{},{}",
                long(g).replace(' ', "_"),
                text(g, 8),
                int(g),
                int(g),
                long(g)
            ),
            2 => format!("feedback:{},{}", text(g, 6), text(g, 4)),
            3 => format!("feedback:{},up,{}", text(g, 6), long(g)),
            4 => format!("prompt:{}", long(g)),
            5 => format!("{}\n  at {}", long(g), text(g, 30)),
            _ => long(g),
        };
        if g.below(12) == 0 {
            return format!("no header {}\n", text(g, 50));
        }
        format!(
            "2026-{month}-02 03:04:05.{:03} INFO  [c.a.{}#{}:{line_no}] [{}] - {message}\n",
            g.below(1000),
            text(g, 10),
            text(g, 5),
            text(g, 12),
        )
    }

    /// The reused record answers exactly what a fresh one does, masked or not, whatever came
    /// before it: nothing of an earlier record's values survives in it.
    #[test]
    fn a_reused_record_equals_a_fresh_parse() {
        let masker = masker();
        let mut seen: Vec<String> = Vec::new();
        for seed in 1..=4u64 {
            let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let text: String = (0..200).map(|_| line(&mut g)).collect();
            let mut fresh = parser();
            let mut reused = parser();
            for frame in frames(&fresh, &text) {
                let mut want = fresh.parse(&frame);
                let got = reused.parse_next(&frame);
                if g.below(2) == 0 {
                    let a = masker.mask_fields(&mut want.fields);
                    let b = masker.mask_fields(&mut got.fields);
                    assert_eq!(a, b);
                }
                assert_eq!(*got, want, "{:?}", frame.text);
                let kind = match want.fields.iter().find(|(k, _)| &**k == "event") {
                    Some((_, Value::Str(e))) => e.clone(),
                    _ => match want.fields.get(1) {
                        Some((_, Value::Str(e))) => e.chars().take(14).collect(),
                        _ => String::new(),
                    },
                };
                if !seen.contains(&kind) {
                    seen.push(kind);
                }
            }
        }
        seen.sort();
        // Every outcome was met: each event, and raw records of each kind of failure.
        let want = [
            "feedback",
            "feedback needs",
            "internal parse",
            "invalid timest",
            "llm_call",
            "log",
            "payload field ",
            "prompt",
        ];
        assert_eq!(seen, want);
    }

    #[test]
    fn a_counted_parse_has_the_counted_fields_of_the_full_parse() {
        // Payload fields the count wire does not read, a str and an int (sometimes too long
        // for Python's int()), between ones it reads.
        let kinds = [
            ("app", "str"),
            ("request_id", "str"),
            ("retries", "int"),
            ("input_tokens", "int"),
            ("error_message", "str"),
        ];
        let masker = masker();
        let mut outcomes = 0;
        for seed in 1..=4u64 {
            let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let text: String = (0..200).map(|_| line(&mut g)).collect();
            let mut full = parser_with(&kinds);
            let mut lean = parser_with(&kinds);
            for frame in frames(&full, &text) {
                let mut want = full.parse(&frame);
                let got = lean.parse_counted(&frame);
                assert_eq!(
                    masker.mask_fields(&mut want.fields),
                    masker.mask_fields(&mut got.fields)
                );
                // (A feedback's few fields are all written: no need to tell them apart.)
                let only = |fields: &[(Key, Value)]| -> Vec<(Key, Value)> {
                    fields.iter().filter(|(k, _)| counted(k)).cloned().collect()
                };
                assert_eq!(only(&got.fields), only(&want.fields), "{:?}", frame.text);
                assert_eq!(
                    (got.time, got.time_ns, got.flags),
                    (want.time, want.time_ns, want.flags)
                );
                outcomes += usize::from(got.fields.len() < want.fields.len());
            }
        }
        assert!(outcomes > 100, "fields were left out: {outcomes}");
    }

    #[test]
    fn short_raw_and_smaller_records_after_larger_ones_hold_only_their_own_values() {
        let mut p = parser();
        let text = format!(
            "2026-01-02 03:04:05.000 INFO  [c.A#m:12] [t] - {long},model,200,12,{long}\n\
             2026-01-02 03:04:05.000 INFO  [c.A#m:?] [t] - feedback:r,up\n\
             2026-13-02 03:04:05.000 INFO  [c.A#m:1] [t] - bad month\n\
             2026-01-02 03:04:05.000 INFO  [c.A#m:1] [] - hi\n",
            long = "w".repeat(3000)
        );
        let f = frames(&p, &text);
        let names =
            |r: &Record| -> Vec<String> { r.fields.iter().map(|(k, _)| k.to_string()).collect() };
        assert_eq!(p.parse_next(&f[0]).fields.len(), 13);
        let feedback = p.parse_next(&f[1]).clone();
        assert_eq!(feedback, p.parse(&f[1]));
        assert!(names(&feedback).contains(&"comment".to_string()));
        assert!(!names(&feedback).contains(&"app".to_string()));
        let raw = p.parse_next(&f[2]).clone();
        assert_eq!(names(&raw), ["__raw_log__", "parse_error"]);
        let short = p.parse_next(&f[3]).clone();
        assert!(short
            .fields
            .iter()
            .all(|(_, v)| !matches!(v, Value::Str(s) if s.contains('w'))));
        assert_eq!(short, p.parse(&f[3]));
    }

    #[test]
    fn an_int_too_long_for_python_over_an_int_makes_the_record_raw() {
        let mut p = parser();
        let text = format!(
            "2026-01-02 03:04:05.000 INFO  [c.A#m:7] [t] - a,m,200,12,e\n\
             2026-01-02 03:04:05.000 INFO  [c.A#m:7] [t] - a,m,{},12,e\n",
            "9".repeat(4301)
        );
        let f = frames(&p, &text);
        p.parse_next(&f[0]);
        let got = p.parse_next(&f[1]).clone();
        assert_eq!(got, p.parse(&f[1]));
        assert_eq!(got.fields.len(), 2);
        assert_eq!(
            got.fields[1].1,
            Value::Str("internal parser error (ValueError)".into())
        );
    }

    #[test]
    fn the_spare_strings_stay_bounded() {
        let mut p = parser();
        let long = "v,".repeat(40_000);
        let text = format!("2026-01-02 03:04:05.000 INFO  [c.A#m:1] [t] - {long}\n").repeat(3);
        for frame in frames(&p, &text) {
            p.parse_next(&frame);
        }
        // The long values' Strings are recycled by the next record: too big to keep.
        p.parse_next(&frames(&p, "x\n")[0]);
        assert!(p.spare.len() <= SPARE_STRINGS);
        assert!(p.spare.iter().all(|s| s.capacity() <= SPARE_CAPACITY));
        let small = |fields: &[(Key, Value)]| {
            fields.iter().all(|(_, v)| match v {
                Value::Str(s) | Value::Int(s) => s.capacity() <= SPARE_CAPACITY,
                Value::None => true,
            })
        };
        assert!(small(&p.current.fields));
        // A long record of one kind, then one of the other: parked without its long values.
        let long = format!("2026-01-02 03:04:05.000 INFO  [c.A#m:1] [t] - prompt: {long}\n");
        p.parse_next(&frames(&p, &long)[0]);
        let line = "2026-01-02 03:04:05.000 INFO  [c.A#m:1] [t] - a,b,c\n";
        p.parse_next(&frames(&p, line)[0]);
        assert!(small(&p.current.fields) && small(&p.parked));
        // A long raw record (no header: its text and reason written whatever the kind), then
        // records of either kind: whichever is parked holds no long value.
        let prompt = "2026-01-02 03:04:05.000 INFO  [c.A#m:1] [t] - prompt: hi\n";
        for next in [line, prompt, line] {
            let raw = "y".repeat(40_000) + "\n";
            p.parse_next(&frames(&p, &raw)[0]);
            p.parse_next(&frames(&p, next)[0]);
            assert!(small(&p.current.fields) && small(&p.parked), "{next}");
        }
    }
}
