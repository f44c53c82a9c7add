//! Thin PyO3 binding of the compiled Stream (`llmtail._core`); the work is in the modules.
//! Every call runs with the GIL released and inside `catch_unwind`: a panic that escapes
//! anyway becomes a Python exception naming the file and offset, never a crash.

mod byteset;
pub mod decode;
pub mod encode;
pub mod fasthash;
mod gbk_table;
pub mod lines;
pub mod llm;
pub mod lz4;
pub mod mask;
pub mod matcher;
pub mod multiline;
pub mod pattern;
pub mod payload;
pub mod places;
mod printable;
pub mod pyrepr;
pub mod readbuf;
pub mod record;
mod start;
pub mod stream;
#[cfg(test)]
mod testgen;
pub mod timestamp;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{
    PyIndexError, PyLookupError, PyRuntimeError, PyUnicodeDecodeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::decode::{Codec, TextCodec};
use crate::multiline::{Assembler, Frame};
use crate::payload::Value;
use crate::record::{ParserSettings, Record, RecordParser, SettingsError};
use crate::stream::{Sealed, StreamSettings};

pyo3::create_exception!(
    _core,
    PatternError,
    PyValueError,
    "The pattern cannot be compiled (the text of parsers.pattern.PatternError)."
);

/// The crate version, so Python can tell which core it loaded.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn settings_error(e: SettingsError) -> PyErr {
    match e {
        SettingsError::Value(t) => PyValueError::new_err(t),
        SettingsError::Pattern(t) => PatternError::new_err(t),
        SettingsError::Index => PyIndexError::new_err("string index out of range"),
        SettingsError::Key(k) => pyo3::exceptions::PyKeyError::new_err(k),
    }
}

/// CPython's codec of an encoding the core has no decoder of its own for: decoding takes the
/// GIL back for each record (exact by construction, slower than the core's own decoders).
struct PyCodec {
    name: String,
}

impl PyCodec {
    fn try_decode(&self, py: Python<'_>, raw: &[u8], cut: bool) -> PyResult<(String, bool)> {
        let data = PyBytes::new(py, raw);
        let run = |errors: &str| -> PyResult<String> {
            if cut {
                py.import("codecs")?
                    .call_method1("getincrementaldecoder", (&self.name,))?
                    .call1((errors,))?
                    .call_method1("decode", (&data, false))?
                    .extract()
            } else {
                data.call_method1("decode", (&self.name, errors))?.extract()
            }
        };
        match run("strict") {
            Ok(text) => Ok((text, false)),
            Err(e) if e.is_instance_of::<PyUnicodeDecodeError>(py) => {
                Ok((run("backslashreplace")?, true))
            }
            Err(e) => Err(e),
        }
    }
}

impl TextCodec for PyCodec {
    fn decode(&self, raw: &[u8], cut: bool) -> (String, bool) {
        Python::with_gil(|py| {
            self.try_decode(py, raw, cut)
                .unwrap_or_else(|_| (decode::escaped(raw), true))
        })
    }

    fn encode(&self, text: &str) -> Option<Vec<u8>> {
        Python::with_gil(|py| {
            PyString::new(py, text)
                .call_method1("encode", (&self.name, "strict"))
                .and_then(|b| b.extract::<Vec<u8>>())
                .ok()
        })
    }
}

/// Makes `encoding` known to the core: its own decoder, or CPython's codec (`PyCodec`). The
/// errors are the reference's: an unknown name, or a codec that does not decode to text.
fn ensure_codec(py: Python<'_>, encoding: &str) -> PyResult<()> {
    if Codec::of(encoding).is_some() {
        return Ok(());
    }
    let info = match py.import("codecs")?.call_method1("lookup", (encoding,)) {
        Ok(info) => info,
        Err(e) if e.is_instance_of::<PyLookupError>(py) => {
            return Err(PyValueError::new_err(format!(
                "unknown encoding {}",
                pyrepr::repr(encoding)
            )));
        }
        Err(e) => return Err(e),
    };
    if !info.getattr("_is_text_encoding")?.is_truthy()? {
        return Err(PyValueError::new_err(format!(
            "encoding {} is not a text encoding",
            pyrepr::repr(encoding)
        )));
    }
    let codec = Box::new(PyCodec {
        name: encoding.to_string(),
    });
    if decode::register(encoding, codec).is_none() {
        return Err(PyValueError::new_err(format!(
            "engine: core reads at most 64 encodings; {} is one too many: use engine: python",
            pyrepr::repr(encoding)
        )));
    }
    Ok(())
}

/// Runs `f`; a panic in it becomes the text of the exception that names `what` (the file) and
/// `offset` (where the chunk being worked on starts), instead of unwinding into Python.
pub fn contained<T>(what: &str, offset: u64, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        format!("internal error in the compiled core reading {what} at offset {offset}")
    })
}

/// Runs `f` without the GIL (other Python threads run meanwhile); a panic becomes a
/// RuntimeError naming `what` and `offset`.
fn guarded<T: Send>(
    py: Python<'_>,
    what: &str,
    offset: u64,
    f: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    py.allow_threads(|| contained(what, offset, f))
        .map_err(PyRuntimeError::new_err)
}

/// Newlines in `data` (see `input`), counted without the GIL (the lines read, at memchr
/// speed).
#[pyfunction]
fn count_lines(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
    let data = input(data)?;
    let data = data.bytes();
    Ok(py.allow_threads(|| memchr::memchr_iter(b'\n', data).count()))
}

/// The bytes a call reads without the GIL: a `bytes`, a `ReadChunk` (or a BatchBytes) is
/// borrowed (none changes while it is held, see `unchanging_bytes`); any other buffer (a
/// bytearray, a memoryview) is copied first, since another thread could write it while the
/// core reads.
enum Input<'a> {
    Borrowed(&'a [u8]),
    Copied(Vec<u8>),
}

impl Input<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Input::Borrowed(b) => b,
            Input::Copied(v) => v,
        }
    }
}

fn input<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Input<'a>> {
    if let Some(b) = unchanging_bytes(obj) {
        return Ok(Input::Borrowed(b));
    }
    let buf = pyo3::buffer::PyBuffer::<u8>::get(obj)?;
    Ok(Input::Copied(buf.to_vec(obj.py())?))
}

/// A panic inside the wrapper every Stream call runs in, for the test that proves it becomes
/// an exception naming the file and offset (no input makes the core itself panic).
#[pyfunction]
fn _panic_in_guard(py: Python<'_>, what: &str, offset: u64) -> PyResult<()> {
    guarded(py, what, offset, || {
        if offset != u64::MAX {
            panic!("deliberate panic for the test of the panic path");
        }
    })
}

/// A u128 as a Python int: through u64 when it fits (PyO3's 128-bit conversion under the
/// limited API builds the int from two halves with Python arithmetic).
fn int(py: Python<'_>, v: u128) -> PyResult<PyObject> {
    Ok(match u64::try_from(v) {
        Ok(small) => small.into_pyobject(py)?.into_any().unbind(),
        Err(_) => v.into_pyobject(py)?.into_any().unbind(),
    })
}

fn value_to_py(py: Python<'_>, v: &Value) -> PyResult<PyObject> {
    Ok(match v {
        Value::None => py.None(),
        Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Int(t) => match t.parse::<i64>() {
            Ok(i) => i.into_pyobject(py)?.into_any().unbind(),
            Err(_) => py
                .import("builtins")?
                .getattr("int")?
                .call1((t.as_str(),))?
                .unbind(),
        },
    })
}

/// (fields, time, time_ns, flags, end, size, line_no), and the frame's text when `text`.
fn record_to_py(py: Python<'_>, r: &Record, f: &Frame<'_>, text: bool) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    for (k, v) in &r.fields {
        d.set_item(&**k, value_to_py(py, v)?)?;
    }
    let mut items = vec![
        d.into_any().unbind(),
        r.time.into_pyobject(py)?.into_any().unbind(),
        r.time_ns.into_pyobject(py)?.into_any().unbind(),
        r.flags.into_pyobject(py)?.into_any().unbind(),
        f.end.into_pyobject(py)?.into_any().unbind(),
        f.size.into_pyobject(py)?.into_any().unbind(),
        f.line_no.into_pyobject(py)?.into_any().unbind(),
    ];
    if text {
        items.push((&*f.text).into_pyobject(py)?.into_any().unbind());
    }
    Ok(PyTuple::new(py, items)?.into_any().unbind())
}

/// Framing and parsing of one file, record by record: the debug binding the differential
/// tests compare with `parsers/` (each record as (fields, time, time_ns, flags, end, size,
/// line_no)), and `llmtail trace`'s reader (`feed_containing`). Not used on the data path.
#[pyclass(module = "llmtail._core")]
struct Records {
    parser: RecordParser,
    assembler: Assembler,
}

impl Records {
    fn parsed<'a>(&mut self, frames: Vec<Frame<'a>>) -> Vec<(Record, Frame<'a>)> {
        frames
            .into_iter()
            .map(|f| (self.parser.parse(&f), f))
            .collect()
    }

    /// The frames whose text holds one of `needles`, parsed; the others are not parsed at all.
    fn containing<'a>(
        &mut self,
        frames: Vec<Frame<'a>>,
        needles: &[String],
    ) -> Vec<(Record, Frame<'a>)> {
        let finders: Vec<_> = needles.iter().map(memchr::memmem::Finder::new).collect();
        frames
            .into_iter()
            .filter(|f| finders.iter().any(|n| n.find(f.text.as_bytes()).is_some()))
            .map(|f| (self.parser.parse(&f), f))
            .collect()
    }

    fn out(py: Python<'_>, recs: Vec<(Record, Frame<'_>)>, text: bool) -> PyResult<Vec<PyObject>> {
        recs.iter()
            .map(|(r, f)| record_to_py(py, r, f, text))
            .collect()
    }
}

#[pymethods]
impl Records {
    #[new]
    #[pyo3(signature = (pattern, timezone, payload_separator, payload_fields, max_record_bytes, encoding, offset=0, feedback_fields=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        pattern: String,
        timezone: Option<String>,
        payload_separator: String,
        payload_fields: Vec<(String, String)>,
        max_record_bytes: i64,
        encoding: String,
        offset: u64,
        feedback_fields: Option<Vec<(String, String)>>,
    ) -> PyResult<Records> {
        ensure_codec(py, &encoding)?;
        let settings = ParserSettings {
            pattern,
            timezone,
            payload_separator,
            payload_fields,
            feedback_fields,
            max_record_bytes,
            encoding,
        };
        let parser = catch_unwind(|| RecordParser::new(settings))
            .map_err(|_| PyRuntimeError::new_err("internal error in the compiled core"))?
            .map_err(settings_error)?;
        let assembler = parser.assembler(offset);
        Ok(Records { parser, assembler })
    }

    fn feed(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        now: f64,
    ) -> PyResult<Vec<PyObject>> {
        let data = input(data)?;
        let data = data.bytes();
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler.feed(data, now, &mut frames);
            self.parsed(frames)
        })?;
        Self::out(py, recs, false)
    }

    fn due(
        &mut self,
        py: Python<'_>,
        now: f64,
        partial_after: f64,
        pending_after: f64,
    ) -> PyResult<Vec<PyObject>> {
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler
                .due(now, partial_after, pending_after, &mut frames);
            self.parsed(frames)
        })?;
        Self::out(py, recs, false)
    }

    fn drain(&mut self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler.drain(&mut frames);
            self.parsed(frames)
        })?;
        Self::out(py, recs, false)
    }

    /// `feed` for `llmtail trace`: only the records whose text holds one of `needles` (a
    /// record's trace and request ids are substrings of its text, so no record that can match
    /// is left out), each with its text last. The others are framed, never parsed.
    fn feed_containing(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        needles: Vec<String>,
    ) -> PyResult<Vec<PyObject>> {
        let data = input(data)?;
        let data = data.bytes();
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler.feed(data, 0.0, &mut frames);
            self.containing(frames, &needles)
        })?;
        Self::out(py, recs, true)
    }

    /// `drain` for `llmtail trace`, as `feed_containing` filters.
    fn drain_containing(
        &mut self,
        py: Python<'_>,
        needles: Vec<String>,
    ) -> PyResult<Vec<PyObject>> {
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler.drain(&mut frames);
            self.containing(frames, &needles)
        })?;
        Self::out(py, recs, true)
    }
}

fn parser_settings(p: &Bound<'_, PyAny>) -> PyResult<ParserSettings> {
    let encoding: String = p.getattr("encoding")?.extract()?;
    ensure_codec(p.py(), &encoding)?;
    Ok(ParserSettings {
        pattern: p.getattr("pattern")?.extract()?,
        timezone: p.getattr("timezone")?.extract()?,
        payload_separator: p.getattr("payload_separator")?.extract()?,
        payload_fields: p.getattr("payload_fields")?.extract()?,
        // Settings from before the feedback event have no such field: no `feedback:` prefix.
        feedback_fields: match p.getattr("feedback_fields") {
            Ok(v) => v.extract()?,
            Err(_) => None,
        },
        max_record_bytes: p.getattr("max_record_bytes")?.extract()?,
        encoding,
    })
}

fn stream_settings(s: &Bound<'_, PyAny>) -> PyResult<StreamSettings> {
    let wire: String = s.getattr("wire")?.extract()?;
    let wire = match wire.as_str() {
        "loggroup" => stream::Wire::LogGroup,
        "ndjson" => stream::Wire::Ndjson,
        "count" => stream::Wire::Count,
        _ => {
            return Err(PyValueError::new_err(format!(
                "wire must be 'loggroup', 'ndjson' or 'count', not {}",
                pyrepr::repr(&wire)
            )))
        }
    };
    let positive = |name: &str| -> PyResult<usize> {
        let v: i64 = s.getattr(name)?.extract()?;
        usize::try_from(v)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| PyValueError::new_err(format!("{name} must be positive")))
    };
    Ok(StreamSettings {
        parser: parser_settings(&s.getattr("parser")?)?,
        wire,
        max_records: positive("max_records")?,
        max_bytes: positive("max_bytes")?,
        linger: s.getattr("linger")?.extract()?,
        partial_after: s.getattr("partial_after")?.extract()?,
        pending_after: s.getattr("pending_after")?.extract()?,
        topic: s.getattr("topic")?.extract()?,
        source: s.getattr("source")?.extract()?,
        hostname: s.getattr("hostname")?.extract()?,
        tags: s.getattr("tags")?.extract()?,
        since: s.getattr("since")?.extract()?,
        until: s.getattr("until")?.extract()?,
        max_label_sets: positive("max_label_sets")?,
        mask: mask_settings(&s.getattr("mask")?, &s.getattr("mask_key")?)?,
    })
}

/// parsers.mask.MaskSettings and the hmac key; None when masking is off.
fn mask_settings(
    m: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
) -> PyResult<Option<mask::MaskSettings>> {
    if m.is_none() {
        return Ok(None);
    }
    let custom = m
        .getattr("custom")?
        .try_iter()?
        .map(|rule| {
            let rule = rule?;
            let text = |name: &str| -> PyResult<String> { rule.getattr(name)?.extract() };
            Ok((
                text("name")?,
                text("regex")?,
                text("prefix")?,
                text("replace")?,
            ))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let items = |name: &str| -> PyResult<Vec<(String, Bound<'_, PyAny>)>> {
        m.getattr(name)?
            .call_method0("items")?
            .try_iter()?
            .map(|i| i?.extract())
            .collect()
    };
    let rules = items("rules")?
        .into_iter()
        .map(|(k, v)| Ok((k, v.is_truthy()?)))
        .collect::<PyResult<_>>()?;
    let replace = items("replace")?
        .into_iter()
        .map(|(k, v)| Ok((k, v.extract()?)))
        .collect::<PyResult<_>>()?;
    let max_field_bytes: i64 = m.getattr("max_field_bytes")?.extract()?;
    Ok(Some(mask::MaskSettings {
        enabled: m.getattr("enabled")?.is_truthy()?,
        rules,
        replace,
        max_field_bytes: usize::try_from(max_field_bytes).unwrap_or(0),
        key: if key.is_none() {
            None
        } else {
            Some(key.extract()?)
        },
        custom,
    }))
}

/// A masked text (None: nothing replaced) and the replacements per rule.
type Masked = (Option<String>, Vec<(String, u64)>);

/// Masking of one text by the core's masker (tests compare it with parsers.mask.Masker):
/// the masked text (None: nothing replaced) and the replacements per rule.
#[pyfunction]
fn mask_text(
    py: Python<'_>,
    settings: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
    text: &str,
) -> PyResult<Masked> {
    let Some(s) = mask_settings(settings, key)? else {
        return Ok((None, Vec::new()));
    };
    // Shared by settings, as the Streams' maskers are: building one (its regexes) costs ms.
    let masker = mask::shared(&s).map_err(PyValueError::new_err)?;
    let text = text.to_string();
    guarded(py, "<mask>", 0, move || {
        match masker.and_then(|m| m.mask_text(&text)) {
            Some((out, counts)) => (Some(out), counts),
            None => (None, Vec::new()),
        }
    })
}

/// The LLM aggregate of agent/engine/llm_aggregate.py held in Rust (crate::llm::Llm): each
/// sealed batch of the core carries one, and the long-lived totals of `/metrics`, report and
/// validate are ones too, merged without the GIL and without a Python object per label set.
/// `snapshot()` reads it as a Python `LlmAggregate` (a scrape, the end of a report).
#[pyclass(module = "llmtail._core")]
struct LlmAggregate {
    inner: llm::Llm,
}

/// (model, workspace, record-time minute, calls, tokens) of a QPM/TPM window.
type WindowCell = (String, String, i64, u64, PyObject);

#[pymethods]
impl LlmAggregate {
    #[new]
    #[pyo3(signature = (max_label_sets=2000, max_minute_cells=llm::DEFAULT_MAX_MINUTE_CELLS as i64))]
    fn new(max_label_sets: i64, max_minute_cells: i64) -> PyResult<LlmAggregate> {
        let sets = usize::try_from(max_label_sets)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| PyValueError::new_err("max_label_sets must be at least 1"))?;
        // A negative cap keeps no cell, as `len(minutes) >= cap` does in Python.
        let cells = usize::try_from(max_minute_cells).unwrap_or(0);
        Ok(LlmAggregate {
            inner: llm::Llm::with_caps(sets, cells),
        })
    }

    #[getter]
    fn max_label_sets(&self) -> usize {
        self.inner.max_label_sets()
    }

    #[getter]
    fn max_minute_cells(&self) -> usize {
        self.inner.max_minute_cells()
    }

    #[getter]
    fn label_sets(&self) -> usize {
        self.inner.label_sets()
    }

    /// `LlmAggregate.merge`: `other`'s numbers added into this one, under this one's cap.
    #[pyo3(signature = (other, minutes=true))]
    fn merge(
        &mut self,
        py: Python<'_>,
        other: PyRef<'_, LlmAggregate>,
        minutes: bool,
    ) -> PyResult<()> {
        let (into, from) = (&mut self.inner, &other.inner);
        guarded(py, "<llm aggregate>", 0, || into.merge(from, minutes))
    }

    /// `merge(other, minutes=False)`, then `other`'s per-minute cells in `lo..=hi` summed by
    /// (model, workspace) of the set they count under here: `/metrics`' QPM/TPM window.
    fn merge_window(
        &mut self,
        py: Python<'_>,
        other: PyRef<'_, LlmAggregate>,
        lo: i64,
        hi: i64,
    ) -> PyResult<Vec<WindowCell>> {
        let (into, from) = (&mut self.inner, &other.inner);
        let cells = guarded(py, "<llm aggregate>", 0, || into.merge_window(from, lo, hi))?;
        cells
            .into_iter()
            .map(|(m, w, minute, calls, tokens)| Ok((m, w, minute, calls, int(py, tokens)?)))
            .collect()
    }

    /// The Python `LlmAggregate` of these numbers (agent/engine/llm_aggregate.py).
    fn snapshot(&self, py: Python<'_>) -> PyResult<PyObject> {
        let a = &self.inner;
        let kw = PyDict::new(py);
        kw.set_item("max_label_sets", a.max_label_sets())?;
        kw.set_item("max_minute_cells", a.max_minute_cells())?;
        // Label values repeat across sets: one Python str per distinct text.
        let mut texts: fasthash::FxMap<&str, Bound<'_, PyString>> = fasthash::FxMap::default();
        let keys: Vec<Bound<'_, PyTuple>> = (0..a.label_sets())
            .map(|i| {
                let items: Vec<Bound<'_, PyString>> = a
                    .key(i)
                    .into_iter()
                    .map(|t| {
                        texts
                            .entry(t)
                            .or_insert_with(|| PyString::new(py, t))
                            .clone()
                    })
                    .collect();
                PyTuple::new(py, items)
            })
            .collect::<PyResult<_>>()?;
        kw.set_item("keys", keys)?;
        let column = |sum: fn(&llm::Sums) -> u128| -> PyResult<Vec<PyObject>> {
            a.sums().iter().map(|s| int(py, sum(s))).collect()
        };
        kw.set_item("calls", column(|s| s.calls)?)?;
        kw.set_item("input_tokens", column(|s| s.input_tokens)?)?;
        kw.set_item("output_tokens", column(|s| s.output_tokens)?)?;
        kw.set_item("total_tokens", column(|s| s.total_tokens)?)?;
        kw.set_item("duration_ms", column(|s| s.duration_ms)?)?;
        let [duration, input, output] = a.bucket_columns();
        kw.set_item("duration_buckets", duration)?;
        kw.set_item("input_buckets", input)?;
        kw.set_item("output_buckets", output)?;
        let minutes = PyDict::new(py);
        for &(i, m, n, t) in &a.minutes {
            minutes.set_item(
                (i, m),
                vec![n.into_pyobject(py)?.into_any().unbind(), int(py, t)?],
            )?;
        }
        kw.set_item("minutes", minutes)?;
        let feedback = PyDict::new(py);
        for (rating, n) in &a.feedback {
            feedback.set_item(rating, n)?;
        }
        kw.set_item("feedback", feedback)?;
        kw.set_item("dropped_calls", a.dropped_calls)?;
        kw.set_item("dropped_minutes", a.dropped_minutes)?;
        let class = py
            .import("llmtail.agent.engine.llm_aggregate")?
            .getattr("LlmAggregate")?;
        Ok(class.call((), Some(&kw))?.unbind())
    }
}

/// The compiled parser of one `parsers.record.ParserSettings`, made once per input by the
/// engine and handed to each of its Streams (`Stream(..., parser=)`): compiling one per Stream
/// cost some 80 KiB of memory per open file.
#[pyclass(module = "llmtail._core", frozen)]
struct Parser {
    inner: stream::SharedParser,
}

#[pymethods]
impl Parser {
    #[new]
    fn new(settings: &Bound<'_, PyAny>) -> PyResult<Parser> {
        let s = parser_settings(settings)?;
        let inner = catch_unwind(|| stream::shared_parser(s))
            .map_err(|_| PyRuntimeError::new_err("internal error in the compiled core"))?
            .map_err(settings_error)?;
        Ok(Parser { inner })
    }
}

/// A LogGroup batch's `data`, handed over without a copy: the core's buffer itself, read by
/// lz4 and the HTTP send through the buffer protocol (read-only), and given back to its Stream
/// for a later batch when the last reference to it goes (`stream::Recycler`). A copy into a
/// fresh `bytes` cost 1.85 ms per MB of log, mostly the faults of its new pages. The lz4 block
/// of a body (`lz4_block`) is one too, its buffer given back to the lz4 pool.
#[pyclass(module = "llmtail._core", frozen, name = "BatchBytes")]
struct BatchBytes {
    /// Never changed while the object lives: it has no method that changes it, and `frozen`
    /// gives out only shared references.
    data: Vec<u8>,
    home: Home,
}

/// Where a BatchBytes' buffer goes when the last reference to it goes.
enum Home {
    /// A LogGroup batch's: back to its Stream, if it still lives.
    Stream(std::sync::Weak<stream::Recycler>),
    /// An lz4 block's: back to `lz4::POOL`, with the bytes ever written into it.
    Lz4 { touched: usize },
}

impl Drop for BatchBytes {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        match &self.home {
            Home::Stream(home) => {
                if let Some(home) = home.upgrade() {
                    home.give(data);
                }
            }
            Home::Lz4 { touched } => lz4::POOL.give(lz4::Block {
                data,
                touched: *touched,
            }),
        }
    }
}

#[pymethods]
impl BatchBytes {
    fn __len__(&self) -> usize {
        self.data.len()
    }

    /// The bytes as a read-only buffer (`memoryview(b)`, `bytes(b)`, lz4, hashlib, sockets).
    ///
    /// # Safety
    /// Sound: `PyBuffer_FillInfo` stores in `view.obj` a new reference to this object, which
    /// the consumer holds until `PyBuffer_Release`; while it does, the object cannot be
    /// dropped, and nothing else changes `data` (see the field), so the pointer and length
    /// given out stay valid and the bytes unchanged for as long as the view exists. The view
    /// is read-only: `PyBuffer_FillInfo` refuses a `PyBUF_WRITABLE` request with BufferError.
    /// An empty Vec's pointer is dangling but non-null, valid for the zero bytes it covers.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        // SAFETY: see above; `view` is the valid Py_buffer the interpreter passes in.
        unsafe { fill_read_only(slf.as_any(), &slf.get().data, view, flags) }
    }

    fn __repr__(&self) -> String {
        format!("<BatchBytes of {} bytes>", self.data.len())
    }

    /// Equal to `bytes` (or another BatchBytes) of the same content, as the Python engine's
    /// `bytes` are: the engines' batches compare equal field by field.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        equal_bytes(py, &self.data, other)
    }
}

/// The reader's kept buffer (`readbuf::Buffer`): each turn's reads land in pages faulted in
/// once, and come out as `ReadChunk`s the Streams read without a copy.
#[pyclass(module = "llmtail._core", name = "ReadBuffer")]
struct ReadBuffer {
    inner: readbuf::Buffer,
}

#[pymethods]
impl ReadBuffer {
    #[new]
    fn new(capacity: usize) -> ReadBuffer {
        ReadBuffer {
            inner: readbuf::Buffer::new(capacity),
        }
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    #[getter]
    fn room(&self) -> usize {
        self.inner.room()
    }

    /// Start a turn at the buffer's beginning; False while a chunk of it still lives.
    fn reset(&mut self) -> bool {
        self.inner.reset()
    }

    /// Up to `n` bytes of `fd` from `offset`, read without the GIL into the room; an empty
    /// chunk at the end of the file or when the buffer is full. OSError as `os.pread`.
    fn pread(&mut self, py: Python<'_>, fd: i32, n: usize, offset: u64) -> PyResult<ReadChunk> {
        let inner = &mut self.inner;
        let chunk = py.allow_threads(|| inner.pread(fd, n, offset))?;
        Ok(ReadChunk { inner: chunk })
    }
}

/// Bytes read into a ReadBuffer, unchanged for as long as this object (or a view of it) lives:
/// the buffer is not read into there again before then (`readbuf`). Read by the Streams without
/// a copy; Python reads it through the buffer protocol (`bytes(c)`, `memoryview(c)`).
#[pyclass(module = "llmtail._core", frozen, name = "ReadChunk")]
struct ReadChunk {
    inner: readbuf::Chunk,
}

#[pymethods]
impl ReadChunk {
    fn __len__(&self) -> usize {
        self.inner.bytes().len()
    }

    /// The bytes as a read-only buffer.
    ///
    /// # Safety
    /// Sound: `PyBuffer_FillInfo` stores in `view.obj` a new reference to this object, which
    /// the consumer holds until `PyBuffer_Release`; while it does, the chunk lives, so its
    /// bytes stay allocated and are not written (`readbuf::Chunk::bytes`). The view is
    /// read-only: `PyBuffer_FillInfo` refuses a `PyBUF_WRITABLE` request with BufferError.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        // SAFETY: see above; `view` is the valid Py_buffer the interpreter passes in.
        unsafe { fill_read_only(slf.as_any(), slf.get().inner.bytes(), view, flags) }
    }

    fn __repr__(&self) -> String {
        format!("<ReadChunk of {} bytes>", self.inner.bytes().len())
    }

    /// Equal to `bytes` (or a BatchBytes, a ReadChunk) of the same content, as the `bytes`
    /// of a plain read would be.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        equal_bytes(py, self.inner.bytes(), other)
    }
}

/// Fills `view` with a read-only buffer of `data` whose exporter is `owner`
/// (`PyBuffer_FillInfo`, which stores a new reference to `owner` in `view.obj`).
///
/// # Safety
/// `view` must be the Py_buffer the interpreter passed to `__getbuffer__`, and `data` must
/// stay allocated and unchanged for as long as `owner` lives: the consumer holds `owner`
/// until `PyBuffer_Release`. A `PyBUF_WRITABLE` request is refused with BufferError.
unsafe fn fill_read_only(
    owner: &Bound<'_, PyAny>,
    data: &[u8],
    view: *mut pyo3::ffi::Py_buffer,
    flags: std::os::raw::c_int,
) -> PyResult<()> {
    let len = pyo3::ffi::Py_ssize_t::try_from(data.len())
        .map_err(|_| PyValueError::new_err("buffer too large"))?;
    // SAFETY: the caller's contract above; the pointer is only read through (readonly 1).
    let done = unsafe {
        pyo3::ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            data.as_ptr() as *mut std::os::raw::c_void,
            len,
            1,
            flags,
        )
    };
    if done == -1 {
        return Err(PyErr::fetch(owner.py()));
    }
    Ok(())
}

/// `data == other` for `__eq__`: NotImplemented unless `other` is a `bytes`, `BatchBytes` or
/// `ReadChunk`.
fn equal_bytes(py: Python<'_>, data: &[u8], other: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let Some(theirs) = unchanging_bytes(other) else {
        return Ok(py.NotImplemented());
    };
    Ok(pyo3::types::PyBool::new(py, theirs == data)
        .to_owned()
        .into_any()
        .unbind())
}

/// The bytes of a `bytes`, a `BatchBytes` or a `ReadChunk`, which nothing changes while `obj`
/// is held (bytes are immutable; a BatchBytes' buffer, see its field; a ReadChunk's, see
/// `readbuf`): safe to read without the GIL.
fn unchanging_bytes<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    if let Ok(b) = obj.downcast::<BatchBytes>() {
        Some(&b.get().data)
    } else if let Ok(b) = obj.downcast::<PyBytes>() {
        Some(b.as_bytes())
    } else if let Ok(c) = obj.downcast::<ReadChunk>() {
        Some(c.get().inner.bytes())
    } else {
        None
    }
}

/// `data` (bytes, a LogGroup batch's BatchBytes, or a ReadChunk) as one lz4 block without a
/// size prefix (SLS's `x-log-compresstype: lz4`), compressed by liblz4 without the GIL into an
/// output buffer an earlier block was written into; returned as a read-only BatchBytes
/// (hashlib and sockets read it without a copy), whose buffer goes back to the pool when it
/// goes.
#[pyfunction]
fn lz4_block(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<BatchBytes> {
    let Some(src) = unchanging_bytes(data) else {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "lz4_block takes bytes, BatchBytes or a ReadChunk",
        ));
    };
    let block = py
        .allow_threads(|| contained("an lz4 block", 0, || lz4::POOL.compress(src)))
        .map_err(PyRuntimeError::new_err)?
        .map_err(|e| match e {
            lz4::Refused::TooLarge => PyValueError::new_err("too large for an lz4 block"),
            lz4::Refused::Failed => PyRuntimeError::new_err("liblz4 failed"),
        })?;
    Ok(BatchBytes {
        data: block.data,
        home: Home::Lz4 {
            touched: block.touched,
        },
    })
}

/// Keep at most `n` lz4 output buffers between blocks (the agent passes its number of
/// senders); their written bytes count in the spares' bound (`set_spare_limit`).
#[pyfunction]
fn set_lz4_spares(n: usize) {
    lz4::POOL.set_max_spares(n);
}

/// Frees the kept lz4 output buffers if no block was made since the last call (the agent's
/// housekeeping, once a second); returns how many were freed.
#[pyfunction]
fn lz4_release_idle() -> usize {
    lz4::POOL.release_if_idle()
}

/// lz4 output buffers kept now (tests).
#[pyfunction]
fn lz4_spares() -> usize {
    lz4::POOL.spares()
}

/// Caps the capacity all Streams' spare buffers hold together, with the bytes written into
/// the kept lz4 output buffers (the agent passes half of
/// `max_in_flight_bytes`, and counts what they hold against that bound).
#[pyfunction]
fn set_spare_limit(bytes: usize) {
    stream::set_spare_limit(bytes);
}

/// Capacity all Streams' spare buffers hold now, with the bytes written into the kept lz4
/// output buffers (the agent counts it in its in-flight bound).
#[pyfunction]
fn spare_bytes() -> usize {
    stream::spare_bytes()
}

/// The compiled Stream (docs/engine.md): one file read from `offset`. Sealed batches come
/// back as dicts with the fields of agent.engine.stream.SealedBatch, or as what `make`
/// returns when called with those fields as keywords (`make=SealedBatch`).
#[pyclass(module = "llmtail._core")]
struct Stream {
    inner: stream::Stream,
    key: String,
    /// Called with each batch's fields as keywords (e.g. SealedBatch); None: plain dicts.
    make: Option<PyObject>,
}

impl Stream {
    /// The batches as Python objects. A LogGroup batch's buffer goes to Python as it is
    /// (`BatchBytes`) and comes back to the Stream when the sender is done with it; an NDJSON
    /// one is copied into `bytes` (files and stdout write it; tests split its lines) and goes
    /// back at once (`stream::Stream::recycle`).
    fn batches(&mut self, py: Python<'_>, sealed: Vec<Sealed>) -> PyResult<Vec<PyObject>> {
        let mut out = Vec::with_capacity(sealed.len());
        for mut b in sealed {
            let llm = b.llm.take();
            let data = std::mem::take(&mut b.data);
            let data = if self.inner.wire() != stream::Wire::LogGroup {
                let copy = PyBytes::new(py, &data).into_any().unbind();
                self.inner.recycle(data);
                copy
            } else {
                // What the batch is charged in flight (its length) is then what it holds: the
                // spare room of a regrown or recycled buffer is given back (an mremap of the
                // tail for an mmapped buffer, no copy).
                let mut data = data;
                data.shrink_to_fit();
                let home = std::sync::Arc::downgrade(&self.inner.recycler());
                let home = Home::Stream(home);
                Py::new(py, BatchBytes { data, home })?.into_any()
            };
            out.push(self.batch(py, &b, data, llm)?);
        }
        Ok(out)
    }

    fn batch(
        &self,
        py: Python<'_>,
        b: &Sealed,
        data: PyObject,
        llm: Option<llm::Llm>,
    ) -> PyResult<PyObject> {
        let d = PyDict::new(py);
        d.set_item("key", &self.key)?;
        d.set_item("path", &b.path)?;
        d.set_item("end", b.end)?;
        d.set_item("records", b.records)?;
        d.set_item("raw_bytes", b.raw_bytes)?;
        d.set_item("data", data)?;
        d.set_item("trailer", PyBytes::new(py, &b.trailer))?;
        d.set_item("bounds", PyBytes::new(py, &b.bounds))?;
        d.set_item("times", PyBytes::new(py, &b.times))?;
        d.set_item("min_time", b.min_time)?;
        d.set_item("max_time", b.max_time)?;
        d.set_item("pack_seq", b.pack_seq)?;
        let events = PyDict::new(py);
        for (k, n) in &b.events {
            events.set_item(k, n)?;
        }
        d.set_item("events", events)?;
        d.set_item("parse_errors", b.parse_errors)?;
        d.set_item("internal_errors", b.internal_errors)?;
        d.set_item("error_examples", b.error_examples.clone())?;
        d.set_item("skipped_before", b.skipped_before)?;
        d.set_item("skipped_after", b.skipped_after)?;
        d.set_item("first", b.first.clone())?;
        d.set_item("last", b.last.clone())?;
        // The aggregate stays in Rust: merged into the totals there, read when someone looks.
        let llm = match llm {
            None => py.None(),
            Some(inner) => Py::new(py, LlmAggregate { inner })?.into_any(),
        };
        d.set_item("llm", llm)?;
        let masked = PyDict::new(py);
        for (rule, n) in &b.masked {
            masked.set_item(rule, n)?;
        }
        d.set_item("masked", masked)?;
        match &self.make {
            Some(make) => Ok(make.call(py, (), Some(&d))?),
            None => Ok(d.into_any().unbind()),
        }
    }

    fn run(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut stream::Stream) -> Vec<Sealed> + Send,
    ) -> PyResult<Vec<PyObject>> {
        let offset = self.inner.offset();
        let path = self.key.clone();
        let inner = &mut self.inner;
        let sealed = guarded(py, &path, offset, || f(inner))?;
        self.batches(py, sealed)
    }
}

#[pymethods]
impl Stream {
    #[new]
    #[pyo3(signature = (settings, key, path, offset, pack_prefix, pack_seq, make=None, parser=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        settings: &Bound<'_, PyAny>,
        key: String,
        path: String,
        offset: u64,
        pack_prefix: String,
        pack_seq: u64,
        make: Option<PyObject>,
        parser: Option<PyRef<'_, Parser>>,
    ) -> PyResult<Stream> {
        let s = stream_settings(settings)?;
        let shared = parser.map(|p| std::sync::Arc::clone(&p.inner));
        let inner =
            catch_unwind(|| stream::Stream::new(s, shared, path, offset, pack_prefix, pack_seq))
                .map_err(|_| PyRuntimeError::new_err("internal error in the compiled core"))?
                .map_err(settings_error)?;
        Ok(Stream { inner, key, make })
    }

    #[getter]
    fn offset(&self) -> u64 {
        self.inner.offset()
    }

    #[getter]
    fn pending_bytes(&self) -> u64 {
        self.inner.pending_bytes()
    }

    #[getter]
    fn next_pack_seq(&self) -> u64 {
        self.inner.next_pack_seq()
    }

    fn next_due(&self) -> Option<f64> {
        self.inner.next_due()
    }

    fn feed(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        now: f64,
        wall: f64,
    ) -> PyResult<Vec<PyObject>> {
        let data = input(data)?;
        let data = data.bytes();
        self.run(py, |s| s.feed(data, now, wall))
    }

    fn due(
        &mut self,
        py: Python<'_>,
        now: f64,
        wall: f64,
        caught_up: bool,
    ) -> PyResult<Vec<PyObject>> {
        self.run(py, |s| s.due(now, wall, caught_up))
    }

    fn drain(&mut self, py: Python<'_>, wall: f64) -> PyResult<Vec<PyObject>> {
        self.run(py, |s| s.drain(wall))
    }

    fn cut(&mut self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        self.run(py, stream::Stream::cut)
    }

    fn flush_pending(&mut self, py: Python<'_>, wall: f64) -> PyResult<Vec<PyObject>> {
        self.run(py, |s| s.flush_pending(wall))
    }

    fn rename(&mut self, path: String) {
        self.inner.rename(path);
    }
}

fn fields_from_py(
    items: Vec<(String, Option<Bound<'_, PyAny>>)>,
) -> PyResult<Vec<(payload::Key, Value)>> {
    items
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                None => Value::None,
                Some(v) if v.is_instance_of::<pyo3::types::PyString>() => Value::Str(v.extract()?),
                Some(v) => Value::Int(v.str()?.extract()?),
            };
            Ok((payload::Key::from(k), value))
        })
        .collect()
}

/// One LogGroup `Logs` entry (tests compare it with LogEncoder.encode_log).
#[pyfunction]
fn encode_log<'py>(
    py: Python<'py>,
    fields: Vec<(String, Option<Bound<'py, PyAny>>)>,
    time: i64,
    time_ns: u32,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let fields = fields_from_py(fields)?;
    // Room as a batch buffer has: the tests then judge the paths a Stream's records take (a
    // content's fixed-size block is written only into room the buffer has).
    let room = fields.iter().map(|(k, v)| match v {
        payload::Value::Str(s) | payload::Value::Int(s) => k.len() + s.len() + 128,
        payload::Value::None => 0,
    });
    let mut out = Vec::with_capacity(room.sum());
    let mut keys = encode::KeyCache::new();
    encode::loggroup::encode_log_cached(&mut out, &fields, time, time_ns, &mut keys);
    Ok(pyo3::types::PyBytes::new(py, &out))
}

/// Topic, Source and LogTags of a LogGroup (tests compare it with encode_trailer).
#[pyfunction]
fn encode_trailer<'py>(
    py: Python<'py>,
    topic: &str,
    source: &str,
    tags: Vec<(String, String)>,
) -> Bound<'py, pyo3::types::PyBytes> {
    pyo3::types::PyBytes::new(py, &encode::loggroup::encode_trailer(topic, source, &tags))
}

/// One NDJSON line with the envelope of (topic, source, tags) (tests compare it with the
/// Python encoder).
#[pyfunction]
fn encode_line<'py>(
    py: Python<'py>,
    fields: Vec<(String, Option<Bound<'py, PyAny>>)>,
    time: i64,
    time_ns: u32,
    topic: &str,
    source: &str,
    tags: Vec<(String, String)>,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let fields = fields_from_py(fields)?;
    let closing = encode::ndjson::envelope_closing(&encode::ndjson::envelope(topic, source, &tags));
    let mut out = Vec::new();
    let mut keys = encode::KeyCache::new();
    encode::ndjson::encode_line_cached(&mut out, &fields, time, time_ns, &closing, &mut keys);
    Ok(pyo3::types::PyBytes::new(py, &out))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(count_lines, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_guard, m)?)?;
    m.add_function(wrap_pyfunction!(encode_log, m)?)?;
    m.add_function(wrap_pyfunction!(encode_trailer, m)?)?;
    m.add_function(wrap_pyfunction!(encode_line, m)?)?;
    m.add_function(wrap_pyfunction!(mask_text, m)?)?;
    m.add_class::<Records>()?;
    m.add_class::<Stream>()?;
    m.add_class::<Parser>()?;
    m.add_class::<LlmAggregate>()?;
    m.add_class::<BatchBytes>()?;
    m.add_class::<ReadBuffer>()?;
    m.add_class::<ReadChunk>()?;
    m.add_function(wrap_pyfunction!(set_spare_limit, m)?)?;
    m.add_function(wrap_pyfunction!(spare_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(lz4_block, m)?)?;
    m.add_function(wrap_pyfunction!(set_lz4_spares, m)?)?;
    m.add_function(wrap_pyfunction!(lz4_spares, m)?)?;
    m.add_function(wrap_pyfunction!(lz4_release_idle, m)?)?;
    m.add("PatternError", m.py().get_type::<PatternError>())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::contained;

    #[test]
    fn a_panic_becomes_an_error_naming_the_file_and_offset() {
        let caught = contained("/var/log/app.log", 4096, || -> u32 {
            panic!("boom");
        });
        assert_eq!(
            caught,
            Err(
                "internal error in the compiled core reading /var/log/app.log at offset 4096"
                    .into()
            )
        );
    }

    #[test]
    fn without_a_panic_the_value_comes_back() {
        assert_eq!(contained("f", 0, || 7), Ok(7));
    }
}
