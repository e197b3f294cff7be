"""The one Python client of the engine process (httpx), used by the CLI and the workbench.

``EngineClient.connect(workspace)`` finds the workspace's running engine, or starts one and waits for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from engine.daemon.record import EngineRecord, live_record
from engine.errors import LLModelError

START_TIMEOUT = 30.0


class EngineUnavailable(LLModelError):
    """The engine could not be reached or started."""


class EngineClient:
    """Talks to one workspace's engine over HTTP with its access token."""

    def __init__(self, record: EngineRecord, *, timeout: float = 30.0) -> None:
        self.record = record
        self._http = httpx.Client(
            base_url=record.url, headers={"Authorization": f"Bearer {record.token}"}, timeout=timeout
        )

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
        client.wait_ready()
        return client

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._http.get("/api/health", timeout=2.0).raise_for_status()
                return
            except httpx.HTTPError as error:
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

    # -- requests -------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, json=body or {})

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise EngineUnavailable(
                f"lost the engine at {self.record.url} ({type(error).__name__}); is it running?"
            ) from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if isinstance(detail, list):  # FastAPI validation errors
                detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
            raise LLModelError(str(detail))
        return response.json()

    def submit(self, kind: str, spec: dict[str, Any], *, parent_id: str | None = None) -> str:
        """Queue a job and return its run id."""
        return self.post("/api/jobs", {"kind": kind, "spec": spec, "parent_id": parent_id})["run_id"]

    def follow(self, run_id: str, offset: int = 0) -> Iterator[dict[str, Any]]:
        """The run's events from line ``offset`` on, live, ending with an ``end`` event when the run is over."""
        import json

        with connect_sse(
            self._http, "GET", f"/api/runs/{run_id}/events", params={"offset": offset}, timeout=None
        ) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise LLModelError(source.response.json().get("detail", source.response.text))
            for sse in source.iter_sse():
                if sse.data:  # keep-alive pings (FastAPI sends one after 15 s of quiet)
                    yield json.loads(sse.data)

    def workspace_events(self, since: int = 0) -> Iterator[dict[str, Any]]:
        """Every event of the workspace, live."""
        import json

        with connect_sse(self._http, "GET", "/api/events", params={"since": since}, timeout=None) as source:
            for sse in source.iter_sse():
                if (
                    sse.data
                ):  # a keep-alive ping after an event decodes as an empty event (it keeps the last id)
                    yield json.loads(sse.data)


def start_engine(workspace: Path, *, max_concurrent_jobs: int | None = None) -> EngineRecord:
    """Start a detached engine process for ``workspace`` and wait until it has written its record."""
    workspace.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "engine.daemon", "--workspace", str(workspace)]
    if max_concurrent_jobs:
        command += ["--max-concurrent-jobs", str(max_concurrent_jobs)]
    log = open(workspace / "engine.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
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
