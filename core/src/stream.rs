//! The engine's Stream (docs/engine.md): bytes of one file in, sealed batches out. Framing,
//! parsing, wall-clock stamping, the time window, encoding and the batch limits follow the
//! Python engine (agent/engine/pystream.py, batch.py) rule for rule.

use crate::encode::{loggroup, ndjson, KeyCache};
use crate::llm::Llm;
use crate::mask::{MaskSettings, Masker};
use crate::multiline::{Assembler, Frame};
use crate::payload::{Key, Value};
use crate::places::{self, Layouts, Places};
use crate::record::{ParserSettings, RecordParser, SettingsError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub const MAX_ERROR_EXAMPLES: usize = 20;
/// What a batch's buffer reserves beyond `max_bytes` for the LogGroup trailer (topic, source,
/// tags): a larger trailer only costs a regrowth.
const TRAILER_ROOM: usize = 4096;
const INTERNAL_ERROR: &str = "internal parser error";

/// The form records take in a batch's `data` (agent.engine.stream.Wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    LogGroup,
    Ndjson,
    /// No bytes at all: for the modes that read only a batch's counters (`validate` and
    /// `report` without `--records`). Batches then seal by `max_records` alone.
    Count,
}

/// Everything a Stream depends on (agent.engine.stream.StreamSettings).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub parser: ParserSettings,
    pub wire: Wire,
    pub max_records: usize,
    pub max_bytes: usize,
    pub linger: f64,
    pub partial_after: f64,
    pub pending_after: f64,
    pub topic: String,
    pub source: String,
    pub hostname: String,
    pub tags: Vec<(String, String)>,
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// Label sets an LLM aggregate holds at most (OTHER included).
    pub max_label_sets: usize,
    /// Secrets and personal data masked before encoding (crate::mask); None: off.
    pub mask: Option<MaskSettings>,
}

/// A sealed batch: records of one file, encoded, with their counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sealed {
    pub path: String,
    pub end: u64,
    pub records: u64,
    pub raw_bytes: u64,
    /// LogGroup wire: the whole LogGroup, its `Logs` entries then the trailer (one buffer, so
    /// the sender posts it without joining); NDJSON: whole lines; count: empty.
    pub data: Vec<u8>,
    /// LogGroup wire: Topic, Source and LogTags, also at the end of `data` (splits and
    /// restamps rebuild a group from the logs and this).
    pub trailer: Vec<u8>,
    pub bounds: Vec<u8>,
    pub times: Vec<u8>,
    pub min_time: i64,
    pub max_time: i64,
    pub pack_seq: u64,
    pub events: Vec<(String, u64)>,
    pub parse_errors: u64,
    pub internal_errors: u64,
    pub error_examples: Vec<(u64, String)>,
    pub skipped_before: u64,
    pub skipped_after: u64,
    pub first: Option<(i128, String)>,
    pub last: Option<(i128, String)>,
    /// Its llm_call and feedback records, aggregated (crate::llm).
    pub llm: Option<Llm>,
    /// Values masked, by rule, in first-seen order.
    pub masked: Vec<(String, u64)>,
}

/// A record's fields and where its named fields are among them (crate::places).
#[derive(Clone, Copy)]
struct Placed<'a> {
    fields: &'a [(Key, Value)],
    places: &'a Places,
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::None) => String::new(),
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(t)) => t.clone(),
    }
}

impl Drop for Recycler {
    /// Its Stream is gone (buffers still in flight hold only a weak reference: they are freed
    /// when they come back).
    fn drop(&mut self) {
        self.release();
    }
}

/// Capacity all Streams' spares hold together, with the bytes written into the kept lz4
/// output buffers (crate::lz4), and its bound (`Recycler`).
static SPARE_BYTES: AtomicUsize = AtomicUsize::new(0);
static SPARE_LIMIT: AtomicUsize = AtomicUsize::new(8 << 20); // half the default in-flight bound

/// The bound on all spares together: the agent sets it to half of `max_in_flight_bytes` and
/// counts what they hold against that bound (agent/modes/pipeline.py).
pub fn set_spare_limit(bytes: usize) {
    SPARE_LIMIT.store(bytes, Ordering::Relaxed);
}

/// Capacity held by all spares now (tests, metrics).
pub fn spare_bytes() -> usize {
    SPARE_BYTES.load(Ordering::Relaxed)
}

/// `more` bytes counted in the spares if that stays within the limit (the Recycler's spares
/// and the lz4 output buffers, crate::lz4, share it).
pub(crate) fn reserve_spare(more: usize) -> bool {
    let limit = SPARE_LIMIT.load(Ordering::Relaxed);
    SPARE_BYTES
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            held.checked_add(more).filter(|&n| n <= limit)
        })
        .is_ok()
}

/// `less` bytes no longer counted in the spares (what `reserve_spare` counted).
pub(crate) fn unreserve_spare(less: usize) {
    SPARE_BYTES.fetch_sub(less, Ordering::Relaxed);
}

/// The open batch of one Stream (agent/engine/batch.py `BatchBuilder`).
#[derive(Debug)]
struct Builder {
    open: Sealed,
    started: Option<f64>,
    path: String,
    prefix: String,
    next_seq: u64,
    closing: Vec<u8>,
    /// The last sealed batch's sizes (data bytes, records): what the next one reserves.
    last_size: (usize, usize),
    /// The label sets and minute cells (all, and those keyed by their minute) of the last
    /// sealed batch's LLM aggregate: what the next one reserves.
    last_llm_sets: usize,
    last_llm_minutes: (usize, usize),
    /// The index in the open batch's `events` of the last record's event (records mostly
    /// have the event of the one before).
    last_event: usize,
    /// When bytes were last fed (`now`); None: not since the spare was last released.
    fed_at: Option<f64>,
}

/// Where a handed-over batch's buffer comes back to, for the Stream's next batch to encode
/// into: pages already mapped and written once, where a fresh megabyte buffer is mmapped
/// (agent/ops/malloc.py) and faults in every page as it is written (1.8 ms per MB of log).
/// The binding moves a LogGroup batch's buffer into Python without a copy; it comes back here
/// when the sender has let go of it, from the sender's thread, hence the lock (taken for a
/// push or a pop, once per batch on each side).
///
/// Several are kept: the senders finish batches of one file in bursts (four senders, several
/// batches in flight), and with room for one, the second buffer of a burst was freed and a
/// later batch encoded into fresh pages (bench_e2e: 300 of the 555 page faults per MB of log
/// were the LogGroup buffer's).
///
/// Bounds: at most `SPARES` buffers of at most twice the batch limit each per Stream, kept
/// only while its file is being read (fed within the last `linger`); a buffer that comes back
/// to a Stream that is quiet, drained or gone is freed. And all Streams' spares together hold
/// at most `set_spare_limit` bytes of capacity, which the agent counts in its in-flight bound:
/// a thousand files read at once keep no more than that bound allows.
#[derive(Debug)]
pub struct Recycler {
    spares: Mutex<Vec<Vec<u8>>>,
    wanted: AtomicBool,
    bound: usize,
}

/// Buffers one Stream keeps at most: the default in-flight bound (16 MiB) holds about eight
/// 2 MB batches, and a ninth is being filled when they come back (the agent's spare limit,
/// 1.25 times the bound, holds them all: agent/delivery/dispatch.py).
const SPARES: usize = 8;

impl Recycler {
    fn new(bound: usize) -> Recycler {
        Recycler {
            spares: Mutex::new(Vec::with_capacity(SPARES)),
            wanted: AtomicBool::new(false),
            bound,
        }
    }

    /// A batch's buffer back: kept if the Stream wants one, there is a place for it and it is
    /// within both bounds; otherwise freed.
    pub fn give(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if !self.wanted.load(Ordering::Relaxed) || cap == 0 || cap > self.bound {
            return;
        }
        let mut spares = lock(&self.spares);
        // Asked again under the lock: a `release` that ran between the first look and the
        // lock (it clears `wanted` before it locks) must not find a buffer put back after it.
        if self.wanted.load(Ordering::Relaxed) && spares.len() < SPARES && reserve_spare(cap) {
            buf.clear();
            spares.push(buf);
            return;
        }
        drop(spares);
        drop(buf); // freed outside the lock
    }

    /// The buffer given back last (its pages are the likeliest still in the cache), or an
    /// empty one.
    fn take(&self) -> Vec<u8> {
        let buf = lock(&self.spares).pop().unwrap_or_default();
        unreserve_spare(buf.capacity());
        buf
    }

    /// Nothing kept, and nothing taken back until `want`.
    fn release(&self) {
        self.wanted.store(false, Ordering::Relaxed);
        let held = std::mem::take(&mut *lock(&self.spares));
        let bytes: usize = held.iter().map(Vec::capacity).sum();
        unreserve_spare(bytes);
        drop(held);
    }

    fn want(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// Capacity of the buffers held (tests).
    pub fn held(&self) -> usize {
        lock(&self.spares).iter().map(Vec::capacity).sum()
    }
}

/// One file read from `offset`.
#[derive(Debug)]
pub struct Stream {
    s: StreamSettings,
    /// Shared by the engine's Streams with the same parser settings (`SharedParser`).
    parser: SharedParser,
    asm: Assembler,
    b: Builder,
    side: i8,
    masker: Option<Arc<Masker>>,
    /// Each key's encoded form, worked out once (crate::encode::KeyCache).
    keys: KeyCache,
    /// Handed-over buffers come back here (shared with the binding's LogGroup buffers).
    recycler: Arc<Recycler>,
    /// Where the named fields are in each layout of record seen (crate::places).
    layouts: Layouts,
    /// The places of the last two `Record::layout`s seen (the parser's two reused records):
    /// a record of either has them without a look at its keys.
    recent: [(u64, Places); 2],
    /// How many frames the last feed made: the next one's frames are reserved at once rather
    /// than grown a dozen times over a megabyte chunk (at most `FRAMES_HINT_MAX`).
    frames_hint: usize,
}

/// The most frames a feed reserves ahead (~1 MiB of `Frame`s); more only grow as before.
const FRAMES_HINT_MAX: usize = 16 << 10;

impl Stream {
    /// `parser`: the compiled parser of `settings.parser`, shared with the other Streams of
    /// the same settings (`shared_parser`); None: one of its own.
    pub fn new(
        settings: StreamSettings,
        parser: Option<SharedParser>,
        path: String,
        offset: u64,
        pack_prefix: String,
        pack_seq: u64,
    ) -> Result<Stream, SettingsError> {
        let parser = match parser {
            Some(p) if lock(&p).settings == settings.parser => p,
            Some(_) => {
                return Err(SettingsError::Value(
                    "the shared parser was compiled for other settings".to_string(),
                ))
            }
            None => shared_parser(settings.parser.clone())?,
        };
        if settings.max_records < 1 || settings.max_bytes < 1 {
            return Err(SettingsError::Value(
                "max_records and max_bytes must be positive".to_string(),
            ));
        }
        let asm = lock(&parser).assembler(offset);
        let masker = match &settings.mask {
            Some(m) => crate::mask::shared(m).map_err(SettingsError::Value)?,
            None => None,
        };
        let bound = settings
            .max_bytes
            .saturating_add(TRAILER_ROOM)
            .saturating_mul(2);
        Ok(Stream {
            s: settings,
            parser,
            asm,
            b: Builder {
                open: Sealed::default(),
                started: None,
                path,
                prefix: pack_prefix,
                next_seq: pack_seq,
                closing: Vec::new(),
                last_size: (0, 0),
                last_llm_sets: 0,
                last_llm_minutes: (0, 0),
                last_event: 0,
                fed_at: None,
            },
            side: 0,
            masker,
            keys: KeyCache::new(),
            recycler: Arc::new(Recycler::new(bound)),
            layouts: Layouts::default(),
            recent: [(0, Places::default()); 2],
            frames_hint: 0,
        })
    }

    pub fn offset(&self) -> u64 {
        self.asm.offset()
    }

    pub fn wire(&self) -> Wire {
        self.s.wire
    }

    pub fn pending_bytes(&self) -> u64 {
        self.asm.pending_bytes()
    }

    pub fn next_pack_seq(&self) -> u64 {
        self.b.next_seq
    }

    pub fn rename(&mut self, path: String) {
        self.b.path = path;
    }

    /// When `due` will next seal by linger (None: no open batch).
    pub fn next_due(&self) -> Option<f64> {
        self.b.started.map(|t| t + self.s.linger)
    }

    pub fn feed(&mut self, data: &[u8], now: f64, wall: f64) -> Vec<Sealed> {
        let mut frames = Vec::with_capacity(self.frames_hint);
        self.asm.feed(data, now, &mut frames);
        self.frames_hint = frames.len().min(FRAMES_HINT_MAX);
        if self.b.fed_at.is_none() {
            self.recycler.want();
        }
        self.b.fed_at = Some(now);
        self.add_frames(frames, now, wall)
    }

    pub fn due(&mut self, now: f64, wall: f64, caught_up: bool) -> Vec<Sealed> {
        let mut out = Vec::new();
        if caught_up {
            let mut frames = Vec::new();
            self.asm
                .due(now, self.s.partial_after, self.s.pending_after, &mut frames);
            out = self.add_frames(frames, now, wall);
        }
        if let Some(started) = self.b.started {
            if now - started >= self.s.linger {
                out.push(self.seal());
            }
        }
        if self.b.fed_at.is_some_and(|at| now - at >= self.s.linger) {
            // Nothing read for a linger: the file is quiet, or its reading is paused (the
            // output is behind): the spare is given back rather than held. (Not at the first
            // `due` without a feed: a reader held back by the in-flight bound skips a turn or
            // two between reads, and the buffer coming back is the one it needs next.)
            self.b.fed_at = None;
            self.recycler.release();
        }
        out
    }

    pub fn drain(&mut self, wall: f64) -> Vec<Sealed> {
        let mut frames = Vec::new();
        self.asm.drain(&mut frames);
        let mut out = self.add_frames(frames, 0.0, wall);
        out.extend(self.cut());
        self.b.fed_at = None;
        self.recycler.release(); // the end of the file
        out
    }

    /// A sealed batch's `data` back once the binding has copied it out (NDJSON), for the next
    /// batch to encode into (`Recycler`).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.recycler.give(buf);
    }

    /// Where the buffers of batches handed over without a copy come back to: a LogGroup
    /// batch's buffer travels to the sender and returns here when it is done with it.
    pub fn recycler(&self) -> Arc<Recycler> {
        Arc::clone(&self.recycler)
    }

    pub fn cut(&mut self) -> Vec<Sealed> {
        if self.b.started.is_none() {
            return Vec::new();
        }
        vec![self.seal()]
    }

    pub fn flush_pending(&mut self, wall: f64) -> Vec<Sealed> {
        self.drain(wall)
    }

    fn add_frames(&mut self, frames: Vec<Frame>, now: f64, wall: f64) -> Vec<Sealed> {
        let mut out = Vec::new();
        let mut stamp: Option<(i64, u32)> = None;
        let windowed = self.s.since.is_some() || self.s.until.is_some();
        let shared = Arc::clone(&self.parser);
        let mut parser = lock(&shared);
        // Out of `self` while the records are added, so a record's places are borrowed from
        // it rather than copied (`places`).
        let mut recent = self.recent;
        for frame in frames {
            // Parsed into the parser's reused record: no allocation per field once warm.
            let record = if self.s.wire == Wire::Count {
                parser.parse_counted(&frame)
            } else {
                parser.parse_next(&frame)
            };
            let own = record.time.is_some();
            let (t, ns) = match record.time {
                Some(t) => (t, record.time_ns),
                None => *stamp.get_or_insert_with(|| wall_stamp(wall)),
            };
            if windowed {
                let side = self.window_side(&record.fields, t, ns);
                if side != 0 {
                    self.skip(side > 0, frame.end, frame.size, now);
                    continue;
                }
            }
            // Where the names masking, the counters and the LLM aggregate read are: one pass.
            let places = places(
                &mut recent,
                &mut self.layouts,
                record.layout,
                &record.fields,
            );
            let masked = match &self.masker {
                Some(m) => m.mask_fields_at(&mut record.fields, places),
                None => Vec::new(),
            };
            let record = Placed {
                fields: &record.fields,
                places,
            };
            self.add(record, t, ns, own, &frame, now, masked, &mut out);
        }
        self.recent = recent;
        out
    }

    fn window_side(&mut self, fields: &[(Key, Value)], t: i64, ns: u32) -> i8 {
        if fields.iter().any(|(k, _)| &**k == "__raw_log__") {
            return self.side;
        }
        let when = t as f64 + f64::from(ns) / 1e9;
        let mut side = 0;
        if self.s.since.is_some_and(|s| when < s) {
            side = -1;
        }
        if self.s.until.is_some_and(|u| when >= u) {
            side = 1;
        }
        self.side = side;
        side
    }

    fn open(&mut self, now: f64) {
        self.b.started = Some(now);
        self.b.open.path = self.b.path.clone();
        // Room for what the last batch held and a sixteenth more, its trailer included
        // (bounded by the batch limits), reserved exactly: batches of a file differ by a few
        // percent, and one that outgrew a buffer reserved to the byte doubled it (Vec's
        // growth): megabytes of fresh pages, and a spare too big to keep beside the others.
        let (bytes, records) = self.b.last_size;
        let o = &mut self.b.open;
        if o.data.capacity() == 0 {
            o.data = self.recycler.take();
        }
        let room = bytes.saturating_add(bytes / 16);
        o.data
            .reserve_exact(room.min(self.s.max_bytes.saturating_add(TRAILER_ROOM)));
        o.bounds.reserve(records.min(self.s.max_records) * 4);
        o.times.reserve(records.min(self.s.max_records) * 4);
        if self.s.wire == Wire::Ndjson {
            let tags = self.envelope_tags(&self.b.open.path, self.b.next_seq);
            let extra = ndjson::envelope(&self.s.topic, &self.s.source, &tags);
            self.b.closing = ndjson::envelope_closing(&extra);
        }
    }

    fn envelope_tags(&self, path: &str, seq: u64) -> Vec<(String, String)> {
        let mut tags = vec![
            ("__hostname__".to_string(), self.s.hostname.clone()),
            ("__path__".to_string(), path.to_string()),
            (
                "__pack_id__".to_string(),
                format!("{}-{seq:X}", self.b.prefix),
            ),
        ];
        tags.extend(self.s.tags.iter().cloned());
        tags
    }

    /// Appends the record's encoding to the open batch's data; returns its length.
    fn encode(&mut self, fields: &[(Key, Value)], t: i64, ns: u32) -> usize {
        let out = &mut self.b.open.data;
        let start = out.len();
        match self.s.wire {
            Wire::Ndjson => {
                ndjson::encode_line_cached(out, fields, t, ns, &self.b.closing, &mut self.keys);
            }
            Wire::LogGroup => loggroup::encode_log_cached(out, fields, t, ns, &mut self.keys),
            Wire::Count => {}
        }
        out.len() - start
    }

    fn skip(&mut self, after: bool, end: u64, size: u64, now: f64) {
        if self.b.started.is_none() {
            self.open(now);
        }
        if after {
            self.b.open.skipped_after += 1;
        } else {
            self.b.open.skipped_before += 1;
        }
        self.b.open.end = end;
        self.b.open.raw_bytes += size;
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        record: Placed<'_>,
        t: i64,
        ns: u32,
        own: bool,
        frame: &Frame,
        now: f64,
        masked: Vec<(String, u64)>,
        out: &mut Vec<Sealed>,
    ) {
        if self.b.started.is_none() {
            self.open(now);
        }
        let Placed { fields, places } = record;
        // Encoded straight into the batch; taken back out if it must open the next batch.
        let start = self.b.open.data.len();
        let size = self.encode(fields, t, ns);
        if self.b.open.records > 0 && start + size > self.s.max_bytes {
            self.b.open.data.truncate(start);
            out.push(self.seal());
            self.open(now);
            self.encode(fields, t, ns);
        }
        let o = &mut self.b.open;
        o.records += 1;
        let n = u32::try_from(o.data.len()).unwrap_or(u32::MAX);
        o.bounds.extend_from_slice(&n.to_le_bytes());
        o.times
            .extend_from_slice(&((t as u64 & 0xFFFF_FFFF) as u32).to_le_bytes());
        if o.records == 1 {
            o.min_time = t;
            o.max_time = t;
        } else if t < o.min_time {
            o.min_time = t;
        } else if t > o.max_time {
            o.max_time = t;
        }
        o.end = frame.end;
        o.raw_bytes += frame.size;
        // The keys every record is counted by (the last of each name).
        let event = places.last(fields, places::EVENT);
        let error = places.last(fields, places::PARSE_ERROR);
        let time = places.last(fields, places::TIME);
        let kind = match event {
            Some(Value::Str(s)) => s.as_str(),
            _ => "raw",
        };
        match o.events.get_mut(self.b.last_event) {
            Some(slot) if slot.0 == kind => slot.1 += 1,
            _ => match o
                .events
                .iter_mut()
                .enumerate()
                .find(|(_, (k, _))| k == kind)
            {
                Some((i, slot)) => {
                    slot.1 += 1;
                    self.b.last_event = i;
                }
                None => {
                    self.b.last_event = o.events.len();
                    o.events.push((kind.to_string(), 1));
                }
            },
        }
        if let Some(reason) = error.filter(|v| **v != Value::None) {
            let reason = text_of(Some(reason));
            o.parse_errors += 1;
            if reason.starts_with(INTERNAL_ERROR) {
                o.internal_errors += 1;
            }
            if o.error_examples.len() < MAX_ERROR_EXAMPLES {
                o.error_examples.push((frame.line_no, reason));
            }
        }
        if own {
            // The time's text is copied only when the record is the batch's first or last yet,
            // into the String already there (times mostly rise: `last` moves on every record).
            let text = match time {
                Some(Value::Str(s)) => s.as_str(),
                _ => "",
            };
            let at = i128::from(t) * 1_000_000_000 + i128::from(ns);
            if o.first.as_ref().is_none_or(|f| at < f.0) {
                set_time(&mut o.first, at, text);
            }
            if o.last.as_ref().is_none_or(|l| at > l.0) {
                set_time(&mut o.last, at, text);
            }
        }
        let failed = error.is_some_and(|v| *v != Value::None);
        if (kind == "llm_call" || kind == "feedback") && !failed {
            let time_s = if own { Some(t) } else { None };
            let (room, minutes) = (self.b.last_llm_sets, self.b.last_llm_minutes);
            o.llm
                .get_or_insert_with(|| {
                    let mut llm = Llm::for_batch(self.s.max_label_sets);
                    llm.reserve(room);
                    llm.reserve_minutes(minutes.0, minutes.1);
                    llm
                })
                .add_at(fields, places, kind, time_s);
        }
        for (rule, n) in masked {
            match o.masked.iter_mut().find(|(r, _)| *r == rule) {
                Some(slot) => slot.1 += n,
                None => o.masked.push((rule, n)),
            }
        }
        if o.records >= self.s.max_records as u64 || o.data.len() >= self.s.max_bytes {
            out.push(self.seal());
        }
    }

    fn seal(&mut self) -> Sealed {
        let seq = self.b.next_seq;
        self.b.next_seq += 1;
        let mut batch = std::mem::take(&mut self.b.open);
        batch.pack_seq = seq;
        self.b.last_llm_sets = batch.llm.as_ref().map_or(0, Llm::label_sets);
        self.b.last_llm_minutes = batch.llm.as_ref().map_or((0, 0), Llm::minute_room);
        self.b.last_event = 0;
        if self.s.wire == Wire::LogGroup {
            let tags = self.envelope_tags(&batch.path, seq);
            batch.trailer = loggroup::encode_trailer(&self.s.topic, &self.s.source, &tags);
            // The whole LogGroup in one buffer: the hand-over copies it once and the sender
            // compresses it as it is (no `data + trailer` copy of megabytes per batch).
            batch.data.extend_from_slice(&batch.trailer);
        }
        self.b.last_size = (batch.data.len(), batch.records as usize);
        self.b.started = None;
        batch
    }
}

/// A batch's first or last time, written over the String it already holds (no allocation).
fn set_time(slot: &mut Option<(i128, String)>, at: i128, text: &str) {
    match slot {
        Some((when, held)) => {
            *when = at;
            held.clear();
            held.push_str(text);
        }
        None => *slot = Some((at, text.to_string())),
    }
}

/// A compiled parser (pattern, start test, payload regex, date caches) is some 60 KB and a
/// daemon opens a Stream per file: one per Stream made 1,000 files cost 80 MiB. The engine
/// compiles one per settings (as the Python engine does) and its Streams share it; they are
/// fed from one thread at a time, so the lock, taken once per call and not per record, is
/// never contended. Sharing also shares the date caches, as the reference's Streams do.
pub type SharedParser = Arc<Mutex<RecordParser>>;

/// The places of a record's fields (crate::places), known from its layout number when it is
/// one of the last two seen (`recent`): a number stands for one sequence of keys of this
/// Stream's parser (`Record::layout`), whichever Stream parsed with it in between. Otherwise
/// worked out and kept as the most recent.
#[inline]
fn places<'r>(
    recent: &'r mut [(u64, Places); 2],
    layouts: &mut Layouts,
    layout: u64,
    fields: &[(Key, Value)],
) -> &'r Places {
    let hit = if layout == 0 {
        None
    } else {
        recent.iter().position(|(l, _)| *l == layout)
    };
    let at = match hit {
        Some(at) => at,
        None => {
            // A fresh record (layout 0) never matches the entry it leaves.
            recent.swap(0, 1);
            recent[0] = (layout, layouts.places(fields));
            0
        }
    };
    &recent[at % 2].1
}

pub fn shared_parser(settings: ParserSettings) -> Result<SharedParser, SettingsError> {
    Ok(Arc::new(Mutex::new(RecordParser::new(settings)?)))
}

/// A panic while a parser was locked was caught and reported at the binding; the parser's
/// state (its caches) is still sound, so later calls go on with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `(int(wall), int((wall % 1) * 1e9))`: the stamp of records without a time of their own.
pub fn wall_stamp(wall: f64) -> (i64, u32) {
    let frac = wall.rem_euclid(1.0) * 1e9;
    (wall.trunc() as i64, frac as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_records: usize) -> StreamSettings {
        StreamSettings {
            parser: ParserSettings {
                pattern: "%d{yyyy-MM-dd HH:mm:ss} %m".into(),
                timezone: Some("UTC".into()),
                payload_separator: ",".into(),
                payload_fields: vec![("app".into(), "str".into()), ("n".into(), "int".into())],
                feedback_fields: None,
                max_record_bytes: 1024,
                encoding: "utf-8".into(),
            },
            wire: Wire::LogGroup,
            max_records,
            max_bytes: 1 << 20,
            linger: 1.0,
            partial_after: 60.0,
            pending_after: 5.0,
            topic: String::new(),
            source: "s".into(),
            hostname: "h".into(),
            tags: Vec::new(),
            since: None,
            until: None,
            max_label_sets: 2000,
            mask: None,
        }
    }

    #[test]
    fn batches_seal_by_count_and_take_pack_sequences_in_order() {
        let mut s = Stream::new(settings(1), None, "p".into(), 10, "AB".into(), 7).unwrap();
        let data = b"banner\n2026-01-01 00:00:00 a,1\n2026-01-01 00:00:01 x\n";
        let sealed = s.feed(data, 0.0, 5.5);
        assert_eq!(sealed.len(), 2);
        // The banner has no time of its own: it takes the wall clock's.
        assert_eq!((sealed[0].pack_seq, sealed[0].end), (7, 17));
        assert_eq!(sealed[0].times, 5u32.to_le_bytes());
        assert_eq!(sealed[0].events, vec![("raw".to_string(), 1)]);
        assert_eq!((sealed[1].pack_seq, sealed[1].end), (8, 41));
        assert_eq!(sealed[1].events, vec![("llm_call".to_string(), 1)]);
        let rest = s.drain(5.5);
        assert_eq!((rest[0].pack_seq, rest[0].end, rest[0].records), (9, 63, 1));
        assert_eq!(s.next_pack_seq(), 10);
    }

    /// Everything sealed from `input` fed in `chunks`-sized pieces, with linger seals between
    /// them; `recycle`: each batch's buffer goes back to the Stream, as the binding does.
    fn sealed_by(s: &StreamSettings, input: &[u8], chunks: &[usize], recycle: bool) -> Vec<Sealed> {
        let mut stream = Stream::new(s.clone(), None, "p".into(), 0, "AB".into(), 0).unwrap();
        let (mut out, mut at, mut i) = (Vec::new(), 0, 0);
        let hand_over = |stream: &mut Stream, sealed: Vec<Sealed>, out: &mut Vec<Sealed>| {
            for b in sealed {
                out.push(b.clone());
                if recycle {
                    stream.recycle(b.data);
                }
            }
        };
        while at < input.len() {
            let n = chunks[i % chunks.len()].min(input.len() - at);
            let sealed = stream.feed(&input[at..at + n], i as f64, 9.0);
            hand_over(&mut stream, sealed, &mut out);
            let sealed = stream.due(i as f64 + 0.5, 9.0, i % 3 == 0);
            hand_over(&mut stream, sealed, &mut out);
            at += n;
            i += 1;
        }
        let sealed = stream.drain(9.0);
        hand_over(&mut stream, sealed, &mut out);
        out
    }

    #[test]
    fn a_buffer_is_kept_only_while_records_keep_coming() {
        let mut s = settings(2);
        s.wire = Wire::Ndjson;
        let line = "2026-01-01 00:00:01 a message\n";
        let mut stream = Stream::new(s, None, "p".into(), 0, "AB".into(), 0).unwrap();
        // The file is being read: a batch's buffer given back is kept for the next batch.
        let sealed = stream.feed(line.repeat(8).as_bytes(), 0.0, 9.0);
        assert!(!sealed.is_empty());
        for b in sealed {
            stream.recycle(b.data);
        }
        assert!(stream.recycler.held() > 0);
        // A due within a linger of the last read keeps it (a reader held back by the output
        // skips a turn or two); one a linger later gives it back.
        stream.due(0.5, 9.0, false);
        assert!(stream.recycler.held() > 0);
        stream.due(1.0, 9.0, false);
        assert_eq!(stream.recycler.held(), 0);
        // Nor is a buffer coming back later kept, until the file is read again.
        let sealed = stream.feed(line.repeat(8).as_bytes(), 2.0, 9.0);
        let late: Vec<Vec<u8>> = sealed.into_iter().map(|b| b.data).collect();
        for b in stream.drain(9.0) {
            stream.recycle(b.data);
        }
        for buf in late {
            stream.recycle(buf);
        }
        assert_eq!(stream.recycler.held(), 0);
    }

    #[test]
    fn a_buffer_comes_back_to_its_stream_from_another_thread_and_not_once_it_is_gone() {
        let mut stream = Stream::new(settings(1), None, "p".into(), 0, "AB".into(), 0).unwrap();
        let sealed = stream.feed(
            b"2026-01-01 00:00:00 a,1\n2026-01-01 00:00:01 b,2\n",
            0.0,
            9.0,
        );
        let home = Arc::downgrade(&stream.recycler());
        let buf = sealed.into_iter().next().unwrap().data;
        let cap = buf.capacity();
        let back = home.clone();
        std::thread::spawn(move || back.upgrade().unwrap().give(buf))
            .join()
            .unwrap();
        assert_eq!(stream.recycler.held(), cap);
        drop(stream);
        assert!(
            home.upgrade().is_none(),
            "a buffer in flight then has nowhere to go"
        );
    }

    #[test]
    fn a_burst_of_buffers_coming_back_keeps_a_few_and_frees_the_rest() {
        let stream = Stream::new(settings(1), None, "p".into(), 0, "AB".into(), 0).unwrap();
        let recycler = stream.recycler();
        recycler.want();
        for _ in 0..SPARES + 2 {
            recycler.give(Vec::with_capacity(1000));
        }
        assert_eq!(recycler.held(), SPARES * 1000);
        // Taken back one by one for the batches that follow, then none is left.
        for _ in 0..SPARES {
            assert_eq!(recycler.take().capacity(), 1000);
        }
        assert_eq!(recycler.take().capacity(), 0);
        assert_eq!(recycler.held(), 0);
    }

    #[test]
    fn a_recycled_buffer_gives_the_batches_of_a_fresh_one() {
        let mut g = crate::testgen::Gen(0x9E37_79B9_7F4A_7C15);
        let lines = [
            "2026-01-01 00:00:0{} app,1\n",
            "2026-01-01 00:00:1{} a much longer message that fills the batch faster\n",
            "\tat continuation {}\n",
            "banner {}\n",
        ];
        for case in 0..200 {
            let mut input = String::new();
            for _ in 0..g.below(60) {
                let digit = g.below(10).to_string();
                input.push_str(&g.pick(&lines).replace("{}", &digit));
            }
            let mut s = settings(1 + g.below(8));
            s.wire = *g.pick(&[Wire::LogGroup, Wire::Ndjson]);
            s.max_bytes = 40 + g.below(400);
            s.linger = 1.0 + g.below(3) as f64;
            let chunks = [1 + g.below(200), 1 + g.below(30)];
            let fresh = sealed_by(&s, input.as_bytes(), &chunks, false);
            let recycled = sealed_by(&s, input.as_bytes(), &chunks, true);
            assert_eq!(fresh, recycled, "case {case}: {input:?}");
            for b in &fresh {
                assert!(b.data.ends_with(&b.trailer), "the trailer ends the data");
                let logs = b.data.len() - b.trailer.len();
                assert_eq!(b.bounds[b.bounds.len() - 4..], (logs as u32).to_le_bytes());
            }
        }
    }

    #[test]
    fn the_wall_stamp_is_seconds_and_nanoseconds() {
        assert_eq!(wall_stamp(5.25), (5, 250_000_000));
    }
}
