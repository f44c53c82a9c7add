"""What the local Logstore accepted, and counters of what it answered. Thread-safe.

In count-only mode (benchmarks) accepted groups are counted, not kept, so memory stays flat
however much is pushed through.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tests.logstore.codec import StoredLogGroup


@dataclass
class Stats:
    """Counters since start (or the last reset). `rejected` counts answers by errorCode."""

    requests: int = 0
    accepted_requests: int = 0
    accepted_logs: int = 0
    accepted_raw_bytes: int = 0
    dropped_connections: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    logs_by_logstore: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Store:
    """Accepted LogGroups per (project, logstore), plus `Stats`."""

    def __init__(self, count_only: bool = False) -> None:
        self.count_only = count_only
        self._lock = threading.Lock()
        self._groups: list[StoredLogGroup] = []
        self._stats = Stats()
        self._rejected: Counter[str] = Counter()
        self._by_logstore: Counter[str] = Counter()

    def request_seen(self) -> None:
        with self._lock:
            self._stats.requests += 1

    def accepted(
        self,
        project: str,
        logstore: str,
        n_logs: int,
        raw_bytes: int,
        group: StoredLogGroup | None,
    ) -> None:
        with self._lock:
            self._stats.accepted_requests += 1
            self._stats.accepted_logs += n_logs
            self._stats.accepted_raw_bytes += raw_bytes
            self._by_logstore[f"{project}/{logstore}"] += n_logs
            if group is not None and not self.count_only:
                self._groups.append(group)

    def rejected(self, code: str) -> None:
        with self._lock:
            self._rejected[code] += 1

    def dropped(self) -> None:
        with self._lock:
            self._stats.dropped_connections += 1

    def reset(self) -> None:
        with self._lock:
            self._groups.clear()
            self._stats = Stats()
            self._rejected.clear()
            self._by_logstore.clear()

    def stats(self) -> Stats:
        with self._lock:
            return replace(
                self._stats,
                rejected=dict(self._rejected),
                logs_by_logstore=dict(self._by_logstore),
            )

    def groups(
        self, project: str | None = None, logstore: str | None = None
    ) -> list[StoredLogGroup]:
        """Accepted groups in arrival order, optionally for one project and/or logstore."""
        with self._lock:
            groups = list(self._groups)
        return [
            g
            for g in groups
            if (project is None or g.project == project)
            and (logstore is None or g.logstore == logstore)
        ]
