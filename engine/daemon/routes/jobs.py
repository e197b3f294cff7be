"""Jobs: submit one (each becomes a run), cancel it, resume a stopped training run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from engine.daemon.dependencies import PROTECTED, State
from engine.kinds import JOB_KINDS

router = APIRouter(prefix="/api", dependencies=PROTECTED)


class JobRequest(BaseModel):
    kind: str
    spec: dict[str, Any]
    parent_id: str | None = None


class ResumeRequest(BaseModel):
    spec: dict[str, Any] | None = None


@router.post("/jobs")
def submit(request: JobRequest, state: State) -> dict[str, Any]:
    if request.kind not in JOB_KINDS:
        raise HTTPException(422, f"unknown job kind {request.kind!r}; choose one of: {', '.join(JOB_KINDS)}")
    run_id = state.supervisor.submit(request.kind, request.spec, parent_id=request.parent_id)
    return {"run_id": run_id, "status": "queued"}


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, state: State) -> dict[str, Any]:
    return {"run_id": run_id, "status": state.supervisor.cancel(run_id)}


@router.post("/runs/{run_id}/resume")
def resume(run_id: str, state: State, request: ResumeRequest | None = None) -> dict[str, Any]:
    offset = state.supervisor.resume(run_id, request.spec if request else None)
    return {"run_id": run_id, "status": "queued", "offset": offset}
