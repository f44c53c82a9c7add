"""SLS request signature v1 (`Authorization: LOG {AccessKeyId}:{signature}`).

One implementation serves both sides: the server verifies with it and tests sign raw requests
with it, so a request the SDK signs and one a test signs are checked the same way.

    string_to_sign = VERB \\n CONTENT-MD5 \\n CONTENT-TYPE \\n DATE \\n
                     sorted "name:value\\n" for x-log-* and x-acs-* headers
                     + resource[?sorted k=v&...]

`x-log-date` is left out (the SDK adds it after signing) and so are `x-log-meta-*` headers,
which the SDK also leaves out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from email.utils import formatdate

_UNSIGNED = "x-log-date"
_UNSIGNED_PREFIX = "x-log-meta-"


def _is_signed_header(lower_name: str) -> bool:
    if lower_name == _UNSIGNED or lower_name.startswith(_UNSIGNED_PREFIX):
        return False
    return lower_name.startswith(("x-log-", "x-acs-"))


def canonical_headers(headers: Mapping[str, str]) -> str:
    """The sorted `name:value\\n` lines of the headers that take part in the signature."""
    signed = sorted(
        (name.lower(), value) for name, value in headers.items() if _is_signed_header(name.lower())
    )
    return "".join(f"{name}:{value}\n" for name, value in signed)


def canonical_resource(path: str, params: Mapping[str, str]) -> str:
    """The path, plus `?k=v&...` sorted by key when the request has query parameters."""
    if not params:
        return path
    return path + "?" + "&".join(f"{key}={params[key]}" for key in sorted(params))


def string_to_sign(
    method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """What SLS signs; `headers` is looked up case-insensitively for the standard ones."""
    lower = {name.lower(): value for name, value in headers.items()}
    return (
        f"{method}\n{lower.get('content-md5', '')}\n{lower.get('content-type', '')}\n"
        f"{lower.get('date', '')}\n{canonical_headers(headers)}{canonical_resource(path, params)}"
    )


def signature(secret: str, text: str) -> str:
    """base64(HMAC-SHA1(secret, text))."""
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def content_md5(body: bytes) -> str:
    """Upper-case hex MD5 of the body as sent, the form SLS expects in `Content-MD5`."""
    return hashlib.md5(body).hexdigest().upper()


def http_date(epoch: float | None = None) -> str:
    """An RFC 822 date in GMT, as the `Date` header carries it."""
    return formatdate(epoch, usegmt=True)


def sign_headers(
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: dict[str, str],
    body: bytes,
    *,
    access_key_id: str,
    access_key_secret: str,
    security_token: str | None = None,
    date: str | None = None,
) -> dict[str, str]:
    """Complete `headers` in place the way the SDK does (MD5, Date, token, Authorization)."""
    headers.setdefault("x-log-apiversion", "0.6.0")
    headers["x-log-signaturemethod"] = "hmac-sha1"
    headers["Date"] = date or http_date()
    if body:
        headers["Content-MD5"] = content_md5(body)
    if security_token:
        headers["x-acs-security-token"] = security_token
    text = string_to_sign(method, path, params, headers)
    headers["Authorization"] = f"LOG {access_key_id}:{signature(access_key_secret, text)}"
    headers["x-log-date"] = headers["Date"]
    return headers
