//! A small backtracking matcher with the semantics of the few regex forms the Python reference
//! compiles (classes with greedy, lazy and possessive counts, alternation, atomic groups,
//! captures, "at a line end"). Elements are tried in the same priority order as Python's `re`,
//! so the first match found, and so every capture, is the one Python finds.
//!
//! Matching works on bytes. In text mode (`chars`), a run of a class that can take non-ASCII
//! bytes ends only on character boundaries, as Python's str regexes count characters.

use crate::byteset;

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
    /// `els` as a first-path plan; `[Op::GiveUp]`: the backtracking matcher alone (a matcher
    /// used once, where compiling the plan would cost more than it saves).
    plan: Vec<Step>,
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

/// The first way an element or sequence matches, as the backtracking order reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    /// It ends here; `more`: it may have later ways (the backtracking would revisit them).
    End { at: usize, more: bool },
    /// It has no way at all from this position.
    Fail,
    /// The walk cannot tell (a failure after a choice, a form it does not walk).
    Unknown,
}

impl Run<'_> {
    /// The first-path walk: every element takes its first way (a possessive run's end, a
    /// greedy run's longest, a lazy run's shortest, an alternation's first branch that has
    /// a way, an `UpTo`'s first stop). In priority-order backtracking the first path that
    /// reaches the end is the answer, so when the walk reaches the end it is the general
    /// matcher's answer, captures included. A failure after a choice is `Unknown`: the
    /// general matcher would revisit the choice.
    fn first_seq(&self, els: &[El], pos: usize, caps: &mut Caps) -> First {
        let (mut pos, mut more) = (pos, false);
        for el in els {
            match self.first_el(el, pos, caps) {
                First::End { at, more: m } => {
                    pos = at;
                    more |= m;
                }
                First::Fail if !more => return First::Fail,
                First::Fail | First::Unknown => return First::Unknown,
            }
        }
        First::End { at: pos, more }
    }

    fn first_el(&self, el: &El, pos: usize, caps: &mut Caps) -> First {
        if let Some(one) = self.single(el, pos) {
            return match one {
                Some(at) => First::End { at, more: false },
                None => First::Fail,
            };
        }
        match el {
            El::Class {
                set,
                min,
                max,
                mode: Mode::Greedy,
            } => {
                let (n, at) = self.class_run(set, pos, max.unwrap_or(usize::MAX));
                if n < *min {
                    return First::Fail;
                }
                First::End { at, more: n > *min }
            }
            El::Class {
                set,
                min,
                mode: Mode::Lazy,
                ..
            } => {
                let (n, at) = self.class_run(set, pos, *min);
                if n < *min {
                    return First::Fail;
                }
                First::End { at, more: true }
            }
            El::Alt(branches) => {
                for (i, b) in branches.iter().enumerate() {
                    match self.first_seq(b, pos, caps) {
                        First::End { at, more } => {
                            let more = more || i + 1 < branches.len();
                            return First::End { at, more };
                        }
                        // A failed branch may have set captures the general matcher puts
                        // back; the walk does not track them.
                        First::Fail if !has_group(b) => {}
                        First::Fail | First::Unknown => return First::Unknown,
                    }
                }
                First::Fail
            }
            El::Atomic(inner) => match self.first_seq(inner, pos, caps) {
                First::End { at, .. } => First::End { at, more: false },
                other => other,
            },
            El::Group(i, inner) => {
                let out = self.first_seq(inner, pos, caps);
                if let First::End { at, .. } = out {
                    match caps.get_mut(*i) {
                        Some(slot) => *slot = Some((pos, at)),
                        None => return First::Unknown,
                    }
                }
                out
            }
            El::UpTo { lit, bytes } => {
                let mut first = None;
                // `up_to` hands the ends over in the lazy order; the first one is taken.
                let mut probe = Run {
                    s: self.s,
                    chars: self.chars,
                    budget: BUDGET,
                };
                probe.up_to(lit, bytes.as_ref(), pos, &mut Vec::new(), |_, p, _| {
                    first = Some(p);
                    true
                });
                match first {
                    None => First::Fail,
                    Some(at) => {
                        let more = self.s.get(at..).is_some_and(|t| t.starts_with(lit));
                        First::End { at, more }
                    }
                }
            }
            _ => First::Unknown,
        }
    }
}

/// One step of the first-path plan: the sequence's elements flattened, with the common forms
/// specialised (so a record costs a few table lookups and memchr calls, not a tree walk).
#[derive(Clone, Debug)]
enum Op {
    /// Bytes of fixed width: literals and fixed counts of ASCII-only sets, one bitmap per
    /// byte (such an element has one way; its characters are its bytes).
    Shape(Vec<[u64; 4]>),
    /// A `Shape` whose every set is one range of bytes: per byte its first byte and its
    /// width - 1 (two arrays, so the check is one branch-free loop the compiler vectorises).
    Ranges {
        len: usize,
        lo: Vec<u8>,
        span: Vec<u8>,
    },
    /// An unbounded run of a set whose runs end at an ASCII byte (`Set::run`), at least `min`
    /// (0 or 1) characters; `greedy`: it could give bytes back (possessive: never).
    Run {
        set: Set,
        min: usize,
        greedy: bool,
    },
    UpTo {
        lit: Vec<u8>,
        bytes: Option<Set>,
    },
    /// An `UpTo` of a one-byte character in text (pattern.py's `%X`, `%c`, `%M`, `%t` before
    /// `]`, `#`, `(`): its first end is the first such byte or newline, found 16 bytes a step
    /// (`until`), without `Run::up_to`'s walk (both ends are ASCII, so character boundaries).
    Until(u8),
    /// An `Until(c)` step (capturing `group`) and the literal after it, which starts with `c`
    /// (`[%X{traceId}]`, `%c{3}#`, `%method():`): one step where there were two, the literal
    /// checked where the run stopped. When the run stops at a newline or the end, the literal
    /// cannot be there; when it stops at `c` and the literal is not there, the lazy run could
    /// go on past `c`, so the answer is unknown, as the two steps would have said.
    UntilLit {
        group: Option<usize>,
        c: u8,
        lit: Vec<u8>,
        word: u128,
        mask: u128,
    },
    Rest,
    AtLineEnd,
    /// Exact bytes, 2 to 16 of them (a `Ranges` of single bytes: the pattern's literals such
    /// as `] [`): one masked compare of the 16 bytes at the position when there are that many
    /// (the text goes on past a header's literals), else a compare of the slice.
    Lit {
        lit: Vec<u8>,
        word: u128,
        mask: u128,
    },
    /// One byte in a range (a `Ranges` of width one).
    Byte {
        lo: u8,
        span: u8,
    },
    /// A capture group opens (its start) and closes (its end) here.
    Open(usize),
    Close(usize),
    /// `(?>(?:-?[0-9]++|lit)?)` and its variants (pattern.py's `%L`, payload.py's int
    /// fields): an optional signed integer, else the literal, else nothing when `empty`.
    Int {
        lit: Option<Vec<u8>>,
        empty: bool,
    },
    /// `(?:lit|lit|...)` with maybe an empty last branch: the first literal that is here.
    Lits {
        lits: Vec<Vec<u8>>,
        empty: bool,
    },
    /// Any other element, walked by `Run::first_el`.
    Tree(El),
    /// No walk: the backtracking matcher answers.
    GiveUp,
}

/// A step of the plan: an op and, when the op is the whole body of a capture group (most
/// groups: one run or one field), that group, whose span is set when the op has matched
/// (what `Open`, the op and `Close` do in three steps).
#[derive(Clone, Debug)]
struct Step {
    op: Op,
    cap: Option<usize>,
}

/// The plan's steps: each `Open(i), op, Close(i)` becomes one step capturing `i`.
fn steps(ops: Vec<Op>) -> Vec<Step> {
    let mut out = Vec::with_capacity(ops.len());
    let mut k = 0;
    while let Some(op) = ops.get(k) {
        if let (Op::Open(i), Some(x), Some(Op::Close(j))) = (op, ops.get(k + 1), ops.get(k + 2)) {
            if i == j && !matches!(x, Op::Open(_) | Op::Close(_) | Op::GiveUp) {
                out.push(Step {
                    op: x.clone(),
                    cap: Some(*i),
                });
                k += 3;
                continue;
            }
        }
        out.push(Step {
            op: op.clone(),
            cap: None,
        });
        k += 1;
    }
    out
}

/// The steps with each `Until(c)` and the literal after it that starts with `c` made one
/// `UntilLit` step.
fn fuse(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        let lit = match (&step.op, step.cap) {
            (Op::Lit { lit, .. }, None) => Some(lit.clone()),
            (Op::Byte { lo, span: 0 }, None) => Some(vec![*lo]),
            _ => None,
        };
        if let (Some(lit), Some(prev)) = (lit, out.last_mut()) {
            if let Op::Until(c) = prev.op {
                if lit.first() == Some(&c) && lit.len() <= LANES {
                    let (word, mask) = lit_word(&lit);
                    prev.op = Op::UntilLit {
                        group: prev.cap.take(),
                        c,
                        lit,
                        word,
                        mask,
                    };
                    continue;
                }
            }
        }
        out.push(step);
    }
    out
}

/// The `Op::Lits` of an alternation of literals (the start test's optional BOM).
fn lits_op(el: &El) -> Option<Op> {
    let El::Alt(branches) = el else { return None };
    let (empty, branches) = match branches.split_last()? {
        (last, rest) if last.is_empty() => (true, rest),
        _ => (false, branches.as_slice()),
    };
    let lits = branches
        .iter()
        .map(|b| match b.as_slice() {
            [El::Lit(l)] => Some(l.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Op::Lits { lits, empty })
}

/// The `Op::Int` of an element of that form: an atomic group of one alternation whose first
/// branch is `-?` (greedy, at most one) then possessive digits, then at most a literal branch
/// and an empty branch, in that order.
fn int_op(el: &El) -> Option<Op> {
    let El::Atomic(inner) = el else { return None };
    let [El::Alt(branches)] = inner.as_slice() else {
        return None;
    };
    let (first, rest) = branches.split_first()?;
    let [El::Class {
        set: minus,
        min: 0,
        max: Some(1),
        mode: Mode::Greedy,
    }, El::Class {
        set: digits,
        min: 1,
        max: None,
        mode: Mode::Possessive,
    }] = first.as_slice()
    else {
        return None;
    };
    if *minus != Set::of(b"-") || *digits != Set::digits() {
        return None;
    }
    match rest {
        [] => Some(Op::Int {
            lit: None,
            empty: false,
        }),
        [e] if e.is_empty() => Some(Op::Int {
            lit: None,
            empty: true,
        }),
        [l] | [l, _] => {
            let [El::Lit(lit)] = l.as_slice() else {
                return None;
            };
            let empty = match rest {
                [_, e] => e.is_empty().then_some(true)?,
                _ => false,
            };
            Some(Op::Int {
                lit: Some(lit.clone()),
                empty,
            })
        }
        _ => None,
    }
}

/// The digits at the start of `t`: how many.
fn digit_run(t: &[u8]) -> usize {
    t.iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(t.len())
}

fn bitmap(set: &[bool; 256]) -> [u64; 4] {
    let mut m = [0u64; 4];
    for (b, &x) in set.iter().enumerate() {
        m[b >> 6] |= u64::from(x) << (b & 63);
    }
    m
}

fn push_shape(ops: &mut Vec<Op>, width: usize, m: [u64; 4]) {
    if let Some(Op::Shape(v)) = ops.last_mut() {
        v.extend(std::iter::repeat_n(m, width));
        return;
    }
    ops.push(Op::Shape(vec![m; width]));
}

pub(crate) const LANES: usize = 16;

/// Whether every byte of `t` is in its range (`Op::Ranges`). `lo` and `span` are padded to
/// whole lanes with ranges that take any byte: when `t` has that many bytes, the check runs
/// over whole lanes without a branch, which the compiler turns into vector instructions.
/// Inlined into the start walk (its date and literals: a call cost ~12 instructions of
/// argument and register moves there); the plan calls `in_ranges_apart`.
#[inline(always)]
pub(crate) fn in_ranges(t: &[u8], len: usize, lo: &[u8], span: &[u8]) -> bool {
    let mut bad = 0u8;
    if let Some(t) = t.get(..lo.len()) {
        let lanes = t
            .chunks_exact(LANES)
            .zip(lo.chunks_exact(LANES))
            .zip(span.chunks_exact(LANES));
        for ((t, l), w) in lanes {
            let (Ok(t), Ok(l), Ok(w)) = (
                <&[u8; LANES]>::try_from(t),
                <&[u8; LANES]>::try_from(l),
                <&[u8; LANES]>::try_from(w),
            ) else {
                return false;
            };
            for k in 0..LANES {
                bad |= u8::from(t[k].wrapping_sub(l[k]) > w[k]);
            }
        }
        return bad == 0;
    }
    let Some(t) = t.get(..len) else {
        return false;
    };
    for ((&b, &l), &w) in t.iter().zip(lo).zip(span) {
        bad |= u8::from(b.wrapping_sub(l) > w);
    }
    bad == 0
}

/// `in_ranges` out of line, for the plan's `Ranges` (rare once the plan resumes after the
/// start walk): inlined, it made `Run::first_plan`'s loop some 20 instructions a record
/// longer.
#[inline(never)]
fn in_ranges_apart(t: &[u8], len: usize, lo: &[u8], span: &[u8]) -> bool {
    in_ranges(t, len, lo, span)
}

/// The set of a bitmap as one range (first byte, last - first), if it is one.
pub(crate) fn as_range(m: &[u64; 4]) -> Option<(u8, u8)> {
    // Bit arithmetic, not a scan of 256 bytes: `explain` compiles a matcher per element.
    let count: u32 = m.iter().map(|w| w.count_ones()).sum();
    let (i, w) = m.iter().enumerate().find(|(_, w)| **w != 0)?;
    let lo = i * 64 + w.trailing_zeros() as usize;
    let (j, w) = m.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
    let hi = j * 64 + 63 - w.leading_zeros() as usize;
    if hi - lo + 1 != count as usize {
        return None;
    }
    Some((u8::try_from(lo).ok()?, u8::try_from(hi - lo).ok()?))
}

/// `Op::Lit`'s word and mask: the literal's bytes little-endian in the low lanes, the mask's
/// lanes 0xFF where the literal has a byte (at most 16).
fn lit_word(lit: &[u8]) -> (u128, u128) {
    lit.iter()
        .take(LANES)
        .enumerate()
        .fold((0, 0), |(word, mask), (k, &b)| {
            (word | u128::from(b) << (8 * k), mask | 0xFF << (8 * k))
        })
}

/// Whether `t` starts with the literal of `Op::Lit`.
#[inline]
fn lit_here(t: &[u8], lit: &[u8], word: u128, mask: u128) -> bool {
    match t.first_chunk::<LANES>() {
        Some(w) => u128::from_le_bytes(*w) & mask == word,
        None => t.starts_with(lit),
    }
}

/// Shapes of ranges only become `Ranges` (a subtraction and a compare per byte), or `Lit`
/// when every range is one byte.
fn finish(ops: Vec<Op>) -> Vec<Op> {
    ops.into_iter()
        .map(|op| match op {
            Op::Shape(v) => match v.iter().map(as_range).collect::<Option<Vec<_>>>() {
                Some(r) if r.len() == 1 => match r.first() {
                    Some(&(lo, span)) => Op::Byte { lo, span },
                    None => Op::Shape(v),
                },
                Some(r) if (2..=LANES).contains(&r.len()) && r.iter().all(|x| x.1 == 0) => {
                    let lit: Vec<u8> = r.iter().map(|x| x.0).collect();
                    let (word, mask) = lit_word(&lit);
                    Op::Lit { lit, word, mask }
                }
                Some(r) => {
                    let padded = r.len().div_ceil(LANES) * LANES;
                    let any = std::iter::repeat_n((0u8, 255u8), padded - r.len());
                    let r: Vec<(u8, u8)> = r.into_iter().chain(any).collect();
                    Op::Ranges {
                        len: v.len(),
                        lo: r.iter().map(|x| x.0).collect(),
                        span: r.iter().map(|x| x.1).collect(),
                    }
                }
                None => Op::Shape(v),
            },
            other => other,
        })
        .collect()
}

/// The plan of `els`, appended to `ops`.
fn plan(els: &[El], ops: &mut Vec<Op>) {
    for el in els {
        match el {
            El::Lit(l) => {
                for &b in l {
                    let mut m = [0u64; 4];
                    m[usize::from(b >> 6)] |= 1 << (b & 63);
                    push_shape(ops, 1, m);
                }
            }
            El::Class { set, min, max, .. } if *max == Some(*min) && set.ascii => {
                push_shape(ops, *min, bitmap(&set.bytes));
            }
            El::Class {
                set,
                min,
                max: None,
                mode,
            } if *min <= 1 && (set.ascii || set.high) && *mode != Mode::Lazy => {
                ops.push(Op::Run {
                    set: set.clone(),
                    min: *min,
                    greedy: *mode == Mode::Greedy,
                });
            }
            El::Group(i, inner) => {
                ops.push(Op::Open(*i));
                plan(inner, ops);
                ops.push(Op::Close(*i));
            }
            El::UpTo { lit, bytes: None } if lit.len() == 1 && lit.is_ascii() => {
                ops.extend(lit.first().map(|&c| Op::Until(c)));
            }
            El::UpTo { lit, bytes } => ops.push(Op::UpTo {
                lit: lit.clone(),
                bytes: bytes.clone(),
            }),
            El::Rest => ops.push(Op::Rest),
            El::AtLineEnd => ops.push(Op::AtLineEnd),
            other => ops.push(
                int_op(other)
                    .or_else(|| lits_op(other))
                    .unwrap_or_else(|| Op::Tree(other.clone())),
            ),
        }
    }
}

impl Run<'_> {
    /// The first-path walk over a plan: `first_seq`'s answer for the elements it came from.
    /// `(pos, more)`: where the walk starts and whether a choice before it could move it (the
    /// start of the text and false, or where a `Resume` put them). Inlined into its two
    /// callers: the call, its six saved registers and the answer through memory were ~30
    /// instructions of `matches_after`'s ~730 a record.
    #[inline(always)]
    fn first_plan(&self, steps: &[Step], caps: &mut Caps, (pos, more): (usize, bool)) -> First {
        let s = self.s;
        let (mut pos, mut more) = (pos, more);
        for Step { op, cap } in steps {
            let step = match op {
                Op::Shape(sets) => s
                    .get(pos..pos + sets.len())
                    .filter(|t| {
                        t.iter()
                            .zip(sets)
                            .all(|(&b, m)| m[usize::from(b >> 6)] >> (b & 63) & 1 != 0)
                    })
                    .map(|_| (pos + sets.len(), false)),
                Op::Byte { lo, span } => s
                    .get(pos)
                    .filter(|&&b| b.wrapping_sub(*lo) <= *span)
                    .map(|_| (pos + 1, false)),
                Op::Lit { lit, word, mask } => {
                    let t = s.get(pos..).unwrap_or_default();
                    lit_here(t, lit, *word, *mask).then_some((pos + lit.len(), false))
                }
                Op::Ranges { len, lo, span } => {
                    let t = s.get(pos..).unwrap_or_default();
                    in_ranges_apart(t, *len, lo, span).then_some((pos + len, false))
                }
                Op::Lits { lits, empty } => {
                    let t = s.get(pos..).unwrap_or_default();
                    let last = lits.len() + usize::from(*empty);
                    match lits.iter().position(|l| t.starts_with(l)) {
                        Some(i) => lits.get(i).map(|l| (pos + l.len(), i + 1 < last)),
                        None => empty.then_some((pos, false)),
                    }
                }
                Op::Run { set, min, greedy } => {
                    let n = set.run(s.get(pos..).unwrap_or_default());
                    (n >= *min).then_some((pos + n, *greedy && n > *min))
                }
                Op::UpTo { lit, bytes } => {
                    let mut probe = Run {
                        s,
                        chars: self.chars,
                        budget: BUDGET,
                    };
                    let mut first = None;
                    probe.up_to(lit, bytes.as_ref(), pos, &mut Vec::new(), |_, p, _| {
                        first = Some(p);
                        true
                    });
                    first.map(|at| (at, s.get(at..).is_some_and(|t| t.starts_with(lit))))
                }
                Op::Until(c) => {
                    // More ends when it stopped at c (the lazy run can go on past it).
                    let t = s.get(pos..).unwrap_or_default();
                    let k = byteset::first_of(t, [*c, b'\n']);
                    Some((pos + k, t.get(k) == Some(c)))
                }
                Op::UntilLit {
                    group,
                    c,
                    lit,
                    word,
                    mask,
                } => {
                    let t = s.get(pos..).unwrap_or_default();
                    let k = byteset::first_of(t, [*c, b'\n']);
                    if let Some(i) = *group {
                        match caps.get_mut(i) {
                            Some(slot) => *slot = Some((pos, pos + k)),
                            None => return First::Unknown,
                        }
                    }
                    let here = t.get(k..).unwrap_or_default();
                    if here.first() != Some(c) {
                        None
                    } else if lit_here(here, lit, *word, *mask) {
                        Some((pos + k + lit.len(), true))
                    } else {
                        return First::Unknown;
                    }
                }
                Op::Rest => Some((s.len(), false)),
                Op::AtLineEnd => matches!(s.get(pos), None | Some(b'\n')).then_some((pos, false)),
                Op::Open(i) => {
                    match caps.get_mut(*i) {
                        Some(slot) => *slot = Some((pos, pos)),
                        None => return First::Unknown,
                    }
                    continue;
                }
                Op::Close(i) => {
                    match caps.get_mut(*i) {
                        Some(Some(span)) => span.1 = pos,
                        _ => return First::Unknown,
                    }
                    continue;
                }
                Op::Int { lit, empty } => {
                    // The first branch: `-?` takes a minus only when digits follow it (else it
                    // gives it back and the digits must start at `pos`); the atomic group
                    // keeps the first branch that matches.
                    let t = s.get(pos..).unwrap_or_default();
                    let signed = usize::from(t.first() == Some(&b'-'));
                    let n = digit_run(t.get(signed..).unwrap_or_default());
                    if n > 0 {
                        Some((pos + signed + n, false))
                    } else {
                        let n = if signed == 1 { 0 } else { digit_run(t) };
                        if n > 0 {
                            Some((pos + n, false))
                        } else {
                            match lit {
                                Some(l) if t.starts_with(l) => Some((pos + l.len(), false)),
                                _ => empty.then_some((pos, false)),
                            }
                        }
                    }
                }
                Op::GiveUp => return First::Unknown,
                Op::Tree(el) => match self.first_el(el, pos, caps) {
                    First::End { at, more } => Some((at, more)),
                    First::Fail => None,
                    First::Unknown => return First::Unknown,
                },
            };
            match step {
                Some((at, m)) => {
                    if let Some(i) = *cap {
                        match caps.get_mut(i) {
                            Some(slot) => *slot = Some((pos, at)),
                            None => return First::Unknown,
                        }
                    }
                    pos = at;
                    more |= m;
                }
                None if more => return First::Unknown,
                None => return First::Fail,
            }
        }
        First::End { at: pos, more }
    }
}

/// A step of the record-start walk (start.rs), as `Matcher::resume` compares it with a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkStep {
    /// One byte of each set, in order.
    Fixed(Vec<[u64; 4]>),
    /// The longest run of the set up to `max` bytes, which must reach `min`.
    Run {
        set: [u64; 4],
        min: usize,
        max: usize,
    },
    /// Anything else: no resume past it.
    Other,
}

/// A place in a walked header: `off` bytes past the start of the walk's step `step` (the
/// end of step `step - 1`, 0 for the first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Place {
    step: usize,
    off: usize,
}

/// Where the first-path plan goes on after a start walk that got through the line (the
/// record's first line, whose bytes the record's text begins with): the plan's first `skip`
/// steps test the same bytes against the same sets as the walk's first steps, so on such a
/// text they match, ending where the walk's steps did, with the captures at those ends.
/// Built once per pattern by comparing the two (`Matcher::resume`), it saves the parse
/// reading the header's date, level and literals again (issue 10: ~200 instructions a record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// The plan's steps answered for.
    skip: usize,
    /// Where the plan goes on.
    at: Place,
    /// The groups those steps set (the last value of each), as `first_plan` sets them.
    caps: Vec<(usize, Place, Place)>,
    /// Greedy runs among them (walk step, `min`): a run longer than `min` could give bytes
    /// back (`first_plan`'s `more`).
    greedy: Vec<(usize, usize)>,
    /// The walk's step ends the places read.
    need: usize,
}

/// The per-byte sets of a plan op that takes a fixed number of bytes, one way.
fn fixed_sets(op: &Op) -> Option<Vec<[u64; 4]>> {
    let range = |lo: u8, span: u8| {
        let mut m = [0u64; 4];
        for b in lo..=lo.saturating_add(span) {
            m[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        m
    };
    match op {
        Op::Shape(v) => Some(v.clone()),
        Op::Ranges { len, lo, span } => Some(
            lo.iter()
                .zip(span)
                .take(*len)
                .map(|(&l, &w)| range(l, w))
                .collect(),
        ),
        Op::Lit { lit, .. } => Some(lit.iter().map(|&b| range(b, 0)).collect()),
        Op::Byte { lo, span } => Some(vec![range(*lo, *span)]),
        _ => None,
    }
}

impl Resume {
    /// The plan's steps answered for.
    #[cfg(test)]
    pub fn skipped(&self) -> usize {
        self.skip
    }
}

impl Matcher {
    /// How the plan resumes after `walk` got through a text's first line (None: not even its
    /// first step is the walk's). Only steps that take the same bytes as a walk's step are
    /// taken: fixed bytes of equal sets, position for position, and unbounded runs of an
    /// equal set and `min` (a plan run takes the longest run, as the walk does).
    pub fn resume(&self, walk: &[WalkStep]) -> Option<Resume> {
        let mut r = Resume::default();
        let mut best = None;
        let set_cap = |caps: &mut Vec<(usize, Place, Place)>, g: usize, a: Place, b: Place| {
            caps.retain(|c| c.0 != g);
            caps.push((g, a, b));
        };
        for (j, Step { op, cap }) in self.plan.iter().enumerate() {
            // A fixed step's end is the next step's start.
            if let Some(WalkStep::Fixed(sets)) = walk.get(r.at.step) {
                if r.at.off == sets.len() {
                    r.at = Place {
                        step: r.at.step + 1,
                        off: 0,
                    };
                }
            }
            let from = r.at;
            match op {
                Op::Open(g) if *g < self.groups => set_cap(&mut r.caps, *g, from, from),
                Op::Close(g) => match r.caps.iter_mut().find(|c| c.0 == *g) {
                    Some(c) => c.2 = from,
                    None => break,
                },
                Op::Run { set, min, greedy } => {
                    let Some(WalkStep::Run {
                        set: ws,
                        min: wmin,
                        max,
                    }) = walk.get(from.step)
                    else {
                        break;
                    };
                    if from.off != 0 || *ws != bitmap(&set.bytes) || wmin != min {
                        break;
                    }
                    if *max != usize::MAX {
                        break;
                    }
                    if *greedy {
                        r.greedy.push((from.step, *min));
                    }
                    r.at = Place {
                        step: from.step + 1,
                        off: 0,
                    };
                }
                other => {
                    let Some(sets) = fixed_sets(other) else { break };
                    let Some(WalkStep::Fixed(ws)) = walk.get(from.step) else {
                        break;
                    };
                    if ws.get(from.off..from.off + sets.len()) != Some(sets.as_slice()) {
                        break;
                    }
                    r.at.off += sets.len();
                }
            }
            match cap {
                Some(g) if *g < self.groups => set_cap(&mut r.caps, *g, from, r.at),
                Some(_) => break,
                None => {}
            }
            r.skip = j + 1;
            r.need =
                r.at.step
                    .max(r.greedy.iter().map(|g| g.0 + 1).max().unwrap_or(0));
            best = Some(r.clone());
        }
        best
    }

    /// `matches_into` for a text whose first line the start walk got through, its step ends
    /// `ends` (start.rs `Marks`), `resume` built from that walk: the plan goes on where the
    /// walk's steps ended. The same answer as `matches_into`.
    pub fn matches_after(
        &self,
        s: &[u8],
        caps: &mut Caps,
        resume: &Resume,
        ends: &[u8],
    ) -> Option<usize> {
        let Some(ends) = ends.get(..resume.need) else {
            return self.run_into(s, false, caps);
        };
        let start = |step: usize| match step.checked_sub(1) {
            Some(i) => ends.get(i).map_or(0, |&e| usize::from(e)),
            None => 0,
        };
        let place = |p: Place| start(p.step) + p.off;
        let pos = place(resume.at);
        // The walk read the line's bytes; the text may end before the header did.
        if pos > s.len() {
            return self.run_into(s, false, caps);
        }
        caps.clear();
        caps.resize(self.groups, None);
        if !self.may_start(s) {
            return None;
        }
        for &(g, a, b) in &resume.caps {
            if let Some(slot) = caps.get_mut(g) {
                *slot = Some((place(a), place(b)));
            }
        }
        let more = resume
            .greedy
            .iter()
            .any(|&(i, min)| start(i + 1).saturating_sub(start(i)) > min);
        let r = Run {
            s,
            chars: self.chars,
            budget: BUDGET,
        };
        let rest = self.plan.get(resume.skip..).unwrap_or_default();
        match r.first_plan(rest, caps, (pos, more)) {
            First::End { at, .. } => return Some(at),
            First::Fail => return None,
            First::Unknown => {}
        }
        let (end, found) = self.general(s, false)?;
        caps.copy_from_slice(&found);
        Some(end)
    }

    pub fn new(els: Vec<El>, groups: usize, chars: bool) -> Matcher {
        let mut ops = Vec::new();
        plan(&els, &mut ops);
        Matcher {
            plan: fuse(steps(finish(ops))),
            ..Matcher::general_only(els, groups, chars)
        }
    }

    /// A matcher without the first-path plan, for one-off use (`explain`).
    pub fn general_only(els: Vec<El>, groups: usize, chars: bool) -> Matcher {
        let lead = match first_bytes(&els) {
            Some((set, false)) => Some(Box::new(set)),
            _ => None,
        };
        Matcher {
            els,
            groups,
            chars,
            lead,
            plan: vec![Step {
                op: Op::GiveUp,
                cap: None,
            }],
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

    /// `re.match` into `caps` (resized to the groups; no allocation once it has grown): the
    /// end of the first match, as `matches` answers.
    pub fn matches_into(&self, s: &[u8], caps: &mut Caps) -> Option<usize> {
        self.run_into(s, false, caps)
    }

    fn run(&self, s: &[u8], full: bool) -> Option<(usize, Caps)> {
        let mut caps = Vec::new();
        self.run_into(s, full, &mut caps).map(|e| (e, caps))
    }

    fn run_into(&self, s: &[u8], full: bool, caps: &mut Caps) -> Option<usize> {
        caps.clear();
        caps.resize(self.groups, None);
        if !self.may_start(s) {
            return None;
        }
        match self.first_path(s, full, caps) {
            First::End { at, .. } => return Some(at),
            First::Fail => return None,
            First::Unknown => {}
        }
        let (end, found) = self.general(s, full)?;
        caps.copy_from_slice(&found);
        Some(end)
    }

    /// The first-path walk over the whole sequence (`Run::first_seq`); a full match that
    /// ends early is unknown when a choice could move its end.
    fn first_path(&self, s: &[u8], full: bool, caps: &mut Caps) -> First {
        let r = Run {
            s,
            chars: self.chars,
            budget: BUDGET,
        };
        match r.first_plan(&self.plan, caps, (0, false)) {
            First::End { at, more } if full && at != s.len() => {
                if more {
                    First::Unknown
                } else {
                    First::Fail
                }
            }
            other => other,
        }
    }

    /// For tests: the first-path walk's answer (None: unknown) and the general matcher's.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    pub(crate) fn both(
        &self,
        s: &[u8],
        full: bool,
    ) -> (Option<Option<(usize, Caps)>>, Option<(usize, Caps)>) {
        let mut caps = vec![None; self.groups];
        let fast = if !self.may_start(s) {
            Some(None)
        } else {
            match self.first_path(s, full, &mut caps) {
                First::End { at, .. } => Some(Some((at, caps))),
                First::Fail => Some(None),
                First::Unknown => None,
            }
        };
        (fast, self.general(s, full))
    }

    /// The backtracking matcher alone (what the first-path walk must agree with).
    fn general(&self, s: &[u8], full: bool) -> Option<(usize, Caps)> {
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
pub(crate) mod tests {
    use super::*;

    fn lit(s: &str) -> El {
        El::Lit(s.as_bytes().to_vec())
    }

    pub(crate) use crate::testgen::Gen;

    /// The first-path walk agrees with the backtracking matcher on `s` (or says unknown);
    /// true when it decided.
    pub(crate) fn agree(m: &Matcher, s: &[u8], full: bool) -> bool {
        let (fast, general) = m.both(s, full);
        if let Some(fast) = fast {
            assert_eq!(
                fast,
                general,
                "first path differs on {:?}",
                String::from_utf8_lossy(s)
            );
            let mut caps = Vec::new();
            let end = m.run_into(s, full, &mut caps);
            assert_eq!(end.map(|e| (e, caps)), general);
            return true;
        }
        false
    }

    #[test]
    fn first_path_agrees_on_small_forms() {
        let digits = || El::class(Set::digits(), 0, Some(3), Mode::Greedy);
        let lazy = || El::class(Set::not(b"\n"), 1, None, Mode::Lazy);
        let forms: Vec<(Vec<El>, usize)> = vec![
            (
                vec![El::Group(0, vec![digits()]), El::Group(1, vec![digits()])],
                2,
            ),
            (
                vec![
                    El::Group(0, vec![lazy()]),
                    lit("]"),
                    El::Group(1, vec![El::Rest]),
                ],
                2,
            ),
            (
                vec![
                    El::Alt(vec![
                        vec![El::Group(0, vec![digits(), lit("a")])],
                        vec![El::Group(1, vec![lit("1")])],
                        vec![],
                    ]),
                    El::Group(2, vec![El::greedy_line()]),
                    El::AtLineEnd,
                ],
                3,
            ),
            (
                vec![
                    El::Atomic(vec![El::Alt(vec![vec![digits()], vec![]])]),
                    lit("1"),
                    El::Group(
                        0,
                        vec![El::UpTo {
                            lit: b"]".to_vec(),
                            bytes: None,
                        }],
                    ),
                    lit("]"),
                ],
                1,
            ),
            (
                vec![
                    El::Group(
                        0,
                        vec![El::UpTo {
                            lit: "é".as_bytes().to_vec(),
                            bytes: None,
                        }],
                    ),
                    lit("é"),
                    El::Group(1, vec![El::class(Set::not(b"]"), 0, None, Mode::Greedy)]),
                    El::AtLineEnd,
                ],
                2,
            ),
        ];
        let int = |alts: Vec<Vec<El>>| {
            let mut bs = vec![vec![
                El::class(Set::of(b"-"), 0, Some(1), Mode::Greedy),
                El::class(Set::digits(), 1, None, Mode::Possessive),
            ]];
            bs.extend(alts);
            El::Atomic(vec![El::Alt(bs)])
        };
        let forms: Vec<(Vec<El>, usize)> = forms
            .into_iter()
            .chain([
                // Choices that a later element makes the backtracking revisit.
                (
                    vec![
                        El::Group(0, vec![digits()]),
                        lit("1"),
                        El::Group(1, vec![El::Rest]),
                    ],
                    2,
                ),
                (
                    vec![
                        El::Group(0, vec![El::greedy_line()]),
                        lit("]"),
                        El::Group(1, vec![El::Rest]),
                    ],
                    2,
                ),
                (vec![El::Group(0, vec![lazy()]), lit("1"), El::AtLineEnd], 1),
                (
                    vec![El::Alt(vec![vec![lit("1")], vec![lit("12")]]), lit("a")],
                    0,
                ),
                (
                    vec![
                        El::Group(0, vec![int(vec![vec![lit("?")], vec![]])]),
                        lit("]"),
                    ],
                    1,
                ),
                (vec![El::Group(0, vec![int(vec![vec![]])]), lit("a")], 1),
                (
                    vec![
                        El::Group(0, vec![int(vec![])]),
                        El::Group(1, vec![El::Rest]),
                    ],
                    2,
                ),
            ])
            .collect();
        let alphabet = ["1", "2", "a", "]", "é", "\n", " ", "x", "-", "?", "-1"];
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let mut decided = 0;
        for (els, groups) in &forms {
            let m = Matcher::new(els.clone(), *groups, true);
            for _ in 0..3000 {
                let s = g.mutate("12a]é1]x", &alphabet);
                for full in [false, true] {
                    decided += usize::from(agree(&m, s.as_bytes(), full));
                }
            }
        }
        // The walk decides most of them, so the comparison is not empty.
        assert!(decided > 15_000, "decided {decided}");
    }

    #[test]
    fn the_seed_prefix_fuses_each_field_with_the_literal_after_it() {
        let p = crate::pattern::compile_pattern(
            "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] [%thread] - %m%n",
            Some("UTC"),
        )
        .unwrap();
        let fused = p
            .regex
            .plan
            .iter()
            .filter(|s| matches!(s.op, Op::UntilLit { .. }));
        assert_eq!(fused.count(), 4, "{:?}", p.regex.plan);
        let line = b"2026-11-30 04:38:57.716 INFO  [traceId:e8] [c.a.C#f():1] [main] - a,b";
        let (_, caps) = p.regex.matches(line).unwrap();
        let texts: Vec<&[u8]> = caps
            .iter()
            .flatten()
            .map(|&(a, b)| line.get(a..b).unwrap_or_default())
            .collect();
        assert_eq!(
            texts,
            [
                &b"2026-11-30 04:38:57.716"[..],
                b"INFO",
                b"e8",
                b"c.a.C",
                b"f",
                b"1",
                b"main",
                b"a,b"
            ]
        );
    }

    /// A literal's masked compare against `starts_with`, with texts shorter and longer than
    /// the 16 bytes it reads, and literals differing in any one byte.
    #[test]
    fn a_literal_is_found_as_starts_with_finds_it() {
        let mut g = crate::testgen::Gen(0x0DD_B10C_5EA1_0002);
        for _ in 0..5_000 {
            let lit: Vec<u8> = (0..2 + g.below(15))
                .map(|_| b"] [-#\xff"[g.below(6)])
                .collect();
            let (word, mask) = lit_word(&lit);
            let mut t: Vec<u8> = lit.iter().copied().take(g.below(lit.len() + 1)).collect();
            t.extend((0..g.below(24)).map(|_| b"] [-#\xff"[g.below(6)]));
            assert_eq!(
                lit_here(&t, &lit, word, mask),
                t.starts_with(&lit),
                "{t:?} {lit:?}"
            );
        }
    }

    #[test]
    fn ranges_check_every_byte_whatever_the_length() {
        let mut g = Gen(0x5851_F42D_4C95_7F2D);
        for _ in 0..3000 {
            let len = g.below(40);
            let r: Vec<(u8, u8)> = (0..len)
                .map(|_| {
                    let lo = *g.pick(&[b'0', b'-', b' ', b'a', 0x80]);
                    (lo, *g.pick(&[0u8, 9, 25]))
                })
                .collect();
            let padded = len.div_ceil(LANES) * LANES;
            let mut lo: Vec<u8> = r.iter().map(|x| x.0).collect();
            let mut span: Vec<u8> = r.iter().map(|x| x.1).collect();
            lo.resize(padded, 0);
            span.resize(padded, 255);
            let t: Vec<u8> = (0..g.below(50))
                .map(|i| match r.get(i) {
                    Some(&(l, w)) if g.below(30) > 0 => {
                        l + u8::try_from(g.below(usize::from(w) + 1)).unwrap()
                    }
                    _ => u8::try_from(g.below(256)).unwrap(),
                })
                .collect();
            let naive =
                t.len() >= len && t.iter().zip(&r).all(|(&b, &(l, w))| b >= l && b - l <= w);
            assert_eq!(in_ranges(&t, len, &lo, &span), naive, "{t:?} {r:?}");
        }
    }

    #[test]
    fn a_bitmap_is_a_range_only_when_its_bytes_are_contiguous() {
        let range = |bytes: &[u8]| as_range(&bitmap(&Set::of(bytes).bytes));
        assert_eq!(range(b"0123456789"), Some((b'0', 9)));
        assert_eq!(range(b"#"), Some((b'#', 0)));
        assert_eq!(range(b"AaPp"), None);
        assert_eq!(range(b"02"), None);
        assert_eq!(as_range(&bitmap(&Set::not(b"").bytes)), Some((0, 255)));
        assert_eq!(as_range(&bitmap(&Set::not(b"\n").bytes)), None);
        assert_eq!(as_range(&[0, 0, 0, 1 << 63]), Some((255, 0)));
        assert_eq!(as_range(&[0; 4]), None);
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
