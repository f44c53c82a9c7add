"""Files written by real logback 1.2 parse back to exactly what the application logged.

The Java harness (tests/java) logs through the seed pattern with a plain FileAppender, an
AsyncAppender and size-and-time rolling (gzip or plain), and writes a truth sidecar of what it
asked logback to log. The first tests pin the harness itself (so a parser failure below is the
parser's); the last ones run the parser over every record of every generation.
"""

from __future__ import annotations

import gzip
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from llmtail.agent.engine.stream import StreamSettings
from llmtail.parsers.record import ParserSettings, RecordParser
from tests.realwriters import (
    JVM_TIMEZONE,
    SEED_PATTERN,
    Truth,
    abbreviate_logger,
    log_generations,
    logback_writer,
    read_ids,
    read_log_bytes,
    record_id,
    run_writer,
    start_writer,
    wait_until_writing,
)
from tests.test_core_stream import core_stream, plain, py_stream

__all__ = ["logback_writer"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.slow

RECORDS = {"plain": 600, "async": 600, "rolling-gz": 1500, "rolling-plain": 1500}
ROLL_SIZE = "16KB"  # logback checks sizes lazily, so files overshoot; small gives many rolls
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Written:
    log_dir: Path
    truth: list[Truth]
    caller_data: bool  # False behind an AsyncAppender: the file holds '?():?'


# (mode, the encoder's charset in Java and in Python): GBK is a JVM on Chinese Windows
WRITERS = [
    ("plain", "UTF-8"),
    ("async", "UTF-8"),
    ("rolling-gz", "UTF-8"),
    ("rolling-plain", "UTF-8"),
    ("plain", "GBK"),
]


@pytest.fixture(scope="module")
def written(
    logback_writer: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Written]:
    """Each mode's output, written once per module and shared by the tests that read it."""
    cache: dict[tuple[str, str], Written] = {}

    def get(mode: str, charset: str) -> Written:
        if (mode, charset) not in cache:
            log_dir = tmp_path_factory.mktemp(f"{mode}-{charset}") / "logs"
            truth = run_writer(
                log_dir,
                mode,
                RECORDS[mode],
                max_file_size=ROLL_SIZE,
                charset=charset,
                build=logback_writer,
            )
            cache[mode, charset] = Written(log_dir, truth, caller_data=mode != "async")
        return cache[mode, charset]

    return get


def _epoch_ms(stamp: str) -> int:
    local = datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=ZoneInfo(JVM_TIMEZONE))
    return round(local.timestamp() * 1000)


def _split_records(text: str) -> list[str]:
    """Independent of llmtail: a record starts at a line that starts with a timestamp."""
    records: list[str] = []
    for line in re.split(r"(?<=\n)", text):
        if not line:
            continue
        if len(line) > 24 and line[4] == "-" and line[10] == " " and line[19] == ".":
            records.append(line)
        else:
            records[-1] += line
    return records


def _expected_text(t: Truth, caller_data: bool) -> str:
    method, line = (t.method, str(t.line)) if caller_data else ("?", "?")
    logger = abbreviate_logger(t.logger)
    head = f"{t.level:<5} [traceId:{t.trace_id}] [{logger}#{method}():{line}] [{t.thread}] - "
    return f"{head}{t.message}\n{t.throwable or ''}"


@pytest.mark.parametrize(("mode", "charset"), WRITERS)
def test_harness_files_hold_what_logback_was_asked_to_log(
    written: Callable[[str, str], Written], mode: str, charset: str
) -> None:
    out = written(mode, charset)
    text = "".join(read_log_bytes(p).decode(charset) for p in log_generations(out.log_dir))
    records = _split_records(text)
    assert len(records) == len(out.truth) == RECORDS[mode]
    for record, truth in zip(records, out.truth, strict=True):
        stamp, rest = record[:23], record[24:]
        assert truth.ts_min_ms <= _epoch_ms(stamp) <= truth.ts_max_ms, (truth.seq, stamp)
        assert rest == _expected_text(truth, out.caller_data), truth.seq
    # the shapes design.md section 4 describes, as logback really writes them
    assert " INFO  [traceId:" in text and " WARN  [traceId:" in text
    assert " DEBUG [traceId:" in text and " ERROR [traceId:" in text and " TRACE [" in text
    assert "[traceId:] [" in text
    assert "#?():?]" in text if mode == "async" else "#?():?]" not in text
    assert "] [o.a.c.c.C.[.[.[/]#" in text and "[c.a.c.s.i.ChatServiceImpl#" in text
    assert "\n\tSuppressed: " in text and "\nCaused by: " in text
    assert " common frames omitted\n" in text
    if out.caller_data:
        assert "#lambda$chat$0():" in text


@pytest.mark.parametrize("mode", ["rolling-gz", "rolling-plain"])
def test_rolled_generations_hold_every_record_once(
    written: Callable[[str, str], Written], mode: str
) -> None:
    out = written(mode, "UTF-8")
    names = sorted(p.name for p in out.log_dir.iterdir())
    suffix = ".log.gz" if mode == "rolling-gz" else ".log"
    rolled = [n for n in names if n != "app.log" and n.endswith(suffix)]
    assert len(rolled) >= 2, names
    assert set(names) == {"app.log", *rolled}, "a .tmp left behind: gzip not finished"
    if mode == "rolling-gz":
        for name in rolled:
            gzip.decompress((out.log_dir / name).read_bytes())  # complete, valid members
    assert read_ids(out.log_dir) == [t.seq for t in out.truth]


def test_sigterm_stops_a_paced_writer_cleanly(logback_writer: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    rate = 400.0
    proc = start_writer(
        log_dir, "rolling-gz", records=0, rate=rate, max_file_size="4KB", build=logback_writer
    )
    began = time.monotonic()
    wait_until_writing(log_dir)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - began
    assert proc.returncode in (0, 143), err.decode(errors="replace")  # 143: JVM ended by TERM
    ids = read_ids(log_dir)
    assert ids == list(range(1, len(ids) + 1))  # a prefix of the sequence: none lost, none twice
    assert 10 <= len(ids) <= rate * elapsed + 10  # it wrote while running, and paced itself
    assert not [p for p in log_dir.iterdir() if p.name.endswith(".tmp")]


def test_abbreviation_matches_logback_for_the_documented_names() -> None:
    assert abbreviate_logger("com.alibaba.cloud.service.impl.ChatServiceImpl") == (
        "c.a.c.s.i.ChatServiceImpl"
    )
    assert abbreviate_logger("org.apache.catalina.core.ContainerBase.[Tomcat].[localhost].[/]") == (
        "o.a.c.c.C.[.[.[/]"
    )
    assert abbreviate_logger("audit") == "audit"


def test_generations_are_read_oldest_first(tmp_path: Path) -> None:
    names = [
        "app.log",
        "app.2025-07-10.0.log.gz",
        "app.2025-07-09.10.log.gz",
        "app.2025-07-09.2.log",
        "app.2025-07-10.1.log712335468963.tmp",
        "app.log.2.gz",
        "app.log.1",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    assert [p.name for p in log_generations(tmp_path)] == [
        "app.2025-07-09.2.log",
        "app.2025-07-09.10.log.gz",
        "app.2025-07-10.0.log.gz",
        "app.2025-07-10.1.log712335468963.tmp",
        "app.log.2.gz",
        "app.log.1",
        "app.log",
    ]


def test_record_id_reads_both_id_forms() -> None:
    assert record_id("seq=42 chat completed") == 42
    assert record_id("app,chat,qwen-max,ws,3de3a3f7-32b9-b953-ebcc-000000000017,200,") == 17
    assert record_id("no id here") is None


# --- the parser over real files ----------------------------------------------------------


def _settings(encoding: str) -> ParserSettings:
    return ParserSettings(pattern=SEED_PATTERN, timezone=JVM_TIMEZONE, encoding=encoding)


def _parse_all(log_dir: Path, encoding: str, chunk: int = 4093) -> list[Any]:
    """Each generation read as backfill would: one assembler per file, odd-sized chunks that
    split lines and UTF-8 sequences, drained at the end."""
    parser = RecordParser(_settings(encoding))
    records = []
    for path in log_generations(log_dir):
        data = read_log_bytes(path)
        asm = parser.assembler(0)
        frames = []
        for at in range(0, len(data), chunk):
            frames += asm.feed(data[at : at + chunk], 0.0)
        frames += asm.drain()
        assert frames[-1].end == len(data), path.name
        records += [parser.parse(frame) for frame in frames]
    return records


@pytest.mark.parametrize(("mode", "charset"), WRITERS)
def test_parser_reads_every_real_record_exactly(
    written: Callable[[str, str], Written], mode: str, charset: str
) -> None:
    out = written(mode, charset)
    records = _parse_all(out.log_dir, encoding=charset.lower())
    assert len(records) == len(out.truth)
    for record, truth in zip(records, out.truth, strict=True):
        fields = record.fields
        assert not fields.get("parse_error"), (truth.seq, fields)
        event_ms = record.time * 1000 + record.time_ns // 1_000_000
        assert truth.ts_min_ms <= event_ms <= truth.ts_max_ms, truth.seq
        assert _epoch_ms(str(fields["time"])) == event_ms
        expected = {
            "level": truth.level,
            "trace_id": truth.trace_id,
            "logger": abbreviate_logger(truth.logger),
            "method": truth.method if out.caller_data else "?",
            "line": truth.line if out.caller_data else None,
            "thread": truth.thread,
            "event": truth.event,
            "message": truth.full_message,
            **(truth.payload or {}),
        }
        assert {key: fields.get(key) for key in expected} == expected, truth.seq


@pytest.mark.parametrize("wire", ["ndjson", "loggroup"])
@pytest.mark.parametrize(("mode", "charset"), WRITERS)
def test_the_core_seals_the_same_batches_as_the_reference_over_real_files(
    written: Callable[[str, str], Written], mode: str, charset: str, wire: str
) -> None:
    """The test above proves the reference reads Logback's files exactly; the compiled core must
    give the same sealed batches, byte for byte, over the same real files and odd chunks."""
    out = written(mode, charset)
    settings = StreamSettings(parser=_settings(charset.lower()), wire=wire, source="10.0.0.1")
    records = 0
    for path in log_generations(out.log_dir):
        data = read_log_bytes(path)
        got = {}
        for name, stream in (
            ("core", core_stream(settings, "k", str(path), 0, 0)),
            ("python", py_stream(settings, "k", str(path), 0, 0)),
        ):
            batches = []
            for at in range(0, len(data), 4093):
                batches += stream.feed(data[at : at + 4093], 1.0, 1.8e9)
            batches += stream.drain(1.8e9)
            got[name] = [plain(b) for b in batches]
        assert got["core"] == got["python"], path.name
        assert all(not b["parse_errors"] for b in got["core"]), path.name
        records += sum(b["records"] for b in got["core"])
    assert records == len(out.truth)
