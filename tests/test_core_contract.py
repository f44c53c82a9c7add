"""Main's engine tests run on both engines: the same assertions hold for both.

- tests/test_stream.py (the Stream contract, on `Engine`'s default, the Python engine): each
  plain test function is copied with `open_stream` and `Engine` bound to the core
  (`Engine(..., kind="core")`); its hypothesis property over chunkings is covered for the core
  by tests/test_core_stream.py;
- tests/test_mask_e2e.py and tests/test_llm_metrics_e2e.py (a real `llmtail run` into the local
  Logstore: no planted secret stored, masked counters; LLM counters exact under retries) run on
  the config's default, the core: copied with `Agent` writing `engine: python` into the config.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from functools import partial
from typing import Any

import tests.test_llm_metrics_e2e as llm_e2e
import tests.test_mask_e2e as mask_e2e
import tests.test_stream as contract
from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.stream import Stream
from tests.agentproc import Agent
from tests.batches import settings as stream_settings


def open_core_stream(wire: str = "ndjson", **overrides: Any) -> Stream:
    engine = Engine([stream_settings(wire, **overrides)], kind="core")  # type: ignore[arg-type]
    return engine.open("k", "/var/log/app.log", 0)


class PythonAgent(Agent):
    """`llmtail run` with `engine: python` (the reference; the config's default is the core)."""

    def __init__(self, workdir: Any, config: dict[str, Any]) -> None:
        super().__init__(workdir, {**config, "engine": "python"})


def _rebound(test: Callable[..., None], **names: Any) -> Callable[..., None]:
    scope = dict(test.__globals__)
    scope.update(names)
    copy = types.FunctionType(test.__code__, scope, test.__name__, test.__defaults__)
    copy.__doc__ = test.__doc__
    return copy


def _tests(module: types.ModuleType) -> list[tuple[str, Callable[..., None]]]:
    return [
        (name, test)
        for name, test in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("test_") and not hasattr(test, "hypothesis")
    ]


for _name, _test in _tests(contract):
    globals()[f"{_name}_on_the_core"] = _rebound(
        _test, open_stream=open_core_stream, Engine=partial(Engine, kind="core")
    )
for _module in (mask_e2e, llm_e2e):
    for _name, _test in _tests(_module):
        globals()[f"{_name}_on_the_python_engine"] = _rebound(_test, Agent=PythonAgent)
