"""One turn of the conversation."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

ROLE_STYLE = {"user": "bold cyan", "assistant": "bold green", "system": "bold magenta", "error": "bold red"}


class ChatMessage(Static):
    DEFAULT_CSS = """
    ChatMessage { padding: 0 1; margin-bottom: 1; }
    ChatMessage.-assistant { background: $boost; }
    """

    def __init__(self, role: str, content: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role, self.text = role, content
        self.add_class(f"-{role}")

    def on_mount(self) -> None:
        self.set_content(self.text)

    def set_content(self, content: str) -> None:
        self.text = content
        text = Text(f"{self.role}\n", style=ROLE_STYLE.get(self.role, "bold"))
        text.append(content or "…")
        self.update(text)
