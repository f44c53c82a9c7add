"""Reading whole files, plain and gzip, damaged ones included (issue 14: a truncated .gz read as
0 bytes and called OK; a corrupt deflate stream that still decodes shipped its garbage)."""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmtail.agent.reading.wholefile import DamagedFileError, read_chunks

CONTENT = b"".join(
    f"2026-11-27 10:00:{i % 60:02d}.000 INFO  [traceId:t{i}] [c.a.Chat#chat():88] [main] - "
    f"chatbot,qa,qwen-plus,ws-1,req-{i:010d},200,120,10,20,30,,\n".encode()
    for i in range(2000)
)


def read_all(path: Path, start: int = 0, chunk_size: int = 1 << 20) -> tuple[bytes, str | None]:
    """(what was handed on, the damage reason or None), with DamagedFileError's count checked."""
    out = bytearray()
    try:
        for chunk in read_chunks(str(path), start, chunk_size):
            assert len(chunk) <= chunk_size
            out += chunk
    except DamagedFileError as exc:
        assert exc.recovered == start + len(out), "recovered counts what was handed on"
        return bytes(out), exc.reason
    return bytes(out), None


def member(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def test_a_truncated_gz_hands_on_its_readable_part(tmp_path: Path) -> None:
    whole = member(CONTENT)
    path = tmp_path / "app.log.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    data, reason = read_all(path)
    assert reason is not None and "truncated" in reason
    assert len(data) > len(CONTENT) // 2
    assert CONTENT.startswith(data)


def test_a_member_whose_checksum_fails_hands_on_nothing_of_it(tmp_path: Path) -> None:
    """Stored (level 0) deflate blocks decode whatever their bytes are: only the CRC tells."""
    first, second = CONTENT[:50_000], CONTENT[50_000:]
    bad = bytearray(member(second, level=0))
    bad[len(bad) // 2] ^= 0x20  # inside the stored data: decodes fine, CRC fails at the end
    path = tmp_path / "app.log.gz"
    path.write_bytes(member(first) + bytes(bad) + member(b"after\n"))
    data, reason = read_all(path, chunk_size=4096)
    assert data == first
    assert reason is not None and "checksum" in reason and "member 2" in reason


def test_invalid_deflate_data_hands_on_nothing_of_its_member(tmp_path: Path) -> None:
    whole = bytearray(member(CONTENT))
    for i in range(len(whole) // 2, len(whole) // 2 + 64):
        whole[i] ^= 0x55
    path = tmp_path / "app.log.gz"
    path.write_bytes(bytes(whole))
    data, reason = read_all(path)
    assert data == b"" and reason is not None


def test_members_and_padding_are_read_whole_and_resumed_anywhere(tmp_path: Path) -> None:
    parts = [CONTENT[:1000], CONTENT[1000:70_000], CONTENT[70_000:]]
    path = tmp_path / "app.log.gz"
    path.write_bytes(member(parts[0]) + member(parts[1]) + b"\0" * 100 + member(parts[2]))
    assert read_all(path, chunk_size=333) == (CONTENT, None)
    for start in (0, 999, 1000, 1001, 69_999, 70_000, len(CONTENT) - 1, len(CONTENT)):
        assert read_all(path, start) == (CONTENT[start:], None)


def test_garbage_after_a_member_is_damage_after_what_was_sound(tmp_path: Path) -> None:
    path = tmp_path / "app.log.gz"
    path.write_bytes(member(CONTENT) + b"not gzip at all")
    data, reason = read_all(path)
    assert data == CONTENT and reason is not None and "not gzip" in reason


def test_a_bomb_comes_out_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "zeros.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    with path.open("wb") as f:
        block = b"\0" * (1 << 20)
        for _ in range(64):
            f.write(compressor.compress(block))
        f.write(compressor.flush())
    total = 0
    for chunk in read_chunks(str(path), 0, 1 << 16):
        assert len(chunk) <= 1 << 16
        total += len(chunk)
    assert total == 64 << 20


@settings(max_examples=60, deadline=None)
@example(cuts=[0, 828, 13086], keep=0.2642367985233443, chunk=64)  # zlib's flush at the cut
@example(cuts=[175], keep=0.00886, chunk=64)  # kept bytes end with the first member: whole
@given(
    cuts=st.lists(st.integers(0, len(CONTENT)), max_size=3),
    keep=st.floats(0.0, 1.0),
    chunk=st.sampled_from([64, 4096, 1 << 20]),
)
def test_whatever_the_cut_what_is_handed_on_is_a_prefix_and_only_a_whole_file_is_clean(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], keep: float, chunk: int
) -> None:
    bounds = [0, *sorted(cuts), len(CONTENT)]
    members = [member(CONTENT[a:b]) for a, b in itertools.pairwise(bounds)]
    whole = b"".join(members)
    kept = min(len(whole), max(2, int(len(whole) * keep)))
    # A cut at a member's end leaves a whole gzip file of the members before it.
    ends = dict(zip(itertools.accumulate(map(len, members)), bounds[1:], strict=True))
    path = tmp_path_factory.mktemp("gz") / "x.gz"
    path.write_bytes(whole[:kept])
    data, reason = read_all(path, chunk_size=chunk)
    assert CONTENT.startswith(data)
    assert (reason is None) == (kept in ends)
    if reason is None:
        assert data == CONTENT[: ends[kept]]


def test_validate_on_a_truncated_gz_reports_what_it_recovered_and_is_not_ok(
    tmp_path: Path,
) -> None:
    whole = member(CONTENT)
    path = tmp_path / "app.log.gz"
    path.write_bytes(whole[: len(whole) // 2])
    result = subprocess.run(
        [sys.executable, "-m", "llmtail", "validate", "--max-error-rate", "1", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    (damaged,) = [x for x in result.stdout.splitlines() if x.startswith("damaged: ")]
    recovered = int(damaged.rsplit("recovered ", 1)[1].split()[0].replace(",", ""))
    assert recovered > 0
    assert "result: FAIL" in result.stdout and "result: OK" not in result.stdout
    assert "Traceback" not in result.stderr
