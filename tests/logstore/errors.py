"""SLS error answers: the HTTP status and `errorCode` pairs the real service uses.

Codes and messages follow the SLS API error centre and the PutLogs reference; where the public
record is silent (Content-MD5 mismatch, value size) the choice is noted next to the constant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SlsError(Exception):
    """A rejection the server answers with `{"errorCode", "errorMessage"}` and `status`."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


# Statuses of the codes a test may inject by name; anything else needs an explicit status.
STATUS_OF_CODE: dict[str, int] = {
    "InternalServerError": 500,
    "RequestTimeout": 500,
    "ServerBusy": 503,
    "WriteQuotaExceed": 403,
    "ShardWriteQuotaExceed": 403,
    "Unauthorized": 401,
    "SignatureNotMatch": 401,
    "InvalidAccessKeyId": 401,
    "ProjectNotExist": 404,
    "LogStoreNotExist": 404,
    "PostBodyTooLarge": 413,
    "PostBodyInvalid": 400,
    "RequestTimeExpired": 400,
}

DEFAULT_MESSAGES: dict[str, str] = {
    "InternalServerError": "internal server error",
    "RequestTimeout": "request timeout",
    "ServerBusy": "The server is busy, please try again later.",
    "WriteQuotaExceed": "Project write quota exceed: inflow: 100GB/min",
    "ShardWriteQuotaExceed": "shard write quota exceed",
    "Unauthorized": "The AccessKeyId is unauthorized.",
}

TOKEN_EXPIRED_MESSAGE = "The security token you provided has expired."
TOKEN_INVALID_MESSAGE = "The security token you provided is invalid."


def injected(code: str, status: int | None = None, message: str | None = None) -> SlsError:
    """The error a fault rule answers with; `code="TokenExpired"` mimics an expired STS token."""
    if code == "TokenExpired":
        return SlsError(401, "Unauthorized", TOKEN_EXPIRED_MESSAGE)
    if status is None:
        if code not in STATUS_OF_CODE:
            raise ValueError(f"no known status for error code {code!r}: pass status=")
        status = STATUS_OF_CODE[code]
    return SlsError(status, code, message or DEFAULT_MESSAGES.get(code, code))
