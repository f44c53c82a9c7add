"""What exists in SLS, read and written through the SDK's public admin methods.

With `agent.delivery.admin_client` (which builds the client), the only module that touches the SDK.
Every call ends within the client's deadline; a failure becomes a `RemoteError` that names the
object, the status, SLS's error code and the request id (or why no answer came), never a
credential.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aliyun.log import LogException
from aliyun.log.resource_params import ResourceRecord

from llmtail.agent.delivery.admin_client import AdminClient, AdminTimeoutError
from llmtail.agent.delivery.credentials import CredentialsError
from llmtail.agent.provision.desired import ACTION_POLICY_RESOURCE, Kind, Wanted

# A missing object answers 404 with one of these; ProjectNotExist (also 404) is an error.
_MISSING = frozenset(
    {
        "LogStoreNotExist",
        "IndexConfigNotExist",
        "DashboardNotExist",
        "JobNotExist",
        "SavedSearchNotExist",
        "RecordNotExist",
    }
)


class RemoteError(Exception):
    """An admin request that failed; the message is one line for the user."""


class _Body:
    """The SDK's index methods take an object with `to_json()`; the body is built already."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def to_json(self) -> dict[str, Any]:
        return self._body


class Remote:
    """Reads, creates and updates provision's objects in one project."""

    def __init__(self, client: AdminClient, project: str) -> None:
        self._client: Any = client  # the SDK's methods, each bounded by the client's deadline
        self._project = project

    def read(self, w: Wanted) -> dict[str, Any] | None:
        """The object as SLS returns it; None when it does not exist."""
        try:
            return self._read(w)
        except LogException as exc:
            if exc.get_error_code() in _MISSING:
                return None
            raise _error(w, "read", exc) from None
        except (AdminTimeoutError, CredentialsError) as exc:
            raise _error(w, "read", exc) from None

    def create(self, w: Wanted) -> None:
        self._write(w, "create", w.body)

    def update(self, w: Wanted, body: dict[str, Any]) -> None:
        self._write(w, "update", body)

    def _read(self, w: Wanted) -> dict[str, Any]:
        c, p = self._client, self._project
        if w.kind is Kind.LOGSTORE:
            body: dict[str, Any] = c.get_logstore(p, w.name).get_body()
        elif w.kind is Kind.INDEX:
            body = c.get_index_config(p, w.name).get_body()
        elif w.kind is Kind.DASHBOARD:
            body = c.get_dashboard(p, w.name).get_body()
        elif w.kind is Kind.ALERT:
            body = c.get_alert(p, w.name).get_body()
        elif w.kind is Kind.SEARCH:
            body = c.get_savedsearch(p, w.name).get_body()
        else:
            record = c.get_resource_record(ACTION_POLICY_RESOURCE, w.name).get_body()
            body = json.loads(record.get("value") or "{}")
        return body

    def _write(self, w: Wanted, verb: str, body: dict[str, Any]) -> None:
        c, p = self._client, self._project
        create = verb == "create"
        try:
            if w.kind is Kind.LOGSTORE:
                if create:
                    c.create_logstore(
                        p,
                        w.name,
                        ttl=body["ttl"],
                        shard_count=body["shardCount"],
                        mode=body["mode"],
                    )
                else:
                    c.update_logstore(p, w.name, ttl=body["ttl"], mode=body["mode"])
            elif w.kind is Kind.INDEX:
                (c.create_index if create else c.update_index)(p, w.name, _Body(body))
            elif w.kind is Kind.DASHBOARD:
                (c.create_dashboard if create else c.update_dashboard)(p, body)
            elif w.kind is Kind.ALERT:
                (c.create_alert if create else c.update_alert)(p, body)
            elif w.kind is Kind.SEARCH:
                (c.create_savedsearch if create else c.update_savedsearch)(p, body)
            else:
                record = ResourceRecord(record_id=w.name, tag=w.name, value=body)  # type: ignore[no-untyped-call]
                method = c.create_resource_record if create else c.update_resource_record
                method(ACTION_POLICY_RESOURCE, record)
        except (LogException, AdminTimeoutError, CredentialsError) as exc:
            raise _error(w, verb, exc) from None


def _error(w: Wanted, verb: str, exc: Exception) -> RemoteError:
    what = f"{w.kind.value} {w.name}: {verb} failed"
    if isinstance(exc, LogException) and _no_http_answer(exc):
        return RemoteError(f"{what}: no answer from SLS: {_no_answer(exc.get_error_message())}")
    if isinstance(exc, LogException):
        status = getattr(exc, "resp_status", "") or ""
        rid = exc.get_request_id()
        return RemoteError(
            f"{what}: HTTP {status} {exc.get_error_code()}: {str(exc.get_error_message())[:300]}"
            + (f" (request id {rid})" if rid else "")
        )
    return RemoteError(f"{what}: {exc}")


_HOST = re.compile(r"host='([^']*)'")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _no_http_answer(exc: LogException) -> bool:
    """The SDK's LogRequestError for a request that got no HTTP answer (it keeps the default
    status 200; an HTTP error answer carries its own status)."""
    return bool(exc.get_error_code() == "LogRequestError" and exc.get_resp_status() == 200)


def _no_answer(message: object) -> str:
    """The cause in a `requests` error text, short: `cannot resolve x`, `Connection refused`."""
    text = str(message)
    host = _HOST.search(text)
    if "NameResolutionError" in text or "Name or service not known" in text:
        return f"cannot resolve {host.group(1) if host else 'the endpoint'} (check the endpoint)"
    if "timed out" in text.lower():
        return "timed out"
    errno = _ERRNO.search(text)
    return errno.group(1).strip() if errno else text[:200]
