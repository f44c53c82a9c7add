"""`engine: core` wires the compiled core into the agent: same answers as `engine: python`.

The commands run as real processes over the repository's sample logs (UTF-8 and GBK).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize("sample", ["app.log", "app-gbk.log"])
@pytest.mark.parametrize("command", ["report", "validate"])
def test_the_core_answers_as_the_python_engine(tmp_path: Path, sample: str, command: str) -> None:
    config = tmp_path / "c.yaml"
    encoding = "gbk" if "gbk" in sample else "utf-8"
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


def test_engine_core_with_masking_on_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("engine: core\n")
    done = _agent("validate", "-c", str(config), str(ROOT / "samples" / "app.log"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "llmtail: engine: core does not mask yet; set engine: python (or mask.enabled: false)"
    )


def test_an_unknown_engine_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("engine: rust\n")
    done = _agent("validate", "-c", str(config), str(ROOT / "samples" / "app.log"), cwd=tmp_path)
    assert done.returncode != 0
    assert "engine" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
