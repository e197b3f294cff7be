"""The processes LLModel starts and later signals (the engine, model servers, jobs), known by pid *and* start time.

A pid alone is not an identity: once a process exits, the system may hand its pid to an unrelated process, and a
stale record would then have us signal a stranger. Every record of a process we may signal later keeps its start
time (``/proc/<pid>/stat`` field 22, clock ticks since boot), and :func:`terminate` checks it before any signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

KILL_WAIT = 5.0  # seconds to wait for a process to vanish after SIGKILL


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) process, whoever it belongs to."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _stat_fields(pid)
    return stat is None or stat[0] != "Z"  # no /proc (macOS): trust kill(0)


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None where /proc is not available or the pid is gone."""
    stat = _stat_fields(pid)
    if stat is None:
        return None
    try:
        return int(stat[19])  # field 22 of /proc/<pid>/stat; the list starts at field 3 (state)
    except (IndexError, ValueError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class ProcessRef:
    """A process as recorded when it was started: its pid and its start time (None when unknown)."""

    pid: int
    started: int | None = None

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """The reference of a process running now (a child just started, or this process)."""
        return cls(pid, start_ticks(pid))

    @property
    def alive(self) -> bool:
        """True while this very process runs: the pid is alive and, where known, started when recorded."""
        if not pid_alive(self.pid):
            return False
        if self.started is None:
            return True
        now = start_ticks(self.pid)
        return now is None or now == self.started


def signal_process(ref: ProcessRef, sig: int) -> bool:
    """Send ``sig`` to the recorded process if it is still that process; False when it is gone (or another)."""
    if not ref.alive:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(ref.pid, sig)
        return True
    return False


def wait_exit(ref: ProcessRef, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the process to end; True once it has."""
    deadline = time.monotonic() + timeout
    while ref.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    return not ref.alive


def terminate(ref: ProcessRef, timeout: float = 10.0) -> bool:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; True if the process was ours to stop and ended."""
    if not signal_process(ref, signal.SIGTERM):
        return False
    if not wait_exit(ref, timeout):
        signal_process(ref, signal.SIGKILL)
        wait_exit(ref, KILL_WAIT)
    return not ref.alive
