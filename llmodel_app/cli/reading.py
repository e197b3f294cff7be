"""Read-only queries of a workspace: through its engine when one runs, else straight from the catalog file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.catalog.runs_index import CATALOG_FILE, read_index, select_runs
from engine.daemon.record import live_record
from engine.errors import LLModelError

BUSY_WAIT = 15.0  # seconds to keep trying while an engine starts or stops


def query(workspace: Path, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a read method of the catalog (``list_runs``, ``get_run``, ``compare_runs``, ``summary``, ...).

    DuckDB admits one writer process, the engine: while it runs we ask it; otherwise we open the file
    read-only. An engine that is starting or stopping holds the file without answering yet (or any more), so
    we look again until one of the two ways works. ``list_runs`` first tries the runs index the writer keeps
    beside the catalog, which needs neither.
    """
    if method == "list_runs" and not args:
        runs = read_index(workspace)
        if runs is not None:
            return select_runs(runs, **kwargs)
    from engine.catalog import Catalog, CatalogBusy  # DuckDB loads only when the catalog itself is read

    deadline = time.monotonic() + BUSY_WAIT
    while True:
        record = live_record(workspace)
        if record is not None:
            from engine.client import EngineClient, EngineUnavailable  # httpx loads only when an engine runs

            try:
                with EngineClient(record) as client:
                    return _via_engine(client, method, *args, **kwargs)
            except EngineUnavailable:  # it is stopping: its record goes next, then its hold on the file
                if time.monotonic() > deadline:
                    raise
        elif not (workspace / CATALOG_FILE).is_file():
            return _empty(method, *args)
        else:
            try:
                with Catalog.open(workspace, read_only=True) as catalog:
                    return getattr(catalog, method)(*args, **kwargs)
            except CatalogBusy:  # an engine is starting (its record comes next) or stopping
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


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
            f"/api/runs/{args[0]}/metrics",
            names=",".join(names) if names else None,
            max_points=kwargs.get("max_points"),
        )
    if method == "run_evaluations":
        return client.get(f"/api/runs/{args[0]}/evaluations")
    if method == "list_adapters":
        return client.get("/api/adapters", base=args[0] if args else kwargs.get("base_checkpoint"))
    if method == "get_adapter":
        return client.get(f"/api/adapters/{args[0]}")
    if method == "list_studies":
        return client.get("/api/studies")
    if method == "study_trials":
        return client.get(f"/api/studies/{args[0]}/trials")
    if method in ("list_configs", "list_tokenizers", "list_datasets"):
        return client.get(f"/api/{method.removeprefix('list_')}")
    raise ValueError(f"no engine route for {method}")


def _empty(method: str, *args: Any) -> Any:
    if method == "summary":
        return {"configs": 0, "tokenizers": 0, "datasets": 0, "runs": {}, "runs_total": 0}
    if method == "get_adapter":
        raise LLModelError(f"no adapter named {args[0]}; this workspace has no adapters yet")
    if method == "study_trials":
        raise LLModelError(f"no study named {args[0]}; this workspace has no studies yet")
    if method in ("get_run", "compare_runs"):
        name = args[0] if method == "get_run" else ", ".join(args[0])
        raise LLModelError(f"no run named {name}; this workspace has no runs yet")
    return []
