"""Where the SLS output sends: an endpoint parsed once, and the mistakes users make writing it.

SLS takes the project from the Host header (`{project}.{endpoint}`), also behind an IP-literal
endpoint such as a private gateway, so the endpoint itself must not name the project.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


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

    def request_host(self, project: str) -> str:
        """The Host header of a request for `project` (SLS routes on its first label)."""
        return f"{project}.{self.host}" if project else self.host

    def connect_host(self, project: str) -> str:
        """Where to connect: an IP literal as is, a DNS name with the project in front."""
        return self.host if self.is_ip else self.request_host(project)


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


def project_in_front(endpoint: str, project: str) -> str | None:
    """The one-line complaint when `endpoint` already starts with `project.`, else None.

    Copied from the console's "project domain" (`myproj.cn-hangzhou.log.aliyuncs.com`), such an
    endpoint makes every request go to `myproj.myproj.cn-hangzhou...`, which fails as a DNS
    error that says nothing about the cause.
    """
    try:
        ep = parse_endpoint(endpoint)
    except EndpointError:
        return None  # said by parse_endpoint where it is used
    prefix = project.lower() + "."
    if ep.is_ip or not project or not ep.host.lower().startswith(prefix):
        return None
    text = endpoint.strip()
    at = text.lower().find(prefix)  # the host's start: after the scheme, if one is written
    fixed = text[:at] + text[at + len(prefix) :]
    return (
        f"endpoint {text!r} starts with the project name {project!r}: write {fixed!r} "
        "(llmtail puts the project in front itself)"
    )
