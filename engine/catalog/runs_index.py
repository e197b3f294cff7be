"""The runs list as a JSON file beside the catalog, so `llmodel runs list` answers without loading DuckDB.

The catalog's writer keeps ``<workspace>/runs.index.json`` equal to ``Catalog.list_runs()``: it rewrites the file
(atomically) after every transaction that changes a run, and once more after closing. A reader trusts the file
only while it is at least as new as the catalog file and its write-ahead log; anything else (no file, an older
one, a crash between commit and rewrite, another LLModel version) sends it to the catalog itself.

This module must stay free of DuckDB: reading the index is the point.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from engine.fileio import write_text_atomic

INDEX_FILE = "runs.index.json"
CATALOG_FILE = "workspace.duckdb"
FORMAT = 1


def read_index(workspace: Path) -> list[dict[str, Any]] | None:
    """The runs recorded in the index (newest first), or None when it is missing or older than the catalog."""
    index = workspace / INDEX_FILE
    try:
        written = index.stat().st_mtime_ns
        if (workspace / CATALOG_FILE).stat().st_mtime_ns > written:
            return None
        wal = workspace / f"{CATALOG_FILE}.wal"
        if wal.exists() and wal.stat().st_mtime_ns > written:
            return None
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("runs"), list):
        return None
    return data["runs"]


def select_runs(
    runs: list[dict[str, Any]],
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The filtering of ``Catalog.list_runs`` applied to rows already in its order."""
    chosen = [
        r for r in runs if (kind is None or r["kind"] == kind) and (status is None or r["status"] == status)
    ]
    return chosen if limit is None else chosen[: max(int(limit), 0)]


class RunsIndexWriter:
    """The writer's side: the rows in memory, patched per changed run and written out whole."""

    def __init__(self, workspace: Path, rows: list[dict[str, Any]]) -> None:
        self.path = workspace / INDEX_FILE
        self._rows = {row["id"]: row for row in rows}
        self.write()

    def update(self, run_ids: list[str], rows: list[dict[str, Any]]) -> None:
        """Replace the rows of ``run_ids`` by ``rows`` (a run without a row was removed) and rewrite the file."""
        for run_id in run_ids:
            self._rows.pop(run_id, None)
        self._rows.update((row["id"], row) for row in rows)
        self.write()

    def write(self) -> None:
        ordered = sorted(self._rows.values(), key=lambda r: (r.get("created") or 0, r["id"]), reverse=True)
        with contextlib.suppress(OSError):  # the catalog write stands; an index older than it is never read
            write_text_atomic(self.path, json.dumps({"format": FORMAT, "runs": ordered}, default=str))
