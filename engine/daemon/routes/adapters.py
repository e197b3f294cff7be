"""Adapters: list the workspace's (optionally those of one base checkpoint), show one, remove one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from engine.daemon.dependencies import PROTECTED, State
from engine.daemon.routes.responses import ERRORS

router = APIRouter(prefix="/api/adapters", dependencies=PROTECTED, responses=ERRORS)


@router.get("")
def adapters(state: State, base: str | None = None) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.list_adapters(base)


@router.get("/{name}")
def adapter(name: str, state: State) -> dict[str, Any]:
    with state.supervisor.lock:
        return state.supervisor.catalog.get_adapter(name)


@router.delete("/{name}")
def remove(name: str, state: State) -> dict[str, Any]:
    catalog = state.supervisor.catalog
    with state.supervisor.lock:
        row = catalog.get_adapter(name)
        catalog.remove_adapter(name)
    path = Path(row["path"])
    if path.parent == state.supervisor.workspace / "adapters":  # never delete files outside the workspace
        shutil.rmtree(path, ignore_errors=True)
    return {"removed": name}
