"""Field dicts built by functions generated once per pattern and payload schema.

Building a record's dict is most of the per-record cost in Python. A dict display with constant
keys (`{"time": g[0], ...}`) is the cheapest way CPython has to build one, and it puts the keys
in design.md order whatever order the pattern captures them in. So, like `dataclasses` and
`namedtuple`, this module writes the source of two small functions and compiles it. Only
`repr()`s of strings and integer indexes reach the source: no user text is ever evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

FieldValue = str | int | None
_INT_CACHE = 50_000  # distinct payload int texts remembered (a few MB at most)
Groups = tuple[str | None, ...]
LogBuilder = Callable[[Groups, str, str], dict[str, FieldValue]]
CallBuilder = Callable[[Groups, str], dict[str, FieldValue]]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each key sits in `Match.groups()`."""

    prefix: tuple[tuple[str, int], ...]  # record keys in design.md order -> group index
    payload: tuple[tuple[str, int, bool], ...]  # payload name -> group index, is int


def _value(key: str, index: int) -> str:
    if key == "line":
        return f"(_lines[g[{index}]] if g[{index}] in _lines else _line_of(g[{index}]))"
    return f"g[{index}]"


def compile_builders(
    layout: Layout, line_of: Callable[[str | None], int | None], lines: dict[str | None, int | None]
) -> tuple[LogBuilder, CallBuilder | None]:
    """`log(g, event, message)` and, when the payload is captured, `call(g, message)`."""
    head = ", ".join(f"{key!r}: {_value(key, index)}" for key, index in layout.prefix)
    head = head + ", " if head else ""
    source = [
        "def log(g, event, message):",
        f"    return {{{head}'event': event, 'message': message}}",
    ]
    if layout.payload:
        # Payload ints through a bounded cache, like `line`: a dict hit costs a fifth of int().
        body = ", ".join(
            f"{name!r}: (_ints[g[{index}]] if g[{index}] in _ints else _int_of(g[{index}]))"
            if is_int
            else f"{name!r}: g[{index}]"
            for name, index, is_int in layout.payload
        )
        source += [
            "def call(g, message):",
            f"    return {{{head}'event': 'llm_call', 'message': message, {body}}}",
        ]
    ints: dict[str | None, int | None] = {"": None, None: None}

    def int_of(text: str) -> int | None:
        """An int field's text (`-?[0-9]+` or empty) -> int; remembered while the cache has room."""
        value = int(text) if text else None
        if len(ints) < _INT_CACHE:
            ints[text] = value
        return value

    namespace: dict[str, object] = {
        "_lines": lines,
        "_line_of": line_of,
        "_ints": ints,
        "_int_of": int_of,
    }
    exec(compile("\n".join(source), "<llmtail rows>", "exec"), namespace)
    log: LogBuilder = namespace["log"]  # type: ignore[assignment]
    call: CallBuilder | None = namespace.get("call")  # type: ignore[assignment]
    return log, call
