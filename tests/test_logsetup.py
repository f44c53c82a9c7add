"""The agent's log lines: journald form, plain form, one line per event, no credentials."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from llmtail.agent.ops.logsetup import redact, setup_logging, under_journald

# Shaped like real credentials, made up for the tests.
AK_SECRET = "Xk8mQ2vR9tLp4sWn7bYc3dFh6jGz1a"
STS_TOKEN = "CAIS" + "q7W2x9Zk3M8vB1nT5yR0uE4iO6pA/sD+fG3hJ8kL2zX1cV7bN9m=" * 4


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _log_to_file(path: Path, environ: dict[str, str], level: str = "debug") -> TextIO:
    stream = path.open("w+", encoding="utf-8")
    setup_logging(level, stream=stream, environ=environ)
    return stream


def _journal_env(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def _lines(stream: TextIO) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def test_under_journald_lines_carry_a_priority_and_no_timestamp(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+", encoding="utf-8") as stream:
        setup_logging("debug", stream=stream, environ=_journal_env(stream))
        log = logging.getLogger("llmtail.agent.reading.tailer")
        log.debug("d")
        log.info("watching %d files", 3)
        log.warning("w")
        log.error("e")
        log.critical("c")

        assert _lines(stream) == [
            "<7>llmtail.agent.reading.tailer: d",
            "<6>llmtail.agent.reading.tailer: watching 3 files",
            "<4>llmtail.agent.reading.tailer: w",
            "<3>llmtail.agent.reading.tailer: e",
            "<2>llmtail.agent.reading.tailer: c",
        ]


def test_outside_journald_lines_start_with_a_zoned_timestamp_and_level(tmp_path: Path) -> None:
    with (tmp_path / "plain").open("w+", encoding="utf-8") as stream:
        setup_logging("info", stream=stream, environ={})
        logging.getLogger("llmtail.agent.delivery.sls").warning(
            "quota exceeded, backing off %ss", 2
        )
        logging.getLogger("llmtail.agent.delivery.sls").debug("below the level")

        [line] = _lines(stream)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
    assert re.fullmatch(
        stamp + r" WARNING llmtail.agent.delivery.sls: quota exceeded, backing off 2s", line
    )


def test_a_journal_stream_variable_for_another_file_is_not_journald(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("")
    st = other.stat()
    with (tmp_path / "stderr").open("w", encoding="utf-8") as stream:
        assert not under_journald(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not under_journald(stream, {"JOURNAL_STREAM": "garbage"})
        assert under_journald(stream, _journal_env(stream))


def test_a_traceback_stays_on_the_line_of_its_event(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+", encoding="utf-8") as stream:
        setup_logging("info", stream=stream, environ=_journal_env(stream))
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("llmtail.agent.modes.pipeline").exception("sender crashed")
        logging.getLogger("llmtail.agent.reading.discovery").info(
            "new file /var/log/x\n<3>forged: line"
        )

        lines = _lines(stream)
    assert len(lines) == 2
    assert lines[0].startswith("<3>llmtail.agent.modes.pipeline: sender crashed\\nTraceback")
    assert "RuntimeError: boom" in lines[0]
    assert lines[1] == "<6>llmtail.agent.reading.discovery: new file /var/log/x\\n<3>forged: line"


def test_secrets_are_redacted_in_messages_arguments_and_tracebacks(tmp_path: Path) -> None:
    with (tmp_path / "plain").open("w+", encoding="utf-8") as stream:
        setup_logging("debug", stream=stream, environ={})
        log = logging.getLogger("llmtail.agent.delivery.sls")
        log.info(
            "credentials loaded: %s",
            {"access_key_id": "LTAI5tExample", "access_key_secret": "s3cr3t"},
        )
        log.warning("401 with token %s", STS_TOKEN)
        log.debug("signing with %s", AK_SECRET)
        try:
            raise ValueError(f"bad header x-acs-security-token: {STS_TOKEN}")
        except ValueError:
            log.exception("request failed")

        text = "\n".join(_lines(stream))
    for secret in ("s3cr3t", AK_SECRET, STS_TOKEN, STS_TOKEN[:40]):
        assert secret not in text
    assert "LTAI5tExample" in text  # the AccessKey id is not a secret, and helps debugging
    assert text.count("***") >= 4


@pytest.mark.parametrize(
    "text",
    [
        "request_id=0c1f2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b took 120 ms",
        "md5 5D41402ABC4B2A76B9719D911017C592 of the body",
        "offset 123456789012345678901234567890 of file",
        "logger c.a.c.s.i.ChatServiceImpl#chat():42 and supercalifragilisticexpialidocious",
    ],
)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={AK_SECRET}",
        "AccessKeySecret: 'short-but-named'",
        '{"SecurityToken": "abc"}',
        f"token {STS_TOKEN} expired",
        f"secret is {AK_SECRET}.",
    ],
)
def test_credential_shapes_are_masked(text: str) -> None:
    masked = redact(text)
    assert "***" in masked
    assert not {"short-but-named", "abc", AK_SECRET, STS_TOKEN} & set(
        re.split(r"[\s'\":=.]", masked)
    )


def test_reconfiguring_replaces_the_handler_instead_of_doubling_lines(tmp_path: Path) -> None:
    with (tmp_path / "plain").open("w+", encoding="utf-8") as stream:
        setup_logging("info", stream=stream, environ={})
        setup_logging("debug", stream=stream, environ={})
        logging.getLogger("llmtail.agent").debug("once")

        assert len(_lines(stream)) == 1


def test_an_unknown_level_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        setup_logging("verbose")


def test_a_process_started_with_journal_stream_on_stderr_logs_for_journald(tmp_path: Path) -> None:
    """The real detection: systemd hands the child a stderr whose dev:ino is JOURNAL_STREAM."""
    script = (
        "import logging\n"
        "from llmtail.agent.ops.logsetup import setup_logging\n"
        "setup_logging('info')\n"
        "logging.getLogger('llmtail.agent.cli').warning('started')\n"
    )
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stderr:
        env = {**os.environ, **_journal_env(stderr)}
        subprocess.run([sys.executable, "-c", script], stderr=stderr, env=env, check=True)
        assert _lines(stderr) == ["<4>llmtail.agent.cli: started"]
