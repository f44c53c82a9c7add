"""LLM water levels as plain data: what a sealed batch carries about its `llm_call` records.

An `LlmAggregate` is built per batch by the Python engine (`add`, one record at a time) and
merged into longer-lived ones (`merge`): the process's `/metrics`, or `llmtail report` over
whole files. The core engine's batches carry the same aggregate held in Rust
(`llmtail._core.LlmAggregate`, same `merge`), so its totals are core objects too and no Python
object is made per batch; both kinds are an `Aggregate`, and `snapshot()` reads either as an
`LlmAggregate`. It holds no per-record object:

- label sets (app, module, model, workspace, status_code, error_code) are interned into an
  index; every per-set number lives in flat lists at that index (histograms: `len(bounds) + 1`
  consecutive, non-cumulative bucket counts per set, the last one for +Inf);
- calls and tokens per minute of the records' *own* time (epoch minute), keyed by
  (label index, minute), for QPM/TPM that a backlog read in seconds does not distort;
- feedback counts by normalised rating.

Size is bounded: at most `max_label_sets` label sets (new ones beyond go to the `other` set and
are counted in `dropped_calls`) and at most `max_minute_cells` (label, minute) cells (beyond,
minutes are counted in `dropped_minutes` and left out of QPM/TPM only).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, compress
from operator import itemgetter
from typing import Any, Protocol

LABEL_NAMES = ("app", "module", "model", "workspace", "status_code", "error_code")
LabelKey = tuple[str, str, str, str, str, str]
OTHER: LabelKey = ("other",) * 6

# OpenTelemetry GenAI semantic conventions (gen_ai.client.operation.duration, seconds, and
# gen_ai.client.token.usage, tokens): the explicit bucket boundaries the spec recommends.
DURATION_BOUNDS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BOUNDS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_SLOTS = len(DURATION_BOUNDS) + 1
TOKEN_SLOTS = len(TOKEN_BOUNDS) + 1

_NUMBER_NAMES = ("input_tokens", "output_tokens", "total_tokens", "duration_ms")
_LABEL_VALUES = itemgetter(*LABEL_NAMES)
_NUMBERS = itemgetter(*_NUMBER_NAMES)

DEFAULT_MAX_LABEL_SETS = 2000
# `report` and `validate` over whole files: bounded too, far above a daemon's default.
LOCAL_LABEL_SETS = 100_000
DEFAULT_MAX_MINUTE_CELLS = 1_000_000
OK_STATUS = 200
_NEGATIVE_WORDS = frozenset({"down", "bad", "negative", "thumbs_down"})


def label_key(fields: Mapping[str, object]) -> LabelKey:
    """The label set of one llm_call record; a missing value is the empty string."""
    status = fields.get("status_code")
    error = fields.get("error_code")
    return (
        _text(fields.get("app")),
        _text(fields.get("module")),
        _text(fields.get("model")),
        _text(fields.get("workspace")),
        "" if status is None else str(status),
        _text(error),
    )


def failed(key: LabelKey) -> bool:
    """A call failed when its status is not 200 (no status: it failed before HTTP)."""
    return key[4] != str(OK_STATUS)


def normalise_rating(value: object) -> str:
    """`up`/`down` (any case) or a small integer as text; anything else is `other` (bounded)."""
    text = _text(value).strip().lower()
    if text in ("up", "down"):
        return text
    try:
        number = int(text)
    except ValueError:
        return "other"
    return str(number) if -10 <= number <= 10 else "other"


def negative_rating(rating: str) -> bool:
    """`down`, or a number at or below zero, is negative feedback."""
    if rating in _NEGATIVE_WORDS:
        return True
    try:
        return int(rating) <= 0
    except ValueError:
        return False


# (model, workspace, record-time minute, calls, tokens): `/metrics`' QPM/TPM window.
WindowCell = tuple[str, str, int, int, int]


class Aggregate(Protocol):
    """What the totals (`/metrics`, report, validate) need of a batch's aggregate: a Python
    `LlmAggregate` (Python engine) or a `llmtail._core.LlmAggregate` (core engine). A total
    merges only aggregates of its own kind: make it with `empty_like`."""

    def merge(self, other: Any, minutes: bool = True) -> None: ...
    def merge_window(self, other: Any, lo: int, hi: int) -> list[WindowCell]: ...
    def snapshot(self) -> LlmAggregate: ...


def empty_like(like: Aggregate, max_label_sets: int, max_minute_cells: int) -> Aggregate:
    """An empty total of `like`'s kind (Python or core) under these caps."""
    kind: Any = type(like)
    total: Aggregate = kind(max_label_sets=max_label_sets, max_minute_cells=max_minute_cells)
    return total


@dataclass
class LlmAggregate:
    """Counts, token sums, histograms and per-minute levels of llm_call records, per label set."""

    max_label_sets: int = DEFAULT_MAX_LABEL_SETS
    max_minute_cells: int = DEFAULT_MAX_MINUTE_CELLS
    keys: list[LabelKey] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    input_tokens: list[int] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    total_tokens: list[int] = field(default_factory=list)
    duration_ms: list[int] = field(default_factory=list)  # summed; integers keep sums exact
    duration_buckets: list[int] = field(default_factory=list)  # DURATION_SLOTS per label set
    input_buckets: list[int] = field(default_factory=list)  # TOKEN_SLOTS per label set
    output_buckets: list[int] = field(default_factory=list)  # TOKEN_SLOTS per label set
    minutes: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # -> [calls, tokens]
    feedback: dict[str, int] = field(default_factory=dict)  # normalised rating -> count
    dropped_calls: int = 0  # calls counted under OTHER because their label set was over the cap
    dropped_minutes: int = 0  # calls left out of the per-minute cells (cap reached)
    _index: dict[LabelKey, int] = field(default_factory=dict, repr=False)
    _raw: dict[tuple[object, ...], int] = field(default_factory=dict, repr=False)  # add's cache
    # merge's: per histogram width, the slot numbers of each label set here, as tuples.
    _spans: dict[int, list[tuple[int, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.max_label_sets < 1:
            raise ValueError("max_label_sets must be at least 1")
        self._index = dict(zip(self.keys, range(len(self.keys)), strict=True))  # in C

    @property
    def total_calls(self) -> int:
        return sum(self.calls)

    def add(self, fields: Mapping[str, object], time_s: float | None) -> None:  # noqa: PLR0912 - hot path, inlined on purpose
        """Count one record if it is an llm_call (or a feedback); other events are ignored.

        Per-record cost matters (the Python engine calls this for every llm_call): the label
        set is looked up by the raw field values first, and ints are taken as they are."""
        event = fields.get("event")
        if event != "llm_call":
            if event == "feedback":
                rating = normalise_rating(fields.get("rating"))
                self.feedback[rating] = self.feedback.get(rating, 0) + 1
            return
        try:  # one C call each instead of ten dict lookups
            raw = _LABEL_VALUES(fields)
            inp, out, total, ms = _NUMBERS(fields)
        except KeyError:  # a payload schema without some of these fields
            raw = tuple(fields.get(k) for k in LABEL_NAMES)
            inp, out, total, ms = (fields.get(k) for k in _NUMBER_NAMES)
        i = self._raw.get(raw)
        if i is None:
            key = label_key(fields)
            i = self._slot(key, 1)
            if len(self._raw) < 4 * self.max_label_sets:  # the cache is bounded too
                # ~i marks a set folded into OTHER: each of its calls is counted as dropped.
                self._raw[raw] = ~i if self.keys[i] != key else i
        elif i < 0:
            i = ~i
            self.dropped_calls += 1
        if type(inp) is not int or inp < 0:
            inp = _int(inp)
        if type(out) is not int or out < 0:
            out = _int(out)
        if total is None:
            total = inp + out
        elif type(total) is not int or total < 0:
            total = _int(total)
        if type(ms) is not int or ms < 0:
            ms = _int(ms)
        seconds = ms / 1000
        self.calls[i] += 1
        self.input_tokens[i] += inp
        self.output_tokens[i] += out
        self.total_tokens[i] += total
        self.duration_ms[i] += ms
        self.duration_buckets[i * DURATION_SLOTS + bisect_left(DURATION_BOUNDS, seconds)] += 1
        self.input_buckets[i * TOKEN_SLOTS + bisect_left(TOKEN_BOUNDS, inp)] += 1
        self.output_buckets[i * TOKEN_SLOTS + bisect_left(TOKEN_BOUNDS, out)] += 1
        if time_s is not None:
            minute = int(time_s // 60)
            cell = self.minutes.get((i, minute))
            if cell is None:
                self._add_minute(i, minute, 1, total)
            else:
                cell[0] += 1
                cell[1] += total

    def index_of(self, key: LabelKey) -> int | None:
        """Where `key`'s numbers are, or None when it has none (over the cap: see OTHER)."""
        return self._index.get(key)

    def merge(self, other: LlmAggregate, minutes: bool = True) -> None:
        """Add `other`'s numbers into this one (its label sets pass this one's guard);
        `minutes=False` leaves the per-minute cells out (a long-lived total keeps none).

        Called once per sealed batch with hundreds of label sets each, so the work is done
        column by column: the label sets are mapped once, and the histograms, nearly all zeros
        in a batch, are added at their non-zero slots only (found in C by `compress`)."""
        target = self._targets(other)
        pairs = [(i, j) for j, i in enumerate(target) if i >= 0]
        for dst, src in (
            (self.calls, other.calls), (self.input_tokens, other.input_tokens),
            (self.output_tokens, other.output_tokens), (self.total_tokens, other.total_tokens),
            (self.duration_ms, other.duration_ms),
        ):  # fmt: skip
            for i, j in pairs:
                dst[i] += src[j]
        if pairs:
            at = self._positions(target, DURATION_SLOTS)
            _add_sparse(self.duration_buckets, other.duration_buckets, at)
            at = self._positions(target, TOKEN_SLOTS)
            _add_sparse(self.input_buckets, other.input_buckets, at)
            _add_sparse(self.output_buckets, other.output_buckets, at)
        for (j, minute), (calls, tokens) in other.minutes.items() if minutes else ():
            self._add_minute(
                self._index[_guarded(other.keys[j], self._index)], minute, calls, tokens
            )
        for rating, n in other.feedback.items():
            self.feedback[rating] = self.feedback.get(rating, 0) + n
        self.dropped_calls += other.dropped_calls
        if minutes:
            self.dropped_minutes += other.dropped_minutes

    def merge_window(self, other: LlmAggregate, lo: int, hi: int) -> list[WindowCell]:
        """`merge(other, minutes=False)`, then `other`'s per-minute cells in `lo..=hi`, each
        under the (model, workspace) of the set it counts under here (OTHER's if none)."""
        self.merge(other, minutes=False)
        cells: list[WindowCell] = []
        for (j, minute), (calls, tokens) in other.minutes.items():
            if lo <= minute <= hi:
                key = other.keys[j]
                if key not in self._index:
                    key = OTHER
                cells.append((key[2], key[3], minute, calls, tokens))
        return cells

    def snapshot(self) -> LlmAggregate:
        """A copy of these numbers that later adds and merges leave alone."""
        return LlmAggregate(
            max_label_sets=self.max_label_sets,
            max_minute_cells=self.max_minute_cells,
            keys=list(self.keys),
            calls=list(self.calls),
            input_tokens=list(self.input_tokens),
            output_tokens=list(self.output_tokens),
            total_tokens=list(self.total_tokens),
            duration_ms=list(self.duration_ms),
            duration_buckets=list(self.duration_buckets),
            input_buckets=list(self.input_buckets),
            output_buckets=list(self.output_buckets),
            minutes={k: list(v) for k, v in self.minutes.items()},
            feedback=dict(self.feedback),
            dropped_calls=self.dropped_calls,
            dropped_minutes=self.dropped_minutes,
        )

    def _targets(self, other: LlmAggregate) -> list[int]:
        """For each of `other`'s label sets, its index here (made in `other`'s order, so the
        cap folds the same sets as one at a time would); -1 for a set without calls (kept
        across `reset`, it has nothing to add)."""
        found = list(map(self._index.get, other.keys))
        target = [-1] * len(found)
        for j, (i, calls) in enumerate(zip(found, other.calls, strict=True)):
            if calls:
                target[j] = self._slot(other.keys[j], calls) if i is None else i
        return target

    def _positions(self, target: list[int], slots: int) -> list[int]:
        """For each histogram slot of `other` (sets mapped by `target`), the slot here it adds
        to; built in C from spans kept per label set (a set at -1 has only zero slots, so
        where it points does not matter)."""
        spans = self._spans.setdefault(slots, [])
        for i in range(len(spans), len(self.keys)):
            spans.append(tuple(range(i * slots, (i + 1) * slots)))
        return list(chain.from_iterable(map(spans.__getitem__, target)))

    def reset(self) -> None:
        """Zero every number but keep the label sets, so a long-lived aggregate that is
        handed over and reset again and again stays on `add`'s fast path."""
        for column in (
            self.calls, self.input_tokens, self.output_tokens, self.total_tokens, self.duration_ms,
            self.duration_buckets, self.input_buckets, self.output_buckets,
        ):  # fmt: skip
            column[:] = bytes(len(column))  # zeros, in C
        self.minutes.clear()
        self.feedback.clear()
        self.dropped_calls = 0
        self.dropped_minutes = 0

    def _slot(self, key: LabelKey, calls: int) -> int:
        """The index of `key`, created if there is room; else OTHER's (counting the calls)."""
        i = self._index.get(key)
        if i is not None:
            return i
        if len(self.keys) >= self.max_label_sets - 1 and key != OTHER:
            # One place is kept for OTHER, so the total number of sets never passes the cap.
            self.dropped_calls += calls
            key = OTHER
            i = self._index.get(key)
            if i is not None:
                return i
        i = len(self.keys)
        self._index[key] = i
        self.keys.append(key)
        for column in (
            self.calls,
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.duration_ms,
        ):
            column.append(0)
        self.duration_buckets.extend([0] * DURATION_SLOTS)
        self.input_buckets.extend([0] * TOKEN_SLOTS)
        self.output_buckets.extend([0] * TOKEN_SLOTS)
        return i

    def _add_minute(self, i: int, minute: int, calls: int, tokens: int) -> None:
        cell = self.minutes.get((i, minute))
        if cell is None:
            if len(self.minutes) >= self.max_minute_cells:
                self.dropped_minutes += calls
                return
            cell = self.minutes[(i, minute)] = [0, 0]
        cell[0] += calls
        cell[1] += tokens


def per_minute(
    aggregate: LlmAggregate, keep: Iterable[int] | None = None
) -> dict[int, tuple[int, int]]:
    """(calls, tokens) per record-time minute, over the label indexes in `keep` (None: all)."""
    wanted = None if keep is None else set(keep)
    out: dict[int, list[int]] = {}
    for (i, minute), (calls, tokens) in aggregate.minutes.items():
        if wanted is None or i in wanted:
            cell = out.setdefault(minute, [0, 0])
            cell[0] += calls
            cell[1] += tokens
    return {minute: (c, t) for minute, (c, t) in out.items()}


def quantile(q: float, bounds: tuple[float, ...], counts: list[int]) -> float | None:
    """Prometheus `histogram_quantile` over non-cumulative `counts` (len(bounds) + 1).

    Linear interpolation inside the bucket that holds the q-th observation, the lowest bucket
    starting at 0; an answer in the +Inf bucket is the highest finite bound. None when empty.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    running = 0
    for slot, count in enumerate(counts):
        if count and running + count >= rank:
            if slot == len(bounds):
                return bounds[-1]
            lower = 0.0 if slot == 0 else bounds[slot - 1]
            return lower + (bounds[slot] - lower) * ((rank - running) / count)
        running += count
    return bounds[-1]


def bucket_counts(buckets: list[int], indexes: Iterable[int], slots: int) -> list[int]:
    """Summed non-cumulative bucket counts of the label sets at `indexes`."""
    out = [0] * slots
    for i in indexes:
        base = i * slots
        for s in range(slots):
            out[s] += buckets[base + s]
    return out


def _guarded(key: LabelKey, index: Mapping[LabelKey, int]) -> LabelKey:
    return key if key in index else OTHER


def _add_sparse(dst: list[int], src: list[int], positions: list[int]) -> None:
    """dst[positions[p]] += src[p] for the few non-zero src[p] (picked out in C)."""
    for q, n in zip(compress(positions, src), compress(src, src), strict=True):
        dst[q] += n


def _slot_of(bounds: tuple[float, ...], value: float) -> int:
    """The bucket a value falls in: the first bound >= value (le), or +Inf."""
    return bisect_left(bounds, value)


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, str):
        try:
            return max(0, int(value))
        except ValueError:
            return 0
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    return 0


def _text(value: object) -> str:
    return "" if value is None else str(value)
