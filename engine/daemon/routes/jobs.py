"""Jobs: submit one (each becomes a run), cancel it, resume a stopped training run.

A posted spec is checked on arrival (:func:`engine.specs.checked_spec`): a bad one is a 422 naming the field,
before any run folder or process exists.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from engine.daemon.dependencies import PROTECTED, State
from engine.daemon.routes.responses import ERRORS
from engine.specs import checked_spec

router = APIRouter(prefix="/api", dependencies=PROTECTED, responses=ERRORS)


class JobRequest(BaseModel):
    kind: str
    spec: Any  # checked by engine.specs, whose errors name the field
    parent_id: str | None = None


class ResumeRequest(BaseModel):
    spec: dict[str, Any] | None = (
        None  # settings that replace the recorded spec's, checked as a posted spec is
    )


@router.post("/jobs")
def submit(request: JobRequest, state: State) -> dict[str, Any]:
    spec = checked_spec(request.kind, request.spec)
    run_id = state.supervisor.submit(spec, parent_id=request.parent_id)
    return {"run_id": run_id, "status": "queued"}


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, state: State) -> dict[str, Any]:
    return {"run_id": run_id, "status": state.supervisor.cancel(run_id)}


@router.post("/runs/{run_id}/resume")
def resume(run_id: str, state: State, request: ResumeRequest | None = None) -> dict[str, Any]:
    spec = request.spec if request else None
    offset = state.supervisor.resume(run_id, spec)
    return {"run_id": run_id, "status": "queued", "offset": offset}
