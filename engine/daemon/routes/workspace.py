"""The workspace: health (public), summary, listings of configs/tokenizers/datasets and evaluation tasks, the event
stream, shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from engine.daemon.broker import CLOSED
from engine.daemon.dependencies import PROTECTED, State
from engine.daemon.routes.responses import ERRORS

public = APIRouter(prefix="/api")
router = APIRouter(prefix="/api", dependencies=PROTECTED, responses=ERRORS)


@public.get("/health")
def health(state: State) -> dict[str, Any]:
    return {"status": "ok", "workspace": str(state.supervisor.workspace)}


@router.get("/workspace")
def workspace(state: State) -> dict[str, Any]:
    supervisor = state.supervisor
    with supervisor.lock:
        summary = supervisor.catalog.summary()
    return {"path": str(supervisor.workspace), "summary": summary, "jobs": supervisor.active()}


@router.get("/workspace/listing")
def listing(state: State) -> dict[str, Any]:
    """Runs with their usable checkpoints (best/latest, the adapters on each), adapters, configs, tokenizers,
    datasets and studies: everything a workspace tree shows, in one request."""
    from engine.daemon.listing import workspace_listing

    supervisor = state.supervisor
    jobs = supervisor.active()
    with supervisor.lock:
        data = workspace_listing(supervisor.catalog, supervisor.workspace, jobs)
    return json.loads(json.dumps(data, default=str))


def _listing(state: State, name: str) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        rows = getattr(state.supervisor.catalog, f"list_{name}")()
    return json.loads(json.dumps(rows, default=str))


@router.get("/configs")
def configs(state: State) -> list[dict[str, Any]]:
    return _listing(state, "configs")


@router.get("/tokenizers")
def tokenizers(state: State) -> list[dict[str, Any]]:
    return _listing(state, "tokenizers")


@router.get("/datasets")
def datasets(state: State) -> list[dict[str, Any]]:
    return _listing(state, "datasets")


@router.get("/tasks")
def tasks() -> list[dict[str, Any]]:
    """The evaluation tasks `llmodel evaluate` knows by name: kind, what each measures, chance, data it needs."""
    from engine.evaluation.tasks import builtin_tasks

    return [
        {
            "name": t.name,
            "kind": t.kind,
            "description": t.description,
            "chance": t.chance,
            "needs_data": t.needs_data,
            "data_layout": t.data_layout,
        }
        for t in builtin_tasks().values()
    ]


@router.get("/evaluations")
def evaluations(state: State) -> list[dict[str, Any]]:
    """Every evaluation result in the workspace, newest first: task, metric, value, stderr, checkpoint, adapter."""
    with state.supervisor.lock:
        return state.supervisor.catalog.eval_results()


@router.get("/events", response_class=EventSourceResponse)
async def workspace_events(
    request: Request, state: State, since: int = Query(0, ge=0)
) -> AsyncIterator[ServerSentEvent]:
    """Every event of every run and job in the workspace: the buffered ones after ``since``, then live until the
    engine stops (the stream then ends)."""
    backlog, queue = state.broker.subscribe(since)
    try:
        for event in backlog:
            yield ServerSentEvent(data=event, id=str(event["seq"]), event=event.get("type"))
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), timeout=1.0)
            except TimeoutError:
                continue
            if event is CLOSED:
                return
            yield ServerSentEvent(data=event, id=str(event["seq"]), event=event.get("type"))
    finally:
        state.broker.unsubscribe(queue)


class ShutdownRequest(BaseModel):
    jobs: bool = False  # cancel the jobs too (training runs checkpoint first); else they keep running


@router.post("/shutdown")
def shutdown(state: State, body: ShutdownRequest | None = None) -> dict[str, Any]:
    """Stop the engine and the model server it started, and its jobs when asked; the answer says which jobs
    were running (and so keep running, or are being stopped) and the model server's pid."""
    stop_jobs = body is not None and body.jobs
    jobs = state.supervisor.active()
    server = state.servers.record()
    if state.on_shutdown is not None:
        state.on_shutdown(stop_jobs)
    return {
        "status": "stopping",
        "jobs": jobs,
        "model_server": server["pid"] if server else None,
    }
