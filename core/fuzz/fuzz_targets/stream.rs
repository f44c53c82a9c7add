//! The whole Stream on arbitrary bytes: settings drawn from the first bytes (pattern, encoding,
//! wire, size cap, batch limits, masking), the rest cut into chunks at input-chosen places,
//! idle flushes between them, then a drain. Besides "never panics" it checks what holds for
//! every input: every byte fed ends in exactly one record (the batches' raw bytes add up to
//! the input and the last batch ends at its end), the offset is the bytes fed, and each
//! batch's bounds, times and NDJSON lines agree with its record count.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmtail_core::mask::MaskSettings;
use llmtail_core::record::ParserSettings;
use llmtail_core::stream::{Sealed, Stream, StreamSettings, Wire};

const PATTERNS: [&str; 7] = [
    "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] [%thread] - %m%n",
    "%d{HH:mm:ss dd} %m",
    "%d{ISO8601} [%thread] %-5level %logger{36} - %msg%n",
    "%d %-5p [%t] %c - %m%n%ex",
    "%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX} %p %c: %m%n",
    "[%d{yyyy-MM-dd HH:mm:ss}] %m [%thread]%n",
    "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p %m",
];
const CAPS: [i64; 4] = [512 * 1024, 300, 40, 1];
const ZONES: [&str; 3] = ["UTC", "Asia/Shanghai", "America/New_York"];

fn fields(names: &[(&str, &str)]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|(n, k)| ((*n).to_string(), (*k).to_string()))
        .collect()
}

fn settings(h: [u8; 4]) -> StreamSettings {
    let payload = fields(&[
        ("app", "str"),
        ("module", "str"),
        ("model", "str"),
        ("workspace", "str"),
        ("request_id", "str"),
        ("status_code", "int"),
        ("duration_ms", "int"),
        ("input_tokens", "int"),
        ("output_tokens", "int"),
        ("total_tokens", "int"),
        ("error_code", "str"),
        ("error_message", "str"),
    ]);
    StreamSettings {
        parser: ParserSettings {
            pattern: PATTERNS[usize::from(h[0]) % PATTERNS.len()].to_string(),
            timezone: Some(ZONES[usize::from(h[0] >> 4) % ZONES.len()].to_string()),
            payload_separator: if h[1] & 0x80 != 0 { "|" } else { "," }.to_string(),
            payload_fields: payload,
            feedback_fields: Some(fields(&[
                ("request_id", "str"),
                ("rating", "str"),
                ("comment", "str"),
            ])),
            max_record_bytes: CAPS[usize::from(h[1]) % CAPS.len()],
            encoding: if h[1] & 0x40 != 0 { "gbk" } else { "utf-8" }.to_string(),
        },
        wire: match (h[1] & 0x20 != 0, h[2] & 1 != 0) {
            (true, _) => Wire::Count,
            (false, true) => Wire::Ndjson,
            (false, false) => Wire::LogGroup,
        },
        max_records: [4096, 3, 1][usize::from(h[2] >> 1) % 3],
        max_bytes: [3 << 20, 700, 1][usize::from(h[2] >> 3) % 3],
        linger: 1.0,
        partial_after: 60.0,
        pending_after: 5.0,
        topic: "t".into(),
        source: "10.0.0.1".into(),
        hostname: "h".into(),
        tags: vec![("env".into(), "prod".into())],
        since: None,
        until: None,
        max_label_sets: [2000, 2, 1][usize::from(h[3]) % 3],
        mask: (h[3] & 0x80 != 0).then(|| MaskSettings {
            enabled: true,
            rules: Vec::new(),
            replace: Vec::new(),
            max_field_bytes: if h[3] & 0x40 != 0 { 24 } else { 512 * 1024 },
            key: None,
            custom: Vec::new(),
        }),
    }
}

fn check(batch: &Sealed, wire: Wire, fed: u64) {
    let n = usize::try_from(batch.records).unwrap_or(usize::MAX);
    assert_eq!(batch.bounds.len(), 4 * n, "a bound per record");
    assert_eq!(batch.times.len(), 4 * n, "a time per record");
    assert!(batch.end <= fed, "a batch ends within the bytes fed");
    if let Some(last) = batch.bounds.rchunks_exact(4).next() {
        let end = u32::from_le_bytes([last[0], last[1], last[2], last[3]]);
        assert_eq!(
            end as usize,
            batch.data.len() - batch.trailer.len(),
            "the last bound is the logs' end (the trailer follows them)"
        );
    }
    assert!(batch.data.ends_with(&batch.trailer), "the trailer ends the data");
    if wire == Wire::Count {
        assert!(batch.data.is_empty(), "the count wire encodes nothing");
    }
    if wire == Wire::Ndjson {
        let lines = batch.data.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines, n, "one NDJSON line per record");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((head, rest)) = input.split_first_chunk::<6>() else {
        return;
    };
    let s = settings([head[0], head[1], head[2], head[3]]);
    let wire = s.wire;
    let Ok(mut stream) = Stream::new(s, None, "/var/log/app.log".into(), 0, "AB".into(), 0) else {
        return;
    };
    // Chunk sizes cycle through two input bytes (0 means 1), idle checks between chunks.
    let sizes = [usize::from(head[4]) + 1, usize::from(head[5]) * 7 + 1];
    let mut batches = Vec::new();
    let (mut at, mut i, mut now) = (0usize, 0usize, 0.0f64);
    while at < rest.len() {
        let end = (at + sizes[i % 2]).min(rest.len());
        let chunk = rest.get(at..end).unwrap_or_default();
        batches.extend(stream.feed(chunk, now, 1e9 + now));
        now += if head[5] & 1 != 0 { 0.7 } else { 6.0 };
        batches.extend(stream.due(now, 1e9 + now, i % 3 != 0));
        at = end;
        i += 1;
    }
    batches.extend(stream.drain(1e9 + now));
    let fed = rest.len() as u64;
    assert_eq!(stream.offset(), fed, "the offset is the bytes fed");
    let mut last_end = 0;
    let mut raw = 0;
    for b in &batches {
        check(b, wire, fed);
        assert!(b.end >= last_end, "batches end in file order");
        last_end = b.end;
        raw += b.raw_bytes;
    }
    assert_eq!(raw, fed, "every byte fed is in exactly one record");
    if fed > 0 {
        assert_eq!(
            last_end, fed,
            "after a drain the last batch ends at the end"
        );
    }
    assert_eq!(stream.pending_bytes(), 0, "nothing is held after a drain");
});
