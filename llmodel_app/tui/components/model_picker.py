"""A list of the workspace's checkpoints (and runs, meaning their latest one) to chat with or serve, and a list of
the base or one of the adapters trained on the picked checkpoint."""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any

from textual.widgets import Select

from llmodel_app.tui.model_server import same_model


def model_choices(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(label, path)`` for each run with checkpoints: the run (its latest), then each checkpoint."""
    choices: list[tuple[str, str]] = []
    for run in runs:
        checkpoints = run.get("checkpoints") or []
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


def base_checkpoint(path: str | None, runs: list[dict[str, Any]]) -> str | None:
    """The checkpoint folder a picked path loads: the path itself, or a run's newest checkpoint (what the engine
    resolves a run folder to); None when the workspace lists neither."""
    if not path:
        return None
    for run in runs:
        checkpoints = run.get("checkpoints") or []
        if checkpoints and same_model(run.get("run_dir"), path):
            return max(checkpoints, key=lambda c: c["step"])["path"]
        for checkpoint in checkpoints:
            if same_model(checkpoint["path"], path):
                return checkpoint["path"]
    return None


def loads_same(first: str | None, second: str | None, runs: list[dict[str, Any]]) -> bool:
    """Whether two picked paths load the same checkpoint: a run folder loads its newest one."""
    if same_model(first, second):
        return True
    loaded = base_checkpoint(first, runs)
    return loaded is not None and same_model(loaded, base_checkpoint(second, runs))


def same_checkpoint(recorded: str | None, listed: str | None) -> bool:
    """Whether an adapter's recorded base is this listed checkpoint. The CLI records the base as the user typed
    it (maybe relative to another folder), so a checkpoint is known by its run and step folder names."""
    if not recorded or not listed:
        return False
    return PurePath(os.path.normpath(recorded)).parts[-3:] == PurePath(os.path.normpath(listed)).parts[-3:]


def adapters_of(
    path: str | None, runs: list[dict[str, Any]], adapters: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The adapters trained on the checkpoint ``path`` loads (by name)."""
    base = base_checkpoint(path, runs)
    return sorted(
        (a for a in adapters if same_checkpoint(a.get("base_checkpoint"), base)), key=lambda a: a["name"]
    )


def adapter_label(adapter: dict[str, Any]) -> str:
    """``sums (lora r8)``."""
    return f"{adapter['name']} ({adapter.get('method', 'lora')} r{adapter.get('rank', '?')})"


def best_checkpoint(run: dict[str, Any]) -> str | None:
    """The path of the run's best checkpoint (else its newest) that still exists, or None."""
    checkpoints = run.get("checkpoints") or []
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


BASE = "(base)"  # the adapter list's value for the base model: no adapter name has parentheses


class AdapterPicker(Select[str]):
    """The base, then each adapter trained on the picked checkpoint. Keeps its choice while that adapter is still
    offered; only a choice the user makes posts ``Changed``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__([("base", BASE)], value=BASE, allow_blank=False, compact=True, **kwargs)
        self.adapters: list[dict[str, Any]] = []
        self._wanted: str | None = None

    def set_adapters(self, adapters: list[dict[str, Any]]) -> None:
        """Offer ``adapters`` (the listing's adapter rows) beside the base."""
        if not self.query("SelectOverlay"):  # the Select's own parts are not mounted yet
            self.call_after_refresh(self.set_adapters, adapters)
            return
        names = [a["name"] for a in adapters]
        if names == [a["name"] for a in self.adapters]:
            self.adapters = adapters
            return
        current = self.adapter
        self.adapters = adapters
        with self.prevent(Select.Changed):
            self.set_options([("base", BASE), *((adapter_label(a), a["name"]) for a in adapters)])
            chosen = current if current in names else self._wanted if self._wanted in names else None
            self.value = chosen or BASE

    def choose(self, adapter: str | None) -> None:
        """Select ``adapter`` (None: the base) now, or as soon as it is offered."""
        self._wanted = adapter
        if adapter is None or adapter in {a["name"] for a in self.adapters}:
            with self.prevent(Select.Changed):
                self.value = adapter or BASE

    @property
    def adapter(self) -> str | None:
        """The adapter's name, or None for the base."""
        return self.value if isinstance(self.value, str) and self.value != BASE else None

    @property
    def served(self) -> dict[str, str]:
        """Every offered adapter, name → folder: what the model server loads beside the base."""
        return {a["name"]: a["path"] for a in self.adapters}
