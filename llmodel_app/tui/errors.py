"""Failures become notifications, never crashes."""

from __future__ import annotations

from typing import Any

from textual.worker import Worker, WorkerState

from engine.errors import LLModelError


def describe(error: BaseException | None) -> str:
    """A user-facing line: an LLModelError's own message, else the exception's type and text."""
    if isinstance(error, LLModelError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def report_worker_error(node: Any, event: Worker.StateChanged) -> None:
    """Show a failed worker's error as a notification (worker state changes do not bubble: each widget calls this)."""
    if event.state == WorkerState.ERROR:
        node.app.notify(describe(event.worker.error), title="Error", severity="error", timeout=8)
