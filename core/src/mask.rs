//! Masking of secrets and personal data (parsers/mask.py, whose module docstring is the
//! contract): the built-in rules as one leftmost-first regex over each text field, the same
//! validators, the same rejected-match retries, replacements (`***`, fixed text, or
//! `hmac:sha256`) and per-rule counts. Python's `re.ASCII` meaning is kept by writing `\b` as
//! `(?-u:\b)` and `(?i:` as `(?i-u:`. Positions here are byte offsets of UTF-8 text; every
//! test Python makes on a character next to a value is on an ASCII character, so they agree.
//! User rules (`mask.custom`) are translated from Python's syntax (`translate`); what has no
//! exact equivalent (`$`, `\\Z`, `\\D` inside a class, nested or set-operation classes,
//! verbose mode) is refused, naming the rule, so `engine: python` serves such configs.

use hmac::{Hmac, Mac};
use regex_automata::dfa::{dense::DFA, Automaton, StartKind};
use regex_automata::meta::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};
use sha2::Sha256;
use std::sync::{Arc, Mutex, OnceLock};

use crate::payload::{Key, Value};
use crate::places::{Places, COMMENT, ERROR_MESSAGE, EVENT, MESSAGE, PARSE_ERROR, RAW_LOG};
use crate::pyrepr::repr;

mod screen;
use screen::Screen;

pub const STARS: &str = "***";
pub const HMAC_SHA256: &str = "hmac:sha256";
const HMAC_HEX: usize = 20;
const USERINFO_MAX: usize = 256;

/// Built-in rules in match order, and whether each is on by default.
pub const BUILTIN_RULES: [(&str, bool); 10] = [
    ("private_key", true),
    ("alibaba_access_key", true),
    ("api_key", true),
    ("bearer_token", true),
    ("password_pair", true),
    ("email", true),
    ("mobile", true),
    ("resident_id", true),
    ("bank_card", true),
    ("ipv4", false),
];
const DIGIT_RULES: [&str; 3] = ["resident_id", "bank_card", "mobile"];

/// The alternatives in `_ORDER`, with parsers/mask.py's `_PATTERNS` text (Python syntax).
pub const PATTERNS: [(&str, &str); 9] = [
    (
        "private_key",
        r#"(?P<v>-----BEGIN[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?s:.*?-----END[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----|.*))"#,
    ),
    ("alibaba_access_key", r#"\bLTAI(?P<v>[0-9A-Za-z]{12,30})\b"#),
    ("api_key", r#"\bsk-(?P<v>[0-9A-Za-z][0-9A-Za-z_-]{19,199})"#),
    (
        "bearer_token",
        r#"\b(?i:bearer)[ \t]+(?P<v>[0-9A-Za-z._~+/=-]{8,})"#,
    ),
    (
        "password_pair",
        r#"(?:(?i:passw(?:or)?d|passphrase|pwd|secret(?:[_-]?key)?|api[_-]?key|(?:(?:access|refresh|auth|id|session|security)[_-]?)?token)|密码|口令)(?:\\?[\"'])?[ \t]*[:=：][ \t]*(?:\\?\"(?P<v>[^\"\\\r\n]+)|\\?'(?P<v>[^'\\\r\n]+)|(?P<v>[!#-%(+\--:=?-\[^-|~][!#-%(*+\--:=?-\[^-|~]*))"#,
    ),
    ("url_userinfo", r#":(?P<v>[^\t\n\x0b\x0c\r /@*<>]{1,256})@"#),
    (
        "email",
        r#"\b(?P<v>[0-9A-Za-z_][0-9A-Za-z._%+-]{0,63})@[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?(?:\.[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?)*\.[A-Za-z]{2,24}\b"#,
    ),
    ("digits", r#"\b[0-9]{11,19}[Xx]?\b"#),
    (
        "ipv4",
        r#"\b(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}\b"#,
    ),
];

/// Per alternative of `PATTERNS`, a regex (Python syntax, as `PATTERNS`) that every match of
/// the alternative contains a match of: the literal it starts with, the key and separator of a
/// pair, the `@` of an address, eleven digits of a number. Before the rules' regex (with its
/// captures and retries) runs on a text, one scan of a small compiled DFA asks whether any of
/// these occurs; a text without any has nothing to mask. Each need is the start of its
/// alternative's pattern or a part every match has, so the scan never turns away a text the
/// rules' regex would match; it may let through one the regex then finds nothing in.
const NEEDS: [(&str, &str); 9] = [
    ("private_key", "-----BEGIN"),
    ("alibaba_access_key", "LTAI"),
    ("api_key", "sk-"),
    ("bearer_token", "(?i:bearer)"),
    (
        "password_pair",
        r#"(?:(?i:passw(?:or)?d|passphrase|pwd|secret(?:[_-]?key)?|api[_-]?key|(?:(?:access|refresh|auth|id|session|security)[_-]?)?token)|密码|口令)(?:\\?[\"'])?[ \t]*[:=：]"#,
    ),
    ("url_userinfo", "@"),
    ("email", "@"),
    ("digits", "[0-9]{11}"),
    ("ipv4", r"[0-9]\.[0-9]"),
];

/// The DFA of the enabled alternatives' needs (`NEEDS`, and a user rule's whole regex: a
/// text without a match of it has nothing the rule masks), one pattern each (a user rule's
/// group names stay its own); None: the DFA could not be built within its size limit (then
/// every text goes to the rules' regex).
fn prefilter(needs: &[String]) -> Option<DFA<Vec<u32>>> {
    let source: Vec<String> = needs.iter().map(|n| ascii(n)).collect();
    DFA::builder()
        .configure(
            DFA::config()
                .start_kind(StartKind::Unanchored)
                .dfa_size_limit(Some(4 << 20))
                .determinize_size_limit(Some(16 << 20)),
        )
        .build_many(&source)
        .ok()
}

/// What the engine masks with (parsers.mask.MaskSettings without user rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSettings {
    pub enabled: bool,
    pub rules: Vec<(String, bool)>,
    pub replace: Vec<(String, String)>,
    pub max_field_bytes: usize,
    pub key: Option<Vec<u8>>,
    /// The user's rules in config order: (name, regex, prefix, replace).
    pub custom: Vec<(String, String, String, String)>,
}

#[derive(Debug, Clone)]
enum Replace {
    Fixed(String),
    Hmac(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    replace: Replace,
}

impl Rule {
    fn replacement(&self, value: &str) -> String {
        match &self.replace {
            Replace::Fixed(t) => t.clone(),
            Replace::Hmac(key) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                    return STARS.to_string();
                };
                mac.update(value.as_bytes());
                let digest = mac.finalize().into_bytes();
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("<hmac:{}>", hex.get(..HMAC_HEX).unwrap_or(&hex))
            }
        }
    }

    /// The value already is this rule's replacement (left alone, not counted).
    fn masked(&self, value: &str) -> bool {
        match &self.replace {
            Replace::Fixed(t) => value == t,
            Replace::Hmac(_) => {
                value.len() == 7 + HMAC_HEX
                    && value.starts_with("<hmac:")
                    && value.ends_with('>')
                    && value.get(6..6 + HMAC_HEX).is_some_and(|h| {
                        h.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    })
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Decide {
    Plain(usize),
    ApiKey(usize),
    Bearer(usize),
    Url(usize),
    Email(usize),
    Ipv4(usize),
    /// (rule index, which digit rule) in DIGIT_RULES order.
    Digits(Vec<(usize, &'static str)>),
}

/// A combined regex of the alternatives from one index on, and where their groups are.
#[derive(Debug)]
struct Compiled {
    re: Regex,
    /// (alternative index, marker group, value groups) in match order.
    alts: Vec<(usize, usize, Vec<usize>)>,
}

/// One masker per set of settings; `mask_fields` masks a record's text fields in place.
#[derive(Debug)]
pub struct Masker {
    rules: Vec<Rule>,
    decide: Vec<Decide>,
    /// All the alternatives, compiled.
    all: Compiled,
    /// `later[i]`: the alternatives after i, compiled when a rejected match first needs them.
    later: Vec<OnceLock<Option<Compiled>>>,
    sources: Vec<String>,
    cap: usize,
    /// What the enabled alternatives need (`NEEDS`, a user rule's regex); a text with none of
    /// it has nothing to mask. None: the DFA could not be built.
    prefilter: Option<DFA<Vec<u32>>>,
    /// The vectorised screen in front of `prefilter` (None: an alternative it does not cover
    /// is on, and every text goes to the DFA).
    screen: Option<Screen>,
}

/// Maskers already built, by settings: every Stream of a run shares one (building costs
/// milliseconds; a daemon opens a Stream per file). Bounded: cleared when full.
static SHARED: Mutex<Vec<(MaskSettings, Arc<Masker>)>> = Mutex::new(Vec::new());
const SHARED_MAX: usize = 16;

/// The masker of `s`, shared with the Streams that have the same settings.
pub fn shared(s: &MaskSettings) -> Result<Option<Arc<Masker>>, String> {
    if let Ok(cache) = SHARED.lock() {
        if let Some((_, m)) = cache.iter().find(|(k, _)| k == s) {
            return Ok(Some(Arc::clone(m)));
        }
    }
    let Some(masker) = Masker::new(s)? else {
        return Ok(None);
    };
    let masker = Arc::new(masker);
    if let Ok(mut cache) = SHARED.lock() {
        if cache.len() >= SHARED_MAX {
            cache.clear();
        }
        cache.push((s.clone(), Arc::clone(&masker)));
    }
    Ok(Some(masker))
}

/// Python's `re.ASCII` meaning in Rust's syntax.
fn ascii(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('b') => out.push_str("(?-u:\\b)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else if c == '(' && source_follows(&mut chars, "?i:") {
            out.push_str("(?i-u:");
        } else {
            out.push(c);
        }
    }
    out
}

fn source_follows(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, what: &str) -> bool {
    let ahead: String = chars.clone().take(what.chars().count()).collect();
    if ahead == what {
        for _ in 0..what.chars().count() {
            chars.next();
        }
        true
    } else {
        false
    }
}

/// `(?P<v>` -> `(?P<a{i}v{n}>`: group names must be unique.
fn number_values(source: &str, i: usize) -> String {
    let mut out = String::new();
    for (n, part) in source.split("(?P<v>").enumerate() {
        if n > 0 {
            out.push_str(&format!("(?P<a{i}v{}>", n - 1));
        }
        out.push_str(part);
    }
    out
}

impl Masker {
    /// None when nothing is enabled; Err names what cannot be built.
    pub fn new(s: &MaskSettings) -> Result<Option<Masker>, String> {
        if !s.enabled {
            return Ok(None);
        }
        let on = |name: &str, default: bool| {
            s.rules
                .iter()
                .find(|(n, _)| n == name)
                .map_or(default, |(_, v)| *v)
        };
        let mut rules: Vec<Rule> = Vec::new();
        let mut index = |name: &str| -> Result<usize, String> {
            let text = s
                .replace
                .iter()
                .find(|(n, _)| n == name)
                .map_or(STARS, |(_, r)| r.as_str());
            rules.push(Rule {
                name: name.to_string(),
                replace: replacement_of(name, text, s.key.as_deref())?,
            });
            Ok(rules.len() - 1)
        };
        let enabled: Vec<&str> = BUILTIN_RULES
            .iter()
            .filter(|(n, d)| on(n, *d))
            .map(|(n, _)| *n)
            .collect();
        let mut at: Vec<(&str, usize)> = Vec::new();
        for name in &enabled {
            at.push((name, index(name)?));
        }
        let rule_of = |name: &str| at.iter().find(|(n, _)| *n == name).map(|(_, i)| *i);
        let mut sources: Vec<(String, Decide)> = Vec::new();
        let mut needs: Vec<String> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        let mut known = true;
        for (key, pattern) in PATTERNS {
            let decide = match key {
                "digits" => {
                    let digit: Vec<(usize, &'static str)> = DIGIT_RULES
                        .iter()
                        .filter_map(|n| rule_of(n).map(|i| (i, *n)))
                        .collect();
                    if digit.is_empty() {
                        continue;
                    }
                    Decide::Digits(digit)
                }
                "url_userinfo" => match rule_of("password_pair") {
                    Some(i) => Decide::Url(i),
                    None => continue,
                },
                name => match rule_of(name) {
                    None => continue,
                    Some(i) => match name {
                        "api_key" => Decide::ApiKey(i),
                        "bearer_token" => Decide::Bearer(i),
                        "email" => Decide::Email(i),
                        "ipv4" => Decide::Ipv4(i),
                        _ => Decide::Plain(i),
                    },
                },
            };
            keys.push(key);
            match NEEDS.iter().find(|(k, _)| *k == key) {
                Some((_, need)) => needs.push(need.to_string()),
                None => known = false,
            }
            sources.push((pattern.to_string(), decide));
        }
        for (name, regex, prefix, replace) in &s.custom {
            let rule = Rule {
                name: name.clone(),
                replace: replacement_of(name, replace, s.key.as_deref())?,
            };
            rules.push(rule);
            let refuse = |part: &str, e: String| {
                format!(
                    "engine: core cannot run mask rule {}: its {part} {e}; set engine: python",
                    repr(name)
                )
            };
            let value = translate(regex).map_err(|e| refuse("regex", e))?;
            let source = if prefix.is_empty() {
                format!("(?P<v>{value})")
            } else {
                let kept = translate(prefix).map_err(|e| refuse("prefix", e))?;
                format!("(?:{kept})(?P<v>{value})")
            };
            needs.push(source.clone());
            sources.push((source, Decide::Plain(rules.len() - 1)));
        }
        if sources.is_empty() {
            return Ok(None);
        }
        let prefilter = if known { prefilter(&needs) } else { None };
        // Only in front of a DFA of exactly the built-in needs it stands for.
        let screen = match &prefilter {
            Some(_) if s.custom.is_empty() => Screen::new(&keys),
            _ => None,
        };
        let patterns: Vec<String> = sources.iter().map(|(p, _)| p.clone()).collect();
        Ok(Some(Masker {
            rules,
            all: compile(&patterns, 0)?,
            later: patterns.iter().map(|_| OnceLock::new()).collect(),
            sources: patterns,
            decide: sources.into_iter().map(|(_, d)| d).collect(),
            cap: s.max_field_bytes,
            prefilter,
            screen,
        }))
    }

    /// Masks the text fields of one record in place; replacements per rule, in first-seen order.
    pub fn mask_fields(&self, fields: &mut [(Key, Value)]) -> Vec<(String, u64)> {
        let places = Places::of(fields);
        self.mask_fields_at(fields, &places)
    }

    /// `mask_fields` with the places of the fields' names already found (the Stream finds
    /// them once for masking, its counters and the LLM aggregate).
    pub fn mask_fields_at(
        &self,
        fields: &mut [(Key, Value)],
        places: &Places,
    ) -> Vec<(String, u64)> {
        let event = places.first(fields, EVENT);
        let names: &[usize] = match event {
            Some(Value::Str(e)) => match e.as_str() {
                "llm_call" => &[MESSAGE, ERROR_MESSAGE, PARSE_ERROR],
                "prompt" | "result" | "log" => &[MESSAGE, PARSE_ERROR],
                // `comment`: what the user typed with a rating.
                "feedback" => &[MESSAGE, COMMENT, PARSE_ERROR],
                _ => &[MESSAGE, RAW_LOG, ERROR_MESSAGE, PARSE_ERROR],
            },
            _ => &[RAW_LOG, PARSE_ERROR],
        };
        let mut total: Vec<(String, u64)> = Vec::new();
        for &name in names {
            let Some((_, value)) = places.first_at(name).and_then(|i| fields.get_mut(i)) else {
                continue;
            };
            let Value::Str(text) = value else { continue };
            if text.is_empty() {
                continue;
            }
            if let Some((masked, counts)) = self.mask_text(text) {
                *text = masked;
                for (rule, n) in counts {
                    add_count(&mut total, &rule, n);
                }
            }
        }
        total
    }

    /// The masked text and the replacements per rule; None when nothing was replaced.
    pub fn mask_text(&self, text: &str) -> Option<(String, Vec<(String, u64)>)> {
        if !self.may_match(text) {
            return None;
        }
        self.mask_text_unfiltered(text)
    }

    /// `mask_text` without the prefilter: every text goes through the rules' regex.
    pub fn mask_text_unfiltered(&self, text: &str) -> Option<(String, Vec<(String, u64)>)> {
        let mut out = String::new();
        let mut counts: Vec<(String, u64)> = Vec::new();
        let mut last = 0;
        let all = &self.all;
        let mut caps = all.re.create_captures();
        let mut m = search(all, text, 0, false, &mut caps);
        while let Some((alt, start, end, vs, ve)) = m {
            match self.judge(alt, text, vs, ve, end) {
                None => {
                    // Rejected: the later alternatives may still match at this start.
                    if let Some(rest) = self.later_than(alt) {
                        let mut rc = rest.re.create_captures();
                        if let Some(found) = search(rest, text, start, true, &mut rc) {
                            m = Some(found);
                            continue;
                        }
                    }
                    let step = text
                        .get(start..)
                        .and_then(|t| t.chars().next())
                        .map_or(1, char::len_utf8);
                    m = search(all, text, start + step, false, &mut caps);
                }
                Some((rule, s, e)) => {
                    let value = text.get(s..e).unwrap_or("");
                    if let Some(r) = self.rules.get(rule) {
                        if !r.masked(value) {
                            out.push_str(text.get(last..s).unwrap_or(""));
                            out.push_str(&r.replacement(value));
                            last = e;
                            add_count(&mut counts, &r.name, 1);
                        }
                    }
                    m = search(all, text, e, false, &mut caps);
                }
            }
        }
        if counts.is_empty() {
            return None;
        }
        out.push_str(text.get(last..).unwrap_or(""));
        Some((cap(out, self.cap), counts))
    }

    /// Whether the text has what some enabled alternative needs (true without a prefilter).
    fn may_match(&self, text: &str) -> bool {
        let b = text.as_bytes();
        let Some(dfa) = &self.prefilter else {
            return true;
        };
        if let Some(screen) = &self.screen {
            if !screen.may_match(b) {
                return false;
            }
        }
        // A DFA error (it has no quit bytes, so none is expected) lets the text through.
        !matches!(dfa.try_search_fwd(&Input::new(b).earliest(true)), Ok(None))
    }

    /// The alternatives after `alt` (None: it is the last one).
    fn later_than(&self, alt: usize) -> Option<&Compiled> {
        let cell = self.later.get(alt)?;
        cell.get_or_init(|| {
            if alt + 1 >= self.sources.len() {
                return None;
            }
            compile(&self.sources, alt + 1).ok()
        })
        .as_ref()
    }

    /// (rule, value start, value end) of an accepted match; None: rejected.
    fn judge(
        &self,
        alt: usize,
        t: &str,
        s: usize,
        e: usize,
        end: usize,
    ) -> Option<(usize, usize, usize)> {
        let b = t.as_bytes();
        let value = t.get(s..e).unwrap_or("");
        let decided = match self.decide.get(alt)? {
            Decide::Plain(r) => Some((*r, s, e)),
            Decide::ApiKey(r) => {
                let whole = b
                    .get(e)
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-'));
                let shaped = value.bytes().any(|c| c.is_ascii_digit())
                    && value.bytes().any(|c| c.is_ascii_alphabetic());
                (whole && shaped).then_some((*r, s, e))
            }
            Decide::Bearer(r) => value
                .bytes()
                .any(|c| c.is_ascii_digit())
                .then_some((*r, s, e)),
            Decide::Email(r) => (b.get(end) != Some(&b'@')).then_some((*r, s, e)),
            Decide::Ipv4(r) => {
                let before = s > 0 && b.get(s - 1) == Some(&b'.');
                let after = b.get(e) == Some(&b'.')
                    && b.get(e + 1).is_some_and(|c| !b" \t\r\n".contains(c));
                (!before && !after).then_some((*r, s, e))
            }
            Decide::Url(r) => {
                let at = s.checked_sub(1)?; // the colon
                let mut user = at;
                while user > 0
                    && at - user < USERINFO_MAX
                    && b.get(user - 1).is_some_and(|c| userinfo(*c))
                {
                    user -= 1;
                }
                let ok =
                    user != at && user >= 3 && b.get(user - 3..user) == Some(b"://".as_slice());
                ok.then_some((*r, s, e))
            }
            Decide::Digits(rules) => {
                let run = value;
                let n = run.len();
                let mut found = None;
                for (r, name) in rules {
                    let hit = match *name {
                        "resident_id" => resident_id_valid(run).then_some((*r, s, e)),
                        "bank_card" => bank_card_valid(run).then_some((*r, s, e)),
                        _ => {
                            let rb = run.as_bytes();
                            // A phone number never ends in X (a resident id does).
                            if !rb.last().is_some_and(u8::is_ascii_digit) {
                                None
                            } else if n == 11
                                && rb.first() == Some(&b'1')
                                && rb.get(1).is_some_and(|c| (b'3'..=b'9').contains(c))
                            {
                                Some((*r, s, e))
                            } else if n == 13
                                && run.starts_with("861")
                                && rb.get(3).is_some_and(|c| (b'3'..=b'9').contains(c))
                            {
                                Some((*r, s + 2, e))
                            } else {
                                None
                            }
                        }
                    };
                    if hit.is_some() {
                        found = hit;
                        break;
                    }
                }
                found
            }
        };
        decided.filter(|(_, s, e)| s != e)
    }
}

fn replacement_of(name: &str, text: &str, key: Option<&[u8]>) -> Result<Replace, String> {
    if text == HMAC_SHA256 {
        match key {
            Some(k) if !k.is_empty() => Ok(Replace::Hmac(k.to_vec())),
            _ => Err(format!("rule {name:?}: replace {HMAC_SHA256} needs a key")),
        }
    } else {
        Ok(Replace::Fixed(text.to_string()))
    }
}

/// A user's regex (Python `re` syntax, compiled there with `re.ASCII`) in Rust's syntax with
/// the same meaning; Err says what has no exact equivalent.
pub fn translate(source: &str) -> Result<String, String> {
    const CLASS_OUT: [(char, &str); 6] = [
        ('d', "[0-9]"),
        ('D', "[^0-9]"),
        ('w', "[0-9A-Za-z_]"),
        ('W', "[^0-9A-Za-z_]"),
        ('s', "[\\t\\n\\x0B\\x0C\\r ]"),
        ('S', "[^\\t\\n\\x0B\\x0C\\r ]"),
    ];
    const CLASS_IN: [(char, &str); 3] = [
        ('d', "0-9"),
        ('w', "0-9A-Za-z_"),
        ('s', "\\t\\n\\x0B\\x0C\\r "),
    ];
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 16);
    let mut i = 0;
    // In a class: the index of its first member (a `]` there is a literal).
    let mut class: Option<usize> = None;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        if c == '\\' {
            let Some(n) = next else {
                return Err("ends with a backslash".into());
            };
            i += 2;
            if n.is_ascii_digit() {
                return Err("uses an octal or numbered escape".into());
            }
            match class {
                None => match n {
                    'b' => out.push_str("(?-u:\\b)"),
                    'B' => out.push_str("(?-u:\\B)"),
                    'Z' => out.push_str("\\z"),
                    _ => match CLASS_OUT.iter().find(|(k, _)| *k == n) {
                        Some((_, t)) => out.push_str(t),
                        None => escape(&mut out, n)?,
                    },
                },
                Some(_) => match CLASS_IN.iter().find(|(k, _)| *k == n) {
                    Some((_, t)) => out.push_str(t),
                    None if "DWSbB".contains(n) => {
                        return Err(format!("uses \\{n} inside a class"));
                    }
                    None => escape(&mut out, n)?,
                },
            }
            continue;
        }
        match class {
            Some(first) => {
                if c == ']' && i > first {
                    class = None;
                    out.push(']');
                } else if c == '[' || (matches!(c, '&' | '-' | '~') && next == Some(c)) {
                    return Err("uses a nested class or a set operation".into());
                } else {
                    out.push(c);
                }
            }
            None => match c {
                '[' => {
                    out.push('[');
                    let mut first = i + 1;
                    if chars.get(first) == Some(&'^') {
                        out.push('^');
                        first += 1;
                    }
                    class = Some(first);
                    i = first;
                    continue;
                }
                '$' => return Err("uses $ (write \\Z for the end of the text)".into()),
                '(' if next == Some('?') => {
                    let flags: String = chars
                        .iter()
                        .skip(i + 2)
                        .take_while(|c| c.is_ascii_alphabetic() || **c == '-')
                        .collect();
                    let after = chars.get(i + 2 + flags.chars().count()).copied();
                    if !flags.is_empty() && after == Some(':') {
                        let (on, off) = flags.split_once('-').unwrap_or((flags.as_str(), ""));
                        let on = on.replace('a', "");
                        if !on.chars().chain(off.chars()).all(|f| "ims".contains(f)) {
                            return Err("uses a verbose, unicode or locale flag".into());
                        }
                        // Case folding of ASCII letters only, as `re.ASCII` does.
                        let off = if on.contains('i') {
                            format!("{off}u")
                        } else {
                            off.to_string()
                        };
                        let dash = if off.is_empty() { "" } else { "-" };
                        out.push_str(&format!("(?{on}{dash}{off}:"));
                        i += 3 + flags.chars().count();
                        continue;
                    }
                    out.push(c);
                }
                '{' if next == Some(',') => {
                    out.push_str("{0");
                }
                _ => out.push(c),
            },
        }
        i += 1;
    }
    if class.is_some() {
        return Err("leaves a class open".into());
    }
    Ok(out)
}

/// An escaped character other than a class shorthand: the same character or escape in Rust
/// (a literal written `\x{..}`, which reads the same inside and outside a class).
fn escape(out: &mut String, n: char) -> Result<(), String> {
    match n {
        'a' => out.push_str("\\x07"),
        'v' => out.push_str("\\x0B"),
        't' | 'n' | 'r' | 'f' | 'x' | 'u' | 'U' | 'A' => {
            out.push('\\');
            out.push(n);
        }
        _ if n.is_ascii_alphanumeric() => return Err(format!("uses the escape \\{n}")),
        _ => out.push_str(&format!("\\x{{{:X}}}", u32::from(n))),
    }
    Ok(())
}

fn userinfo(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._~%!$&'()*+,;=-".contains(&c)
}

fn add_count(counts: &mut Vec<(String, u64)>, rule: &str, n: u64) {
    match counts.iter_mut().find(|(r, _)| r == rule) {
        Some(slot) => slot.1 += n,
        None => counts.push((rule.to_string(), n)),
    }
}

fn compile(sources: &[String], from: usize) -> Result<Compiled, String> {
    let parts: Vec<String> = sources
        .iter()
        .enumerate()
        .skip(from)
        .map(|(i, p)| format!("(?:{})(?P<a{i}>)", ascii(&number_values(p, i))))
        .collect();
    let re = Regex::builder()
        .configure(Regex::config().nfa_size_limit(Some(64 << 20)))
        .build(&parts.join("|"))
        .map_err(|e| {
            format!("engine: core cannot compile these mask rules ({e}); set engine: python")
        })?;
    let info = re.group_info().clone();
    let pid = regex_automata::PatternID::ZERO;
    let mut alts = Vec::new();
    for i in from..sources.len() {
        let marker = info
            .to_index(pid, &format!("a{i}"))
            .ok_or("masking regex: a marker group is missing")?;
        let mut values = Vec::new();
        for n in 0.. {
            match info.to_index(pid, &format!("a{i}v{n}")) {
                Some(g) => values.push(g),
                None => break,
            }
        }
        alts.push((i, marker, values));
    }
    Ok(Compiled { re, alts })
}

/// The next match from `at` (anchored: only one starting there): (alternative, start, end,
/// value start, value end).
fn search(
    c: &Compiled,
    text: &str,
    at: usize,
    anchored: bool,
    caps: &mut Captures,
) -> Option<(usize, usize, usize, usize, usize)> {
    if at > text.len() {
        return None;
    }
    let mut input = Input::new(text).range(at..);
    if anchored {
        input = input.anchored(Anchored::Yes);
    }
    c.re.search_captures(&input, caps);
    let whole = caps.get_match()?;
    let (start, end) = (whole.start(), whole.end());
    let (alt, _, values) = c
        .alts
        .iter()
        .find(|(_, marker, _)| caps.get_group(*marker).is_some())?;
    let (vs, ve) = values
        .iter()
        .find_map(|g| caps.get_group(*g))
        .map_or((start, end), |sp| (sp.start, sp.end));
    Some((*alt, start, end, vs, ve))
}

/// `text` cut to its longest prefix of whole characters within `limit` UTF-8 bytes.
fn cap(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("").to_string()
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A mainland resident ID number (GB 11643): date of birth and check character.
pub fn resident_id_valid(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 18 || !b.iter().take(17).all(u8::is_ascii_digit) || b.first() == Some(&b'0') {
        return false;
    }
    let num = |a: usize, z: usize| -> u32 {
        b.get(a..z)
            .unwrap_or(&[])
            .iter()
            .fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(6, 10), num(10, 12), num(12, 14));
    if !((1900..=2099).contains(&year) && (1..=12).contains(&month) && day >= 1) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = DAYS.get(month as usize - 1).copied().unwrap_or(0) + u32::from(month == 2 && leap);
    if day > days {
        return false;
    }
    let total: u32 = b
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = ID_CHECK.get((total % 11) as usize).copied();
    check == b.get(17).map(u8::to_ascii_uppercase)
}

/// 16-19 digits from a card issuer range (2-6, 9) passing the Luhn check.
pub fn bank_card_valid(text: &str) -> bool {
    let b = text.as_bytes();
    if !(16..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !b.first().is_some_and(|c| b"234569".contains(c)) {
        return false;
    }
    let total: u32 = b
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                if d > 4 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    total.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        let s = MaskSettings {
            enabled: true,
            rules: vec![("ipv4".into(), true)],
            replace: vec![],
            max_field_bytes: 1 << 20,
            key: None,
            custom: vec![],
        };
        Masker::new(&s).unwrap().unwrap()
    }

    #[test]
    fn validators_check_what_the_reference_checks() {
        assert!(resident_id_valid("11010519491231002X"));
        assert!(!resident_id_valid("110105194912310021"));
        assert!(bank_card_valid("4111111111111111"));
        assert!(!bank_card_valid("4111111111111112"));
    }

    #[test]
    fn user_regexes_keep_python_s_ascii_meaning() {
        assert_eq!(translate(r"\d+").unwrap(), "[0-9]+");
        assert_eq!(translate(r"[\w.]").unwrap(), "[0-9A-Za-z_.]");
        assert_eq!(translate(r"(?i:ab)\b").unwrap(), "(?i-u:ab)(?-u:\\b)");
        assert_eq!(translate(r"a{,3}\Z").unwrap(), "a{0,3}\\z");
        assert_eq!(translate(r"\.\]").unwrap(), "\\x{2E}\\x{5D}");
        assert_eq!(translate(r"[]a]").unwrap(), "[]a]");
        for bad in [r"a$", r"[\D]", r"[a--b]", r"(?x:a)", r"\1", r"[a"] {
            assert!(translate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_next_to_chinese_text_are_masked() {
        let (out, counts) = masker()
            .mask_text("号码13812345678，密码:abc123 ip 10.0.0.1")
            .unwrap();
        assert_eq!(out, "号码***，密码:*** ip ***");
        assert_eq!(
            counts,
            vec![
                ("mobile".to_string(), 1),
                ("password_pair".to_string(), 1),
                ("ipv4".to_string(), 1)
            ]
        );
        assert!(masker().mask_text("order 123456789012345678901").is_none());
    }

    /// Pieces that are, or nearly are, what each rule looks for: a prefilter that let a real
    /// match through unmasked, or changed anything, shows up on their concatenations.
    const NEAR: [&str; 61] = [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN",
        "----BEGIN PRIVATE KEY-----",
        "LTAI5tAbCdEfGhIjKlMn",
        "LTAI12",
        "LTA",
        "sk-abcdefghij0123456789xyz",
        "sk-",
        "sk",
        "Bearer abc.def-123456",
        "bearer\tabcdefgh1",
        "BEARER",
        "beare",
        "password=hunter2",
        "passwd:",
        "PassPhrase = 'x y'",
        "pwd：abc",
        "secret_key=\"s3\"",
        "api-key: k1",
        "apikey",
        "access_token=t0k",
        "session-token :x",
        "token",
        "tok",
        "{\\\"api_key\\\": \\\"k9\\\"}",
        "PWD' \t= v",
        "monkey:1",
        "密码：秘密",
        "口令=1",
        "密",
        "\\\"",
        "@",
        "a@b",
        "user.name@example.com",
        "x@y.c",
        "https://bob:pa55@host/",
        "://:@",
        ":u@",
        "1381234567",
        "13812345678",
        "8613812345678",
        "11010519491231002X",
        "110105194912310021",
        "4111111111111111",
        "411111111111111",
        "123456789012345678901",
        "1.2.3.4",
        "10.0.0",
        "256.1.1.1",
        "1.2.3.4.",
        "0",
        "9",
        ".",
        " ",
        "\t",
        "\n",
        "_",
        "-",
        "中文",
        "é",
        "x",
    ];

    /// Every built-in rule alone, then the defaults, then all but ipv4: a screen check of a
    /// rule that is off must not hide a need of one that is on.
    fn screened_maskers() -> Vec<Masker> {
        let mut sets: Vec<Vec<(String, bool)>> = BUILTIN_RULES
            .iter()
            .filter(|(n, _)| *n != "ipv4")
            .map(|(only, _)| {
                BUILTIN_RULES
                    .iter()
                    .map(|(n, _)| (n.to_string(), n == only))
                    .collect()
            })
            .collect();
        sets.push(vec![]);
        sets.push(vec![("ipv4".into(), false)]);
        sets.into_iter()
            .map(|rules| {
                let s = MaskSettings {
                    enabled: true,
                    rules,
                    replace: vec![],
                    max_field_bytes: 1 << 20,
                    key: None,
                    custom: vec![],
                };
                Masker::new(&s).unwrap().unwrap()
            })
            .collect()
    }

    /// Texts of filler (every trigger byte, digits, blanks, quotes, `：` and other characters
    /// of its first byte) with NEAR pieces planted at random places: the screen never turns
    /// away a text the needs DFA lets through, and masking with both equals masking without.
    #[test]
    fn the_screen_turns_away_only_texts_the_needs_dfa_does() {
        const FILLER: [&str; 34] = [
            "a", "Z", "0", "9", "1", "7", " ", "\t", ",", "-", ".", "'", "\"", "\\", ":", "=",
            "：", "，", "＝", "@", "b", "B", "k", "G", "T", "L", "s", "y", "d", "n", "中", "é",
            "\n", "_",
        ];
        let mut g = crate::testgen::Gen(0x5EED_0F5C_4EE7);
        let maskers = screened_maskers();
        let (mut through, mut away, mut screen_only, mut runs_away) = (0, 0, 0, 0);
        for round in 0..40_000 {
            let m = &maskers[round % maskers.len()];
            let (Some(screen), Some(dfa)) = (&m.screen, &m.prefilter) else {
                panic!("no screen for {round}");
            };
            let len = g.below(48);
            let mut text = g.text(&FILLER, len);
            for _ in 0..g.below(3) {
                let cuts: Vec<usize> = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([text.len()])
                    .collect();
                let at = *g.pick(&cuts);
                let piece = *g.pick(&NEAR);
                text.insert_str(at, piece);
            }
            let needs = !matches!(
                dfa.try_search_fwd(&Input::new(text.as_bytes()).earliest(true)),
                Ok(None)
            );
            let screened = screen.may_match(text.as_bytes());
            // What the screen turns away and the DFA would not: digit runs of lengths no digit
            // rule takes (screen.rs `digit_run_taken`), which the regex leaves alone.
            let nothing = || m.mask_text_unfiltered(&text).is_none();
            assert!(
                screened || !needs || nothing(),
                "{round}: {text:?} turned away"
            );
            match (screened, needs) {
                (true, true) => through += 1,
                (false, true) => runs_away += 1,
                (false, false) => away += 1,
                (true, false) => screen_only += 1,
            }
            if round % 8 == 0 {
                assert_eq!(
                    m.mask_text(&text),
                    m.mask_text_unfiltered(&text),
                    "{text:?}"
                );
            }
        }
        // All four outcomes, often.
        assert!(
            through > 5000 && away > 5000 && screen_only > 20 && runs_away > 20,
            "{through} through, {away} turned away, {screen_only} left to the DFA, \
             {runs_away} digit runs turned away"
        );
    }

    /// `digits` with a Luhn check digit appended (a bank card's last digit).
    fn with_luhn(digits: &str) -> String {
        let total: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, c)| {
                let d = u32::from(c - b'0');
                match (i % 2 == 0, d > 4) {
                    (true, true) => d * 2 - 9,
                    (true, false) => d * 2,
                    _ => d,
                }
            })
            .sum();
        format!("{digits}{}", (10 - total % 10) % 10)
    }

    /// Digit runs of every length from 9 to 24, shaped to pass the digit rules where their
    /// length allows (a mobile's `1[3-9]` or `861[3-9]`, a bank card's issuer and Luhn digit,
    /// a resident id's date and check character), with or without a final `X`/`x`, next to
    /// blanks, letters, punctuation or other runs, at every offset in a 16-byte block: the
    /// screen's run lengths (screen.rs `TAKEN`, `TAKEN_X`) turn away only texts the rules'
    /// regex leaves as they are, and a run of a length outside them is never masked.
    #[test]
    fn digit_runs_the_screen_turns_away_are_never_masked() {
        let mut g = crate::testgen::Gen(0xD161_7500);
        let maskers = screened_maskers();
        let digits = |g: &mut crate::testgen::Gen, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'0' + g.below(10) as u8))
                .collect()
        };
        let (mut masked, mut away) = (0, 0);
        for round in 0..30_000 {
            let n = 9 + g.below(16);
            let run = match g.below(6) {
                0 => format!("13{}", digits(&mut g, n.saturating_sub(2))),
                1 => format!("8613{}", digits(&mut g, n.saturating_sub(4))),
                2 => with_luhn(&format!("4{}", digits(&mut g, n.saturating_sub(2)))),
                3 if n >= 17 => format!("110105194912310{}", digits(&mut g, n - 15)),
                3 => "11010519491231002".to_string(),
                _ => digits(&mut g, n),
            };
            let before = *g.pick(&["", " ", "a", "-", "id=", "_", "中", "1 ", "@"]);
            let after = *g.pick(&[
                "", " ", ",", "a", "X", "x", "X1", "X ", "Xa", "x_", ".", "中", "_",
            ]);
            let pad = " ".repeat(g.below(20));
            let tail = g.below(14);
            let text = format!("{pad}{before}{run}{after} {}", digits(&mut g, tail));
            let m = &maskers[round % maskers.len()];
            let filtered = m.mask_text(&text);
            assert_eq!(filtered, m.mask_text_unfiltered(&text), "{round}: {text:?}");
            if filtered.is_some() {
                masked += 1;
            } else if !m.may_match(&text) {
                away += 1;
            }
            // A lone run of a length no rule takes is never masked, whatever follows it; one
            // ending in X only as a resident id (18).
            let x = after.starts_with(['X', 'x']);
            let len = run.len() + usize::from(x);
            let taken = if x {
                len == 18
            } else {
                [11, 13, 16, 17, 18, 19].contains(&len)
            };
            if !taken {
                let alone = format!(" {run}{} ", if x { "X" } else { "" });
                assert_eq!(m.mask_text_unfiltered(&alone), None, "{alone:?}");
            }
        }
        assert!(masked > 300 && away > 5000, "{masked} masked, {away} away");
    }

    /// With user rules the needs DFA holds each rule's own regex: texts of pieces that are, or
    /// nearly are, what the rules (tests/test_core_mask.py's USER_RULES) and the built-ins
    /// look for are masked as without it, and texts with none of them skip the regex.
    #[test]
    fn user_rules_are_prefiltered_by_their_own_regex() {
        let rule = |name: &str, regex: &str, prefix: &str| {
            (name.into(), regex.into(), prefix.into(), STARS.into())
        };
        let user = vec![
            rule("order", r"ORD[0-9]{6}", ""),
            rule("uid", r"\d{4,8}", r"(?i:uid)[:=]\s*"),
            rule("ticket", r"[A-Z]{2}-\w+", ""),
            rule("codename", r"\bcodename [a-z]+\b", ""),
            rule("block", r"(?s:BEGIN.*?END)", ""),
            rule("tagged", r"[^\s,;]{3}#[\d]+", ""),
            rule("head", r"^HEAD\S*", ""),
            rule("zq", r"Z{,3}q\.?", ""),
        ];
        let settings = |rules: Vec<(String, bool)>, custom| MaskSettings {
            enabled: true,
            rules,
            replace: vec![],
            max_field_bytes: 1 << 20,
            key: None,
            custom,
        };
        let all_off: Vec<(String, bool)> = BUILTIN_RULES
            .iter()
            .map(|(n, _)| (n.to_string(), false))
            .collect();
        let maskers = [
            Masker::new(&settings(vec![], user.clone()))
                .unwrap()
                .unwrap(),
            Masker::new(&settings(all_off, user[3..].to_vec()))
                .unwrap()
                .unwrap(),
            Masker::new(&settings(
                vec![("ipv4".into(), true)],
                vec![rule("uid", r"(?i:u)[0-9]+", "")],
            ))
            .unwrap()
            .unwrap(),
        ];
        let pieces: Vec<&str> = [
            "ORD123456",
            "ORD12345",
            "uid: 1234",
            "UID=99999",
            "Uid=1",
            "AB-x_1",
            "Ab-1",
            "codename falcon",
            "codename Falcon",
            "BEGIN",
            "END",
            "abc#12",
            "a,c#1",
            "HEADx",
            "ZZq",
            "q.",
            "u7",
            "U",
            " ",
            "\n",
            "\u{3000}",
            "号",
            "k",
            "K",
            "\u{212a}",
        ]
        .into_iter()
        .chain(NEAR)
        .collect();
        let mut g = crate::testgen::Gen(0xC0_57_0E);
        let (mut masked, mut skipped) = (0, 0);
        for round in 0..6000 {
            let m = &maskers[round % maskers.len()];
            assert!(m.prefilter.is_some() && m.screen.is_none());
            let len = g.below(6);
            let text = g.text(&pieces, len);
            agrees(m, &text, round, &mut masked, &mut skipped);
        }
        assert!(
            masked > 1000 && skipped > 200,
            "{masked} masked, {skipped} skipped"
        );
    }

    /// `text` masked with and without the prefilter must agree; counts the way it went.
    fn agrees(m: &Masker, text: &str, round: usize, masked: &mut usize, skipped: &mut usize) {
        let filtered = m.mask_text(text);
        assert_eq!(filtered, m.mask_text_unfiltered(text), "{round}: {text:?}");
        if filtered.is_some() {
            *masked += 1;
        } else if !m.may_match(text) {
            *skipped += 1;
        }
    }

    #[test]
    fn the_prefilter_never_changes_what_is_masked() {
        let hmac = MaskSettings {
            enabled: true,
            rules: vec![("ipv4".into(), true)],
            replace: BUILTIN_RULES
                .iter()
                .map(|(n, _)| (n.to_string(), HMAC_SHA256.to_string()))
                .collect(),
            max_field_bytes: 40,
            key: Some(b"0123456789abcdef".to_vec()),
            custom: vec![],
        };
        let some_off = MaskSettings {
            enabled: true,
            rules: vec![("email".into(), false), ("bank_card".into(), false)],
            replace: vec![],
            max_field_bytes: 1 << 20,
            key: None,
            custom: vec![],
        };
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let maskers = [
            masker(),
            Masker::new(&hmac).unwrap().unwrap(),
            Masker::new(&some_off).unwrap().unwrap(),
        ];
        let (mut masked, mut skipped) = (0, 0);
        for round in 0..3000 {
            let text: String = (0..next() % 7)
                .map(|_| NEAR[(next() % NEAR.len() as u64) as usize])
                .collect();
            for m in &maskers {
                agrees(m, &text, round, &mut masked, &mut skipped);
            }
        }
        // Both ways were taken, often.
        assert!(
            masked > 1000 && skipped > 1000,
            "{masked} masked, {skipped} skipped"
        );
    }
}
