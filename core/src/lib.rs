//! Thin PyO3 binding of the compiled Stream (`llmtail._core`); the work is in the modules.
//! Every call runs with the GIL released and inside `catch_unwind`: a panic that escapes
//! anyway becomes a Python exception naming the file and offset, never a crash.

pub mod decode;
pub mod lines;
pub mod matcher;
pub mod multiline;
pub mod pattern;
pub mod payload;
mod printable;
pub mod pyrepr;
pub mod record;
pub mod timestamp;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::multiline::{Assembler, Frame};
use crate::payload::Value;
use crate::record::{ParserSettings, Record, RecordParser, SettingsError};

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
    }
}

/// Runs `f` without the GIL; a panic becomes a RuntimeError naming `what` and `offset`.
fn guarded<T: Send>(
    py: Python<'_>,
    what: &str,
    offset: u64,
    f: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    py.allow_threads(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|_| {
            PyRuntimeError::new_err(format!(
                "internal error in the compiled core reading {what} at offset {offset}"
            ))
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

fn record_to_py(py: Python<'_>, r: &Record, f: &Frame) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    for (k, v) in &r.fields {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    let t = PyTuple::new(
        py,
        [
            d.into_any().unbind(),
            r.time.into_pyobject(py)?.into_any().unbind(),
            r.time_ns.into_pyobject(py)?.into_any().unbind(),
            r.flags.into_pyobject(py)?.into_any().unbind(),
            f.end.into_pyobject(py)?.into_any().unbind(),
            f.size.into_pyobject(py)?.into_any().unbind(),
            f.line_no.into_pyobject(py)?.into_any().unbind(),
        ],
    )?;
    Ok(t.into_any().unbind())
}

/// Framing and parsing of one file, record by record: the debug binding the differential
/// tests compare with `parsers/` (each record as (fields, time, time_ns, flags, end, size,
/// line_no)). Not used on the data path.
#[pyclass(module = "llmtail._core")]
struct Records {
    parser: RecordParser,
    assembler: Assembler,
}

impl Records {
    fn parsed(&mut self, frames: Vec<Frame>) -> Vec<(Record, Frame)> {
        frames
            .into_iter()
            .map(|f| (self.parser.parse(&f), f))
            .collect()
    }

    fn out(py: Python<'_>, recs: Vec<(Record, Frame)>) -> PyResult<Vec<PyObject>> {
        recs.iter().map(|(r, f)| record_to_py(py, r, f)).collect()
    }
}

#[pymethods]
impl Records {
    #[new]
    #[pyo3(signature = (pattern, timezone, payload_separator, payload_fields, max_record_bytes, encoding, offset=0))]
    fn new(
        pattern: String,
        timezone: Option<String>,
        payload_separator: String,
        payload_fields: Vec<(String, String)>,
        max_record_bytes: i64,
        encoding: String,
        offset: u64,
    ) -> PyResult<Records> {
        let settings = ParserSettings {
            pattern,
            timezone,
            payload_separator,
            payload_fields,
            max_record_bytes,
            encoding,
        };
        let parser = catch_unwind(|| RecordParser::new(settings))
            .map_err(|_| PyRuntimeError::new_err("internal error in the compiled core"))?
            .map_err(settings_error)?;
        let assembler = parser.assembler(offset);
        Ok(Records { parser, assembler })
    }

    fn feed(&mut self, py: Python<'_>, data: &[u8], now: f64) -> PyResult<Vec<PyObject>> {
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler.feed(data, now, &mut frames);
            self.parsed(frames)
        })?;
        Self::out(py, recs)
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
        Self::out(py, recs)
    }

    fn drain(&mut self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let offset = self.assembler.offset();
        let recs = guarded(py, "<records>", offset, || {
            let mut frames = Vec::new();
            self.assembler.drain(&mut frames);
            self.parsed(frames)
        })?;
        Self::out(py, recs)
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_class::<Records>()?;
    m.add("PatternError", m.py().get_type::<PatternError>())?;
    Ok(())
}
