//! A small backtracking matcher with the semantics of the few regex forms the Python reference
//! compiles (classes with greedy, lazy and possessive counts, alternation, atomic groups,
//! captures, "at a line end"). Elements are tried in the same priority order as Python's `re`,
//! so the first match found, and so every capture, is the one Python finds.
//!
//! Matching works on bytes. In text mode (`chars`), a run of a class that can take non-ASCII
//! bytes ends only on character boundaries, as Python's str regexes count characters.

/// How a counted class gives characters back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Greedy,
    Lazy,
    Possessive,
}

/// A set of bytes; non-ASCII bytes are in it only for negated classes (`[^\n]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    bytes: [bool; 256],
    /// No byte >= 0x80 is in the set.
    ascii: bool,
    /// Every byte >= 0x80 is in the set: a run of it ends at an ASCII byte, so its length in
    /// bytes is found without counting characters.
    high: bool,
    /// The bytes not in the set when there are one to three of them (and `high`): the end of
    /// a run is the first of them, found by memchr.
    stops: Vec<u8>,
}

impl Set {
    /// The ASCII characters of `chars` (ranges written out by the caller).
    pub fn of(chars: &[u8]) -> Set {
        let mut s = [false; 256];
        for &c in chars {
            s[usize::from(c)] = true;
        }
        Set::new(s)
    }
    /// Every byte except those of `chars` (a negated class: non-ASCII included).
    pub fn not(chars: &[u8]) -> Set {
        let mut s = [true; 256];
        for &c in chars {
            s[usize::from(c)] = false;
        }
        Set::new(s)
    }
    pub fn digits() -> Set {
        Set::of(b"0123456789")
    }
    pub fn letters() -> Set {
        Set::of(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    }
    fn new(bytes: [bool; 256]) -> Set {
        let ascii = bytes[128..].iter().all(|x| !x);
        let high = bytes[128..].iter().all(|x| *x);
        let out: Vec<u8> = (0..=255u8).filter(|&b| !bytes[usize::from(b)]).collect();
        let stops = if high && (1..=3).contains(&out.len()) {
            out
        } else {
            Vec::new()
        };
        Set {
            bytes,
            ascii,
            high,
            stops,
        }
    }
    fn has(&self, b: u8) -> bool {
        self.bytes[usize::from(b)]
    }
    /// The length in bytes of the run of the set at the start of `t` (for sets whose runs end
    /// at an ASCII byte: `ascii` or `high`).
    fn run(&self, t: &[u8]) -> usize {
        let end = match *self.stops.as_slice() {
            [a] => memchr::memchr(a, t),
            [a, b] => memchr::memchr2(a, b, t),
            [a, b, c] => memchr::memchr3(a, b, c, t),
            _ => t.iter().position(|&b| !self.has(b)),
        };
        end.unwrap_or(t.len())
    }
}

/// One element of a sequence.
#[derive(Clone, Debug)]
pub enum El {
    /// Exact bytes.
    Lit(Vec<u8>),
    /// `set{min,max}` with a mode (`max` None: unbounded).
    Class {
        set: Set,
        min: usize,
        max: Option<usize>,
        mode: Mode,
    },
    /// `(?:a|b|...)`: branches tried in order.
    Alt(Vec<Vec<El>>),
    /// `(?>...)`: the first way the inner sequence matches, never revisited.
    Atomic(Vec<El>),
    /// A capture group.
    Group(usize, Vec<El>),
    /// `(?=\n|\Z)`: at a newline or the end.
    AtLineEnd,
    /// `(?s:.*)`: everything to the end.
    Rest,
    /// `[^c\n]*+(?:c[^c\n]*+)*?` (pattern.py `_up_to`): lazy free text that ends only before
    /// the character c (its bytes: `lit`) or at the line end. `bytes`: in a bytes regex the
    /// class holds the bytes of c, each one stopping the run.
    UpTo { lit: Vec<u8>, bytes: Option<Set> },
    /// `[^...]{min,}` over characters, for classes that exclude a non-ASCII character.
    NotIn {
        chars: Vec<char>,
        min: usize,
        mode: Mode,
    },
}

impl El {
    pub fn class(set: Set, min: usize, max: Option<usize>, mode: Mode) -> El {
        El::Class {
            set,
            min,
            max,
            mode,
        }
    }
    /// `[^\n]*?`: free text, lazy.
    pub fn lazy_line() -> El {
        El::class(Set::not(b"\n"), 0, None, Mode::Lazy)
    }
    /// `[^\n]*`: free text, greedy.
    pub fn greedy_line() -> El {
        El::class(Set::not(b"\n"), 0, None, Mode::Greedy)
    }
}

/// Capture spans, by group number.
pub type Caps = Vec<Option<(usize, usize)>>;

/// A compiled sequence and how to match it.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub els: Vec<El>,
    pub groups: usize,
    pub chars: bool,
    /// The bytes a match can start with, when the sequence cannot match the empty string and
    /// they are known: any other first byte (or no byte) fails without running the matcher.
    lead: Option<Box<[bool; 256]>>,
}

/// What a sequence's first byte can be: (bytes, can the sequence match nothing), or None when
/// it is not known (free text and zero-width checks are not looked into).
fn first_bytes(els: &[El]) -> Option<([bool; 256], bool)> {
    let mut set = [false; 256];
    for el in els {
        let (bytes, nullable) = match el {
            El::Lit(l) => match l.first() {
                None => continue,
                Some(&b) => {
                    let mut one = [false; 256];
                    one[usize::from(b)] = true;
                    (one, false)
                }
            },
            El::Class { set, min, .. } => (set.bytes, *min == 0),
            El::Alt(branches) => {
                let mut any = [false; 256];
                let mut nullable = false;
                for b in branches {
                    let (bytes, n) = first_bytes(b)?;
                    for (a, x) in any.iter_mut().zip(bytes) {
                        *a |= x;
                    }
                    nullable |= n;
                }
                (any, nullable)
            }
            El::Atomic(inner) | El::Group(_, inner) => first_bytes(inner)?,
            El::AtLineEnd | El::Rest | El::UpTo { .. } | El::NotIn { .. } => return None,
        };
        for (a, x) in set.iter_mut().zip(bytes) {
            *a |= x;
        }
        if !nullable {
            return Some((set, false));
        }
    }
    Some((set, true))
}

/// The character at the start of `s` (valid UTF-8 in text mode), if any.
fn first_char(s: &[u8]) -> Option<char> {
    let n = s.len().min(4);
    (1..=n).find_map(|l| std::str::from_utf8(s.get(..l)?).ok()?.chars().next())
}

/// Whether a capture group is anywhere in `els`.
fn has_group(els: &[El]) -> bool {
    els.iter().any(|e| match e {
        El::Group(..) => true,
        El::Alt(bs) => bs.iter().any(|b| has_group(b)),
        El::Atomic(inner) => has_group(inner),
        _ => false,
    })
}

/// Whether `el` can match in one way only wherever it is tried (`Run::single` knows it).
fn single_kind(el: &El) -> bool {
    match el {
        El::Lit(_) | El::AtLineEnd | El::Rest => true,
        El::Class { min, max, mode, .. } => *mode == Mode::Possessive || *max == Some(*min),
        _ => false,
    }
}

struct Run<'a> {
    s: &'a [u8],
    chars: bool,
    /// Steps left: a bound on backtracking work, so no input can make a match run away.
    budget: u64,
}

/// Work bound per match (Python's `re` has none; no realistic record comes near it).
const BUDGET: u64 = 50_000_000;

type K<'k> = &'k mut dyn FnMut(&mut Run<'_>, usize, &mut Caps) -> bool;

impl Run<'_> {
    fn boundary(&self, p: usize) -> bool {
        !self.chars || self.s.get(p).is_none_or(|b| b & 0xC0 != 0x80)
    }

    fn try_ends(
        &mut self,
        ends: &[usize],
        mode: Mode,
        rest: &[El],
        caps: &mut Caps,
        k: K<'_>,
    ) -> bool {
        match mode {
            Mode::Possessive => match ends.last() {
                Some(&e) => self.seq(rest, e, caps, k),
                None => false,
            },
            Mode::Greedy => ends.iter().rev().any(|&e| self.seq(rest, e, caps, k)),
            Mode::Lazy => ends.iter().any(|&e| self.seq(rest, e, caps, k)),
        }
    }

    /// Where `el` ends when it can end in one place only (a literal, a possessive run or one
    /// of fixed length, a zero-width check): Some(Some(end)), Some(None) when it fails here,
    /// None when it has choices (the general path tries them).
    fn single(&self, el: &El, pos: usize) -> Option<Option<usize>> {
        match el {
            El::Lit(lit) => Some(
                (self.s.get(pos..pos + lit.len()) == Some(lit.as_slice()))
                    .then_some(pos + lit.len()),
            ),
            El::Class {
                set,
                min,
                max,
                mode,
            } if *mode == Mode::Possessive || *max == Some(*min) => {
                let s = self.s;
                if max.is_none() && *min <= 1 && (set.ascii || set.high) {
                    // Unbounded and at most one needed: only the end matters, and the run
                    // has a character iff it has a byte.
                    let n = set.run(s.get(pos..).unwrap_or_default());
                    return Some((n >= *min).then_some(pos + n));
                }
                let (n, p) = self.class_run(set, pos, max.unwrap_or(usize::MAX));
                Some((n >= *min).then_some(p))
            }
            El::AtLineEnd => Some(matches!(self.s.get(pos), None | Some(b'\n')).then_some(pos)),
            El::Rest => Some(Some(self.s.len())),
            _ => None,
        }
    }

    /// The characters of `set` from `pos`, at most `limit` of them (bytes, or whole characters
    /// when the set takes non-ASCII ones): how many, and where the run ends.
    fn class_run(&self, set: &Set, pos: usize, limit: usize) -> (usize, usize) {
        let s = self.s;
        let chars = self.chars && !set.ascii;
        let (mut p, mut n) = (pos, 0usize);
        while n < limit {
            match s.get(p) {
                Some(&b) if set.has(b) => {}
                _ => break,
            }
            p += 1;
            if chars {
                while s.get(p).is_some_and(|&c| c & 0xC0 == 0x80 && set.has(c)) {
                    p += 1;
                }
            }
            n += 1;
        }
        (n, p)
    }

    fn seq(&mut self, els: &[El], pos: usize, caps: &mut Caps, k: K<'_>) -> bool {
        // Elements with a single way to match are stepped over in a loop; the first one with
        // choices recurses. Each element costs one step of the budget, as a call did.
        let (mut els, mut pos) = (els, pos);
        loop {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            let Some((first, rest)) = els.split_first() else {
                return k(self, pos, caps);
            };
            if let El::Group(i, inner) = first {
                if inner.iter().all(single_kind) {
                    return self.plain_group(*i, inner, rest, pos, caps, k);
                }
                if let [El::UpTo { lit, bytes }] = inner.as_slice() {
                    // Free text up to a character: each end sets the capture directly (the
                    // budget spent as the inner sequence's calls would spend it).
                    let i = *i;
                    if self.budget == 0 {
                        return false;
                    }
                    self.budget -= 1;
                    return self.up_to(lit, bytes.as_ref(), pos, caps, |r, p, c| {
                        r.captured(i, (pos, p), rest, c, k)
                    });
                }
            }
            match self.single(first, pos) {
                Some(Some(end)) => {
                    els = rest;
                    pos = end;
                }
                Some(None) => return false,
                None => return self.choice(first, rest, pos, caps, k),
            }
        }
    }

    /// A group of single-way elements: its end is known without a continuation; the capture
    /// is set for the rest and put back if the rest fails. Budget as the general path spends it.
    fn plain_group(
        &mut self,
        i: usize,
        inner: &[El],
        rest: &[El],
        pos: usize,
        caps: &mut Caps,
        k: K<'_>,
    ) -> bool {
        let mut end = pos;
        for el in inner {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            match self.single(el, end) {
                Some(Some(e)) => end = e,
                _ => return false,
            }
        }
        self.captured(i, (pos, end), rest, caps, k)
    }

    /// Capture `i` set to `span` for the rest of the sequence, and put back if the rest fails
    /// (one step of the budget, as the group's continuation spent it).
    fn captured(
        &mut self,
        i: usize,
        span: (usize, usize),
        rest: &[El],
        caps: &mut Caps,
        k: K<'_>,
    ) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        let old = caps.get(i).copied().flatten();
        if let Some(slot) = caps.get_mut(i) {
            *slot = Some(span);
        }
        if self.seq(rest, span.1, caps, k) {
            return true;
        }
        if let Some(slot) = caps.get_mut(i) {
            *slot = old;
        }
        false
    }

    /// The ends of `El::UpTo` at `pos`, shortest first, each handed to `each` until one
    /// succeeds (the lazy run's order).
    fn up_to(
        &mut self,
        lit: &[u8],
        bytes: Option<&Set>,
        pos: usize,
        caps: &mut Caps,
        mut each: impl FnMut(&mut Self, usize, &mut Caps) -> bool,
    ) -> bool {
        let s = self.s;
        let Some(&c0) = lit.first() else {
            return false;
        };
        // The next stop at or after `p`: the line end, or (text) the character c, or
        // (bytes) any byte of c; memchr skips the run in one step.
        let stop = |p: usize| -> usize {
            let Some(t) = s.get(p..) else {
                return s.len();
            };
            match bytes {
                Some(set) if lit.len() > 1 => t
                    .iter()
                    .position(|&b| set.has(b))
                    .map_or(s.len(), |i| p + i),
                Some(_) => memchr::memchr2(c0, b'\n', t).map_or(s.len(), |i| p + i),
                None => {
                    let mut q = p;
                    loop {
                        let Some(t) = s.get(q..) else {
                            return s.len();
                        };
                        let Some(i) = memchr::memchr2(c0, b'\n', t) else {
                            return s.len();
                        };
                        let at = q + i;
                        if s.get(at) == Some(&b'\n')
                            || s.get(at..).is_some_and(|t| t.starts_with(lit))
                        {
                            return at;
                        }
                        q = at + 1;
                    }
                }
            }
        };
        let mut p = stop(pos);
        loop {
            if self.boundary(p) && each(self, p, caps) {
                return true;
            }
            if !s.get(p..).is_some_and(|t| t.starts_with(lit)) {
                return false;
            }
            p = stop(p + lit.len());
        }
    }

    fn choice(&mut self, first: &El, rest: &[El], pos: usize, caps: &mut Caps, k: K<'_>) -> bool {
        match first {
            El::Lit(lit) => {
                if self.s.get(pos..pos + lit.len()) == Some(lit.as_slice()) {
                    self.seq(rest, pos + lit.len(), caps, k)
                } else {
                    false
                }
            }
            El::Class {
                set,
                min,
                max,
                mode,
            } => {
                // Count matching characters (bytes, or whole characters for non-ASCII sets),
                // then try the ends in the mode's order without collecting them.
                let s = self.s;
                let chars = self.chars && !set.ascii;
                let cont = |p: usize| s.get(p).is_some_and(|b| b & 0xC0 == 0x80);
                let (n, p) = self.class_run(set, pos, max.unwrap_or(usize::MAX));
                if n < *min {
                    return false;
                }
                match mode {
                    Mode::Possessive => self.seq(rest, p, caps, k),
                    Mode::Greedy => {
                        let mut e = p;
                        let mut count = n;
                        loop {
                            if self.seq(rest, e, caps, k) {
                                return true;
                            }
                            if count == *min {
                                return false;
                            }
                            e -= 1;
                            while chars && e > pos && cont(e) {
                                e -= 1;
                            }
                            count -= 1;
                        }
                    }
                    Mode::Lazy => {
                        let mut e = pos;
                        let mut count = 0;
                        let step = |e: usize| {
                            let mut e = e + 1;
                            while chars && e < p && cont(e) {
                                e += 1;
                            }
                            e
                        };
                        while count < *min {
                            e = step(e);
                            count += 1;
                        }
                        loop {
                            if self.seq(rest, e, caps, k) {
                                return true;
                            }
                            if e >= p {
                                return false;
                            }
                            e = step(e);
                        }
                    }
                }
            }
            El::Alt(branches) => {
                for b in branches {
                    if self.seq(b, pos, caps, &mut |r: &mut Run<'_>, p, c: &mut Caps| {
                        r.seq(rest, p, c, k)
                    }) {
                        return true;
                    }
                }
                false
            }
            El::Atomic(inner) => {
                // Only groups inside change the captures: save them only then.
                let saved = has_group(inner).then(|| caps.clone());
                let mut end = None;
                if !self.seq(
                    inner,
                    pos,
                    caps,
                    &mut |_r: &mut Run<'_>, p, _c: &mut Caps| {
                        end = Some(p);
                        true
                    },
                ) {
                    return false;
                }
                match end {
                    Some(e) => {
                        if self.seq(rest, e, caps, k) {
                            true
                        } else {
                            if let Some(saved) = saved {
                                *caps = saved;
                            }
                            false
                        }
                    }
                    None => false,
                }
            }
            El::Group(i, inner) => {
                let i = *i;
                self.seq(inner, pos, caps, &mut |r: &mut Run<'_>, p, c: &mut Caps| {
                    let old = c.get(i).copied().flatten();
                    if let Some(slot) = c.get_mut(i) {
                        *slot = Some((pos, p));
                    }
                    if r.seq(rest, p, c, k) {
                        return true;
                    }
                    if let Some(slot) = c.get_mut(i) {
                        *slot = old;
                    }
                    false
                })
            }
            El::AtLineEnd => match self.s.get(pos) {
                None | Some(b'\n') => self.seq(rest, pos, caps, k),
                _ => false,
            },
            El::Rest => self.seq(rest, self.s.len(), caps, k),
            El::UpTo { lit, bytes } => self.up_to(lit, bytes.as_ref(), pos, caps, |r, p, c| {
                r.seq(rest, p, c, k)
            }),
            El::NotIn { chars, min, mode } => {
                let s = self.s;
                let mut ends = Vec::new();
                let mut p = pos;
                let mut n = 0usize;
                if n >= *min {
                    ends.push(p);
                }
                while let Some(c) = s.get(p..).and_then(first_char) {
                    if c == '\n' || chars.contains(&c) {
                        break;
                    }
                    p += c.len_utf8();
                    n += 1;
                    if n >= *min {
                        ends.push(p);
                    }
                }
                self.try_ends(&ends, *mode, rest, caps, k)
            }
        }
    }
}

impl Matcher {
    pub fn new(els: Vec<El>, groups: usize, chars: bool) -> Matcher {
        let lead = match first_bytes(&els) {
            Some((set, false)) => Some(Box::new(set)),
            _ => None,
        };
        Matcher {
            els,
            groups,
            chars,
            lead,
        }
    }

    /// False when the first byte of `s` rules a match out.
    fn may_start(&self, s: &[u8]) -> bool {
        match &self.lead {
            None => true,
            Some(set) => s.first().is_some_and(|&b| set[usize::from(b)]),
        }
    }

    /// `re.match`: the captures and the end of the first match at the start of `s`.
    pub fn matches(&self, s: &[u8]) -> Option<(usize, Caps)> {
        self.run(s, false)
    }

    /// `re.fullmatch`.
    pub fn full(&self, s: &[u8]) -> Option<(usize, Caps)> {
        self.run(s, true)
    }

    /// Whether the sequence matches at the start of `s`.
    pub fn test(&self, s: &[u8]) -> bool {
        self.run(s, false).is_some()
    }

    fn run(&self, s: &[u8], full: bool) -> Option<(usize, Caps)> {
        if !self.may_start(s) {
            return None;
        }
        let mut caps: Caps = vec![None; self.groups];
        let mut r = Run {
            s,
            chars: self.chars,
            budget: BUDGET,
        };
        let len = s.len();
        let mut end = None;
        let ok = r.seq(
            &self.els,
            0,
            &mut caps,
            &mut |_r: &mut Run<'_>, p, _c: &mut Caps| {
                if full && p != len {
                    return false;
                }
                end = Some(p);
                true
            },
        );
        match (ok, end) {
            (true, Some(e)) => Some((e, caps)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> El {
        El::Lit(s.as_bytes().to_vec())
    }

    #[test]
    fn lazy_stops_at_first_literal_that_lets_the_rest_match() {
        let m = Matcher::new(
            vec![El::Group(0, vec![El::lazy_line()]), lit("] - "), El::Rest],
            1,
            true,
        );
        let (_, caps) = m.matches(b"a ] b] - x").unwrap();
        assert_eq!(caps[0], Some((0, 5)));
    }

    #[test]
    fn greedy_gives_back_and_possessive_does_not() {
        let g = Matcher::new(
            vec![El::class(Set::digits(), 1, None, Mode::Greedy), lit("1")],
            0,
            false,
        );
        assert!(g.test(b"111"));
        let p = Matcher::new(
            vec![
                El::class(Set::digits(), 1, None, Mode::Possessive),
                lit("1"),
            ],
            0,
            false,
        );
        assert!(!p.test(b"111"));
    }

    #[test]
    fn runs_end_on_character_boundaries_in_text_mode() {
        let m = Matcher::new(
            vec![El::Group(0, vec![El::lazy_line()]), El::AtLineEnd],
            1,
            true,
        );
        let (_, caps) = m.matches("é\nx".as_bytes()).unwrap();
        assert_eq!(caps[0], Some((0, 2)));
    }

    #[test]
    fn fullmatch_backtracks_to_fit() {
        let d = El::class(Set::digits(), 1, Some(2), Mode::Greedy);
        let m = Matcher::new(
            vec![El::Group(0, vec![d.clone()]), El::Group(1, vec![d])],
            2,
            false,
        );
        let (_, caps) = m.full(b"123").unwrap();
        assert_eq!(caps, vec![Some((0, 2)), Some((2, 3))]);
    }
}
