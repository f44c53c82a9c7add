"""The SDK's LogClient for the admin API (`llmtail provision`), through its public API only.

With agent/provision/remote.py, the only module that imports the aliyun SDK; PutLogs and
`check-output` go through llmtail's own client (sls_client). Issue 10 keeps the SDK for the admin
API: it knows the paths and bodies of a dozen object kinds (logstores, index, dashboards, alert
jobs, saved searches, resource records), which an own client would have to copy and keep current.

What is used: the constructor (endpoint, `source`, `credentials_provider`) and the `timeout`
property; no private member is read, set or overridden. Two SDK behaviours have no public switch:

- Retries. `LogClient._send` tries up to ten times, with a 1 s sleep after a 5xx, RequestTimeout
  or failed plain-http connection. The SDK signs every attempt afresh and asks the credentials
  provider for credentials each time, so the provider here also keeps each call's deadline
  (`AdminClient` arms it around every public method). Before an attempt it lowers the client's
  timeout to what is left of the deadline; past the deadline it refuses to sign with
  `AdminTimeoutError`, which the SDK does not catch (its loop catches LogException only), so the
  call ends there. A call lasts at most its deadline plus one 1 s pause and a name lookup, both
  outside `requests`' timeout, which bounds each connect and each wait for bytes, not a whole
  answer (a server dripping its answer could hold one attempt longer; the SDK reads the answer
  whole, unbounded in size, a risk accepted for an interactive admin command against SLS).
  Retries within the deadline are kept: they ride out a transient 5xx, and a refused connection
  or a name that does not resolve (plain http) still ends with the SDK's own error, after its
  ten attempts (about 10 s). The price: a create whose answer was lost is sent again and fails
  as "already exists"; provision's next run then finds it unchanged. (A thread with a deadline
  was the alternative: a call that overran would leave its thread, and the request, behind.)
- Endpoints. The SDK reaches `{project}.{host}:{port}` by name, unless the endpoint is a bare
  IPv4 address (then port 80 with the project in `Host`). It cannot reach an IP address with a
  port (it puts the project in front and the lookup fails) or an IPv6 literal (its parser splits
  at the first colon). Those are refused in one line naming the fix; `run` and `check-output`,
  on llmtail's own client, take them. The tests reach the local Logstore by name, as the SDK
  reaches SLS, through the HTTP proxy `requests` reads from `http_proxy` (tests/logstore).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from aliyun.log import LogClient
from aliyun.log.credentials import Credentials as SdkCredentials
from aliyun.log.credentials import CredentialsProvider

from llmtail.agent.delivery.credentials import CredentialsSource
from llmtail.agent.endpoint import Endpoint, EndpointError, parse_endpoint

# The connect part of each attempt's timeout: a dead address fails in this, not in the deadline.
CONNECT_TIMEOUT = 10.0


class AdminTimeoutError(Exception):
    """An admin call that did not succeed within its deadline; one line for the user."""


class _Provider(CredentialsProvider):
    """Credentials for each attempt the SDK signs, and the seam that keeps the call's deadline."""

    def __init__(self, source: CredentialsSource, before_attempt: Callable[[], None]) -> None:
        self._source = source
        self._before_attempt = before_attempt

    def get_credentials(self) -> SdkCredentials:
        self._before_attempt()
        c = self._source.get()
        return SdkCredentials(c.access_key_id, c.access_key_secret, c.security_token)


class AdminClient:
    """An SDK `LogClient` whose public methods each end within `timeout` seconds.

    `client.get_logstore(project, name)` and the like are the SDK's methods, called with a
    deadline; `sdk` is the bare client (no deadline). Not for use from two threads at once.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: CredentialsSource,
        timeout: float,
        *,
        source: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._clock = clock
        self._deadline: float | None = None
        # `source` is only sent by put_logs; given, it spares the SDK a lookup of the endpoint.
        self.sdk = LogClient(
            sdk_endpoint(endpoint),
            source=source,
            credentials_provider=_Provider(credentials, self._before_attempt),
        )
        self._set_attempt_timeout(timeout)

    def __getattr__(self, name: str) -> Any:
        """The SDK's public method `name`, bounded by the deadline; private names are refused."""
        if name.startswith("_") or name == "sdk":  # "sdk": not set yet (copy, pickle)
            raise AttributeError(name)
        method = getattr(self.sdk, name)
        if not callable(method):
            return method

        @wraps(method)
        def bounded_call(*args: Any, **kwargs: Any) -> Any:
            with self.deadline():
                return method(*args, **kwargs)

        return bounded_call

    @contextmanager
    def deadline(self) -> Iterator[None]:
        """Every SDK call inside ends by `timeout` seconds from now (plus one 1 s SDK pause)."""
        self._deadline = self._clock() + self._timeout
        try:
            yield
        finally:
            self._deadline = None
            self._set_attempt_timeout(self._timeout)

    def _before_attempt(self) -> None:
        """Called as the SDK signs an attempt: refuse it past the deadline, else shorten it."""
        if self._deadline is None:
            return
        left = self._deadline - self._clock()
        if left <= 0:
            raise AdminTimeoutError(f"no success from SLS within {self._timeout:g} s")
        self._set_attempt_timeout(left)

    def _set_attempt_timeout(self, seconds: float) -> None:
        sdk: Any = self.sdk  # the SDK's stub types `timeout` as int; requests takes a pair
        sdk.timeout = (min(CONNECT_TIMEOUT, seconds), seconds)


def sdk_endpoint(endpoint: Endpoint) -> str:
    """The endpoint as the SDK's constructor takes it; EndpointError where the SDK cannot reach."""
    if not endpoint.is_ip:
        return f"{endpoint.scheme}://{endpoint.host}:{endpoint.port}"
    if endpoint.scheme == "http" and endpoint.port == 80 and "." in endpoint.host:
        return endpoint.host  # the SDK's one IP form: a bare IPv4 address, port 80
    raise EndpointError(
        f"endpoint {endpoint.netloc()!r}: provision goes through the aliyun SDK, which cannot "
        "reach an IP address with a port or over https, nor an IPv6 address; use the region's "
        "endpoint name (e.g. cn-hangzhou.log.aliyuncs.com)"
    )


def log_client(
    endpoint: str | Endpoint, credentials: CredentialsSource, timeout: float, source: str = ""
) -> AdminClient:
    """The admin client for `endpoint`, each call bounded by `timeout` seconds.

    Raises EndpointError for an endpoint that does not parse or that the SDK cannot reach."""
    ep = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
    return AdminClient(ep, credentials, timeout, source=source)
