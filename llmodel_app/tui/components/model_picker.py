"""A list of the workspace's checkpoints (and runs, meaning their latest one) to chat with or serve."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from textual.widgets import Select

from llmodel_app.tui.model_server import same_model


def model_choices(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(label, path)`` for each run with checkpoints: the run (its latest), then each checkpoint."""
    choices: list[tuple[str, str]] = []
    for run in runs:
        checkpoints = [c for c in run.get("checkpoints") or [] if not c.get("pruned")]
        if not checkpoints:
            continue
        choices.append((f"{run['id']} (latest)", run["run_dir"]))
        for checkpoint in reversed(checkpoints):
            best = " ★" if checkpoint.get("best") else ""
            choices.append((f"  {run['id']} · step {checkpoint['step']}{best}", checkpoint["path"]))
    return choices


def model_label(path: str, runs: list[dict[str, Any]]) -> str:
    """How the picker names ``path`` (``run-id · step 40 ★``); a path the workspace does not list keeps its last
    two parts."""
    for label, choice in model_choices(runs):
        if same_model(choice, path):
            return label.strip()
    return str(PurePath(*PurePath(path).parts[-2:])) if path else "?"


def best_checkpoint(run: dict[str, Any]) -> str | None:
    """The path of the run's best checkpoint (else its newest) that still exists, or None."""
    checkpoints = [c for c in run.get("checkpoints") or [] if not c.get("pruned")]
    if not checkpoints:
        return None
    return max(checkpoints, key=lambda c: (bool(c.get("best")), c["step"]))["path"]


class ModelPicker(Select[str]):
    """Keeps its choice across refreshes of the workspace. Only a choice the user makes posts ``Changed``: the
    ones made here (a refresh, ``choose``) are quiet."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__([], prompt="choose a checkpoint", compact=True, **kwargs)
        self._paths: set[str] = set()
        self._wanted: str | None = None

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        if not self.query("SelectOverlay"):  # the Select's own parts are not mounted yet
            self.call_after_refresh(self.set_runs, runs)
            return
        choices = model_choices(runs)
        paths = {path for _, path in choices}
        if paths == self._paths:
            return
        current = self.value
        self._paths = paths
        with self.prevent(Select.Changed):
            self.set_options(choices)
            if isinstance(current, str) and current in paths:
                self.value = current
            elif self._wanted in paths:
                self.value = self._wanted
            elif choices and self.is_blank():
                self.value = choices[0][1]

    def choose(self, path: str) -> None:
        """Select ``path`` now, or as soon as the workspace listing holds it."""
        self._wanted = path
        if path in self._paths:
            with self.prevent(Select.Changed):
                self.value = path

    @property
    def path(self) -> str | None:
        return self.value if isinstance(self.value, str) else None
