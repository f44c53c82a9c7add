"""The command line as a user meets it: exit codes, one-line errors, the validate report."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from llmtail.agent import __version__

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "app.log"


def llmtail(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmtail", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def test_version_and_help() -> None:
    assert llmtail("--version").stdout.strip() == f"llmtail {__version__}"
    helped = llmtail("--help")
    assert helped.returncode == 0
    for command in ("run", "validate", "check-output", "status"):
        assert command in helped.stdout


def test_validate_json_counts_every_record_of_plain_and_gzip_files(tmp_path: Path) -> None:
    plain = tmp_path / "app.log"
    shutil.copy(SAMPLE, plain)
    with open(SAMPLE, "rb") as src, gzip.open(tmp_path / "app.1.log.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    one = orjson.loads(llmtail("validate", "--json", "--max-error-rate", "1", str(plain)).stdout)
    both = llmtail("validate", "--json", "--max-error-rate", "1", str(tmp_path / "app*"))
    assert both.returncode == 0
    report = orjson.loads(both.stdout)
    assert report["files"] == 2
    assert report["records"] == 2 * one["records"] > 0
    assert report["lines"] == 2 * SAMPLE.read_bytes().count(b"\n")
    assert report["events"]["llm_call"] == 2 * one["events"]["llm_call"]


def test_validate_records_prints_what_an_output_would_receive() -> None:
    result = llmtail("validate", "--records", "--max-error-rate", "1", str(SAMPLE))
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    summary = result.stderr
    assert f"records: {len(lines)}" in summary
    calls = [r for r in lines if r.get("event") == "llm_call"]
    # Typed as in SLS's index: ints, or null where the payload left the field empty.
    assert calls and all(isinstance(r["status_code"], int | None) for r in calls)
    assert sum(isinstance(r["status_code"], int) for r in calls) > len(calls) // 2
    assert all("__time__" in r and "__tag__:__path__" in r for r in lines)


def test_the_exit_status_follows_the_parse_error_rate(tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    log.write_bytes(b"not a logback line\n" + SAMPLE.read_bytes().split(b"\n", 1)[1])
    strict = llmtail("validate", str(log))
    assert strict.returncode == 1
    assert "FAIL" in strict.stdout and "mixed.log:1" in strict.stdout
    assert llmtail("validate", "--max-error-rate", "0.5", str(log)).returncode == 0


def test_user_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad_pattern = tmp_path / "bad.yaml"
    bad_pattern.write_text("parser:\n  pattern: '%d %-5p %nosuchword %m%n'\n")
    cases = [
        llmtail("validate", str(tmp_path / "missing.log")),
        llmtail("validate", str(tmp_path / "*.nothing")),
        llmtail("validate", "-c", str(bad_pattern), str(SAMPLE)),
        llmtail("validate", "-c", str(tmp_path / "no-config.yaml"), str(SAMPLE)),
        llmtail("run", "-c", str(tmp_path / "no-config.yaml")),
        llmtail("validate", "--encoding", "utf-16", str(SAMPLE)),  # the config refuses it too
        llmtail("report", "--encoding", "no-such-codec", str(SAMPLE)),
    ]
    for result in cases:
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("llmtail: ")
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert "nosuchword" in cases[2].stderr
    assert "--encoding: encoding 'utf-16' cannot be read" in cases[5].stderr
    assert "--encoding: unknown encoding 'no-such-codec'" in cases[6].stderr


def test_validate_never_crashes_on_binary_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "core.log"
    garbage.write_bytes(bytes(range(256)) * 400 + b"\x00" * 5000 + b"\xff\xfe" * 3000)
    result = llmtail("validate", "--json", "--max-error-rate", "1", str(garbage))
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["records"] >= 1 and report["parse_errors"] == report["records"]
