//! The record-start test of a line, without the backtracking matcher for the usual patterns.
//!
//! Framing asks at every line whether it starts a record (pattern.rs `start_matcher`:
//! `BOM? NUL*` and the pattern's elements up to the first free text after the date). For a
//! Logback header that sequence is literals, fixed-width digit runs and possessive runs: each
//! element can end in one place only, so the test is one left-to-right walk over per-byte sets,
//! ~10x cheaper than the general matcher. `StartTest` builds that walk from the matcher's
//! elements when every element allows it, and asks the matcher whenever the walk cannot decide
//! (a line starting with a BOM or NUL byte, or a sequence with alternatives or free text).

use std::sync::Arc;

use crate::matcher::{as_range, in_ranges, El, Matcher, Mode, Set, WalkStep, LANES};

/// 256 bits: the bytes a position or a run accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bytes([u64; 4]);

impl Bytes {
    fn one(b: u8) -> Bytes {
        Bytes::range(b, b)
    }
    fn range(lo: u8, hi: u8) -> Bytes {
        let mut w = [0u64; 4];
        for b in lo..=hi {
            w[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        Bytes(w)
    }
    /// The byte, when the set has exactly one.
    fn single(&self) -> Option<u8> {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        (n == 1)
            .then(|| (0..=255u8).find(|&b| self.has(b)))
            .flatten()
    }
    /// The members of a matcher `Set`, asked of the matcher itself (its bytes are private):
    /// a one-byte possessive run of the set matches exactly its members.
    fn of(set: &Set) -> Bytes {
        let probe = Matcher::new(
            vec![El::class(set.clone(), 1, Some(1), Mode::Possessive)],
            0,
            false,
        );
        let mut w = [0u64; 4];
        for b in 0..=255u8 {
            if probe.test(&[b]) {
                w[usize::from(b >> 6)] |= 1 << (b & 63);
            }
        }
        Bytes(w)
    }
    #[inline]
    fn has(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] >> (b & 63) & 1 == 1
    }
    fn disjoint(&self, other: &Bytes) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| a & b == 0)
    }
}

/// Eight positions of a fixed step checked at once: literal bytes under a mask, digits by
/// arithmetic on the lanes, any other set byte by byte.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Word {
    at: usize,
    lit_mask: u64,
    lit: u64,
    digits: u64,
    others: Vec<(usize, Bytes)>,
}

const LANES_30: u64 = 0x3030_3030_3030_3030;
const LANES_06: u64 = 0x0606_0606_0606_0606;
const LANES_F0: u64 = 0xF0F0_F0F0_F0F0_F0F0;

impl Word {
    fn new(sets: &[Bytes], at: usize) -> Word {
        let digits_set = Bytes::range(b'0', b'9');
        let mut w = Word {
            at,
            lit_mask: 0,
            lit: 0,
            digits: 0,
            others: Vec::new(),
        };
        for (k, set) in sets.iter().enumerate().skip(at).take(8) {
            let shift = 8 * (k - at);
            if let Some(b) = set.single() {
                w.lit_mask |= 0xFF << shift;
                w.lit |= u64::from(b) << shift;
            } else if *set == digits_set {
                w.digits |= 0xFF << shift;
            } else {
                w.others.push((k, *set));
            }
        }
        w
    }

    /// `t`: the whole fixed step's bytes.
    #[inline]
    fn check(&self, t: &[u8]) -> bool {
        let Some(eight) = t.get(self.at..).and_then(|r| r.first_chunk::<8>()) else {
            return false;
        };
        let w = u64::from_le_bytes(*eight);
        // A digit lane holds 0..=9 once 0x30 is taken off: its high nibble is clear and adding
        // 6 does not carry into it (no lane exceeds 15 when the first test passes, so adding
        // never carries across lanes either).
        let d = (w ^ LANES_30) & self.digits;
        w & self.lit_mask == self.lit
            && d & LANES_F0 == 0
            && d.wrapping_add(LANES_06) & LANES_F0 & self.digits == 0
            && self
                .others
                .iter()
                .all(|(k, set)| t.get(*k).is_some_and(|&b| set.has(b)))
    }
}

/// Exactly one byte of each set, in order (literals and fixed-width runs).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fixed {
    sets: Vec<Bytes>,
    /// When every set is one range of bytes (a header's date, spaces and literals): per
    /// position its first byte and its width - 1, padded to whole 16-byte lanes with ranges
    /// that take any byte, for matcher.rs `in_ranges` (16 positions a step in vector compares,
    /// where a word takes 8 and a few more instructions).
    ranges: Option<(Vec<u8>, Vec<u8>)>,
    /// Words covering every position (the last one overlapping its predecessor), when there
    /// are at least eight; else the sets are checked byte by byte.
    words: Vec<Word>,
}

impl Fixed {
    fn new(sets: Vec<Bytes>) -> Fixed {
        let n = sets.len();
        let ranges = sets
            .iter()
            .map(|set| as_range(&set.0))
            .collect::<Option<Vec<(u8, u8)>>>()
            .filter(|r| !r.is_empty())
            .map(|mut r| {
                r.resize(n.div_ceil(LANES) * LANES, (0, 255));
                r.into_iter().unzip()
            });
        let mut words = Vec::new();
        if n >= 8 {
            let mut at = 0;
            while at + 8 <= n {
                words.push(Word::new(&sets, at));
                at += 8;
            }
            if at < n {
                words.push(Word::new(&sets, n - 8));
            }
        }
        Fixed {
            sets,
            ranges,
            words,
        }
    }

    /// `t`: at least `sets.len()` bytes (the rest of the line after them, when there is one,
    /// lets the ranges take whole lanes).
    #[inline]
    fn check(&self, t: &[u8]) -> bool {
        if let Some((lo, span)) = &self.ranges {
            in_ranges(t, self.sets.len(), lo, span)
        } else if self.words.is_empty() {
            t.iter().zip(&self.sets).all(|(&b, set)| set.has(b))
        } else {
            self.words.iter().all(|w| w.check(t))
        }
    }

    /// Byte by byte, for comparing with `check` in tests.
    #[cfg(test)]
    fn check_bytes(&self, t: &[u8]) -> bool {
        t.len() == self.sets.len() && t.iter().zip(&self.sets).all(|(&b, set)| set.has(b))
    }
}

/// One step of the walk; each ends in one place only.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Fixed(Fixed),
    /// The longest run of the set up to `max` bytes, which must reach `min`.
    Run {
        set: Bytes,
        min: usize,
        max: usize,
    },
    /// At a newline or the end.
    AtLineEnd,
    /// Everything to the end.
    Rest,
}

/// Steps with the mode still attached, before the walk is checked for choices.
enum Raw {
    Fixed(Vec<Bytes>),
    Run {
        set: Bytes,
        min: usize,
        max: usize,
        single: bool,
    },
    AtLineEnd,
    Rest,
}

/// Appends `els` as raw steps; None when an element is out of the walk's reach.
fn flatten(els: &[El], out: &mut Vec<Raw>, classes: &mut Vec<(Set, Bytes)>) -> Option<()> {
    for el in els {
        match el {
            El::Lit(lit) => out.push(Raw::Fixed(lit.iter().map(|&b| Bytes::one(b)).collect())),
            El::Class {
                set,
                min,
                max,
                mode,
            } => {
                let bytes = match classes.iter().find(|(s, _)| s == set) {
                    Some((_, b)) => *b,
                    None => {
                        let b = Bytes::of(set);
                        classes.push((set.clone(), b));
                        b
                    }
                };
                let single = *mode == Mode::Possessive || *max == Some(*min);
                match max {
                    Some(m) if *m == *min && single => out.push(Raw::Fixed(vec![bytes; *m])),
                    _ => out.push(Raw::Run {
                        set: bytes,
                        min: *min,
                        max: max.unwrap_or(usize::MAX),
                        single,
                    }),
                }
            }
            // Inner sequences of one way only: taken once either way, captures aside.
            El::Atomic(inner) | El::Group(_, inner) => {
                let at = out.len();
                flatten(inner, out, classes)?;
                let choices = out.get(at..).unwrap_or_default();
                if choices
                    .iter()
                    .any(|r| matches!(r, Raw::Run { single: false, .. }))
                {
                    return None;
                }
            }
            El::AtLineEnd => out.push(Raw::AtLineEnd),
            El::Rest => out.push(Raw::Rest),
            El::Alt(_) | El::UpTo { .. } | El::NotIn { .. } => return None,
        }
    }
    Some(())
}

/// The walk for `els`, when every element ends in one place. A greedy or lazy run does when
/// the step after it needs a first byte outside its set (giving bytes back, or taking fewer,
/// leaves a byte of the set there), or when it is the last step (only whether it matches is
/// asked, and it matches iff its longest run reaches `min`).
fn compile(els: &[El]) -> Option<Vec<Step>> {
    let mut raw = Vec::new();
    flatten(els, &mut raw, &mut Vec::new())?;
    // Steps, fixed ones still as their sets while neighbours merge.
    let mut steps: Vec<Result<Step, Vec<Bytes>>> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match r {
            Raw::Fixed(sets) => match steps.last_mut() {
                Some(Err(prev)) => prev.extend_from_slice(sets),
                _ => steps.push(Err(sets.clone())),
            },
            Raw::Run {
                set,
                min,
                max,
                single,
            } => {
                if !*single {
                    let next_first = match raw.get(i + 1) {
                        None => None,
                        Some(Raw::Fixed(sets)) => Some(*sets.first()?),
                        Some(Raw::Run { set, min, .. }) if *min >= 1 => Some(*set),
                        Some(_) => return None,
                    };
                    if next_first.is_some_and(|n| !n.disjoint(set)) {
                        return None;
                    }
                }
                steps.push(Ok(Step::Run {
                    set: *set,
                    min: *min,
                    max: *max,
                }));
            }
            Raw::AtLineEnd => steps.push(Ok(Step::AtLineEnd)),
            Raw::Rest => steps.push(Ok(Step::Rest)),
        }
    }
    let steps = steps.into_iter().filter_map(|s| match s {
        Ok(step) => Some(step),
        Err(sets) if sets.is_empty() => None,
        Err(sets) => Some(Step::Fixed(Fixed::new(sets))),
    });
    Some(steps.collect())
}

/// Whether a line starts a record: `Matcher::test` of the start matcher, answered by the walk
/// when it can decide.
#[derive(Debug)]
pub struct StartTest {
    matcher: Arc<Matcher>,
    /// The walk after `BOM? NUL*`, for lines that start with neither; None: always the matcher.
    walk: Option<Vec<Step>>,
}

const BOM_LEAD: u8 = 0xEF;

impl StartTest {
    /// `matcher`: pattern.rs `start_matcher` (`BOM? NUL*` then the header's elements).
    pub fn new(matcher: Arc<Matcher>) -> StartTest {
        let walk = match matcher.els.as_slice() {
            [El::Alt(branches), El::Class {
                set,
                min: 0,
                max: None,
                mode: Mode::Greedy,
            }, rest @ ..]
                if !matcher.chars
                    && *set == Set::of(b"\0")
                    && matches!(branches.as_slice(),
                        [bom, empty] if empty.is_empty()
                            && matches!(bom.as_slice(), [El::Lit(l)] if l == b"\xef\xbb\xbf")) =>
            {
                compile(rest)
            }
            _ => None,
        };
        StartTest { matcher, walk }
    }

    /// Whether the walk answers for most lines (false: every line goes to the matcher).
    #[cfg(test)]
    pub fn fast(&self) -> bool {
        self.walk.is_some()
    }

    /// Whether `s` starts with a record header (`Matcher::test`).
    pub fn test(&self, s: &[u8]) -> bool {
        self.header(s).is_some()
    }

    /// `test`, and where the header ends when the walk found it (`usize::MAX` when the matcher
    /// answered): the test holds for any prefix of `s` at least that long, because the walk
    /// reads no byte past the end it reaches (a run stops at the end of the text as it stops
    /// at a byte outside its set), so it takes the same steps on such a prefix.
    #[inline]
    pub fn header(&self, s: &[u8]) -> Option<usize> {
        self.marked(s).map(|h| h.end)
    }

    /// `header`, with where each of the walk's steps ended (`Head::marks`; none when
    /// the matcher answered): the record parser's prefix match resumes from them
    /// (crate::matcher::Resume) instead of reading the header again.
    #[inline]
    pub fn marked(&self, s: &[u8]) -> Option<Head> {
        match (&self.walk, s.first()) {
            // No BOM and no NUL first: `BOM?` and `NUL*` take nothing and cannot give back.
            (Some(steps), first) if !matches!(first, Some(&(BOM_LEAD | 0))) => walk(steps, s),
            _ => self.matcher.test(s).then_some(Head {
                end: usize::MAX,
                marks: Marks::NONE,
            }),
        }
    }

    /// The walk's steps as the matcher compares them with its plan (`Matcher::resume`); None
    /// when the matcher answers every line.
    pub fn shape(&self) -> Option<Vec<WalkStep>> {
        let steps = self.walk.as_ref()?;
        Some(
            steps
                .iter()
                .map(|step| match step {
                    Step::Fixed(f) => WalkStep::Fixed(f.sets.iter().map(|b| b.0).collect()),
                    Step::Run { set, min, max } => WalkStep::Run {
                        set: set.0,
                        min: *min,
                        max: *max,
                    },
                    Step::AtLineEnd | Step::Rest => WalkStep::Other,
                })
                .collect(),
        )
    }

    /// The matcher's answer, for comparing the two in tests.
    #[cfg(test)]
    pub fn general(&self, s: &[u8]) -> bool {
        self.matcher.test(s)
    }
}

/// Where the walk ended, and where its steps did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub end: usize,
    pub marks: Marks,
}

/// The end of each of the walk's steps (`len` of them; 0 when the matcher answered, the walk
/// had more steps than `MARKS` or ended past byte 255), for the record parser to resume from.
/// Bytes, so that a `Frame` carrying them is no bigger (they fit in its padding): a header's
/// walk ends a few dozen bytes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub ends: [u8; MARKS],
    pub len: u8,
}

pub const MARKS: usize = 4;

impl Marks {
    pub const NONE: Marks = Marks {
        ends: [0; MARKS],
        len: 0,
    };
}

/// Where the walk over `s` ends, if it gets through, and where its steps ended.
fn walk(steps: &[Step], s: &[u8]) -> Option<Head> {
    let mut pos = 0usize;
    let mut marks = Marks::NONE;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Fixed(fixed) => {
                let t = s.get(pos..).filter(|t| t.len() >= fixed.sets.len())?;
                if !fixed.check(t) {
                    return None;
                }
                pos += fixed.sets.len();
            }
            Step::Run { set, min, max } => {
                let t = s.get(pos..).unwrap_or_default();
                let limit = t.len().min(*max);
                let n = t
                    .get(..limit)
                    .unwrap_or_default()
                    .iter()
                    .position(|&b| !set.has(b))
                    .unwrap_or(limit);
                if n < *min {
                    return None;
                }
                pos += n;
            }
            Step::AtLineEnd => {
                if !matches!(s.get(pos), None | Some(b'\n')) {
                    return None;
                }
            }
            Step::Rest => pos = s.len(),
        }
        // A plain store a step (the index wraps, so no bounds check; the cast may cut): both
        // are answered for once below.
        marks.ends[i % MARKS] = pos as u8;
    }
    // The ends only grow, so when the last fits all do; a walk of more steps than the marks
    // hold (none of the usual headers) wrapped round, and gives none.
    if pos <= usize::from(u8::MAX) && steps.len() <= MARKS {
        marks.len = steps.len() as u8;
    }
    Some(Head { end: pos, marks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Codec;
    use crate::pattern::compile_pattern;
    use crate::testgen::Gen;

    const PATTERNS: &[&str] = &[
        "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] [%thread] - %m%n",
        "%d{yyyy-MM-dd HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n",
        "%d{HH:mm:ss dd} %m",
        "%d{ISO8601} %5p %m%n",
        "[%d] %level %L: %m%n",
        "%d{\"yyyy-MM-dd'T'HH:mm:ss,SSSXXX\"} %p %m%n",
        "%date %-5level [%thread] %logger - %message%n",
        "%d{yyyyMMdd} %p%L %m",
        "%d %p[%t] %m%n",
    ];

    /// A line that starts like a header of the first pattern (or of none), then is mangled.
    fn line(g: &mut Gen, good: &[u8]) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"\xef\xbb\xbf",
            b"\0",
            b"\n",
            b"\r",
            b" ",
            b"  ",
            b"[",
            b"]",
            b"-",
            b"9",
            b"INFO",
            b"\xff",
            b"\xe4\xbd\xa0",
            b"[traceId:",
            b"?",
        ];
        let mut s: Vec<u8> = match g.below(4) {
            0 => Vec::new(),
            1 => good.get(..g.below(good.len() + 1)).unwrap_or(good).to_vec(),
            _ => good.to_vec(),
        };
        for _ in 0..g.below(3) {
            let at = g.below(s.len().min(32) + 1);
            match g.below(3) {
                0 => {
                    let piece = PIECES[g.below(PIECES.len())];
                    s.splice(at..at, piece.iter().copied());
                }
                1 if at < s.len() => {
                    s.remove(at);
                }
                _ => s.insert(at, g.next() as u8),
            }
        }
        if g.below(2) == 0 {
            s.extend_from_slice(good);
        }
        s
    }

    /// A header of each pattern, in PATTERNS' order.
    const HEADERS: &[&[u8]] = &[
        b"2026-11-30 04:38:57.716 INFO  [traceId:e8] [c.a.C#f():1] [main] - x",
        b"2026-11-30 04:38:57.716 [main] DEBUG a.b.C - x",
        b"10:00:00 01 a",
        b"2026-11-30 04:38:57,716  WARN x",
        b"[2026-11-30 04:38:57,716] ERROR 12: x",
        b"2026-11-30T04:38:57,716+08:00 INFO x",
        b"2026-11-30 04:38:57,716 INFO  [main] a - x",
        b"20261130 INFO12 x",
        b"2026-11-30 04:38:57,716 INFO[main] x",
    ];

    #[test]
    fn the_walk_answers_as_the_matcher_does() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let (mut fast, mut hits, mut total) = (0, 0, 0);
        for (p, header) in PATTERNS.iter().zip(HEADERS) {
            let c = compile_pattern(p, Some("UTC")).unwrap();
            for codec in [Codec::Utf8, Codec::Gbk] {
                let t = StartTest::new(Arc::new(c.start_matcher(codec, "x").unwrap()));
                fast += usize::from(t.fast());
                assert!(t.general(header), "{p}");
                for _ in 0..4000 {
                    let s = line(&mut g, header);
                    let general = t.general(&s);
                    assert_eq!(t.test(&s), general, "{p}: {s:?}");
                    // Every prefix reaching the header's end starts with a header too.
                    if let Some(end) = t.header(&s).filter(|&e| e < usize::MAX) {
                        let cut = end + g.below(s.len() - end + 1);
                        let prefix = s.get(..cut).unwrap_or_default();
                        assert!(t.general(prefix), "{p}: {s:?} cut at {cut}");
                    }
                    hits += usize::from(general && t.fast());
                    total += usize::from(t.fast());
                }
            }
        }
        // Most patterns take the walk (else this test would compare the matcher with itself).
        // ... and both answers are common among the lines it walks.
        assert!(fast >= 10, "{fast}");
        assert!(
            hits * 10 > total && hits * 10 < total * 9,
            "{hits} of {total}"
        );
    }

    #[test]
    fn the_pattern_match_resumed_after_the_walk_answers_as_from_the_start() {
        let mut g = Gen(0x2F4A_7C15_9E37_79B9);
        let (mut resumed, mut matched) = (0, 0);
        for (p, header) in PATTERNS.iter().zip(HEADERS) {
            let c = compile_pattern(p, Some("UTC")).unwrap();
            for codec in [Codec::Utf8, Codec::Gbk] {
                let t = StartTest::new(Arc::new(c.start_matcher(codec, "x").unwrap()));
                // None: no walk for this pattern (the matcher answers every line).
                let Some(resume) = t.shape().and_then(|w| c.regex.resume(&w)) else {
                    continue;
                };
                for _ in 0..3000 {
                    let mut s = line(&mut g, header);
                    if g.below(2) == 0 {
                        s.extend_from_slice(b"\n\tat a.B(B.java:1)");
                    }
                    let Some(head) = t.marked(&s) else { continue };
                    if head.marks.len == 0 {
                        continue;
                    }
                    let ends = &head.marks.ends[..usize::from(head.marks.len)];
                    // The record's text: the walked bytes, ending anywhere (a record may be
                    // cut short of its header).
                    let text = &s[..g.below(s.len() + 1)];
                    let mut want = Vec::new();
                    let end = c.regex.matches_into(text, &mut want);
                    let mut got = vec![Some((7, 7)); 3];
                    let after = c.regex.matches_after(text, &mut got, &resume, ends);
                    assert_eq!((after, &got), (end, &want), "{p}: {text:?}");
                    resumed += 1;
                    matched += usize::from(end.is_some());
                }
            }
        }
        assert!(resumed > 8_000 && matched > 2_000, "{resumed} {matched}");
        // The usual pattern resumes past the date, the level and `[traceId:`.
        let c = compile_pattern(PATTERNS[0], Some("UTC")).unwrap();
        let t = StartTest::new(Arc::new(c.start_matcher(Codec::Utf8, "x").unwrap()));
        let resume = t.shape().and_then(|w| c.regex.resume(&w)).unwrap();
        assert_eq!(resume.skipped(), 5, "{resume:?}");
    }

    #[test]
    fn a_fixed_step_checks_words_as_it_checks_bytes() {
        let digits = Bytes::range(b'0', b'9');
        let letters = Bytes::of(&Set::letters());
        let pool = [
            digits,
            letters,
            Bytes::one(b'-'),
            Bytes::one(0),
            Bytes::one(0xFF),
        ];
        let mut g = Gen(0x1319_8A2E_0370_7344);
        let mut passed = 0;
        for _ in 0..3000 {
            let sets: Vec<Bytes> = (0..g.below(30))
                .map(|_| pool[g.below(pool.len())])
                .collect();
            let fixed = Fixed::new(sets.clone());
            for _ in 0..20 {
                // Mostly a member of each set, with some bytes changed.
                let mut t: Vec<u8> = sets
                    .iter()
                    .map(|set| loop {
                        let b = match g.below(4) {
                            0 => g.next() as u8,
                            1 => b'0' + g.below(10) as u8,
                            _ => b"-aZ\0\xff/:"[g.below(7)],
                        };
                        if set.has(b) || g.below(64) == 0 {
                            break b;
                        }
                    })
                    .collect();
                if g.below(4) == 0 && !t.is_empty() {
                    let i = g.below(t.len());
                    t[i] = g.next() as u8;
                }
                let want = fixed.check_bytes(&t);
                assert_eq!(fixed.check(&t), want, "{sets:?} {t:?}");
                // With the rest of a line after the step's bytes, as the walk passes them.
                t.extend((0..g.below(40)).map(|_| g.next() as u8));
                assert_eq!(fixed.check(&t), want, "{sets:?} {t:?}");
                passed += usize::from(want);
            }
        }
        // Both answers are common.
        assert!((6000..54000).contains(&passed), "{passed}");
    }

    #[test]
    fn the_usual_header_takes_the_walk() {
        let c = compile_pattern(PATTERNS[0], Some("UTC")).unwrap();
        let t = StartTest::new(Arc::new(c.start_matcher(Codec::Utf8, "utf-8").unwrap()));
        assert!(t.fast());
        assert!(t.test(b"2026-11-30 04:38:57.716 INFO  [traceId:e8e2] x"));
        assert!(t.test(b"\xef\xbb\xbf\0\x002026-11-30 04:38:57.716 WARN [traceId:"));
        assert!(!t.test(b"2026-11-30 04:38:57.716 INFO [traceid:"));
        assert!(!t.test(b"\tat com.example.Foo(Foo.java:12)"));
    }
}
