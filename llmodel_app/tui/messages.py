"""Messages of the workbench: widgets post them up, the app routes them ("attributes down, messages up")."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class EngineConnected(Message):
    """A client of the workspace's engine is ready."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client


class EngineLost(Message):
    """The engine stopped answering; the app keeps trying to reconnect."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class WorkspaceLoaded(Message):
    """Fresh listings of the workspace: runs (with checkpoints), configs, tokenizers, datasets, summary."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data


class RunSelected(Message):
    """Open a run in the run view."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class CheckpointSelected(Message):
    """A checkpoint (or a run's latest one), and optionally one of its adapters, chosen for chat and serving."""

    def __init__(self, run_id: str, path: str, adapter: str | None = None) -> None:
        super().__init__()
        self.run_id, self.path, self.adapter = run_id, path, adapter


class ModelPicked(Message):
    """The user picked another checkpoint in the chat's model list (the tab stays as it is)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class AdapterPicked(Message):
    """The user picked the base (None) or one of its adapters in the chat's adapter list."""

    def __init__(self, adapter: str | None) -> None:
        super().__init__()
        self.adapter = adapter


class StudySelected(Message):
    """Open a study in the Evolve tab."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ConfigSelected(Message):
    """Open a saved model config in the config editor."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        super().__init__()
        self.name, self.data = name, data


class JobSubmitted(Message):
    """A job was queued; the tree refreshes and the welcome panel may follow it."""

    def __init__(self, run_id: str, kind: str) -> None:
        super().__init__()
        self.run_id, self.kind = run_id, kind


class ServingChanged(Message):
    """The model server's status as last polled (``EngineClient.serve_status``)."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status


class ChatDelta(Message):
    """The reply so far (streamed tokens), or its end with ``done``."""

    def __init__(self, text: str, *, turn: int, done: bool = False, error: str | None = None) -> None:
        super().__init__()
        self.text, self.turn, self.done, self.error = text, turn, done, error


class FieldLeft(Message):
    """Escape in a text field: the focus goes back to the tab bar, where the digit keys switch tabs."""


class AttentionCursor(Message):
    """The heatmap's cursor moved: the query and key tokens under it and their weight."""

    def __init__(self, query: str, key: str, weight: float) -> None:
        super().__init__()
        self.query, self.key, self.weight = query, key, weight
