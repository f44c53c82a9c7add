"""Credentials from `alibabacloud-credentials` providers: no AccessKey on the host's disk.

`ecs_ram_role` asks the ECS metadata service (100.100.100.200, IMDSv2 token first) for the
instance RAM role's STS credentials; `chain` is the library's default chain (environment,
OIDC/RRSA in ACK, `~/.aliyun/config.json` and `~/.alibabacloud/credentials` profiles, which may
AssumeRole, the ECS role, `ALIBABA_CLOUD_CREDENTIALS_URI`).

The library caches a credential and fetches a new one before it expires (the ECS provider 15
minutes before; the caller waits for it, no background thread). `get()` asks it every time, so
the refresh happens inside the library; `refresh()` (SLS said the token expired) drops the
library's cache by building a new ECS provider. The default chain is built once: each build starts
a scheduler thread in the library, so rebuilding on every expired token would leak threads; its
providers refresh 15 minutes before expiry on their own. A credential past its expiration is never
used: if the library could not fetch a new one, `get()` raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from alibabacloud_credentials.exceptions import CredentialException
from alibabacloud_credentials.provider import (
    DefaultCredentialsProvider,
    EcsRamRoleCredentialsProvider,
)

from llmtail.agent.delivery.credentials import Credentials, CredentialsError, mask

log = logging.getLogger(__name__)
# The library gives its "credentials" logger a handler of its own that writes to stderr; drop it
# so its warnings go through the agent's logging (levels, format, journald) like the rest.
for _handler in list(logging.getLogger("credentials").handlers):
    logging.getLogger("credentials").removeHandler(_handler)


class ProviderCredentials:
    """A `CredentialsSource` over an alibabacloud-credentials provider."""

    def __init__(
        self,
        name: str,
        make: Callable[[], Any],
        rebuild_on_refresh: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._make = make
        self._rebuild = rebuild_on_refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._provider: Any = self._build()
        self._last_key: str | None = None
        self.get()  # fail at startup, not at the first request

    @classmethod
    def ecs_ram_role(cls, role_name: str | None = None) -> ProviderCredentials:
        """The ECS instance RAM role (its name asked from the metadata service when None)."""
        return cls(
            f"ECS RAM role {role_name}" if role_name else "ECS RAM role",
            lambda: EcsRamRoleCredentialsProvider(
                role_name=role_name or None, async_update_enabled=False
            ),
        )

    @classmethod
    def default_chain(cls) -> ProviderCredentials:
        return cls("the default credentials chain", DefaultCredentialsProvider, False)

    def get(self) -> Credentials:
        with self._lock:
            provider = self._provider
        try:
            got = provider.get_credentials()
        except CredentialException as exc:
            raise CredentialsError(f"{self._name}: no credentials: {_one_line(exc)}") from None
        except Exception as exc:  # network errors of the library's HTTP client
            raise CredentialsError(
                f"{self._name}: no credentials: {type(exc).__name__}: {_one_line(exc)}"
            ) from None
        key_id, secret = got.get_access_key_id(), got.get_access_key_secret()
        if not key_id or not secret:
            raise CredentialsError(f"{self._name}: the provider gave no AccessKey")
        expiration = got.get_expiration()
        if expiration is not None and expiration <= self._clock():
            # The library keeps serving its last value when a refresh fails: not past its end.
            raise CredentialsError(
                f"{self._name}: credentials expired and no fresh ones could be fetched"
            )
        if key_id != self._last_key:
            log.info("using credentials %s from %s", mask(key_id), self._name)
            self._last_key = key_id
        return Credentials(key_id, secret, got.get_security_token() or None)

    def refresh(self) -> None:
        """Forget the cached credential (SLS said its token expired) and fetch a new one."""
        if self._rebuild:
            with self._lock:
                self._provider = self._build()
        self.get()

    def _build(self) -> Any:
        try:
            return self._make()
        except (ValueError, CredentialException) as exc:  # e.g. metadata disabled by env
            raise CredentialsError(f"{self._name}: {_one_line(exc)}") from None

    def __repr__(self) -> str:
        return f"ProviderCredentials({self._name!r})"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
