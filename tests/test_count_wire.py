"""`validate` and `report` without `--records` seal batches without encoding them (wire
`count`): their reports are the ones the encoded batches give, on both engines, although the
batches themselves are cut differently (by `max_records` alone: no bytes reach `max_bytes`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gen_logs import main as gen_logs
from llmtail.agent.config import BatchConfig, Config
from llmtail.agent.engine.llm_aggregate import LOCAL_LABEL_SETS
from llmtail.agent.engine.stream import SealedBatch
from llmtail.agent.modes.pipeline import build_engine
from llmtail.agent.modes.report import LlmReport
from llmtail.agent.modes.validate import validate_files

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("count")
    generated = folder / "gen.log"
    assert gen_logs([str(generated), "--size", "300K", "--multiline", "0.1"]) == 0
    secrets = folder / "secrets.log"  # lines that do not parse, with values to mask
    secrets.write_text("".join(f"password={n}x mail bob{n}@example.com\n" for n in range(60)))
    return [str(ROOT / "samples" / "app.log"), str(generated), str(secrets)]


# Small batches, sealed by bytes when encoded: the count wire's batches are cut elsewhere.
CONFIG = Config(batch=BatchConfig(max_records=50, max_bytes=4096))


@pytest.mark.parametrize("engine", ["core", "python"])
def test_validate_reports_the_same_without_encoding(files: list[str], engine: str) -> None:
    seen: dict[str, list[SealedBatch]] = {"ndjson": [], "count": []}
    reports = {}
    for wire in ("ndjson", "count"):
        built = build_engine(CONFIG, wire=wire, engine=engine)  # type: ignore[arg-type]
        reports[wire] = validate_files(files, built, on_batch=seen[wire].append).to_dict()
    assert reports["count"] == reports["ndjson"]
    assert reports["count"]["records"] > 1000
    assert reports["count"]["error_examples"] and reports["count"]["top"]["models"]
    # Nothing was encoded, and the batches were cut by count alone.
    assert all(b.data == b"" and b.trailer == b"" for b in seen["count"])
    assert len(seen["count"]) < len(seen["ndjson"])
    masked = [sum(b.masked.values()) for b in seen["ndjson"]]
    assert sum(masked) == sum(sum(b.masked.values()) for b in seen["count"]) > 0


@pytest.mark.parametrize("engine", ["core", "python"])
@pytest.mark.parametrize("since", [None, 1.0])
def test_report_is_the_same_without_encoding(
    files: list[str], engine: str, since: float | None
) -> None:
    out = []
    for wire in ("ndjson", "count"):
        built = build_engine(
            CONFIG,
            wire=wire,  # type: ignore[arg-type]
            max_label_sets=LOCAL_LABEL_SETS,
            engine=engine,  # type: ignore[arg-type]
        )
        report = LlmReport(by=("model", "workspace"), since=since)
        report.read(files, built, lambda _path: 0)
        out.append((report.to_dict(), report.render(), report.records, report.skipped))
    assert out[0] == out[1]
    assert out[1][0]["calls"] > 100
