"""Main's Stream contract tests (tests/test_stream.py) run again on the compiled core.

Each plain test function of that module is copied with `open_stream` and `Engine` bound to the
core (`Engine(..., kind="core")`), so the same assertions hold for both engines. (Its hypothesis
property over chunkings is covered for the core by tests/test_core_stream.py.)
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from functools import partial
from typing import Any

import tests.test_stream as contract
from agent.engine.engine import Engine
from agent.engine.stream import Stream
from tests.batches import settings as stream_settings


def open_core_stream(wire: str = "ndjson", **overrides: Any) -> Stream:
    engine = Engine([stream_settings(wire, **overrides)], kind="core")  # type: ignore[arg-type]
    return engine.open("k", "/var/log/app.log", 0)


def _on_core(test: Callable[..., None]) -> Callable[..., None]:
    scope = dict(test.__globals__)
    scope.update(open_stream=open_core_stream, Engine=partial(Engine, kind="core"))
    copy = types.FunctionType(test.__code__, scope, test.__name__, test.__defaults__)
    copy.__doc__ = test.__doc__
    return copy


for _name, _test in inspect.getmembers(contract, inspect.isfunction):
    if _name.startswith("test_") and not hasattr(_test, "hypothesis"):
        globals()[f"{_name}_on_the_core"] = _on_core(_test)
