"""The run's event log: JSON lines on disk first, flushed per event, so any reader can follow or replay it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

Event = dict[str, Any]


class EventLog:
    """Appends events to ``events.jsonl`` and a human-readable line for some of them to ``train.log``."""

    def __init__(self, run_dir: Path, *, listener: Callable[[Event], None] | None = None) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._events: TextIO = open(run_dir / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._log: TextIO = open(run_dir / "train.log", "a", encoding="utf-8")  # noqa: SIM115
        self._listener = listener

    def emit(self, type_: str, **fields: Any) -> Event:
        """Record one event (``type`` plus fields) and return it."""
        event = {"type": type_, "time": round(time.time(), 3), **fields}
        self._events.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._events.flush()
        if self._listener is not None:
            self._listener(event)
        return event

    def log(self, message: str, *, level: str = "info") -> None:
        """A log line: an event of type ``log`` and a line in ``train.log``."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {level.upper():5s} {message}\n")
        self._log.flush()
        self.emit("log", level=level, message=message)

    def close(self) -> None:
        self._events.close()
        self._log.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
