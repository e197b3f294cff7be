"""The child process of one job: ``python -m engine.daemon.job_runner RUN_DIR``.

SIGTERM asks a training job to checkpoint and stop, and stops a tokenizer or dataset job at once (their output
appears in one rename at the end, so there is nothing to save and nothing half-written). Any failure is written
as a final ``status`` event, so the daemon (or a later one) learns how the job ended from the run folder alone.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from engine.daemon.jobs import JobCancelled, read_job, run_job
from engine.errors import DiskFullError, LLModelError, first_line
from engine.fileio import out_of_space
from engine.kinds import INSTANT_CANCEL_KINDS
from engine.runs.events import EventLog


class _Stop:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def request(self, *_: Any) -> None:
        self.requested = True


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    stop = _Stop()
    kind = read_job(run_dir).kind
    # A long C++ call (SentencePiece training) would hold a Python handler off until it returns.
    signal.signal(signal.SIGTERM, signal.SIG_DFL if kind in INSTANT_CANCEL_KINDS else stop.request)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C belongs to the client, not to jobs
    try:
        result = run_job(run_dir, stop)
    except JobCancelled as cancelled:
        _final(run_dir, "cancelled", result={"message": str(cancelled)})
        return 0
    except LLModelError as error:
        _final(run_dir, "failed", error=str(error))
        return 1
    except Exception as error:  # a bug: keep the traceback in the job log, one line in the event
        if out_of_space(error):  # a write no part of the engine wraps: the line says what it could
            _final(
                run_dir, "failed", error=f"no space left on the device: {first_line(error)}; free space first"
            )
            return 1
        traceback.print_exc()
        _final(run_dir, "failed", error=f"{type(error).__name__}: {error}")
        return 1
    status = result.get("status", "completed")
    if status not in ("completed", "cancelled"):
        status = "completed"
    _final(run_dir, status, result=result)
    return 0


def _final(run_dir: Path, status: str, **fields: Any) -> None:
    try:
        with EventLog(run_dir) as events:
            if "error" in fields:
                events.log(fields["error"], level="error")
            events.emit("status", status=status, final=True, **fields)
    except DiskFullError as full:  # no room for the last event: the engine sees the job end without one
        print(fields.get("error") or full, file=sys.stderr, flush=True)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Everything the job had to say is on disk now. Skip the interpreter's teardown of torch (a second or
    # two), so the engine, and whoever follows the run, see the job end when it ends.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
