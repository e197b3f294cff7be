"""Where a workspace's things live on disk (see docs/ARCHITECTURE.md for the layout)."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from engine.errors import LLModelError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_name(name: str, what: str = "name") -> str:
    """Reject names that could escape their folder or surprise a shell."""
    if not _NAME.match(name) or ".." in name:
        raise LLModelError(
            f"invalid {what} {name!r}; use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


WORKSPACES_DIR = Path("workspaces")
CURRENT_FILE = ".current"
LAYOUT = ("configs", "tokenizers", "datasets", "adapters", "runs")


def workspaces_dir() -> Path:
    """Where named workspaces live: ``./workspaces`` under the current directory."""
    return WORKSPACES_DIR.resolve()


def workspace_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``path``, else ``$LLMODEL_WORKSPACE``, else the one chosen by
    ``llmodel workspace use``, else ``./workspaces/default``."""
    chosen = path or os.environ.get("LLMODEL_WORKSPACE")
    if not chosen:
        current = workspaces_dir() / CURRENT_FILE
        name = current.read_text(encoding="utf-8").strip() if current.is_file() else "default"
        chosen = workspaces_dir() / validate_name(name or "default", "workspace name")
    return Path(chosen).expanduser().resolve()


def named_workspace(name: str) -> Path:
    """The folder of the workspace called ``name`` (validated)."""
    return workspaces_dir() / validate_name(name, "workspace name")


def create_layout(workspace: Path) -> None:
    """Make the standard sub-folders of a workspace."""
    for sub in LAYOUT:
        (workspace / sub).mkdir(parents=True, exist_ok=True)


def new_run_id(kind: str) -> str:
    """A sortable, unique run id such as ``pretrain-20261127-213000-a1b2``."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def runs_dir(workspace: Path) -> Path:
    return workspace / "runs"


def newest_completed_run(workspace: Path) -> Path | None:
    """The most recently finished run folder whose training completed and left a checkpoint."""
    import json

    root = runs_dir(workspace)
    if not root.is_dir():
        return None
    found: list[tuple[float, Path]] = []
    for run_json in root.glob("*/run.json"):
        try:
            status = json.loads(run_json.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError, AttributeError):
            continue
        if status == "completed" and any((run_json.parent / "checkpoints").glob("step-*")):
            found.append((run_json.stat().st_mtime, run_json.parent))
    return max(found, default=(0.0, None))[1]


def latest_run_with_checkpoint(workspace: Path) -> Path | None:
    """The newest run folder that holds at least one checkpoint directory."""
    root = runs_dir(workspace)
    if not root.is_dir():
        return None
    candidates = [p for p in root.iterdir() if p.is_dir() and any((p / "checkpoints").glob("step-*"))]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
