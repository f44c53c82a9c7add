"""The `file` output: NDJSON appended to one file, durable before a batch is acknowledged."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from llmtail.agent.config import FileOutput
from llmtail.agent.delivery.lines import LineSink
from llmtail.agent.engine.stream import Encoded


class _AppendFile:
    """Appends whole batches; a failed write is cut back off so no torn line is ever left.

    The path is checked on every write: when someone moves or deletes the output file
    (logrotate), the next batch goes to a fresh file at the configured path, not into the void.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None

    def write(self, data: Encoded) -> None:
        fd = self._current()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            # Disk full mid-batch: drop the half-written tail so the retry appends cleanly.
            try:
                os.ftruncate(fd, start)
            except OSError:
                self._drop()
            raise

    def close(self) -> None:
        self._drop()

    def _current(self) -> int:
        if self._fd is not None:
            try:
                st = os.stat(self._path)
                if (st.st_dev, st.st_ino) == self._ident:
                    return self._fd
            except FileNotFoundError:
                pass
            self._drop()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        _cut_torn_tail(fd)
        st = os.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        # Make the file's directory entry durable too, or a crash could lose a new file whole.
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return fd

    def _drop(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._ident = self._fd, None, None
            os.close(fd)


def _cut_torn_tail(fd: int, block: int = 64 * 1024) -> None:
    """Cut a half-written last line, what a kill -9 during a write leaves behind.

    That batch was never acknowledged, so its records are read and sent again after the
    restart; keeping the fragment would glue it onto the next line and break the NDJSON.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - block)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        end = start
    os.ftruncate(fd, 0)


class FileSink(LineSink):
    """Appends NDJSON to `config.path`; thread-safe; write errors are retried until abort."""

    def __init__(
        self,
        config: FileOutput,
        *,
        initial_backoff: float = 0.1,
        max_backoff: float = 30.0,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            _AppendFile(Path(config.path)),
            f"file output {config.path}",
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            on_retry=on_retry,
        )
