"""glibc malloc as the long-running modes tune it: glibc honours the arena cap and the fixed mmap
threshold, and the user's own settings win."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from llmtail.agent.ops import malloc
from llmtail.agent.ops.malloc import fix_mmap_threshold, limit_arenas

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="arenas are glibc's",
)

THREADS = 8


def run_python(code: str, env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter whose glibc settings are this test's alone: no MALLOC_*
    variable of the caller's environment, only those of `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=clean | (env or {}),
        check=True,
    )


def arenas_with_threads_alive(cap: bool, env: dict[str, str] | None = None) -> int:
    """Arenas glibc made once THREADS threads have each allocated and are all still alive
    (counted from malloc_stats(), which names each one on stderr)."""
    code = textwrap.dedent(
        f"""
        import ctypes, threading
        from llmtail.agent.ops.malloc import fix_mmap_threshold, limit_arenas
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
    done = run_python(code, env)
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


def mmapped_while_holding_batches(fixed: bool, env: dict[str, str] | None = None) -> int:
    """Bytes glibc has mmapped while 8 batch-sized buffers are held, after a first round of
    them was freed (mallinfo2's hblkhd): mmapped blocks go back to the OS when freed, heap
    blocks stay resident."""
    code = textwrap.dedent(
        f"""
        import ctypes
        from llmtail.agent.ops.malloc import fix_mmap_threshold
        if {fixed}:
            fix_mmap_threshold()

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = MallInfo2
        batch = 2 << 20
        held = [bytearray(batch) for _ in range(8)]
        del held  # the first batches are freed: glibc would raise its threshold past them
        held = [bytearray(batch) for _ in range(8)]
        print(libc.mallinfo2().hblkhd)
        """
    )
    return int(run_python(code, env).stdout)


@glibc
def test_batch_sized_buffers_stay_mmapped_after_the_first_is_freed() -> None:
    eight = 8 * (2 << 20)
    assert mmapped_while_holding_batches(fixed=False) < eight  # glibc moved them to the heap
    assert mmapped_while_holding_batches(fixed=True) >= eight


@glibc
def test_a_mmap_threshold_in_the_environment_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "33554432")
    assert fix_mmap_threshold() is False
    env = {"MALLOC_MMAP_THRESHOLD_": "33554432"}
    assert mmapped_while_holding_batches(fixed=True, env=env) == 0


# Small objects that take up the holes startup left in the heap first, so that each pin is
# carved from the heap's top right after its buffer (a pin served from an old hole pins
# nothing, and the freed buffers then merge into the top, which free() gives back itself).
FILL_HOLES = "holes = [bytearray(1000) for _ in range(10_000)]"


def rss_after_freeing_record_buffers(trim: bool) -> tuple[int, int]:
    """(RSS while 64 MiB of 500 KB line buffers are held, RSS once they are freed), in KiB.
    A small object allocated after each buffer pins the heap's top, as the agent's other
    allocations do, so only malloc_trim can give the freed pages back."""
    code = textwrap.dedent(
        f"""
        from llmtail.agent.ops.malloc import fix_mmap_threshold, release_free_memory

        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

        fix_mmap_threshold()  # as the agent runs: 500 KB blocks come from the heap
        {FILL_HOLES}
        buffers, pins = [], []
        for _ in range(128):
            buffers.append(bytearray(500_000))
            pins.append(bytearray(1000))
        held = rss()
        del buffers
        if {trim}:
            release_free_memory()
        print(held, rss())
        """
    )
    held, after = run_python(code, None).stdout.split()
    return int(held), int(after)


@glibc
def test_freed_record_buffers_go_back_to_the_kernel_when_trimmed() -> None:
    held, kept = rss_after_freeing_record_buffers(trim=False)
    assert kept > held - (8 << 10)  # without a trim glibc keeps nearly all 64 MiB resident
    held, trimmed = rss_after_freeing_record_buffers(trim=True)
    assert trimmed < held - (56 << 10)


def test_the_trimmer_trims_at_most_once_an_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(malloc, "release_free_memory", lambda: calls.append(now) or True)
    monkeypatch.setattr(malloc, "heap_slack", lambda: 1 << 30)
    trim = malloc.Trimmer(interval=1.0)
    for now in (10.0, 10.2, 10.9, 11.0, 11.5, 12.1, 12.2):
        trim(now)
    assert calls == [10.0, 11.0, 12.1]


def test_idle_buffers_are_freed_just_before_each_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(malloc, "release_free_memory", lambda: calls.append("trim") or True)
    monkeypatch.setattr(malloc, "heap_slack", lambda: 1 << 30)
    trim = malloc.Trimmer(interval=1.0, idle=lambda: calls.append("idle"))
    for now in (10.0, 10.5, 11.0):
        trim(now)
    assert calls == ["idle", "trim", "idle", "trim"]


def test_the_trimmer_leaves_a_little_free_memory_for_reuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[int] = []
    free = [0]
    monkeypatch.setattr(malloc, "release_free_memory", lambda: trims.append(free[0]) or True)
    monkeypatch.setattr(malloc, "heap_slack", lambda: free[0])
    trim = malloc.Trimmer(interval=1.0, slack=4 << 20)
    for now, free[0] in ((1.0, 1 << 20), (2.0, (4 << 20) - 1), (3.0, 4 << 20), (4.0, 64 << 20)):
        trim(now)
    assert trims == [4 << 20, 64 << 20]


def test_the_trimmer_trims_where_glibc_cannot_say_how_much_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[float] = []
    monkeypatch.setattr(malloc, "release_free_memory", lambda: trims.append(1.0) or True)
    monkeypatch.setattr(malloc, "heap_slack", lambda: None)
    malloc.Trimmer(interval=1.0)(1.0)
    assert trims == [1.0]


@glibc
def test_heap_slack_counts_freed_record_buffers_between_pinned_blocks() -> None:
    code = textwrap.dedent(
        f"""
        from llmtail.agent.ops.malloc import fix_mmap_threshold, heap_slack

        fix_mmap_threshold()
        {FILL_HOLES}
        before = heap_slack()
        buffers, pins = [], []
        for _ in range(64):
            buffers.append(bytearray(500_000))
            pins.append(bytearray(1000))
        del buffers
        print(before, heap_slack())
        """
    )
    before, after = map(int, run_python(code, None).stdout.split())
    assert after - before > 30_000_000  # 64 freed blocks of 500 KB (32 MB), top left out


def faults_per_read_buffer(kept: bool, env: dict[str, str] | None = None) -> float:
    """Minor page faults per read of a just-under-the-threshold chunk (the reader's size), with
    the agent's settings, after a first read has grown the heap."""
    code = textwrap.dedent(
        f"""
        import resource
        from llmtail.agent.ops.malloc import fix_mmap_threshold, keep_heap_top
        fix_mmap_threshold()
        if {kept}:
            keep_heap_top()
        def read():
            return len(bytearray(1000 << 10))  # a read's buffer, zeroed: every page written
        read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):
            read()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
        """
    )
    return float(run_python(code, env).stdout)


@glibc
def test_a_freed_read_buffer_at_the_heap_top_is_reused_without_faults() -> None:
    assert faults_per_read_buffer(kept=False) > 100  # glibc trimmed the top: 250 pages refault
    assert faults_per_read_buffer(kept=True) < 5


@glibc
def test_a_trim_threshold_in_the_environment_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert malloc.keep_heap_top() is False
    assert faults_per_read_buffer(kept=True, env={"MALLOC_TRIM_THRESHOLD_": "131072"}) > 100
