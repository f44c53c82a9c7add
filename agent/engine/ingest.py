"""Per-file framing and parsing: chunks of bytes in, events with end offsets out.

Each file has its own assembler because a multi-line record or a partial line is a property of
one file. Records whose timestamp did not parse get the time they were read, so that every
event reaching a sink has a time; their `parse_error` field says the time is not the log's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.engine.events import Event
from parsers.multiline import Assembler, Frame
from parsers.record import RecordParser


@dataclass(slots=True)
class _Open:
    path: str
    parser: RecordParser
    assembler: Assembler


class Ingest:
    def __init__(
        self, parsers: Sequence[RecordParser], wall_clock: Callable[[], float] = time.time
    ) -> None:
        """`parsers[i]` serves the config's input i (inputs differ in encoding)."""
        self._parsers = list(parsers)
        self._wall_clock = wall_clock
        self._files: dict[str, _Open] = {}

    def open(self, key: str, path: str, offset: int, input_index: int = 0) -> None:
        """Start (or restart, after a truncation) framing a file at `offset`."""
        parser = self._parsers[input_index]
        self._files[key] = _Open(path, parser, parser.assembler(offset))

    def rename(self, key: str, path: str) -> None:
        if key in self._files:
            self._files[key].path = path

    def feed(self, key: str, data: bytes, now: float) -> list[Event]:
        state = self._files[key]
        return self._events(key, state, state.assembler.feed(data, now))

    def due(
        self,
        now: float,
        partial_after: float,
        pending_after: float,
        caught_up: Callable[[str], bool],
    ) -> list[Event]:
        """Records that waited long enough: a partial last line, a pending multi-line record.

        Only files read to their current end qualify: a file whose reading is paused (the
        output is slow, other files had their turn) ends its last chunk mid-record, and that
        tail is not the writer's last line: it must wait for the bytes that follow it.
        """
        events: list[Event] = []
        for key, state in self._files.items():
            if not caught_up(key):
                continue
            frames = state.assembler.due(now, partial_after, pending_after)
            if frames:
                events += self._events(key, state, frames)
        return events

    def finish(self, key: str) -> list[Event]:
        """The file ended for good (released or read to EOF): everything it still holds."""
        state = self._files.pop(key, None)
        if state is None:
            return []
        return self._events(key, state, state.assembler.drain())

    def _events(self, key: str, state: _Open, frames: list[Frame]) -> list[Event]:
        parse, path = state.parser.parse, state.path
        events = []
        stamp: float | None = None
        for frame in frames:
            record = parse(frame)
            if record.time is None:
                stamp = self._wall_clock() if stamp is None else stamp
                record.time = int(stamp)
                record.time_ns = int((stamp % 1) * 1e9)
            events.append(Event(record, key, path, frame.end, frame.size))
        return events
