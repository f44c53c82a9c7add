//! The output wire forms: SLS LogGroup `Logs` entries and NDJSON lines.

pub mod loggroup;
pub mod ndjson;
