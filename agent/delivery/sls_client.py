"""The one module that imports the aliyun SDK: a LogClient that makes exactly one attempt.

The SDK's `LogClient._send` retries 5xx ten times with 1 s sleeps and waits up to 120 s per
request; the agent owns retries and timeouts (shutdown must not hang), so `_send` is replaced by
a single signed attempt. The SDK also prefixes the project to an `IP:PORT` endpoint (its
`is_row_ip` check fails on the port), which breaks private gateways and the local test server;
the endpoint is parsed here instead. Credentials go through the SDK's credentials-provider seam,
asked before every request, so a rotated STS token is picked up without rebuilding the client.
"""

from __future__ import annotations

import ipaddress
from copy import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from aliyun.log import LogClient, LogException
from aliyun.log.credentials import Credentials as SdkCredentials
from aliyun.log.credentials import CredentialsProvider

from agent.delivery.credentials import CredentialsError, CredentialsSource
from agent.engine.loggroup import LogGroupBytes

API_VERSION = "0.6.0"


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str  # "http" or "https"
    host: str  # a DNS name or an IP literal (IPv6 without brackets)
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class EndpointError(ValueError):
    """An endpoint that cannot be parsed; the message is one line for the user."""


def parse_endpoint(endpoint: str) -> Endpoint:
    """`cn-hangzhou.log.aliyuncs.com`, `https://...`, `127.0.0.1:8080`, `http://[::1]:80`."""
    text = endpoint.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"endpoint {endpoint!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EndpointError(f"endpoint {endpoint!r}: scheme must be http or https")
    if not parts.hostname:
        raise EndpointError(f"endpoint {endpoint!r}: no host name")
    return Endpoint(scheme, parts.hostname, port or (443 if scheme == "https" else 80))


@dataclass(frozen=True, slots=True)
class SlsError(Exception):
    """A failed PutLogs. `status` 0 means no HTTP response (DNS, refused, reset, timeout)."""

    status: int
    code: str
    message: str
    request_id: str = ""

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no response"
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"{where} {self.code}: {self.message}{rid}"


class _Provider(CredentialsProvider):
    """Adapts an agent CredentialsSource to the SDK's provider interface."""

    def __init__(self, source: CredentialsSource) -> None:
        self._source = source

    def get_credentials(self) -> SdkCredentials:
        c = self._source.get()
        return SdkCredentials(c.access_key_id, c.access_key_secret, c.security_token)


class _OneShotLogClient(LogClient):
    def __init__(self, endpoint: Endpoint, provider: _Provider, source: str) -> None:
        self._parsed = endpoint
        super().__init__(endpoint.netloc(), source=source, credentials_provider=provider)
        self._isRowIp = endpoint.is_ip

    def _setendpoint(self, endpoint: str) -> None:
        """Use the endpoint parsed by `parse_endpoint` (the SDK's parser breaks on IPv6)."""
        ep = self._parsed
        self.http_type = ep.scheme + "://"
        self._port = ep.port
        self._logHost = ep.host
        self._endpoint = ep.netloc()

    def _send(
        self,
        method: str,
        project: str,
        body: bytes,
        resource: str,
        params: dict[str, str],
        headers: dict[str, str],
        respons_body_type: str = "json",
        compute_content_hash: bool = True,
    ) -> Any:
        """The SDK's `_send` without its retry loop: one signed attempt."""
        headers = copy(headers)
        headers["Content-Length"] = str(len(body)) if body else "0"
        if not body:
            headers["x-log-bodyrawsize"] = "0"
        headers["x-log-apiversion"] = API_VERSION
        if self._isRowIp or not project:
            url = self.http_type + self._endpoint + resource
        else:
            url = self.http_type + project + "." + self._endpoint + resource
        # SLS reads the project from Host, also behind an IP-literal endpoint.
        headers["Host"] = f"{project}.{self._logHost}" if project else self._logHost
        params = copy(params)
        sdk: Any = self  # the SDK's stubs omit its private attributes
        sdk._auth.sign_request(
            method, resource, params, headers, body, compute_content_hash=compute_content_hash
        )
        return sdk._sendRequest(method, url, params, body, headers, respons_body_type)

    def _getHttpResponse(  # noqa: N802 - the SDK's name
        self, method: str, url: str, params: Any, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, Any]:
        sdk: Any = self
        headers["User-Agent"] = sdk._user_agent
        r = sdk._session.request(
            method, url, params=params, data=body, headers=headers, timeout=sdk._timeout
        )
        return r.status_code, r.content, r.headers


def log_client(
    endpoint: str | Endpoint, credentials: CredentialsSource, timeout: float, source: str = ""
) -> LogClient:
    """An SDK LogClient with this module's endpoint parsing, single attempts and credentials
    seam, for the admin API (`llmtail provision`). Raises EndpointError."""
    ep = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
    client = _OneShotLogClient(ep, _Provider(credentials), source)
    sdk: Any = client
    sdk.timeout = timeout
    return client


class SlsClient:
    """PutLogs of encoded LogGroups to one endpoint; one attempt per call, bounded in time."""

    def __init__(
        self,
        endpoint: str | Endpoint,
        credentials: CredentialsSource,
        source: str,
        timeout: float,
        compress: bool = True,
    ) -> None:
        ep = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
        self._client = _OneShotLogClient(ep, _Provider(credentials), source)
        sdk: Any = self._client
        sdk.timeout = timeout
        self._compress = compress
        self.endpoint = ep

    def put(self, project: str, logstore: str, group: LogGroupBytes) -> str:
        """Send one LogGroup; returns the request id; raises SlsError or CredentialsError."""
        try:
            resp = self._client.put_log_raw(project, logstore, group, compress=self._compress)
        except LogException as exc:
            raise SlsError(
                int(getattr(exc, "resp_status", 0) or 0),
                str(exc.get_error_code()),
                str(exc.get_error_message())[:500],
                str(exc.get_request_id() or ""),
            ) from None
        except CredentialsError:
            raise
        except requests.Timeout:
            raise SlsError(0, "Timeout", "no answer within the request timeout") from None
        except requests.ConnectionError as exc:
            raise SlsError(0, "ConnectionError", _connection_problem(exc)) from None
        except requests.RequestException as exc:
            raise SlsError(0, "RequestError", type(exc).__name__) from None
        return str(resp.get_request_id() or "")

    def close(self) -> None:
        sdk: Any = self._client
        sdk._session.close()


def _connection_problem(exc: requests.ConnectionError) -> str:
    """A short reason: DNS failure, refused, reset, or the exception's own text."""
    text = str(exc)
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "DNS lookup failed (name or service not known)"
    if "temporary failure in name resolution" in lowered or "nameresolution" in lowered:
        return "DNS lookup failed (temporary failure in name resolution)"
    if "connection refused" in lowered:
        return "connection refused"
    if "reset by peer" in lowered or "remotedisconnected" in lowered or "aborted" in lowered:
        return "connection dropped by the server"
    return text[:300]
