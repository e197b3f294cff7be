"""The engine's HTTP API (FastAPI): workspace, runs, jobs, metrics, samples, attention and SSE event streams."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from engine.errors import LLModelError
from engine.service.broker import Broker
from engine.service.jobs import JOB_KINDS
from engine.service.serving import ServingManager
from engine.service.supervisor import Follower, Supervisor

TERMINAL = ("completed", "failed", "cancelled", "failed_resumable")


class ServeRequest(BaseModel):
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    rate_limit: float | None = None


class ResumeRequest(BaseModel):
    spec: dict[str, Any] | None = None


class JobRequest(BaseModel):
    kind: str
    spec: dict[str, Any]
    parent_id: str | None = None


def create_app(supervisor: Supervisor, broker: Broker, token: str, *, on_shutdown: Any = None) -> FastAPI:
    """Build the API; every route but /api/health needs ``Authorization: Bearer <token>``."""
    # No /docs, /redoc or /openapi.json: they would be routes outside the token check.
    app = FastAPI(title="LLModel engine", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    catalog, lock = supervisor.catalog, supervisor.lock

    def authorized(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong engine token")

    @app.exception_handler(LLModelError)
    async def user_error(_: Request, error: LLModelError) -> JSONResponse:
        status = 404 if str(error).startswith("no run named") else 400
        return JSONResponse(status_code=status, content={"detail": str(error)})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "workspace": str(supervisor.workspace)}

    auth = [Depends(authorized)]

    @app.get("/api/workspace", dependencies=auth)
    def workspace() -> dict[str, Any]:
        with lock:
            summary = catalog.summary()
        return {"path": str(supervisor.workspace), "summary": summary, "jobs": supervisor.active()}

    @app.get("/api/runs", dependencies=auth)
    def runs(kind: str | None = None, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        with lock:
            return catalog.list_runs(kind=kind, status=status, limit=limit)

    @app.get("/api/runs/compare", dependencies=auth)
    def compare(ids: str) -> dict[str, Any]:
        with lock:
            return catalog.compare_runs([i for i in ids.split(",") if i])

    @app.get("/api/runs/{run_id}", dependencies=auth)
    def run(run_id: str) -> dict[str, Any]:
        with lock:
            return {**catalog.get_run(run_id), "event_offset": catalog.event_offset(run_id)}

    @app.delete("/api/runs/{run_id}", dependencies=auth)
    def remove(run_id: str) -> dict[str, Any]:
        import shutil

        with lock:
            row = catalog.get_run(run_id)
            if row["status"] in ("queued", "running"):
                raise LLModelError(f"run {run_id} is {row['status']}; cancel it before removing it")
            catalog.remove_run(run_id)
        shutil.rmtree(row["run_dir"], ignore_errors=True)
        return {"removed": run_id}

    @app.post("/api/jobs", dependencies=auth)
    def submit(request: JobRequest) -> dict[str, Any]:
        if request.kind not in JOB_KINDS:
            raise HTTPException(422, f"unknown job kind {request.kind!r}; choose one of: {', '.join(JOB_KINDS)}")
        run_id = supervisor.submit(request.kind, request.spec, parent_id=request.parent_id)
        return {"run_id": run_id, "status": "queued"}

    @app.post("/api/runs/{run_id}/cancel", dependencies=auth)
    def cancel(run_id: str) -> dict[str, Any]:
        return {"run_id": run_id, "status": supervisor.cancel(run_id)}

    @app.post("/api/runs/{run_id}/resume", dependencies=auth)
    def resume(run_id: str, request: ResumeRequest | None = None) -> dict[str, Any]:
        offset = supervisor.resume(run_id, request.spec if request else None)
        return {"run_id": run_id, "status": "queued", "offset": offset}

    @app.get("/api/runs/{run_id}/checkpoints", dependencies=auth)
    def checkpoints(run_id: str) -> list[dict[str, Any]]:
        with lock:
            return catalog.checkpoints(run_id)

    @app.get("/api/runs/{run_id}/metrics", dependencies=auth)
    def metrics(run_id: str, names: str | None = None, max_points: int | None = Query(None, ge=2)) -> dict[str, Any]:
        with lock:
            catalog.get_run(run_id)
            series = catalog.metrics(run_id, names.split(",") if names else None, max_points=max_points)
        return {name: [list(point) for point in points] for name, points in series.items()}

    @app.get("/api/runs/{run_id}/samples", dependencies=auth)
    def samples(run_id: str, limit: int = 20) -> list[dict[str, Any]]:
        with lock:
            return catalog.samples(run_id, limit)

    @app.get("/api/runs/{run_id}/attention", dependencies=auth)
    def attention(run_id: str) -> list[dict[str, Any]]:
        with lock:
            return catalog.attention_snapshots(run_id)

    @app.get("/api/runs/{run_id}/attention/{step}", dependencies=auth)
    def attention_map(run_id: str, step: int) -> dict[str, Any]:
        from engine.training.attention import load_snapshot

        with lock:
            snapshots = [s for s in catalog.attention_snapshots(run_id) if s["step"] == step]
        if not snapshots:
            raise HTTPException(404, f"run {run_id} has no attention snapshot at step {step}")
        weights, tokens, _ = load_snapshot(Path(snapshots[0]["path"]))
        return {"step": step, "tokens": tokens, "weights": [[[[round(v, 4) for v in row] for row in head] for head in layer] for layer in weights.tolist()]}

    @app.get("/api/runs/{run_id}/logs", dependencies=auth)
    def logs(run_id: str, tail: int = 200) -> dict[str, Any]:
        with lock:
            run_dir = Path(catalog.get_run(run_id)["run_dir"])
        lines: list[str] = []
        for name in ("train.log", "job.log"):
            path = run_dir / name
            if path.is_file():
                lines += [f"[{name}] {line}" for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        return {"run_id": run_id, "lines": lines[-tail:]}

    @app.get("/api/runs/{run_id}/events", dependencies=auth, response_class=EventSourceResponse)
    async def run_events(run_id: str, request: Request, offset: int = Query(0, ge=0)) -> AsyncIterator[ServerSentEvent]:
        """Replay the run's events from line ``offset``, then follow it live until it ends."""
        with lock:
            run_dir = Path(catalog.get_run(run_id)["run_dir"])
        follower = Follower(run_dir / "events.jsonl", offset)
        finished, status = False, ""
        while not await request.is_disconnected():
            events = await asyncio.to_thread(follower.read_new)
            first = follower.offset - len(events)
            for index, event in enumerate(events):
                yield ServerSentEvent(data=event, id=str(first + index + 1), event=event.get("type"))
            if events:
                continue
            if finished:  # nothing more was written after the run ended
                yield ServerSentEvent(data={"type": "end", "status": status}, event="end")
                return
            with lock:
                status = catalog.get_run(run_id)["status"]
            # One more read after seeing the end, so the last lines the job wrote are never cut off.
            finished = status in TERMINAL and run_id not in supervisor.jobs
            if not finished:
                await asyncio.sleep(0.05)

    @app.get("/api/events", dependencies=auth, response_class=EventSourceResponse)
    async def workspace_events(request: Request, since: int = Query(0, ge=0)) -> AsyncIterator[ServerSentEvent]:
        """Every event of every run and job in the workspace: the buffered ones after ``since``, then live."""
        backlog, queue = broker.subscribe(since)
        try:
            for event in backlog:
                yield ServerSentEvent(data=event, id=str(event["seq"]), event=event.get("type"))
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    continue
                yield ServerSentEvent(data=event, id=str(event["seq"]), event=event.get("type"))
        finally:
            broker.unsubscribe(queue)

    serving = ServingManager(supervisor.workspace)

    @app.get("/api/serve", dependencies=auth)
    def serve_status() -> dict[str, Any]:
        return serving.status()

    @app.post("/api/serve", dependencies=auth)
    def serve_start(request: ServeRequest) -> dict[str, Any]:
        return serving.start(request.model, host=request.host, port=request.port, api_key=request.api_key, rate_limit=request.rate_limit)

    @app.delete("/api/serve", dependencies=auth)
    def serve_stop() -> dict[str, Any]:
        return serving.stop()

    @app.post("/api/shutdown", dependencies=auth)
    def shutdown() -> dict[str, Any]:
        if on_shutdown is not None:
            on_shutdown()
        return {"status": "stopping", "jobs": supervisor.active()}

    for route_list in ("configs", "tokenizers", "datasets"):
        _add_listing(app, route_list, auth, lock, catalog)
    return app


def _add_listing(app: FastAPI, name: str, auth: list[Any], lock: Any, catalog: Any) -> None:
    method = getattr(catalog, f"list_{name}")

    def listing() -> list[dict[str, Any]]:
        with lock:
            return json.loads(json.dumps(method(), default=str))

    app.add_api_route(f"/api/{name}", listing, methods=["GET"], dependencies=auth, name=f"list_{name}")
