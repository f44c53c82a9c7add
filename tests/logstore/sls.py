"""The SLS side of the local Logstore: who may write where, and what a PutLogs must satisfy.

No sockets here: `Sls` takes a parsed `Request` and either stores it or raises `SlsError`.
"""

from __future__ import annotations

import email.utils
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tests.logstore.codec import (
    MAX_RAW_BODY,
    check_group,
    count_group,
    decode_logs,
    decompress,
    parse_group,
    to_stored,
)
from tests.logstore.errors import TOKEN_EXPIRED_MESSAGE, TOKEN_INVALID_MESSAGE, SlsError
from tests.logstore.signing import content_md5, signature, string_to_sign
from tests.logstore.store import Store

MAX_CLOCK_SKEW = 15 * 60
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


@dataclass(frozen=True, slots=True)
class Credential:
    """An AccessKey pair; with `security_token`, requests must carry that STS token."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an HTTP request the SLS checks look at."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


# The name the SDK reaches the local Logstore by, as `{project}.{SDK_DOMAIN}` (`.test` never
# resolves: the only way there is the proxy of `LocalLogstore.sdk_env`).
SDK_DOMAIN = "sls.llmtail.test"


def project_from_host(host: str | None, default: str) -> str:
    """`{project}.{endpoint}[:port]` -> project. A bare IP (the SDK's raw-IP mode sends no
    project in the URL), a dotless name or the endpoint name itself (the SDK's project-less
    calls, e.g. resource records) carries no project: use `default`."""
    if not host:
        return default
    name = host.strip()
    if name.startswith("["):
        return default
    name = name.rsplit(":", 1)[0]
    if _IPV4.fullmatch(name) or "." not in name or name.lower() == SDK_DOMAIN:
        return default
    return name.split(".", 1)[0]


def new_request_id() -> str:
    """24 upper-case hex digits, the shape of SLS request ids."""
    return secrets.token_hex(12).upper()


class Sls:
    """Projects, logstores and credentials (changeable at runtime) and the PutLogs checks."""

    def __init__(
        self,
        store: Store,
        default_project: str,
        credential: Credential,
        clock: Callable[[], float],
        max_logs_per_group: int,
    ) -> None:
        self.store = store
        self.default_project = default_project
        self.max_logs_per_group = max_logs_per_group
        self._clock = clock
        self._lock = threading.Lock()
        self._credentials = {credential.access_key_id: credential}
        self._expired_tokens: set[str] = set()
        self._logstores: set[tuple[str, str]] = set()

    def add_logstore(self, project: str, logstore: str) -> None:
        with self._lock:
            self._logstores.add((project, logstore))

    def remove_logstore(self, project: str, logstore: str) -> None:
        with self._lock:
            self._logstores.discard((project, logstore))

    def add_credential(self, credential: Credential) -> None:
        with self._lock:
            self._credentials[credential.access_key_id] = credential

    def expire_token(self, token: str) -> None:
        with self._lock:
            self._expired_tokens.add(token)

    def logstore_names(self, project: str) -> set[str]:
        with self._lock:
            return {ls for p, ls in self._logstores if p == project}

    def authenticate(self, req: Request) -> str:
        """The request's project, once its signature, token and date pass; raises SlsError."""
        project = project_from_host(req.headers.get("host"), self.default_project)
        self._authenticate(req, project)
        return project

    def _authenticate(self, req: Request, project: str) -> None:
        """Project, AccessKey, signature, STS token and request time, in that order."""
        with self._lock:
            known_project = any(p == project for p, _ in self._logstores)
        if not known_project:
            raise SlsError(404, "ProjectNotExist", f"The Project does not exist : {project}")
        self._check_token(req, self._check_signature(req))
        self._check_date(req)

    def _check_signature(self, req: Request) -> Credential:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("LOG ") or ":" not in auth:
            raise SlsError(400, "MissAccessKeyId", "x-log-accesskeyid does not exist in header.")
        key_id, _, claimed = auth[4:].strip().rpartition(":")
        with self._lock:
            cred = self._credentials.get(key_id)
        if cred is None:
            raise SlsError(401, "InvalidAccessKeyId", f"AccessKeyId not found: {key_id}")
        text = string_to_sign(req.method, req.path, req.params, req.headers)
        if not hmac.compare_digest(signature(cred.access_key_secret, text), claimed):
            raise SlsError(401, "SignatureNotMatch", f"signature {claimed} not match")
        return cred

    def _check_token(self, req: Request, cred: Credential) -> None:
        token = req.headers.get("x-acs-security-token")
        if token != cred.security_token:
            raise SlsError(401, "Unauthorized", TOKEN_INVALID_MESSAGE)
        with self._lock:
            expired = token is not None and token in self._expired_tokens
        if expired:
            raise SlsError(401, "Unauthorized", TOKEN_EXPIRED_MESSAGE)

    def _check_date(self, req: Request) -> None:
        date = req.headers.get("date")
        if date is None:
            raise SlsError(400, "MissingDate", "Date does not exist in http header.")
        try:
            sent = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError) as exc:
            raise SlsError(400, "InvalidDateFormat", f"Date {date} must follow RFC822.") from exc
        now = self._clock()
        if abs(now - sent) > MAX_CLOCK_SKEW:
            raise SlsError(
                400,
                "RequestTimeExpired",
                f"Request time {date} has been expired while server time is "
                f"{email.utils.formatdate(now, usegmt=True)}.",
            )

    def _check_logstore(self, project: str, logstore: str) -> None:
        with self._lock:
            exists = (project, logstore) in self._logstores
        if not exists:
            raise SlsError(404, "LogStoreNotExist", f"logstore {logstore} does not exist")

    def put_logs(self, req: Request, logstore: str) -> str:
        """Check, decode and store one PutLogs request; its request id. Raises `SlsError`."""
        project = project_from_host(req.headers.get("host"), self.default_project)
        self._authenticate(req, project)
        self._check_logstore(project, logstore)
        raw, compress_type, raw_size = _decoded_body(req)
        request_id = new_request_id()
        if self.store.count_only:
            count = count_group(raw, self._clock(), self.max_logs_per_group)
            self.store.accepted(project, logstore, count, raw_size, None)
            return request_id
        group = parse_group(raw)
        check_group(group, self._clock(), self.max_logs_per_group)
        stored = to_stored(
            group,
            decode_logs(group),
            project=project,
            logstore=logstore,
            request_id=request_id,
            compress_type=compress_type,
            hash_key=req.params.get("key"),
        )
        self.store.accepted(project, logstore, len(group.Logs), raw_size, stored)
        return request_id


def _decoded_body(req: Request) -> tuple[bytes, str, int]:
    """(LogGroup bytes, compress type, raw size) after the header and body checks."""
    h = req.headers
    if "x-log-apiversion" not in h:
        raise SlsError(400, "MissingAPIVersion", "x-log-apiversion does not exist in http header.")
    if h.get("content-type") != "application/x-protobuf":
        raise SlsError(
            415, "InvalidContentType", f"Content-Type {h.get('content-type')} is unsupported."
        )
    md5 = h.get("content-md5")
    # SLS's public docs name no code for this; InvalidContentMD5 is this server's choice.
    if md5 is not None and md5.upper() != content_md5(req.body):
        raise SlsError(400, "InvalidContentMD5", f"Content-MD5 {md5} does not match the body")
    if "x-log-bodyrawsize" not in h:
        raise SlsError(
            400,
            "MissingBodyRawSize",
            "x-log-bodyrawsize does not exist in header when it is necessary.",
        )
    try:
        raw_size = int(h["x-log-bodyrawsize"])
    except ValueError as exc:
        raise SlsError(400, "InvalidBodyRawSize", "x-log-bodyrawsize is invalid.") from exc
    if raw_size > MAX_RAW_BODY or len(req.body) > MAX_RAW_BODY:
        raise SlsError(
            413, "PostBodyTooLarge", f"body size {raw_size} must little than {MAX_RAW_BODY}"
        )
    compress_type = h.get("x-log-compresstype", "")
    return decompress(req.body, compress_type, raw_size), compress_type, raw_size
