//! Logback PatternLayout -> matchers for a record's first line (parsers/pattern.py).
//!
//! The same tokenizer, the same element list and the same error texts as the reference; each
//! regex source it writes becomes the matcher element with the same semantics.

use crate::decode::Codec;
use crate::matcher::{El, Matcher, Mode, Set};
use crate::pyrepr::repr;
use crate::timestamp::DateFormat;

/// The pattern cannot be compiled; the text is the reference's PatternError message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    Pattern(String),
    /// The reference fails with an IndexError here (an `%X{}` name that is empty after `:-`).
    Index,
}

const PREFIX_KEYS: [&str; 7] = [
    "time", "level", "trace_id", "logger", "method", "line", "thread",
];
const TRACE_KEYS: [&str; 4] = ["traceid", "xb3traceid", "tid", "requesttraceid"];
const EXCEPTIONS: [&str; 12] = [
    "ex",
    "exception",
    "throwable",
    "xEx",
    "xException",
    "xThrowable",
    "rEx",
    "rootException",
    "nopex",
    "nopexception",
    "wEx",
    "wex",
];

/// What a conversion word captures: a record key, a line end, or nothing (exceptions).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Name(&'static str),
    Newline,
    Nothing,
}

fn word_key(word: &str) -> Option<Key> {
    let name = match word {
        "d" | "date" => "time",
        "p" | "le" | "level" => "level",
        "c" | "lo" | "logger" => "logger",
        "C" | "class" => "class",
        "M" | "method" => "method",
        "L" | "line" => "line",
        "t" | "thread" => "thread",
        "m" | "msg" | "message" => "message",
        "F" | "file" => "file",
        "X" | "mdc" => "mdc",
        "cn" | "contextName" => "context",
        "r" | "relative" => "relative",
        "marker" => "marker",
        "n" => return Some(Key::Newline),
        w if EXCEPTIONS.contains(&w) => return Some(Key::Nothing),
        _ => return None,
    };
    Some(Key::Name(name))
}

#[derive(Clone, Debug)]
struct Conv {
    word: String,
    key: Key,
    left: bool,
    min_width: bool,
    options: Vec<String>,
    pos: usize,
}

#[derive(Clone, Debug)]
enum Token {
    Lit(String),
    Conv(Conv),
}

/// Python's `str.isspace` for the characters `strip()` removes.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

struct Tokenizer {
    p: Vec<char>,
    out: Vec<Token>,
    literal: String,
}

fn text(chars: &[char]) -> String {
    chars.iter().collect()
}

fn find(p: &[char], c: char, from: usize) -> Option<usize> {
    p.get(from..)?
        .iter()
        .position(|&x| x == c)
        .map(|i| i + from)
}

fn starts_with(p: &[char], at: usize, s: &str) -> bool {
    (at..).zip(s.chars()).all(|(i, c)| p.get(i) == Some(&c))
}

impl Tokenizer {
    fn run(mut self) -> Result<Vec<Token>, PatternError> {
        let n = self.p.len();
        let mut i = 0;
        while i < n {
            let c = self.p[i];
            if c == '\\' && i + 1 < n {
                let e = self.p[i + 1];
                self.literal.push(match e {
                    't' => '\t',
                    'n' => '\n',
                    'r' => '\r',
                    e => e,
                });
                i += 2;
            } else if c == '$' && starts_with(&self.p, i, "${") {
                let name = match find(&self.p, '}', i) {
                    Some(e) => text(&self.p[i..=e]),
                    None => text(&self.p[i..]),
                };
                return Err(PatternError::Pattern(format!(
                    "variable {name} at position {i} is not supported: write its value into the pattern"
                )));
            } else if starts_with(&self.p, i, "%%") {
                self.literal.push('%');
                i += 2;
            } else if c == '%' {
                i = self.conversion(i)?;
            } else {
                self.literal.push(c);
                i += 1;
            }
        }
        self.flush();
        Ok(self.out)
    }

    fn flush(&mut self) {
        if !self.literal.is_empty() {
            self.out.push(Token::Lit(std::mem::take(&mut self.literal)));
        }
    }

    fn conversion(&mut self, start: usize) -> Result<usize, PatternError> {
        let p = &self.p;
        let n = p.len();
        // _MODIFIER: (-?)([0-9]*)(?:\.(-?[0-9]+))?([A-Za-z]*)
        let mut i = start + 1;
        let left = p.get(i) == Some(&'-');
        if left {
            i += 1;
        }
        let w0 = i;
        while p.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        let min_width = p[w0..i].iter().any(|&c| c != '0');
        if p.get(i) == Some(&'.') {
            let mut j = i + 1;
            if p.get(j) == Some(&'-') {
                j += 1;
            }
            let d0 = j;
            while p.get(j).is_some_and(|c| c.is_ascii_digit()) {
                j += 1;
            }
            if j > d0 {
                i = j;
            }
        }
        let word0 = i;
        while p.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
            i += 1;
        }
        let word = text(&p[word0..i]);
        if word.is_empty() {
            let shown = text(&p[start..(i + 1).min(n)]);
            return Err(PatternError::Pattern(format!(
                "conversion {} at position {start} has no word",
                repr(&shown)
            )));
        }
        let mut options = Vec::new();
        while i < n && p[i] == '{' {
            let Some(end) = find(p, '}', i) else {
                return Err(PatternError::Pattern(format!(
                    "unclosed '{{' after %{word} at position {start}"
                )));
            };
            options.push(text(&p[i + 1..end]));
            i = end + 1;
        }
        if i < n && p[i] == '(' && !starts_with(p, i, "()") {
            return Err(PatternError::Pattern(format!(
                "composite conversion %{word}(...) at position {start} is not supported"
            )));
        }
        let Some(key) = word_key(&word) else {
            return Err(PatternError::Pattern(format!(
                "conversion word %{word} at position {start} is not supported"
            )));
        };
        let paren = starts_with(p, i, "()");
        self.flush();
        self.out.push(Token::Conv(Conv {
            word,
            key,
            left,
            min_width,
            options,
            pos: start,
        }));
        if paren {
            self.literal.push_str("()");
            i += 2;
        }
        Ok(i)
    }
}

fn mdc_key(conv: &Conv, taken: &[String]) -> Result<String, PatternError> {
    let Some(opt) = conv.options.first().filter(|o| !py_strip(o).is_empty()) else {
        return Ok("mdc".to_string());
    };
    let name = py_strip(opt.split(":-").next().unwrap_or(""));
    let folded: String = name
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .collect();
    if TRACE_KEYS.contains(&folded.as_str()) && !taken.iter().any(|t| t == "trace_id") {
        return Ok("trace_id".to_string());
    }
    let mut key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let Some(first) = key.chars().next() else {
        return Err(PatternError::Index);
    };
    let canonical = PREFIX_KEYS.contains(&key.as_str())
        || ["event", "message", "__raw_log__", "parse_error"].contains(&key.as_str());
    if first.is_ascii_digit() || canonical {
        key = format!("mdc_{key}");
    }
    Ok(key.chars().take(128).collect())
}

/// A part of the record-start test: elements, or a literal encoded in the file's encoding.
#[derive(Clone, Debug)]
enum StartPart {
    Els(Vec<El>),
    Lit(String),
}

/// Free text and the three runs of pattern.py, as element makers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Body {
    Lazy,
    Greedy,
    Level,
    Line,
    Digits,
    Date,
}

fn spaces(min: usize, mode: Mode) -> El {
    El::class(Set::of(b" "), min, None, mode)
}

fn body_els(body: Body, possessive: bool) -> Vec<El> {
    let mode = if possessive {
        Mode::Possessive
    } else {
        Mode::Greedy
    };
    match body {
        Body::Lazy => vec![El::lazy_line()],
        Body::Greedy => vec![El::greedy_line()],
        Body::Level => vec![El::class(Set::letters(), 1, None, mode)],
        Body::Digits => vec![El::class(Set::digits(), 1, None, mode)],
        Body::Line => {
            let inner = El::Alt(vec![
                vec![
                    El::class(Set::of(b"-"), 0, Some(1), Mode::Greedy),
                    El::class(Set::digits(), 1, None, mode),
                ],
                vec![El::Lit(b"?".to_vec())],
                vec![],
            ]);
            if possessive {
                vec![El::Atomic(vec![inner])]
            } else {
                vec![inner]
            }
        }
        Body::Date => vec![],
    }
}

fn run_chars(body: Body) -> &'static str {
    match body {
        Body::Level => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        Body::Line => "-0123456789?",
        Body::Digits => "0123456789",
        _ => "",
    }
}

/// A compiled pattern (pattern.py `CompiledPattern`).
#[derive(Clone, Debug)]
pub struct CompiledPattern {
    pub keys: Vec<String>,
    /// Keys of first-line fields after a final %m: in `keys` but not in `regex` (the reference
    /// then fails with a KeyError when it builds its parser).
    pub unplaced: Vec<String>,
    /// Group names of `regex`, by group number.
    pub names: Vec<String>,
    /// Matches a whole record text.
    pub regex: Matcher,
    pub date: DateFormat,
    pub has_message: bool,
    pub message_last: bool,
    start: Vec<StartPart>,
    elements: Vec<(String, Vec<El>)>,
}

struct Compiler {
    timezone: Option<String>,
    text: Vec<El>,
    tail: Vec<El>,
    tail_keys: Vec<String>,
    start: Vec<StartPart>,
    elements: Vec<(String, Vec<El>)>,
    keys: Vec<String>,
    taken: Vec<String>,
    date: Option<DateFormat>,
    message_at: Option<usize>,
    start_cut: Option<usize>,
    message_last: bool,
    level_spaces: bool,
    level_pad: bool,
}

impl Compiler {
    fn emit(&mut self, els: Vec<El>, start: StartPart, what: String) {
        if self.message_at.is_some() {
            self.tail.extend(els);
            return;
        }
        self.text.extend(els.iter().cloned());
        self.start.push(start);
        self.elements.push((what, els));
    }

    fn emit_spaces(&mut self, min: usize, mode: Mode, what: &str) {
        let el = spaces(min, mode);
        self.emit(vec![el.clone()], StartPart::Els(vec![el]), what.to_string());
    }

    fn literal(&mut self, text: &str) {
        let mut text = text;
        if self.level_spaces && text.starts_with(' ') {
            text = text.trim_start_matches(' ');
            if text.is_empty() {
                self.emit_spaces(1, Mode::Greedy, "spaces");
            } else {
                self.emit_spaces(1, Mode::Possessive, "spaces");
            }
            self.level_spaces = false;
            self.level_pad = false;
        }
        self.settle();
        if !text.is_empty() {
            self.emit(
                vec![El::Lit(text.as_bytes().to_vec())],
                StartPart::Lit(text.to_string()),
                repr(text),
            );
        }
    }

    fn settle(&mut self) {
        if self.level_pad {
            self.emit_spaces(0, Mode::Greedy, "padding");
        }
        self.level_spaces = false;
        self.level_pad = false;
    }

    fn run(&mut self, tokens: &[Token]) -> Result<(), PatternError> {
        for (index, tok) in tokens.iter().enumerate() {
            match tok {
                Token::Lit(s) => {
                    let (head, newline) = match s.find('\n') {
                        Some(i) => (&s[..i], true),
                        None => (s.as_str(), false),
                    };
                    self.literal(head);
                    if newline {
                        return Ok(());
                    }
                }
                Token::Conv(c) => {
                    self.settle();
                    match c.key {
                        Key::Newline => return Ok(()),
                        Key::Name("message") => self.message(c, tokens.get(index + 1..))?,
                        Key::Name(key) => {
                            let nxt = tokens.get(index + 1);
                            let (greedy, follow) = match nxt {
                                Some(Token::Lit(s)) => (
                                    (key == "logger" || key == "class") && s.starts_with('.'),
                                    s.split('\n').next().unwrap_or("").to_string(),
                                ),
                                _ => (false, String::new()),
                            };
                            self.conversion(c, key, greedy, &follow)?;
                        }
                        Key::Nothing => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn message(&mut self, tok: &Conv, rest: Option<&[Token]>) -> Result<(), PatternError> {
        if self.message_at.is_some() {
            return Err(PatternError::Pattern(format!(
                "second %{} at position {}",
                tok.word, tok.pos
            )));
        }
        self.message_at = Some(self.keys.len());
        if self.start_cut.is_none() {
            self.start_cut = Some(self.start.len());
        }
        self.message_last = match rest.and_then(|r| r.first()) {
            None => true,
            Some(Token::Conv(c)) => matches!(c.key, Key::Newline | Key::Nothing),
            Some(Token::Lit(s)) => s.starts_with('\n'),
        };
        Ok(())
    }

    fn conversion(
        &mut self,
        tok: &Conv,
        key: &'static str,
        greedy: bool,
        follow: &str,
    ) -> Result<(), PatternError> {
        let body = if greedy {
            Body::Greedy
        } else {
            self.body(tok, key)?
        };
        if matches!(body, Body::Lazy | Body::Greedy)
            && self.date.is_some()
            && self.start_cut.is_none()
        {
            self.start_cut = Some(self.start.len());
        }
        let mut els_text: Vec<El>;
        let mut els_bytes: Vec<El>;
        if body == Body::Date {
            let d = self
                .date
                .as_ref()
                .map(|d| d.els.clone())
                .unwrap_or_default();
            els_text = d.clone();
            els_bytes = d;
        } else if body == Body::Lazy && !follow.is_empty() && !(tok.min_width && tok.left) {
            let c = follow.chars().next().unwrap_or('\n');
            let mut buf = [0u8; 4];
            let cb = c.encode_utf8(&mut buf).as_bytes().to_vec();
            let mut set = cb.clone();
            set.push(b'\n');
            els_text = vec![El::UpTo {
                lit: cb.clone(),
                bytes: None,
            }];
            els_bytes = vec![El::UpTo {
                lit: cb,
                bytes: Some(Set::of(&set)),
            }];
        } else {
            let possessive = matches!(body, Body::Level | Body::Line | Body::Digits)
                && follow
                    .chars()
                    .next()
                    .is_some_and(|c| !run_chars(body).contains(c));
            els_text = body_els(body, possessive);
            els_bytes = els_text.clone();
        }
        let mut key = key.to_string();
        if key == "mdc" {
            key = mdc_key(tok, &self.taken)?;
        }
        if self.taken.contains(&key) {
            key.clear();
        }
        if tok.min_width && !tok.left {
            self.emit_spaces(0, Mode::Greedy, "padding");
        }
        let what = format!("%{}", tok.word);
        if !key.is_empty() {
            if self.message_at.is_some() {
                self.tail_keys.push(key.clone());
            }
            let group = self.keys.len();
            els_text = vec![El::Group(group, els_text)];
            self.keys.push(key.clone());
            self.taken.push(key);
        }
        self.emit(
            els_text,
            StartPart::Els(std::mem::take(&mut els_bytes)),
            what,
        );
        if tok.key == Key::Name("level") {
            self.level_spaces = true;
            self.level_pad = tok.left && tok.min_width;
        } else if tok.min_width && tok.left {
            self.emit_spaces(0, Mode::Greedy, "padding");
        }
        Ok(())
    }

    fn body(&mut self, tok: &Conv, key: &str) -> Result<Body, PatternError> {
        Ok(match key {
            "time" => {
                if self.date.is_some() {
                    return Ok(Body::Lazy);
                }
                self.date = Some(self.date_format(tok)?);
                Body::Date
            }
            "level" => Body::Level,
            "line" => Body::Line,
            "relative" => Body::Digits,
            _ => Body::Lazy,
        })
    }

    fn date_format(&self, tok: &Conv) -> Result<DateFormat, PatternError> {
        let option = tok.options.first().map_or("", |o| py_strip(o)).to_string();
        let close = option
            .strip_prefix('"')
            .and_then(|o| o.find('"'))
            .map(|i| i + 1);
        let (fmt, zone_text) = match close {
            Some(close) => {
                let z = option[close + 1..].trim_start_matches(py_space);
                (
                    option[1..close].to_string(),
                    z.strip_prefix(',').unwrap_or(z).to_string(),
                )
            }
            None => match option.find(',') {
                Some(i) => (option[..i].to_string(), option[i + 1..].to_string()),
                None => (option.clone(), String::new()),
            },
        };
        let fmt = match py_strip(&fmt) {
            "" => "ISO8601".to_string(),
            f => f.to_string(),
        };
        let zone = match py_strip(&zone_text) {
            "" => self.timezone.clone(),
            z => Some(z.to_string()),
        };
        let zone_name = zone.as_deref().filter(|z| !z.is_empty());
        DateFormat::new(&fmt, zone_name).map_err(|e| match e {
            Ok(err) => PatternError::Pattern(format!(
                "%{}{{{fmt}}} at position {}: {}",
                tok.word, tok.pos, err.0
            )),
            Err(_) => PatternError::Pattern(format!(
                "%{} at position {}: unknown zone {} (a comma in %d{{...}} starts the zone; \
                 quote a format with a comma: %d{{\"{option}\"}})",
                tok.word,
                tok.pos,
                zone.as_deref().map_or("None".to_string(), repr)
            )),
        })
    }
}

/// Compile a Logback PatternLayout (pattern.py `compile_pattern`).
pub fn compile_pattern(
    pattern: &str,
    timezone: Option<&str>,
) -> Result<CompiledPattern, PatternError> {
    let tokens = Tokenizer {
        p: pattern.chars().collect(),
        out: Vec::new(),
        literal: String::new(),
    }
    .run()?;
    let mut c = Compiler {
        timezone: timezone.map(str::to_string),
        text: Vec::new(),
        tail: Vec::new(),
        tail_keys: Vec::new(),
        start: Vec::new(),
        elements: Vec::new(),
        keys: Vec::new(),
        taken: Vec::new(),
        date: None,
        message_at: None,
        start_cut: None,
        message_last: true,
        level_spaces: false,
        level_pad: false,
    };
    c.run(&tokens)?;
    let Some(date) = c.date.take() else {
        return Err(PatternError::Pattern(
            "the pattern has no %d/%date: records cannot be placed in time".to_string(),
        ));
    };
    let mut names = c.keys.clone();
    let has_message = c.message_at.is_some();
    let mut els = std::mem::take(&mut c.text);
    let message = names.len();
    let rest = message + 1;
    names.push("message".to_string());
    names.push("_rest".to_string());
    if !has_message {
        els.push(El::AtLineEnd);
        els.push(El::Group(rest, vec![El::Rest]));
    } else if c.message_last {
        els.push(El::Group(message, vec![El::Rest]));
    } else {
        els.push(El::Group(message, vec![El::lazy_line()]));
        els.append(&mut c.tail);
        els.push(El::AtLineEnd);
        els.push(El::Group(rest, vec![El::Rest]));
    }
    let mut start = std::mem::take(&mut c.start);
    if let Some(cut) = c.start_cut {
        start.truncate(cut);
    }
    let groups = names.len();
    let unplaced = if has_message && c.message_last {
        std::mem::take(&mut c.tail_keys)
    } else {
        Vec::new()
    };
    Ok(CompiledPattern {
        keys: c.keys,
        unplaced,
        names,
        regex: Matcher::new(els, groups, true),
        date,
        has_message,
        message_last: has_message && c.message_last,
        start,
        elements: c.elements,
    })
}

impl CompiledPattern {
    /// The record-start test on raw bytes: BOM? NUL* then the first-line elements, literals
    /// written in the file's encoding (`encoding`: its name as configured, for the error).
    pub fn start_matcher(&self, codec: Codec, encoding: &str) -> Result<Matcher, PatternError> {
        let mut els = vec![
            El::Alt(vec![vec![El::Lit(b"\xef\xbb\xbf".to_vec())], vec![]]),
            El::class(Set::of(b"\0"), 0, None, Mode::Greedy),
        ];
        for part in &self.start {
            match part {
                StartPart::Els(e) => els.extend(e.iter().cloned()),
                StartPart::Lit(s) => match codec.encode(s) {
                    Some(b) => els.push(El::Lit(b)),
                    None => {
                        return Err(PatternError::Pattern(format!(
                            "literal {} of the pattern cannot be written in {encoding}",
                            repr(s)
                        )))
                    }
                },
            }
        }
        Ok(Matcher::new(els, 0, false))
    }

    /// Why `first_line` is not a record start: the first pattern element that fails.
    pub fn explain(&self, first_line: &str) -> String {
        if py_strip(first_line).is_empty() {
            return "blank line outside a record".to_string();
        }
        let groups = self.keys.len() + 2;
        let mut src: Vec<El> = Vec::new();
        let mut column = 0;
        for (what, els) in &self.elements {
            src.extend(els.iter().cloned());
            let m = Matcher::general_only(src.clone(), groups, true);
            match m.matches(first_line.as_bytes()) {
                None => {
                    return format!(
                        "does not match the pattern: expected {what} at column {}",
                        column + 1
                    )
                }
                Some((end, _)) => {
                    column = first_line.get(..end).map_or(0, |s| s.chars().count());
                }
            }
        }
        "does not match the pattern".to_string()
    }

    /// Group number of a name of `regex`.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] \
                           [%c{3}#%method\\(\\):%L] [%thread] - %m%n";

    #[test]
    fn the_default_pattern_reads_a_seed_line() {
        let p = compile_pattern(DEFAULT, Some("UTC")).unwrap();
        assert_eq!(
            p.keys,
            ["time", "level", "trace_id", "logger", "method", "line", "thread"]
        );
        let line = b"2026-11-26 10:02:11.305 INFO  [traceId:ab] [a.B#chat():42] [x ] y] - hi";
        let (_, caps) = p.regex.matches(line).unwrap();
        let thread = caps[p.group("thread").unwrap()].unwrap();
        assert_eq!(&line[thread.0..thread.1], b"x ] y");
        assert!(p.start_matcher(Codec::Utf8, "utf-8").unwrap().test(line));
    }

    #[test]
    fn the_first_path_walk_agrees_with_backtracking_on_record_like_text() {
        use crate::matcher::tests::{agree, Gen};
        let patterns = [
            DEFAULT,
            "%d{yyyy-MM-dd HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n",
            "%d [%t] %p %c.%M\\(%F:%L\\) %X{tid} %m%n",
            "%date{ISO8601} %level %m [%t] %L%n",
            "%d{yyyy-MM-dd HH:mm:ss} %5p %r %c#%M:%L 中 %m%n",
        ];
        let seeds = [
            "2026-11-26 10:02:11.305 INFO  [traceId:ab] [a.B#chat():42] [x ] y] - hi",
            "2026-11-30 04:38:57.718 INFO  [traceId:1e27] [o.a.c.c.C.[.[.[/]#?():?] [pool-2] - a,b,,1",
            "2026-11-26 10:02:11.305 [main] WARN  c.a.Foo - slow: 24461 ms",
            "2026-11-26 10:02:11,305 [t-1] ERROR a.b.C.run(C.java:12) tid-9 boom\n\tat x",
            "2026-11-26 10:02:11 INFO msg [main] 42",
            "2026-11-26 10:02:11  INFO 123 a.B#m:-7 中 hello",
        ];
        let alphabet = [
            "[", "]", "#", "(", ")", ":", "-", "?", " ", "\n", "é", "中", "x", "1", ".", "():",
            "] [", "#m", "traceId:", ",", "\t",
        ];
        let mut g = Gen(0xD1B5_4A32_D192_ED03);
        let (mut decided, mut total) = (0usize, 0usize);
        for pattern in patterns {
            let p = compile_pattern(pattern, Some("UTC")).unwrap();
            let start = p.start_matcher(Codec::Utf8, "utf-8").unwrap();
            for _ in 0..1500 {
                let seed = *g.pick(&seeds);
                let mut line = g.mutate(seed, &alphabet);
                if g.below(8) == 0 {
                    line.insert(0, '\u{feff}');
                }
                total += 2;
                decided += usize::from(agree(&p.regex, line.as_bytes(), false));
                decided += usize::from(agree(&start, line.as_bytes(), false));
            }
        }
        // Most record-like text is decided by the walk, so the comparison is not empty.
        assert!(decided * 2 > total, "decided {decided} of {total}");
    }

    #[test]
    fn explain_names_the_first_element_that_fails() {
        let p = compile_pattern(DEFAULT, Some("UTC")).unwrap();
        assert_eq!(
            p.explain("2026-11-26 10:02:11.305 INFO  traceId"),
            "does not match the pattern: expected '[traceId:' at column 31"
        );
        assert_eq!(p.explain("   "), "blank line outside a record");
    }

    #[test]
    fn unsupported_words_are_named_with_their_position() {
        assert_eq!(
            compile_pattern("%d %zz", None).unwrap_err(),
            PatternError::Pattern("conversion word %zz at position 3 is not supported".into())
        );
        assert_eq!(
            compile_pattern("%p %m", None).unwrap_err(),
            PatternError::Pattern(
                "the pattern has no %d/%date: records cannot be placed in time".into()
            )
        );
    }
}
