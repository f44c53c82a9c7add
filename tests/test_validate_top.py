"""`validate`'s top models, workspaces, apps, status and error codes are the llm_call records'
own label values, counted over every batch of every file, on both engines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from bench.gen_logs import main as gen_logs
from llmtail.agent.config import BatchConfig, Config
from llmtail.agent.engine.llm_aggregate import label_key
from llmtail.agent.engine.stream import SealedBatch
from llmtail.agent.modes.pipeline import build_engine
from llmtail.agent.modes.report import LlmReport
from llmtail.agent.modes.validate import NONE, TOP, validate_files
from tests.agentproc import record_line

ROOT = Path(__file__).resolve().parent.parent


def expected_top(lines: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    keys = [label_key(r) for r in lines if r.get("event") == "llm_call"]
    by: dict[str, Counter[str]] = {n: Counter() for n in ("models", "workspaces", "apps")}
    by |= {"status_codes": Counter(), "error_codes": Counter()}
    for app, _module, model, workspace, status, error in keys:
        by["models"][model or NONE] += 1
        by["workspaces"][workspace or NONE] += 1
        by["apps"][app or NONE] += 1
        by["status_codes"][status or NONE] += 1
        if error:
            by["error_codes"][error] += 1
    return {name: dict(c.most_common(TOP)) for name, c in by.items()}


@pytest.mark.parametrize("engine", ["core", "python"])
def test_top_labels_are_the_records_own_counted_across_batches(tmp_path: Path, engine: str) -> None:
    generated = tmp_path / "gen.log"
    assert gen_logs([str(generated), "--size", "200K", "--multiline", "0.1"]) == 0
    files = [str(ROOT / "samples" / "app.log"), str(generated)]
    # Small batches: a label set recurs in many of them and its calls must add up.
    config = Config(batch=BatchConfig(max_records=7))
    lines: list[dict[str, object]] = []

    def keep(batch: SealedBatch) -> None:
        lines.extend(orjson.loads(line) for line in batch.data.splitlines())

    built = build_engine(config, wire="ndjson", engine="core" if engine == "core" else "python")
    report = validate_files(files, built, on_batch=keep)
    assert report.records == len(lines) > 1000
    top = report.to_dict()["top"]
    assert top == expected_top(lines)
    assert top["models"] and top["status_codes"]


@pytest.mark.parametrize("engine", ["core", "python"])
def test_label_sets_past_the_cap_are_counted_as_other_and_said(tmp_path: Path, engine: str) -> None:
    """A file of endless distinct labels costs bounded memory: past the cap, calls still count
    (under "other") and the report says how many."""
    apps, cap = 30, 10
    log = tmp_path / "app.log"
    log.write_bytes(
        b"".join(record_line(i).replace(b"chatbot,", f"app-{i},".encode()) for i in range(apps))
    )
    config = Config(batch=BatchConfig(max_records=4))  # sets spread over many batches
    kind = "core" if engine == "core" else "python"
    built = build_engine(config, wire="count", max_label_sets=cap, engine=kind)
    report = validate_files([str(log)], built, max_label_sets=cap)
    assert sum(report.label_calls.values()) == apps  # every call counted, none lost
    assert len(report.label_calls) <= cap
    kept = apps - report.over_limit_calls
    assert report.apps["other"] == report.over_limit_calls == apps - (cap - 1)
    assert sum(n for app, n in report.apps.items() if app != "other") == kept
    assert report.to_dict()["label_sets_over_limit_calls"] == apps - (cap - 1)
    said = f"label sets over {cap:,}: {apps - (cap - 1)} calls counted as 'other'"
    assert said in report.render(1.0)
    # `report` over the same file, under the same cap: the same count, said the same way.
    llm = LlmReport(max_label_sets=cap)
    llm.read([str(log)], built, lambda _path: 0)
    figures = llm.to_dict()
    assert figures["calls"] == apps
    assert figures["label_sets_over_limit_calls"] == apps - (cap - 1)
    assert said in llm.render()
