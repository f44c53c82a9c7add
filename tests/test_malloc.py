"""The malloc arena cap of long-running modes: glibc honours it, and the user's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from llmtail.agent.ops.malloc import limit_arenas

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="arenas are glibc's",
)

THREADS = 8


def arenas_with_threads_alive(cap: bool, env: dict[str, str] | None = None) -> int:
    """Arenas glibc made once THREADS threads have each allocated and are all still alive
    (counted from malloc_stats(), which names each one on stderr)."""
    code = textwrap.dedent(
        f"""
        import ctypes, threading
        from llmtail.agent.ops.malloc import limit_arenas
        if {cap}:
            limit_arenas()
        barrier = threading.Barrier({THREADS} + 1)
        def work():
            held = [bytearray(4000), bytearray(1 << 20)]  # malloc'ed in this thread
            barrier.wait()
            barrier.wait()
        threads = [threading.Thread(target=work) for _ in range({THREADS})]
        for t in threads:
            t.start()
        barrier.wait()  # every thread has allocated, none has ended
        ctypes.CDLL(None).malloc_stats()
        barrier.wait()
        for t in threads:
            t.join()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (env or {})
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@glibc
def test_the_cap_keeps_eight_allocating_threads_to_two_arenas() -> None:
    assert arenas_with_threads_alive(cap=False) > 2  # each thread gets one of its own
    assert arenas_with_threads_alive(cap=True) == 2


@glibc
def test_a_malloc_arena_max_in_the_environment_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
    assert arenas_with_threads_alive(cap=True, env={"MALLOC_ARENA_MAX": "4"}) == 4
