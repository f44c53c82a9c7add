"""The plain data that moves between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field

from parsers.record import Record


@dataclass(slots=True)
class Event:
    """A parsed record on its way to a sink, with the file position it came from."""

    record: Record
    source: str  # checkpoint key of the file identity (see agent.reading.fingerprint)
    path: str  # the path the file was read under, for the __path__ tag
    end_offset: int  # byte offset just past the record's last line
    size: int  # raw bytes the record occupied in the file, for buffer accounting


@dataclass(slots=True)
class Batch:
    """Events a sink sends together; knows, per file, the highest end offset it covers."""

    seq: int
    events: list[Event] = field(default_factory=list)
    nbytes: int = 0
    offsets: dict[str, int] = field(default_factory=dict)
    pack_seq: int | None = None  # the file's LogGroup sequence (`EnvelopeMaker.assign`)

    def add(self, event: Event) -> None:
        self.events.append(event)
        self.nbytes += event.size
        if event.end_offset > self.offsets.get(event.source, -1):
            self.offsets[event.source] = event.end_offset
