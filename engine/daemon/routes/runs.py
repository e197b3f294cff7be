"""Runs: list, compare, show, remove; their checkpoints, metrics, samples, attention maps, logs and event stream."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from engine.catalog.ingest import FINISHED_STATUSES
from engine.daemon.dependencies import PROTECTED, State
from engine.daemon.routes.responses import ERRORS
from engine.daemon.supervisor import Follower
from engine.errors import LLModelError, NotFoundError

router = APIRouter(prefix="/api/runs", dependencies=PROTECTED, responses=ERRORS)


@router.get("")
def runs(
    state: State, kind: str | None = None, status: str | None = None, limit: int | None = Query(None, ge=1)
) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.list_runs(kind=kind, status=status, limit=limit)


@router.get("/compare")
def compare(ids: str, state: State) -> dict[str, Any]:
    with state.supervisor.lock:
        return state.supervisor.catalog.compare_runs([i for i in ids.split(",") if i])


@router.get("/{run_id}")
def run(run_id: str, state: State) -> dict[str, Any]:
    catalog = state.supervisor.catalog
    with state.supervisor.lock:
        return {**catalog.get_run(run_id), "event_offset": catalog.event_offset(run_id)}


@router.delete("/{run_id}")
def remove(run_id: str, state: State) -> dict[str, Any]:
    catalog = state.supervisor.catalog
    with state.supervisor.lock:
        row = catalog.get_run(run_id)
        if row["status"] in ("queued", "running"):
            raise LLModelError(f"run {run_id} is {row['status']}; cancel it before removing it")
        catalog.remove_run(run_id)
    shutil.rmtree(row["run_dir"], ignore_errors=True)
    return {"removed": run_id}


@router.get("/{run_id}/evaluations")
def evaluations(run_id: str, state: State) -> list[dict[str, Any]]:
    """The evaluation results this run measured, or that were measured on its checkpoints."""
    with state.supervisor.lock:
        return state.supervisor.catalog.run_evaluations(run_id)


@router.get("/{run_id}/checkpoints")
def checkpoints(run_id: str, state: State) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.checkpoints(run_id)


@router.get("/{run_id}/metrics")
def metrics(
    run_id: str, state: State, names: str | None = None, max_points: int | None = Query(None, ge=2)
) -> dict[str, Any]:
    catalog = state.supervisor.catalog
    with state.supervisor.lock:
        catalog.get_run(run_id)
        series = catalog.metrics(run_id, names.split(",") if names else None, max_points=max_points)
    return {name: [list(point) for point in points] for name, points in series.items()}


@router.get("/{run_id}/samples")
def samples(run_id: str, state: State, limit: int = Query(20, ge=1)) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.samples(run_id, limit)


@router.get("/{run_id}/attention")
def attention(run_id: str, state: State) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.attention_snapshots(run_id)


@router.get("/{run_id}/attention/{step}")
def attention_map(run_id: str, step: int, state: State) -> dict[str, Any]:
    from engine.model.attention_maps import load_snapshot

    with state.supervisor.lock:
        snapshots = [s for s in state.supervisor.catalog.attention_snapshots(run_id) if s["step"] == step]
    if not snapshots:
        raise NotFoundError(f"run {run_id} has no attention snapshot at step {step}")
    weights, tokens, _ = load_snapshot(Path(snapshots[0]["path"]))
    return {"step": step, "tokens": tokens, "weights": weights.double().round(decimals=4).tolist()}


@router.get("/{run_id}/logs")
def logs(run_id: str, state: State, tail: int = Query(200, ge=1)) -> dict[str, Any]:
    with state.supervisor.lock:
        run_dir = Path(state.supervisor.catalog.get_run(run_id)["run_dir"])
    lines: list[str] = []
    for name in ("train.log", "job.log"):
        path = run_dir / name
        if path.is_file():
            lines += [
                f"[{name}] {line}" for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
            ]
    return {"run_id": run_id, "lines": lines[-tail:]}


@router.get("/{run_id}/events", response_class=EventSourceResponse)
async def run_events(
    run_id: str, request: Request, state: State, offset: int = Query(0, ge=0)
) -> AsyncIterator[ServerSentEvent]:
    """Replay the run's events from line ``offset``, then follow it live until it ends (an ``end`` event) or the
    engine stops (the stream ends without one)."""
    supervisor = state.supervisor
    with supervisor.lock:
        run_dir = Path(supervisor.catalog.get_run(run_id)["run_dir"])
    follower = Follower(run_dir / "events.jsonl", offset)
    finished, status = False, ""
    while not state.broker.closed and not await request.is_disconnected():
        events = await asyncio.to_thread(follower.read_new)
        first = follower.offset - len(events)
        for index, event in enumerate(events):
            yield ServerSentEvent(data=event, id=str(first + index + 1), event=event.get("type"))
        if events:
            continue
        if finished:  # nothing more was written after the run ended
            yield ServerSentEvent(data={"type": "end", "status": status}, event="end")
            return
        with supervisor.lock:
            status = supervisor.catalog.get_run(run_id)["status"]
        # One more read after seeing the end, so the last lines the job wrote are never cut off.
        finished = status in FINISHED_STATUSES and run_id not in supervisor.jobs
        if not finished:
            await asyncio.sleep(0.05)
