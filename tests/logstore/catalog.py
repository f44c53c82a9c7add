"""The admin API of the local Logstore: logstores, index, dashboards, alerts (jobs), saved
searches and alert resource records, as `llmtail provision` uses them through the SDK.

No sockets here: `Catalog.answer` takes a signed, authenticated `Request` and returns the JSON
answer or raises `SlsError` with the status and code SLS uses. It checks what SLS checks (required
keys, types, names, conflicts) and stores what it accepts; a GET returns what was stored plus the
keys SLS adds (createTime, lastModifyTime, ...), so a client must not expect its body back as is.

Codes from the SLS error centre and the SDKs' own handling (`LogStoreAlreadyExist`,
`LogStoreNotExist`, `IndexAlreadyExist`, `IndexConfigNotExist`, `JobAlreadyExist`,
`JobNotExist`, `DashboardNotExist`, `SavedSearchNotExist`, `ParameterInvalid`,
`LogStoreInfoInvalid` "redundant key exist in json"). Chosen here, not confirmed by a public
source: `DashboardAlreadyExist`, `SavedSearchAlreadyExist`, `IndexInfoInvalid` for a bad index,
`RecordAlreadyExist` / `RecordNotExist` / `ResourceNotExist` for resource records, and
`PostBodyInvalid` for a body that is not JSON.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.logstore.errors import SlsError
from tests.logstore.sls import Request

_LOGSTORE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]")
_OBJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{1,126}[a-z0-9]")  # lowercase, like logstores
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_RECORD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LOGSTORE_KEYS = {
    "logstoreName", "ttl", "shardCount", "enable_tracking", "autoSplit", "maxSplitShard",
    "appendMeta", "telemetryType", "mode", "hot_ttl", "enableModify", "encrypt_conf",
    "infrequentAccessTTL", "resourceQuota",
}  # fmt: skip
_RESOURCES = {
    "sls.alert.action_policy",
    "sls.alert.alert_policy",
    "sls.alert.content_template",
    "sls.common.user",
    "sls.common.user_group",
}
_SEVERITIES = {2, 4, 6, 8, 10}
# path segment -> (the body's name key, the label in error codes)
_KINDS = {
    "dashboards": ("dashboardName", "Dashboard"),
    "jobs": ("name", "Job"),
    "savedsearches": ("savedsearchName", "SavedSearch"),
}


def _invalid(message: str, code: str = "ParameterInvalid") -> SlsError:
    return SlsError(400, code, message)


def _need(body: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = body.get(key) if isinstance(body, dict) else None
    if value is None or not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise _invalid(f"{where}{key} is missing or not a {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


class Catalog:
    """Admin objects per project; thread-safe. `writes` lists every accepted write request."""

    def __init__(
        self, logstores: Callable[[str], set[str]], add_logstore: Callable[[str, str], None]
    ):
        self._logstores = logstores  # the names the PutLogs side knows in a project
        self._add_logstore = add_logstore
        self._lock = threading.Lock()
        self._meta: dict[tuple[str, str], dict[str, Any]] = {}
        self._index: dict[tuple[str, str], dict[str, Any]] = {}
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (project, kind, name)
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[str] = []

    # -- routing --------------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return path.startswith(
            ("/logstores", "/dashboards", "/jobs", "/savedsearches", "/resources/")
        )

    def answer(self, req: Request, project: str) -> Any:
        """The JSON answer (None: empty 200) of one admin request; raises SlsError."""
        parts = [p for p in req.path.split("/") if p]
        method = req.method
        with self._lock:
            if parts[0] == "logstores":
                result = self._logstore_route(req, project, parts)
            elif parts[0] == "resources":
                result = self._record_route(req, parts)
            else:
                result = self._object_route(req, project, parts)
            if method in ("POST", "PUT", "DELETE"):
                self.writes.append(f"{method} {req.path}")
            return result

    def _logstore_route(self, req: Request, project: str, parts: list[str]) -> Any:
        m, n = req.method, len(parts)
        if n == 1 and m == "POST":
            return self._create_logstore(project, _json(req))
        if n == 1 and m == "GET":
            names = sorted(self._logstores(project))
            return {"count": len(names), "total": len(names), "logstores": names}
        name = parts[1]
        if name not in self._logstores(project):
            raise SlsError(404, "LogStoreNotExist", f"logstore {name} does not exist")
        if n == 2 and m == "GET":
            return self._logstore_meta(project, name)
        if n == 2 and m == "PUT":
            return self._update_logstore(project, name, _json(req))
        if n == 3 and parts[2] == "index":
            return self._index_route(req, project, name)
        raise SlsError(404, "NotImplemented", f"{m} {req.path} is not served here")

    # -- logstores ------------------------------------------------------------------------------

    def _logstore_meta(self, project: str, name: str) -> dict[str, Any]:
        now = int(time.time())
        default = {
            "logstoreName": name, "ttl": 30, "shardCount": 2, "enable_tracking": False,
            "autoSplit": True, "maxSplitShard": 64, "appendMeta": False, "telemetryType": "",
            "mode": "standard", "createTime": now, "lastModifyTime": now,
        }  # fmt: skip
        return dict(self._meta.setdefault((project, name), default))

    def _check_logstore_body(self, body: dict[str, Any]) -> None:
        redundant = set(body) - _LOGSTORE_KEYS
        if redundant:
            raise _invalid("redundant key exist in json", "LogStoreInfoInvalid")
        ttl = _need(body, "ttl", int)
        if not 1 <= ttl <= 3650:
            raise _invalid(f"ttl {ttl} must be in [1, 3650]", "LogStoreInfoInvalid")
        if "mode" in body and body["mode"] not in ("standard", "query"):
            raise _invalid(f"mode {body['mode']!r} must be standard or query")

    def _create_logstore(self, project: str, body: dict[str, Any]) -> None:
        name = _need(body, "logstoreName", str)
        if not _LOGSTORE_NAME.fullmatch(name):
            raise _invalid(f"logstore name {name} is invalid", "LogStoreInfoInvalid")
        self._check_logstore_body(body)
        shards = _need(body, "shardCount", int)
        if not 1 <= shards <= 256:
            raise _invalid(f"shardCount {shards} must be in [1, 256]", "LogStoreInfoInvalid")
        if name in self._logstores(project):
            raise SlsError(400, "LogStoreAlreadyExist", f"logstore {name} already exists")
        self._add_logstore(project, name)
        meta = self._logstore_meta(project, name)
        meta.update({k: v for k, v in body.items()})
        self._meta[(project, name)] = meta

    def _update_logstore(self, project: str, name: str, body: dict[str, Any]) -> None:
        if body.get("logstoreName") != name:
            raise _invalid("logstoreName in body must match the path")
        self._check_logstore_body(body)
        meta = self._logstore_meta(project, name)
        meta.update({k: v for k, v in body.items() if k != "shardCount"})  # shards: split only
        meta["lastModifyTime"] = int(time.time())
        self._meta[(project, name)] = meta

    # -- index ----------------------------------------------------------------------------------

    def _index_route(self, req: Request, project: str, logstore: str) -> Any:
        key = (project, logstore)
        if req.method == "GET":
            if key not in self._index:
                raise SlsError(
                    404, "IndexConfigNotExist", f"index config of {logstore} does not exist"
                )
            return dict(self._index[key])
        if req.method == "POST" and key in self._index:
            raise SlsError(400, "IndexAlreadyExist", f"index of {logstore} already exists")
        if req.method == "PUT" and key not in self._index:
            raise SlsError(404, "IndexConfigNotExist", f"index config of {logstore} does not exist")
        if req.method not in ("POST", "PUT"):
            raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
        body = _json(req)
        _check_index(body)
        self._index[key] = {**body, "storage": "pg", "lastModifyTime": int(time.time())}
        return None

    # -- dashboards, jobs, saved searches -------------------------------------------------------

    def _object_route(self, req: Request, project: str, parts: list[str]) -> Any:
        kind = parts[0]
        if kind not in _KINDS or len(parts) > 2:
            raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
        name_key, label = _KINDS[kind]
        if len(parts) == 2:
            key = (project, kind, parts[1])
            if key not in self._objects:
                raise SlsError(
                    404, f"{label}NotExist", f"{label.lower()} {parts[1]} does not exist"
                )
            if req.method == "GET":
                return dict(self._objects[key])
            if req.method != "PUT":
                raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
            body = _json(req)
            if body.get(name_key) != parts[1]:
                raise _invalid(f"{name_key} in body must match the path")
            _CHECKS[kind](body)
            created = self._objects[key].get("createTime", int(time.time()))
            self._objects[key] = {
                **body,
                "createTime": created,
                "lastModifiedTime": int(time.time()),
            }
            return None
        if req.method != "POST":
            raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
        body = _json(req)
        name = _need(body, name_key, str)
        if not _OBJECT_NAME.fullmatch(name):
            raise _invalid(f"{name_key} {name!r} is invalid: lowercase letters, digits, - and _")
        _CHECKS[kind](body)
        key = (project, kind, name)
        if key in self._objects:
            raise SlsError(400, f"{label}AlreadyExist", f"{label.lower()} {name} already exists")
        now = int(time.time())
        self._objects[key] = {**body, "createTime": now, "lastModifiedTime": now}
        return None

    # -- resource records -----------------------------------------------------------------------

    def _record_route(self, req: Request, parts: list[str]) -> Any:
        if len(parts) < 3 or parts[2] != "records" or len(parts) > 4:
            raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
        resource = parts[1]
        if resource not in _RESOURCES:
            raise SlsError(404, "ResourceNotExist", f"resource {resource} does not exist")
        if len(parts) == 4:
            key = (resource, parts[3])
            if key not in self._records:
                raise SlsError(404, "RecordNotExist", f"record {parts[3]} does not exist")
            if req.method == "GET":
                return dict(self._records[key])
            if req.method != "PUT":
                raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
            body = _json(req)
            value = _record_value(resource, parts[3], body)
            self._records[key] = {**self._records[key], "value": value, "tag": body.get("tag", "")}
            return None
        if req.method != "POST":
            raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
        body = _json(req)
        record_id = _need(body, "id", str)
        if not _RECORD_ID.fullmatch(record_id):
            raise _invalid(f"record id {record_id!r} is invalid")
        value = _record_value(resource, record_id, body)
        key = (resource, record_id)
        if key in self._records:
            raise SlsError(400, "RecordAlreadyExist", f"record {record_id} already exists")
        now = int(time.time())
        self._records[key] = {
            "id": record_id, "tag": body.get("tag", ""), "value": value,
            "createTime": now, "lastModifyTime": now,
        }  # fmt: skip
        return None


def _json(req: Request) -> dict[str, Any]:
    try:
        body = json.loads(req.body or b"null")
    except ValueError:
        raise _invalid("the body is not JSON", "PostBodyInvalid") from None
    if not isinstance(body, dict):
        raise _invalid("the body must be a JSON object", "PostBodyInvalid")
    return body


def _check_index(body: dict[str, Any]) -> None:
    bad = "IndexInfoInvalid"
    if "line" not in body and "keys" not in body:
        raise _invalid("index needs line or keys", bad)
    if "line" in body:
        token = body["line"].get("token") if isinstance(body["line"], dict) else None
        if not isinstance(token, list) or not token:
            raise _invalid("line.token must be a non-empty list", bad)
    keys = body.get("keys", {})
    if not isinstance(keys, dict):
        raise _invalid("keys must be an object", bad)
    for name, conf in keys.items():
        if not _KEY_NAME.fullmatch(name) or not isinstance(conf, dict):
            raise _invalid(f"index key {name!r} is invalid", bad)
        kind = conf.get("type")
        if kind not in ("text", "long", "double", "json"):
            raise _invalid(
                f"index key {name}: type {kind!r} must be text, long, double or json", bad
            )
        if kind == "text" and (not isinstance(conf.get("token"), list) or not conf["token"]):
            raise _invalid(f"index key {name}: a text key needs a non-empty token list", bad)
        if not isinstance(conf.get("doc_value", False), bool):
            raise _invalid(f"index key {name}: doc_value must be a boolean", bad)
    if "max_text_len" in body:
        size = body["max_text_len"]
        if not isinstance(size, int) or not 64 <= size <= 16384:
            raise _invalid(f"max_text_len {size!r} must be in [64, 16384]", bad)


def _check_dashboard(body: dict[str, Any]) -> None:
    charts = _need(body, "charts", list)
    _need(body, "displayName", str)
    for i, chart in enumerate(charts):
        where = f"charts[{i}]."
        if not isinstance(chart, dict):
            raise _invalid(f"{where} must be an object")
        _need(chart, "title", str, where)
        _need(chart, "type", str, where)
        search = _need(chart, "search", dict, where)
        for key in ("logstore", "query", "start", "end"):
            _need(search, key, str, where + "search.")
        display = _need(chart, "display", dict, where)
        for key in ("xPos", "yPos", "width", "height"):
            _need(display, key, int, where + "display.")


def _check_alert(body: dict[str, Any]) -> None:
    if body.get("type") != "Alert":
        raise _invalid("type must be Alert")
    _need(body, "displayName", str)
    schedule = _need(body, "schedule", dict)
    if schedule.get("type") not in ("FixedRate", "Cron", "Hourly", "Daily", "Weekly"):
        raise _invalid(f"schedule.type {schedule.get('type')!r} is invalid")
    conf = _need(body, "configuration", dict)
    if conf.get("version") != "2.0":
        raise _invalid("configuration.version must be 2.0")
    queries = _need(conf, "queryList", list, "configuration.")
    if not queries:
        raise _invalid("configuration.queryList must not be empty")
    for i, query in enumerate(queries):
        for key in ("storeType", "store", "query", "project", "region", "start", "end"):
            _need(query, key, str, f"configuration.queryList[{i}].")
    group = _need(conf, "groupConfiguration", dict, "configuration.")
    if group.get("type") not in ("no_group", "custom", "labels_auto"):
        raise _invalid(f"groupConfiguration.type {group.get('type')!r} is invalid")
    if group["type"] == "custom" and not group.get("fields"):
        raise _invalid("groupConfiguration.fields must name the columns of a custom group")
    severities = _need(conf, "severityConfigurations", list, "configuration.")
    if not severities:
        raise _invalid("configuration.severityConfigurations must not be empty")
    for i, sev in enumerate(severities):
        if not isinstance(sev, dict) or sev.get("severity") not in _SEVERITIES:
            raise _invalid(f"severityConfigurations[{i}].severity must be one of 2, 4, 6, 8, 10")
        _need(_need(sev, "evalCondition", dict), "condition", str, "evalCondition.")
    policy = _need(conf, "policyConfiguration", dict, "configuration.")
    _need(policy, "alertPolicyId", str, "policyConfiguration.")


def _check_savedsearch(body: dict[str, Any]) -> None:
    _need(body, "logstore", str)
    if not _need(body, "searchQuery", str).strip():
        raise _invalid("searchQuery must not be empty")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "dashboards": _check_dashboard,
    "jobs": _check_alert,
    "savedsearches": _check_savedsearch,
}


def _record_value(resource: str, record_id: str, body: dict[str, Any]) -> str:
    text = _need(body, "value", str)
    try:
        value = json.loads(text)
    except ValueError:
        raise _invalid("value must be a JSON string") from None
    if resource == "sls.alert.action_policy":
        if value.get("action_policy_id") != record_id:
            raise _invalid("value.action_policy_id must equal the record id")
        _need(value, "primary_policy_script", str, "value.")
        _need(value, "action_policy_name", str, "value.")
    return text
