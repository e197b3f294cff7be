"""The workspace's model server switch (what the workbench's REST toggle and chat use)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from engine.daemon.dependencies import PROTECTED, State
from engine.daemon.routes.responses import ERRORS

router = APIRouter(prefix="/api", dependencies=PROTECTED, responses=ERRORS)


class ServeRequest(BaseModel):
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    rate_limit: float | None = None
    adapters: dict[str, str] | None = None  # name → adapter directory, served over the model too


@router.get("/serve")
def serve_status(state: State) -> dict[str, Any]:
    return state.servers.status()


@router.post("/serve")
def serve_start(request: ServeRequest, state: State) -> dict[str, Any]:
    return state.servers.start(
        request.model,
        host=request.host,
        port=request.port,
        api_key=request.api_key,
        rate_limit=request.rate_limit,
        adapters=request.adapters,
    )


@router.delete("/serve")
def serve_stop(state: State) -> dict[str, Any]:
    return state.servers.stop()
