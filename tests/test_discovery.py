"""Which paths are tailed: globs, excludes, symlinks, late directories, watchdog wake-ups."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from llmtail.agent.config import InputConfig
from llmtail.agent.reading.discovery import Discovery, Found, Moved
from tests.agentproc import Agent, wait_for


@pytest.fixture
def closing() -> Iterator[list[Discovery]]:
    made: list[Discovery] = []
    yield made
    for d in made:
        d.close()


def discovery(
    closing: list[Discovery], *inputs: InputConfig, interval: float = 10.0, watch: bool = False
) -> Discovery:
    d = Discovery(list(inputs), interval, watch=watch)
    closing.append(d)
    return d


def touch(path: Path, data: bytes = b"x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_double_star_matches_any_depth_and_only_regular_files(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    top = touch(tmp_path / "app.log")
    deep = touch(tmp_path / "a" / "b" / "c" / "svc.log")
    (tmp_path / "dir.log").mkdir()
    touch(tmp_path / "notes.txt")
    d = discovery(closing, InputConfig(paths=[str(tmp_path / "**" / "*.log")]))
    assert [f.path for f in d.scan(0.0)] == sorted([str(top), str(deep)])


def test_excludes_match_the_full_path_and_compressed_files_are_skipped(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    keep = touch(tmp_path / "app.log")
    touch(tmp_path / "archive" / "old.log")
    touch(tmp_path / "debug.log")
    touch(tmp_path / "app.2025-07-09.0.log.gz")
    spec = InputConfig(
        paths=[str(tmp_path / "**" / "*.log*")], exclude=["*/archive/*", "*/debug.log"]
    )
    d = discovery(closing, spec)
    assert [f.path for f in d.scan(0.0)] == [str(keep)]


def test_symlinks_are_followed_and_dangling_ones_ignored(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    target = touch(tmp_path / "real" / "app-1.log")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "current.log").symlink_to(target)
    (logs / "dangling.log").symlink_to(tmp_path / "nowhere.log")
    d = discovery(closing, InputConfig(paths=[str(logs / "*.log")]))
    assert [f.path for f in d.scan(0.0)] == [str(logs / "current.log")]


def test_a_path_matched_by_two_inputs_belongs_to_the_first(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    p = touch(tmp_path / "app.log")
    other = touch(tmp_path / "gbk.log")
    d = discovery(
        closing,
        InputConfig(paths=[str(tmp_path / "app.log")]),
        InputConfig(paths=[str(tmp_path / "*.log")], encoding="gbk"),
    )
    assert d.scan(0.0) == [Found(str(p), 0), Found(str(other), 1)]
    assert d.input_for(str(tmp_path / "gone.log")) == 1


def test_relative_and_home_globs_are_made_absolute(
    tmp_path: Path, closing: list[Discovery], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    rel = touch(tmp_path / "logs" / "a.log")
    home = touch(tmp_path / "home" / "h.log")
    d = discovery(closing, InputConfig(paths=["logs/*.log", "~/*.log"]))
    assert sorted(f.path for f in d.scan(0.0)) == sorted([str(rel), str(home)])


def test_a_rescan_is_due_at_start_and_after_the_interval(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    d = discovery(closing, InputConfig(paths=[str(tmp_path / "*.log")]), interval=10.0)
    assert d.due(0.0)
    d.scan(0.0)
    assert not d.due(9.9)
    assert d.due(10.0)
    d.request_rescan()
    d.scan(10.0)
    assert not d.due(10.0)


def test_a_directory_that_does_not_exist_yet_is_logged_once_and_found_later(
    tmp_path: Path, closing: list[Discovery], caplog: pytest.LogCaptureFixture
) -> None:
    later = tmp_path / "later"
    d = discovery(closing, InputConfig(paths=[str(later / "*.log")]), watch=True)
    with caplog.at_level(logging.INFO, logger="llmtail.agent.reading.discovery"):
        assert d.scan(0.0) == []
        assert d.scan(20.0) == []
    assert len([m for m in caplog.messages if "does not exist yet" in m]) == 1
    p = touch(later / "app.log")
    assert [f.path for f in d.scan(40.0)] == [str(p)]


def wait_due(d: Discovery, now: float, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if d.due(now):
            return True
        time.sleep(0.01)  # watchdog's latency is the thing tested
    return False


def test_watchdog_makes_a_rescan_due_when_a_file_appears(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    d = discovery(
        closing, InputConfig(paths=[str(tmp_path / "*.log")]), interval=3600.0, watch=True
    )
    d.scan(0.0)
    assert not d.due(1.0)
    touch(tmp_path / "new.log")
    assert wait_due(d, 1.0)


def test_writes_to_known_files_do_not_wake_discovery(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    p = touch(tmp_path / "app.log")
    d = discovery(
        closing, InputConfig(paths=[str(tmp_path / "*.log")]), interval=3600.0, watch=True
    )
    d.scan(0.0)
    # A created file proves events are flowing before the writes are made.
    touch(tmp_path / "marker.txt")
    assert d.wait_changed(30.0)
    d.scan(1.0)
    before = d.events_received
    with p.open("ab") as f:
        for _ in range(50):
            f.write(b"line\n")
            f.flush()
    # inotify delivers a directory's events in order: once the second marker's creation has
    # arrived, any event the writes caused would have arrived before it.
    touch(tmp_path / "marker2.txt")
    assert d.wait_changed(30.0)
    while d.events_received == before:  # the flag is set just after the count moves
        d.wait_changed(0.01)
    assert d.events_received == before + 1


def test_relative_excludes_are_resolved_like_relative_paths(
    tmp_path: Path, closing: list[Discovery], monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.example.yaml's `exclude: ["./samples/*-gbk.log"]` as users write it."""
    monkeypatch.chdir(tmp_path)
    utf8 = touch(tmp_path / "samples" / "app.log")
    gbk = touch(tmp_path / "samples" / "app-gbk.log")
    d = discovery(
        closing,
        InputConfig(paths=["./samples/*.log"], exclude=["./samples/*-gbk.log"]),
        InputConfig(paths=["./samples/*-gbk.log"], encoding="gbk"),
    )
    assert d.scan(0.0) == [Found(str(gbk), 1), Found(str(utf8), 0)]
    d2 = discovery(closing, InputConfig(paths=["samples/*.log"], exclude=["samples/app-*"]))
    assert d2.scan(0.0) == [Found(str(utf8), 0)]


def test_the_input_of_a_vanished_path_respects_excludes(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    d = discovery(
        closing,
        InputConfig(paths=[str(tmp_path / "*.log")], exclude=["*-gbk.log"]),
        InputConfig(paths=[str(tmp_path / "*-gbk.log")], encoding="gbk"),
    )
    assert d.input_for(str(tmp_path / "gone-gbk.log")) == 1
    assert d.input_for(str(tmp_path / "gone.log")) == 0


def test_a_file_matched_by_two_inputs_is_logged_once_naming_the_winner(
    tmp_path: Path, closing: list[Discovery], caplog: pytest.LogCaptureFixture
) -> None:
    p = touch(tmp_path / "app-gbk.log")
    d = discovery(
        closing,
        InputConfig(paths=[str(tmp_path / "*.log")]),
        InputConfig(paths=[str(tmp_path / "*-gbk.log")], encoding="gbk"),
    )
    with caplog.at_level(logging.WARNING, logger="llmtail.agent.reading.discovery"):
        assert d.scan(0.0) == [Found(str(p), 0)]
        assert d.scan(20.0) == [Found(str(p), 0)]
    (line,) = [m for m in caplog.messages if "matches inputs" in m]
    assert f"{p} matches inputs 1" in line and "read by input 1 only" in line
    assert "exclude" in line


def test_a_rename_out_of_the_globs_is_reported_with_both_names(
    tmp_path: Path, closing: list[Discovery]
) -> None:
    d = discovery(
        closing, InputConfig(paths=[str(tmp_path / "*.log")]), interval=3600.0, watch=True
    )
    d.scan(0.0)
    touch(tmp_path / "app.log")
    os.rename(tmp_path / "app.log", tmp_path / "app.log.1")  # out of the globs
    touch(tmp_path / "b.log")
    os.rename(tmp_path / "b.log", tmp_path / "c.log")  # still inside: the scan finds it
    touch(tmp_path / "d.log")
    os.rename(tmp_path / "d.log", tmp_path / "d.log.gz")  # compressed: never tailed
    touch(tmp_path / "done.txt")
    moves: list[Moved] = []
    while d.events_received < 7:  # four creations and three renames, in order
        assert d.wait_changed(30.0)
        d.scan(1.0)
        moves += d.moves()
    moves += d.moves()
    assert moves == [Moved(str(tmp_path / "app.log"), str(tmp_path / "app.log.1"), 0)]


def test_a_recreated_directory_is_watched_again(tmp_path: Path, closing: list[Discovery]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    d = discovery(closing, InputConfig(paths=[str(logs / "*.log")]), interval=3600.0, watch=True)
    d.scan(0.0)
    os.rename(logs, tmp_path / "logs.old")
    logs.mkdir()
    d.scan(1.0)  # sees the new directory and watches it
    touch(logs / "app.log")
    assert wait_due(d, 2.0)
    assert [f.path for f in d.scan(2.0)] == [str(logs / "app.log")]


def test_close_stops_the_observer_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    d = Discovery([InputConfig(paths=[str(tmp_path / "*.log")])], 10.0, watch=True)
    d.scan(0.0)
    assert threading.active_count() > before
    d.close()
    assert threading.active_count() == before


def test_the_shipped_example_reads_the_gbk_sample_as_gbk(tmp_path: Path) -> None:
    """`llmtail run -c config.example.yaml` from a copy of the project, as the README says:
    the GBK sample goes to the gbk input (its exclude from the first input works)."""
    root = Path(__file__).resolve().parent.parent
    shutil.copytree(root / "samples", tmp_path / "samples")
    config = yaml.safe_load((root / "config.example.yaml").read_text())
    config["metrics"] = {"listen": None}
    with Agent(tmp_path, config) as agent:
        agent.start()
        out = tmp_path / "out" / "records.ndjson"
        wait_for(lambda: out.exists() and "发票" in out.read_text(errors="replace"), 60, "gbk")
        assert agent.stop() == 0
        log = agent.logs()
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    gbk = [r for r in records if r["__tag__:__path__"].endswith("app-gbk.log")]
    assert gbk and not any("parse_error" in r for r in gbk)
    assert any("客户申请重开发票" in r.get("message", "") for r in gbk)
    assert "matches inputs" not in log
