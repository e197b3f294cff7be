"""The one Python client of the engine process (httpx), used by the CLI and the workbench.

``EngineClient.connect(workspace)`` finds the workspace's running engine, or starts one and waits for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from engine.api import (
    Adapter,
    AttentionMap,
    AttentionSnapshot,
    Cancelled,
    Checkpoint,
    Comparison,
    EvalResult,
    Event,
    Health,
    Metrics,
    Resumed,
    Run,
    RunDetail,
    RunLogs,
    Sample,
    ServeStatus,
    Study,
    StudyReport,
    Submitted,
    Summary,
    TaskInfo,
    Trial,
    TrialExport,
    WorkspaceInfo,
    WorkspaceListing,
)
from engine.daemon.record import EngineRecord, live_record
from engine.errors import LLModelError, NotFoundError
from engine.specs.base import JobSpec, SpecError

START_TIMEOUT = 30.0


class EngineUnavailable(LLModelError):
    """The engine could not be reached or started."""


class EngineStopped(EngineUnavailable):
    """The recorded engine process ended while we waited for it to answer."""


class EngineClient:
    """Talks to one workspace's engine over HTTP with its access token."""

    def __init__(
        self, record: EngineRecord, *, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        """A client of the engine ``record`` describes; ``http`` replaces the connection (an in-process app's)."""
        self.record = record
        self._http = http or httpx.Client(base_url=record.url, timeout=timeout)
        self._http.headers["Authorization"] = f"Bearer {record.token}"

    # -- finding or starting the engine -----------------------------------------------------------

    @classmethod
    def connect(cls, workspace: Path, *, start: bool = True) -> EngineClient:
        """A client of the running engine; start one first when ``start`` and none runs."""
        workspace = workspace.resolve()
        record = live_record(workspace)
        if record is None:
            if not start:
                raise EngineUnavailable(
                    f"no engine is running for workspace {workspace}; start it with `llmodel engine start`"
                )
            record = start_engine(workspace)
        client = cls(record)
        try:
            client.wait_ready()
        except EngineStopped:
            client.close()
            if not start:
                raise
            client = cls(start_engine(workspace))  # the recorded engine was stopping: start a fresh one
            client.wait_ready()
        return client

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._http.get("/api/health", timeout=2.0).raise_for_status()
                return
            except httpx.HTTPError as error:
                if isinstance(error, httpx.ConnectError) and not self.record.process.alive:
                    raise EngineStopped(f"the engine at {self.record.url} has stopped") from None
                if time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"the engine at {self.record.url} does not answer ({error})"
                    ) from None
                time.sleep(0.1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the workspace ----------------------------------------------------------------------------

    def health(self) -> Health:
        return self._request("GET", "/api/health")

    def workspace(self) -> WorkspaceInfo:
        """The workspace's folder, its catalog's counts and the jobs being supervised."""
        return self._request("GET", "/api/workspace")

    def summary(self) -> Summary:
        """How many configs, tokenizers, datasets, adapters and runs (by status) the workspace holds."""
        return self.workspace()["summary"]

    def workspace_listing(self) -> WorkspaceListing:
        """Runs with their usable checkpoints (and the adapters on each), adapters, configs, tokenizers, datasets
        and studies, in one request."""
        return self._request("GET", "/api/workspace/listing")

    def configs(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/configs")

    def tokenizers(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/tokenizers")

    def datasets(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/datasets")

    def tasks(self) -> list[TaskInfo]:
        """The evaluation tasks known by name."""
        return self._request("GET", "/api/tasks")

    def evaluations(self) -> list[EvalResult]:
        """Every evaluation result in the workspace, newest first."""
        return self._request("GET", "/api/evaluations")

    def shutdown(self, *, jobs: bool = False) -> dict[str, Any]:
        """Ask the engine to stop, with the model server it started (and its jobs when ``jobs``); it answers
        with the jobs that were running and the model server's pid, then exits."""
        return self._request("POST", "/api/shutdown", json={"jobs": jobs})

    def workspace_events(self, since: int = 0) -> Iterator[Event]:
        """Every event of the workspace after sequence number ``since``, live."""
        yield from self._events("/api/events", {"since": since})

    # -- jobs -------------------------------------------------------------------------------------

    def submit_job(self, spec: JobSpec, *, parent_id: str | None = None) -> str:
        """Queue the job ``spec`` describes and return its run id; a spec the engine cannot run raises
        :class:`~engine.specs.SpecError` naming the field."""
        body = {"kind": spec.kind, "spec": spec.to_dict(), "parent_id": parent_id}
        submitted: Submitted = self._request("POST", "/api/jobs", json=body)
        return submitted["run_id"]

    def cancel(self, run_id: str) -> Cancelled:
        """Cancel a queued job at once, or ask a running one to checkpoint and stop."""
        return self._request("POST", f"/api/runs/{run_id}/cancel", json={})

    def resume(self, run_id: str, spec: JobSpec | None = None) -> Resumed:
        """Queue a stopped training run again from its last checkpoint; ``spec`` replaces its settings."""
        body = {"spec": spec.to_dict()} if spec is not None else {}
        return self._request("POST", f"/api/runs/{run_id}/resume", json=body)

    # -- runs -------------------------------------------------------------------------------------

    def runs(
        self, *, kind: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Run]:
        """Runs, newest first, with their latest metrics."""
        return self._request("GET", "/api/runs", params=_given(kind=kind, status=status, limit=limit))

    def run(self, run_id: str) -> RunDetail:
        """Everything about one run: its row, config, checkpoints, last samples and event offset."""
        return self._request("GET", f"/api/runs/{run_id}")

    def compare(self, run_ids: list[str]) -> Comparison:
        return self._request("GET", "/api/runs/compare", params={"ids": ",".join(run_ids)})

    def remove_run(self, run_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/api/runs/{run_id}")

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        """The checkpoints the run reported, in step order (pruned ones included)."""
        return self._request("GET", f"/api/runs/{run_id}/checkpoints")

    def run_evaluations(self, run_id: str) -> list[EvalResult]:
        """The evaluation results this run measured, or that were measured on its checkpoints."""
        return self._request("GET", f"/api/runs/{run_id}/evaluations")

    def metrics(
        self, run_id: str, names: list[str] | None = None, *, max_points: int | None = None
    ) -> Metrics:
        """Each metric's ``[step, value]`` points; ``max_points`` averages a longer curve into buckets."""
        params = _given(names=",".join(names) if names else None, max_points=max_points)
        return self._request("GET", f"/api/runs/{run_id}/metrics", params=params)

    def samples(self, run_id: str, limit: int = 20) -> list[Sample]:
        return self._request("GET", f"/api/runs/{run_id}/samples", params={"limit": limit})

    def attention(self, run_id: str) -> list[AttentionSnapshot]:
        return self._request("GET", f"/api/runs/{run_id}/attention")

    def attention_map(self, run_id: str, step: int) -> AttentionMap:
        return self._request("GET", f"/api/runs/{run_id}/attention/{step}")

    def logs(self, run_id: str, tail: int = 200) -> RunLogs:
        return self._request("GET", f"/api/runs/{run_id}/logs", params={"tail": tail})

    def follow(self, run_id: str, offset: int = 0) -> Iterator[Event]:
        """The run's events from line ``offset`` on, live, ending with an ``end`` event when the run is over."""
        yield from self._events(f"/api/runs/{run_id}/events", {"offset": offset})

    # -- adapters, studies, serving -----------------------------------------------------------------

    def adapters(self, base: str | None = None) -> list[Adapter]:
        """The workspace's adapters (only those of the base checkpoint ``base``, when given)."""
        return self._request("GET", "/api/adapters", params=_given(base=base))

    def adapter(self, name: str) -> Adapter:
        return self._request("GET", f"/api/adapters/{name}")

    def remove_adapter(self, name: str) -> dict[str, Any]:
        """Forget an adapter and delete its folder in the workspace."""
        return self._request("DELETE", f"/api/adapters/{name}")

    def studies(self) -> list[Study]:
        return self._request("GET", "/api/studies")

    def study_trials(self, name: str) -> list[Trial]:
        """A study's trials as this workspace's workers ran them."""
        return self._request("GET", f"/api/studies/{name}/trials")

    def study(self, name: str) -> StudyReport:
        """A study's report read from its storage: every worker's trials, the Pareto front, importances."""
        return self._request("GET", f"/api/studies/{name}")

    def export_trial(self, name: str, trial: int | None = None) -> TrialExport:
        """Write a trial's configs (default: the lowest validation loss) into the workspace's configs."""
        return self._request("POST", f"/api/studies/{name}/export", json={"trial": trial})

    def serve_status(self) -> ServeStatus:
        return self._request("GET", "/api/serve")

    def serve_start(
        self,
        model: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        rate_limit: float | None = None,
        adapters: dict[str, str] | None = None,
    ) -> ServeStatus:
        """Serve ``model`` (a run or checkpoint directory), with ``adapters`` (name → directory) over it."""
        body = {
            "model": model,
            "host": host,
            "port": port,
            "api_key": api_key,
            "rate_limit": rate_limit,
            "adapters": adapters,
        }
        return self._request("POST", "/api/serve", json=body)

    def serve_stop(self) -> ServeStatus:
        return self._request("DELETE", "/api/serve")

    # -- transport ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise EngineUnavailable(
                f"lost the engine at {self.record.url} ({type(error).__name__}); is it running?"
            ) from None
        if response.status_code >= 400:
            raise _error(response.status_code, _detail(response))
        return response.json()

    def _events(self, path: str, params: dict[str, Any]) -> Iterator[Event]:
        with connect_sse(self._http, "GET", path, params=params, timeout=None) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise _error(source.response.status_code, _detail(source.response))
            for sse in source.iter_sse():
                # Keep-alive pings (FastAPI sends one after 15 s of quiet) decode as events without data.
                if sse.data:
                    yield json.loads(sse.data)


def _given(**params: Any) -> dict[str, Any]:
    """Query parameters with the ones not given left out."""
    return {k: v for k, v in params.items() if v is not None}


def _detail(response: httpx.Response) -> str:
    """The one line an error response carries (FastAPI's validation errors joined into one)."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    return str(detail)


def _error(status: int, detail: str) -> LLModelError:
    """The exception for an error answer: a spec the engine cannot run, a thing that does not exist, or else."""
    if status == 422:
        return SpecError(detail)
    if status == 404:
        return NotFoundError(detail)
    return LLModelError(detail)


def start_engine(workspace: Path, *, max_concurrent_jobs: int | None = None) -> EngineRecord:
    """Start a detached engine process for ``workspace`` and wait until it has written its record."""
    workspace.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "engine.daemon", "--workspace", str(workspace)]
    if max_concurrent_jobs:
        command += ["--max-concurrent-jobs", str(max_concurrent_jobs)]
    log = open(workspace / "engine.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        record = live_record(workspace)
        if record is not None:
            return record
        code = process.poll()
        if code is not None:
            tail = (
                (workspace / "engine.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
            )
            last = tail[-1] if tail else f"exit code {code}"
            if "already running" not in last:
                raise EngineUnavailable(f"the engine failed to start: {last}")
            # Another command started the engine a moment earlier: wait for its record and use it.
        time.sleep(0.05)
    raise EngineUnavailable(
        f"the engine did not start within {START_TIMEOUT:.0f} s; see {workspace / 'engine.log'}"
    )
