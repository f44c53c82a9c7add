"""`llmtail backfill`: load old log files (plain or gzip) once, in the order they were written.

The same stages as `run` (Ingest, Batcher, Dispatcher, AckTracker, the configured sink), fed by
whole files instead of the watcher, with their own state (agent.state.backfill_state) instead of the
live checkpoints. Decisions made here:

- Order: by the time of each file's first parsable record (files without one: by mtime), so
  `app.log.2.gz` goes before `app.log.1` whatever the names say.
- Resume: per file content, the offset every record before which is final. A rerun continues
  from there; a file done and unchanged on disk is not even opened.
- `--since` (inclusive) / `--until` (exclusive): records outside are skipped and counted. A record
  without a reliable time of its own (one that did not parse: a banner, a stray line) follows the
  record before it in the same file, as it was written then; at the start of a read it is kept.
- Interrupted (SIGINT/SIGTERM): reading stops, what is in flight is delivered until
  `shutdown_timeout`, the state is saved, exit 130 (SIGINT) or 143 (SIGTERM); rerun the same
  command to go on. kill -9 loses nothing either: at most the records in flight and those
  acknowledged in the last state-save interval are sent again.
- Exit 0: everything delivered. Exit 1: some records were not (refused by the output, dropped
  by `time_policy: reject`, or a damaged .gz could not be read to its end): the files are named.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Protocol, TextIO, runtime_checkable
from zoneinfo import ZoneInfo

from agent.config import Config, load_config
from agent.delivery.dispatch import Dispatcher
from agent.delivery.sink import Outcome, Sink
from agent.engine.acks import AckTracker
from agent.engine.batcher import Batcher
from agent.engine.envelope import EnvelopeMaker
from agent.engine.events import Batch, Event
from agent.engine.ingest import Ingest
from agent.modes.pipeline import UserError, build_sink, envelope_maker, parsers_for_inputs
from agent.modes.ratelimit import Rate, TokenBucket, parse_rate
from agent.modes.validate import validate_files
from agent.ops.logsetup import setup_logging
from agent.ops.progress import Progress, Snapshot, Summary
from agent.reading.fingerprint import HEAD_BYTES
from agent.reading.wholefile import DamagedFileError, PathError, expand_paths, is_gzip, read_chunks
from agent.state.backfill_state import LOCK_NAME, BackfillState, FileProgress
from agent.state.checkpoint import CheckpointError, StateDirLock
from parsers.record import RecordParser

log = logging.getLogger(__name__)

# Small enough that a truncated .gz loses little (reading recovers whole chunks) and that
# --max-rate is smooth; big enough that per-chunk overhead does not show.
CHUNK_SIZE = 64 * 1024
PROBE_BYTES = 256 * 1024  # how far into a file to look for its first timestamp
SAVE_INTERVAL = 0.1  # seconds: a kill -9 re-sends what was in flight plus this much delivery
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


# -- the time window ------------------------------------------------------------------------


def parse_when(text: str, timezone: str | None, option: str) -> float:
    """`2025-07-09`, `2025-07-09 14:00`, `2025-07-09T14:00:00` in the parser's zone -> epoch s."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected a date or time like 2025-07-09, 2025-07-09 14:00 "
            "or 2025-07-09T14:00:00"
        ) from None
    if when.tzinfo is None:
        zone = ZoneInfo(timezone) if timezone else None
        when = when.replace(tzinfo=zone) if zone else when.astimezone()
    return when.timestamp()


class WindowFilter:
    """Keeps events with since <= time < until; counts the rest by side."""

    def __init__(self, since: float | None, until: float | None) -> None:
        self._since = since
        self._until = until
        self._side: dict[str, int] = {}  # per file, the last timed record: -1 before, 0 in, 1 after
        self.before = 0
        self.after = 0

    def keep(self, events: list[Event]) -> list[Event]:
        if self._since is None and self._until is None:
            return events
        kept = []
        since, until = self._since, self._until
        for event in events:
            record = event.record
            if "__raw_log__" in record.fields:
                side = self._side.get(event.source, 0)
            else:
                t = (record.time or 0) + record.time_ns / 1e9
                side = -1 if since is not None and t < since else 0
                side = 1 if until is not None and t >= until else side
                self._side[event.source] = side
            if side == 0:
                kept.append(event)
            elif side < 0:
                self.before += 1
            else:
                self.after += 1
        return kept


# -- planning: which files, in which order, from where ----------------------------------------


@dataclass(slots=True)
class PlannedFile:
    path: str
    input_index: int
    head: bytes  # the first HEAD_BYTES of its decompressed content
    first_time: float  # its first record's time, or its mtime
    disk_size: int
    content_size: int  # decompressed size (a .gz's ISIZE trailer), for the ETA
    progress: FileProgress | None = None  # set by `plan`
    same_as: str | None = None  # a path read in this run with the same content

    def complete(self, p: FileProgress) -> bool:
        """Delivered to its end already: unchanged on disk, or since renamed or compressed
        (a .gz trailer holds its content size mod 2**32, which then equals the offset)."""
        return p.done and (p.disk_size == self.disk_size or self.content_size == p.offset % 2**32)

    @property
    def unreadable(self) -> bool:
        """Bytes on disk but no content at all: a .gz damaged in its first block."""
        return not self.head and self.disk_size > 0


def input_index_for(config: Config, path: str) -> int:
    """The input whose globs name `path` (its encoding applies); else the first input."""
    for i, inp in enumerate(config.inputs):
        if any(fnmatch.fnmatch(path, pattern) for pattern in inp.paths):
            return i
    return 0


def probe(path: str, parser: RecordParser, input_index: int) -> PlannedFile:
    """Read a file's head: its fingerprint and the time of its first parsable record."""
    st = os.stat(path)
    data = bytearray()
    try:
        for chunk in read_chunks(path, 0, CHUNK_SIZE):
            data += chunk
            if len(data) >= PROBE_BYTES:
                break
    except DamagedFileError:
        pass  # what was recovered is the head; the damage is reported when the file is read
    first_time = st.st_mtime
    assembler = parser.assembler(0)
    for frame in assembler.feed(bytes(data), 0.0) + assembler.drain():
        record = parser.parse(frame)
        if record.time is not None and "__raw_log__" not in record.fields:
            first_time = record.time + record.time_ns / 1e9
            break
    content_size = st.st_size
    if is_gzip(path):
        content_size = _gzip_content_size(path, st.st_size)
    return PlannedFile(
        path, input_index, bytes(data[:HEAD_BYTES]), first_time, st.st_size, content_size
    )


def _gzip_content_size(path: str, disk_size: int) -> int:
    """The ISIZE trailer (content size mod 2**32), for the ETA; a guess when it is implausible
    (a truncated file ends in compressed data, not in a trailer)."""
    guess = disk_size * 8
    if disk_size < 18:
        return guess
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        size: int = struct.unpack("<I", f.read(4))[0]
    # Deflate cannot expand data by more than a few bytes, nor compress it beyond ~1032:1.
    return size if disk_size - 64 <= size <= disk_size * 1032 else guess


def plan(
    paths: Sequence[str],
    config: Config,
    parsers: Sequence[RecordParser],
    state: BackfillState | None,
) -> list[PlannedFile]:
    """Probe, order by content time, and match each file to its saved progress."""
    files = []
    for path in paths:
        index = input_index_for(config, path)
        try:
            files.append(probe(path, parsers[index], index))
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    files.sort(key=lambda f: (f.first_time, f.path))
    if state is None:
        return files
    claimed: dict[str, str] = {}
    for f in files:
        if not f.head:
            continue  # empty: nothing to send, nothing to remember
        progress = state.find(f.head) or state.add(f.path, f.head)
        if progress.key in claimed:
            f.same_as = claimed[progress.key]
            continue
        claimed[progress.key] = f.path
        f.progress = progress
    return files


# -- the run ----------------------------------------------------------------------------------


@runtime_checkable
class _SinkStats(Protocol):
    restamped_logs: int
    rejected_logs: int


@dataclass(slots=True)
class _Finished:
    """A file read to its end whose last batches may still be in flight."""

    end: int
    last_batch_end: int  # -1: no batch was cut from this read
    damaged: int
    disk_size: int


class Backfill:
    """Reads planned files through Ingest -> window -> rate limit -> Batcher -> Dispatcher."""

    def __init__(
        self,
        config: Config,
        ingest: Ingest,
        dispatcher: Dispatcher,
        acks: AckTracker,
        state: BackfillState,
        window: WindowFilter,
        bucket: tuple[TokenBucket, Rate] | None,
        progress: Progress,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        b = config.batch
        self._config = config
        self._ingest = ingest
        self._batcher = Batcher(b.max_records, b.max_bytes, b.linger)
        self._dispatcher = dispatcher
        self._acks = acks
        self._state = state
        self._window = window
        self._bucket = bucket
        self._progress = progress
        self._stop = stop
        self._clock = clock
        self._reading: dict[str, int] = {}  # key -> offset its read started at
        self._last_end: dict[str, int] = {}  # key -> highest end offset handed to a batch
        self._finished: dict[str, _Finished] = {}
        self._paths: dict[str, str] = {}
        self._next_save = 0.0
        self.summary = Summary()
        self._files_total = 0
        self._files_done = 0
        self._bytes_total = 0
        self.failed_hard = False  # the output stopped accepting records outside a shutdown
        self._lock = threading.Lock()

    def on_batch_done(self, batch: Batch, outcome: Outcome, _seconds: float) -> None:
        """Called from sender threads."""
        if outcome is Outcome.REJECTED:
            with self._lock:
                self.summary.rejected += len(batch.events)
                self.summary.rejected_files.update(e.path for e in batch.events[:1])
        elif outcome is Outcome.ABORTED and not self._stop.is_set():
            log.error("the output stopped accepting records; stopping the backfill")
            self.failed_hard = True
            self._stop.set()

    def run(self, files: list[PlannedFile]) -> Summary:
        s = self.summary
        s.files = len(files)
        self._files_total = len(files)
        for f in files:
            p = f.progress
            if f.same_as is not None:
                s.same_content.append((f.path, f.same_as))
                self._files_done += 1
            elif p is not None and f.complete(p):
                p.path, p.disk_size = f.path, f.disk_size  # renamed or compressed since
                s.files_complete_before += 1
                s.bytes_already_delivered += p.offset
                if p.damaged >= 0:
                    s.damaged[f.path] = p.damaged
                self._files_done += 1
            elif p is not None:
                self._bytes_total += max(0, f.content_size - p.offset)
            else:
                if f.unreadable:
                    s.damaged[f.path] = 0
                self._files_done += 1  # empty: nothing to send
        for f in files:
            if self._stop.is_set():
                break
            if f.progress is not None and f.same_as is None and not f.complete(f.progress):
                self._read(f, f.progress)
        if not self._stop.is_set():
            while not self._dispatcher.wait_idle(SAVE_INTERVAL) and not self._stop.is_set():
                self._tick()
        self._settle()
        return s

    def _read(self, f: PlannedFile, p: FileProgress) -> None:
        key, start = p.key, p.offset
        p.path, p.done = f.path, False
        self.summary.bytes_already_delivered += start
        if start:
            log.info("%s: resuming after %d bytes already delivered", f.path, start)
        self._ingest.open(key, f.path, start, f.input_index)
        self._reading[key] = start
        self._paths[key] = f.path
        end, damaged = start, -1
        try:
            for chunk in read_chunks(f.path, start, CHUNK_SIZE):
                end += len(chunk)
                self.summary.bytes_read += len(chunk)
                self._push(self._ingest.feed(key, chunk, 0.0))
                self._wait_for_room()
                if self._stop.is_set():
                    return  # the pending record is read again on the next run
        except DamagedFileError as exc:
            damaged = exc.recovered
            # A CRC failure is only noticed at the end: what was read may hold garbage.
            self.summary.why_damaged[f.path] = exc.reason
            log.warning("%s", exc)
        except OSError as exc:  # vanished or unreadable since it was probed
            log.error("%s: cannot read: %s", f.path, exc.strerror or exc)
            self._ingest.finish(key)  # dropped: its offset stays where delivery got
            return  # listed as not finished; what was delivered is saved
        self._push(self._ingest.finish(key))  # a partial last line is shipped
        for batch in self._batcher.drain(key):
            self._submit(batch)
        self._finished[key] = _Finished(end, self._last_end.get(key, -1), damaged, f.disk_size)
        self._tick()

    def _push(self, events: list[Event]) -> None:
        s = self.summary
        kept = self._window.keep(events)
        s.skipped_before, s.skipped_after = self._window.before, self._window.after
        if not kept:
            return
        if self._bucket is not None:
            bucket, rate = self._bucket
            amount = len(kept) if rate.unit == "records" else sum(e.size for e in kept)
            delay = bucket.take(amount)
            deadline = self._clock() + delay
            while delay > 0 and not self._stop.wait(min(delay, SAVE_INTERVAL)):
                self._tick()
                delay = deadline - self._clock()
        for event in kept:
            fields = event.record.fields
            s.events[str(fields.get("event", "raw"))] += 1
            if "parse_error" in fields:
                s.parse_errors += 1
            for batch in self._batcher.push(event, 0.0):
                self._submit(batch)
        s.records_read += len(kept)

    def _submit(self, batch: Batch) -> None:
        for key, end in batch.offsets.items():
            self._last_end[key] = max(end, self._last_end.get(key, -1))
        self._dispatcher.submit(batch)

    def _wait_for_room(self) -> None:
        self._tick()
        while self._dispatcher.room() <= 0 and not self._stop.is_set():
            self._dispatcher.wait_for_room(SAVE_INTERVAL)
            self._tick()

    def _tick(self) -> None:
        now = self._clock()
        if now < self._next_save:
            return
        self._next_save = now + SAVE_INTERVAL
        self._save()
        self._progress.update(self._snapshot())

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            self._files_done,
            self._files_total,
            self.summary.records_read,
            self.summary.bytes_read,
            self._bytes_total,
        )

    def _save(self) -> None:
        """Committed offsets into the state; files whose every batch is final become done."""
        committed = self._acks.committed()
        for key, base in list(self._reading.items()):
            p = self._state.files[key]
            offset = committed.get(key, base)
            fin = self._finished.get(key)
            if fin is not None and offset >= fin.last_batch_end:
                p.offset, p.done, p.disk_size, p.damaged = (
                    fin.end,
                    True,
                    fin.disk_size,
                    fin.damaged,
                )
                if fin.damaged >= 0:
                    self.summary.damaged[self._paths[key]] = fin.damaged
                del self._reading[key], self._finished[key]
                self._acks.forget(key)
                self._files_done += 1
            else:
                p.offset = offset
        try:
            self._state.save()
        except CheckpointError as exc:  # retried at the next interval; a rerun only re-sends
            log.error("%s", exc)

    def _settle(self) -> None:
        """After reading: deliver what is parsed within the deadline, save where we are."""
        for batch in self._batcher.drain():
            self._submit(batch)
        if self._stop.is_set():
            deadline = time.monotonic() + self._config.shutdown_timeout
        else:
            deadline = time.monotonic() + 1e9  # not interrupted: wait for every outcome
        self._dispatcher.stop(deadline)
        self._next_save = 0.0
        self._tick()
        self._progress.close()
        self.summary.unsettled += sorted(self._paths[k] for k in self._reading)
        stats = self._acks.stats()
        self.summary.delivered = stats.delivered_records


# -- the composition root for `backfill` -------------------------------------------------------


@contextmanager
def _signals(stop: threading.Event, caught: list[int]) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` (the run winds down and saves); restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in EXIT_SIGNAL}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def run_backfill(
    config_path: str,
    paths: list[str],
    *,
    since: str | None = None,
    until: str | None = None,
    max_rate: str | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    """`llmtail backfill`: build the parts from the config, read `paths`, print the summary.

    Raises UserError (ConfigError, PatternError) for the user's mistakes, before anything is
    sent. Returns the exit status."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    config = load_config(config_path)
    setup_logging(config.log_level)
    tz = config.parser.timezone
    window = WindowFilter(
        parse_when(since, tz, "--since") if since else None,
        parse_when(until, tz, "--until") if until else None,
    )
    try:
        rate = parse_rate(max_rate) if max_rate else None
        files = expand_paths(paths)
    except (ValueError, PathError) as exc:
        raise UserError(str(exc)) from None
    parsers = parsers_for_inputs(config)
    if dry_run:
        ordered = plan(files, config, parsers, None)
        report = validate_files([f.path for f in ordered], parsers[0])
        out.write(report.render(max_error_rate=1.0) + "\ndry run: nothing was sent\n")
        return 0
    lock = StateDirLock(config.state_dir, LOCK_NAME)
    state = BackfillState(config.state_dir)
    try:
        lock.acquire()
    except CheckpointError as exc:
        raise UserError(
            str(exc)
            .replace("another llmtail", "another llmtail backfill")
            .replace("give each agent its own state_dir", "wait for it to finish")
        ) from None
    try:
        state.load()
    except CheckpointError as exc:
        lock.release()
        raise UserError(str(exc)) from None
    stop = threading.Event()
    caught: list[int] = []
    try:
        # Signals are caught from here on: a Ctrl-C while many files are probed still ends
        # with a saved state and exit 130, never a traceback.
        with _signals(stop, caught):
            ordered = plan(files, config, parsers, state)
            envelopes = envelope_maker(config.output)
            sink = build_sink(config, envelopes)
            summary, failed = _execute(
                config, ordered, parsers, state, sink, envelopes, window, rate, err, tty, stop
            )
    finally:
        lock.release()
    if caught:
        summary.interrupted = signal.Signals(caught[0]).name
    out.write(summary.render() + "\n")
    out.flush()
    if caught:
        return EXIT_SIGNAL.get(signal.Signals(caught[0]), 1)
    return 1 if failed else 0


def _execute(
    config: Config,
    ordered: list[PlannedFile],
    parsers: list[RecordParser],
    state: BackfillState,
    sink: Sink,
    envelopes: EnvelopeMaker,
    window: WindowFilter,
    rate: Rate | None,
    err: TextIO,
    tty: bool | None,
    stop: threading.Event,
) -> tuple[Summary, bool]:
    """Wire the run's parts (as `run_daemon` does for `run`) and run it: (summary, failed)."""
    acks = AckTracker()
    holder: list[Backfill] = []

    def on_done(batch: Batch, outcome: Outcome, seconds: float) -> None:
        holder[0].on_batch_done(batch, outcome, seconds)

    concurrency = getattr(config.output, "concurrency", 1)
    dispatcher = Dispatcher(
        sink, acks, concurrency, config.max_in_flight_bytes, on_done, envelopes.assign
    )
    progress = Progress(err, tty=err.isatty() if tty is None else tty, clock=time.monotonic)
    bucket = (TokenBucket(rate.per_second), rate) if rate is not None else None
    backfill = Backfill(
        config, Ingest(parsers), dispatcher, acks, state, window, bucket, progress, stop
    )
    holder.append(backfill)
    summary = backfill.run(ordered)
    stats = getattr(sink, "stats", None)
    if callable(stats):
        counts = stats()
        if isinstance(counts, _SinkStats):
            # Per record, so it also counts old records dropped from a batch that was delivered.
            summary.restamped = counts.restamped_logs
            summary.rejected = max(summary.rejected, counts.rejected_logs)
    return summary, summary.failed or backfill.failed_hard
