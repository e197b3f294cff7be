"""The job supervisor: starts each job in its own child process, follows its events, records how it ends.

One background thread ticks every 50 ms, while the workspace folder is still the one it started in: it ingests
new lines of each followed run's ``events.jsonl`` into the catalog and the broker, notices children that exited,
and starts queued jobs while slots are free. A job's child is started in its own session, so it outlives an
engine that is killed (or stopped without its jobs); the next engine re-attaches to it by pid and catches up
from the catalog's recorded offset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.catalog import Catalog
from engine.daemon.artifacts import register_artifacts
from engine.daemon.broker import Broker
from engine.daemon.jobs import read_job, write_job
from engine.daemon.workspace_watch import WorkspaceWatch
from engine.errors import LLModelError
from engine.kinds import CHILD_KINDS, RESUMABLE_KINDS
from engine.processes import KILL_WAIT, ProcessRef, signal_process, wait_exit
from engine.specs import JobSpec, checked_spec
from engine.workspace import new_run_id, runs_dir

TICK = 0.05
INGEST_INTERVAL = 0.5
CANCEL_GRACE = 60.0  # seconds a cancelled training job has to checkpoint before it is killed
ACTIVE = ("queued", "running")


@dataclass
class Follower:
    """Reads a run's events.jsonl incrementally, line by line, from a known line offset."""

    path: Path
    offset: int  # lines already consumed
    _position: int = 0  # byte position after the complete lines passed so far
    _passed: int = 0  # complete lines passed so far (fewer than offset until the file has that many)

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        events: list[dict[str, Any]] = []
        with open(self.path, "rb") as fh:
            fh.seek(self._position)
            while True:
                line = fh.readline()
                if not line.endswith(b"\n"):
                    break  # a line still being written: take it next tick
                self._position = fh.tell()
                self._passed += 1
                if self._passed <= self.offset:
                    continue  # still skipping to the starting offset
                self.offset += 1
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    events.append(
                        {"type": "log", "level": "warning", "message": "unreadable event line skipped"}
                    )
        return events


@dataclass
class Job:
    run_id: str
    kind: str
    run_dir: Path
    follower: Follower
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    pid_start: int | None = None  # with the pid, the identity of the job's process (never signal a stranger)
    cancel_requested_at: float | None = None
    final_status: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # published, not yet in the catalog
    flushed_at: float = 0.0
    parent: str | None = None  # a run another job trains in its own process (a study's trial)

    @property
    def ref(self) -> ProcessRef:
        return ProcessRef(self.pid or 0, self.pid_start)


class Supervisor:
    """Owns the jobs of one workspace; every catalog access goes through ``self.lock``."""

    def __init__(
        self,
        workspace: Path,
        catalog: Catalog,
        broker: Broker,
        *,
        max_concurrent: int = 1,
        watch: WorkspaceWatch | None = None,
    ) -> None:
        """``watch``: looked at before each tick; once the workspace folder is gone the loop stops."""
        self.workspace, self.catalog, self.broker = workspace, catalog, broker
        self.max_concurrent = max_concurrent
        self.watch = watch
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            register_artifacts(self.catalog, self.workspace)
        self.reattach()
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising; running jobs keep running and a later engine re-attaches to them."""
        self._stop.set()
        self._thread.join(timeout=5)

    def cancel_all(self) -> list[str]:
        """Cancel every job as :meth:`cancel` does (queued ones at once, running ones checkpoint and stop, killed
        after CANCEL_GRACE seconds); returns their run ids. :meth:`wait_idle` waits for their ends."""
        with self.lock:
            cancelled = [job.run_id for job in list(self.jobs.values()) if job.parent is None]
            for run_id in cancelled:
                self.cancel(run_id)
        return cancelled

    def kill_all(self) -> None:
        """SIGKILL every running job at once, recording nothing: for a workspace that is gone (stop first)."""
        with self.lock:
            refs = [job.ref for job in self.jobs.values() if job.pid is not None and job.parent is None]
        for ref in refs:
            signal_process(ref, signal.SIGKILL)
        for ref in refs:
            wait_exit(ref, KILL_WAIT)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is left (each one's end recorded); False if some are still there after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.jobs and time.monotonic() < deadline:
            time.sleep(TICK)
        return not self.jobs

    def reattach(self) -> None:
        """Adopt the runs an earlier engine left running or queued."""
        with self.lock:
            # Oldest first, so the queue keeps its order (list_runs gives newest first).
            adopted = self.catalog.list_runs(status="running") + self.catalog.list_runs(status="queued")
            for row in reversed(adopted):
                run_dir = Path(row["run_dir"])
                job = Job(
                    row["id"],
                    row["kind"],
                    run_dir,
                    Follower(run_dir / "events.jsonl", self.catalog.event_offset(row["id"])),
                )
                job.pid, job.pid_start = row.get("pid"), row.get("pid_start")
                job.parent = row.get("parent_id") if row["kind"] in CHILD_KINDS else None
                self.jobs[job.run_id] = job
                if row["status"] == "running" and not (job.pid and job.ref.alive):
                    self._ingest(job, force=True)
                    self._finish(job, exit_code=None)

    # -- requests ---------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, parent_id: str | None = None) -> str:
        """Queue a job; returns its run id."""
        kind = spec.kind
        run_id = new_run_id(kind)
        run_dir = runs_dir(self.workspace) / run_id
        run_dir.mkdir(parents=True)
        write_job(run_dir, spec)
        data = spec.to_dict()
        config: dict[str, Any] = {k: data[k] for k in ("model_config", "train_config") if k in data}
        with self.lock:
            self.catalog.create_run(
                run_id, kind, str(run_dir), config or data, parent_id=parent_id, status="queued"
            )
            self.jobs[run_id] = Job(run_id, kind, run_dir, Follower(run_dir / "events.jsonl", 0))
        self._announce(run_id, "queued")
        return run_id

    def cancel(self, run_id: str) -> str:
        """Cancel a queued job at once; ask a running one to checkpoint and stop (killed after a grace period)."""
        with self.lock:
            job = self.jobs.get(run_id)
            if job is None:
                status = self.catalog.get_run(run_id)["status"]
                raise LLModelError(f"run {run_id} is {status}, not queued or running; nothing to cancel")
            if job.pid is None:
                del self.jobs[run_id]
                self.catalog.update_run(run_id, status="cancelled", finished=_now())
                self._announce(run_id, "cancelled")
                return "cancelled"
            if job.parent is not None:
                raise LLModelError(
                    f"run {run_id} is a trial of {job.parent}; cancel that run (the whole study)"
                )
            if job.cancel_requested_at is None:
                job.cancel_requested_at = time.monotonic()
                signal_process(job.ref, signal.SIGTERM)
                for child in self.jobs.values():
                    if child.parent == run_id:
                        child.cancel_requested_at = job.cancel_requested_at
            return "cancelling"

    def resume(self, run_id: str, spec: dict[str, Any] | None = None) -> int:
        """Queue a stopped training run again from its last complete checkpoint, in the same run folder.

        ``spec`` may replace the job's settings (e.g. more steps): its keys go over the recorded spec's, and the
        result is checked as a posted spec is (:class:`~engine.specs.SpecError`) before anything changes.
        Returns the event offset the resumed job starts writing at.
        """
        with self.lock:
            if run_id in self.jobs and not self._settle(self.jobs[run_id]):
                raise LLModelError(
                    f"run {run_id} is still {self.catalog.get_run(run_id)['status']}; cancel it first"
                )
            row = self.catalog.get_run(run_id)
            if row["kind"] not in RESUMABLE_KINDS:
                raise LLModelError(
                    f"run {run_id} is a {row['kind']} job; only pretraining runs can be resumed"
                )
            if row["status"] == "completed" and spec is None:
                raise LLModelError(
                    f"run {run_id} already completed; to train it further pass more steps, e.g. "
                    f"`llmodel pretrain ... --resume-from-checkpoint {row['run_dir']} --max-steps N`"
                )
            run_dir = Path(row["run_dir"])
            from engine.runs.checkpoint import latest_checkpoint

            if latest_checkpoint(run_dir / "checkpoints") is None:
                raise LLModelError(
                    f"run {run_id} has no complete checkpoint to resume from; start it again instead"
                )
            old = read_job(run_dir)
            kind = old.kind
            write_job(
                run_dir, checked_spec(kind, {**old.to_dict(), **(spec or {}), "resume_from": str(run_dir)})
            )
            self.catalog.update_run(run_id, status="queued", error=None, finished=None)
            offset = self.catalog.event_offset(run_id)
            self.jobs[run_id] = Job(run_id, kind, run_dir, Follower(run_dir / "events.jsonl", offset))
        self._announce(run_id, "queued")
        return offset

    def active(self) -> list[dict[str, Any]]:
        """The jobs being supervised: run id, kind, status and pid."""
        with self.lock:
            return [
                {"run_id": j.run_id, "kind": j.kind, "pid": j.pid, "status": "running" if j.pid else "queued"}
                for j in self.jobs.values()
            ]

    # -- the loop ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.watch is not None and self.watch.gone():
                return
            try:
                self.tick()
            except Exception as error:  # the loop must survive anything a job or the disk throws at it
                print(f"supervisor: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            self._stop.wait(TICK)

    def tick(self) -> None:
        with self.lock:
            for job in list(self.jobs.values()):
                if job.parent is not None:  # ends with its own final event, or with the job that trains it
                    self._ingest(job)
                    if job.final_status is not None or job.parent not in self.jobs:
                        self._ingest(job, force=True)
                        self._finish(job, exit_code=None)
                    continue
                if job.pid is None:
                    continue
                self._ingest(job)
                exit_code = self._exit_code(job)
                if exit_code is not False:
                    self._ingest(job, force=True)
                    self._finish(job, exit_code)
                elif job.cancel_requested_at and time.monotonic() - job.cancel_requested_at > CANCEL_GRACE:
                    signal_process(job.ref, signal.SIGKILL)
            running = sum(1 for j in self.jobs.values() if j.pid is not None and j.parent is None)
            # self.jobs keeps submission order (run ids only sort to the second, then at random).
            for job in list(self.jobs.values()):
                if running >= self.max_concurrent:
                    break
                if job.pid is None:
                    self._launch(job)
                    running += 1

    def _launch(self, job: Job) -> None:
        log = open(job.run_dir / "job.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        job.process = subprocess.Popen(
            [sys.executable, "-m", "engine.daemon.job_runner", str(job.run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        job.pid, job.pid_start = job.process.pid, ProcessRef.of(job.process.pid).started
        self.catalog.update_run(
            job.run_id, status="running", pid=job.pid, pid_start=job.pid_start, started=_now()
        )
        self._announce(job.run_id, "running", pid=job.pid)

    def _exit_code(self, job: Job) -> int | bool | None:
        """The child's exit code, None if it died unobserved (not our child), False while it runs."""
        if job.process is not None:
            code = job.process.poll()
            return False if code is None else code
        return False if job.pid and job.ref.alive else None

    def _ingest(self, job: Job, *, force: bool = False) -> None:
        """Publish a job's new events at once; write them to the catalog in batches (a commit costs ~40 ms).

        Subscribers see each event within a tick; the catalog lags by at most INGEST_INTERVAL, and a crash
        in between loses nothing: the catalog's offset still points before the unwritten lines.
        """
        events = job.follower.read_new()
        final = None
        for event in events:
            if event.get("type") == "status" and event.get("final"):
                final = event
            if event.get("type") == "child_run":
                self._adopt_child(job, event)
            self.broker.publish({**event, "run_id": job.run_id})
        job.pending.extend(events)
        due = time.monotonic() - job.flushed_at >= INGEST_INTERVAL
        if job.pending and (force or final is not None or due):
            self.catalog.ingest_events(job.run_id, job.pending, job.follower.offset)
            job.pending, job.flushed_at = [], time.monotonic()
        if final is not None:
            job.final_status = final["status"]
            result = final.get("result") or {}
            outputs = [Path(result[k]) for k in ("output",) if result.get(k)]
            register_artifacts(self.catalog, self.workspace, outputs)

    def _adopt_child(self, parent: Job, event: dict[str, Any]) -> None:
        """Record and follow a run that ``parent`` trains in its own process (a study's trial)."""
        run_id, run_dir = event.get("run_id"), event.get("run_dir")
        if not isinstance(run_id, str) or not isinstance(run_dir, str) or run_id in self.jobs:
            return
        try:
            self.catalog.get_run(run_id)
        except LLModelError:
            kind = str(event["kind"]) if event.get("kind") in CHILD_KINDS else "trial"
            config = event.get("config") or {}
            self.catalog.create_run(run_id, kind, run_dir, config, parent_id=parent.run_id, status="running")
        self.catalog.update_run(run_id, status="running", pid=parent.pid, pid_start=parent.pid_start)
        child = Job(
            run_id, "trial", Path(run_dir), Follower(Path(run_dir) / "events.jsonl", 0), parent=parent.run_id
        )
        child.pid, child.pid_start = parent.pid, parent.pid_start
        child.cancel_requested_at = parent.cancel_requested_at
        self.jobs[run_id] = child
        self._announce(run_id, "running", parent=parent.run_id)

    def _finish(self, job: Job, exit_code: int | None) -> None:
        """Record how a job ended: its own final status, else cancelled or failed(-resumable)."""
        self.jobs.pop(job.run_id, None)
        status = job.final_status
        error = None
        if status is None:
            if job.cancel_requested_at is not None:
                status = "cancelled"
            else:
                status = "failed_resumable" if self._resumable(job) else "failed"
                error = f"job process ended without finishing (exit code {exit_code if exit_code is not None else 'unknown'})"
        fields: dict[str, Any] = {"status": status, "finished": _now(), "pid": None, "pid_start": None}
        if error:
            fields["error"] = error
        self.catalog.update_run(job.run_id, **fields)
        self._announce(job.run_id, status, error=error)

    def _settle(self, job: Job, timeout: float = 10.0) -> bool:
        """Finish a job that already reported its end (its process is exiting); False if it is still working."""
        self._ingest(job)
        if job.final_status is None:
            return False
        deadline = time.monotonic() + timeout
        while (exit_code := self._exit_code(job)) is False:
            if time.monotonic() > deadline:
                return False
            time.sleep(TICK)
        self._ingest(job, force=True)
        self._finish(job, exit_code)
        return True

    def _resumable(self, job: Job) -> bool:
        from engine.runs.checkpoint import latest_checkpoint

        return job.kind in RESUMABLE_KINDS and latest_checkpoint(job.run_dir / "checkpoints") is not None

    def _announce(self, run_id: str, status: str, **fields: Any) -> None:
        self.broker.publish(
            {"type": "job", "run_id": run_id, "status": status, "time": time.time(), **fields}
        )


def _now() -> float:
    return time.time()
