"""Running candidate programs (HumanEval-style code tasks) in a separate, limited process — never in the engine.

The program runs in a fresh Python interpreter in isolated mode, in an empty temporary directory, with a wall
clock timeout, a CPU-time limit, an address-space limit and a file-size limit, in its own session so a timeout
kills everything it started.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 10.0  # seconds of wall clock
MEMORY = 1 << 30  # bytes of address space
FILE_SIZE = 10 << 20  # bytes a program may write to one file


@dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str  # "passed", "failed: <last line of stderr>", "timed out"


def _limits() -> None:  # runs in the child, before the program
    cpu = int(TIMEOUT) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))


def run_program(source: str, timeout: float = TIMEOUT) -> Outcome:
    """Run ``source``; it passes when it exits 0 within the limits."""
    with tempfile.TemporaryDirectory(prefix="llmodel-code-") as tmp:
        path = Path(tmp) / "candidate.py"
        path.write_text(source, encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-I", str(path)],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            preexec_fn=_limits,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return Outcome(False, "timed out")
    if process.returncode == 0:
        return Outcome(True, "passed")
    last = stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:] or [
        f"exit code {process.returncode}"
    ]
    return Outcome(False, f"failed: {last[0][:200]}")


def humaneval_program(doc: dict[str, str], completion: str) -> str:
    """The HumanEval program for a completion: prompt + completion, the task's tests, and the check call."""
    return f"{doc['prompt']}{completion}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"
