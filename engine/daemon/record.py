"""The engine's record in its workspace (``.engine.json``, mode 0600) and the lock that keeps it unique."""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from engine.errors import LLModelError
from engine.fileio import atomic_path
from engine.processes import ProcessRef

RECORD_FILE = ".engine.json"
LOCK_FILE = ".engine.lock"


@dataclass
class EngineRecord:
    """Where a running engine listens and the token its clients must present."""

    pid: int
    host: str
    port: int
    token: str
    workspace: str
    started: float
    pid_start: int | None = None  # the process's start time: a recycled pid is never taken for the engine

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def process(self) -> ProcessRef:
        return ProcessRef(self.pid, self.pid_start)


def write_record(workspace: Path, record: EngineRecord) -> None:
    """Write the record atomically, readable by its owner only (it holds the access token)."""
    with atomic_path(workspace / RECORD_FILE) as tmp:
        os.chmod(tmp, 0o600)  # before the token is in it
        tmp.write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")


def read_record(workspace: Path) -> EngineRecord | None:
    """The record as written, alive or not; None when absent or unreadable."""
    try:
        data = json.loads((workspace / RECORD_FILE).read_text(encoding="utf-8"))
        return EngineRecord(**data)
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def live_record(workspace: Path) -> EngineRecord | None:
    """The record of a running engine; a stale record (its process gone, or its pid now another's) is removed."""
    record = read_record(workspace)
    if record is None:
        return None
    if record.process.alive:
        return record
    remove_record(workspace, record.pid)
    return None


def remove_record(workspace: Path, pid: int) -> None:
    """Delete the record if it still belongs to ``pid``."""
    record = read_record(workspace)
    if record is not None and record.pid == pid:
        (workspace / RECORD_FILE).unlink(missing_ok=True)


class EngineLock:
    """An exclusive lock on the workspace held for the engine's lifetime; the OS drops it if the engine dies."""

    def __init__(self, workspace: Path) -> None:
        self.path = workspace / LOCK_FILE
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            other = read_record(self.path.parent)
            who = f"pid {other.pid}" if other else "another process"
            raise LLModelError(
                f"an engine is already running for workspace {self.path.parent} ({who}); "
                "use it, or stop it with `llmodel engine stop`"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()} {time.time()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
