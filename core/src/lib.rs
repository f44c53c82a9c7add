//! Thin PyO3 binding of the compiled Stream (`llmtail._core`); the work is in the modules.
use pyo3::prelude::*;

/// The crate version, so Python can tell which core it loaded.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
