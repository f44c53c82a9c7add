"""`engine: core` wires the compiled core into the agent: same answers as `engine: python`.

The commands run as real processes over the repository's sample logs (UTF-8 and GBK), read in
their own encodings and in others the core decodes through CPython's codec (the UTF-8 sample as
cp1252 is mojibake with undefined bytes: the same text and `\\xNN` escapes in both engines).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "llmtail", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("sample", "encoding"),
    [
        ("app.log", "utf-8"),
        ("app-gbk.log", "gbk"),
        ("app-gbk.log", "gb18030"),
        ("app-gbk.log", "big5"),
        ("app.log", "cp1252"),
    ],
)
@pytest.mark.parametrize("command", ["report", "validate"])
def test_the_core_answers_as_the_python_engine(
    tmp_path: Path, sample: str, encoding: str, command: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"mask:\n  enabled: false\ninputs:\n  - paths: ['*']\n    encoding: {encoding}\n"
    )
    path = str(ROOT / "samples" / sample)
    got = {
        e: _agent(command, "-c", str(config), "--engine", e, "--json", path, cwd=tmp_path)
        for e in ("core", "python")
    }
    assert got["core"].stdout == got["python"].stdout
    assert got["core"].returncode == got["python"].returncode
    assert '"calls"' in got["core"].stdout or '"records"' in got["core"].stdout


def test_a_user_mask_rule_the_core_cannot_run_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "engine: core\nmask:\n  custom:\n    - name: order\n      regex: 'ORD[0-9]+$'\n"
    )
    done = _agent("validate", "-c", str(config), str(ROOT / "samples" / "app.log"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "llmtail: engine: core cannot run mask rule 'order': its regex uses $ "
        "(write \\Z for the end of the text); set engine: python"
    )


def test_masked_reports_are_the_same_from_both_engines(tmp_path: Path) -> None:
    """Default masking on: what validate --records prints is masked identically."""
    log = tmp_path / "app.log"
    head = "2026-11-26 10:02:11.305 INFO  [traceId:t] [a.B#f():1] [main] - "
    log.write_text(
        f"{head}prompt: 我的手机号码13812345678\uff0cpassword=hunter2"
        " key sk-3f9a0c2b7d1e4f6a8b9c0d1e\n"
        f"{head}a,m,q,w,r,500,1,2,3,4,E,mail bob@corp.io card 4111111111111111\n"
        "garbage LTAI5tQ8mZ3xYk9Wv2Rb7Nc1 before any header, ORD123456\n",
        encoding="utf-8",
    )
    config = tmp_path / "c.yaml"
    config.write_text("mask:\n  custom:\n    - name: order\n      regex: 'ORD[0-9]{6}'\n")
    got = {
        e: _agent("validate", "-c", str(config), "--engine", e, "--records", str(log), cwd=tmp_path)
        for e in ("core", "python")
    }
    # Pack ids are random per process: compared without them.
    same = [re.sub(r'"__tag__:__pack_id__":"[^"]*"', "", got[e].stdout) for e in got]
    assert same[0] == same[1]
    assert "13812345678" not in got["core"].stdout and "hunter2" not in got["core"].stdout
    assert "***" in got["core"].stdout and "ORD123456" not in got["core"].stdout


def test_an_unknown_engine_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("engine: rust\n")
    done = _agent("validate", "-c", str(config), str(ROOT / "samples" / "app.log"), cwd=tmp_path)
    assert done.returncode != 0
    assert "engine" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
