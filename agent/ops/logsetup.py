"""The agent's own logs: one line per event, with a level, and never a credential.

Under journald (stderr is the stream named by $JOURNAL_STREAM) lines carry a `<N>` syslog
priority prefix instead of a timestamp: journald stamps entries itself and turns the prefix into
the entry's priority, so `journalctl -p warning -u llmtail` works. Anywhere else (a terminal, a
file, a container) lines start with an ISO 8601 timestamp.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}

# Python level -> syslog priority (sd-daemon(3)): debug 7, info 6, warning 4, error 3, crit 2.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

_REDACTED = "***"

# A value following a credential-like key: `secret=...`, `'access_key_secret': '...'`,
# `x-acs-security-token: ...`. The key names are the SDK's, the config's and the env vars'.
_KEYED_SECRET = re.compile(
    r"""(?ix)
    (?P<key>(?:access[_-]?key[_-]?secret|accesskeysecret|secret[_-]?access[_-]?key
        |security[_-]?token|sts[_-]?token|secret|password|passwd)
        ["']?\s*[:=]\s*["']?)
    (?P<value>[^\s"',;}&]+)
    """
)
# STS security tokens are long base64 text that starts with "CAIS".
_STS_TOKEN = re.compile(r"CAIS[A-Za-z0-9+/=_-]{16,}")
# AccessKey secrets are 30 letters and digits; mixed case or digits tell them from words.
_AK_SECRET = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9]{30}(?![A-Za-z0-9+/])")


class JournalFormatter(logging.Formatter):
    """`<6>llmtail.agent.reading.tailer: message`: journald adds the time; the prefix, priority."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_priority(record.levelno)}>{record.name}: {_one_line(super().format(record))}"


class PlainFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678+08:00 INFO llmtail.agent.reading.tailer: message`, host's zone."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's API)
        stamp = datetime.fromtimestamp(record.created).astimezone()
        return stamp.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        return _one_line(super().format(record))


class RedactSecrets(logging.Filter):
    """Defence in depth: masks AccessKey secrets and STS tokens however they got into a record.

    Code should never log credentials; this catches the day it does (an SDK exception that
    echoes a header, a config repr in a debug line). Installed on the handler, so it sees the
    records of every logger, and it rewrites the traceback text too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact(text: str) -> str:
    """`text` with anything that looks like an AccessKey secret or an STS token masked."""
    text = _KEYED_SECRET.sub(lambda m: m["key"] + _REDACTED, text)
    text = _STS_TOKEN.sub(_REDACTED, text)
    return _AK_SECRET.sub(_mask_if_secret_like, text)


def setup_logging(
    level: str,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send every logger's records to stderr (or `stream`), formatted for where it goes.

    Safe to call again (a SIGHUP reload may change the level): it replaces its own handler.
    """
    try:
        threshold = _LEVELS[level.lower()]
    except KeyError:
        known = ", ".join(_LEVELS)
        raise ValueError(f"unknown log level {level!r} (expected one of: {known})") from None
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    handler = logging.StreamHandler(out)
    handler.set_name("llmtail")
    handler.setFormatter(JournalFormatter() if under_journald(out, env) else PlainFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "llmtail"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(threshold)
    logging.captureWarnings(True)


def under_journald(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when `stream` is the journal stream systemd connected ($JOURNAL_STREAM=dev:ino).

    Comparing the device and inode (systemd.exec(5)) avoids a false positive when stderr was
    redirected elsewhere by a child shell that inherited the variable.
    """
    expected = environ.get("JOURNAL_STREAM", "")
    dev, _, ino = expected.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        # No descriptor (a StringIO), a closed stream, or a malformed variable: not the journal.
        return False


def _priority(levelno: int) -> int:
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7


def _one_line(text: str) -> str:
    # A traceback or a hostile file name must not forge extra log lines: escape line breaks.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _mask_if_secret_like(match: re.Match[str]) -> str:
    token = match[0]
    if token.isdigit() or token.islower() or token.isupper():
        return token  # plain numbers and words are not AccessKey secrets
    return _REDACTED
