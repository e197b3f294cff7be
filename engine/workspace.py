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


def workspace_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``path``, else ``$LLMODEL_WORKSPACE``, else ``./workspaces/default``."""
    chosen = path or os.environ.get("LLMODEL_WORKSPACE") or Path("workspaces") / "default"
    return Path(chosen).expanduser().resolve()


def new_run_id(kind: str) -> str:
    """A sortable, unique run id such as ``pretrain-20261127-213000-a1b2``."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def runs_dir(workspace: Path) -> Path:
    return workspace / "runs"


def latest_run_with_checkpoint(workspace: Path) -> Path | None:
    """The newest run folder that holds at least one checkpoint directory."""
    root = runs_dir(workspace)
    if not root.is_dir():
        return None
    candidates = [p for p in root.iterdir() if p.is_dir() and any((p / "checkpoints").glob("step-*"))]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
