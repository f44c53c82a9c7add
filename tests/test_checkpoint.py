"""Checkpoints survive crashes at any instant and refuse to guess when they are unreadable."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from llmtail.agent.state.checkpoint import (
    Checkpointer,
    CheckpointError,
    SavedPosition,
    StateDirLock,
)


def pos(key: str, offset: int) -> SavedPosition:
    return SavedPosition(key, f"/var/log/{key}.log", offset, {"dev": 2049, "ino": 7, "fp": "ab12"})


def test_saved_positions_load_back_in_a_new_checkpointer(tmp_path: Path) -> None:
    saved = {"a": pos("a", 10), "b": pos("b", 0)}
    assert Checkpointer(tmp_path / "state").save(saved) is True
    assert Checkpointer(tmp_path / "state").load() == saved


def test_nothing_saved_yet_loads_as_empty(tmp_path: Path) -> None:
    assert Checkpointer(tmp_path).load() == {}


def test_saving_unchanged_positions_does_not_touch_the_disk(tmp_path: Path) -> None:
    cp = Checkpointer(tmp_path)
    positions = {"a": pos("a", 10)}
    cp.save(positions)
    before = os.stat(cp.path).st_mtime_ns, os.stat(cp.path).st_ino
    assert cp.save({"a": pos("a", 10)}) is False
    assert (os.stat(cp.path).st_mtime_ns, os.stat(cp.path).st_ino) == before
    positions["a"].offset = 11  # the caller's objects are not aliased by the last-saved copy
    assert cp.save(positions) is True
    assert Checkpointer(tmp_path).load()["a"].offset == 11


def test_a_leftover_temp_file_from_a_crash_is_ignored_then_replaced(tmp_path: Path) -> None:
    Checkpointer(tmp_path).save({"a": pos("a", 10)})
    leftover = tmp_path / ".checkpoints.json.tmp"
    leftover.write_bytes(b'{"version": 1, "checkpoi')
    restarted = Checkpointer(tmp_path)
    assert restarted.load() == {"a": pos("a", 10)}
    restarted.save({"a": pos("a", 20)})
    assert not leftover.exists()
    assert Checkpointer(tmp_path).load() == {"a": pos("a", 20)}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"version": 1, "checkpoints": [{"key": "a"', "not JSON"),
        (b"[]", "no format version"),
        (b'{"version": 1, "checkpoints": [{"key": "a", "offset": -1}]}', "entry 0"),
        (b"\x00\x00\x00", "not JSON"),
    ],
)
def test_a_corrupt_file_is_one_clear_error_not_a_fresh_start(
    tmp_path: Path, content: bytes, says: str
) -> None:
    (tmp_path / "checkpoints.json").write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        Checkpointer(tmp_path).load()
    message = str(err.value)
    assert says in message and "corrupt" in message and "\n" not in message


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_bytes(b'{"version": 3, "checkpoints": {}}')
    with pytest.raises(CheckpointError, match="newer llmtail"):
        Checkpointer(tmp_path).load()


def test_the_file_is_versioned_json(tmp_path: Path) -> None:
    cp = Checkpointer(tmp_path)
    cp.save({"a": pos("a", 3)})
    doc = orjson.loads(cp.path.read_bytes())
    assert doc["version"] == 2
    assert doc["checkpoints"][0]["offset"] == 3
    assert "marker" not in doc["checkpoints"][0]  # none known: not written


def test_an_offset_marker_is_saved_and_loaded(tmp_path: Path) -> None:
    saved = {"a": SavedPosition("a", "/var/log/a.log", 9, {"ino": 7}, marker="00ff")}
    Checkpointer(tmp_path).save(saved)
    assert Checkpointer(tmp_path).load() == saved


def test_a_format_1_file_still_loads_without_markers(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_bytes(
        b'{"version": 1, "checkpoints": [{"key": "a", "path": "/l/a.log", "offset": 5, '
        b'"identity": {"ino": 7}}]}'
    )
    assert Checkpointer(tmp_path).load() == {
        "a": SavedPosition("a", "/l/a.log", 5, {"ino": 7}, marker=None)
    }


def test_a_marker_of_the_wrong_type_is_a_malformed_entry(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_bytes(
        b'{"version": 2, "checkpoints": [{"key": "a", "path": "p", "offset": 5, '
        b'"identity": {}, "marker": 12}]}'
    )
    with pytest.raises(CheckpointError, match="entry 0"):
        Checkpointer(tmp_path).load()


def test_a_state_dir_removed_under_a_running_agent_is_made_again(tmp_path: Path) -> None:
    cp = Checkpointer(tmp_path / "state")
    assert cp.save({"a": pos("a", 1)})
    for entry in (tmp_path / "state").iterdir():
        entry.unlink()
    (tmp_path / "state").rmdir()
    assert cp.save({"a": pos("a", 2)})
    assert Checkpointer(tmp_path / "state").load() == {"a": pos("a", 2)}


def test_an_unwritable_state_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(CheckpointError, match="cannot save"):
        Checkpointer(blocker / "state").save({"a": pos("a", 1)})


def test_a_second_agent_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    code = "import sys; from llmtail.agent.state.checkpoint import StateDirLock as L\n"
    code += "L(sys.argv[1]).acquire(); print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(
            CheckpointError, match=f"in use by another llmtail \\(pid {holder.pid}\\)"
        ):
            StateDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: no stale lock to clean by hand.
    with StateDirLock(tmp_path):
        pass


SAVE_LOOP = textwrap.dedent(
    """
    import sys
    from llmtail.agent.state.checkpoint import Checkpointer, SavedPosition
    cp = Checkpointer(sys.argv[1])
    start = max((p.offset for p in cp.load().values()), default=0)
    i = start
    while True:
        i += 1
        cp.save({k: SavedPosition(k, "/l/" + k, i, {"ino": i}) for k in ("a", "b", "c")})
        print(i, flush=True)
    """
)


def test_kill_9_during_saves_never_leaves_an_unloadable_or_stale_file(tmp_path: Path) -> None:
    rng = random.Random(1234)
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        first = child.stdout.readline()  # saving has begun
        assert first.strip().isdigit()
        deadline = time.monotonic() + rng.uniform(0.02, 0.25)
        last_done = int(first)
        while time.monotonic() < deadline:
            last_done = int(child.stdout.readline())
        child.kill()
        child.wait()
        loaded = Checkpointer(tmp_path).load()
        assert set(loaded) == {"a", "b", "c"}
        offsets = {p.offset for p in loaded.values()}
        assert len(offsets) == 1, "one save is all or nothing"
        assert offsets.pop() >= last_done
