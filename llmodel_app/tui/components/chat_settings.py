"""Sampling settings and the system prompt of the chat, checked before each request."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label

from engine.errors import LLModelError
from llmodel_app.tui.components.field_input import FieldInput

# name, label, default, type, lower bound, upper bound
FIELDS = (
    ("temperature", "temperature", "0.8", float, 0.0, 2.0),
    ("top_p", "top-p", "0.95", float, 0.0001, 1.0),
    ("top_k", "top-k (0 = off)", "40", int, 0, 100_000),
    ("max_tokens", "max tokens", "128", int, 1, 100_000),
    ("repetition_penalty", "repetition penalty", "1.1", float, 0.0001, 10.0),
)


class ChatSettings(Vertical):
    DEFAULT_CSS = """
    ChatSettings { height: auto; }
    ChatSettings Grid { grid-size: 2; grid-columns: 1fr 10; height: auto; grid-rows: 1; grid-gutter: 0 1; }
    ChatSettings Grid Label { padding: 0; }
    ChatSettings Grid Input { width: 10; }
    """

    def compose(self) -> ComposeResult:
        yield Label("system prompt")
        yield FieldInput(placeholder="(none)", id="system-prompt", compact=True)
        with Grid():
            for name, label, default, *_ in FIELDS:
                yield Label(label)
                yield FieldInput(default, id=f"setting-{name}", restrict=r"[0-9.]*", compact=True)

    @property
    def system_prompt(self) -> str:
        return self.query_one("#system-prompt", Input).value.strip()

    def values(self) -> dict[str, Any]:
        """The request's sampling fields; raises a one-line error for a value out of range."""
        values: dict[str, Any] = {}
        for name, label, _, kind, low, high in FIELDS:
            raw = self.query_one(f"#setting-{name}", Input).value.strip()
            try:
                value = kind(raw)
            except ValueError:
                raise LLModelError(f"{label} must be a number, got {raw!r}") from None
            if not low <= value <= high:
                raise LLModelError(f"{label} must be between {low:g} and {high:g}, got {raw}")
            values[name] = value
        if values["top_k"] == 0:
            values["top_k"] = None
        return values
