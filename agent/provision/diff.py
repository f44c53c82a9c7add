"""Readable differences between what provision wants and what SLS holds.

Only the keys provision sets are compared: SLS adds its own (createTime, lastModifyTime,
storage, ...) and those are never differences. Lists are compared item by item.
"""

from __future__ import annotations

from typing import Any

_MAX_SHOWN = 80  # characters of a value in a diff line


def differences(want: Any, have: Any, path: str = "") -> list[str]:
    """One line per differing leaf: `path: have -> want`; empty when `have` already fits."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [_line(path, have, want)]
        out: list[str] = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in have:
                out.append(f"{sub}: (missing) -> {_short(value)}")
            else:
                out += differences(value, have[key], sub)
        return out
    if isinstance(want, list):
        return _list_differences(want, have, path)
    if _same(want, have):
        return []
    return [_line(path, have, want)]


def _list_differences(want: list[Any], have: Any, path: str) -> list[str]:
    """Item by item for lists of objects (charts), as a whole for lists of values (tokens)."""
    if not isinstance(have, list) or (
        len(want) != len(have) and not all(isinstance(v, dict) for v in want)
    ):
        return [_line(path, have, want)]
    out = []
    for i, value in enumerate(want):
        sub = f"{path}[{i}]"
        if i < len(have):
            out += differences(value, have[i], sub)
        else:
            out.append(f"{sub}: (missing) -> {_short(value)}")
    out += [f"{path}[{i}]: {_short(have[i])} -> (removed)" for i in range(len(want), len(have))]
    return out


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have or str(want).lower() == str(have).lower()
    if isinstance(want, int | float) and isinstance(have, int | float | str):
        try:
            return float(have) == float(want)
        except ValueError:
            return False
    return bool(want == have)


def _line(path: str, have: Any, want: Any) -> str:
    return f"{path or '(whole)'}: {_short(have)} -> {_short(want)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
