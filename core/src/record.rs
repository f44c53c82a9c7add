//! Frames -> typed records (parsers/record.py): the same outcomes, in the same order, with the
//! same `parse_error` texts; `parse` never fails.

use crate::decode::Codec;
use crate::lines::flags;
use crate::matcher::Matcher;
use crate::multiline::{Assembler, Frame};
use crate::pattern::{compile_pattern, CompiledPattern, PatternError};
use std::sync::{Arc, LazyLock};

use crate::payload::{
    int_text, FeedbackParser, Key, Payload, PayloadParser, Value, FEEDBACK_PREFIX,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub fields: Vec<(Key, Value)>,
    pub time: Option<i64>,
    pub time_ns: u32,
    pub flags: u8,
}

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
    pattern: CompiledPattern,
    codec: Codec,
    starts: Arc<Matcher>,
    payload: PayloadParser,
    feedback: Option<FeedbackParser>,
    /// Record keys in order, their group, and whether the key is `line` (an int).
    order: Vec<(Key, usize, bool)>,
    time_group: usize,
    message_group: Option<usize>,
    rest_group: Option<usize>,
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
        let order: Vec<(Key, usize, bool)> = order_keys(&pattern.keys)
            .into_iter()
            .filter_map(|k| {
                pattern
                    .group(&k)
                    .map(|g| (Key::from(k.as_str()), g, k == "line"))
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
        Ok(RecordParser {
            settings,
            pattern,
            codec,
            starts: Arc::new(starts),
            payload,
            feedback,
            order,
            time_group,
            message_group,
            rest_group,
        })
    }

    /// A fresh assembler for one file read from `start_offset`.
    pub fn assembler(&self, start_offset: u64) -> Assembler {
        let cap = usize::try_from(self.settings.max_record_bytes).unwrap_or(usize::MAX);
        Assembler::new(Arc::clone(&self.starts), self.codec, cap, start_offset)
    }

    /// The record of one frame; a failure becomes a raw record with a reason.
    pub fn parse(&mut self, frame: &Frame) -> Record {
        let text = frame.text.as_str();
        let Some((_, caps)) = self.pattern.regex.matches(text.as_bytes()) else {
            let reason = if frame.flags & flags::HEADLESS != 0 {
                "no record header before these lines".to_string()
            } else {
                self.pattern.explain(text.split('\n').next().unwrap_or(""))
            };
            return raw(frame, reason, None, 0);
        };
        let group = |g: usize| -> Option<&str> {
            caps.get(g)
                .copied()
                .flatten()
                .and_then(|(a, b)| text.get(a..b))
        };
        let stamp = group(self.time_group).unwrap_or("");
        let (seconds, nanos) = match self.pattern.date.epoch(stamp) {
            Err(e) => return raw(frame, format!("internal parser error ({})", e.0), None, 0),
            Ok(None) => return raw(frame, format!("invalid timestamp {}", repr(stamp)), None, 0),
            Ok(Some(t)) => t,
        };
        let message: String = match (self.message_group, self.rest_group) {
            (Some(m), None) => group(m).unwrap_or("").to_string(),
            (None, Some(r)) => {
                let rest = group(r).unwrap_or("");
                rest.chars().skip(1).collect()
            }
            (Some(m), Some(r)) => format!("{}{}", group(m).unwrap_or(""), group(r).unwrap_or("")),
            (None, None) => String::new(),
        };
        // The reference reads a feedback payload before the record keys.
        let parser = self
            .feedback
            .as_ref()
            .filter(|_| message.starts_with(FEEDBACK_PREFIX));
        let feedback = parser.is_some();
        let rating = if let Some(f) = parser {
            match f.parse(&message) {
                Payload::Fields(values) => Some(Payload::Feedback(values)),
                Payload::Error(reason) => return raw(frame, reason, Some(seconds), nanos),
                _ => return raw(frame, "internal parser error (ValueError)".into(), None, 0),
            }
        } else {
            None
        };
        let mut fields: Vec<(Key, Value)> = Vec::with_capacity(self.order.len() + 16);
        for (key, g, is_line) in &self.order {
            let v = group(*g).unwrap_or("");
            let value = if *is_line {
                if v.is_empty() || v == "?" {
                    Value::None
                } else {
                    match int_text(v) {
                        Some(t) => Value::Int(t),
                        None => {
                            return raw(frame, "internal parser error (ValueError)".into(), None, 0)
                        }
                    }
                }
            } else {
                Value::Str(v.to_string())
            };
            fields.push((key.clone(), value));
        }
        let event = if message.starts_with("prompt:") || message.starts_with("result:") {
            message.get(..6).unwrap_or("").to_string()
        } else if feedback {
            "feedback".to_string()
        } else {
            "log".to_string()
        };
        let plain = event == "log";
        let payload = if plain {
            self.payload.parse(&message)
        } else if feedback {
            rating.unwrap_or(Payload::NotPayload)
        } else {
            Payload::NotPayload
        };
        fields.push((EVENT.clone(), Value::Str(event)));
        fields.push((MESSAGE.clone(), Value::Str(message)));
        match payload {
            Payload::Error(reason) => return raw(frame, reason, Some(seconds), nanos),
            Payload::Internal => {
                return raw(frame, "internal parser error (ValueError)".into(), None, 0)
            }
            Payload::Fields(values) => {
                if let Some(e) = fields.iter_mut().find(|(k, _)| &**k == "event") {
                    e.1 = Value::Str("llm_call".to_string());
                }
                fields.extend(values);
            }
            Payload::Feedback(values) => fields.extend(values),
            Payload::NotPayload => {}
        }
        if frame.flags & ALTERED != 0 {
            fields.push((PARSE_ERROR.clone(), Value::Str(damage(frame))));
        }
        Record {
            fields,
            time: Some(seconds),
            time_ns: nanos,
            flags: frame.flags,
        }
    }
}

/// Record keys in design.md order: the prefix keys first, then the pattern's others.
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

fn raw(frame: &Frame, reason: String, seconds: Option<i64>, nanos: u32) -> Record {
    let reason = if frame.flags & ALTERED != 0 {
        format!("{reason}; {}", damage(frame))
    } else {
        reason
    };
    Record {
        fields: vec![
            (RAW_LOG.clone(), Value::Str(frame.text.clone())),
            (PARSE_ERROR.clone(), Value::Str(reason)),
        ],
        time: seconds,
        time_ns: nanos,
        flags: frame.flags,
    }
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
