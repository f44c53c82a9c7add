"""Plan and apply: read each wanted object, compare, write only what differs.

A second run finds nothing to change and sends no write request. `--dry-run` stops after the
plan. Writes go in `Kind` order, so a Logstore exists before its index is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from llmtail.agent.provision.desired import Kind, Wanted
from llmtail.agent.provision.diff import differences

# Index keys SLS returns that belong to it, not to the index definition.
_INDEX_KEEP = ("log_reduce", "log_reduce_white_list", "log_reduce_black_list", "scan_index")


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    KEEP = "unchanged"


@dataclass(frozen=True, slots=True)
class Step:
    wanted: Wanted
    action: Action
    body: dict[str, Any]  # what is sent: for an index, SLS's other keys merged in
    lines: list[str] = field(default_factory=list)  # the differences, for updates


class Store(Protocol):
    """Where the objects live (`remote.Remote` over the SDK)."""

    def read(self, w: Wanted) -> dict[str, Any] | None: ...

    def create(self, w: Wanted) -> None: ...

    def update(self, w: Wanted, body: dict[str, Any]) -> None: ...


def plan(store: Store, wanted: list[Wanted]) -> list[Step]:
    """What each object needs; reads only."""
    steps = []
    for w in sorted(wanted, key=lambda w: list(Kind).index(w.kind)):
        have = store.read(w)
        if have is None:
            steps.append(Step(w, Action.CREATE, w.body))
            continue
        body = _merged_index(w.body, have) if w.kind is Kind.INDEX else w.body
        compared = _compared(w, body, have)
        lines = differences(compared, have)
        steps.append(Step(w, Action.UPDATE if lines else Action.KEEP, body, lines))
    return steps


def apply(store: Store, steps: list[Step]) -> int:
    """Write the creates and updates, in order; the number written."""
    written = 0
    for step in steps:
        if step.action is Action.CREATE:
            store.create(step.wanted)
        elif step.action is Action.UPDATE:
            store.update(step.wanted, step.body)
        else:
            continue
        written += 1
    return written


def render(steps: list[Step]) -> list[str]:
    """The plan as a user reads it: `+` create, `~` update with its differences."""
    out = []
    for s in steps:
        w = s.wanted
        if s.action is Action.CREATE:
            out.append(f"+ {w.kind.value} {w.name}")
        elif s.action is Action.UPDATE:
            out.append(f"~ {w.kind.value} {w.name}")
            out += [f"    {line}" for line in s.lines]
    kept = sum(1 for s in steps if s.action is Action.KEEP)
    changed = len(steps) - kept
    out.append(f"{changed} to change, {kept} unchanged")
    return out


def _compared(w: Wanted, body: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
    """The part of `body` that must match. A Logstore's shards are SLS's to split; its retention
    and its mode (alerts need Standard; SLS omits the key for older Standard logstores) are
    provision's."""
    if w.kind is Kind.LOGSTORE:
        return {"ttl": body["ttl"], **({"mode": body["mode"]} if "mode" in have else {})}
    return body


def _merged_index(want: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
    """The index to send: keys the user added by hand are kept, provision's keys win."""
    merged = dict(want)
    merged["keys"] = {**(have.get("keys") or {}), **want["keys"]}
    for key in _INDEX_KEEP:
        if key in have:
            merged[key] = have[key]
    return merged
