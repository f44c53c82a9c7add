"""The SDK's LogClient for the admin API (`llmtail provision`): the one module besides
agent/provision/remote.py that imports the aliyun SDK; PutLogs has its own client (sls_client).

Two SDK behaviours are changed, by overriding its private methods, because its public API offers
no way around them: its retry loop (ten attempts with 1 s sleeps inside one call: the agent owns
retries and deadlines) and its endpoint parsing (an `IP:PORT` endpoint gets the project put in
front of it and fails as DNS; IPv6 literals break it).
"""

from __future__ import annotations

from copy import copy
from typing import Any

from aliyun.log import LogClient
from aliyun.log.credentials import Credentials as SdkCredentials
from aliyun.log.credentials import CredentialsProvider

from llmtail.agent.delivery.credentials import CredentialsSource
from llmtail.agent.endpoint import Endpoint, parse_endpoint

API_VERSION = "0.6.0"


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
