"""The file and stdout outputs: durable appends, errors held and retried, a closed pipe."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmtail.agent.config import FileOutput
from llmtail.agent.delivery.file import FileSink
from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.engine.ndjson import encode_line
from llmtail.agent.engine.stream import SealedBatch
from llmtail.parsers.record import Record
from tests.batches import sealed


def batch(seq: int, *messages: str, key: str = "a", **overrides: Any) -> SealedBatch:
    records = [Record({"event": "log", "message": m}, time=1_700_000_000) for m in messages]
    return sealed(records, key, size=10, seq=seq, **overrides)


def sink_at(path: Path, **kw: Any) -> FileSink:
    return FileSink(FileOutput(type="file", path=str(path)), **kw)


def encode_records(records: list[Record]) -> bytes:
    return b"".join(encode_line(r.fields, r.time or 0, r.time_ns, b"}\n") for r in records)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_line_holds_the_fields_then_what_sls_would_receive(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    sink = FileSink(FileOutput(type="file", path=str(out), topic="t", tags={"team": "ai"}))
    sink.send(
        batch(0, "hello", topic="t", source="10.1.2.3", tags=(("team", "ai"),), hostname="box")
    )
    (line,) = lines(out)
    assert list(line) == [
        "event",
        "message",
        "__time__",
        "__time_ns__",
        "__topic__",
        "__source__",
        "__tag__:__hostname__",
        "__tag__:__path__",
        "__tag__:__pack_id__",
        "__tag__:team",
    ]
    assert line["__tag__:__path__"] == "/logs/a.log"
    assert line["__tag__:__hostname__"] == "box"


def test_a_restarted_sink_appends_after_what_is_there(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    for seq in range(2):
        sink = sink_at(out)
        assert sink.send(batch(seq, f"m{seq}")) is Outcome.DELIVERED
        sink.close()
    assert [line["message"] for line in lines(out)] == ["m0", "m1"]


def test_an_output_file_moved_away_is_recreated_at_the_configured_path(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    sink = sink_at(out)
    sink.send(batch(0, "before"))
    out.rename(tmp_path / "out.ndjson.1")
    sink.send(batch(1, "after"))
    assert [line["message"] for line in lines(out)] == ["after"]
    assert [line["message"] for line in lines(tmp_path / "out.ndjson.1")] == ["before"]


def test_a_write_error_is_logged_once_held_and_delivered_once_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output directory should be")
    out = blocker / "records.ndjson"
    retries = threading.Semaphore(0)
    sink = sink_at(out, initial_backoff=0.01, max_backoff=0.02, on_retry=retries.release)
    result: list[Outcome] = []
    sender = threading.Thread(target=lambda: result.append(sink.send(batch(0, "kept"))))
    with caplog.at_level(logging.WARNING):
        sender.start()
        for _ in range(5):
            assert retries.acquire(timeout=10)
        blocker.unlink()  # the operator fixes the path
        sender.join(timeout=10)
    assert result == [Outcome.DELIVERED]
    assert [line["message"] for line in lines(out)] == ["kept"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "holding the data" in errors[0].getMessage()


def test_disk_full_never_reports_delivery_and_abort_ends_the_wait_promptly() -> None:
    retries = threading.Semaphore(0)
    sink = sink_at(Path("/dev/full"), initial_backoff=5.0, on_retry=retries.release)
    result: list[Outcome] = []
    sender = threading.Thread(target=lambda: result.append(sink.send(batch(0, "x" * 1000))))
    sender.start()
    assert retries.acquire(timeout=10)  # the first write failed with ENOSPC; now backing off 5 s
    started = time.monotonic()
    sink.abort()
    sender.join(timeout=10)
    assert result == [Outcome.ABORTED]
    assert time.monotonic() - started < 1.0
    sink.close()


FILE_SIZE_LIMITED_WRITER = textwrap.dedent(
    """
    import resource, signal, sys, threading
    from llmtail.agent.config import FileOutput
    from llmtail.agent.delivery.file import FileSink
    from llmtail.parsers.record import Record
    from tests.batches import sealed

    def batch(seq, tag):
        return sealed([Record({"message": f"{tag}-{i}-" + "x" * 80}, 1) for i in range(200)])

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    retried = threading.Event()
    sink = FileSink(FileOutput(type="file", path=sys.argv[1]),
                    initial_backoff=0.01, max_backoff=0.05, on_retry=retried.set)
    print(sink.send(batch(0, "first")).value)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, hard))  # the disk fills mid-batch
    sender = threading.Thread(target=lambda: print(sink.send(batch(1, "second")).value))
    sender.start()
    retried.wait(10)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is freed
    sender.join(10)
    """
)


def test_a_write_cut_short_by_a_full_disk_leaves_no_torn_or_doubled_line(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    done = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED_WRITER, str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["delivered", "delivered"], done.stderr
    assert "File too large" in done.stderr  # the failure was real, and logged
    messages = [line["message"].rsplit("-", 1)[0] for line in lines(out)]
    expected = [f"{tag}-{i}" for tag in ("first", "second") for i in range(200)]
    assert messages == expected


def test_values_orjson_refuses_are_written_as_text_instead_of_crashing() -> None:
    record = Record({"message": "bad \udcff byte", "total_tokens": 10**30}, time=7)
    (line,) = [orjson.loads(x) for x in encode_records([record]).splitlines()]
    assert line["message"] == "bad \ufffd byte"
    assert line["total_tokens"] == str(10**30)
    assert line["__time__"] == 7


def test_one_odd_record_does_not_change_how_its_neighbours_are_written() -> None:
    records = [
        Record({"message": "first", "line": 1}, time=10, time_ns=5),
        Record({"message": "lone \udcff"}, time=11),
        Record({}, time=12),
        Record({"message": "last", "line": None}, time=13),
    ]
    decoded = [orjson.loads(x) for x in encode_records(records).splitlines()]
    assert decoded == [
        {"message": "first", "line": 1, "__time__": 10, "__time_ns__": 5},
        {"message": "lone \ufffd", "__time__": 11, "__time_ns__": 0},
        {"__time__": 12, "__time_ns__": 0},
        {"message": "last", "line": None, "__time__": 13, "__time_ns__": 0},
    ]


BROKEN_PIPE_WRITER = textwrap.dedent(
    """
    import sys
    from llmtail.agent.config import StdoutOutput
    from llmtail.agent.delivery.sink import Outcome
    from llmtail.agent.delivery.stdout import StdoutSink
    from llmtail.parsers.record import Record
    from tests.batches import sealed

    sink = StdoutSink(StdoutOutput(type="stdout"))
    b = sealed([Record({"message": "x" * 200}, 1) for i in range(50)])
    for seq in range(100_000):
        if sink.send(b) is Outcome.ABORTED:
            print("aborted at", seq, file=sys.stderr)
            break
    sink.close()
    """
)


def test_stdout_closed_by_its_reader_aborts_sends_without_a_traceback() -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", BROKEN_PIPE_WRITER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout is not None
    assert orjson.loads(writer.stdout.readline())["message"] == "x" * 200
    writer.stdout.close()  # like `| head -n 1`
    _, err = writer.communicate(timeout=30)
    assert writer.returncode == 0
    assert b"aborted at" in err
    assert b"Traceback" not in err


def test_a_line_torn_by_a_crash_is_cut_before_appending(tmp_path: Path) -> None:
    """kill -9 during a write leaves half a line; the next agent must not glue onto it."""
    out = tmp_path / "records.ndjson"
    out.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    sink = sink_at(out)
    try:
        assert sink.send(batch(1, "after the crash")) is Outcome.DELIVERED
    finally:
        sink.close()
    lines = out.read_bytes().splitlines()
    assert lines[:2] == [b'{"a":1}', b'{"b":2}']
    assert all(orjson.loads(line) for line in lines)
    assert len(lines) == 3
