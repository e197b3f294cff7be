"""What the workbench shows (open run, tab, picked checkpoint), kept in the workspace so reopening restores it."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.fileio import write_json_atomic

STATE_FILE = ".workbench.json"


@dataclass(frozen=True)
class WorkbenchState:
    run: str | None = None
    tab: str = "home"
    model: str | None = None


def load_state(workspace: Path) -> WorkbenchState:
    """The state saved in ``workspace``, or the default one (no file, or one this version cannot read)."""
    try:
        data = json.loads((workspace / STATE_FILE).read_text(encoding="utf-8"))
        return WorkbenchState(
            run=_text(data.get("run")), tab=_text(data.get("tab")) or "home", model=_text(data.get("model"))
        )
    except (OSError, ValueError, AttributeError):
        return WorkbenchState()


def save_state(workspace: Path, state: WorkbenchState) -> None:
    """Write ``state`` atomically into an existing workspace folder (never creates one); a failure is ignored,
    since forgetting the view must never get in the user's way."""
    if not workspace.is_dir():
        return
    with contextlib.suppress(OSError):
        write_json_atomic(workspace / STATE_FILE, asdict(state))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
