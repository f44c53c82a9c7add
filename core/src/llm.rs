//! LLM water levels of one batch (agent/engine/llm_aggregate.py `LlmAggregate.add`): per label
//! set calls, token and duration sums, histogram buckets, per-minute cells of the records' own
//! time, feedback by normalised rating, and the same caps, so the numbers are exactly the ones
//! `add` would give. Aggregates merge in Rust (`merge`, `LlmAggregate.merge`'s semantics): the
//! core engine's batches and the long-lived totals (`/metrics`, report, validate) are all
//! `Llm`s, read as Python values only when someone looks (lib.rs `LlmAggregate`).
//!
//! Sums are u128 (saturating): Python's ints are unbounded, so the two differ only past 3.4e38.

use crate::fasthash::{hash_strs, word4, FxMap};
use crate::payload::{non_digit_lanes, Key, Value, LANE_ONES};
use crate::places::{Places, ROLES};
use std::collections::hash_map::Entry;

pub const DEFAULT_MAX_MINUTE_CELLS: usize = 1_000_000;
const DURATION_BOUNDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TOKEN_BOUNDS: [u128; 14] = [
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];
pub const DURATION_SLOTS: usize = DURATION_BOUNDS.len() + 1;
pub const TOKEN_SLOTS: usize = TOKEN_BOUNDS.len() + 1;
/// The six labels of a set, then the four numbers of a call: `places::NAMES` from `ROLES` on.
#[cfg(test)]
const NAMES: [&str; 10] = [
    "app",
    "module",
    "model",
    "workspace",
    "status_code",
    "error_code",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "duration_ms",
];
/// Bytes of `text` reserved a label set, in an aggregate that keeps its sets' texts there
/// (`Llm::packed_texts`): the six texts of the bench's sets are 30-45 bytes
/// (`chat-app`, `embedding`, `qwen2.5-72b-instruct`, `ws-19`, `200`, ``), so 32 made the
/// column double (and copy itself) within most batches.
const TEXT_PER_SET: usize = 64;

/// A batch's columns are reserved for the last batch's count and a quarter more: counts
/// differ by a few percent from batch to batch, and one set past the reservation doubled
/// (and copied) every column in about half of the batches.
fn with_margin(n: usize) -> usize {
    n.saturating_add(n / 4)
}

/// A set without minute cells (`Llm::cells`).
const NO_CELL: usize = usize::MAX;

/// CPython's limit on the digits `int(text)` converts.
const MAX_STR_DIGITS: usize = 4300;

/// A label set: app, module, model, workspace, status_code, error_code.
pub type LabelKey<'a> = [&'a str; 6];
const OTHER: LabelKey<'static> = ["other"; 6];

/// The bytes of a set's texts that `Packed` holds (after its word of lengths).
const PACKED_TEXT: usize = 56;

/// A label set in eight words: the six texts' lengths in the first (bytes 0-5, then two
/// zeros), their bytes one after another from the second, zeros after. Two sets are equal
/// exactly when their packs are (the lengths cut the bytes into the same texts), so a found
/// set is told by eight word compares and hashed by eight multiplies; before, six texts were
/// hashed one by one (~110 instructions a call) and compared by six slice compares (~230 a
/// found set), and a new set's texts were copied by six calls to memcpy (~300 a new set).
/// A set of more than `PACKED_TEXT` bytes does not fit: it has `Packed::NONE` (its first
/// byte 0xFF, which no fitting set's has), is hashed by `hash_strs` and compared text by text.
/// The bench's sets are 30-45 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed([u8; 8 + PACKED_TEXT]);

impl Packed {
    const NONE: Packed = Packed([0xFF; 8 + PACKED_TEXT]);

    /// The pack of `key`, or `NONE` if its texts are more than `PACKED_TEXT` bytes.
    fn of(key: &[&str; 6]) -> Packed {
        let mut b = [0u8; 8 + PACKED_TEXT];
        let mut at = 8;
        for (k, t) in key.iter().enumerate() {
            let t = t.as_bytes();
            // At most `PACKED_TEXT`, so each length fits its byte.
            let Some(dst) = b.get_mut(at..at + t.len()) else {
                return Packed::NONE;
            };
            put(dst, t);
            at += t.len();
            if let Some(n) = b.get_mut(k) {
                *n = t.len() as u8;
            }
        }
        Packed(b)
    }

    fn fits(&self) -> bool {
        self.0[0] != 0xFF
    }

    /// Word `k` of the eight.
    #[inline]
    fn word(&self, k: usize) -> u64 {
        self.0
            .get(8 * k..)
            .and_then(|w| w.first_chunk::<8>())
            .map_or(0, |w| u64::from_le_bytes(*w))
    }

    /// Equal packs, by words (no call to `bcmp`).
    #[inline]
    fn same(&self, other: &Packed) -> bool {
        (0..8).fold(0, |d, k| d | (self.word(k) ^ other.word(k))) == 0
    }

    /// The Fx hash of the eight words (the zeros past the texts too: a fixed number of steps).
    #[inline]
    fn hash(&self) -> u64 {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        (0..8).fold(0u64, |h, k| {
            (h.rotate_left(5) ^ self.word(k)).wrapping_mul(SEED)
        })
    }

    /// Whether this is OTHER's pack (six texts `other`), told without making that pack.
    fn is_other(&self) -> bool {
        self.0.first_chunk::<8>() == Some(&[5, 5, 5, 5, 5, 5, 0, 0])
            && self.0.get(8..38) == Some(&b"otherotherotherotherotherother"[..])
    }

    /// The six texts' lengths (zeros for `NONE`).
    fn lengths(&self) -> [usize; 6] {
        let lengths = self.0.first_chunk::<6>().copied().unwrap_or_default();
        if self.fits() {
            lengths.map(usize::from)
        } else {
            [0; 6]
        }
    }

    /// The six texts together ("" for `NONE`), read once as UTF-8: the bytes of six `&str`s
    /// copied whole (`Packed::of`), so never refused.
    fn text(&self) -> &str {
        let len = self.lengths().iter().sum::<usize>();
        let all = self.0.get(8..8 + len).unwrap_or(&[]);
        std::str::from_utf8(all).unwrap_or("")
    }

    /// The six texts of a fitting pack (empty ones for `NONE`): `text` cut at the lengths
    /// (each a text's end, so a char boundary).
    fn key(&self) -> LabelKey<'_> {
        let all = self.text();
        let mut start = 0;
        self.lengths().map(|n| {
            let end = start + n;
            let part = all.get(start..end).unwrap_or("");
            start = end;
            part
        })
    }
}

/// The hash a set is indexed under in every `Llm`: its pack's if it fits, else `hash_strs`.
#[inline(always)]
fn set_hash(key: &[&str; 6], packed: &Packed) -> u64 {
    if packed.fits() {
        packed.hash()
    } else {
        hash_strs(key)
    }
}

/// `src` into `dst` (the same length), by fixed-size copies that overlap rather than a call
/// to memcpy: the labels are a few bytes each.
#[inline]
fn put(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            for at in [0, n / 2, n - 1] {
                if let (Some(d), Some(s)) = (dst.get_mut(at), src.get(at)) {
                    *d = *s;
                }
            }
        }
        4..=7 => {
            copy::<4>(dst, src, 0);
            copy::<4>(dst, src, n - 4);
        }
        8..=16 => {
            copy::<8>(dst, src, 0);
            copy::<8>(dst, src, n - 8);
        }
        _ => {
            let mut at = 0;
            while at + 16 < n {
                copy::<16>(dst, src, at);
                at += 16;
            }
            copy::<16>(dst, src, n - 16);
        }
    }
}

/// `N` bytes of `src` from `at` into `dst` at the same place (nothing if either is short).
#[inline]
fn copy<const N: usize>(dst: &mut [u8], src: &[u8], at: usize) {
    let d = dst.get_mut(at..).and_then(|d| d.first_chunk_mut::<N>());
    let s = src.get(at..).and_then(|s| s.first_chunk::<N>());
    if let (Some(d), Some(s)) = (d, s) {
        *d = *s;
    }
}

/// The five sums of one label set side by side: a call adds to all five, which then share
/// two cache lines instead of taking one in each of five columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub calls: u128,
    pub input_tokens: u128,
    pub output_tokens: u128,
    pub total_tokens: u128,
    pub duration_ms: u128,
}

impl Sums {
    /// `other`'s sums added into these (saturating, as the u128s stand for Python's ints).
    fn add(&mut self, other: &Sums) {
        self.calls = self.calls.saturating_add(other.calls);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.duration_ms = self.duration_ms.saturating_add(other.duration_ms);
    }
}

/// A set's histogram buckets in one array: `DURATION_SLOTS` of duration, then `TOKEN_SLOTS`
/// of input tokens, then `TOKEN_SLOTS` of output tokens.
pub const SLOTS: usize = DURATION_SLOTS + 2 * TOKEN_SLOTS;
const INPUT_AT: usize = DURATION_SLOTS;
const OUTPUT_AT: usize = DURATION_SLOTS + TOKEN_SLOTS;
type Buckets = [u64; SLOTS];

/// One call as the histograms count it: its set and the three buckets it falls in (offsets
/// into a set's `Buckets`, each below `SLOTS`, so a byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    set: usize,
    at: [u8; 3],
}

/// The histograms of an aggregate, kept in one of two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Histograms {
    /// All `SLOTS` buckets of every set: a long-lived total, merged into batch after batch.
    Dense(Vec<Buckets>),
    /// The calls one by one: a batch's aggregate, whose ~1,200 sets get 1-2 calls each, so
    /// 360 bytes of zeroed buckets per set (fresh memory in every batch) would hold 1-2
    /// counts; 16 bytes a call are read once, by the merge into a total.
    Calls(Vec<Call>),
}

/// The aggregate of one batch's llm_call and feedback records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Llm {
    max_label_sets: usize,
    max_minute_cells: usize,
    /// The six texts of every label set, one after another in one String: a batch makes
    /// ~1,200 sets, each anew (half the calls of the bench make one), and an allocation per
    /// set cost more than the rest of its making.
    text: String,
    /// Where each of a set's six texts ends in `text`; the set starts where the one before
    /// it ends.
    ends: Vec<[usize; 6]>,
    /// `set_hash` of each key, so a merge finds the sets here without hashing them again.
    hashes: Vec<u64>,
    /// Each set's `Packed` (`Packed::NONE` if it does not fit).
    packs: Vec<Packed>,
    /// Whether a set that fits its pack has its texts in `text` too: a total's do (its sets
    /// are read by name at every merge, `merge_window`), a batch's do not (a batch reads
    /// them only when it is looked at, `snapshot()`; the copy was ~190 instructions of the
    /// ~300 a new set cost, and half the calls make one). Such a set's `ends` are all where
    /// the sets before it end, so it takes no room in `text`.
    packed_texts: bool,
    /// Label set by the hash of its six texts: looked up without building the key.
    index: FxMap<u64, usize>,
    /// The sets whose hash is another set's in `index` (rare).
    collided: Vec<usize>,
    /// OTHER's index, once it has one and a set past the cap asked for it: past the cap,
    /// every call (or merged set) of a new set goes there.
    other: Option<usize>,
    /// Calls, token and duration sums, per set.
    sums: Vec<Sums>,
    histograms: Histograms,
    /// (label index, epoch minute, calls, tokens) in the order the cells were made.
    pub minutes: Vec<(usize, i64, u64, u128)>,
    /// Each set's first and latest cell in `minutes` (`NO_CELL`: none yet; the latest is the
    /// first only while the set has one cell, else the last other cell used). A batch's calls
    /// of one set mostly share a minute, and half its sets are new (their first cell is made
    /// without a lookup), so most cells are found or made here without hashing.
    cells: Vec<[usize; 2]>,
    /// The cells that are not their set's first, by (label index, minute): the first is
    /// found through `cells`.
    minute_at: FxMap<(usize, i64), usize>,
    /// Normalised rating -> count, in first-seen order.
    pub feedback: Vec<(String, u64)>,
    pub dropped_calls: u64,
    pub dropped_minutes: u64,
}

impl Llm {
    pub fn new(max_label_sets: usize) -> Llm {
        Llm::with_caps(max_label_sets, DEFAULT_MAX_MINUTE_CELLS)
    }

    /// An empty aggregate of at most `max_label_sets` label sets and `max_minute_cells` cells,
    /// with dense histograms: what the binding makes, the totals merged into.
    pub fn with_caps(max_label_sets: usize, max_minute_cells: usize) -> Llm {
        Llm {
            max_label_sets,
            max_minute_cells,
            text: String::new(),
            ends: Vec::new(),
            hashes: Vec::new(),
            packs: Vec::new(),
            packed_texts: true,
            index: FxMap::default(),
            collided: Vec::new(),
            other: None,
            sums: Vec::new(),
            histograms: Histograms::Dense(Vec::new()),
            minutes: Vec::new(),
            cells: Vec::new(),
            minute_at: FxMap::default(),
            feedback: Vec::new(),
            dropped_calls: 0,
            dropped_minutes: 0,
        }
    }

    /// An empty aggregate for one batch: its histograms keep the calls one by one (see
    /// `Histograms::Calls`); it reads and merges as a dense one would.
    pub fn for_batch(max_label_sets: usize) -> Llm {
        Llm {
            histograms: Histograms::Calls(Vec::new()),
            packed_texts: false,
            ..Llm::new(max_label_sets)
        }
    }

    /// Room for `sets` label sets (at most the cap) made without growing any column: a
    /// Stream gives the size of its last batch's aggregate, which the next one mostly
    /// reaches again.
    pub fn reserve(&mut self, sets: usize) {
        let sets = with_margin(sets).min(self.max_label_sets);
        let extra = sets.saturating_sub(self.label_sets());
        if self.packed_texts {
            self.text.reserve(extra * TEXT_PER_SET);
        }
        self.ends.reserve(extra);
        self.hashes.reserve(extra);
        self.packs.reserve(extra);
        self.index.reserve(extra);
        self.sums.reserve(extra);
        self.cells.reserve(extra);
        match &mut self.histograms {
            Histograms::Dense(sets) => sets.reserve(extra),
            // Calls per set, as in the bench (~1.7): a few more grow the Vec once.
            Histograms::Calls(calls) => calls.reserve(extra * 2),
        }
    }

    /// Room for `cells` minute cells (at most the cap), `keyed` of them not their set's first,
    /// made without growing: as `reserve`, the last batch's counts (`minute_room`). Only
    /// the keyed ones go into `minute_at` (about one in seven in the bench's batches): room
    /// for all of them there was fresh memory every batch for nothing.
    pub fn reserve_minutes(&mut self, cells: usize, keyed: usize) {
        let room = |n: usize, now: usize| {
            with_margin(n)
                .min(self.max_minute_cells)
                .saturating_sub(now)
        };
        let (extra, extra_keyed) = (
            room(cells, self.minutes.len()),
            room(keyed, self.minute_at.len()),
        );
        self.minutes.reserve(extra);
        self.minute_at.reserve(extra_keyed);
    }

    /// The minute cells this aggregate holds, and how many of them are not their set's first:
    /// what `reserve_minutes` takes.
    pub fn minute_room(&self) -> (usize, usize) {
        (self.minutes.len(), self.minute_at.len())
    }

    pub fn max_label_sets(&self) -> usize {
        self.max_label_sets
    }

    pub fn max_minute_cells(&self) -> usize {
        self.max_minute_cells
    }

    /// The sums of each label set, in the sets' order.
    pub fn sums(&self) -> &[Sums] {
        &self.sums
    }

    /// The duration, input and output histograms as the Python aggregate holds them: one
    /// flat column each, `DURATION_SLOTS` or `TOKEN_SLOTS` buckets per set.
    pub fn bucket_columns(&self) -> [Vec<u64>; 3] {
        let sets = self.label_sets();
        let mut columns = [
            vec![0; sets * DURATION_SLOTS],
            vec![0; sets * TOKEN_SLOTS],
            vec![0; sets * TOKEN_SLOTS],
        ];
        let made;
        let dense = match &self.histograms {
            Histograms::Dense(dense) => dense,
            Histograms::Calls(calls) => {
                made = dense_of(calls, sets);
                &made
            }
        };
        let [d, inp, out] = &mut columns;
        for (i, b) in dense.iter().enumerate() {
            add_into(d, i * DURATION_SLOTS, b.get(..INPUT_AT).unwrap_or(&[]));
            add_into(
                inp,
                i * TOKEN_SLOTS,
                b.get(INPUT_AT..OUTPUT_AT).unwrap_or(&[]),
            );
            add_into(out, i * TOKEN_SLOTS, b.get(OUTPUT_AT..).unwrap_or(&[]));
        }
        columns
    }

    /// Counts one record whose event is llm_call or feedback (`time_s`: its own time, if any).
    pub fn add(&mut self, fields: &[(Key, Value)], event: &str, time_s: Option<i64>) {
        let places = Places::of(fields);
        self.add_at(fields, &places, event, time_s);
    }

    /// `add` with the places of the fields' names already found (the Stream finds them once
    /// for masking, its counters and this).
    pub fn add_at(
        &mut self,
        fields: &[(Key, Value)],
        places: &Places,
        event: &str,
        time_s: Option<i64>,
    ) {
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
        // The six labels and four numbers (the first of each name, as a lookup by name
        // finds it).
        let found: [Option<&Value>; 10] = places.firsts(fields, ROLES);
        let [app, module, model, workspace, status, error, inp, out, total, ms] = found;
        let key: [&str; 6] = [app, module, model, workspace, status, error].map(text);
        let packed = Packed::of(&key);
        let i = self.slot(key, &packed, set_hash(&key, &packed), 1);
        let inp = number(inp);
        let out = number(out);
        let total = match total {
            None | Some(Value::None) => inp.saturating_add(out),
            v => number(v),
        };
        let ms = number(ms);
        let call = Sums {
            calls: 1,
            input_tokens: inp,
            output_tokens: out,
            total_tokens: total,
            duration_ms: ms,
        };
        if let Some(sums) = self.sums.get_mut(i) {
            sums.add(&call);
        }
        self.count_call(i, buckets_of(ms, inp, out));
        if let Some(t) = time_s {
            self.add_minute(i, t.div_euclid(60), 1, total);
        }
    }

    /// One call of set `i` into the histograms, at the buckets `at`.
    fn count_call(&mut self, i: usize, at: [u8; 3]) {
        match &mut self.histograms {
            Histograms::Dense(sets) => {
                if let Some(b) = sets.get_mut(i) {
                    count_at(b, at, 1);
                }
            }
            Histograms::Calls(calls) => calls.push(Call { set: i, at }),
        }
    }

    /// `_add_minute`: `calls` and `tokens` into the cell (set `i`, `minute`), made if there is
    /// room; else the calls are counted as dropped minutes.
    #[inline(always)]
    fn add_minute(&mut self, i: usize, minute: i64, calls: u64, tokens: u128) {
        let [first, latest] = self.cells.get(i).copied().unwrap_or([NO_CELL; 2]);
        let found = if self.cell_is(latest, minute) {
            Some(latest)
        } else if first == latest {
            // The set has no cell, or one, which is not this minute's.
            None
        } else if self.cell_is(first, minute) {
            Some(first)
        } else {
            self.minute_at.get(&(i, minute)).copied()
        };
        if let Some(at) = found {
            if let Some(cell) = self.minutes.get_mut(at) {
                cell.2 = cell.2.saturating_add(calls);
                cell.3 = cell.3.saturating_add(tokens);
            }
            // `latest` is the first only while the set has one cell (the test above).
            if let Some(c) = self.cells.get_mut(i).filter(|c| c[0] != at) {
                c[1] = at;
            }
            return;
        }
        if self.minutes.len() >= self.max_minute_cells {
            self.dropped_minutes = self.dropped_minutes.saturating_add(calls);
            return;
        }
        let at = self.minutes.len();
        self.minutes.push((i, minute, calls, tokens));
        match self.cells.get_mut(i) {
            Some(c) if c[0] == NO_CELL => *c = [at; 2],
            Some(c) => {
                c[1] = at;
                self.minute_at.insert((i, minute), at);
            }
            // Every set has its entry in `cells` (`push_ends`); were one missing, the map
            // alone would still find the cell.
            None => {
                self.minute_at.insert((i, minute), at);
            }
        }
    }

    /// Whether cell `at` (`NO_CELL`: none) is of `minute` (its set is the caller's).
    #[inline]
    fn cell_is(&self, at: usize, minute: i64) -> bool {
        self.minutes.get(at).is_some_and(|c| c.1 == minute)
    }

    /// `LlmAggregate.merge`: adds `other`'s numbers into this one. Its label sets pass this
    /// one's cap in `other`'s order (a set beyond it is counted under OTHER, its calls as
    /// dropped), sets without calls add nothing, and `minutes: false` leaves the per-minute
    /// cells and their dropped count out (a long-lived total keeps none).
    pub fn merge(&mut self, other: &Llm, minutes: bool) {
        let target = self.merge_sets(other);
        if minutes {
            for &(j, minute, calls, tokens) in &other.minutes {
                if let Some(i) = self.guarded_at(&target, other, j) {
                    self.add_minute(i, minute, calls, tokens);
                }
            }
            self.dropped_minutes = self.dropped_minutes.saturating_add(other.dropped_minutes);
        }
    }

    /// `merge(other, false)`, then `other`'s per-minute cells whose minute is in `lo..=hi`,
    /// summed by (model, workspace) of the label set they count under here (OTHER for a set
    /// this one has not got), in the order first seen: `/metrics`' QPM/TPM window.
    pub fn merge_window(
        &mut self,
        other: &Llm,
        lo: i64,
        hi: i64,
    ) -> Vec<(String, String, i64, u64, u128)> {
        let target = self.merge_sets(other);
        let this = &*self;
        let mut out: Vec<(String, String, i64, u64, u128)> = Vec::new();
        let mut at: FxMap<(&str, &str, i64), usize> = FxMap::default();
        for &(j, minute, calls, tokens) in &other.minutes {
            if minute < lo || minute > hi {
                continue;
            }
            // The set it counts under here is its own or OTHER's (`guarded_at`): either way
            // that set's model and workspace are the ones to show.
            let (model, workspace) = match this.guarded_at(&target, other, j) {
                Some(i) => {
                    let key = this.key(i);
                    (key[2], key[3])
                }
                None => ("other", "other"),
            };
            match at.get(&(model, workspace, minute)) {
                Some(&k) => {
                    if let Some(cell) = out.get_mut(k) {
                        cell.3 = cell.3.saturating_add(calls);
                        cell.4 = cell.4.saturating_add(tokens);
                    }
                }
                None => {
                    at.insert((model, workspace, minute), out.len());
                    out.push((model.into(), workspace.into(), minute, calls, tokens));
                }
            }
        }
        out
    }

    /// The label sets, sums, histograms, feedback and dropped calls of `other` added into
    /// this one (`merge` but the minutes); returns where each of `other`'s sets went here
    /// (`usize::MAX` for a set without calls, which adds nothing).
    fn merge_sets(&mut self, other: &Llm) -> Vec<usize> {
        let mut target = vec![usize::MAX; other.label_sets()];
        for (j, sums) in other.sums.iter().enumerate() {
            if sums.calls == 0 {
                continue;
            }
            let calls = u64::try_from(sums.calls).unwrap_or(u64::MAX);
            let i = self.slot_of(other, j, calls);
            if let Some(t) = target.get_mut(j) {
                *t = i;
            }
            if let Some(d) = self.sums.get_mut(i) {
                d.add(sums);
            }
        }
        self.merge_histograms(other, &target);
        for (rating, n) in &other.feedback {
            match self.feedback.iter_mut().find(|(r, _)| r == rating) {
                Some(slot) => slot.1 = slot.1.saturating_add(*n),
                None => self.feedback.push((rating.clone(), *n)),
            }
        }
        self.dropped_calls = self.dropped_calls.saturating_add(other.dropped_calls);
        target
    }

    /// `other`'s histograms added into this one's, set `j` there into set `target[j]` here.
    /// This one becomes dense first if it was not (a batch merged into: rare).
    fn merge_histograms(&mut self, other: &Llm, target: &[usize]) {
        let mut into = self.take_dense();
        match &other.histograms {
            Histograms::Dense(sets) => {
                for (b, &i) in sets.iter().zip(target) {
                    if let Some(d) = into.get_mut(i) {
                        for (d, s) in d.iter_mut().zip(b) {
                            *d = d.saturating_add(*s);
                        }
                    }
                }
            }
            Histograms::Calls(calls) => {
                for c in calls {
                    let to = target.get(c.set).and_then(|&i| into.get_mut(i));
                    if let Some(d) = to {
                        count_at(d, c.at, 1);
                    }
                }
            }
        }
        self.histograms = Histograms::Dense(into);
    }

    /// The buckets of every set, dense (made from the calls if they were kept one by one),
    /// taken out of this aggregate for a merge to add into and give back.
    fn take_dense(&mut self) -> Vec<Buckets> {
        let empty = Histograms::Dense(Vec::new());
        let mut dense = match std::mem::replace(&mut self.histograms, empty) {
            Histograms::Dense(dense) => dense,
            Histograms::Calls(calls) => dense_of(&calls, self.label_sets()),
        };
        // `slot` keeps one per set; made to fit in any case, so no index below misses.
        dense.resize(self.label_sets(), [0; SLOTS]);
        dense
    }

    /// `_guarded` of `other`'s set `j` just merged: the index of its key here, else OTHER's,
    /// if either has one. The merge put it at `target[j]`, which is one or the other (its
    /// own set if it was here or made, OTHER's if the cap turned it away), so it is looked
    /// up again only if the merge passed it by (no calls).
    fn guarded_at(&self, target: &[usize], other: &Llm, j: usize) -> Option<usize> {
        if let Some(&i) = target.get(j).filter(|&&i| i != usize::MAX) {
            return Some(i);
        }
        let key = other.key(j);
        self.find(&key, set_hash(&key, &Packed::of(&key)))
            .or_else(|| self.find(&OTHER, set_hash(&OTHER, &Packed::of(&OTHER))))
    }

    /// How many label sets this aggregate holds.
    pub fn label_sets(&self) -> usize {
        self.ends.len()
    }

    /// The texts of label set `i` (empty ones past the end).
    pub fn key(&self, i: usize) -> LabelKey<'_> {
        let Some(ends) = self.ends.get(i) else {
            return [""; 6];
        };
        if let Some(packed) = self.packs.get(i).filter(|p| !self.in_text(p)) {
            return packed.key();
        }
        let mut start = self.set_start(i);
        ends.map(|end| {
            let part = self.text.get(start..end).unwrap_or("");
            start = end;
            part
        })
    }

    /// Where set `i`'s texts start in `text`: where the set before it ends.
    fn set_start(&self, i: usize) -> usize {
        span(&self.ends, i).start
    }

    /// The index of the set `key` (whose `set_hash` is `hash`), if it has one.
    fn find(&self, key: &[&str; 6], hash: u64) -> Option<usize> {
        let &i = self.index.get(&hash)?;
        if self.is(i, key) {
            return Some(i);
        }
        // Another set has this hash (rare): the sets that came second are listed apart.
        self.collided.iter().copied().find(|&j| self.is(j, key))
    }

    /// Whether set `i` is `key` (`key(i) == *key`).
    #[inline]
    fn is(&self, i: usize, key: &[&str; 6]) -> bool {
        match self.packs.get(i) {
            Some(p) if p.fits() => p.same(&Packed::of(key)),
            _ => is_set(&self.text, &self.ends, i, key),
        }
    }

    /// Whether a set of this pack has its texts in `text` here (`packed_texts`).
    #[inline]
    fn in_text(&self, packed: &Packed) -> bool {
        self.packed_texts || !packed.fits()
    }

    /// `_slot`: the index of `key` (whose pack is `packed`), made if there is room, else
    /// OTHER's (its `calls` counted as dropped). One place is kept for OTHER, so the sets
    /// never pass the cap.
    ///
    /// The usual cases take one probe of `index`: the set is there under its hash, or the
    /// hash is new and there is room for the set; the rest (a collision, the cap) go the
    /// long way, `slot_slow`.
    fn slot(&mut self, key: [&str; 6], packed: &Packed, hash: u64, calls: u64) -> usize {
        let i = self.label_sets();
        match self.index.entry(hash) {
            Entry::Occupied(at) if is_packed(&self.packs, *at.get(), packed) => *at.get(),
            Entry::Occupied(at)
                if !packed.fits() && is_set(&self.text, &self.ends, *at.get(), &key) =>
            {
                *at.get()
            }
            Entry::Vacant(slot) if i < self.max_label_sets.saturating_sub(1) || key == OTHER => {
                slot.insert(i);
                self.push_set(key, packed, hash);
                i
            }
            // No set has this hash (a set that collided is listed under the first one's),
            // so the set is new, past the cap.
            Entry::Vacant(_) => self.past_cap(calls),
            Entry::Occupied(_) => self.slot_slow(key, packed, hash, calls),
        }
    }

    /// `slot` of `other`'s set `j`, for a merge: a set that fits is told equal by its pack
    /// and made from it (`slot_packed`); else its six texts lie one after another in
    /// `other.text`, as a set's here do, so it is told equal by its six lengths and one
    /// compare of bytes, and made by one copy (no `key` built, no compare per text).
    fn slot_of(&mut self, other: &Llm, j: usize, calls: u64) -> usize {
        let hash = other.hashes.get(j).copied().unwrap_or_default();
        let packed = other.packs.get(j).unwrap_or(&Packed::NONE);
        if packed.fits() {
            return self.slot_packed(packed, hash, calls);
        }
        let (Some(ends), Some(text)) = (other.ends.get(j), other.text.get(other.set_text(j)))
        else {
            let key = other.key(j);
            return self.slot(key, &Packed::of(&key), hash, calls);
        };
        let start = other.set_start(j);
        let i = self.label_sets();
        match self.index.entry(hash) {
            Entry::Occupied(at) if same_set(&self.text, &self.ends, *at.get(), ends, text) => {
                *at.get()
            }
            Entry::Vacant(slot) if i < self.max_label_sets.saturating_sub(1) => {
                slot.insert(i);
                let base = self.text.len();
                self.text.push_str(text);
                // `ends` less `start` are the texts' ends within `text`.
                self.push_ends(ends.map(|e| base + e.saturating_sub(start)), hash, *packed);
                i
            }
            // New past the cap, as in `slot` (OTHER fits a pack: this is not OTHER).
            Entry::Vacant(_) => self.past_cap(calls),
            _ => {
                let key = other.key(j);
                self.slot_slow(key, &Packed::of(&key), hash, calls)
            }
        }
    }

    /// `slot_of` of a set that fits `packed` (whose hash is `hash`): found, made from the
    /// pack, or past the cap, as `slot` does.
    fn slot_packed(&mut self, packed: &Packed, hash: u64, calls: u64) -> usize {
        let i = self.label_sets();
        match self.index.entry(hash) {
            Entry::Occupied(at) if is_packed(&self.packs, *at.get(), packed) => *at.get(),
            Entry::Vacant(slot) if i < self.max_label_sets.saturating_sub(1) => {
                slot.insert(i);
                self.push_packed(*packed, hash);
                i
            }
            // New past the cap, as in `slot`, unless it is OTHER itself.
            Entry::Vacant(_) if !packed.is_other() => self.past_cap(calls),
            _ => self.slot_slow(packed.key(), packed, hash, calls),
        }
    }

    /// `slot_slow`'s answer for a new set past the cap: its `calls` counted as dropped, and
    /// OTHER's index (made if it has none), looked up once and kept.
    fn past_cap(&mut self, calls: u64) -> usize {
        self.dropped_calls = self.dropped_calls.saturating_add(calls);
        if let Some(i) = self.other {
            return i;
        }
        // OTHER is never turned away, so this drops nothing more.
        let packed = Packed::of(&OTHER);
        let i = self.slot_slow(OTHER, &packed, set_hash(&OTHER, &packed), 0);
        self.other = Some(i);
        i
    }

    /// Where set `i`'s six texts lie in `text`, together.
    fn set_text(&self, i: usize) -> std::ops::Range<usize> {
        span(&self.ends, i)
    }

    /// `slot` when `hash` is another set's or the sets are at the cap.
    fn slot_slow(&mut self, key: [&str; 6], packed: &Packed, hash: u64, calls: u64) -> usize {
        if let Some(i) = self.find(&key, hash) {
            return i;
        }
        let mut key = key;
        let mut packed = *packed;
        let mut hash = hash;
        if self.label_sets() >= self.max_label_sets.saturating_sub(1) && key != OTHER {
            self.dropped_calls = self.dropped_calls.saturating_add(calls);
            key = OTHER;
            packed = Packed::of(&key);
            hash = set_hash(&key, &packed);
            if let Some(i) = self.find(&key, hash) {
                return i;
            }
        }
        let i = self.label_sets();
        match self.index.entry(hash) {
            Entry::Occupied(_) => self.collided.push(i),
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        self.push_set(key, &packed, hash);
        i
    }

    /// A new set `key` (whose pack is `packed`, hash `hash`) at the end, all its numbers
    /// zero; `index` is the caller's. A fitting set's texts are copied out of its pack in
    /// one piece.
    #[inline]
    fn push_set(&mut self, key: [&str; 6], packed: &Packed, hash: u64) {
        let keep = self.in_text(packed);
        if !keep {
            // A batch's fitting set: no text here, every end where the sets before end.
            let end = self.text.len();
            return self.push_ends([end; 6], hash, *packed);
        }
        let text = &mut self.text;
        let ends = key.map(|t| {
            if keep {
                text.push_str(t);
            }
            text.len()
        });
        self.push_ends(ends, hash, *packed);
    }

    /// A new set that fits `packed` (whose hash is `hash`) at the end, as `push_set` makes
    /// it: its texts copied out of the pack in one piece if they are kept in `text`.
    fn push_packed(&mut self, packed: Packed, hash: u64) {
        let base = self.text.len();
        let all = packed.text();
        let keep = self.in_text(&packed);
        if keep {
            self.text.push_str(all);
        }
        let lengths = packed.lengths();
        if lengths.iter().sum::<usize>() != all.len() {
            // Never: `text` reads every fitting pack. Were it refused, the set would be made
            // from its texts as read, consistently.
            self.text.truncate(base);
            return self.push_set(packed.key(), &packed, hash);
        }
        let mut end = base;
        let ends = lengths.map(|n| {
            if keep {
                end += n;
            }
            end
        });
        self.push_ends(ends, hash, packed);
    }

    /// The rest of a new set whose texts were just added to `text`, ending at `ends`.
    fn push_ends(&mut self, ends: [usize; 6], hash: u64, packed: Packed) {
        self.ends.push(ends);
        self.hashes.push(hash);
        self.packs.push(packed);
        self.sums.push(Sums::default());
        self.cells.push([NO_CELL; 2]);
        if let Histograms::Dense(sets) = &mut self.histograms {
            sets.push([0; SLOTS]);
        }
    }
}

/// Where set `i` of `ends` (an `Llm`'s) lies in its text: its six texts together (empty past
/// the end).
fn span(ends: &[[usize; 6]], i: usize) -> std::ops::Range<usize> {
    let start = i
        .checked_sub(1)
        .and_then(|j| ends.get(j))
        .map_or(0, |e| e[5]);
    start..ends.get(i).map_or(start, |e| e[5])
}

/// Whether set `i` of `text` and `ends` (an `Llm`'s) has the six texts `other` (together,
/// as another `Llm` keeps a set's) whose ends there are `other_ends`: the six lengths equal,
/// then one compare of bytes.
fn same_set(
    text: &str,
    ends: &[[usize; 6]],
    i: usize,
    other_ends: &[usize; 6],
    other: &str,
) -> bool {
    let (Some(mine), range) = (ends.get(i), span(ends, i)) else {
        return false;
    };
    let lengths = |e: &[usize; 6], start: usize| e.map(|end| end.wrapping_sub(start));
    let other_start = other_ends[5].wrapping_sub(other.len());
    lengths(mine, range.start) == lengths(other_ends, other_start)
        && text.as_bytes().get(range) == Some(other.as_bytes())
}

/// Whether set `i` of `packs` (an `Llm`'s) fits and is `packed`: for a fitting set, whether
/// it is that set (a set that does not fit is never `packed`, see `Packed`).
#[inline]
fn is_packed(packs: &[Packed], i: usize, packed: &Packed) -> bool {
    packed.fits() && packs.get(i).is_some_and(|p| p.same(packed))
}

/// Whether set `i` of `text` and `ends` (an `Llm`'s) is `key`, text by text, stopping at the
/// first that differs, without building the set's key. Apart from `Llm` so that `slot` can
/// ask while it holds an entry of the index.
#[inline]
fn is_set(text: &str, ends: &[[usize; 6]], i: usize, key: &[&str; 6]) -> bool {
    let Some(set) = ends.get(i) else {
        return false;
    };
    let text = text.as_bytes();
    let mut start = span(ends, i).start;
    for (&end, part) in set.iter().zip(key) {
        if text.get(start..end) != Some(part.as_bytes()) {
            return false;
        }
        start = end;
    }
    true
}

/// The buckets (offsets into a set's `Buckets`) a call of these duration and tokens falls
/// in: each slot is at most 14, so every offset is below `SLOTS` and fits a byte.
fn buckets_of(ms: u128, input: u128, output: u128) -> [u8; 3] {
    [
        duration_slot(ms),
        INPUT_AT + token_slot(input),
        OUTPUT_AT + token_slot(output),
    ]
    .map(|at| u8::try_from(at).unwrap_or(u8::MAX))
}

/// `n` more calls in each of the buckets `at` (an offset past the end counts nowhere).
fn count_at(buckets: &mut Buckets, at: [u8; 3], n: u64) {
    for a in at {
        if let Some(c) = buckets.get_mut(usize::from(a)) {
            *c = c.saturating_add(n);
        }
    }
}

/// The buckets of `sets` label sets, dense, made from calls kept one by one.
fn dense_of(calls: &[Call], sets: usize) -> Vec<Buckets> {
    let mut dense = vec![[0; SLOTS]; sets];
    for c in calls {
        if let Some(b) = dense.get_mut(c.set) {
            count_at(b, c.at, 1);
        }
    }
    dense
}

/// `src` added into `dst` from `start` on.
fn add_into(dst: &mut [u64], start: usize, src: &[u64]) {
    if let Some(d) = dst.get_mut(start..start + src.len()) {
        for (d, s) in d.iter_mut().zip(src) {
            *d = d.saturating_add(*s);
        }
    }
}

/// `bisect_left(DURATION_BOUNDS, ms / 1000)` in integers: the bounds are 10 * 2**k ms, and
/// `ms / 1000 > 10 * 2**k / 1000` in floats exactly when `ms > 10 * 2**k` (both sides are
/// rounded the same way, and a thousandth apart is far above the rounding), so the slot is
/// how many k have `2**k <= (ms - 1) / 10`: the bit length of that quotient, capped at the
/// +Inf slot (tested against the float bisection below).
fn duration_slot(ms: u128) -> usize {
    let q = u64::try_from(ms.saturating_sub(1)).map_or(u64::MAX, |n| n / 10);
    (64 - q.leading_zeros() as usize).min(DURATION_BOUNDS.len())
}

/// `bisect_left(TOKEN_BOUNDS, n)`: the bounds are 4**0..=4**13, so the slot is
/// ceil(log4(n)), capped at the +Inf slot (tested against the bisection below).
fn token_slot(n: u128) -> usize {
    // Counts fit a u64 (a u128's leading zeros took two counts and a select).
    let log2_ceil = match u64::try_from(n) {
        Ok(n) => 64 - n.saturating_sub(1).leading_zeros() as usize,
        Err(_) => 128 - n.saturating_sub(1).leading_zeros() as usize,
    };
    log2_ceil.div_ceil(2).min(TOKEN_BOUNDS.len())
}

/// `_text`: "" for None (or a missing key), else the value as text.
fn text(v: Option<&Value>) -> &str {
    match v {
        None | Some(Value::None) => "",
        Some(Value::Str(s)) => s,
        Some(Value::Int(t)) => t,
    }
}

/// `_int`: a non-negative int; negative, unparsable or missing values are 0. `#[inline]`, left
/// to the compiler, which calls it for three of `add_at`'s four numbers and inlines one
/// (callgrind, `Stream.feed` a record: 7,533 so; 7,555 with all four inlined, 7,543 with none).
#[inline]
fn number(v: Option<&Value>) -> u128 {
    let t = match v {
        Some(Value::Int(t)) => t.as_str(),
        Some(Value::Str(s)) => s.as_str(),
        None | Some(Value::None) => return 0,
    };
    match plain_digits(t.as_bytes()) {
        Some(n) => u128::from(n),
        None => number_text(t),
    }
}

/// 1-19 plain ASCII digits (the usual case: token counts and milliseconds), read as `int()`
/// reads them, leading zeros and all; they fit a u64. Up to eight (the bench's numbers have
/// 3-5) are read as one word (`short_digits`), more one multiply-add a digit. None for
/// anything else, which `number_text` reads.
#[inline]
fn plain_digits(t: &[u8]) -> Option<u64> {
    if t.len() <= 8 {
        return short_digits(t);
    }
    if t.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &b in t {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// `plain_digits` of 1-8 bytes without a step per digit (a byte loop cost ~9 instructions a
/// digit, ~190 for a call's four numbers): the bytes as the low lanes of one little-endian
/// word (two overlapping 4-byte loads, or 1-3 bytes placed), every lane checked to be a
/// digit at once, then the digits moved to the top lanes (the empty low ones read as
/// leading zeros) and combined pairwise in three multiplies: two digits a lane, four, eight.
#[inline]
fn short_digits(t: &[u8]) -> Option<u64> {
    let n = t.len();
    let w = match n {
        4..=8 => {
            let half = |at: usize| u64::from(word4(t, at).unwrap_or(0));
            // Lanes `n - 4..4` are read twice, the same byte both times.
            half(0) | half(n - 4) << (8 * (n - 4))
        }
        1..=3 => {
            let byte = |at: usize| u64::from(t.get(at).copied().unwrap_or(0)) << (8 * at);
            byte(0) | byte(n / 2) | byte(n - 1)
        }
        _ => return None,
    };
    let lanes = u64::MAX >> (64 - 8 * n);
    if non_digit_lanes(w) & lanes != 0 {
        return None;
    }
    // Each lane 0-9, the last digit in the top lane.
    let v = ((w ^ (LANE_ONES * 0x30)) & lanes) << (8 * (8 - n));
    // Pairs: lane k holds 10 * digit k + digit (k + 1), at most 99; read in lanes 0, 2, 4, 6.
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    // Fours and eights: the pairs of lanes 0 and 4, then of 2 and 6, weighted (10^6, 10^2;
    // 10^4, 1) and summed into the high half.
    const PAIRS: u64 = 0x0000_00FF_0000_00FF;
    let high = (v & PAIRS).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((v >> 16) & PAIRS).wrapping_mul(1 + (10_000 << 32));
    Some(high.wrapping_add(low) >> 32)
}

/// `number` of a text that is not 1-19 plain digits: up to 38 digits as a u128, else
/// through Python's `int` rules (`py_int`).
#[cold]
fn number_text(t: &str) -> u128 {
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
    fn set_hashes_follow_every_text() {
        let base = [
            "chat-app",
            "embedding",
            "qwen2.5-72b-instruct",
            "ws-19",
            "200",
            "",
        ];
        let copy = base.map(|t| t.to_string());
        assert_eq!(
            hash_strs(&base),
            hash_strs(&copy.each_ref().map(|t| t.as_str()))
        );
        // The lengths keep the texts apart: the same bytes cut elsewhere are another set.
        assert_ne!(
            hash_strs(&["ab", "c", "", "", "", ""]),
            hash_strs(&["a", "bc", "", "", "", ""])
        );
        let mut seen = std::collections::HashSet::new();
        for i in 0..6 {
            for text in [
                "",
                "a",
                "ab",
                "abc",
                "abcd",
                "abcde",
                "abcdefgh",
                "abcdefghi",
                "x",
            ] {
                let mut key = base;
                key[i] = text;
                seen.insert((key, hash_strs(&key)));
            }
        }
        let hashes: std::collections::HashSet<u64> = seen.iter().map(|s| s.1).collect();
        assert_eq!(hashes.len(), seen.len(), "no two of these sets collide");
        assert_ne!(
            hash_strs(&["ab", "", "c", "d", "e", "f"]),
            hash_strs(&["a", "b", "c", "d", "e", "f"])
        );
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
    fn token_slots_are_the_bisection_of_the_bounds() {
        let mut values: Vec<u128> = (0..300).collect();
        for b in TOKEN_BOUNDS {
            values.extend([b - 1, b, b + 1]);
        }
        values.extend([u128::from(u64::MAX), u128::MAX, 1 << 100]);
        for n in values {
            assert_eq!(
                token_slot(n),
                TOKEN_BOUNDS.partition_point(|b| *b < n),
                "{n}"
            );
        }
    }

    #[test]
    fn duration_slots_are_the_float_bisection() {
        let mut values: Vec<u128> = (0..2000).collect();
        for b in DURATION_BOUNDS {
            let ms = (b * 1000.0) as u128;
            values.extend([ms.saturating_sub(1), ms, ms + 1]);
        }
        for shift in [52, 53, 54, 63, 64, 65, 100, 127] {
            let p = 1u128 << shift;
            values.extend([p - 1, p, p + 1, p + 3]);
        }
        values.extend([u128::from(u64::MAX), u128::from(u64::MAX) + 1, u128::MAX]);
        for ms in values {
            let general = DURATION_BOUNDS.partition_point(|b| *b < ms as f64 / 1000.0);
            assert_eq!(duration_slot(ms), general, "{ms}");
        }
    }

    #[test]
    fn sets_are_told_apart_by_every_text() {
        let mut llm = Llm::new(100);
        let keys = [
            ["a", "b", "c", "d", "e", "f"],
            ["ab", "", "c", "d", "e", "f"],
            ["a", "b", "c", "d", "e", "g"],
            ["a", "b", "c", "d", "ef", ""],
            ["", "", "", "", "", ""],
        ];
        for key in keys {
            llm.slot(key, &Packed::of(&key), 7, 1); // one hash for all
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(llm.find(key, 7), Some(i));
            for (j, other) in keys.iter().enumerate() {
                assert_eq!(llm.is(i, other), i == j, "{i} {j}");
            }
        }
        assert!(!llm.is(keys.len(), &keys[0]));
    }

    /// A pack holds a set exactly: equal packs for equal sets only (the same bytes cut
    /// elsewhere, or one byte apart anywhere, differ), its texts read back as they were
    /// (multi-byte characters too), and a set past `PACKED_TEXT` bytes does not fit.
    #[test]
    fn packs_hold_sets_exactly() {
        let long = "x".repeat(PACKED_TEXT - 5);
        let keys: Vec<[&str; 6]> = vec![
            ["", "", "", "", "", ""],
            ["a", "", "", "", "", ""],
            ["", "", "", "", "", "a"],
            ["ab", "c", "", "", "", ""],
            ["a", "bc", "", "", "", ""],
            [
                "chat-app",
                "embedding",
                "qwen2.5-72b-instruct",
                "ws-19",
                "200",
                "",
            ],
            [
                "chat-app",
                "embedding",
                "qwen2.5-72b-instruct",
                "ws-19",
                "200",
                "x",
            ],
            [
                "chat-app",
                "embedding",
                "qwen2.5-72b-instructX",
                "ws-19",
                "200",
                "",
            ],
            [
                "chat-app",
                "embedding",
                "qwen2.5-72b-instrucu",
                "ws-19",
                "200",
                "",
            ],
            ["应用", "模块", "通义千问-max", "空间", "200", "错误"],
            ["other"; 6],
            [&long, "1", "2", "3", "4", ""],
            [&long, "1", "2", "3", "", "4"],
            [
                "abcdefghijklmnopq",
                "rstuvwxyz0123456789",
                "ABCDEFGH",
                "IJKLMNOP",
                "QRST",
                "",
            ],
        ];
        for (i, a) in keys.iter().enumerate() {
            let p = Packed::of(a);
            assert!(p.fits(), "{a:?}");
            assert_eq!(p.key(), *a);
            assert_eq!(p.text(), a.concat());
            assert_eq!(p.is_other(), *a == OTHER, "{a:?}");
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(p.same(&Packed::of(b)), i == j, "{a:?} {b:?}");
            }
        }
        let past = "x".repeat(PACKED_TEXT - 3);
        for key in [
            [&past, "1", "2", "3", "4", ""],
            [&*"y".repeat(300), "", "", "", "", ""],
        ] {
            let p = Packed::of(&key);
            assert!(!p.fits());
            assert_eq!(p, Packed::NONE);
            assert!(
                !is_packed(&[p], 0, &p),
                "a set that does not fit is found by its texts"
            );
            assert_eq!(set_hash(&key, &p), hash_strs(&key));
        }
        // Every length of one text, each byte checked.
        let text: String = (0..PACKED_TEXT)
            .map(|k| char::from(b'A' + (k % 26) as u8))
            .collect();
        for n in 0..=PACKED_TEXT {
            let key = ["", &text[..n], "", "", "", ""];
            let p = Packed::of(&key);
            assert_eq!(p.key(), key, "{n}");
            if n > 0 {
                let mut other = text[..n].to_string().into_bytes();
                other[n - 1] ^= 1;
                let other = String::from_utf8(other).unwrap();
                assert!(!p.same(&Packed::of(&["", &other, "", "", "", ""])), "{n}");
            }
        }
    }

    /// A batch keeps a fitting set in its pack alone; the totals it is merged into keep the
    /// texts; sets that do not fit stay in `text` in both; all read alike.
    #[test]
    fn sets_in_packs_read_and_merge_as_sets_in_text() {
        let long = "l".repeat(60);
        let keys: [[&str; 6]; 4] = [
            ["a", "b", "c", "d", "e", "f"],
            [&long, "b", "c", "d", "e", "f"],
            ["应用", "", "", "", "", ""],
            ["a", "b", "c", "d", "e", "f2"],
        ];
        let mut batch = Llm::for_batch(100);
        let mut plain = Llm::new(100);
        for llm in [&mut batch, &mut plain] {
            for (n, key) in keys.iter().chain(keys.iter().rev()).enumerate() {
                let fields: Vec<(Key, Value)> = ["app", "module", "model", "workspace"]
                    .iter()
                    .zip(key.iter())
                    .map(|(k, v)| (Key::from(*k), Value::Str(v.to_string())))
                    .chain([
                        (Key::from("status_code"), Value::Int(key[4].to_string())),
                        (Key::from("error_code"), Value::Str(key[5].to_string())),
                    ])
                    .collect();
                llm.add(&fields, "llm_call", Some(60 * n as i64));
            }
        }
        assert_eq!(batch.text, format!("{long}bcdef"));
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(batch.key(i), *key);
            assert_eq!(plain.key(i), *key);
            assert_eq!(batch.find(key, set_hash(key, &Packed::of(key))), Some(i));
        }
        assert_eq!(rows(&batch), rows(&plain));
        let mut total = Llm::new(100);
        total.merge(&batch, true);
        total.merge(&plain, true);
        let mut twice = Llm::new(100);
        twice.merge(&plain, true);
        twice.merge(&plain, true);
        assert_eq!(rows(&total), rows(&twice));
        assert_eq!(total.minutes, twice.minutes);
        assert_eq!(total.text, twice.text);
    }

    #[test]
    fn roles_are_names_of_places_from_roles_on() {
        assert_eq!(NAMES[..], crate::places::NAMES[ROLES..ROLES + NAMES.len()]);
    }

    /// The word-at-a-time digits read every text of 1-8 bytes as a digit loop does: all
    /// numbers of up to five digits, leading zeros, the largest, and every position holding
    /// a byte that is no digit (the neighbours of the digits' range among them).
    #[test]
    fn short_digits_are_the_digit_loop() {
        let by_loop = |t: &[u8]| -> Option<u64> {
            if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(t).ok()?.parse().ok()
        };
        let mut texts: Vec<Vec<u8>> = (0..100_000u32).map(|n| n.to_string().into()).collect();
        for t in [
            "00", "007", "0000000", "00000001", "99999999", "12345678", "10000000",
        ] {
            texts.push(t.into());
        }
        let base = b"98765432";
        for n in 1..=8 {
            for at in 0..n {
                for b in [0u8, b' ', b'/', b':', b'-', b'a', 0x7f, 0x80, 0xb0, 0xff] {
                    let mut t = base[..n].to_vec();
                    t[at] = b;
                    texts.push(t);
                }
            }
        }
        texts.push(Vec::new());
        for t in &texts {
            assert_eq!(short_digits(t), by_loop(t), "{t:?}");
        }
    }

    #[test]
    fn numbers_read_digits_as_int_does() {
        let n = |t: &str| number(Some(&Value::Str(t.into())));
        assert_eq!(n("0012"), 12);
        assert_eq!(n("9999999999999999999"), 9_999_999_999_999_999_999);
        assert_eq!(n("18446744073709551616"), 1 << 64);
        assert_eq!(n("1_000"), 1000);
        assert_eq!(n("-5"), 0);
        assert_eq!(n("1a"), 0);
        assert_eq!(n(""), 0);
    }

    /// `merge` of batches equals `add`ing their records into one aggregate when no cap is
    /// hit (the Python differential tests cover the caps against `LlmAggregate.merge`).
    #[test]
    fn merged_batches_count_like_one_aggregate() {
        let mut one = Llm::new(2000);
        let mut total = Llm::new(2000);
        for batch in 0..5 {
            // Batches of both kinds of histograms merge alike.
            let mut part = if batch % 2 == 0 {
                Llm::for_batch(2000)
            } else {
                Llm::new(2000)
            };
            for n in 0..40 {
                let fields = vec![
                    (
                        Key::from("app"),
                        Value::Str(format!("a{}", (n * 7 + batch) % 9)),
                    ),
                    (Key::from("input_tokens"), Value::Int(format!("{}", n * 37))),
                    (Key::from("duration_ms"), Value::Int(format!("{}", n * 113))),
                ];
                let event = if n % 11 == 0 { "feedback" } else { "llm_call" };
                part.add(&fields, event, Some(n * 17));
                one.add(&fields, event, Some(n * 17));
            }
            total.merge(&part, true);
        }
        assert_eq!(rows(&total), rows(&one));
        assert_eq!(total.feedback, one.feedback);
        let cells = |a: &Llm| {
            let mut c: Vec<_> = a
                .minutes
                .iter()
                .map(|&(i, m, n, t)| (a.key(i).map(str::to_string), m, n, t))
                .collect();
            c.sort();
            c
        };
        assert_eq!(cells(&total), cells(&one));
    }

    /// Each set's key, sums and duration, input and output buckets, sorted by key.
    fn rows(a: &Llm) -> Vec<([String; 6], Sums, [Vec<u64>; 3])> {
        let [d, inp, out] = a.bucket_columns();
        let mut rows: Vec<_> = (0..a.label_sets())
            .map(|i| {
                let span = |c: &[u64], w: usize| c[i * w..(i + 1) * w].to_vec();
                (
                    a.key(i).map(str::to_string),
                    a.sums()[i],
                    [
                        span(&d, DURATION_SLOTS),
                        span(&inp, TOKEN_SLOTS),
                        span(&out, TOKEN_SLOTS),
                    ],
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// Records of `sets` label sets (by app and model), some numbers missing or past the
    /// buckets, over a few minutes.
    fn records(n: i64, sets: i64) -> Vec<(Vec<(Key, Value)>, i64)> {
        (0..n)
            .map(|r| {
                let fields = vec![
                    (Key::from("app"), Value::Str(format!("a{}", r % sets))),
                    (Key::from("model"), Value::Str(format!("m{}", r % 3))),
                    (
                        Key::from("input_tokens"),
                        Value::Int(format!("{}", r * r * 997)),
                    ),
                    (
                        Key::from("output_tokens"),
                        Value::Int(format!("{}", r * 31)),
                    ),
                    (
                        Key::from("duration_ms"),
                        Value::Int(format!("{}", r * r * 89)),
                    ),
                ];
                (fields, r * 23)
            })
            .collect()
    }

    /// A batch's aggregate (calls kept one by one) reads as the dense one of the same
    /// records: the same sets in the same order, sums, buckets, cells and caps.
    #[test]
    fn batch_aggregates_read_as_dense_ones() {
        for cap in [3, 2000] {
            let mut batch = Llm::for_batch(cap);
            let mut dense = Llm::new(cap);
            for (fields, t) in records(300, 40) {
                batch.add(&fields, "llm_call", Some(t));
                dense.add(&fields, "llm_call", Some(t));
            }
            assert_eq!(batch.bucket_columns(), dense.bucket_columns());
            assert_eq!(batch.sums(), dense.sums());
            assert_eq!(batch.minutes, dense.minutes);
            assert_eq!(batch.dropped_calls, dense.dropped_calls);
            assert_eq!(
                (0..batch.label_sets())
                    .map(|i| batch.key(i))
                    .collect::<Vec<_>>(),
                (0..dense.label_sets())
                    .map(|i| dense.key(i))
                    .collect::<Vec<_>>()
            );
            assert_eq!(
                batch.bucket_columns()[0].iter().sum::<u64>(),
                300,
                "one duration bucket a call"
            );
        }
    }

    /// Merging into a batch's aggregate (which then holds its buckets densely) counts as
    /// merging into a dense one.
    #[test]
    fn batch_aggregates_take_merges() {
        let mut batch = Llm::for_batch(2000);
        let mut dense = Llm::new(2000);
        let mut part = Llm::for_batch(2000);
        for (fields, t) in records(200, 30) {
            batch.add(&fields, "llm_call", Some(t));
            dense.add(&fields, "llm_call", Some(t));
        }
        for (fields, t) in records(90, 50) {
            part.add(&fields, "llm_call", Some(t + 7));
        }
        batch.merge(&part, true);
        dense.merge(&part, true);
        assert_eq!(rows(&batch), rows(&dense));
        assert_eq!(batch.minutes, dense.minutes);
        for (fields, t) in records(10, 60) {
            batch.add(&fields, "llm_call", Some(t));
            dense.add(&fields, "llm_call", Some(t));
        }
        assert_eq!(rows(&batch), rows(&dense));
    }

    /// `merge_window`'s cells: by the model and workspace of the set each counts under in
    /// the total (OTHER's past the cap), summed, minutes outside the window left out.
    #[test]
    fn windows_show_the_sets_the_total_counts_them_under() {
        let mut total = Llm::new(3);
        let mut part = Llm::for_batch(2000);
        let call = |app: &str, model: &str, tokens: &str| {
            vec![
                (Key::from("app"), Value::Str(app.into())),
                (Key::from("model"), Value::Str(model.into())),
                (Key::from("workspace"), Value::Str("w".into())),
                (Key::from("total_tokens"), Value::Int(tokens.into())),
            ]
        };
        part.add(&call("a", "m1", "5"), "llm_call", Some(600));
        part.add(&call("b", "m2", "7"), "llm_call", Some(600));
        part.add(&call("c", "m3", "11"), "llm_call", Some(660));
        part.add(&call("d", "m4", "13"), "llm_call", Some(600));
        part.add(&call("a", "m1", "17"), "llm_call", Some(6000));
        let cells = total.merge_window(&part, 10, 11);
        let o =
            |m: &str, w: &str, minute, calls, tokens| (m.into(), w.into(), minute, calls, tokens);
        assert_eq!(
            cells,
            vec![
                o("m1", "w", 10, 1, 5),
                o("m2", "w", 10, 1, 7),
                o("other", "other", 11, 1, 11),
                o("other", "other", 10, 1, 13),
            ]
        );
        assert_eq!(total.label_sets(), 3);
        assert_eq!(total.dropped_calls, 2);
        assert!(total.minutes.is_empty());
    }

    /// A merge compares a set by its six lengths and its texts together: sets whose texts
    /// run together alike but split differently stay apart, even under one hash.
    #[test]
    fn merges_tell_sets_apart_by_every_length() {
        let keys = [
            ["ab", "", "c", "d", "e", "f"],
            ["a", "b", "c", "d", "e", "f"],
            ["a", "b", "c", "d", "", "ef"],
        ];
        let mut total = Llm::new(100);
        total.slot(keys[0], &Packed::of(&keys[0]), 7, 1);
        total.sums[0].calls = 1;
        let mut part = Llm::for_batch(100);
        for key in keys {
            part.slot(key, &Packed::of(&key), 7, 1); // one hash for all
        }
        for sums in &mut part.sums {
            sums.calls = 1;
        }
        assert_eq!(total.merge_sets(&part), vec![0, 1, 2]);
        assert_eq!(total.merge_sets(&part), vec![0, 1, 2]);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(total.key(i), *key);
            assert_eq!(total.sums[i].calls, if i == 0 { 3 } else { 2 });
        }
    }

    /// The minute cells found through each set's first and latest cell (and the map for the
    /// rest) are the ones a lookup by (set, minute) alone gives, in the same order, under
    /// every cap.
    #[test]
    fn minute_cells_are_found_as_by_their_key() {
        for cap in [0, 1, 3, 7, 1000] {
            let mut llm = Llm::with_caps(100, cap);
            for s in 0..5 {
                let key = [["a", "b", "c", "d", "e"][s]; 6];
                llm.slot(key, &Packed::of(&key), s as u64, 1);
            }
            let mut want: Vec<(usize, i64, u64, u128)> = Vec::new();
            let mut dropped = 0;
            let mut r: u64 = 7;
            for n in 0..400u64 {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (set, minute) = ((r >> 33) as usize % 5, (r >> 41) as i64 % 4);
                llm.add_minute(set, minute, 1, u128::from(n));
                let full = want.len() >= cap;
                match want.iter_mut().find(|c| c.0 == set && c.1 == minute) {
                    Some(c) => {
                        c.2 += 1;
                        c.3 += u128::from(n);
                    }
                    None if full => dropped += 1,
                    None => want.push((set, minute, 1, u128::from(n))),
                }
            }
            assert_eq!(llm.minutes, want, "cap {cap}");
            assert_eq!(llm.dropped_minutes, dropped, "cap {cap}");
        }
    }

    #[test]
    fn sets_whose_hashes_collide_are_told_apart() {
        let mut llm = Llm::new(10);
        let keys = [["a"; 6], ["b"; 6], ["c"; 6]];
        for key in keys {
            llm.slot(key, &Packed::of(&key), 42, 1); // one hash for all three
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(llm.find(key, 42), Some(i));
            assert_eq!(llm.slot(*key, &Packed::of(key), 42, 1), i);
        }
        assert_eq!(llm.find(&["d"; 6], 42), None);
        assert_eq!(llm.label_sets(), 3);
    }

    #[test]
    fn label_sets_past_the_cap_go_to_other() {
        let mut llm = Llm::new(2);
        for app in ["a", "b", "c", "a"] {
            let fields = vec![(Key::from("app"), Value::Str(app.into()))];
            llm.add(&fields, "llm_call", Some(120));
        }
        assert_eq!(llm.label_sets(), 2);
        assert_eq!(llm.key(0), ["a", "", "", "", "", ""]);
        assert_eq!(llm.key(1), OTHER);
        let calls: Vec<u128> = llm.sums().iter().map(|s| s.calls).collect();
        assert_eq!(calls, vec![2, 2]);
        assert_eq!(llm.dropped_calls, 2);
        assert_eq!(llm.minutes, vec![(0, 2, 2, 0), (1, 2, 2, 0)]);
    }
}
