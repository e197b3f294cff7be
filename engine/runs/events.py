"""The run's event log: JSON lines on disk first, flushed per event, so any reader can follow or replay it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.fileio import disk_full, out_of_space

Event = dict[str, Any]


class EventLog:
    """Appends events to ``events.jsonl`` and a human-readable line for some of them to ``train.log``.

    Each line goes to disk in one unbuffered append, so nothing waits in a buffer: a kill loses at most the line
    being written (closed off with a newline at the next open, so readers skip it alone), and a full disk raises
    :class:`~engine.errors.DiskFullError` at the line that did not fit.
    """

    def __init__(self, run_dir: Path, *, listener: Callable[[Event], None] | None = None) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._events = _AppendOnly(run_dir / "events.jsonl")
        self._log = _AppendOnly(run_dir / "train.log")
        self._listener = listener

    def emit(self, type_: str, **fields: Any) -> Event:
        """Record one event (``type`` plus fields) and return it."""
        event = {"type": type_, "time": round(time.time(), 3), **fields}
        self._events.write(json.dumps(event, separators=(",", ":")) + "\n")
        if self._listener is not None:
            self._listener(event)
        return event

    def log(self, message: str, *, level: str = "info") -> None:
        """A log line: an event of type ``log`` and a line in ``train.log``."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {level.upper():5s} {message}\n")
        self.emit("log", level=level, message=message)

    def close(self) -> None:
        self._events.close()
        self._log.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AppendOnly:
    """A file written only at its end, a whole line per call, straight to the operating system."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":  # a line torn by a kill or a full disk
            self.write("\n")

    def write(self, text: str) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = text.encode("utf-8")
        done = 0
        while done < len(data):
            try:
                done += os.write(self._fd, data[done:])
            except OSError as error:
                if not out_of_space(error):
                    raise
                raise disk_full(
                    self.path, len(data) - done, "the lines before this one are on disk"
                ) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_events(path: Path, *, offset: int = 0) -> Iterator[Event]:
    """Replay the complete events in ``events.jsonl`` from line ``offset``; a torn last line is skipped."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if index < offset or not line.endswith("\n"):
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
