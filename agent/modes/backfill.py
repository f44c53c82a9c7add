"""`llmtail backfill`: load old log files (plain or gzip) once, in the order they were written.

The same engine and senders as `run` (agent.modes.flow), fed by whole files instead of the
watcher, with their own state (agent.state.backfill_state) instead of the live checkpoints.
Planning (order, resume points) is agent.modes.backfill_plan. Decisions made here:

- `--since` (inclusive) / `--until` (exclusive): records outside are skipped and counted. A record
  without a reliable time of its own (one that did not parse: a banner, a stray line) follows the
  record before it in the same file, as it was written then; at the start of a read it is kept.
- Interrupted (SIGINT/SIGTERM): reading stops, what is in flight is delivered until
  `shutdown_timeout`, the state is saved, exit 130 (SIGINT) or 143 (SIGTERM); rerun the same
  command to go on. kill -9 loses nothing either: at most the records in flight and those
  acknowledged in the last state-save interval are sent again.
- Records the output refused stay owed: the file's offset stays before them, the file is not
  done, and a rerun tries them again.
- Exit 0: everything delivered. Exit 1: some records were not (refused by the output, dropped
  by `time_policy: reject`, or a damaged .gz could not be read to its end): the files are named.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Protocol, TextIO, runtime_checkable

from llmtail.agent.config import Config, load_config
from llmtail.agent.delivery.dispatch import Done
from llmtail.agent.delivery.sink import Outcome, Sink
from llmtail.agent.engine.corestream import release_idle_lz4
from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.stream import SealedBatch
from llmtail.agent.modes.backfill_plan import (
    CHUNK_SIZE,
    PlannedFile,
    input_index_for,
    parse_when,
    plan,
)
from llmtail.agent.modes.flow import Flow
from llmtail.agent.modes.pipeline import (
    UserError,
    build_dispatcher,
    build_engine,
    build_sink,
    unfinished_bound,
)
from llmtail.agent.modes.ratelimit import Rate, TokenBucket, parse_rate
from llmtail.agent.modes.validate import validate_files
from llmtail.agent.ops.logsetup import setup_logging
from llmtail.agent.ops.malloc import Trimmer, tune_malloc
from llmtail.agent.ops.progress import Progress, Snapshot, Summary
from llmtail.agent.ops.signals import SignalFlag
from llmtail.agent.reading.wholefile import DamagedFileError, PathError, expand_paths, read_chunks
from llmtail.agent.state.backfill_state import LOCK_NAME, BackfillState, FileProgress
from llmtail.agent.state.checkpoint import CheckpointError, StateDirLock

log = logging.getLogger(__name__)

SAVE_INTERVAL = 0.1  # seconds: a kill -9 re-sends what was in flight plus this much delivery
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}

__all__ = ["Backfill", "input_index_for", "parse_when", "run_backfill"]


@runtime_checkable
class _SinkStats(Protocol):
    restamped_logs: int
    rejected_logs: int


@dataclass(slots=True)
class _Finished:
    """A file read to its end whose last batches may still be in flight."""

    end: int
    damaged: int
    disk_size: int


def _keep_refused_owed(outcome: Outcome) -> Outcome:
    """For the ledger: a refused batch is not final, so its file's offset stays before it."""
    return Outcome.ABORTED if outcome is Outcome.REJECTED else outcome


class Backfill:
    """Reads planned files through the flow; saves what is final into the backfill state."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        sink: Sink,
        state: BackfillState,
        bucket: tuple[TokenBucket, Rate] | None,
        progress: Progress,
        stop: SignalFlag,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self.flow = Flow(
            engine,
            build_dispatcher(config, sink),
            max_unfinished=unfinished_bound(config),
            on_sealed=self._on_sealed,
            on_done=self._on_done,
            final=_keep_refused_owed,
        )
        self._state = state
        self._bucket = bucket
        self._progress = progress
        self._stop = stop
        self._clock = clock
        self._reading: dict[str, str] = {}  # key -> path, files not yet done
        self._finished: dict[str, _Finished] = {}
        self._next_save = 0.0
        # freed record and batch buffers back to the kernel, unused lz4 buffers first
        self._trim = Trimmer(idle=release_idle_lz4)
        self.summary = Summary()
        self._files_total = 0
        self._files_done = 0
        self._bytes_total = 0
        self.failed_hard = False  # the output stopped accepting records outside a shutdown

    def _on_sealed(self, batch: SealedBatch) -> None:
        s = self.summary
        s.records_read += batch.records
        s.events.update(batch.events)
        s.parse_errors += batch.parse_errors
        s.skipped_before += batch.skipped_before
        s.skipped_after += batch.skipped_after
        if self._bucket is not None and batch.records:
            bucket, rate = self._bucket
            amount = batch.records if rate.unit == "records" else batch.raw_bytes
            delay = bucket.take(amount)
            deadline = self._clock() + delay
            while delay > 0 and not self._stop.wait(min(delay, SAVE_INTERVAL)):
                self._tick()
                delay = deadline - self._clock()

    def _on_done(self, done: Done) -> None:
        if done.outcome is Outcome.REJECTED:
            self.summary.rejected += done.records
            self.summary.rejected_files.add(done.path)
        elif done.outcome is Outcome.ABORTED and not self._stop.is_set():
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
        dispatcher = self.flow.dispatcher
        while dispatcher.pending and not self._stop.is_set():
            dispatcher.wait(SAVE_INTERVAL)
            self._tick()
        self._settle()
        return s

    def _read(self, f: PlannedFile, p: FileProgress) -> None:
        key, start = p.key, p.offset
        p.path, p.done = f.path, False
        self.summary.bytes_already_delivered += start
        if start:
            log.info("%s: resuming after %d bytes already delivered", f.path, start)
        flow = self.flow
        flow.open(key, f.path, start, f.input_index)
        self._reading[key] = f.path
        end, damaged = start, -1
        wall = time.time()
        try:
            for chunk in read_chunks(f.path, start, CHUNK_SIZE):
                end += len(chunk)
                self.summary.bytes_read += len(chunk)
                flow.feed(key, chunk, 0.0, wall)
                self._wait_for_room()
                if self._stop.is_set():
                    flow.drop(key)  # the pending record is read again on the next run
                    return
        except DamagedFileError as exc:
            damaged = exc.recovered
            # A CRC failure is only noticed at the end: what was read may hold garbage.
            self.summary.why_damaged[f.path] = exc.reason
            log.warning("%s", exc)
        except OSError as exc:  # vanished or unreadable since it was probed
            log.error("%s: cannot read: %s", f.path, exc.strerror or exc)
            flow.drop(key)  # its offset stays where delivery got
            return  # listed as not finished; what was delivered is saved
        flow.finish(key, end, wall)  # a partial last line is shipped
        self._finished[key] = _Finished(end, damaged, f.disk_size)
        self._tick()

    def _wait_for_room(self) -> None:
        self._tick()
        dispatcher = self.flow.dispatcher
        while dispatcher.room() <= 0 and not self._stop.is_set():
            dispatcher.wait_for_room(SAVE_INTERVAL)
            self._tick()

    def _tick(self) -> None:
        self.flow.settle()
        now = self._clock()
        if now < self._next_save:
            return
        self._next_save = now + SAVE_INTERVAL
        self._save()
        self._trim(now)
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
        """Final offsets into the state; files whose every batch is final become done."""
        ledger = self.flow.ledger
        for key in ledger.settled():
            fin = self._finished.pop(key, None)
            path = self._reading.pop(key, None)
            if fin is None or path is None:
                continue
            p = self._state.files[key]
            p.offset, p.done, p.disk_size, p.damaged = fin.end, True, fin.disk_size, fin.damaged
            if fin.damaged >= 0:
                self.summary.damaged[path] = fin.damaged
            self._files_done += 1
        for key in self._reading:
            offset = ledger.position(key)
            if offset is not None:
                self._state.files[key].offset = offset
        try:
            self._state.save()
        except CheckpointError as exc:  # retried at the next interval; a rerun only re-sends
            log.error("%s", exc)

    def _settle(self) -> None:
        """After reading: deliver what is sealed within the deadline, save where we are."""
        self.flow.cut_all()
        if self._stop.is_set():
            deadline = time.monotonic() + self._config.shutdown_timeout
        else:
            deadline = time.monotonic() + 1e9  # not interrupted: wait for every outcome
        self.flow.dispatcher.stop(deadline)
        self._next_save = 0.0
        self._tick()
        self._progress.close()
        self.summary.unsettled += sorted(self._reading.values())
        self.summary.delivered = self.flow.ledger.stats().delivered_records


# -- the composition root for `backfill` -------------------------------------------------------


@contextmanager
def _signals(stop: SignalFlag, caught: list[int]) -> Iterator[None]:
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
    tune_malloc()  # before any thread starts (agent/ops/malloc.py says why)
    config = load_config(config_path)
    setup_logging(config.log_level)
    tz = config.parser.timezone
    window = (
        parse_when(since, tz, "--since") if since else None,
        parse_when(until, tz, "--until") if until else None,
    )
    try:
        rate = parse_rate(max_rate) if max_rate else None
        files = expand_paths(paths)
    except (ValueError, PathError) as exc:
        raise UserError(str(exc)) from None
    engine = build_engine(config).windowed(window[0], window[1])
    if dry_run:
        ordered = plan(files, config, engine, None)
        checker = build_engine(config, wire="count").windowed(window[0], window[1])
        report = validate_files(
            [f.path for f in ordered], checker, lambda path: input_index_for(config, path)
        )
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
    caught: list[int] = []
    try:
        # Signals are caught from here on: a Ctrl-C while many files are probed still ends
        # with a saved state and exit 130, never a traceback.
        with SignalFlag() as stop, _signals(stop, caught):
            ordered = plan(files, config, engine, state)
            sink = build_sink(config)
            summary, failed = _execute(config, ordered, engine, state, sink, rate, err, tty, stop)
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
    engine: Engine,
    state: BackfillState,
    sink: Sink,
    rate: Rate | None,
    err: TextIO,
    tty: bool | None,
    stop: SignalFlag,
) -> tuple[Summary, bool]:
    """Run the planned files through a Backfill: (summary, failed)."""
    progress = Progress(err, tty=err.isatty() if tty is None else tty, clock=time.monotonic)
    bucket = (TokenBucket(rate.per_second), rate) if rate is not None else None
    backfill = Backfill(config, engine, sink, state, bucket, progress, stop)
    summary = backfill.run(ordered)
    stats = getattr(sink, "stats", None)
    if callable(stats):
        counts = stats()
        if isinstance(counts, _SinkStats):
            # Per record, so it also counts old records dropped from a batch that was delivered.
            summary.restamped = counts.restamped_logs
            summary.rejected = max(summary.rejected, counts.rejected_logs)
    return summary, summary.failed or backfill.failed_hard
