"""Opens Streams: one set of settings per input, one parser per encoding, pack ids per file.

Every mode gets its streams from here, so framing, parsing and encoding are configured in one
place and driven the same way whether the bytes come from the watcher or a whole-file reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from llmtail.agent.engine import corestream
from llmtail.agent.engine.envelope import PackIds
from llmtail.agent.engine.loggroup import LogEncoder
from llmtail.agent.engine.pystream import PyStream
from llmtail.agent.engine.stream import Stream, StreamSettings
from llmtail.parsers.mask import Masker
from llmtail.parsers.record import RecordParser

EngineKind = Literal["python", "core"]


class Engine:
    """Makes the Stream of a file read; `settings[i]` serves the config's input i.

    `kind` is the config's `engine:`: the Python reference (PyStream) or the compiled core
    (agent/engine/corestream.py), which gives the same batches byte for byte."""

    def __init__(
        self,
        settings: Sequence[StreamSettings],
        pack_ids: PackIds | None = None,
        kind: EngineKind = "python",
    ) -> None:
        if not settings:
            raise ValueError("an engine needs the settings of one input at least")
        self.kind = kind
        self.settings = list(settings)
        self.pack_ids = pack_ids or PackIds(self.settings[0].hostname)
        self._encoder = LogEncoder()
        parsers: dict[object, RecordParser] = {}
        self._parsers = []
        compiled: dict[object, Any] = {}
        self._compiled: list[Any] = []  # the core's parser of each input (engine: core)
        self._maskers: list[Masker | None] = []
        for s in self.settings:
            if s.parser not in parsers:
                parsers[s.parser] = RecordParser(s.parser)  # raises PatternError, ValueError
            self._parsers.append(parsers[s.parser])
            # Raises MaskConfigError; inputs share one masker when their rules are the same.
            same = [
                m for t, m in zip(self.settings, self._maskers, strict=False) if t.mask == s.mask
            ]
            masker = (
                same[0] if same else (Masker.from_config(s.mask, s.mask_key) if s.mask else None)
            )
            self._maskers.append(masker)
            if kind == "core":
                # Raises CoreUnavailableError, PatternError, ValueError.
                if s.parser not in compiled:
                    compiled[s.parser] = corestream.parser(s)
                corestream.check(s, compiled[s.parser])
                self._compiled.append(compiled[s.parser])

    def open(self, key: str, path: str, offset: int, input_index: int = 0) -> Stream:
        """A Stream for `key` read from `offset`; its pack ids continue the file's sequence."""
        if self.kind == "core":
            return corestream.open_stream(
                self.settings[input_index],
                self._compiled[input_index],
                key,
                path,
                offset,
                self.pack_ids.prefix(key),
                self.pack_ids.next_seq(key),
            )
        return PyStream(
            self.settings[input_index],
            self._parsers[input_index],
            self._encoder,
            key,
            path,
            offset,
            self.pack_ids.prefix(key),
            self.pack_ids.next_seq(key),
            self._maskers[input_index],
        )

    @property
    def mask_rules(self) -> tuple[str, ...]:
        """The rules masking applies (for counters present at 0)."""
        names = {n for m in self._maskers if m is not None and m.active for n in m.rule_names}
        return tuple(sorted(names))

    def close(self, key: str, stream: Stream) -> None:
        """The stream is done; a later Stream of the same file numbers its batches on."""
        self.pack_ids.remember(key, stream.next_pack_seq)

    def windowed(self, since: float | None, until: float | None) -> Engine:
        """The same engine keeping only records with since <= time < until (backfill)."""
        settings = [replace(s, since=since, until=until) for s in self.settings]
        return Engine(settings, self.pack_ids, self.kind)
