"""The admin HTTP API of the local Logstore (`/_llmtail/...`, documented in the package).

Lets a test drive a server running in another process: read what arrived, program faults,
create or remove logstores, expire tokens, start outages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.logstore.codec import StoredLogGroup
from tests.logstore.faults import FaultKind, FaultRule

if TYPE_CHECKING:
    from tests.logstore.server import LocalLogstore

PREFIX = "/_llmtail/"

_Route = Callable[[dict[str, str], dict[str, Any]], Any]


def group_to_json(group: StoredLogGroup) -> dict[str, Any]:
    return {
        "project": group.project,
        "logstore": group.logstore,
        "request_id": group.request_id,
        "topic": group.topic,
        "source": group.source,
        "tags": [list(t) for t in group.tags],
        "compress_type": group.compress_type,
        "hash_key": group.hash_key,
        "logs": [
            {"time": log.time, "time_ns": log.time_ns, "contents": [list(c) for c in log.contents]}
            for log in group.logs
        ],
    }


class Admin:
    """Routes `(method, name)` to the server's own methods; answers are JSON-able."""

    def __init__(self, server: LocalLogstore) -> None:
        self._server = server
        s = server
        self._routes: dict[tuple[str, str], _Route] = {
            ("GET", "stats"): lambda p, d: s.stats().to_json(),
            ("GET", "records"): lambda p, d: {
                "records": s.records(p.get("project"), p.get("logstore"))
            },
            ("GET", "groups"): lambda p, d: {
                "groups": [group_to_json(g) for g in s.groups(p.get("project"), p.get("logstore"))]
            },
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): lambda p, d: s.faults.clear(),
            ("POST", "logstores"): lambda p, d: s.add_logstore(d["project"], d["logstore"]),
            ("DELETE", "logstores"): lambda p, d: s.remove_logstore(d["project"], d["logstore"]),
            ("POST", "expire-token"): lambda p, d: s.expire_token(d["token"]),
            ("POST", "credentials"): lambda p, d: s.add_credential(
                d["access_key_id"], d["access_key_secret"], d.get("security_token")
            ),
            ("POST", "outage"): self._outage,
            ("POST", "reset"): lambda p, d: s.reset(),
        }

    def answer(
        self, method: str, name: str, params: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """(status, JSON-able answer) for one admin request."""
        route = self._routes.get((method, name))
        if route is None:
            return 404, {"errorCode": "NotFound", "errorMessage": f"no admin route {method} {name}"}
        try:
            data: dict[str, Any] = json.loads(body) if body else {}
            answer = route(params, data)
        except (KeyError, ValueError, TypeError) as exc:
            return 400, {"errorCode": "BadAdminRequest", "errorMessage": repr(exc)}
        return 200, {"ok": True} if answer is None else answer

    def _add_fault(self, params: dict[str, str], data: dict[str, Any]) -> None:
        self._server.faults.add(
            FaultRule(
                kind=FaultKind(data.get("kind", "error")),
                code=data.get("code", "InternalServerError"),
                status=data.get("status"),
                message=data.get("message"),
                delay=float(data.get("delay", 0.0)),
                count=data.get("count"),
                probability=float(data.get("probability", 1.0)),
                seconds=data.get("seconds"),
            )
        )

    def _outage(self, params: dict[str, str], data: dict[str, Any]) -> None:
        seconds, refuse = float(data["seconds"]), bool(data.get("refuse", True))
        # Answer first: a refusing outage closes this very connection.
        timer = threading.Timer(0.05, self._server.outage, (seconds,), {"refuse": refuse})
        timer.daemon = True
        timer.start()
