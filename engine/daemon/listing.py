"""The workspace in one listing: runs with their usable checkpoints (and the adapters trained on each), adapters,
configs, tokenizers, datasets and studies — what a front end draws its tree from, in one request."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

from engine.kinds import TRAINING_KINDS
from engine.runs.checkpoint import MARKER, read_pointer

RUNS_LISTED = 200


def workspace_listing(catalog: Any, workspace: Path, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every listing of the workspace; a run's ``checkpoints`` are those still on disk and complete (the catalog
    hears of saves, not of pruning), each flagged ``best``/``latest`` with the adapters trained on it."""
    adapters = catalog.list_adapters()
    runs = catalog.list_runs(limit=RUNS_LISTED)
    for run in runs:
        recorded = catalog.checkpoints(run["id"]) if run["kind"] in TRAINING_KINDS and run.get("step") else []
        run["checkpoints"] = _usable(recorded, Path(run["run_dir"]), adapters)
    return {
        "path": str(workspace),
        "summary": catalog.summary(),
        "jobs": jobs,
        "runs": runs,
        "adapters": adapters,
        "configs": catalog.list_configs(),
        "tokenizers": catalog.list_tokenizers(),
        "datasets": catalog.list_datasets(),
        "studies": catalog.list_studies(),
    }


def _usable(
    recorded: list[dict[str, Any]], run_dir: Path, adapters: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    complete = [c for c in recorded if (Path(c["path"]) / MARKER).is_file()]
    best = read_pointer(run_dir / "checkpoints", "best") or {}
    newest = max((c["step"] for c in complete), default=None)
    return [
        {
            "step": c["step"],
            "path": c["path"],
            "created": c.get("created"),
            "best": bool(c.get("best")) or Path(c["path"]).name == best.get("checkpoint"),
            "latest": c["step"] == newest,
            "adapters": [a for a in adapters if same_checkpoint(a.get("base_checkpoint"), c["path"])],
        }
        for c in complete
    ]


def same_checkpoint(recorded: str | None, listed: str | None) -> bool:
    """Whether an adapter's recorded base is this checkpoint. A base may be recorded relative to another folder,
    so a checkpoint is known by its run, ``checkpoints`` and step folder names."""
    if not recorded or not listed:
        return False
    return PurePath(os.path.normpath(recorded)).parts[-3:] == PurePath(os.path.normpath(listed)).parts[-3:]
