"""SLS request signature v1, for llmtail's own PutLogs client.

    Authorization: LOG {AccessKeyId}:base64(HMAC-SHA1(secret, string_to_sign))
    string_to_sign = VERB \\n CONTENT-MD5 \\n CONTENT-TYPE \\n DATE \\n
                     sorted "name:value\\n" of the x-log-* and x-acs-* headers
                     + path[?sorted k=v&...]

The SDK leaves `x-log-date` (added after signing) and `x-log-meta-*` out of the signed headers;
so does this module, so that both sign the same request to the same value (a test checks it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from email.utils import formatdate


def _signed(lower_name: str) -> bool:
    if lower_name == "x-log-date" or lower_name.startswith("x-log-meta-"):
        return False
    return lower_name.startswith(("x-log-", "x-acs-"))


def string_to_sign(
    method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """What SLS signs; the standard headers are looked up case-insensitively."""
    lower = {name.lower(): value for name, value in headers.items()}
    signed = "".join(f"{name}:{lower[name]}\n" for name in sorted(n for n in lower if _signed(n)))
    resource = path
    if params:
        resource += "?" + "&".join(f"{key}={params[key]}" for key in sorted(params))
    return (
        f"{method}\n{lower.get('content-md5', '')}\n{lower.get('content-type', '')}\n"
        f"{lower.get('date', '')}\n{signed}{resource}"
    )


def signature(secret: str, text: str) -> str:
    """base64(HMAC-SHA1(secret, text))."""
    return base64.b64encode(
        hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    ).decode()


def http_date(epoch: float) -> str:
    """RFC 7231 date in GMT, independent of the process locale (the SDK sets LC_TIME for this)."""
    return formatdate(epoch, usegmt=True)
