"""The engine's serving switch: one model-server process per workspace, started and stopped on request.

This is what the workbench's REST toggle calls. The server runs in its own session (it outlives the engine);
its address is recorded in ``<workspace>/.serve.json`` so a restarted engine finds it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from engine.errors import LLModelError
from engine.fileio import write_json_atomic
from engine.service.record import pid_alive

SERVE_FILE = ".serve.json"


class ServingManager:
    """Starts, stops and reports the workspace's model server."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._key: str | None = None

    def status(self) -> dict[str, Any]:
        """Whether a server runs, where, for which model, whether it is ready, and its request count."""
        record = self._record()
        if record is None:
            return {"running": False}
        health, requests = "unreachable", None
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            with httpx.Client(base_url=record["local_url"], timeout=1.0, headers=headers) as http:
                health = http.get("/health").json().get("status", "unknown")
                metrics = http.get("/metrics")
                if metrics.status_code == 200:
                    requests = _count_requests(metrics.text)
        except (httpx.HTTPError, ValueError):
            pass
        return {"running": True, **{k: v for k, v in record.items() if k != "local_url"}, "health": health, "requests": requests}

    def start(self, model: str, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
              rate_limit: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Start serving ``model`` (a run or checkpoint directory); refuses while another server runs."""
        if self._record() is not None:
            raise LLModelError("a model server is already running for this workspace; stop it first")
        from engine.serving.run import API_KEY_ENV, resolve_api_key  # loads torch: only when serving starts

        key = resolve_api_key(host, api_key)
        if not Path(model).exists():
            raise LLModelError(f"model path {model} does not exist; pass a run or checkpoint directory")
        command = [sys.executable, "-m", "engine.serving", "--model", str(model), "--host", host, "--port", str(port)]
        if rate_limit:
            command += ["--rate-limit", str(rate_limit)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(API_KEY_ENV, None)
        if key:
            env[API_KEY_ENV] = key
        log = open(self.workspace / "serve.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        shown = f"[{host}]" if ":" in host else host
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else shown
        record = {
            "pid": process.pid, "model": str(model), "host": host, "port": port, "url": f"http://{shown}:{port}",
            "local_url": f"http://{local}:{port}", "auth": key is not None, "started": time.time(),
        }  # fmt: skip
        write_json_atomic(self.workspace / SERVE_FILE, record)
        self._key = key
        return {k: v for k, v in record.items() if k != "local_url"}

    def stop(self) -> dict[str, Any]:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        record = self._record()
        if record is None:
            return {"running": False}
        os.kill(record["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(record["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(record["pid"]):
            os.kill(record["pid"], signal.SIGKILL)
        (self.workspace / SERVE_FILE).unlink(missing_ok=True)
        self._key = None
        return {"running": False, "stopped": record["pid"]}

    def _record(self) -> dict[str, Any] | None:
        try:
            record = json.loads((self.workspace / SERVE_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if not pid_alive(int(record.get("pid", 0))):
            (self.workspace / SERVE_FILE).unlink(missing_ok=True)
            return None
        return record


def _count_requests(text: str) -> int:
    """Total of the server's request counter in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("llmodel_requests_total{") and 'endpoint="/metrics"' not in line and 'endpoint="/health"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
