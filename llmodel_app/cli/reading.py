"""Read-only queries of a workspace: through its engine when one runs, else straight from the catalog file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb

from engine.catalog import Catalog
from engine.errors import LLModelError
from engine.service.record import EngineRecord, live_record


def query(workspace: Path, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a read method of the catalog (``list_runs``, ``get_run``, ``compare_runs``, ``summary``, ...).

    DuckDB admits one writer process, the engine: while it runs we ask it; otherwise we open the file
    read-only, and if an engine took the file in the meantime we ask that engine instead.
    """
    record = live_record(workspace)
    if record is None:
        if not (workspace / "workspace.duckdb").is_file():
            return _empty(method, *args)
        try:
            with Catalog.open(workspace, read_only=True) as catalog:
                return getattr(catalog, method)(*args, **kwargs)
        except (duckdb.IOException, LLModelError):
            # An engine may have taken the file between our check and our open: ask it instead.
            record = _wait_for_engine(workspace)
            if record is None:
                raise
    from engine.client import EngineClient  # httpx loads only when an engine answers

    with EngineClient(record) as client:
        return _via_engine(client, method, *args, **kwargs)


def _wait_for_engine(workspace: Path, timeout: float = 5.0) -> EngineRecord | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = live_record(workspace)
        if record is not None:
            return record
        time.sleep(0.05)
    return None


def _via_engine(client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    if method == "list_runs":
        return client.get("/api/runs", **kwargs)
    if method == "get_run":
        return client.get(f"/api/runs/{args[0]}")
    if method == "compare_runs":
        return client.get("/api/runs/compare", ids=",".join(args[0]))
    if method == "summary":
        return client.get("/api/workspace")["summary"]
    if method == "metrics":
        names = kwargs.get("names") or (args[1] if len(args) > 1 else None)
        return client.get(
            f"/api/runs/{args[0]}/metrics", names=",".join(names) if names else None, max_points=kwargs.get("max_points")
        )
    if method in ("list_configs", "list_tokenizers", "list_datasets"):
        return client.get(f"/api/{method.removeprefix('list_')}")
    raise ValueError(f"no engine route for {method}")


def _empty(method: str, *args: Any) -> Any:
    if method == "summary":
        return {"configs": 0, "tokenizers": 0, "datasets": 0, "runs": {}, "runs_total": 0}
    if method in ("get_run", "compare_runs"):
        name = args[0] if method == "get_run" else ", ".join(args[0])
        raise LLModelError(f"no run named {name}; this workspace has no runs yet")
    return []
