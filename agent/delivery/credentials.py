"""Access keys for SLS: from the environment, a private file re-read when it changes, or a
provider of `alibabacloud-credentials` that needs no AccessKey on disk (the ECS instance RAM
role, or the SDK's default chain: OIDC/RRSA, profiles, STS AssumeRole, credentials URI).

The file is YAML with these keys (the names of the environment variables, lower-cased and without
the `ALIBABA_CLOUD_` prefix, so one vocabulary serves both):

    access_key_id: LTAI...
    access_key_secret: ...
    security_token: ...        # optional: STS credentials

A file readable by group or others is refused: it holds a secret. systemd's credentials
(`LoadCredential=`, in /run/credentials/UNIT/ or `$CREDENTIALS_DIRECTORY`) are the exception for
the group bits: they show the ACL that grants the service user access, and the directory is
readable by the service alone. The file is stat-ed before
each request and re-read when it changed, so a rotated STS token is used without a restart; a
half-written file during rotation keeps the previous credentials in use.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import yaml

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


class CredentialsError(Exception):
    """Credentials the agent cannot use; the message is one line meant for the user."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        token = ", security_token=<set>" if self.security_token else ""
        return f"Credentials(access_key_id={mask(self.access_key_id)!r}{token})"

    __str__ = __repr__


def mask(access_key_id: str) -> str:
    """An AccessKeyId shortened for log lines: enough to tell keys apart, not to use one."""
    if len(access_key_id) <= 8:
        return "****"
    return f"{access_key_id[:4]}****{access_key_id[-4:]}"


class CredentialsSource(Protocol):
    """Where the current credentials come from; `get` is called before every request."""

    def get(self) -> Credentials:
        """The credentials to sign the next request with; raises CredentialsError."""
        ...

    def refresh(self) -> None:
        """Re-read now (after the server said the token expired)."""
        ...


class StaticCredentials:
    """Fixed credentials (the environment does not change under a running process)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def get(self) -> Credentials:
        return self._credentials

    def refresh(self) -> None:
        """Nothing to re-read."""

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"


def from_environment(environ: Mapping[str, str]) -> StaticCredentials:
    """Credentials from ALIBABA_CLOUD_* variables; CredentialsError naming what is missing."""
    key_id = environ.get(ENV_ID, "").strip()
    secret = environ.get(ENV_SECRET, "").strip()
    missing = [name for name, value in ((ENV_ID, key_id), (ENV_SECRET, secret)) if not value]
    if missing:
        raise CredentialsError(
            f"no SLS credentials: set {' and '.join(missing)} "
            "or output.credentials_file in the config"
        )
    token = environ.get(ENV_TOKEN, "").strip() or None
    return StaticCredentials(Credentials(key_id, secret, token))


class FileCredentials:
    """Credentials from a private YAML file, re-read when its mtime, size or inode changes."""

    def __init__(self, path: str | Path, environ: Mapping[str, str] | None = None) -> None:
        self._path = Path(path)
        self._from_systemd = from_systemd(self._path, os.environ if environ is None else environ)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._current: Credentials | None = None
        self._warned: str | None = None
        self.get()  # fail at startup, not at the first request

    def get(self) -> Credentials:
        with self._lock:
            try:
                st = self._path.stat()
            except OSError as exc:
                return self._keep_or_raise(
                    f"{self._path}: cannot read credentials file: {_why(exc)}"
                )
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp or self._current is None:
                try:
                    self._current = self._read(st)
                except CredentialsError as exc:
                    return self._keep_or_raise(str(exc))
                self._stamp = stamp
                if self._warned is not None:
                    log.info("credentials file %s is usable again", self._path)
                    self._warned = None
            return self._current

    def refresh(self) -> None:
        with self._lock:
            self._stamp = None
        self.get()

    def _keep_or_raise(self, problem: str) -> Credentials:
        if self._current is None:
            raise CredentialsError(problem)
        if self._warned != problem:
            log.warning("%s; still using the credentials read before", problem)
            self._warned = problem
        return self._current

    def _read(self, st: os.stat_result) -> Credentials:
        where = str(self._path)
        shared = stat.S_IRWXO if self._from_systemd else stat.S_IRWXG | stat.S_IRWXO
        if os.name == "posix" and st.st_mode & shared:
            raise CredentialsError(
                f"{where}: credentials file is accessible by group/others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {where}"
            )
        try:
            data = yaml.safe_load(self._path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CredentialsError(f"{where}: cannot read credentials file: {_why(exc)}") from None
        except (yaml.YAMLError, UnicodeDecodeError):
            # The parser's message may quote the file's content: the secret. Say only where.
            raise CredentialsError(f"{where}: credentials file is not valid YAML") from None
        if not isinstance(data, dict):
            raise CredentialsError(
                f"{where}: expected keys access_key_id, access_key_secret "
                "and optionally security_token"
            )
        unknown = sorted(str(k) for k in data if k not in _FILE_KEYS)
        if unknown:
            raise CredentialsError(
                f"{where}: unknown key(s) {', '.join(unknown)} (expected {', '.join(_FILE_KEYS)})"
            )
        values = {k: data.get(k) for k in _FILE_KEYS}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise CredentialsError(f"{where}: {key} must be a string")
        key_id = (values["access_key_id"] or "").strip()
        secret = (values["access_key_secret"] or "").strip()
        if not key_id or not secret:
            raise CredentialsError(f"{where}: access_key_id and access_key_secret are required")
        return Credentials(key_id, secret, (values["security_token"] or "").strip() or None)

    def __repr__(self) -> str:
        return f"FileCredentials({str(self._path)!r})"


_FILE_KEYS = ("access_key_id", "access_key_secret", "security_token")
SYSTEMD_CREDENTIALS = Path("/run/credentials")


def from_systemd(path: Path, environ: Mapping[str, str]) -> bool:
    """Whether `path` is one of the service's systemd credentials (`LoadCredential=`)."""
    roots = [SYSTEMD_CREDENTIALS]
    if environ.get("CREDENTIALS_DIRECTORY"):
        roots.append(Path(environ["CREDENTIALS_DIRECTORY"]))
    where = path.resolve()
    return any(where.is_relative_to(root.resolve()) for root in roots)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def load_credentials(
    credentials_file: str | None, environ: Mapping[str, str] | None = None
) -> CredentialsSource:
    """The source the config asks for: the file when set, else the environment."""
    if credentials_file:
        return FileCredentials(credentials_file)
    return from_environment(os.environ if environ is None else environ)
