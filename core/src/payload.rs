//! The payload of `llm_call` records (parsers/payload.py): the well-formed regex, emulated with
//! the same backtracking, then the slow split that also says why a message is malformed.

use crate::matcher::{El, Matcher, Mode, Set};
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
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.len() > MAX_STR_DIGITS {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".to_string()
    } else if neg {
        format!("-{trimmed}")
    } else {
        trimmed.to_string()
    })
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
    regex: Option<Matcher>,
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
            regex: payload_regex(separator, fields),
        })
    }

    pub fn names(&self) -> &[Key] {
        &self.names
    }

    /// The fields; NotPayload when the message is not payload-shaped; Error if malformed.
    pub fn parse(&self, message: &str) -> Payload {
        if let Some(re) = &self.regex {
            if let Some((_, caps)) = re.matches(message.as_bytes()) {
                let mut values = Vec::with_capacity(self.names.len());
                for ((name, &is_int), cap) in self.names.iter().zip(&self.ints).zip(&caps) {
                    let text = cap.and_then(|(a, b)| message.get(a..b)).unwrap_or("");
                    let v = if !is_int {
                        Value::Str(text.to_string())
                    } else if text.is_empty() {
                        Value::None
                    } else {
                        match int_text(text) {
                            Some(t) => Value::Int(t),
                            None => return Payload::Internal,
                        }
                    };
                    values.push((name.clone(), v));
                }
                return Payload::Fields(values);
            }
        }
        self.split(message)
    }

    fn split(&self, message: &str) -> Payload {
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
