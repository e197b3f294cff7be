"""The daemon's model-server switch: one model-server process per workspace, started and stopped on request.

This is what the workbench's REST toggle calls. The server runs in its own session (a Ctrl-C in the engine's
terminal never reaches it); the engine stops it when it stops. Its address is recorded in
``<workspace>/.serve.json``, so an engine that was killed, and could not stop it, is followed by one that finds
it again (and stops it in turn).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from engine.errors import LLModelError
from engine.fileio import write_json_atomic
from engine.net import local_host, url_host
from engine.processes import ProcessRef, terminate

SERVE_FILE = ".serve.json"
SERVER_GRACE = 10.0  # seconds a model server has to exit after SIGTERM, before SIGKILL
STARTING_GRACE = 120.0  # seconds a new server may take to listen before it counts as unreachable


class ModelServerManager:
    """Starts, stops and reports the workspace's model server."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._key: str | None = None
        self._answered: dict[int, str] = {}  # pid → "ok" once it has been ok, else the last health it gave
        self._known: dict[str, Any] | None = None  # the record last read or written
        self.record()  # adopt a server an earlier engine left running

    def status(self) -> dict[str, Any]:
        """Whether a server runs, where, for which model, and its health: "starting" (its process is up but not
        yet listening), "loading", "ok", "error" (with the server's reason), or "unreachable" (it was ok, and now
        does not answer). A server busy loading its model may miss a probe: until it has once been ok, a missed
        probe reads "loading" (or "starting", before it ever answered), never "unreachable"."""
        record = self.record()
        if record is None:
            return {"running": False}
        pid, health, requests, error = record["pid"], "unreachable", None, None
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            with httpx.Client(base_url=record["local_url"], timeout=1.0, headers=headers) as http:
                body = http.get("/health").json()
                health, error = body.get("status", "unknown"), body.get("error")
                if self._answered.get(pid) != "ok":
                    self._answered[pid] = health
                metrics = http.get("/metrics")
                if metrics.status_code == 200:
                    requests = _count_requests(metrics.text)
        except (httpx.HTTPError, ValueError, AttributeError):
            seen = self._answered.get(pid)
            if seen is None:
                young = time.time() - float(record.get("started", 0)) < STARTING_GRACE
                health = "starting" if young else "unreachable"
            elif seen != "ok":
                health = "loading"
        status = {
            "running": True,
            **{k: v for k, v in record.items() if k != "local_url"},
            "health": health,
            "requests": requests,
        }
        if health == "error":
            status["error"] = error or "the model server reported an error; see serve.log in the workspace"
        return status

    def start(
        self,
        model: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        rate_limit: float | None = None,
        adapters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Start serving ``model`` (a run or checkpoint directory), with ``adapters`` (name → directory) over it;
        refuses while another server runs."""
        if self.record() is not None:
            raise LLModelError("a model server is already running for this workspace; stop it first")
        from engine.server.run import API_KEY_ENV, resolve_api_key

        key = resolve_api_key(host, api_key)
        if not Path(model).exists():
            raise LLModelError(f"model path {model} does not exist; pass a run or checkpoint directory")
        command = [
            sys.executable,
            "-m",
            "engine.server",
            "--model",
            str(model),
            "--host",
            host,
            "--port",
            str(port),
        ]
        if rate_limit:
            command += ["--rate-limit", str(rate_limit)]
        for name, path in (adapters or {}).items():
            command += ["--adapter", f"{name}={path}"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(API_KEY_ENV, None)
        if key:
            env[API_KEY_ENV] = key
        log = open(self.workspace / "serve.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        started = ProcessRef.of(process.pid)
        record = {
            "pid": process.pid,
            "pid_start": started.started,
            "model": str(model),
            "host": host,
            "port": port,
            "url": f"http://{url_host(host)}:{port}",
            "local_url": f"http://{local_host(host)}:{port}",
            "auth": key is not None,
            "started": time.time(),
            "adapters": dict(adapters or {}),
        }
        write_json_atomic(self.workspace / SERVE_FILE, record)
        self._key, self._known = key, record
        return {k: v for k, v in record.items() if k != "local_url"}

    def stop(self, *, remembered: bool = False) -> dict[str, Any]:
        """Stop the server (SIGTERM, then SIGKILL after SERVER_GRACE seconds); a recorded pid now used by another
        process is left alone. ``remembered``: the server last known, without reading or removing the record
        (the workspace folder went away; a record at its path now is another's)."""
        record = self._known if remembered else self.record()
        if record is None or not _process(record).alive:
            return {"running": False}
        terminate(_process(record), timeout=SERVER_GRACE)
        if not remembered:
            (self.workspace / SERVE_FILE).unlink(missing_ok=True)
        self._key, self._known = None, None
        return {"running": False, "stopped": record["pid"]}

    def record(self) -> dict[str, Any] | None:
        """The running server's record (pid, address, model); None when none runs."""
        try:
            record = json.loads((self.workspace / SERVE_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if not _process(record).alive:
            (self.workspace / SERVE_FILE).unlink(missing_ok=True)
            return None
        self._known = record
        return record


def _process(record: dict[str, Any]) -> ProcessRef:
    return ProcessRef(int(record.get("pid", 0)), record.get("pid_start"))


def _count_requests(text: str) -> int:
    """Total of the server's request counter in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("llmodel_requests_total{")
            and 'endpoint="/metrics"' not in line
            and 'endpoint="/health"' not in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
